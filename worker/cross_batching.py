"""Cross-job batching: the images of many small jobs go through the model together.

A worker that starts a small classify or scenes job (fewer images than
``CLIPQ_BATCH_SIZE``) also *claims* other queued small jobs of either kind,
oldest first, straight from the queue's sorted set, with the same effects as
starting them (lease, attempts, ``running``); see ``clipq/store/lua/claim.lua``.
It keeps claiming for up to ``CLIPQ_BATCH_WAIT_MS`` while
the images still fit in one model batch, but a job with nothing else queued
starts at once, so a lone job never waits. All their images are embedded in
one :func:`~clipcore.batching.embed_uploads` call (image cache, decode/forward
overlap and OOM halving included); then each job is classified against its own
labels or taxonomy and finished under its own record, through the same lifecycle as
a job alone (:func:`worker.jobs.run_unit`).

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
from dataclasses import dataclass

import torch

from clipcore.batching import BatchObserver, EmbeddingStore, Upload, embed_uploads
from clipcore.classify import cached_classifier, classify_embedded
from clipcore.clip_model import LoadedClip
from clipcore.encode import EmbeddingCache
from clipcore.problem import Problem
from clipcore.scene_classifier import cached_scene_embeddings, scenes_from_embedded
from clipcore.taxonomy import load_default_taxonomy
from clipq.contracts.jobs import (
    ClassifyPayload,
    ClassifyResult,
    JobKind,
    JobPayload,
    JobResult,
    JobStatus,
    ScenesPayload,
    ScenesResult,
)
from clipq.settings import Settings
from clipq.store.jobs import WorkerStore
from worker.jobs import Unit, run_unit, settling

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

    The lifecycle is :func:`worker.jobs.run_unit`'s, as for a job alone; ``notify(id)`` runs
    for each job that ended here with a result or a failure.
    """

    def claim(lease: str) -> list[str]:
        return gather(store, lease, settings, settings.batch_size - store.total(job_id))

    return run_unit(
        store,
        job_id,
        lambda units: process(units, settings, models),
        claim=claim,
        notify=notify,
    )


def gather(store: WorkerStore, lease: str, settings: Settings, budget: int) -> list[str]:
    """Claim queued small jobs for up to ``budget`` images; wait only while others are queued."""
    deadline = time.monotonic() + settings.batch_wait_ms / 1000
    claimed: list[str] = []
    while budget > 0 and len(claimed) < settings.batch_size:
        fresh = store.claim(
            lease,
            BATCHABLE,
            budget,
            most=settings.batch_size - len(claimed),
            model=settings.clip_model,
        )
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


def process(units: Sequence[Unit], settings: Settings, models: Callable[[], Models]) -> None:
    """Embed every job's images in one call, then give each job its own result or problem."""
    uploads: dict[str, list[Upload]] = {}
    for unit in units:
        with settling([unit], f"job {unit.job.job_id}"):  # e.g. its uploads expired
            assert isinstance(unit.payload, ClassifyPayload | ScenesPayload)
            uploads[unit.job.job_id] = unit.job.uploads(unit.payload.images)
    ready = [unit for unit in units if unit.pending]
    loaded = models()
    embedded = embed_shared(loaded, [uploads[unit.job.job_id] for unit in ready], settings)
    for unit, items in zip(ready, embedded, strict=True):
        with settling([unit], f"job {unit.job.job_id}"):
            unit.result = _result(loaded, unit.payload, uploads[unit.job.job_id], items, settings)


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
    models: Models,
    payload: JobPayload | None,
    uploads: Sequence[Upload],
    embedded: Sequence[Embedded],
    settings: Settings,
) -> JobResult:
    if isinstance(payload, ClassifyPayload):
        labels, template = payload.labels, payload.prompt_template
        images = classify_embedded(
            uploads,
            embedded,
            cached_classifier(models.text_cache, models.clip, labels, [template]),
            models.clip.scoring,
            labels=labels,
            top_k_labels=payload.top_k,
            domain=models.clip.domain,
        )
        return ClassifyResult(model=models.clip.model_id, images=images)
    assert isinstance(payload, ScenesPayload)
    taxonomy = payload.taxonomy or load_default_taxonomy()
    batch = scenes_from_embedded(
        models.clip,
        uploads,
        embedded,
        cached_scene_embeddings(models.text_cache, models.clip, taxonomy),
        taxonomy=taxonomy,
        speed=payload.speed,
        min_confidence=settings.scene_min_confidence,
        min_margin=settings.scene_min_margin,
    )
    return ScenesResult.of(batch)
