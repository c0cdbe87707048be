"""Worker process lifecycle: preload the model, announce liveness for /readyz."""

from __future__ import annotations

import logging
import os
import threading

from celery.signals import worker_process_init, worker_ready, worker_shutdown
from redis import RedisError

from api.store import WORKER_HEARTBEAT_SECONDS
from clipcore.contracts import INFERENCE_QUEUE, TASK_NAMES
from clipcore.errors import ClipqError
from clipcore.settings import get_settings
from worker import runtime
from worker.celery_app import app

log = logging.getLogger(__name__)
_stop = threading.Event()


@worker_process_init.connect
def preload_model(**_: object) -> None:
    """Load the model when a pool process starts, so the first job does not wait for it."""
    if not get_settings().preload_model:
        return
    try:
        loaded = runtime.clip()
        log.info("loaded %s on %s", loaded.model_id, loaded.device)
    except ClipqError as exc:
        # Tasks will fail with the same clear problem; the worker itself stays up.
        log.error("could not preload the model: %s", exc.detail)


@worker_ready.connect
def start_heartbeat(sender: object = None, **_: object) -> None:
    hostname = getattr(sender, "hostname", None) or f"worker@{os.getpid()}"
    settings = get_settings()
    info = {"hostname": hostname, "pid": str(os.getpid()), "model": settings.clip_model}

    def beat() -> None:
        while not _stop.is_set():
            try:
                runtime.store().heartbeat(hostname, info)
                reap_stale_jobs()
            except RedisError:  # Redis away for a moment: try again on the next beat.
                log.warning("heartbeat to Redis failed", exc_info=True)
            _stop.wait(WORKER_HEARTBEAT_SECONDS)

    threading.Thread(target=beat, name="clipq-heartbeat", daemon=True).start()


@worker_shutdown.connect
def stop_heartbeat(**_: object) -> None:
    _stop.set()


def reap_stale_jobs() -> None:
    """Re-queue the jobs whose worker died (their lease went stale); any worker may do it."""
    store = runtime.store()
    for job_id in store.stale_jobs():
        outcome = store.requeue(job_id)
        kind = store.kind(job_id)
        if outcome == 1 and kind is not None:
            log.warning("job %s lost its worker; re-queued", job_id)
            app.send_task(TASK_NAMES[kind], args=[job_id], queue=INFERENCE_QUEUE)
        elif outcome == -2:
            log.warning("job %s lost its worker too often; failed", job_id)
