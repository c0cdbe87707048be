"""``clipq models``: which models a running service's workers serve, and what they know."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from clipq.cli.collections import add_server_arguments, client
from clipq.contracts.models import ModelList, ServedModel
from clipq.settings import get_settings


def add_parser(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="the models a running service serves")
    add_server_arguments(models, get_settings().server)
    models.add_argument("--output", "-o", choices=["text", "json"], default="text")
    models.set_defaults(run=run_models)


def run_models(args: argparse.Namespace) -> int:
    listing = client(args).models()
    if args.output == "json":
        print(listing.model_dump_json(indent=2))
    else:
        write_text(listing, sys.stdout)
    return 0


def write_text(listing: ModelList, out: TextIO) -> None:
    served = sum(model.workers for model in listing.models)
    if served < listing.workers:
        print(f"{listing.workers - served} worker(s) still loading their model", file=out)
    for model in listing.models:
        print("\n".join(describe_lines(model)), file=out)


def describe_lines(model: ServedModel) -> list[str]:
    """A served model in a few lines: what it is, what it knows, its detector, the advice."""
    workers = f"{model.workers} worker{'' if model.workers == 1 else 's'}"
    lines = [
        f"{model.id} ({model.kind}) · {workers}",
        f"  input {model.input_size} px · {model.embedding_dim}-d embeddings · "
        f"results say {model.model!r}",
    ]
    if model.knows is not None:
        vocabulary = ""
        if model.knows.colours and model.knows.shapes:
            vocabulary = (
                f" — {len(model.knows.colours)} colours × {len(model.knows.shapes)} shapes: "
                f"{', '.join(model.knows.colours)} × {', '.join(model.knows.shapes)}"
            )
        lines.append(f"  knows: {model.knows.summary}{vocabulary}")
    lines.append(
        f"  detector: {model.detector.id} ({model.detector.kind}): {model.detector.summary}"
    )
    if model.advice:
        lines.append(f"  advice: {model.advice}")
    return lines
