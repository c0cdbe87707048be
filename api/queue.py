"""Handing jobs to the workers by task name; the API never imports a task."""

from __future__ import annotations

from anyio import to_thread
from celery import Celery

from clipq.contracts.jobs import JobKind
from clipq.transport import INFERENCE_QUEUE, TASK_NAMES, WEBHOOK_QUEUE, WEBHOOK_TASK


class JobQueue:
    def __init__(self, redis_url: str) -> None:
        self._celery = Celery("clipq-api", broker=redis_url)
        self._celery.conf.update(
            task_serializer="json",
            accept_content=["json"],
            broker_connection_retry=False,
            broker_connection_max_retries=0,
        )

    async def enqueue(self, kind: JobKind, job_id: str) -> None:
        await to_thread.run_sync(self._send, kind, job_id)

    def _send(self, kind: JobKind, job_id: str) -> None:
        self._celery.send_task(
            TASK_NAMES[kind], args=[job_id], queue=INFERENCE_QUEUE, task_id=job_id, retry=False
        )

    async def notify(self, job_id: str) -> None:
        """Have a worker deliver the job's completion webhook."""
        await to_thread.run_sync(self._notify, job_id)

    def _notify(self, job_id: str) -> None:
        self._celery.send_task(WEBHOOK_TASK, args=[job_id], queue=WEBHOOK_QUEUE, retry=False)
