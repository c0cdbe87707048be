"""Celery tasks: a few lines each — load inputs by id, call clipcore, store the result."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from clipcore.classify import classify_uploads
from clipcore.scene_classifier import classify_scene_uploads
from clipcore.taxonomy import load_default_taxonomy
from clipq.contracts.collections import (
    EvaluatePayload,
    EvaluateResult,
    ImageRef,
    ImportPayload,
    ImportResult,
    IngestPayload,
    IngestResult,
    SearchPayload,
    SearchResult,
)
from clipq.contracts.jobs import (
    ClassifyPayload,
    ClassifyResult,
    JobKind,
    JobStatus,
    PlanPayload,
    PlanResult,
    ScenesPayload,
    ScenesResult,
)
from clipq.contracts.sources import SourceImportPayload, SourceShardPayload, SourceShardResult
from clipq.errors import NotFound
from clipq.settings import get_settings
from clipq.transport import (
    INDEX_TASK,
    SEARCH_SHARD_TASK,
    TASK_NAMES,
    WEBHOOK_QUEUE,
    WEBHOOK_TASK,
    shard_queue,
)
from worker import collections, cross_batching, imports, plans, runtime, sources
from worker import search as searches
from worker.celery_app import MODEL_QUEUE, app
from worker.jobs import RunningJob, load_uploads, run_job, run_split


def _notify(job_id: str) -> None:
    """Have the delivery worker (:mod:`worker.webhooks`) send the job's webhook."""
    app.send_task(WEBHOOK_TASK, args=[job_id], queue=WEBHOOK_QUEUE)


def _run_job(
    job_id: str, parse: Callable[[str], Any], work: Callable[..., Any]
) -> JobStatus | None:
    return run_job(runtime.store(), job_id, parse, work, notify=_notify)


def _models() -> cross_batching.Models:
    return cross_batching.Models(
        runtime.clip(), runtime.text_cache(), runtime.image_cache(), runtime.observe_batch
    )


def _is_small(job_id: str) -> bool:
    return cross_batching.is_small(runtime.store(), job_id, get_settings().batch_size)


def _run_batched(job_id: str) -> JobStatus | None:
    """A job smaller than one model batch runs with the small jobs queued behind it."""
    return cross_batching.run_batched(
        runtime.store(), job_id, get_settings(), _models, notify=_notify
    )


@app.task(name=TASK_NAMES[JobKind.classify])
def classify(job_id: str) -> str | None:
    if _is_small(job_id):
        return _run_batched(job_id)

    def work(payload: ClassifyPayload, job: RunningJob) -> ClassifyResult:
        settings = get_settings()
        clip = runtime.clip()
        images = classify_uploads(
            clip,
            runtime.text_cache(),
            job.uploads(payload.images),
            labels=payload.labels,
            prompt_template=payload.prompt_template,
            top_k_labels=payload.top_k,
            batch_size=settings.batch_size,
            max_pixels=settings.max_image_pixels,
            max_batch_pixels=settings.max_batch_pixels,
            on_progress=job.progress,
            image_cache=runtime.image_cache(),
            observe=runtime.observe_batch,
        )
        return ClassifyResult(model=clip.model_id, images=images)

    return _run_job(job_id, ClassifyPayload.model_validate_json, work)


@app.task(name=TASK_NAMES[JobKind.scenes])
def scenes(job_id: str) -> str | None:
    if _is_small(job_id):
        return _run_batched(job_id)

    def work(payload: ScenesPayload, job: RunningJob) -> ScenesResult:
        settings = get_settings()
        batch = classify_scene_uploads(
            runtime.clip(),
            runtime.text_cache(),
            job.uploads(payload.images),
            taxonomy=payload.taxonomy or load_default_taxonomy(),
            speed=payload.speed,
            min_confidence=settings.scene_min_confidence,
            min_margin=settings.scene_min_margin,
            batch_size=settings.batch_size,
            max_pixels=settings.max_image_pixels,
            max_batch_pixels=settings.max_batch_pixels,
            on_progress=job.progress,
            image_cache=runtime.image_cache(),
            observe=runtime.observe_batch,
        )
        return ScenesResult.of(batch)

    return _run_job(job_id, ScenesPayload.model_validate_json, work)


@app.task(name=TASK_NAMES[JobKind.plan])
def plan(job_id: str) -> str | None:
    def work(payload: PlanPayload, job: RunningJob) -> PlanResult:
        return plans.plan(
            job.job_id,
            payload,
            runtime.clip(),
            runtime.text_cache(),
            job.uploads,
            runtime.collections,
            job.progress,
            get_settings(),
            image_cache=runtime.image_cache(),
            observe=runtime.observe_batch,
        )

    return _run_job(job_id, PlanPayload.model_validate_json, work)


@app.task(name=TASK_NAMES[JobKind.ingest])
def ingest(job_id: str) -> str | None:
    def work(payload: IngestPayload, job: RunningJob) -> IngestResult:
        return collections.ingest(
            runtime.collections(),
            runtime.clip(),
            runtime.detector(),
            payload,
            job.uploads,
            job.progress,
            get_settings(),
        )

    return _run_job(job_id, IngestPayload.model_validate_json, work)


