"""Redis records of jobs and uploads: the truth about every job.

The API writes new jobs and reads them back; workers move them through
``running`` to a final status. Status changes go through small Lua scripts so
that a late worker can never overwrite a cancellation, and nothing writes to
a record that has already expired (a plain HSET would re-create it forever).

Keys: ``clipq:job:{id}`` (a hash), ``clipq:blob:{sha256}`` (upload bytes),
``clipq:worker:{hostname}`` (worker heartbeats). All carry a TTL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import redis
import redis.asyncio as aioredis
from pydantic import BaseModel

from clipcore.contracts import (
    Job,
    JobKind,
    JobPayload,
    JobResult,
    JobStatus,
    Problem,
    Progress,
    result_from_json,
)

PREFIX = "clipq"
WORKER_HEARTBEAT_SECONDS = 5
WORKER_HEARTBEAT_TTL = 15


def job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def blob_key(sha256: str) -> str:
    return f"{PREFIX}:blob:{sha256}"


def events_channel(job_id: str) -> str:
    """Pub/sub channel told when the job reaches a final status (wakes long polls)."""
    return f"{PREFIX}:job-events:{job_id}"


def worker_key(hostname: str) -> str:
    return f"{PREFIX}:worker:{hostname}"


def now() -> datetime:
    return datetime.now(UTC)


# Returns 1 when the job may run, 0 when it is final already (e.g. cancelled), -1 when gone.
START_SCRIPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status ~= 'queued' and status ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1], 'progress_done', 0)
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return 1
"""

# Records progress while the job runs; returns the job's status so a worker learns of a
# cancellation in the same round trip.
PROGRESS_SCRIPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'running' then redis.call('HSET', KEYS[1], 'progress_done', ARGV[1]) end
return status
"""

# Final status, only from 'running': a cancelled or expired job stays as it is.
FINISH_SCRIPT = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'finished_at', ARGV[2], ARGV[3], ARGV[4])
if ARGV[1] == 'succeeded' then
  redis.call('HSET', KEYS[1], 'progress_done', redis.call('HGET', KEYS[1], 'progress_total'))
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('PUBLISH', KEYS[2], ARGV[1])
return 1
"""

# 1 cancelled, 0 already final, -1 unknown.
CANCEL_SCRIPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status ~= 'queued' and status ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[1])
redis.call('PUBLISH', KEYS[2], 'cancelled')
return 1
"""


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _time(value: bytes | str | None) -> datetime | None:
    text = _text(value)
    return datetime.fromisoformat(text) if text else None


def job_from_record(record: dict[bytes, bytes]) -> Job:
    """Build the client's view of a job from its Redis hash."""
    fields = {_text(k): v for k, v in record.items()}
    result = fields.get("result")
    error = fields.get("error")
    return Job(
        id=_text(fields["id"]),
        kind=JobKind(_text(fields["kind"])),
        status=JobStatus(_text(fields["status"])),
        progress=Progress(
            done=int(fields.get("progress_done", 0)), total=int(fields.get("progress_total", 0))
        ),
        created_at=_time(fields["created_at"]),
        started_at=_time(fields.get("started_at")),
        finished_at=_time(fields.get("finished_at")),
        result=result_from_json(result) if result else None,
        error=Problem.model_validate_json(error) if error else None,
    )


def new_record(job_id: str, payload: JobPayload, total: int) -> dict[str, str | int]:
    return {
        "id": job_id,
        "kind": str(payload.kind),
        "status": str(JobStatus.queued),
        "created_at": now().isoformat(),
        "progress_done": 0,
        "progress_total": total,
        "attempts": 0,
        "payload": payload.model_dump_json(),
    }


