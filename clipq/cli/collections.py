"""``clipq ingest`` / ``search`` / ``evaluate``: collections through a running service."""

from __future__ import annotations

import argparse
import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from clipq.cli import source_imports
from clipq.settings import get_settings

if TYPE_CHECKING:
    from clipq.client import ClipqClient
    from clipq.contracts.collections import SearchResult


def add_server_arguments(parser: argparse.ArgumentParser, server: str | None) -> None:
    """``--server`` (default: ``server``, None for in-process) and ``--api-key``."""
    settings = get_settings()
    parser.add_argument(
        "--server",
        default=server,
        help="a running clipq, e.g. http://127.0.0.1:8080"
        + (" (default: CLIPQ_SERVER, %(default)s)" if server else ""),
    )
    parser.add_argument(
        "--api-key",
        default=settings.api_key,
        help="the service's API key (default: CLIPQ_API_KEY)",
    )


def client(args: argparse.Namespace) -> ClipqClient:
    from clipq.client import ClipqClient

    return ClipqClient(args.server, api_key=args.api_key)


def add_parsers(commands: argparse._SubParsersAction) -> None:
    def common(parser: argparse.ArgumentParser) -> None:
        add_server_arguments(parser, get_settings().server)
        parser.add_argument("--collection", "-c", required=True, help="collection name or id")
        parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    ingest = commands.add_parser("ingest", help="add images to a collection")
    common(ingest)
    ingest.add_argument("images", nargs="*", type=Path, help="image files")
    ingest.add_argument("--label", action="append", default=[], help="label for every image")
    ingest.add_argument("--cifar10", type=Path, help="a CIFAR-10 python folder to ingest")
    ingest.add_argument("--split", choices=["test", "train"], default="test")
    ingest.add_argument("--limit", type=int, help="at most this many CIFAR-10 images")
    ingest.add_argument(
        "--model", help="a new collection's model, one the service serves (default: its first)"
    )
    source_imports.add_arguments(ingest)
    ingest.set_defaults(run=run_ingest)

    search = commands.add_parser("search", help="search a collection by text, interactively")
    common(search)
    search.add_argument("--top-k", "-k", type=int, default=5)
    search.add_argument("--rerank", choices=["none", "crops"], default="none")
    search.add_argument("--min-score", type=float, help="'no match' threshold (cosine)")
    search.add_argument("--grid", type=Path, help="write a contact sheet of each answer here")
    search.add_argument("--query", action="append", help="run these queries, no prompt")
    search.add_argument(
        "--like",
        action="append",
        metavar="IMAGE",
        help="find images like this one: an image file, or the id of one of the collection's "
        "images (repeatable; no prompt)",
    )
    search.set_defaults(run=run_search)

    evaluate = commands.add_parser("evaluate", help="Recall@K and MRR of a labelled collection")
    common(evaluate)
    evaluate.add_argument("--ks", default="1,5,10", help="comma-separated, default %(default)s")
    evaluate.add_argument("--template", default="a photo of a {}.")
    evaluate.set_defaults(run=run_evaluate)


def run_ingest(args: argparse.Namespace) -> int:
    service = client(args)
    collection = service.collection(args.collection, create=True, model=args.model)
    if args.sources:
        return source_imports.run_from(args, service, collection)
    if args.cifar10:
        from clipq.cli.cifar10 import read_cifar10

        items: Iterator[tuple[str, bytes, list[str]]] = (
            (name, data, [label])
            for name, data, label in read_cifar10(args.cifar10, args.split, args.limit)
        )
        total = args.limit
    else:
        items = _files(args.images, args.label)
        total = len(args.images)
    result = service.ingest(collection.id, items, total=total, progress=not args.quiet)
    print(
        f"{collection.name}: {result.added} added, {result.duplicates} duplicates, "
        f"{result.failed} failed"
    )
    for image in result.images:
        if image.error:
            print(f"error: {image.error.detail}", file=sys.stderr)
    return 1 if result.failed else 0


