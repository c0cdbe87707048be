"""The job runner against a real Redis: status guards, cancellation, failures."""

from __future__ import annotations

import uuid

import pytest
import redis

from clipcore.errors import InvalidInput
from clipq.contracts.jobs import ClassifyPayload, ClassifyResult, ImageRef, JobKind, JobStatus
from clipq.contracts.sources import ShardSpec, SourceShardPayload
from clipq.store.jobs import (
    SHARDS_LEASE,
    StartOutcome,
    WorkerStore,
    job_from_record,
    job_key,
    new_record,
)
from clipq.transport import TASK_NAMES
from worker import process
from worker.jobs import run_job


@pytest.fixture
def store(redis_url: str) -> WorkerStore:
    return WorkerStore(redis.Redis.from_url(redis_url), ttl_seconds=120, lease_seconds=2)


def queued_job(store: WorkerStore) -> str:
    job_id = uuid.uuid4().hex
    payload = ClassifyPayload(
        images=[ImageRef(sha256="0" * 64, filename="a.png")],
        labels=["a"],
        prompt_template="{}",
        top_k=1,
    )
    store.redis.hset(job_key(job_id), mapping=new_record(job_id, payload, total=3))
    store.redis.expire(job_key(job_id), 120)
    return job_id


def job(store: WorkerStore, job_id: str):
    return job_from_record(store.redis.hgetall(job_key(job_id)))


def result() -> ClassifyResult:
    return ClassifyResult(model="m", images=[])


def test_success_stores_the_result(store: WorkerStore) -> None:
    job_id = queued_job(store)

    def work(payload, running):
        assert payload.labels == ["a"]
        for done in (1, 2, 3):
            running.progress(done)
            assert job(store, job_id).progress.done == done
        return result()

    assert run_job(store, job_id, ClassifyPayload.model_validate_json, work) == JobStatus.succeeded
    final = job(store, job_id)
    assert final.status == JobStatus.succeeded
    assert final.result == result()
    assert final.started_at <= final.finished_at
    assert store.redis.ttl(job_key(job_id)) > 0


def test_a_cancelled_job_is_skipped(store: WorkerStore) -> None:
    job_id = queued_job(store)
    store.redis.hset(job_key(job_id), "status", "cancelled")
    called = []
    outcome = run_job(
        store, job_id, ClassifyPayload.model_validate_json, lambda p, g: called.append(1)
    )
    assert outcome is None and not called


def test_cancellation_while_running_stops_at_the_next_progress(store: WorkerStore) -> None:
    job_id = queued_job(store)
    reached = []

    def work(payload, running):
        running.progress(1)
        store.redis.hset(job_key(job_id), "status", "cancelled")
        running.progress(2)
        reached.append("after")
        return result()

    assert run_job(store, job_id, ClassifyPayload.model_validate_json, work) == JobStatus.cancelled
    assert not reached
    assert job(store, job_id).status == JobStatus.cancelled
    assert job(store, job_id).result is None


def test_a_late_result_never_overwrites_a_cancellation(store: WorkerStore) -> None:
    job_id = queued_job(store)

    def work(payload, running):
        store.redis.hset(job_key(job_id), "status", "cancelled")
        return result()

    assert run_job(store, job_id, ClassifyPayload.model_validate_json, work) == JobStatus.cancelled
    assert job(store, job_id).result is None


def test_domain_errors_become_the_jobs_problem(store: WorkerStore) -> None:
    job_id = queued_job(store)

    def work(payload, running):
        raise InvalidInput.for_field("labels", "bad")

    assert run_job(store, job_id, ClassifyPayload.model_validate_json, work) == JobStatus.failed
    error = job(store, job_id).error
    assert (error.status, error.type, error.detail) == (
        422,
        "/problems/invalid-input",
        "labels: bad",
    )


def test_unexpected_errors_fail_the_job_without_leaking_details(store: WorkerStore) -> None:
    job_id = queued_job(store)

    def work(payload, running):
        raise RuntimeError("secret internals")

    assert run_job(store, job_id, ClassifyPayload.model_validate_json, work) == JobStatus.failed
    error = job(store, job_id).error
    assert error.status == 500 and "secret" not in (error.detail or "")


