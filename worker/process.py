"""Worker pool process lifecycle: load the models, then announce readiness for /readyz."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

from celery.signals import worker_init, worker_process_init, worker_process_shutdown
from redis import RedisError

from clipcore.errors import ClipqError
from clipq.contracts.jobs import JobKind
from clipq.settings import get_settings
from clipq.store.jobs import WORKER_HEARTBEAT_SECONDS, RequeueOutcome
from clipq.transport import TASK_NAMES, inference_queue
from worker import runtime
from worker.celery_app import app

log = logging.getLogger(__name__)
_stop = threading.Event()
SWEEP_EVERY_BEATS = 12  # deleted collections' files go within a minute or so
_pool_size = 1  # this worker's pool processes, noted before they are forked


@worker_init.connect
def note_pool_size(sender: object, **_: object) -> None:
    global _pool_size
    concurrency = getattr(sender, "concurrency", 1)
    # 'auto' becomes a process per core after this signal
    _pool_size = concurrency if isinstance(concurrency, int) else len(os.sched_getaffinity(0))


def cpu_threads(pool_size: int, cores: int, environ: Mapping[str, str]) -> int | None:
    """The threads each of ``pool_size`` pool processes runs its model on: the cores shared
    out, or None to leave torch's choice (every core) where one process has them, or where
    ``OMP_NUM_THREADS`` says. Two processes each on every core take turns and lose to the
    switching (ViT-B/32 on 2 cores: 0.37 of raw each); on a core each, 0.93 (README)."""
    if pool_size <= 1 or "OMP_NUM_THREADS" in environ:
        return None
    return max(1, cores // pool_size)


def share_cores() -> None:
    threads = cpu_threads(_pool_size, len(os.sched_getaffinity(0)), os.environ)
    if threads is None:
        return
    import torch  # the model's threads (ONNX Runtime's follow torch's when it loads)

    torch.set_num_threads(threads)
    log.info("one of %d pool processes: the model runs on %d thread(s)", _pool_size, threads)


@worker_process_init.connect
def start_pool_process(**_: object) -> None:
    """A pool process starts: load the models, then announce it is ready for jobs.

    Readiness (``/readyz``, ``python -m worker.health``) therefore means "models loaded":
    a worker fetching its weights on first start is not ready until it has them. One whose
    models cannot be loaded stays up but never announces itself; its jobs would fail with
    the same clear problem.
    """
    share_cores()
    settings = get_settings()
    if settings.preload_model:
        try:
            loaded = runtime.clip()
            runtime.detector()
            runtime.description()  # reads the model's domain.json: a broken one is said here
            log.info(
                "loaded %s and detector %s on %s",
                loaded.model_id,
                settings.resolved_detector_model,
                loaded.device,
            )
        except ClipqError as exc:
            log.error("could not load the models: %s", exc.detail)
            return
    start_heartbeat(settings.clip_model)


def heartbeat_name() -> str:
    """How this pool process appears among the workers: its host, then its pid."""
    return f"{socket.gethostname()}/{os.getpid()}"


def start_heartbeat(model: str) -> None:
    """Beat every few seconds with what this process runs: its name, the model setting and,
    once its CLIP is loaded, the model's description (``GET /v1/models`` and the page show
    it)."""
    name = heartbeat_name()
    described = Description()

    def beat() -> None:
        beats = 0
        while not _stop.is_set():
            info: dict[str, object] = {"name": name, "model": model}
            if (description := described.get()) is not None:
                info["description"] = description
            try:
                runtime.store().heartbeat(name, info)
                reap_stale_jobs()
                if beats % SWEEP_EVERY_BEATS == 0:
                    runtime.indexes().sweep()
            except (RedisError, OSError):  # Redis (or the volume) away: try on the next beat.
                log.warning("heartbeat to Redis failed", exc_info=True)
            beats += 1
            _stop.wait(WORKER_HEARTBEAT_SECONDS)

    threading.Thread(target=beat, name="clipq-heartbeat", daemon=True).start()


class Description:
    """The models' description as JSON, made once the CLIP is loaded (at once when preloaded;
    after a lazy worker's first job otherwise). A broken domain.json is logged once."""

    def __init__(self) -> None:
        self.value: dict[str, object] | None = None
        self.failed = False

    def get(self) -> dict[str, object] | None:
        if self.value is None and not self.failed:
            try:
                description = runtime.description()
            except ClipqError as exc:
                log.error("the model cannot be described: %s", exc.detail)
                self.failed = True
                return None
            if description is not None:
                self.value = description.model_dump(mode="json")
        return self.value


@worker_process_shutdown.connect
def stop_heartbeat(**_: object) -> None:
    _stop.set()


def reap_stale_jobs() -> None:
    """Re-queue the jobs whose worker died (their lease went stale); any worker may do it."""
    store = runtime.store()
    for job_id in store.stale_jobs():
        outcome = store.requeue(job_id)
        kind = store.kind(job_id)
        if outcome == RequeueOutcome.requeued:
            log.warning("job %s lost its worker; re-queued", job_id)
        elif outcome == RequeueOutcome.out_of_attempts:
            log.warning("job %s lost its worker too often; failed", job_id)
        # A shard failed here is sent once more all the same: its task finds it failed and
        # counts it in its import, which would otherwise wait for it for ever.
        again = outcome == RequeueOutcome.requeued or (
            outcome == RequeueOutcome.out_of_attempts and kind == JobKind.source_shard
        )
        if again and kind is not None:
            # to the workers of the job's model, which need not be this one's
            model = store.model(job_id) or get_settings().clip_model
            app.send_task(TASK_NAMES[kind], args=[job_id], queue=inference_queue(model))
