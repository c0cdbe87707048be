"""One lifecycle for every unit of work a worker does: a single job is a batch of one.

:func:`run_unit` takes the job a task was sent under a lease (:class:`StartOutcome` says
whether to run it), optionally claims others to run with it (cross-job batching), keeps
every lease alive from one thread, parses each payload, lets ``work`` give each
:class:`Unit` its result or problem, stores each outcome under the lease, and then counts
and announces (webhook) every job that ended here. The record stays the truth: a job
cancelled meanwhile stays cancelled, a duplicate delivery of a job another worker holds is
dropped, and a client's bad input ends as a ``failed`` job with a problem, never as a
crashed worker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

from celery.exceptions import SoftTimeLimitExceeded
from pydantic import ValidationError
from redis import RedisError

from clipcore.batching import Upload
from clipcore.errors import ClipqError
from clipcore.problem import Problem
from clipq.contracts.collections import IngestItem
from clipq.contracts.jobs import (
    ImageRef,
    JobPayload,
    JobResult,
    JobStatus,
    payload_from_json,
)
from clipq.errors import JobCancelled, JobTimeout, NotFound, internal_error
from clipq.metrics import record_finish
from clipq.settings import get_settings
from clipq.store.jobs import StartOutcome, WorkerStore, job_key

log = logging.getLogger(__name__)

Notify = Callable[[str], None]


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

    def uploads(self, images: Sequence[ImageRef | IngestItem]) -> list[Upload]:
        return load_uploads(self.store, images, scope=self.owner)


def load_uploads(
    store: WorkerStore, images: Sequence[ImageRef | IngestItem], *, scope: str
) -> list[Upload]:
    """The bytes of a job's images; ``scope`` (its tenant) partitions the embedding cache."""
    blobs = store.blobs([image.sha256 for image in images])
    missing = [image.filename for image, blob in zip(images, blobs, strict=True) if blob is None]
    if missing:
        raise NotFound(f"the uploaded bytes of {', '.join(missing)} expired before the job ran")
    return [
        Upload(image.filename, image.sha256, blob, scope)
        for image, blob in zip(images, blobs, strict=True)
        if blob is not None
    ]


@dataclass
class Unit:
    """One job of a unit of work, and what became of it."""

    job: RunningJob
    payload: JobPayload | None = None
    result: JobResult | None = None
    problem: Problem | None = None
    cancelled: bool = False

    @property
    def pending(self) -> bool:
        return self.result is None and self.problem is None and not self.cancelled


@contextmanager
def settling(units: Sequence[Unit], what: str) -> Iterator[None]:
    """Whatever stops the work inside gives every pending unit its outcome: a cancellation,
    a timeout, the client's problem, or (a bug, logged) an internal error."""
    try:
        yield
    except JobCancelled:
        log.info("%s stopped: cancelled or taken over", what)
        for unit in units:
            if unit.pending:
                unit.cancelled = True
    except SoftTimeLimitExceeded:
        limit = get_settings().task_soft_time_limit
        _fail_pending(units, JobTimeout(f"the job ran longer than {limit} s").to_problem())
    except ClipqError as exc:
        _fail_pending(units, exc.to_problem())
    except Exception:
        # A bug or a broken model, not the client's fault: record it, keep the worker alive.
        log.exception("%s failed unexpectedly", what)
        _fail_pending(units, internal_error())


def _fail_pending(units: Sequence[Unit], problem: Problem) -> None:
    for unit in units:
        if unit.pending:
            unit.problem = problem


