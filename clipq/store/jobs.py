"""Redis records of jobs and uploads: the truth about every job.

The API writes new jobs and reads them back; workers move them through
``running`` to a final status. Every status change is a small Lua script, so
that it is atomic and guarded:

* a worker runs a job under a *lease* (an id of its own) that it renews with a
  heartbeat; only the lease holder may record progress or the result, so a
  worker that was presumed dead can never overwrite what its successor wrote,
  and a cancellation is never overwritten;
* a job whose lease goes stale (its worker died) is re-queued by any worker's
  reaper, up to ``max_attempts`` starts, then failed with a clear problem;
* nothing writes to a record that has expired (a plain HSET would re-create it
  without a TTL).

Keys: ``clipq:job:{id}`` (hash), ``clipq:blob:{sha256}`` (upload bytes),
``clipq:jobs:queued`` and ``clipq:jobs:running`` (sorted sets: queue depth and
the reaper's view), ``clipq:tenant:{owner}:jobs`` (sorted set: the tenant's
unfinished jobs, for its quota), ``clipq:idem:{owner}:{key}`` (idempotency
keys), ``clipq:workers`` (sorted set: last heartbeat of each worker) and
``clipq:worker:{hostname}`` (what the worker runs). No hot path scans the keyspace.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from enum import IntEnum
from importlib import resources
from typing import Any

import redis
import redis.asyncio as aioredis
from pydantic import BaseModel, ValidationError
from redis.typing import EncodableT, FieldT

from clipcore.model_card import ModelDescription
from clipcore.model_names import model_key
from clipcore.problem import Problem
from clipq.contracts.jobs import (
    Job,
    JobKind,
    JobPayload,
    JobResult,
    JobStatus,
    Progress,
    result_from_json,
)
from clipq.contracts.models import ServedModel
from clipq.store.collections import TENANT_PREFIX, tenant_key
from clipq.store.events import RECHECK_SECONDS, JobEvents, events_channel

PREFIX = "clipq"
ScriptArg = EncodableT  # what a Lua script's ARGV takes
QUEUED_KEY = f"{PREFIX}:jobs:queued"
RUNNING_KEY = f"{PREFIX}:jobs:running"
WORKERS_KEY = f"{PREFIX}:workers"
WORKER_HEARTBEAT_SECONDS = 5
WORKER_HEARTBEAT_TTL = 15


def job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def blob_key(sha256: str) -> str:
    return f"{PREFIX}:blob:{sha256}"


def tenant_jobs_key(owner: str) -> str:
    return f"{tenant_key(owner)}:jobs"


def idempotency_key(owner: str, key: str) -> str:
    return f"{PREFIX}:idem:{owner}:{key}"


def worker_key(name: str) -> str:
    return f"{PREFIX}:worker:{name}"


def now() -> datetime:
    return datetime.now(UTC)


# The status changes, one Lua script each (lua/*.lua, read once at import); every script
# that ends a job starts with settle.lua's function. Their KEYS, ARGV and answers are
# written at the top of each file.
_LUA = resources.files("clipq.store") / "lua"
_SETTLE = (_LUA / "settle.lua").read_text().replace("TENANT_PREFIX", TENANT_PREFIX)


def _script(name: str) -> str:
    text = (_LUA / f"{name}.lua").read_text()
    return _SETTLE + text if "settle(" in text else text


START_SCRIPT, BEAT_SCRIPT, FINISH_SCRIPT, CANCEL_SCRIPT = map(
    _script, ("start", "beat", "finish", "cancel")
)
REQUEUE_SCRIPT, RESERVE_SCRIPT, CLAIM_SCRIPT = map(_script, ("requeue", "reserve", "claim"))
SPLIT_SCRIPT, SHARD_ENDED_SCRIPT = map(_script, ("split", "shard_ended"))
SHARDS_LEASE = "shards"  # the lease of a job split into shard jobs: they answer it


def shard_job_id(job_id: str, shard: int) -> str:
    """The id of shard ``shard`` of a split job: the same for a split made again."""
    return f"{job_id}-{shard}"


class StartOutcome(IntEnum):
    """What start.lua answers (and requeue.lua's -2)."""

    started = 1
    final = 0  # cancelled or finished already
    gone = -1  # expired
    out_of_attempts = -2  # now failed
    held_elsewhere = -3  # another worker holds a fresh lease: a duplicate delivery


class CancelOutcome(IntEnum):
    cancelled = 1
    final = 0  # it had ended already
    unknown = -1


class RequeueOutcome(IntEnum):
    requeued = 1
    not_stale = 0  # its lease is fresh, or it is not running any more
    out_of_attempts = -2  # now failed


def _text(value: object) -> str | None:
    """A Redis reply as text; None stays None."""
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _time(value: object) -> datetime | None:
    text = _text(value)
    return datetime.fromisoformat(text) if text else None


def job_from_record(record: Mapping[Any, Any]) -> Job:
    """Build the client's view of a job from its Redis hash."""
    fields = {_text(k): v for k, v in record.items()}
    result = fields.get("result")
    error = fields.get("error")
    return Job(
        id=_text(fields["id"]),
        kind=JobKind(_text(fields["kind"]) or ""),
        status=JobStatus(_text(fields["status"]) or ""),
        progress=Progress(
            done=int(fields.get("progress_done", 0)), total=int(fields.get("progress_total", 0))
        ),
        attempts=int(fields.get("attempts", 0)),
        model=_text(fields.get("model")) or None,
        created_at=_time(fields["created_at"]),
        started_at=_time(fields.get("started_at")),
        finished_at=_time(fields.get("finished_at")),
        result=result_from_json(result) if result else None,
        error=Problem.model_validate_json(error) if error else None,
    )


def new_record(
    job_id: str,
    payload: JobPayload,
    total: int,
    owner: str = "",
    callback_url: str = "",
    model: str = "",
) -> dict[FieldT, EncodableT]:
    return {
        "id": job_id,
        "kind": str(payload.kind),
        "status": str(JobStatus.queued),
        "created_at": now().isoformat(),
        "progress_done": 0,
        "progress_total": total,
        "attempts": 0,
        "owner": owner,
        "callback_url": callback_url,
        "model": model_key(model),
        "payload": payload.model_dump_json(),
    }


_SHARD_FIELDS = (
    "id", "kind", "status", "created_at", "started_at", "finished_at", "progress_done",
    "progress_total", "attempts", "model", "result", "error", "shard_name",
)  # fmt: skip


def _job_keys(job_id: str) -> list[str]:
    return [job_key(job_id), QUEUED_KEY, RUNNING_KEY, events_channel(job_id)]


class ApiStore:
    """What the API does with Redis (asyncio)."""

    def __init__(self, client: aioredis.Redis, ttl_seconds: int, events: JobEvents) -> None:
        self.redis = client
        self.ttl = ttl_seconds
        self.events = events
        self._cancel = client.register_script(CANCEL_SCRIPT)
        self._reserve = client.register_script(RESERVE_SCRIPT)

    async def reserve_queue_place(
        self, job_id: str, owner: str, limit: int, tenant_limit: int
    ) -> int:
        """1 reserved; 0 the queue holds ``limit`` jobs; -1 ``owner`` has ``tenant_limit``
        unfinished ones."""
        moment = time.time()
        keys = [QUEUED_KEY, tenant_jobs_key(owner)]
        args: list[ScriptArg] = [limit, job_id, moment, tenant_limit, moment - self.ttl]
        return int(await self._reserve(keys=keys, args=args))

    async def queue_depth(self) -> int:
        return int(await self.redis.zcard(QUEUED_KEY))

    async def running_count(self) -> int:
        return int(await self.redis.zcard(RUNNING_KEY))

    async def create_job(
        self,
        job_id: str,
        payload: JobPayload,
        blobs: Iterable[tuple[str, bytes]],
        total: int,
        *,
        owner: str = "",
        callback_url: str = "",
        model: str = "",
    ) -> Job:
        """Store the upload bytes and the queued job record in one transaction."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for sha256, data in blobs:
                # Content-addressed: a second upload of the same bytes only refreshes the TTL.
                pipe.set(blob_key(sha256), data, ex=self.ttl, nx=True)
                pipe.expire(blob_key(sha256), self.ttl)
            pipe.hset(
                job_key(job_id),
                mapping=new_record(job_id, payload, total, owner, callback_url, model),
            )
            pipe.expire(job_key(job_id), self.ttl)
            await pipe.execute()
        job = await self.get_job(job_id)
        assert job is not None  # just written, in one transaction
        return job

    async def get_job(self, job_id: str, owner: str | None = None) -> Job | None:
        """The job, or None if unknown — or owned by someone else when ``owner`` is given."""
        record = await self.redis.hgetall(job_key(job_id))
        if not record or (owner is not None and _text(record.get(b"owner")) != owner):
            return None
        return job_from_record(record)

    async def callback_url(self, job_id: str) -> str:
        return _text(await self.redis.hget(job_key(job_id), "callback_url")) or ""

    async def shard_jobs(
        self, job_id: str, offset: int, limit: int
    ) -> tuple[int, list[tuple[str, Job] | None]]:
        """How many shard jobs a split job has (0 before it is split), and shards ``offset``..
        of them: (the shard's name, its job) each, None for one expired. The records are
        read without their payloads (a list of a thousand URLs each)."""
        shards = int(await self.redis.hget(job_key(job_id), "shards") or 0)
        fields = list(_SHARD_FIELDS)
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in range(offset, min(shards, offset + limit)):
                pipe.hmget(job_key(shard_job_id(job_id, shard)), fields)
            rows = await pipe.execute()
        found: list[tuple[str, Job] | None] = []
        for values in rows:
            record = {k: v for k, v in zip(fields, values, strict=True) if v is not None}
            found.append(
                (_text(record["shard_name"]) or "", job_from_record(record))
                if "id" in record
                else None
            )
        return shards, found

    async def payload(self, job_id: str) -> str | None:
        return _text(await self.redis.hget(job_key(job_id), "payload"))

    async def cancel_job(self, job_id: str) -> CancelOutcome:
        return CancelOutcome(
            int(await self._cancel(keys=_job_keys(job_id), args=[now().isoformat()]))
        )

    async def discard_job(self, job_id: str, owner: str) -> None:
        """Forget a job that never reached the queue: its client got an error instead.

        Only deletions, which Redis allows even when it is out of memory — but not inside
        MULTI, where it refuses every command then.
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(job_key(job_id))
            pipe.zrem(QUEUED_KEY, job_id)
            pipe.zrem(tenant_jobs_key(owner), job_id)
            await pipe.execute()

    async def claim_idempotency_key(
        self, owner: str, key: str, job_id: str, fingerprint: str
    ) -> tuple[str, str] | None:
        """Claim ``key`` for a new job; if it was claimed before, (that job id, its fingerprint)."""
        name = idempotency_key(owner, key)
        value = json.dumps([job_id, fingerprint])
        if await self.redis.set(name, value, nx=True, ex=self.ttl):
            return None
        stored = await self.redis.get(name)
        if stored is None:  # expired between the two calls: claim again
            return await self.claim_idempotency_key(owner, key, job_id, fingerprint)
        earlier_job, earlier_fingerprint = json.loads(stored)
        return earlier_job, earlier_fingerprint

    async def release_idempotency_key(self, owner: str, key: str) -> None:
        await self.redis.delete(idempotency_key(owner, key))

    async def wait_for_final(self, job_id: str, timeout: float, owner: str) -> Job | None:
        """The job once final, or as it is after ``timeout`` seconds (None if unknown).

        The caller holds one of the owner's wait slots (:meth:`JobEvents.slot`).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self.events.watch(job_id) as finished:
            job = await self.get_job(job_id, owner)
            while job is not None and not job.status.is_final:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                with suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), min(remaining, RECHECK_SECONDS))
                finished.clear()
                job = await self.get_job(job_id, owner)
            return job

    async def workers_alive(self) -> int:
        """Workers that sent a heartbeat in the last ``WORKER_HEARTBEAT_TTL`` seconds."""
        return int(await self.redis.zcount(WORKERS_KEY, time.time() - WORKER_HEARTBEAT_TTL, "+inf"))

    async def served_models(self) -> tuple[int, list[ServedModel]]:
        """The live workers, and the models they serve: one entry per distinct description
        with how many serve it, most served first. A worker that has not described its model
        (still loading it) counts as alive but serves nothing yet."""
        fresh = await self.redis.zrangebyscore(
            WORKERS_KEY, time.time() - WORKER_HEARTBEAT_TTL, "+inf"
        )
        names = [name for name in map(_text, fresh) if name]
        if not names:
            return 0, []
        served: dict[str, int] = {}
        for info in await self.redis.mget([worker_key(name) for name in names]):
            description = _description(info)
            if description is not None:
                key = description.model_dump_json()
                served[key] = served.get(key, 0) + 1
        ranked = sorted(served.items(), key=lambda item: -item[1])  # stable: first seen first
        return len(names), [
            ServedModel.model_validate({**json.loads(key), "workers": count})
            for key, count in ranked
        ]


class WorkerStore:
    """What a worker does with Redis (synchronous, from inside Celery tasks)."""

    def __init__(
        self,
        client: redis.Redis,
        ttl_seconds: int,
        lease_seconds: float = 30,
        max_attempts: int = 3,
    ) -> None:
        self.redis = client
        self.ttl = ttl_seconds
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self._start = client.register_script(START_SCRIPT)
        self._beat = client.register_script(BEAT_SCRIPT)
        self._finish = client.register_script(FINISH_SCRIPT)
        self._requeue = client.register_script(REQUEUE_SCRIPT)
        self._claim = client.register_script(CLAIM_SCRIPT)
        self._cancel = client.register_script(CANCEL_SCRIPT)
        self._split = client.register_script(SPLIT_SCRIPT)
        self._shard_ended = client.register_script(SHARD_ENDED_SCRIPT)

    def payload(self, job_id: str) -> str | None:
        return _text(self.redis.hget(job_key(job_id), "payload"))

    def status(self, job_id: str) -> JobStatus | None:
        status = _text(self.redis.hget(job_key(job_id), "status"))
        return JobStatus(status) if status else None

    def cancel(self, job_id: str) -> CancelOutcome:
        """Cancel a job from a worker (a shard job whose split job was cancelled)."""
        return CancelOutcome(int(self._cancel(keys=_job_keys(job_id), args=[now().isoformat()])))

    def split(self, job_id: str, lease: str, shards: Sequence[JobPayload]) -> list[str] | None:
        """Hand the running job (held under ``lease``) to its shard jobs, created queued with
        the job's owner and model: their ids, to enqueue; None if the job is no longer ours.
        From here the job is answered by the last shard to end (:meth:`shard_ended`)."""
        fields = self.redis.hmget(job_key(job_id), ["owner", "model"])
        owner, model = (_text(v) or "" for v in fields)
        ids = [shard_job_id(job_id, n) for n in range(len(shards))]
        records = [
            json.dumps(
                new_record(child, payload, 0, owner, "", model)
                | {"shard_name": getattr(getattr(payload, "spec", None), "name", "")}
            )
            for child, payload in zip(ids, shards, strict=True)
        ]
        args: list[ScriptArg] = [lease, SHARDS_LEASE, len(ids), self.ttl, job_key(""), *records]
        handed = self._split(keys=[job_key(job_id), RUNNING_KEY], args=args)
        return ids if handed else None

    def shard_ended(self, job_id: str, shard: int) -> int:
        """Note that shard ``shard`` of a split job ended: 1 if every shard has (the caller
        answers the job, as lease :data:`SHARDS_LEASE`; a duplicate delivery of the last one
        is told 1 again, should its first worker have died answering), 0 if not, -1 if the
        job is over."""
        keys = [job_key(job_id), f"{job_key(job_id)}:ended"]
        return int(self._shard_ended(keys=keys, args=[shard, self.ttl]))

    def jobs(self, job_ids: Sequence[str]) -> list[Job | None]:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(job_key(job_id))
        return [job_from_record(r) if r else None for r in pipe.execute()]

    def start(self, job_id: str, lease: str) -> StartOutcome:
        """Take the job under ``lease``."""
        problem = _out_of_attempts(self.max_attempts)
        args: list[ScriptArg] = [
            now().isoformat(),
            time.time(),
            lease,
            self.lease_seconds,
            self.max_attempts,
            problem,
        ]
        return StartOutcome(int(self._start(keys=_job_keys(job_id), args=args)))

    def claim(
        self,
        lease: str,
        kinds: Iterable[JobKind],
        budget: int,
        most: int,
        model: str,
        scan: int = 256,
    ) -> list[tuple[str, int]]:
        """Take queued jobs of ``kinds`` for ``model`` with at most ``budget`` images in all (at
        most ``most`` jobs, among the ``scan`` oldest queued) as :meth:`start` would: (id,
        images) each."""
        args: list[ScriptArg] = [
            now().isoformat(),
            time.time(),
            lease,
            self.max_attempts,
            budget,
            most,
            scan,
            job_key(""),
            "," + ",".join(str(kind) for kind in kinds) + ",",
            model_key(model),
        ]
        flat = self._claim(keys=[QUEUED_KEY, RUNNING_KEY], args=args)
        return [(_text(flat[i]) or "", int(flat[i + 1])) for i in range(0, len(flat), 2)]

    def total(self, job_id: str) -> int:
        """The number of images (or items) of the job; 0 if it is gone."""
        return int(self.redis.hget(job_key(job_id), "progress_total") or 0)

    def beat(self, job_id: str, lease: str, done: int | None = None) -> str | None:
        """Renew the lease (and record progress); returns the status, or 'lost'."""
        args: list[ScriptArg] = [lease, time.time(), "" if done is None else done]
        return _text(self._beat(keys=[job_key(job_id), RUNNING_KEY], args=args))

    def succeed(self, job_id: str, lease: str, result: JobResult) -> bool:
        return self._end(job_id, lease, JobStatus.succeeded, "result", result)

    def fail(self, job_id: str, lease: str, problem: Problem) -> bool:
        return self._end(job_id, lease, JobStatus.failed, "error", problem)

    def _end(
        self, job_id: str, lease: str, status: JobStatus, field: str, value: BaseModel
    ) -> bool:
        document = value.model_dump_json(exclude_none=field == "error")
        args: list[ScriptArg] = [lease, str(status), now().isoformat(), field, document, self.ttl]
        keys = [job_key(job_id), RUNNING_KEY, events_channel(job_id)]
        return bool(self._finish(keys=keys, args=args))

    def stale_jobs(self) -> list[str]:
        """Running jobs whose lease has not been renewed in time (their worker died)."""
        cutoff = time.time() - self.lease_seconds
        return [_text(j) or "" for j in self.redis.zrangebyscore(RUNNING_KEY, "-inf", cutoff)]

    def requeue(self, job_id: str) -> RequeueOutcome:
        """Put a stale job back in the queue, or fail it when it is out of attempts."""
        if not self.redis.exists(job_key(job_id)):
            self.redis.zrem(RUNNING_KEY, job_id)  # expired meanwhile
            return RequeueOutcome.not_stale
        args: list[ScriptArg] = [
            time.time(),
            self.lease_seconds,
            self.max_attempts,
            now().isoformat(),
            _out_of_attempts(self.max_attempts),
        ]
        return RequeueOutcome(int(self._requeue(keys=_job_keys(job_id), args=args)))

    def model(self, job_id: str) -> str:
        """The model the job was queued for ('' for a job queued before models had names)."""
        return _text(self.redis.hget(job_key(job_id), "model")) or ""

    def kind(self, job_id: str) -> JobKind | None:
        kind = _text(self.redis.hget(job_key(job_id), "kind"))
        return JobKind(kind) if kind else None

    def callback_url(self, job_id: str) -> str:
        return _text(self.redis.hget(job_key(job_id), "callback_url")) or ""

    def owner(self, job_id: str) -> str:
        return _text(self.redis.hget(job_key(job_id), "owner")) or ""

    def job(self, job_id: str) -> Job | None:
        record = self.redis.hgetall(job_key(job_id))
        return job_from_record(record) if record else None

    def add_part(self, job_id: str, part: int, result: str) -> int:
        """Store one shard's part of a job's result; how many parts the job has now (the
        shard that completes the set merges them: no task waits for another)."""
        key = f"{job_key(job_id)}:parts"
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, str(part), result)
            pipe.expire(key, self.ttl)
            pipe.hlen(key)
            return int(pipe.execute()[-1])

    def parts(self, job_id: str) -> list[str]:
        """The parts of a job's result, by shard."""
        found = self.redis.hgetall(f"{job_key(job_id)}:parts")
        return [_text(v) or "" for _, v in sorted(found.items(), key=lambda item: int(item[0]))]

    def drop_blobs(self, hashes: Sequence[str]) -> None:
        """Forget uploads no job will read again (an imported part's tens of megabytes)."""
        if hashes:
            self.redis.unlink(*[blob_key(h) for h in hashes])

    def blobs(self, hashes: Sequence[str]) -> list[bytes | None]:
        found = self.redis.mget([blob_key(h) for h in hashes]) if hashes else []
        return [blob if isinstance(blob, bytes) else None for blob in found]

    def workers_on(self, hostname: str) -> list[str]:
        """The pool processes on ``hostname`` that sent a heartbeat in time."""
        fresh = self.redis.zrangebyscore(WORKERS_KEY, time.time() - WORKER_HEARTBEAT_TTL, "+inf")
        return [name for name in map(_text, fresh) if name and name.startswith(hostname + "/")]

    def heartbeat(self, name: str, info: Mapping[str, object]) -> None:
        """``name`` (host/pid) is alive; ``info`` (JSON) says what it runs."""
        moment = time.time()
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(WORKERS_KEY, {name: moment})
        pipe.zremrangebyscore(WORKERS_KEY, "-inf", moment - WORKER_HEARTBEAT_TTL)
        pipe.set(worker_key(name), json.dumps(info), ex=WORKER_HEARTBEAT_TTL)
        pipe.execute()


def _description(info: object) -> ModelDescription | None:
    """The model description in a worker's heartbeat, if it has one that this API can read."""
    text = _text(info)
    if not text:
        return None
    try:
        described = json.loads(text).get("description")
        return ModelDescription.model_validate(described) if described else None
    except (ValueError, AttributeError, ValidationError):  # an older or newer worker's shape
        return None


def _out_of_attempts(max_attempts: int) -> str:
    return Problem(
        type="/problems/worker-lost",
        title="Worker lost",
        status=500,
        detail=f"the job's worker stopped (crashed or was killed) {max_attempts} times; "
        "it is not tried again",
    ).model_dump_json(exclude_none=True)
