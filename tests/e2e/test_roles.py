"""Each role installed as its image installs it, then booted and given real jobs.

No Docker engine runs here, so the build steps of ``Dockerfile.api`` and
``Dockerfile.worker`` are replayed in a fresh virtual environment: the files
their ``COPY`` lines name, their ``RUN`` lines with ``pip`` taken from that
environment and ``/wheels`` a folder of the test's. The processes then start
from a folder outside the repository, so only what was installed is importable.
The API's environment must hold none of the ML stack; the worker's runs jobs with
the embedded models that its wheel carries.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    ROOT,
    _die_with_parent,
    free_port,
    private_redis,
    stop,
    wait_ready,
)
from tests.support import png_bytes

INSTALL_TIMEOUT = 900
NOT_IN_API = {"torch", "torchvision", "transformers", "numpy"}


@dataclass(frozen=True)
class Instruction:
    stage: int
    name: str
    argument: str


def instructions(dockerfile: Path) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    found, stage, pending = [], -1, ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line.removesuffix("\\").strip() + " "
        if line.endswith("\\"):
            continue
        name, _, argument = pending.strip().partition(" ")
        if name.upper() == "FROM":
            stage += 1
        found.append(Instruction(stage, name.upper(), argument.strip()))
        pending = ""
    return found


def install_role(dockerfile: Path, folder: Path) -> Path:
    """Replay the Dockerfile's build in ``folder``; returns the virtual environment."""
    venv, source, wheels = folder / "venv", folder / "src", folder / "wheels"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    for step in instructions(dockerfile):
        workdir = source if step.stage == 0 else folder
        workdir.mkdir(parents=True, exist_ok=True)
        if step.name == "COPY" and not step.argument.startswith("--from"):
            *sources, target = shlex.split(step.argument)
            into = len(sources) > 1 or target.endswith("/")  # Docker's rule for a folder
            for name in sources:
                copy_into(ROOT / name, source / target, into)
        elif step.name == "RUN" and "pip" in step.argument:
            command = step.argument.replace("/wheels", str(wheels))
            subprocess.run(
                command, shell=True, cwd=workdir, env=env, check=True, timeout=INSTALL_TIMEOUT
            )
    return venv


def copy_into(path: Path, target: Path, into: bool) -> None:
    destination = target / path.name if into else target
    if path.is_dir():
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(path, destination, ignore=ignore, dirs_exist_ok=True)
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)


def installed(venv: Path) -> set[str]:
    listing = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {line.split("==")[0].lower().replace("_", "-") for line in listing.splitlines()}


@pytest.fixture(scope="module")
def roles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("roles")
    return {
        "api": install_role(ROOT / "Dockerfile.api", folder / "api"),
        "worker": install_role(ROOT / "Dockerfile.worker", folder / "worker"),
    }


def test_the_api_image_holds_no_ml_stack(roles: dict[str, Path]) -> None:
    packages = installed(roles["api"])
    assert {"fastapi", "uvicorn", "celery", "redis"} <= packages
    assert not NOT_IN_API & packages, NOT_IN_API & packages


@dataclass(frozen=True)
class Booted:
    url: str
    env: dict[str, str]
    folder: Path


@pytest.fixture(scope="module")
def booted(roles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booted]:
    """Both roles running from their own environments, in a folder that has no clipq code."""
    folder = tmp_path_factory.mktemp("booted")
    with private_redis(folder / "redis") as server:
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CLIPQ_", "PYTHON"))},
            "CLIPQ_REDIS_URL": server.url,
            "CLIPQ_API_HOST": "127.0.0.1",
            "CLIPQ_API_PORT": str(port),
            "CLIPQ_DEVICE": "cpu",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        api_bin, worker_bin = roles["api"] / "bin", roles["worker"] / "bin"
        celery = str(worker_bin / "celery")
        commands = {
            "api": [str(api_bin / "python"), "-m", "api.server"],
            "worker": [celery, "-A", "worker.celery_app", "worker", "-c", "1"],
            "webhooks": [celery, "-A", "worker.webhooks", "worker", "-Q", "clipq.webhooks"],
        }
        processes = [
            subprocess.Popen(
                command,
                cwd=folder,
                env=env,
                stdout=(folder / f"{name}.log").open("ab"),
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
            for name, command in commands.items()
        ]
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                wait_ready(http, processes, folder)
            yield Booted(f"http://127.0.0.1:{port}", env, folder)
        finally:
            for process in processes:
                stop(process)


def finished(http: httpx.Client, response: httpx.Response) -> dict:
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    for _ in range(60):
        job = http.get(f"/v1/jobs/{job_id}", params={"wait": 5}).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
    raise AssertionError(f"job {job_id} did not finish")


def test_the_installed_roles_run_jobs(booted: Booted, roles: dict[str, Path]) -> None:
    image = ("red.png", png_bytes((220, 30, 30), (96, 96)), "image/png")
    with httpx.Client(base_url=booted.url, timeout=30) as http:
        classify = http.post(
            "/v1/classify",
            files=[("images", image), ("labels", (None, "red")), ("labels", (None, "blue"))],
        )
        job = finished(http, classify)
        assert job["status"] == "succeeded", job
        assert job["result"]["model"] == "embedded:clip-tiny"
        collection = http.post("/v1/collections", json={"name": "roles"}).json()
        ingest = http.post(f"/v1/collections/{collection['id']}/images", files=[("images", image)])
        assert finished(http, ingest)["status"] == "succeeded"
        search = http.post(f"/v1/collections/{collection['id']}/search", json={"query": "red"})
        assert finished(http, search)["status"] == "succeeded"
        assert http.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    # The worker image's healthcheck: a pool process with its models loaded beats.
    health = subprocess.run(
        [str(roles["worker"] / "bin" / "python"), "-m", "worker.health"],
        cwd=booted.folder,
        env=booted.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert health.returncode == 0 and health.stdout.startswith("healthy"), health.stderr
