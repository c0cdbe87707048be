"""Cross-job batching: the images of many small jobs go through the model together.

A worker that starts a small classify or scenes job (fewer images than
``CLIPQ_BATCH_SIZE``) also *claims* other queued small jobs of either kind,
oldest first, straight from the queue's sorted set, with the same effects as
starting them (lease, attempts, ``running``); see ``CLAIM_SCRIPT`` in
:mod:`api.store`. It keeps claiming for up to ``CLIPQ_BATCH_WAIT_MS`` while
the images still fit in one model batch, but a job with nothing else queued
starts at once, so a lone job never waits. All their images are embedded in
one :func:`~clipcore.batching.embed_uploads` call (image cache, decode/forward
overlap and OOM halving included); then each job is classified against its own
labels or taxonomy and finished under its own record.

The job records stay the truth, and Celery stays the transport: a claimed
job's own message arrives later and finds it running or finished, and the
existing start guard drops it. A job cancelled meanwhile is not finished (the
finish script is guarded), and the others are not affected. If this worker
dies, the reaper re-queues every claimed job whose lease goes stale and sends
each a new message. Why not celery-batches: it buffers *messages* in the
worker, which needs a large prefetch and early acknowledgement, and would make
the message, not the job record, decide what runs together.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import torch
from celery.exceptions import SoftTimeLimitExceeded
from pydantic import ValidationError
from redis import RedisError

from api.metrics import record_finish
from api.store import WorkerStore, job_key
from clipcore.batching import BatchObserver, EmbeddingStore, Upload, embed_uploads
from clipcore.classify import cached_classifier, classify_embedded
from clipcore.clip_model import LoadedClip
from clipcore.contracts import (
    ClassifyPayload,
    ClassifyResult,
    JobKind,
    JobResult,
    JobStatus,
    Problem,
    ScenesPayload,
)
from clipcore.encode import EmbeddingCache
from clipcore.errors import ClipqError, JobTimeout
from clipcore.scene_classifier import cached_scene_embeddings, scenes_from_embedded
from clipcore.settings import Settings
from clipcore.taxonomy import load_default_taxonomy
from worker.jobs import LeaseKeeper, load_uploads, new_lease

log = logging.getLogger(__name__)

BATCHABLE = (JobKind.classify, JobKind.scenes)
POLL_SECONDS = 0.002  # between claims while gathering: a Lua call costs ~0.1 ms
Embedded = torch.Tensor | Problem


@dataclass(frozen=True)
class Models:
    """What embedding and post-processing need, loaded once per worker process."""

    clip: LoadedClip
    text_cache: EmbeddingCache
    image_cache: EmbeddingStore | None = None
    observe: BatchObserver | None = None


@dataclass
class ClaimedJob:
    job_id: str
    payload: ClassifyPayload | ScenesPayload | None = None
    uploads: list[Upload] = field(default_factory=list)
    result: JobResult | None = None
    problem: Problem | None = None


def is_small(store: WorkerStore, job_id: str, batch_size: int) -> bool:
    """Whether the job has fewer images than one model batch (and so may share one)."""
    return 0 < store.total(job_id) < batch_size


def run_batched(
    store: WorkerStore,
    job_id: str,
    settings: Settings,
    models: Callable[[], Models],
    notify: Callable[[str], None] = lambda job_id: None,
) -> JobStatus | None:
    """Run the small job ``job_id`` together with the queued small jobs this worker can claim.

    Returns the status ``job_id`` ended with (None if this delivery was skipped), like
    :func:`worker.jobs.run_job`; ``notify(id)`` runs for each job that ended here with a
    result or a failure.
    """
    lease = new_lease()
    started = store.start(job_id, lease)
    if started == -2:
        log.warning("job %s failed: its workers died too often", job_id)
        _ended(store, [job_id], notify)
        return JobStatus.failed
    if started == -3:
        log.info("job %s is held by another worker; duplicate delivery dropped", job_id)
        return None
    if started != 1:
        log.info("job %s is not runnable (cancelled, finished or expired); skipped", job_id)
        return None
    with LeaseKeeper(store, lease) as keeper:
        budget = settings.batch_size - store.total(job_id)
        ids = [job_id, *gather(store, lease, settings, budget)]
        keeper.add(ids)
        jobs = [_load(store, claimed) for claimed in ids]
        _process(jobs, settings, models)
        statuses = {}
        for job in jobs:
            statuses[job.job_id] = status = _finish(store, lease, job)
            if status != JobStatus.cancelled:  # counted at once, as clients may look now
                _ended(store, [job.job_id], notify)
    return statuses[job_id]


def gather(store: WorkerStore, lease: str, settings: Settings, budget: int) -> list[str]:
    """Claim queued small jobs for up to ``budget`` images; wait only while others are queued."""
    deadline = time.monotonic() + settings.batch_wait_ms / 1000
    claimed: list[str] = []
    while budget > 0 and len(claimed) < settings.batch_size:
        fresh = store.claim(lease, BATCHABLE, budget, most=settings.batch_size - len(claimed))
        if not fresh and not claimed:
            break  # nothing else queued: a lone job does not wait
        claimed += [job for job, _ in fresh]
        budget -= sum(images for _, images in fresh)
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
    if claimed:
        log.info("cross-job batch: %d claimed jobs share one model batch", len(claimed))
    return claimed


def _load(store: WorkerStore, job_id: str) -> ClaimedJob:
    job = ClaimedJob(job_id)
    kind = store.kind(job_id)
    try:
        model = ClassifyPayload if kind == JobKind.classify else ScenesPayload
        job.payload = model.model_validate_json(store.payload(job_id) or "")
        job.uploads = load_uploads(store, job.payload.images, scope=store.owner(job_id))
    except ValidationError:
        log.exception("job %s has an unreadable payload", job_id)
        job.problem = _internal_error()
    except ClipqError as exc:  # e.g. its uploads expired before it ran
        job.problem = exc.to_problem()
    return job


def _process(jobs: Sequence[ClaimedJob], settings: Settings, models: Callable[[], Models]) -> None:
    """Embed every job's images in one call, then give each job its own result or problem."""
    ready = [job for job in jobs if job.problem is None]
    try:
        loaded = models()
        embedded = embed_shared(loaded, [job.uploads for job in ready], settings)
    except SoftTimeLimitExceeded:
        problem = JobTimeout(f"the job ran longer than {settings.task_soft_time_limit} s")
        _fail_all(ready, problem.to_problem())
        return
    except ClipqError as exc:
        _fail_all(ready, exc.to_problem())
        return
    except Exception:
        # A bug or a broken model, not the clients' fault: record it, keep the worker alive.
        log.exception("a cross-job batch of %d jobs failed unexpectedly", len(ready))
        _fail_all(ready, _internal_error())
        return
    for job, items in zip(ready, embedded, strict=True):
        try:
            job.result = _result(loaded, job, items, settings)
        except ClipqError as exc:
            job.problem = exc.to_problem()
        except Exception:
            log.exception("job %s failed unexpectedly", job.job_id)
            job.problem = _internal_error()