class ApiStore:
    """What the API does with Redis (asyncio)."""

    def __init__(self, client: aioredis.Redis, ttl_seconds: int) -> None:
        self.redis = client
        self.ttl = ttl_seconds
        self._cancel = client.register_script(CANCEL_SCRIPT)

    async def create_job(
        self, job_id: str, payload: JobPayload, blobs: Iterable[tuple[str, bytes]], total: int
    ) -> Job:
        """Store the upload bytes and the queued job record in one transaction."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for sha256, data in blobs:
                # Content-addressed: a second upload of the same bytes only refreshes the TTL.
                pipe.set(blob_key(sha256), data, ex=self.ttl, nx=True)
                pipe.expire(blob_key(sha256), self.ttl)
            record = new_record(job_id, payload, total)
            pipe.hset(job_key(job_id), mapping=record)
            pipe.expire(job_key(job_id), self.ttl)
            await pipe.execute()
        return await self.get_job(job_id)  # type: ignore[return-value]

    async def get_job(self, job_id: str) -> Job | None:
        record = await self.redis.hgetall(job_key(job_id))
        return job_from_record(record) if record else None

    async def cancel_job(self, job_id: str) -> int:
        keys = [job_key(job_id), events_channel(job_id)]
        return int(await self._cancel(keys=keys, args=[now().isoformat()]))

    async def fail_job(self, job_id: str, problem: Problem) -> None:
        """Mark a job that never reached the queue as failed."""
        await self.redis.hset(
            job_key(job_id),
            mapping={
                "status": str(JobStatus.failed),
                "finished_at": now().isoformat(),
                "error": problem.model_dump_json(exclude_none=True),
            },
        )

    async def wait_for_final(self, job_id: str, timeout: float) -> Job | None:
        """The job once final, or as it is after ``timeout`` seconds (None if unknown)."""
        async with self.redis.pubsub() as pubsub:
            await pubsub.subscribe(events_channel(job_id))
            # Subscribed before reading: a change between the read and the wait is not missed.
            job = await self.get_job(job_id)
            deadline = asyncio.get_running_loop().time() + timeout
            while job is not None and not job.status.is_final:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=remaining)
                job = await self.get_job(job_id)
            return job

    async def workers_alive(self) -> list[str]:
        names = [_text(key) async for key in self.redis.scan_iter(match=worker_key("*"))]
        return [name.removeprefix(worker_key("")) for name in names if name]


class WorkerStore:
    """What a worker does with Redis (synchronous, from inside Celery tasks)."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self.redis = client
        self.ttl = ttl_seconds
        self._start = client.register_script(START_SCRIPT)
        self._progress = client.register_script(PROGRESS_SCRIPT)
        self._finish = client.register_script(FINISH_SCRIPT)

    def payload(self, job_id: str) -> str | None:
        return _text(self.redis.hget(job_key(job_id), "payload"))

    def start(self, job_id: str) -> int:
        return int(self._start(keys=[job_key(job_id)], args=[now().isoformat()]))

    def progress(self, job_id: str, done: int) -> JobStatus | None:
        status = _text(self._progress(keys=[job_key(job_id)], args=[done]))
        return JobStatus(status) if status else None

    def succeed(self, job_id: str, result: JobResult) -> bool:
        return self._end(job_id, JobStatus.succeeded, "result", result)

    def fail(self, job_id: str, problem: Problem) -> bool:
        return self._end(job_id, JobStatus.failed, "error", problem)

    def _end(self, job_id: str, status: JobStatus, field: str, value: BaseModel) -> bool:
        document = value.model_dump_json(exclude_none=field == "error")
        args = [str(status), now().isoformat(), field, document, self.ttl]
        return bool(self._finish(keys=[job_key(job_id), events_channel(job_id)], args=args))

    def blobs(self, hashes: Sequence[str]) -> list[bytes | None]:
        return self.redis.mget([blob_key(h) for h in hashes]) if hashes else []

    def heartbeat(self, hostname: str, info: dict[str, str]) -> None:
        self.redis.set(worker_key(hostname), json.dumps(info), ex=WORKER_HEARTBEAT_TTL)
