"""``clipq ingest --from``: a collection fed by reference (shards, folders, URLs), resumable.

The service's workers read what ``--from`` names, so a local path must be one they see
(the same host or a shared volume, under their CLIPQ_INGEST_ROOTS); it is sent absolute.
Running the same command again after an interruption skips the shards already in.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING

from tqdm import tqdm

from clipq.contracts.jobs import Job
from clipq.contracts.sources import SourceImportResult
from clipq.errors import RelayedProblem

if TYPE_CHECKING:
    from clipq.client import ClipqClient
    from clipq.contracts.collections import Collection

POLL_SECONDS = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="sources",
        action="append",
        metavar="SOURCE",
        help="read images by reference instead of uploading them (repeatable): webdataset "
        "shards ('shards/{00000..00009}.tar'), a folder or image files, or http(s) URLs; "
        "the service's workers read them",
    )
    parser.add_argument(
        "--kind",
        choices=["auto", "webdataset", "files", "urls"],
        default="auto",
        help="what --from names (auto: .tar is webdataset, http(s) is urls, else files)",
    )
    parser.add_argument("--labels-from", choices=["json", "caption", "none"], default="json")
    parser.add_argument("--no-crops", action="store_true", help="no region crops (faster)")
    parser.add_argument("--files-per-shard", type=int, default=1000)


def source_of(references: list[str], kind: str, files_per_shard: int) -> dict:
    """The request's ``source`` for what ``--from`` named."""
    if kind == "auto":
        if all(r.rstrip("}").rpartition(".")[2].startswith("tar") for r in references):
            kind = "webdataset"
        elif all(r.startswith(("http://", "https://")) for r in references):
            kind = "urls"
        else:
            kind = "files"
    named = [r if "://" in r else os.path.abspath(r) for r in references]
    if kind == "webdataset":
        return {"kind": kind, "shards": named}
    field = "paths" if kind == "files" else "urls"
    return {"kind": kind, field: named, "files_per_shard": files_per_shard}


def run_from(args: argparse.Namespace, service: ClipqClient, collection: Collection) -> int:
    request = {
        "source": source_of(args.sources, args.kind, args.files_per_shard),
        "labels": args.labels_from,
        "crops": not args.no_crops,
    }
    job = service.import_source(collection.id, request)
    with tqdm(unit="shard", disable=args.quiet, desc="import") as bar:
        while not job.status.is_final:
            time.sleep(POLL_SECONDS)
            job = _progress(service, collection.id, job, bar)
        job = _progress(service, collection.id, job, bar)
    if job.error:
        raise RelayedProblem(job.error)
    result = job.result
    assert isinstance(result, SourceImportResult)
    print(
        f"{collection.name}: {result.added} added, {result.duplicates} duplicates, "
        f"{result.failed} failed; {result.shards} shards ({result.shards_skipped} imported "
        f"before, {result.shards_failed} failed); {result.image_count} images"
    )
    if result.shards_failed:
        shown = service.import_progress(collection.id, job.id, limit=10_000)
        for shard in shown.shards:
            if shard.error:
                print(f"error: {shard.name}: {shard.error.detail}", file=sys.stderr)
    return 1 if result.shards_failed or result.failed else 0


def _progress(service: ClipqClient, collection_id: str, job: Job, bar: tqdm) -> Job:
    """The job as it is now, with the bar moved to its shards (and the samples read)."""
    shown = service.import_progress(collection_id, job.id, limit=10_000)
    bar.total = shown.total_shards or None
    bar.n = shown.job.progress.done
    bar.set_postfix(samples=sum(s.done for s in shown.shards), refresh=False)
    bar.refresh()
    return shown.job