def embed_shared(
    models: Models, groups: Sequence[Sequence[Upload]], settings: Settings
) -> list[list[Embedded]]:
    """Embed the uploads of several jobs together; returns each job's embeddings, in order.

    An upload that appears in several jobs of one tenant (same bytes, same filename) is
    embedded once; the filename is part of the key because an undecodable image's problem
    names it, the tenant (``cache_key``) so that sharing tells no tenant of another's upload.
    """
    unique: dict[tuple[str, str], Upload] = {}
    for uploads in groups:
        for upload in uploads:
            unique.setdefault((upload.cache_key, upload.filename), upload)
    flat = list(unique.values())
    items = embed_uploads(
        models.clip,
        flat,
        batch_size=settings.batch_size,
        max_pixels=settings.max_image_pixels,
        max_batch_pixels=settings.max_batch_pixels,
        cache=models.image_cache,
        observe=models.observe,
    )
    by_key = {(u.cache_key, u.filename): item for u, item in zip(flat, items, strict=True)}
    return [[by_key[(u.cache_key, u.filename)] for u in uploads] for uploads in groups]


def _result(
    models: Models, job: ClaimedJob, embedded: Sequence[Embedded], settings: Settings
) -> JobResult:
    payload = job.payload
    if isinstance(payload, ClassifyPayload):
        labels, template = payload.labels, payload.prompt_template
        images = classify_embedded(
            job.uploads,
            embedded,
            cached_classifier(models.text_cache, models.clip, labels, [template]),
            models.clip.logit_scale,
            labels=labels,
            top_k_labels=payload.top_k,
        )
        return ClassifyResult(model=models.clip.model_id, images=images)
    assert isinstance(payload, ScenesPayload)
    taxonomy = payload.taxonomy or load_default_taxonomy()
    return scenes_from_embedded(
        models.clip,
        job.uploads,
        embedded,
        cached_scene_embeddings(models.text_cache, models.clip, taxonomy),
        taxonomy=taxonomy,
        speed=payload.speed,
        min_confidence=settings.scene_min_confidence,
        min_margin=settings.scene_min_margin,
    )


def _finish(store: WorkerStore, lease: str, job: ClaimedJob) -> JobStatus:
    """Store the job's outcome under the lease; ``cancelled`` if it is no longer ours."""
    if job.result is not None:
        stored, status = store.succeed(job.job_id, lease, job.result), JobStatus.succeeded
    else:
        stored, status = (
            store.fail(job.job_id, lease, job.problem or _internal_error()),
            JobStatus.failed,
        )
    if not stored:
        log.info("job %s was cancelled or taken over before its result was stored", job.job_id)
        return JobStatus.cancelled
    return status


def _fail_all(jobs: Sequence[ClaimedJob], problem: Problem) -> None:
    for job in jobs:
        job.problem = problem


def _ended(store: WorkerStore, job_ids: Sequence[str], notify: Callable[[str], None]) -> None:
    """Count the ended jobs in the metrics and send the webhooks that were asked for."""
    fields = ("kind", "status", "created_at", "finished_at", "callback_url")
    pipe = store.redis.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hmget(job_key(job_id), fields)
    for job_id, values in zip(job_ids, pipe.execute(), strict=True):
        kind, status, created, finished, callback = (v.decode() if v else "" for v in values)
        if not finished:
            continue  # expired meanwhile
        try:
            latency = datetime.fromisoformat(finished) - datetime.fromisoformat(created)
            record_finish(store.redis, kind, status, latency.total_seconds())
        except RedisError:
            log.warning("could not record metrics of job %s", job_id)
        if callback:
            notify(job_id)


def _internal_error() -> Problem:
    return Problem(
        type="/problems/internal-error",
        title="Internal error",
        status=500,
        detail="the worker hit an unexpected error; it has been logged",
    )
