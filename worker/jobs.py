"""Running one job inside a task: the part every job kind shares.

``run_job`` takes the job under a lease, keeps the lease alive from a helper
thread, hands the job's payload and a :class:`RunningJob` (progress, uploads)
to a clipcore function, and stores the outcome. The record stays the truth: a job cancelled
meanwhile stays cancelled, a duplicate delivery of a job another worker holds
is dropped, and a client's bad input ends as a ``failed`` job with a problem,
never as a crashed worker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from types import TracebackType

from celery.exceptions import SoftTimeLimitExceeded
from redis import RedisError

from api.metrics import record_finish
from api.store import WorkerStore
from clipcore.batching import Upload
from clipcore.contracts import ImageRef, JobPayload, JobResult, JobStatus, Problem
from clipcore.errors import ClipqError, JobCancelled, JobTimeout, NotFound
from clipcore.settings import get_settings

log = logging.getLogger(__name__)


def new_lease() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseKeeper:
    """Renews the lease of a worker's running jobs from one thread, every third of its lifetime.

    A job that is cancelled or taken over meanwhile is dropped; its next progress report
    (or its finish) tells the worker.
    """

    def __init__(self, store: WorkerStore, lease: str) -> None:
        self.store, self.lease = store, lease
        self._jobs: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-group", daemon=True)

    def add(self, job_ids: Sequence[str]) -> None:
        with self._lock:
            self._jobs.update(job_ids)

    def _run(self) -> None:
        while not self._stop.wait(self.store.lease_seconds / 3):
            with self._lock:
                jobs = sorted(self._jobs)
            for job_id in jobs:
                try:
                    if self.store.beat(job_id, self.lease) != JobStatus.running:
                        with self._lock:  # cancelled or taken over: it will not be finished
                            self._jobs.discard(job_id)
                except RedisError:  # Redis away for a moment; the next beat tries again
                    log.warning("lease heartbeat for job %s failed", job_id)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()


class RunningJob:
    """What a task's work gets of its job: progress reports and its uploads, as its tenant's."""

    def __init__(self, store: WorkerStore, job_id: str, lease: str, owner: str) -> None:
        self.store, self.job_id, self.lease, self.owner = store, job_id, lease, owner

    def progress(self, done: int) -> None:
        """Record progress; raise :class:`JobCancelled` as soon as the job is no longer ours."""
        status = self.store.beat(self.job_id, self.lease, done)
        if status != JobStatus.running:
            raise JobCancelled(f"job {self.job_id} is {status or 'gone'}; stopping")

    def uploads(self, images: Sequence[ImageRef]) -> list[Upload]:
        return load_uploads(self.store, images, scope=self.owner)


def load_uploads(store: WorkerStore, images: Sequence[ImageRef], *, scope: str) -> list[Upload]:
    """The bytes of a job's images; ``scope`` (its tenant) partitions the embedding cache."""
    blobs = store.blobs([image.sha256 for image in images])
    missing = [image.filename for image, blob in zip(images, blobs, strict=True) if blob is None]
    if missing:
        raise NotFound(f"the uploaded bytes of {', '.join(missing)} expired before the job ran")
    return [
        Upload(image.filename, image.sha256, blob, scope)
        for image, blob in zip(images, blobs, strict=True)
    ]


def run_job(
    store: WorkerStore,
    job_id: str,
    parse: Callable[[str], JobPayload],
    work: Callable[[JobPayload, RunningJob], JobResult],
    notify: Callable[[str], None] = lambda job_id: None,
) -> JobStatus | None:
    """Run ``work`` for the job ``job_id``; returns the status it ended with (None if skipped).

    ``notify(job_id)`` runs once the job has ended here with a result or a failure.
    """
    status = _run(store, job_id, parse, work)
    if status in (JobStatus.succeeded, JobStatus.failed):
        _count_finished(store, job_id)
        if store.callback_url(job_id):
            notify(job_id)
    return status


def _count_finished(store: WorkerStore, job_id: str) -> None:
    job = store.job(job_id)
    if job is None or job.finished_at is None:
        return
    latency = (job.finished_at - job.created_at).total_seconds()
    try:
        record_finish(store.redis, str(job.kind), str(job.status), latency)
    except RedisError:
        log.warning("could not record metrics of job %s", job_id)


def _run(
    store: WorkerStore,
    job_id: str,
    parse: Callable[[str], JobPayload],
    work: Callable[[JobPayload, RunningJob], JobResult],
) -> JobStatus | None:
    lease = new_lease()
    started = store.start(job_id, lease)
    if started == -2:
        log.warning("job %s failed: its workers died too often", job_id)
        return JobStatus.failed
    if started == -3:
        log.info("job %s is held by another worker; duplicate delivery dropped", job_id)
        return None
    if started != 1:
        log.info("job %s is not runnable (cancelled, finished or expired); skipped", job_id)
        return None
    with LeaseKeeper(store, lease) as keeper:
        keeper.add([job_id])
        try:
            payload = parse(store.payload(job_id) or "")
            result = work(payload, RunningJob(store, job_id, lease, store.owner(job_id)))
        except JobCancelled:
            log.info("job %s stopped: cancelled or taken over", job_id)
            return JobStatus.cancelled
        except SoftTimeLimitExceeded:
            limit = get_settings().task_soft_time_limit
            store.fail(job_id, lease, JobTimeout(f"the job ran longer than {limit} s").to_problem())
            return JobStatus.failed
        except ClipqError as exc:
            store.fail(job_id, lease, exc.to_problem())
            return JobStatus.failed
        except Exception:
            # A bug or a broken model, not the client's fault: record it, keep the worker alive.
            log.exception("job %s failed unexpectedly", job_id)
            problem = Problem(
                type="/problems/internal-error",
                title="Internal error",
                status=500,
                detail="the worker hit an unexpected error; it has been logged",
            )
            store.fail(job_id, lease, problem)
            return JobStatus.failed
        if not store.succeed(job_id, lease, result):
            log.info("job %s was cancelled or taken over before its result was stored", job_id)
            return JobStatus.cancelled
    return JobStatus.succeeded