def run_unit(
    store: WorkerStore,
    job_id: str,
    work: Callable[[list[Unit]], None],
    *,
    claim: Callable[[str], list[str]] | None = None,
    parse: Callable[[str], JobPayload] = payload_from_json,
    notify: Notify = lambda job_id: None,
) -> JobStatus | None:
    """Run the job ``job_id`` (with the jobs ``claim(lease)`` takes beside it); returns the
    status ``job_id`` ended with, None if this delivery was skipped. ``work`` sets each unit's
    result or problem; what it raises settles every unit it left pending."""
    lease = new_lease()
    started = store.start(job_id, lease)
    if started == StartOutcome.out_of_attempts:
        log.warning("job %s failed: its workers died too often", job_id)
        ended(store, [job_id], notify)
        return JobStatus.failed
    if started == StartOutcome.held_elsewhere:
        log.info("job %s is held by another worker; duplicate delivery dropped", job_id)
        return None
    if started != StartOutcome.started:
        log.info("job %s is not runnable (cancelled, finished or expired); skipped", job_id)
        return None
    with LeaseKeeper(store, lease) as keeper:
        ids = [job_id, *(claim(lease) if claim else [])]
        keeper.add(ids)
        units = [Unit(RunningJob(store, id_, lease, store.owner(id_))) for id_ in ids]
        for unit in units:
            _parse(store, unit, parse)
        with settling(units, f"job {job_id}" if len(units) == 1 else f"a batch of {len(units)}"):
            work([unit for unit in units if unit.pending])
        statuses = {unit.job.job_id: _finish(store, lease, unit) for unit in units}
    ended(store, [id_ for id_, status in statuses.items() if status != JobStatus.cancelled], notify)
    return statuses[job_id]


def run_split(
    store: WorkerStore,
    job_id: str,
    parse: Callable[[str], JobPayload],
    split: Callable[..., Sequence[JobPayload]],  # (its payload, the RunningJob)
    enqueue: Callable[[list[str]], None],
    notify: Notify = lambda job_id: None,
) -> JobStatus | None:
    """Run a job that ``split`` divides into shard jobs: under the job's lease the shard jobs
    are made (:meth:`WorkerStore.split`) and handed to ``enqueue``; the job stays running,
    answered by its last shard to end. A split that fails (a bad reference) fails the job;
    a worker that dies while splitting leaves the job to the reaper, and the split made
    again keeps the shard jobs made before."""
    lease = new_lease()
    started = store.start(job_id, lease)
    if started != StartOutcome.started:
        if started == StartOutcome.out_of_attempts:
            ended(store, [job_id], notify)
            return JobStatus.failed
        return None
    with LeaseKeeper(store, lease) as keeper:
        keeper.add([job_id])
        unit = Unit(RunningJob(store, job_id, lease, store.owner(job_id)))
        _parse(store, unit, parse)
        shards: Sequence[JobPayload] = []
        with settling([unit], f"job {job_id}"):
            if unit.payload is not None:
                shards = split(unit.payload, unit.job)
        if unit.pending:
            ids = store.split(job_id, lease, shards)
            if ids is None:
                return JobStatus.cancelled
            enqueue(ids)
            return JobStatus.running
        status = _finish(store, lease, unit)
    if status != JobStatus.cancelled:
        ended(store, [job_id], notify)
    return status


def run_job(
    store: WorkerStore,
    job_id: str,
    parse: Callable[[str], JobPayload],
    work: Callable[[JobPayload, RunningJob], JobResult],
    notify: Notify = lambda job_id: None,
) -> JobStatus | None:
    """Run one job on its own: :func:`run_unit` with a unit of one.

    ``parse`` checks that the payload is of the task's kind; ``work`` returns its result.
    """

    def one(units: list[Unit]) -> None:
        for unit in units:
            assert unit.payload is not None  # pending units have one
            unit.result = work(unit.payload, unit.job)

    return run_unit(store, job_id, one, parse=parse, notify=notify)


def _parse(store: WorkerStore, unit: Unit, parse: Callable[[str], JobPayload]) -> None:
    try:
        unit.payload = parse(store.payload(unit.job.job_id) or "")
    except ValidationError:
        log.exception("job %s has an unreadable payload", unit.job.job_id)
        unit.problem = internal_error()


def _finish(store: WorkerStore, lease: str, unit: Unit) -> JobStatus:
    """Store the unit's outcome under the lease; ``cancelled`` if the job is no longer ours."""
    job_id = unit.job.job_id
    if unit.cancelled:
        return JobStatus.cancelled
    if unit.result is not None:
        stored, status = store.succeed(job_id, lease, unit.result), JobStatus.succeeded
    else:
        problem = unit.problem or internal_error()
        stored, status = store.fail(job_id, lease, problem), JobStatus.failed
    if not stored:
        log.info("job %s was cancelled or taken over before its result was stored", job_id)
        return JobStatus.cancelled
    return status


def ended(store: WorkerStore, job_ids: Sequence[str], notify: Notify) -> None:
    """Count the jobs that ended here in the metrics, and send the webhooks asked for."""
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
