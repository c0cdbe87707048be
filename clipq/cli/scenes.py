"""``clipq scenes``: scenes and matcher recommendations for image files.

In-process by default (loads the model here: the worker extra), or against a running
service with ``--server URL`` (the jobs API, polled). One line per image; unreadable
files get one error line each, the rest carry on, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import TextIO

from clipcore.scenes import DatasetSummary, summarize_dataset
from clipcore.schemas import SceneBatch
from clipcore.taxonomy import Speed, Taxonomy, load_default_taxonomy, parse_taxonomy
from clipq.cli.collections import add_server_arguments, client


def add_parser(commands: argparse._SubParsersAction) -> None:
    scenes = commands.add_parser("scenes", help="classify scenes and recommend image matchers")
    scenes.add_argument("images", nargs="+", type=Path, help="image files")
    scenes.add_argument("--output", "-o", choices=["text", "json", "csv"], default="text")
    scenes.add_argument(
        "--all", "-a", "--verbose", "-v", action="store_true", help="show every scene's score"
    )
    scenes.add_argument("--speed", choices=[s.value for s in Speed], default=Speed.balanced.value)
    scenes.add_argument("--taxonomy", type=Path, help="a taxonomy JSON file (default: shipped)")
    add_server_arguments(scenes, None)  # in-process unless --server is given
    scenes.add_argument(
        "--model",
        help="the model string: in-process, the one to load (default: CLIPQ_CLIP_MODEL); with "
        "--server, one the service serves (default: its first)",
    )
    scenes.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    scenes.set_defaults(run=run_scenes)


def run_scenes(args: argparse.Namespace) -> int:
    taxonomy = parse_taxonomy(args.taxonomy.read_bytes()) if args.taxonomy else None
    speed = Speed(args.speed)
    result: SceneBatch
    if args.server:
        result = client(args).scenes(
            args.images, speed=speed, taxonomy=taxonomy, progress=not args.quiet, model=args.model
        )
    else:
        result = _in_process(args, taxonomy, speed)
    taxonomy = taxonomy or load_default_taxonomy()
    summary = _summary(result, taxonomy, speed)
    write = {"text": write_text, "json": write_json, "csv": write_csv}[args.output]
    write(result, summary, taxonomy.scene_names, show_all=args.all, out=sys.stdout)
    failed = [image for image in result.images if image.prediction is None]
    for image in failed:
        detail = image.error.detail if image.error else "could not be classified"
        print(f"error: {detail}", file=sys.stderr)
    return 1 if failed else 0


def _in_process(args: argparse.Namespace, taxonomy: Taxonomy | None, speed: Speed) -> SceneBatch:
    from tqdm import tqdm

    from clipcore.scene_classifier import SceneClassifier
    from clipq.settings import get_settings

    settings = get_settings()
    classifier = SceneClassifier(
        args.model or settings.clip_model,
        settings.device,
        taxonomy,
        batch_size=settings.batch_size,
        min_confidence=settings.scene_min_confidence,
        min_margin=settings.scene_min_margin,
        max_pixels=settings.max_image_pixels,
    )
    total = sum(1 for path in args.images if path.is_file())
    with tqdm(total=total, unit="img", disable=args.quiet or total < 2) as bar:
        return classifier.classify_batch(
            args.images, speed, on_progress=lambda done: bar.update(done - bar.n)
        )


def _summary(result: SceneBatch, taxonomy: Taxonomy, speed: Speed) -> DatasetSummary | None:
    tops = [image.prediction.top_scene for image in result.images if image.prediction]
    return summarize_dataset(taxonomy, tops, speed) if len(tops) >= 2 else None


def write_text(
    result: SceneBatch,
    summary: DatasetSummary | None,
    scene_names: list[str],
    *,
    show_all: bool,
    out: TextIO,
) -> None:
    width = max((len(image.filename) for image in result.images), default=0)
    for image in result.images:
        if image.prediction is None:
            continue
        p = image.prediction
        flag = "  (uncertain)" if p.uncertain else ""
        if p.domain is not None and not p.domain.in_domain:
            flag = "  (out of the model's domain: not a meaningful answer)"
        print(
            f"{image.filename:<{width}}  {p.top_scene} ({100 * p.confidence:.1f}%)"
            f"  → {p.recommended_matcher.name}{flag}",
            file=out,
        )
        if show_all:
            for score in p.scores:
                print(
                    f"{'':<{width}}    {score.scene:<14} {100 * score.probability:5.1f}%", file=out
                )
    if summary is not None:
        print(f"\n{summary.total_images} images:", file=out)
        for scene, share in summary.scene_distribution.items():
            print(f"  {scene:<14} {share:5.1f}%", file=out)
        for dominant in summary.recommended_matchers:
            print(
                f"  {dominant.scene} ({dominant.percentage:.0f}%) → {dominant.matcher.name}",
                file=out,
            )
        print(f"overall: {summary.overall.matcher.name} — {summary.overall.reason}", file=out)
        outside = sum(
            1
            for image in result.images
            if image.prediction is not None
            and image.prediction.domain is not None
            and not image.prediction.domain.in_domain
        )
        if outside:
            print(
                f"warning: {outside} of {summary.total_images} images look like nothing the "
                "loaded model knows; this summary is not meaningful for them",
                file=out,
            )


def write_json(
    result: SceneBatch,
    summary: DatasetSummary | None,
    scene_names: list[str],
    *,
    show_all: bool,
    out: TextIO,
) -> None:
    document = json.loads(result.model_dump_json())
    document["summary"] = json.loads(summary.model_dump_json()) if summary else None
    json.dump(document, out, indent=2)
    out.write("\n")


def write_csv(
    result: SceneBatch,
    summary: DatasetSummary | None,
    scene_names: list[str],
    *,
    show_all: bool,
    out: TextIO,
) -> None:
    header = ["filename", "scene", "confidence", "matcher", "matcher_speed", "uncertain", "error"]
    writer = csv.writer(out)
    writer.writerow(header + (scene_names if show_all else []))
    for image in result.images:
        p = image.prediction
        if p is None:
            error = image.error.detail if image.error else ""
            writer.writerow([image.filename, "", "", "", "", "", error])
            continue
        row = [
            image.filename,
            p.top_scene,
            f"{p.confidence:.4f}",
            p.recommended_matcher.name,
            str(p.recommended_matcher.speed),
            str(p.uncertain).lower(),
            "",
        ]
        if show_all:
            by_scene = {s.scene: s.probability for s in p.scores}
            row += [f"{by_scene[name]:.4f}" for name in scene_names]
        writer.writerow(row)
