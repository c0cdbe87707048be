"""The Celery application: ``celery -A worker.celery_app worker`` consumes every clipq queue."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from clipcore.contracts import INFERENCE_QUEUE, TASK_NAMES, WEBHOOK_QUEUE, WEBHOOK_TASK
from clipcore.settings import get_settings

settings = get_settings()

app = Celery("clipq", broker=settings.redis_url, include=["worker.tasks", "worker.lifecycle"])
app.conf.update(
    # JSON only: a message can never make a worker unpickle something.
    task_serializer="json",
    accept_content=["json"],
    # Results live in the job record in Redis, not in Celery's result backend.
    task_ignore_result=True,
    task_store_errors_even_if_ignored=False,
    # A task is acknowledged when it ends, and a dying worker hands it back.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_soft_time_limit=settings.task_soft_time_limit,
    task_time_limit=settings.task_time_limit,
    # An unacknowledged message returns to the queue after this long; it must exceed the
    # longest task, or a slow job would be handed to a second worker while it runs.
    broker_transport_options={"visibility_timeout": settings.task_time_limit + 300},
    broker_connection_retry_on_startup=True,
    task_queues=[Queue(INFERENCE_QUEUE), Queue(WEBHOOK_QUEUE)],
    task_default_queue=INFERENCE_QUEUE,
    task_routes={
        **{name: {"queue": INFERENCE_QUEUE} for name in TASK_NAMES.values()},
        WEBHOOK_TASK: {"queue": WEBHOOK_QUEUE},
    },
    worker_send_task_events=False,
    worker_max_tasks_per_child=None,
)
