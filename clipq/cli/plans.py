"""``clipq plan DIR --out plan/``: a reconstruction plan of a folder of images.

In-process by default (loads the model here: the worker extra), or against a running
service with ``--server URL``. Writes the plan's bundle (pairs.txt, hloc / COLMAP / GLOMAP
scripts, README.md) and the whole result as ``plan.json`` into ``--out``, and prints what
it decided: the matcher, pairs against exhaustive matching, what to drop or review.
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

from clipcore.errors import InvalidInput
from clipcore.plans.bundle import plan_archive
from clipcore.plans.schemas import (
    Action,
    HygieneFlag,
    HygieneReport,
    PairShortlist,
    ShortlistStrategy,
)
from clipcore.scenes import DatasetSummary
from clipcore.taxonomy import Speed, Taxonomy, load_default_taxonomy, parse_taxonomy
from clipq.cli.collections import add_server_arguments, client

# File name endings taken from a folder: the formats clipcore.images reads.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".mpo"}
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    plan = commands.add_parser("plan", help="plan a reconstruction: matcher, pairs, hygiene")
    plan.add_argument("images", nargs="+", type=Path, help="a folder of images, or image files")
    plan.add_argument("--out", "-o", type=Path, required=True, help="folder for the bundle")
    plan.add_argument("--speed", choices=[s.value for s in Speed], default=Speed.balanced.value)
    plan.add_argument("--taxonomy", type=Path, help="a taxonomy JSON file (default: shipped)")
    plan.add_argument(
        "--strategy",
        choices=[s.value for s in ShortlistStrategy],
        default=ShortlistStrategy.retrieval.value,
        help="retrieval (nearest neighbours), sequential (file-name order), both, or exhaustive",
    )
    plan.add_argument("--pairs-per-image", "-k", type=int, help="k (default: the service's)")
    plan.add_argument("--window", type=int, help="the sequential window (default: the service's)")
    add_server_arguments(plan, None)
    plan.add_argument("--model", help="the model string (in-process) or a served one (--server)")
    plan.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    plan.set_defaults(run=run_plan)


def image_files(arguments: list[Path]) -> list[Path]:
    """The images named, a folder standing for its image files (sorted, not recursive)."""
    found: list[Path] = []
    for path in arguments:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found.append(path)
    return found


def run_plan(args: argparse.Namespace) -> int:
    taxonomy = parse_taxonomy(args.taxonomy.read_bytes()) if args.taxonomy else None
    paths = image_files(args.images)
    if len(paths) < 2:
        print("error: a plan needs two or more images", file=sys.stderr)
        return 2
    document, bundle, refused = (_with_server if args.server else _in_process)(
        args, paths, taxonomy
    )
    args.out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        for member in archive.infolist():  # clipq-plan/… : the archive's one folder is --out
            target = args.out / member.filename.partition("/")[2]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
            if member.external_attr >> 16 & 0o111:
                target.chmod(0o755)
    (args.out / "plan.json").write_text(document)
    from clipq.contracts.jobs import PlanResult

    result = PlanResult.model_validate_json(document)
    assert result.summary is not None
    report(result.summary, result.shortlist, result.hygiene, args.out)
    for line in refused:
        print(f"error: {line}", file=sys.stderr)
    return 1 if refused else 0


def report(
    summary: DatasetSummary, shortlist: PairShortlist, hygiene: HygieneReport, out: Path
) -> None:
    share = len(shortlist.pairs) / max(1, shortlist.exhaustive_pairs)
    actions = hygiene.actions()
    print(f"matcher: {summary.overall.matcher.name} — {summary.overall.reason}")
    print(
        f"pairs: {len(shortlist.pairs)} of {shortlist.exhaustive_pairs} exhaustive "
        f"({share:.1%}; {shortlist.strategy}, k={shortlist.pairs_per_image})"
    )
    print(
        f"images: {actions[Action.keep]} keep, {actions[Action.review]} review, "
        f"{actions[Action.drop]} drop; {len(hygiene.duplicate_groups)} near-duplicate groups"
    )
    if shortlist.unpaired:
        print(f"unpaired: {len(shortlist.unpaired)} (in no pair; see README.md)")
    written = sorted(path.name for path in out.iterdir() if path.name != "plan.json")
    print(f"bundle: {out}/ ({', '.join(written)}; plan.json: the whole result)")


def _with_server(
    args: argparse.Namespace, paths: list[Path], taxonomy: Taxonomy | None
) -> tuple[str, bytes, list[str]]:
    from clipq.contracts.jobs import PlanResult

    options = {"speed": args.speed, "strategy": args.strategy}
    if taxonomy is not None:
        options["taxonomy"] = taxonomy.model_dump_json()
    if args.pairs_per_image:
        options["pairs_per_image"] = str(args.pairs_per_image)
    if args.window is not None:
        options["window"] = str(args.window)
    if args.model:
        options["model"] = args.model
    service = client(args)
    job, refused = service.plan(paths, options=options, progress=not args.quiet)
    assert isinstance(job.result, PlanResult)
    errors = [entry.error.detail or "" for entry in refused if entry.error]
    return job.result.model_dump_json(indent=2), service.plan_bundle(job.id), errors


def _in_process(
    args: argparse.Namespace, paths: list[Path], taxonomy: Taxonomy | None
) -> tuple[str, bytes, list[str]]:
    from tqdm import tqdm

    from clipcore.plans.plan import PlanOptions, plan_paths
    from clipq.contracts.jobs import PlanResult
    from clipq.settings import get_settings

    settings = get_settings()
    taxonomy = taxonomy or load_default_taxonomy()
    options = PlanOptions(
        taxonomy=taxonomy,
        speed=Speed(args.speed),
        strategy=ShortlistStrategy(args.strategy),
        pairs_per_image=args.pairs_per_image or settings.plan_pairs_per_image,
        window=settings.plan_window if args.window is None else args.window,
        thresholds=settings.plan_thresholds,
        min_confidence=settings.scene_min_confidence,
        min_margin=settings.scene_min_margin,
    )
    with tqdm(total=len(paths), unit="img", disable=args.quiet) as bar:
        made = plan_paths(
            paths,
            options,
            model=args.model or settings.clip_model,
            device=settings.device,
            batch_size=settings.batch_size,
            max_pixels=settings.max_image_pixels,
            on_progress=lambda done: bar.update(done - bar.n),
        )
    result = PlanResult(
        **dict(made.scenes), shortlist=made.shortlist, hygiene=made.hygiene, bundle_url=""
    )
    unreadable = [
        f"{image.filename}: {'; '.join(image.reasons)}"
        for image in made.hygiene.images
        if HygieneFlag.undecodable in image.flags
    ]
    if result.summary is None:
        raise InvalidInput("fewer than two images could be read: nothing to plan")
    archive = plan_archive(
        result.summary,
        made.shortlist,
        made.hygiene,
        model=result.model,
        taxonomy=taxonomy,
        speed=options.speed,
    )
    return result.model_dump_json(indent=2), archive, unreadable
