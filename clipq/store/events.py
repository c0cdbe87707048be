"""Waking long polls: one Redis pub/sub connection per API process, fanned out in-process.

Workers publish on ``clipq:job-events:{id}`` when a job reaches a final status.
Each API process listens to all of them on a single connection (a pattern
subscription) and sets the :class:`asyncio.Event` of every request waiting for
that job, so a thousand long polls cost one Redis connection, not a thousand
taken from the pool that every other request needs. A waiter also re-reads the
record every :data:`RECHECK_SECONDS`, so a message lost while the connection was
being re-established delays it by at most that long.

Waits are counted per tenant: past ``CLIPQ_MAX_WAITS_PER_TENANT`` in this process
a new one gets a 429, so one tenant's idle polls cannot crowd out the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from clipq.errors import TooManyRequests

EVENTS_PATTERN = "clipq:job-events:*"
EVENTS_PREFIX = EVENTS_PATTERN[:-1]
RECHECK_SECONDS = 2.0
RECONNECT_SECONDS = 1.0
WAITS_FULL_RETRY_SECONDS = 1

log = logging.getLogger(__name__)


def events_channel(job_id: str) -> str:
    """Pub/sub channel told when the job reaches a final status."""
    return EVENTS_PREFIX + job_id


class JobEvents:
    """The process's listener and its waiters; :meth:`start` it once the loop runs."""

    def __init__(self, client: aioredis.Redis, max_waits_per_tenant: int) -> None:
        self.redis = client
        self.max_waits = max_waits_per_tenant
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._waiting: dict[str, int] = defaultdict(int)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="clipq-job-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    @asynccontextmanager
    async def slot(self, owner: str) -> AsyncIterator[None]:
        """Hold one of ``owner``'s waits; 429 when all of them are taken."""
        if self._waiting[owner] >= self.max_waits:
            raise TooManyRequests(
                f"{self.max_waits} requests of this API key are already waiting for jobs; "
                "wait for those, or poll without ?wait",
                headers={"Retry-After": str(WAITS_FULL_RETRY_SECONDS)},
            )
        self._waiting[owner] += 1
        try:
            yield
        finally:
            self._waiting[owner] -= 1
            if not self._waiting[owner]:
                del self._waiting[owner]

    @asynccontextmanager
    async def watch(self, job_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set when ``job_id`` is announced final; register before reading the job,
        so a change between the read and the wait is not missed."""
        event = asyncio.Event()
        self._waiters[job_id].add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

    async def _listen(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.psubscribe(EVENTS_PATTERN)
                    async for message in pubsub.listen():
                        if message["type"] == "pmessage":
                            self._wake(message["channel"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("job events: %s; listening again in %.0f s", exc, RECONNECT_SECONDS)
            self._wake_all()  # whatever happened meanwhile, everyone re-reads their job
            await asyncio.sleep(RECONNECT_SECONDS)

    def _wake(self, channel: bytes | str) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        for event in self._waiters.get(name.removeprefix(EVENTS_PREFIX), ()):
            event.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()
