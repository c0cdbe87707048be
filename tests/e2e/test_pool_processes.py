"""A worker of several pool processes (``--concurrency``) on a CPU gives each process's model
its share of the cores, unless ``OMP_NUM_THREADS`` says otherwise: processes that each run
on every core take turns and lose to the switching (README, ingest by reference)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.e2e.conftest import env_on, private_redis, start_worker, stop

SHARED = "one of 2 pool processes: the model runs on"


def started_pool(env: dict[str, str], log: Path) -> str:
    """Start a worker of two pool processes; its log once both have loaded their models."""
    worker = start_worker(env, log, "pool", concurrency=2)
    try:
        deadline = time.monotonic() + 180
        while log.read_text().count("loaded ") < 2:
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        return log.read_text()
    finally:
        stop(worker)


def test_two_pool_processes_share_the_cores(base_env, tmp_path: Path) -> None:
    with private_redis(tmp_path / "redis") as server:
        text = started_pool(env_on(base_env, server), tmp_path / "worker.log")
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert text.count(f"{SHARED} {share} thread(s)") == 2, text


def test_omp_num_threads_is_left_to_say(base_env, tmp_path: Path) -> None:
    with private_redis(tmp_path / "redis") as server:
        env = env_on(base_env, server, OMP_NUM_THREADS="2")
        text = started_pool(env, tmp_path / "worker.log")
    assert SHARED not in text, text
