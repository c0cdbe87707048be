"""The real service for end-to-end tests: a Celery worker process and the API over HTTP."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
PR_SET_PDEATHSIG = 1
BIN = Path(sys.executable).parent


@dataclass
class Service:
    base_url: str
    http: httpx.Client
    redis: redis.Redis
    env: dict[str, str]
    logs: Path

    def wait_for(self, job_id: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.http.get(f"/v1/jobs/{job_id}", params={"wait": 5}).json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
        raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this child if pytest dies, so no stray worker eats later tests' jobs."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_worker(env: dict[str, str], log: Path, name: str = "e2e") -> subprocess.Popen:
    command = [
        str(BIN / "celery"),
        "-A",
        "worker.celery_app",
        "worker",
        "--concurrency",
        "1",
        "--loglevel",
        "INFO",
        "--hostname",
        f"{name}@%h",
    ]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )


def start_api(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    command = [str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(http: httpx.Client, processes: list[subprocess.Popen], logs: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"a service process exited early; see {logs}")
        try:
            if http.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the service did not become ready; see {logs}")


def service_env(redis_url: str, model: str, **overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLIPQ_")}
    env.update(
        CLIPQ_REDIS_URL=redis_url,
        CLIPQ_CLIP_MODEL=model,
        CLIPQ_DEVICE="cpu",
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def service(
    redis_url: str,
    random_clip_dir: Path,
    random_detector_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Service]:
    """API + one worker on a random tiny CLIP, with small limits that tests can reach."""
    logs = tmp_path_factory.mktemp("service-logs")
    env = service_env(
        redis_url,
        str(random_clip_dir),
        CLIPQ_BATCH_SIZE="2",
        CLIPQ_MAX_UPLOAD_BYTES=str(2 * 1024 * 1024),
        CLIPQ_MAX_IMAGE_PIXELS="1000000",
        CLIPQ_MAX_FILES_PER_JOB="500",
        CLIPQ_DETECTOR_MODEL=str(random_detector_dir),
        CLIPQ_CROP_MIN_SCORE="0",
        CLIPQ_CROPS_PER_IMAGE="4",
    )
    port = free_port()
    worker = start_worker(env, logs / "worker.log")
    api = start_api(env, port, logs / "api.log")
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        wait_ready(http, [worker, api], logs)
        yield Service(http.base_url.__str__(), http, redis.Redis.from_url(redis_url), env, logs)
    finally:
        http.close()
        stop(api)
        stop(worker)
