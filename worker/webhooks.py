"""The webhook delivery worker: its own Celery app, process and queue.

    celery -A worker.webhooks worker -Q clipq.webhooks --pool threads --concurrency 8

A delivery waits on somebody else's server, so it never runs in an inference
worker, where a slow receiver would hold the model. Deliveries are I/O-bound:
one process runs several at once in threads. Each attempt has a whole deadline
(``CLIPQ_WEBHOOK_TIMEOUT_SECONDS``), which is also the longest a warm shutdown
waits. This module imports no torch, transformers, torchvision or numpy.
"""

from __future__ import annotations

import logging
from functools import cache, partial

import anyio
import redis
from celery import Celery
from kombu import Queue

from clipq.settings import get_settings
from clipq.store.jobs import WorkerStore
from clipq.transport import WEBHOOK_QUEUE, WEBHOOK_TASK
from clipq.webhooks import DeliveryFailed, UnsafeCallback, deliver
from worker.celery_config import common_config

log = logging.getLogger(__name__)
settings = get_settings()

app = Celery("clipq-webhooks", broker=settings.redis_url)
app.conf.update(
    **common_config(settings),
    task_queues=[Queue(WEBHOOK_QUEUE)],
    task_default_queue=WEBHOOK_QUEUE,
    task_routes={WEBHOOK_TASK: {"queue": WEBHOOK_QUEUE}},
)


@cache
def store() -> WorkerStore:
    return WorkerStore(redis.Redis.from_url(settings.redis_url), settings.job_ttl_seconds)


@app.task(
    name=WEBHOOK_TASK,
    shared=False,  # this app's alone: no other app in the process picks it up
    autoretry_for=(DeliveryFailed,),
    retry_backoff=True,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=settings.webhook_max_retries,
)
def webhook(job_id: str) -> int | None:
    """Deliver the job's final state to its callback URL (retried with backoff on failure)."""
    url, job = store().callback_url(job_id), store().job(job_id)
    if not url or job is None or not job.status.is_final:
        return None
    send = partial(
        deliver,
        url,
        f"{job_id}-{job.status}",  # the same id on every retry: receivers can de-duplicate
        job.model_dump_json(),
        secret=settings.webhook_secret,
        allow=settings.webhook_allow,
        deadline=settings.webhook_timeout_seconds,
    )
    try:
        return anyio.run(send)
    except UnsafeCallback as exc:  # the host now resolves somewhere forbidden: never retried
        log.warning("webhook for job %s not sent: %s", job_id, exc.detail)
        return None
