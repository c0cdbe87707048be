"""One tenant cannot take the service from another: quotas, bounded derived work, no scans.

Two API keys on a service of their own, with quotas small enough to reach.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from clipq.store.collections import collection_key
from tests.e2e.conftest import Service, env_on, private_redis, running_service
from tests.support import distinct_pngs

KEY_A, KEY_B = "tenant-a-0123456789", "tenant-b-9876543210"
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}


@pytest.fixture(scope="module")
def shared(base_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("tenancy")
    with private_redis(folder / "redis") as server:
        env = env_on(
            base_env,
            server,
            CLIPQ_API_KEYS=f"{KEY_A},{KEY_B}",
            CLIPQ_MAX_COLLECTIONS_PER_TENANT="2",
            CLIPQ_MAX_IMAGES_PER_TENANT="3",
            CLIPQ_MAX_QUEUED_JOBS_PER_TENANT="3",
            CLIPQ_MAX_LABELS="5",
            CLIPQ_MAX_QUERIES="4",
        )
        with running_service(env, folder / "logs") as service:
            yield service


def images(count: int, offset: int = 0) -> list[tuple]:
    pngs = distinct_pngs(offset + count, (24, 24))[offset:]
    return [("images", (f"{offset + i}.png", data, "image/png")) for i, data in enumerate(pngs)]


def finished(service: Service, response, headers: dict[str, str]) -> dict:
    assert response.status_code == 202, response.text
    for _ in range(60):
        job = service.http.get(
            f"/v1/jobs/{response.json()['id']}", params={"wait": 2}, headers=headers
        ).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
    raise AssertionError("the job did not finish")


def collection(service: Service, headers: dict[str, str], name: str = "c") -> dict:
    response = service.http.post("/v1/collections", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def problem(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    if field is not None:
        assert body["errors"][0]["field"] == field, body
    return body


def test_a_tenant_cannot_fill_the_queue_for_the_others(shared: Service) -> None:
    for worker in shared.workers:  # nothing runs: every job stays queued
        worker.send_signal(19)  # SIGSTOP
    try:
        form = [*images(1, 50), ("labels", (None, "x")), ("labels", (None, "y"))]
        mine = [shared.http.post("/v1/classify", files=form, headers=A) for _ in range(3)]
        assert [r.status_code for r in mine] == [202, 202, 202]
        refused = problem(shared.http.post("/v1/classify", files=form, headers=A), 429)
        assert "CLIPQ_MAX_QUEUED_JOBS_PER_TENANT" in refused["detail"]
        assert shared.http.post("/v1/classify", files=form, headers=B).status_code == 202
        # A cancelled job frees its place.
        shared.http.delete(f"/v1/jobs/{mine[0].json()['id']}", headers=A)
        assert shared.http.post("/v1/classify", files=form, headers=A).status_code == 202
    finally:
        for worker in shared.workers:
            worker.send_signal(18)  # SIGCONT
    for job_id in shared.redis.zrange("clipq:jobs:queued", 0, -1):
        shared.http.delete(f"/v1/jobs/{job_id.decode()}", headers=A)
        shared.http.delete(f"/v1/jobs/{job_id.decode()}", headers=B)


def test_collection_and_image_quotas(shared: Service) -> None:
    first = collection(shared, A, "one")
    second = collection(shared, A, "two")
    refused = problem(shared.http.post("/v1/collections", json={"name": "3"}, headers=A), 403)
    assert refused["type"] == "/problems/quota-exceeded"
    assert "CLIPQ_MAX_COLLECTIONS_PER_TENANT" in refused["detail"]
    theirs = collection(shared, B, "b's")  # B is not affected
    path = f"/v1/collections/{first['id']}/images"
    job = finished(shared, shared.http.post(path, files=images(2), headers=A), A)
    assert job["result"]["added"] == 2
    problem(shared.http.post(path, files=images(2, 10), headers=A), 403)  # 2 + 2 > 3
    job = finished(shared, shared.http.post(path, files=images(1, 10), headers=A), A)
    assert job["result"]["added"] == 1
    b_path = f"/v1/collections/{theirs['id']}/images"
    assert finished(shared, shared.http.post(b_path, files=images(3), headers=B), B)["status"] == (
        "succeeded"
    )
    # Deleting gives the room back, images and collections alike.
    assert shared.http.delete(f"/v1/collections/{first['id']}", headers=A).status_code == 204
    third = collection(shared, A, "three")
    job = finished(
        shared,
        shared.http.post(f"/v1/collections/{third['id']}/images", files=images(3), headers=A),
        A,
    )
    assert job["result"]["added"] == 3
    for made in (second, third):
        shared.http.delete(f"/v1/collections/{made['id']}", headers=A)
    shared.http.delete(f"/v1/collections/{theirs['id']}", headers=B)


def test_derived_work_is_bounded_like_direct_input(shared: Service) -> None:
    made = collection(shared, A, "labels")
    path = f"/v1/collections/{made['id']}/images"
    many = ",".join(f"label{i}" for i in range(50_000))  # one field, 50,000 labels
    problem(
        shared.http.post(path, files=[*images(1), ("labels", (None, many))], headers=A),
        422,
        "labels[0]",
    )
    too_long = "x" * 201
    problem(
        shared.http.post(path, files=[*images(1), ("labels", (None, too_long))], headers=A),
        422,
        "labels[0]",
    )
    labelled = [*images(2, 20), ("labels", (None, "a,b,c")), ("labels", (None, "d,e"))]
    assert finished(shared, shared.http.post(path, files=labelled, headers=A), A)["status"] == (
        "succeeded"
    )
    # Five labels make five queries: more than CLIPQ_MAX_QUERIES, as if they had been sent.
    evaluate = f"/v1/collections/{made['id']}/evaluate"
    problem(shared.http.post(evaluate, json={}, headers=A), 422, "queries")
    sent = [{"query": f"q{i}", "relevant_labels": ["a"]} for i in range(5)]
    problem(shared.http.post(evaluate, json={"queries": sent}, headers=A), 422, "queries")
    ok = shared.http.post(evaluate, json={"queries": sent[:4]}, headers=A)
    assert finished(shared, ok, A)["status"] == "succeeded"
    problem(
        shared.http.post(evaluate, json={"prompt_template": "{} " + "y" * 600}, headers=A),
        422,
        "prompt_template",
    )
    shared.http.delete(f"/v1/collections/{made['id']}", headers=A)


def test_labels_stored_before_they_were_checked_do_not_break_evaluation(shared: Service) -> None:
    made = collection(shared, A, "legacy")
    path = f"/v1/collections/{made['id']}/images"
    finished(shared, shared.http.post(path, files=[*images(1, 30)], headers=A), A)
    shared.redis.hset(f"{collection_key(made['id'])}:labels", "z" * 300, 1)  # as an old ingest did
    evaluate = shared.http.post(f"/v1/collections/{made['id']}/evaluate", json={}, headers=A)
    assert "longer than 200" in problem(evaluate, 422, "queries")["detail"]
    shared.http.delete(f"/v1/collections/{made['id']}", headers=A)


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("deep metadata", "metadata[0]"),
        ("very deep metadata", "metadata[0]"),
        ("huge offset", "offset"),
    ],
)
def test_inputs_that_reached_a_500(shared: Service, case: str, field: str) -> None:
    made = collection(shared, B, case)
    if case == "huge offset":
        response = shared.http.get(
            f"/v1/collections/{made['id']}/images",
            params={"offset": 9223372036854775807},
            headers=B,
        )
    else:
        depth = 300 if case == "deep metadata" else 1200
        deep = json.dumps({"a": 1})
        deep = "[" * depth + deep + "]" * depth
        response = shared.http.post(
            f"/v1/collections/{made['id']}/images",
            files=[*images(1), ("metadata", (None, '{"x": ' + deep + "}"))],
            headers=B,
        )
    problem(response, 422, field)
    shared.http.delete(f"/v1/collections/{made['id']}", headers=B)


def test_hot_paths_never_scan_the_keyspace(shared: Service) -> None:
    made = collection(shared, A, "scan")
    finished(
        shared,
        shared.http.post(f"/v1/collections/{made['id']}/images", files=images(2, 40), headers=A),
        A,
    )
    shared.redis.config_resetstat()
    for _ in range(3):
        assert shared.http.get("/readyz").status_code == 200
        assert shared.http.get("/metrics").status_code == 200
        assert shared.http.get("/v1/collections", headers=A).status_code == 200
    assert shared.http.delete(f"/v1/collections/{made['id']}", headers=A).status_code == 204
    commands = shared.redis.info("commandstats")
    assert not {"cmdstat_scan", "cmdstat_keys"} & set(commands), sorted(commands)
    assert not shared.redis.keys(f"{collection_key(made['id'])}*")  # and the delete left nothing
