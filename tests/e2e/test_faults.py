"""Faults with real processes: a worker killed mid-job, Redis restarting, device OOM, expiry.

Each test runs its own service on its own redis-server, so nothing here can
disturb (or be disturbed by) the shared service of the other tests.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Service, env_on, private_redis, running_service, start_worker, stop
from tests.support import distinct_pngs, png_bytes


def submit(service: Service, count: int, labels=("a", "b"), offset: int = 0) -> dict:
    images = distinct_pngs(offset + count)[offset:]
    files = [("images", (f"{i}.png", d, "image/png")) for i, d in enumerate(images)]
    files += [("labels", (None, label)) for label in labels]
    response = service.http.post("/v1/classify", files=files)
    assert response.status_code == 202, response.text
    return response.json()


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_worker_killed_mid_job_hands_it_to_another(base_env, tmp_path: Path) -> None:
    with private_redis(tmp_path / "redis") as server:
        env = env_on(base_env, server, CLIPQ_BATCH_SIZE="1", CLIPQ_JOB_LEASE_SECONDS="3")
        with running_service(env, tmp_path / "logs", workers=2) as service:
            job = submit(service, 300)
            key = f"clipq:job:{job['id']}"
            deadline = time.monotonic() + 60
            while int(service.redis.hget(key, "progress_done") or 0) < 20:
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.05)
            child = int(service.redis.hget(key, "lease").decode().split(":")[1])
            main = parent_of(child)
            assert main in [p.pid for p in service.workers]
            os.kill(main, signal.SIGKILL)  # the whole worker dies, as on a lost host
            os.kill(child, signal.SIGKILL)

            final = service.wait_for(job["id"], timeout=120)
            assert final["status"] == "succeeded", final
            assert final["attempts"] == 2
            images = final["result"]["images"]
            assert [i["filename"] for i in images] == [f"{i}.png" for i in range(300)]
            assert all(len(i["predictions"]) == 2 for i in images)
            assert not service.redis.zscore("clipq:jobs:running", job["id"])


def test_redis_restart_keeps_jobs_and_the_api_answers_503_meanwhile(
    base_env, tmp_path: Path
) -> None:
    with private_redis(tmp_path / "redis") as server:
        env = env_on(base_env, server)
        with running_service(env, tmp_path / "logs", workers=1) as service:
            done = service.wait_for(submit(service, 2)["id"])
            assert done["status"] == "succeeded"
            stop(service.workers[0])  # no worker: the next job stays queued
            queued = submit(service, 3)

            server.stop()
            down = service.http.get(f"/v1/jobs/{done['id']}")
            assert down.status_code == 503
            assert down.headers["content-type"] == "application/problem+json"
            assert int(down.headers["retry-after"]) > 0
            refused = service.http.post(
                "/v1/classify",
                files=[("images", ("a.png", png_bytes((1, 2, 3)))), ("labels", (None, "x"))],
            )
            assert refused.status_code == 503
            assert service.http.get("/readyz").status_code == 503

            server.start()  # same port, same AOF
            after = service.http.get(f"/v1/jobs/{done['id']}").json()
            assert after["status"] == "succeeded" and after["result"] == done["result"]
            assert service.http.get(f"/v1/jobs/{queued['id']}").json()["status"] == "queued"

            service.workers.append(start_worker(env, tmp_path / "logs" / "again.log", "again"))
            final = service.wait_for(queued["id"], timeout=120)
            assert final["status"] == "succeeded" and len(final["result"]["images"]) == 3


def test_device_out_of_memory_halves_batches_then_fails_single_images(
    base_env, tmp_path: Path
) -> None:
    with private_redis(tmp_path / "redis") as server:
        for limit, expect_error in (("1", False), ("0", True)):
            env = env_on(base_env, server, CLIPQ_BATCH_SIZE="4", CLIPQ_FAULT_OOM_ABOVE_BATCH=limit)
            with running_service(env, tmp_path / f"logs{limit}") as service:
                # Other images each round: cached embeddings would need no forward pass at all.
                final = service.wait_for(submit(service, 6, offset=10 * int(limit))["id"])
                assert final["status"] == "succeeded"
                for image in final["result"]["images"]:
                    if expect_error:
                        assert image["error"]["status"] == 507 and image["predictions"] == []
                    else:
                        assert image["error"] is None and len(image["predictions"]) == 2
                log = (tmp_path / f"logs{limit}" / "worker0.log").read_text()
                assert "halving" in log


def test_results_expire_and_then_read_as_404(base_env, tmp_path: Path) -> None:
    with private_redis(tmp_path / "redis") as server:
        env = env_on(base_env, server, CLIPQ_JOB_TTL_SECONDS="4")
        with running_service(env, tmp_path / "logs") as service:
            final = service.wait_for(submit(service, 1)["id"])
            assert final["status"] == "succeeded"
            time.sleep(5)
            gone = service.http.get(f"/v1/jobs/{final['id']}")
            assert gone.status_code == 404
            assert "expired" in gone.json()["detail"]


def test_queue_limit_answers_429_and_keeps_what_was_accepted(base_env, tmp_path: Path) -> None:
    with private_redis(tmp_path / "redis") as server:
        env = env_on(base_env, server, CLIPQ_MAX_QUEUED_JOBS="2")
        with running_service(env, tmp_path / "logs", workers=0) as service:
            first, second = submit(service, 1), submit(service, 1)
            refused = service.http.post(
                "/v1/classify",
                files=[("images", ("a.png", png_bytes((1, 2, 3)))), ("labels", (None, "x"))],
            )
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) > 0
            assert refused.headers["content-type"] == "application/problem+json"
            for job in (first, second):
                assert service.http.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
            service.http.delete(f"/v1/jobs/{first['id']}")  # a place frees up
            assert submit(service, 1)["status"] == "queued"
            with pytest.raises(AssertionError):
                submit(service, 1)


def test_unknown_host_for_the_api_is_not_a_500(base_env, tmp_path: Path) -> None:
    env = {**base_env, "CLIPQ_REDIS_URL": "redis://127.0.0.1:1/0"}  # nothing listens there
    with running_service(env, tmp_path / "logs", workers=0) as service:
        response = service.http.get("/v1/jobs/x")
        assert response.status_code == 503
        assert service.http.get("/healthz").status_code == 200
        with pytest.raises(httpx.HTTPStatusError):
            service.http.get("/readyz").raise_for_status()


def test_redis_out_of_memory_is_a_507_and_keeps_what_was_accepted(base_env, tmp_path: Path) -> None:
    with (
        private_redis(tmp_path / "redis") as server,
        running_service(env_on(base_env, server), tmp_path / "logs") as service,
    ):
        accepted = submit(service, 1)
        assert service.wait_for(accepted["id"])["status"] == "succeeded"
        deadline = time.monotonic() + 10  # and its message acknowledged (kombu's own write)
        while service.redis.hlen("unacked") and time.monotonic() < deadline:
            time.sleep(0.05)
        service.redis.config_set("maxmemory", "1")  # every write that needs memory fails
        try:
            for response in (
                service.http.post(
                    "/v1/classify",
                    files=[
                        ("images", ("a.png", png_bytes((1, 2, 3)))),
                        ("labels", (None, "a")),
                    ],
                ),
                service.http.post("/v1/collections", json={"name": "full"}),
            ):
                assert response.status_code == 507, response.text
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["type"] == "/problems/store-out-of-memory"
                assert int(response.headers["retry-after"]) > 0
            kept = service.http.get(f"/v1/jobs/{accepted['id']}")
            assert kept.status_code == 200 and kept.json()["status"] == "succeeded"
        finally:
            service.redis.config_set("maxmemory", "0")
        # The refused job left nothing behind: no record, no place in any queue.
        assert service.redis.keys("clipq:job:*") == [f"clipq:job:{accepted['id']}".encode()]
        assert service.redis.zcard("clipq:jobs:queued") == 0
        assert service.redis.zcard("clipq:tenant:-:jobs") == 0
        again = submit(service, 1, offset=5)
        assert service.wait_for(again["id"])["status"] == "succeeded"
