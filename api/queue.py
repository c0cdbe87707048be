"""Handing jobs to the workers by task name; the API never imports a task."""

from __future__ import annotations

from anyio import to_thread
from celery import Celery

from clipq.contracts.jobs import JobKind
from clipq.transport import (
    SEARCH_SHARD_TASK,
    TASK_NAMES,
    WEBHOOK_QUEUE,
    WEBHOOK_TASK,
    inference_queue,
    shard_queue,
)


class JobQueue:
    """Jobs to the workers: one task each, or with ``shards`` a search's task to one worker
    of each shard (``worker.search``)."""

    def __init__(self, redis_url: str, shards: int = 1) -> None:
        self.shards = shards
        self._celery = Celery("clipq-api", broker=redis_url)
        self._celery.conf.update(
            task_serializer="json",
            accept_content=["json"],
            broker_connection_retry=False,
            broker_connection_max_retries=0,
        )

    async def enqueue(self, kind: JobKind, job_id: str, model: str) -> None:
        """Queue the job for the workers that serve ``model``."""
        await to_thread.run_sync(self._send, kind, job_id, model)

    def _send(self, kind: JobKind, job_id: str, model: str) -> None:
        if kind == JobKind.search and self.shards > 1:
            for shard in range(self.shards):
                self._celery.send_task(
                    SEARCH_SHARD_TASK,
                    args=[job_id, shard],
                    queue=shard_queue(shard),
                    task_id=f"{job_id}-{shard}",
                    retry=False,
                )
            return
        self._celery.send_task(
            TASK_NAMES[kind],
            args=[job_id],
            queue=inference_queue(model),
            task_id=job_id,
            retry=False,
        )

    async def notify(self, job_id: str) -> None:
        """Have a worker deliver the job's completion webhook."""
        await to_thread.run_sync(self._notify, job_id)

    def _notify(self, job_id: str) -> None:
        self._celery.send_task(WEBHOOK_TASK, args=[job_id], queue=WEBHOOK_QUEUE, retry=False)
