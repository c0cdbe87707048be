"""The real service for end-to-end tests: Celery worker processes and the API over HTTP."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from clipq.transport import WEBHOOK_QUEUE

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PR_SET_PDEATHSIG = 1
BIN = Path(sys.executable).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is end to end: ``pytest -m "not e2e"`` runs the rest alone."""
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


@dataclass
class Service:
    base_url: str
    http: httpx.Client
    redis: redis.Redis
    env: dict[str, str]
    logs: Path
    workers: list[subprocess.Popen] = field(default_factory=list)
    deliveries: subprocess.Popen | None = None  # the webhook delivery worker

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


def start_worker(
    env: dict[str, str], log: Path, name: str = "e2e", concurrency: int = 1
) -> subprocess.Popen:
    arguments = ["worker.celery_app", "worker", "--concurrency", str(concurrency)]
    return _start_celery(arguments, env, log, name)


def start_deliveries(env: dict[str, str], log: Path, name: str = "webhooks") -> subprocess.Popen:
    """The webhook delivery worker, as ``make run`` and docker compose start it."""
    app = ["worker.webhooks", "worker", "-Q", WEBHOOK_QUEUE]
    return _start_celery([*app, "--pool", "threads", "--concurrency", "4"], env, log, name)


def _start_celery(
    arguments: list[str], env: dict[str, str], log: Path, name: str
) -> subprocess.Popen:
    command = [
        str(BIN / "celery"),
        "-A",
        *arguments,
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
    """The API as its image runs it: ``python -m api.server`` (uvicorn, with its deadlines)."""
    command = [sys.executable, "-m", "api.server"]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env={**env, "CLIPQ_API_HOST": "127.0.0.1", "CLIPQ_API_PORT": str(port)},
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


@contextmanager
def running_service(
    env: dict[str, str], logs: Path, *, workers: int = 1, wait: bool = True
) -> Iterator[Service]:
    """The API, ``workers`` worker processes and the webhook delivery worker, stopped on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    processes = [start_worker(env, logs / f"worker{i}.log", f"w{i}") for i in range(workers)]
    deliveries = start_deliveries(env, logs / "webhooks.log")
    api = start_api(env, port, logs / "api.log")
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    service = Service(
        str(http.base_url), http, redis.Redis.from_url(env["CLIPQ_REDIS_URL"]), env, logs
    )
    service.workers = processes
    service.deliveries = deliveries
    try:
        if wait:
            if workers:
                wait_ready(http, [*processes, deliveries, api], logs)
            else:
                wait_up(http, logs)
        yield service
    finally:
        http.close()
        stop(api)
        for process in [*processes, deliveries]:
            stop(process)


def wait_up(http: httpx.Client, logs: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if http.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"the API did not start; see {logs}")


@pytest.fixture(scope="session")
def base_env(redis_url: str, random_clip_dir: Path, random_detector_dir: Path) -> dict[str, str]:
    """Random tiny models and small limits that tests can reach."""
    return service_env(
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


@pytest.fixture(scope="session")
def service(
    base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """API + one worker on random tiny models, shared by most end-to-end tests."""
    with running_service(base_env, tmp_path_factory.mktemp("service-logs")) as service:
        yield service


class RedisServer:
    """A redis-server of the test's own (port and data folder), with AOF persistence: synced
    at every write (``always``: what a test kills must be there), or as compose runs it."""

    def __init__(self, folder: Path, appendfsync: str = "always") -> None:
        self.folder, self.appendfsync = folder, appendfsync
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
            "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=(self.folder / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start; see {self.folder / 'redis.log'}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # SIGTERM: Redis flushes its AOF and exits
            self.process.wait(timeout=20)
            self.process = None


@contextmanager
def private_redis(folder: Path, appendfsync: str = "always") -> Iterator[RedisServer]:
    server = RedisServer(folder, appendfsync)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def env_on(base_env: dict[str, str], server: RedisServer, **overrides: str) -> dict[str, str]:
    return {**base_env, "CLIPQ_REDIS_URL": server.url, **overrides}
