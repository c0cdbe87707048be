"""Running one job inside a task: the part every job kind shares.

``run_job`` moves the record to ``running``, hands the job's uploads and a
progress callback to a clipcore function, and stores the outcome. The record
stays the truth: a job cancelled meanwhile stays cancelled, and a client's bad
input ends as a ``failed`` job with a problem, never as a crashed worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from celery.exceptions import SoftTimeLimitExceeded

from api.store import WorkerStore
from clipcore.batching import Upload
from clipcore.contracts import ImageRef, JobPayload, JobResult, JobStatus, Problem
from clipcore.errors import ClipqError, JobCancelled, JobTimeout, NotFound
from clipcore.settings import get_settings

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int], None]


def progress_reporter(store: WorkerStore, job_id: str) -> ProgressCallback:
    """Record progress; raise :class:`JobCancelled` as soon as the record says so."""

    def report(done: int) -> None:
        if store.progress(job_id, done) != JobStatus.running:
            raise JobCancelled(f"job {job_id} was cancelled")

    return report


def load_uploads(store: WorkerStore, images: Sequence[ImageRef]) -> list[Upload]:
    blobs = store.blobs([image.sha256 for image in images])
    missing = [image.filename for image, blob in zip(images, blobs, strict=True) if blob is None]
    if missing:
        raise NotFound(f"the uploaded bytes of {', '.join(missing)} expired before the job ran")
    return [
        Upload(image.filename, image.sha256, blob)
        for image, blob in zip(images, blobs, strict=True)
    ]


def run_job(
    store: WorkerStore,
    job_id: str,
    parse: Callable[[str], JobPayload],
    work: Callable[[JobPayload, ProgressCallback], JobResult],
) -> JobStatus | None:
    """Run ``work`` for the job ``job_id``; returns the status it ended with (None if skipped)."""
    if store.start(job_id) != 1:
        log.info("job %s is not runnable (cancelled, finished or expired); skipped", job_id)
        return None
    try:
        payload = parse(store.payload(job_id) or "")
        result = work(payload, progress_reporter(store, job_id))
    except JobCancelled:
        log.info("job %s cancelled while running", job_id)
        return JobStatus.cancelled
    except SoftTimeLimitExceeded:
        limit = get_settings().task_soft_time_limit
        store.fail(job_id, JobTimeout(f"the job ran longer than {limit} s").to_problem())
        return JobStatus.failed
    except ClipqError as exc:
        store.fail(job_id, exc.to_problem())
        return JobStatus.failed
    except Exception:
        # A bug or a broken model, not the client's fault: record it and keep the worker alive.
        log.exception("job %s failed unexpectedly", job_id)
        problem = Problem(
            type="/problems/internal-error",
            title="Internal error",
            status=500,
            detail="the worker hit an unexpected error; it has been logged",
        )
        store.fail(job_id, problem)
        return JobStatus.failed
    if not store.succeed(job_id, result):
        log.info("job %s was cancelled before its result was stored", job_id)
        return JobStatus.cancelled
    return JobStatus.succeeded