@app.task(name=TASK_NAMES[JobKind.bulk_import])
def bulk_import(job_id: str) -> str | None:
    def work(payload: ImportPayload, job: RunningJob) -> ImportResult:
        result = imports.import_part(
            runtime.collections(),
            payload,
            lambda refs: [upload.data for upload in job.uploads(refs)],
            runtime.clip().embedding_dim,
            job.progress,
            get_settings(),
        )
        # The part is in the collection (or was already): its bytes are of no more use.
        refs = [payload.embeddings, *([payload.metadata] if payload.metadata else [])]
        runtime.store().drop_blobs([ref.sha256 for ref in refs])
        quiet = get_settings().index_after_import_s
        if (
            quiet
            and result.imported
            and runtime.collections().mark_imported(payload.collection_id, time.time())
        ):
            index.apply_async((payload.collection_id,), countdown=quiet, queue=MODEL_QUEUE)
        return result

    return _run_job(job_id, ImportPayload.model_validate_json, work)


@app.task(name=TASK_NAMES[JobKind.source_import])
def source_import(job_id: str) -> str | None:
    """Split an import by reference into shard jobs, queued for this model's workers."""

    def work(payload: SourceImportPayload, job: RunningJob) -> list[SourceShardPayload]:
        specs = sources.split(payload, runtime.source_reader(), get_settings())
        return sources.shard_payloads(job.job_id, payload, specs)

    def enqueue(ids: list[str]) -> None:
        for shard_id in ids:
            source_shard.apply_async((shard_id,), queue=MODEL_QUEUE)

    return run_split(
        runtime.store(), job_id, SourceImportPayload.model_validate_json, work, enqueue, _notify
    )


@app.task(name=TASK_NAMES[JobKind.source_shard])
def source_shard(job_id: str) -> str | None:
    """Stream one shard into its collection; the last shard to end answers the import."""
    store = runtime.store()

    def work(payload: SourceShardPayload, job: RunningJob) -> SourceShardResult:
        progress = sources.shard_progress(store, job, payload.parent)
        progress(0)  # an import cancelled while this waited: stop before reading
        return sources.import_shard(
            runtime.collections(),
            runtime.clip(),
            runtime.detector(),
            payload,
            runtime.source_reader(),
            job.owner,
            progress,
            get_settings(),
        )

    status = _run_job(job_id, SourceShardPayload.model_validate_json, work)
    sources.shard_ended(store, runtime.collections(), job_id, _notify)
    return status


# Not a job: an index that is not built here now is built by the next search. Acknowledged
# when it starts, since a 10 M-image build can outlast the broker's visibility timeout.
@app.task(name=INDEX_TASK, acks_late=False, soft_time_limit=3600, time_limit=3660)
def index(collection_id: str, shard: int | None = None) -> None:
    """Once imports into a collection have been quiet for CLIPQ_INDEX_AFTER_IMPORT_S, bring
    this worker's index of it up to date (sharded: each shard's worker its own)."""
    settings = get_settings()
    if shard is None:
        wait = runtime.collections().index_due_in(
            collection_id, settings.index_after_import_s, time.time()
        )
        if wait:
            index.apply_async((collection_id,), countdown=wait, queue=MODEL_QUEUE)
            return
        if settings.shards > 1:
            for number in range(settings.shards):
                index.apply_async((collection_id, number), queue=shard_queue(number))
            return
    with suppress(NotFound):  # deleted since
        runtime.indexes().get(collection_id)


@app.task(name=TASK_NAMES[JobKind.search])
def search(job_id: str) -> str | None:
    def work(payload: SearchPayload, job: RunningJob) -> SearchResult:
        settings = get_settings()

        def embed_upload(image: ImageRef):
            return collections.embed_query_image(
                runtime.clip(), job.uploads([image]), settings, runtime.image_cache()
            )

        result = searches.search(
            runtime.collections(),
            runtime.indexes(),
            runtime.clip(),
            runtime.text_cache(),
            payload,
            settings,
            embed_upload,
        )
        job.progress(1)
        return result

    return _run_job(job_id, SearchPayload.model_validate_json, work)


@app.task(name=SEARCH_SHARD_TASK)
def search_shard(job_id: str, shard: int) -> str | None:
    """One shard's part of a search; the last part to arrive answers the job."""
    settings, store = get_settings(), runtime.store()

    def compute(payload: SearchPayload) -> searches.SearchPart:
        def embed_upload(image: ImageRef):
            uploads = load_uploads(store, [image], scope=store.owner(job_id))
            return collections.embed_query_image(
                runtime.clip(), uploads, settings, runtime.image_cache()
            )

        indexes = runtime.indexes()
        return searches.search_part(
            indexes.store,
            indexes,
            runtime.clip(),
            runtime.text_cache(),
            payload,
            settings,
            embed_upload,
        )

    def finish() -> JobStatus | None:
        def work(payload: SearchPayload, job: RunningJob) -> SearchResult:
            return searches.answer_parts(runtime.collections(), payload, store.parts(job_id))

        return _run_job(job_id, SearchPayload.model_validate_json, work)

    return searches.run_shard(store, job_id, shard, settings.shards, compute, finish)


@app.task(name=TASK_NAMES[JobKind.evaluate])
def evaluate(job_id: str) -> str | None:
    def work(payload: EvaluatePayload, job: RunningJob) -> EvaluateResult:
        return collections.evaluate(
            runtime.collections(),
            runtime.indexes(),
            runtime.clip(),
            payload,
            job.progress,
            get_settings(),
        )

    return _run_job(job_id, EvaluatePayload.model_validate_json, work)
