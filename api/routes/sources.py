"""Imports by reference: a collection fed from webdataset shards, image files or URLs that
the workers read where the data is (``POST /v1/collections/{id}/imports``).

The request names the images; no byte of them passes through the API or Redis. The API
checks every reference against what this deployment reads (``CLIPQ_INGEST_ROOTS``,
``CLIPQ_INGEST_SCHEMES``: a 422 naming the field) and queues one job, which a worker splits
into shard jobs that any number of workers take (:mod:`worker.sources`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.auth import OwnerDep
from api.deps import CollectionsDep, SettingsDep, StoreDep
from api.jobs import SubmitterDep, accepted
from api.openapi import problems
from api.routes.collections import existing
from clipcore.errors import InvalidInput
from clipq.contracts.jobs import Job, JobKind
from clipq.contracts.source_progress import ShardProgress, SourceImportProgress
from clipq.contracts.sources import (
    ImportSource,
    SourceImportPayload,
    SourceImportRequest,
    SourceKind,
    SourceShardResult,
)
from clipq.errors import NotFound
from clipq.settings import Settings
from clipq.sources import checked_reference, expand_braces

router = APIRouter(prefix="/v1/collections", tags=["collections"])
MAX_SHARDS_PAGE = 10_000


@router.post(
    "/{collection_id}/imports",
    status_code=202,
    response_model=Job,
    responses=problems(400, 401, 404, 415, 422, 429, 503),
)
async def import_from_source(
    collection_id: str,
    body: SourceImportRequest,
    response: Response,
    submitter: SubmitterDep,
    settings: SettingsDep,
    collections: CollectionsDep,
) -> Job:
    """Import images by reference: webdataset tar shards (img2dataset's layout, brace
    patterns expanded), image files or folders, or URLs, read by the workers through fsspec.
    Each shard is a job of its own that any worker takes; captions (.txt) and metadata
    (.json) become the images' metadata (and labels, as ``labels`` says). Shards imported
    before are skipped, and images already in the collection (by SHA-256) are not added
    again, so the same request sent again finishes an interrupted import. The job's
    progress counts shards; ``GET .../imports/{job_id}`` gives each shard's."""
    collection = await existing(collections, collection_id, submitter.owner)
    callback = await submitter.callback(body.callback_url)
    check_references(body.source, settings)
    payload = SourceImportPayload(
        collection_id=collection_id, source=body.source, labels=body.labels, crops=body.crops
    )
    job = await submitter.submit(payload, [], 0, callback, model=collection.model)
    return accepted(response, job)


def check_references(source: ImportSource, settings: Settings) -> None:
    """Every reference the source names, as this deployment would read it (a 422 naming the
    first it refuses); brace patterns are expanded, and bounded by CLIPQ_INGEST_MAX_SHARDS."""
    limit = settings.ingest_max_shards
    if source.kind == SourceKind.webdataset:
        count = 0
        for index, pattern in enumerate(source.shards):
            field = f"source.shards[{index}]"
            try:
                names = expand_braces(pattern, limit)
            except ValueError as exc:
                raise InvalidInput.for_field(field, str(exc)) from None
            count += len(names)
            if count > limit:
                raise InvalidInput.for_field(
                    field, f"more than {limit} shards in all (CLIPQ_INGEST_MAX_SHARDS)"
                )
            for name in names:
                checked_reference(name, field, settings)
        return
    named, what = (
        (source.paths, "paths") if source.kind == SourceKind.files else (source.urls, "urls")
    )
    for index, reference in enumerate(named):
        checked_reference(reference, f"source.{what}[{index}]", settings)


@router.get(
    "/{collection_id}/imports/{job_id}",
    response_model=SourceImportProgress,
    responses=problems(401, 404, 422),
)
async def import_progress(
    collection_id: str,
    job_id: str,
    collections: CollectionsDep,
    store: StoreDep,
    owner: OwnerDep,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_SHARDS_PAGE)] = 1000,
) -> SourceImportProgress:
    """An import's status and each of its shards' (``offset``/``limit`` page them): samples
    read so far, attempts (a shard redone after its worker died has two), result or error."""
    await existing(collections, collection_id, owner)
    job = await store.get_job(job_id, owner)
    payload = await store.payload(job_id) if job is not None else None
    if job is None or job.kind != JobKind.source_import or payload is None:
        raise NotFound(f"no import {job_id!r}")
    if SourceImportPayload.model_validate_json(payload).collection_id != collection_id:
        raise NotFound(f"no import {job_id!r} into collection {collection_id!r}")
    total, found = await store.shard_jobs(job_id, offset, limit)
    shards = []
    for number, entry in enumerate(found, start=offset):
        if entry is None:
            continue  # expired
        name, shard = entry
        result = shard.result if isinstance(shard.result, SourceShardResult) else None
        shards.append(
            ShardProgress(
                shard=number,
                name=name,
                job_id=shard.id,
                status=shard.status,
                done=result.read if result else shard.progress.done,
                attempts=shard.attempts,
                result=result,
                error=shard.error,
            )
        )
    return SourceImportProgress(
        job=job, collection_id=collection_id, total_shards=total, shards=shards
    )
