"""A collection split over two workers (CLIPQ_SHARDS=2), each holding half of it.

A search fans out to both shards' queues; the part that arrives last answers. The answers
are checked against a plain numpy scan of the stored embeddings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from clipq.store.collections import Collections
from clipq.store.vector_files import VectorFiles
from tests.e2e.conftest import (
    Service,
    _start_celery,
    env_on,
    private_redis,
    running_service,
    stop,
)
from tests.e2e.test_imports import npy, pairs

ROWS, BLOCK = 600, 64


@pytest.fixture(scope="module")
def sharded(base_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("shards")
    with private_redis(folder / "redis") as server:
        env = env_on(
            base_env,
            server,
            CLIPQ_SHARDS="2",
            CLIPQ_SHARD_BLOCK_ROWS=str(BLOCK),
            CLIPQ_INDEX_EXACT_BELOW="256",
            CLIPQ_VECTOR_DIR=str(folder / "vectors"),
        )
        with running_service(env, folder / "logs") as service:  # the API and a general worker
            shards = [
                _start_celery(
                    ["worker.celery_app", "worker", "--concurrency", "1", "-Q", f"clipq.shard.{n}"],
                    {**env, "CLIPQ_WORKER_SHARD": str(n)},
                    folder / "logs" / f"shard{n}.log",
                    f"shard{n}",
                )
                for n in range(2)
            ]
            try:
                deadline = time.monotonic() + 120
                while service.http.get("/v1/models").json().get("workers", 0) < 3:
                    assert time.monotonic() < deadline, "the shard workers did not start"
                    time.sleep(0.5)
                service.vectors = folder / "vectors"
                yield service
            finally:
                for process in shards:
                    stop(process)


@pytest.fixture(scope="module")
def collection(sharded: Service) -> str:
    dim = sharded.http.get("/v1/models").json()["models"][0]["embedding_dim"]
    collection_id = sharded.http.post("/v1/collections", json={"name": "split"}).json()["id"]
    for part in range(2):
        rows = pairs(dim, ROWS // 2, seed=10 + part)
        files = [("embeddings", (f"p{part}.npy", npy(rows), "application/octet-stream"))]
        response = sharded.http.post(f"/v1/collections/{collection_id}/embeddings", files=files)
        assert sharded.wait_for(response.json()["id"])["status"] == "succeeded"
    return collection_id


def stored(service: Service, collection_id: str) -> tuple[list[str], np.ndarray]:
    store = Collections(service.redis, VectorFiles(service.vectors))
    _, images, _, dim = store.counts(collection_id)
    return store.image_ids(collection_id, 0, images), store.read_rows(
        collection_id, "emb", 0, images, dim
    ).astype(np.float32)


def test_find_similar_across_shards_matches_a_plain_scan(sharded: Service, collection: str):
    ids, rows = stored(sharded, collection)
    for row in (1, 64, 300, 599):  # images of either shard, each finding the other's too
        path = f"/v1/collections/{collection}/images/{ids[row]}/similar"
        job = sharded.wait_for(sharded.http.post(path, json={"top_k": 6}).json()["id"])
        assert job["status"] == "succeeded", job["error"]
        scores = rows @ rows[row]
        scores[row] = -np.inf
        expected = [ids[i] for i in np.argsort(-scores)[:6]]
        got = [hit["image_id"] for hit in job["result"]["hits"]]
        assert got[0] == ids[row ^ 1] and len(set(got) & set(expected)) >= 5, (got, expected)
        assert all(hit["image_id"] != ids[row] for hit in job["result"]["hits"])
        for hit in job["result"]["hits"]:
            expected_score = float(scores[ids.index(hit["image_id"])])
            assert hit["image_score"] == pytest.approx(expected_score, abs=2e-3)
        assert job["result"]["approximate"] is True


def test_text_search_merges_the_shards_and_calibrates_on_all_of_them(
    sharded: Service, collection: str
) -> None:
    search = f"/v1/collections/{collection}/search"
    job = sharded.wait_for(
        sharded.http.post(search, json={"query": "x", "top_k": 50, "min_score": -1}).json()["id"]
    )
    hits = job["result"]["hits"]
    assert len(hits) == 50 and [h["score"] for h in hits] == sorted(
        (h["score"] for h in hits), reverse=True
    )
    ids, _ = stored(sharded, collection)
    shards = {(ids.index(h["image_id"]) // BLOCK) % 2 for h in hits}
    assert shards == {0, 1}  # the top 50 of 600 come from both halves
    calibrated = sharded.wait_for(sharded.http.post(search, json={"query": "x"}).json()["id"])
    assert calibrated["result"]["decision"] == "calibrated"


def test_each_shard_worker_holds_its_half_and_the_general_worker_none(
    sharded: Service, collection: str
) -> None:
    logs = Path(sharded.logs)
    held = {
        n: (logs / f"shard{n}.log").read_text().count(f"collection {collection}, shard {n} of 2")
        for n in range(2)
    }
    assert held[0] and held[1]
    shard0 = (logs / "shard0.log").read_text()
    shard1 = (logs / "shard1.log").read_text()
    # 600 rows in blocks of 64 dealt round-robin: 5 blocks to shard 0, 4 and a part to shard 1
    assert f"collection {collection}, shard 0 of 2: 320 images held" in shard0
    assert f"collection {collection}, shard 1 of 2: 280 images held" in shard1
    assert "images held" not in (logs / "worker0.log").read_text()
