"""What every clipq Celery app shares: the inference app and the webhook delivery app."""

from __future__ import annotations

from typing import Any

from clipq.settings import Settings


def common_config(settings: Settings) -> dict[str, Any]:
    return {
        # JSON only: a message can never make a worker unpickle something.
        "task_serializer": "json",
        "accept_content": ["json"],
        # Results live in the job record in Redis, not in Celery's result backend.
        "task_ignore_result": True,
        "task_store_errors_even_if_ignored": False,
        # A task is acknowledged when it ends, and a dying worker hands it back.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # An unacknowledged message returns to the queue after this long; it must exceed the
        # longest task, or a slow job would be handed to a second worker while it runs. Every
        # consumer of this Redis restores the unacknowledged messages of all queues by its own
        # timeout, so all clipq apps must use this same one.
        "broker_transport_options": {"visibility_timeout": settings.task_time_limit + 300},
        "broker_connection_retry_on_startup": True,
        "worker_send_task_events": False,
    }
