"""The inference app: ``celery -A worker.celery_app worker`` consumes the queue of its model,
``clipq.inference.<CLIPQ_CLIP_MODEL>`` (:func:`clipq.transport.inference_queue`).

Completion webhooks are sent by name to ``clipq.webhooks`` and delivered by a process
of their own (:mod:`worker.webhooks`): a slow receiver never holds a model worker.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from clipq.settings import get_settings
from clipq.transport import TASK_NAMES, WEBHOOK_QUEUE, WEBHOOK_TASK, inference_queue
from worker.celery_config import common_config

settings = get_settings()
MODEL_QUEUE = inference_queue(settings.clip_model)  # this worker's: its model's jobs

app = Celery("clipq", broker=settings.redis_url, include=["worker.tasks", "worker.process"])
app.conf.update(
    **common_config(settings),
    task_soft_time_limit=settings.task_soft_time_limit,
    task_time_limit=settings.task_time_limit,
    task_queues=[Queue(MODEL_QUEUE)],
    task_default_queue=MODEL_QUEUE,
    task_routes={
        **{name: {"queue": MODEL_QUEUE} for name in TASK_NAMES.values()},
        WEBHOOK_TASK: {"queue": WEBHOOK_QUEUE},
    },
    worker_max_tasks_per_child=None,
)