def test_progress_never_recreates_an_expired_record(store: WorkerStore) -> None:
    job_id = queued_job(store)
    store.redis.delete(job_key(job_id))
    assert store.beat(job_id, "lease", 5) is None
    assert not store.redis.exists(job_key(job_id))
    assert store.start(job_id, "lease") == -1


def test_a_fresh_lease_turns_away_a_duplicate_delivery(store: WorkerStore) -> None:
    job_id = queued_job(store)
    assert store.start(job_id, "first") == 1
    assert store.start(job_id, "second") == -3
    # Only the lease holder may record progress or a result.
    assert store.beat(job_id, "second", 1) == "lost"
    assert not store.succeed(job_id, "second", result())
    assert store.succeed(job_id, "first", result())


def test_a_stale_job_is_requeued_then_failed_after_max_attempts(store: WorkerStore) -> None:
    store.max_attempts = 2
    job_id = queued_job(store)
    assert store.start(job_id, "a") == 1
    assert store.stale_jobs() == [] and store.requeue(job_id) == 0  # lease still fresh
    store.redis.hset(job_key(job_id), "heartbeat_at", 0)  # its worker died long ago
    store.redis.zadd("clipq:jobs:running", {job_id: 0})
    assert job_id in store.stale_jobs()
    assert store.requeue(job_id) == 1
    assert job(store, job_id).status == JobStatus.queued
    assert store.start(job_id, "b") == 1 and job(store, job_id).attempts == 2
    store.redis.hset(job_key(job_id), "heartbeat_at", 0)
    assert store.requeue(job_id) == -2
    failed = job(store, job_id)
    assert failed.status == JobStatus.failed and failed.error.type == "/problems/worker-lost"


def test_a_split_job_is_answered_even_if_its_last_shards_worker_died_answering(
    store: WorkerStore,
) -> None:
    parent = queued_job(store)
    assert store.start(parent, "lease-1") == StartOutcome.started
    shard = ClassifyPayload.model_validate_json(store.payload(parent) or "")
    assert store.split(parent, "lease-1", [shard, shard]) is not None
    assert store.shard_ended(parent, 0) == 0
    # The last shard counted, then its worker died before answering the job: the shard's
    # task comes again (acks late) and must still be told to answer it.
    assert store.shard_ended(parent, 1) == 1
    assert store.shard_ended(parent, 1) == 1
    assert store.succeed(parent, SHARDS_LEASE, result())
    assert not store.succeed(parent, SHARDS_LEASE, result())  # answered once
    assert store.shard_ended(parent, 1) == -1


def test_the_reaper_sends_a_shard_out_of_attempts_once_more_so_its_import_counts_it(
    store: WorkerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard whose workers all died is failed by the reaper, and its task sent once more:
    that delivery finds it failed and counts it in its import, which would otherwise wait
    for it for ever. A plain job out of attempts is only failed."""
    store.max_attempts = 1
    parent = queued_job(store)
    assert store.start(parent, "lease-1") == StartOutcome.started
    spec = ShardSpec(name="a.tar", webdataset=True, urls=["file:///data/a.tar"])
    shard = SourceShardPayload(collection_id="c", parent=parent, shard=0, spec=spec)
    (shard_id,) = store.split(parent, "lease-1", [shard]) or []
    plain = queued_job(store)
    for job_id in (shard_id, plain):
        assert store.start(job_id, "dead-worker") == StartOutcome.started
        store.redis.hset(job_key(job_id), "heartbeat_at", 0)  # its worker died long ago
        store.redis.zadd("clipq:jobs:running", {job_id: 0})
    sent: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(process.runtime, "store", lambda: store)
    monkeypatch.setattr(
        process.app, "send_task", lambda name, args, queue: sent.append((name, args))
    )

    process.reap_stale_jobs()

    for job_id in (shard_id, plain):
        lost = job(store, job_id)
        assert lost.status == JobStatus.failed and lost.error.type == "/problems/worker-lost"
    assert sent == [(TASK_NAMES[JobKind.source_shard], [shard_id])]
    assert store.shard_ended(parent, 0) == 1  # what that delivery does: the import is answered