def _files(paths: list[Path], labels: list[str]) -> Iterator[tuple[str, bytes, list[str]]]:
    for path in paths:
        try:
            yield path.name, path.read_bytes(), labels
        except OSError as exc:
            print(f"error: {path}: cannot read the file ({exc.strerror})", file=sys.stderr)


def run_search(args: argparse.Namespace, stdin: TextIO = sys.stdin) -> int:
    service = client(args)
    collection = service.collection(args.collection)
    options: dict[str, object] = {"top_k": args.top_k, "rerank": args.rerank}
    if args.min_score is not None:
        options["min_score"] = args.min_score
    if args.like:
        searches = (_like(service, collection.id, like, options) for like in args.like)
    else:
        queries = iter(args.query) if args.query else _prompt(stdin)
        searches = (service.search(collection.id, query=q, **options) for q in queries)
    status = 0
    for result in searches:
        if result is None:
            status = 1
            continue
        if result.no_match:
            best = (
                "nothing in the collection"
                if result.best_score is None
                else (f"best score {result.best_score:.3f} < {result.min_score:.3f}")
            )
            print(f"No match ({best})")
            continue
        for rank, hit in enumerate(result.hits, start=1):
            crop = f", crop {hit.crop_score:.3f}" if hit.crop_score is not None else ""
            labels = ",".join(hit.labels) or "-"
            scores = f"{hit.score:.3f} (image {hit.image_score:.3f}{crop})"
            print(f"{rank:>3}. {hit.filename:<24} {labels:<20} {scores}")
        if args.grid:
            _write_grid(service, result, args.grid)
            print(f"wrote {args.grid}")
    return status


def _like(
    service: ClipqClient, collection_id: str, like: str, options: dict[str, object]
) -> SearchResult | None:
    """Search by an image file, or by the id of one of the collection's images."""
    path = Path(like)
    if path.is_file():
        print(f"like {path.name}:")
        return service.similar_upload(collection_id, path.name, path.read_bytes(), **options)
    if re.fullmatch(r"[0-9a-f]{24}", like):
        print(f"like image {like}:")
        return service.similar(collection_id, like, **options)
    print(f"error: {like}: neither an image file nor an image id", file=sys.stderr)
    return None


def _prompt(stdin: TextIO) -> Iterator[str]:
    """Queries typed at the prompt until 'exit' (or end of input)."""
    while True:
        print("query> ", end="", flush=True)
        line = stdin.readline()
        if not line or line.strip().lower() in ("exit", "quit"):
            return
        if line.strip():
            yield line.strip()


def _write_grid(service: ClipqClient, result: SearchResult, path: Path) -> None:
    from PIL import Image

    from clipq.cli.contact_sheet import SheetItem, contact_sheet

    items = [
        SheetItem(
            thumbnail=Image.open(io.BytesIO(service.thumbnail(hit.thumbnail_url)))
            if hit.thumbnail_url
            else Image.new("RGB", (96, 96), "lightgrey"),  # an embedding imported alone
            title=f"{rank}. {hit.filename}",
            detail=f"{hit.score:.3f}"
            + (f" crop {hit.crop_score:.3f}" if hit.crop_score is not None else ""),
            box=hit.crop_box,
            original_size=(hit.width, hit.height),
        )
        for rank, hit in enumerate(result.hits, start=1)
    ]
    asked = (
        repr(result.query)
        if result.query is not None
        else f"like {result.image or result.image_id}"
    )
    contact_sheet(items, heading=f"{asked} — rerank={result.rerank}").save(path)


def run_evaluate(args: argparse.Namespace) -> int:
    service = client(args)
    collection = service.collection(args.collection)
    ks = [int(k) for k in args.ks.split(",")]
    result = service.evaluate(
        collection.id, ks=ks, prompt_template=args.template, progress=not args.quiet
    )
    print(f"{collection.name}: {result.images} images, {len(result.queries)} queries")
    print(f"{'rerank':<8}" + "".join(f"  R@{k:<5}" for k in result.ks) + "  MRR")
    for mode, metrics in result.modes.items():
        cells = "".join(f"  {metrics.recall_at[str(k)]:<7.3f}" for k in result.ks)
        print(f"{mode:<8}{cells}  {metrics.mrr:.3f}")
    return 0
