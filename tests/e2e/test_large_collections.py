"""A collection past CLIPQ_INDEX_EXACT_BELOW is searched through FAISS by a real worker.

The answers are checked against a plain numpy scan of the embeddings the worker stored (in
Redis, or in CLIPQ_VECTOR_DIR's files), not against the index's own code.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from clipq.store.collections import Collections, collection_key
from clipq.store.vector_files import VectorFiles
from tests.e2e.conftest import Service, env_on, private_redis, running_service

IMAGES = 300


@pytest.fixture(scope="module")
def large(base_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("large")
    with private_redis(folder / "redis") as server:
        env = env_on(
            base_env,
            server,
            CLIPQ_INDEX_EXACT_BELOW="256",
            CLIPQ_BATCH_SIZE="32",
            CLIPQ_INDEX_DIR=str(folder / "indexes"),
        )
        with running_service(env, folder / "logs") as service:
            yield service


def noise_png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def collection(large: Service) -> str:
    collection_id = large.http.post("/v1/collections", json={"name": "large"}).json()["id"]
    for start in (0, 200):  # two ingests: the second lands after the index was built
        files = [
            ("images", (f"{i}.png", noise_png(i), "image/png")) for i in range(start, start + 200)
        ]
        if start:
            files = files[: IMAGES - start]
        response = large.http.post(f"/v1/collections/{collection_id}/images", files=files)
        job = large.wait_for(response.json()["id"], timeout=300)
        assert job["status"] == "succeeded", job["error"]
        search = large.http.post(
            f"/v1/collections/{collection_id}/search", json={"query": "x", "min_score": -1}
        )
        large.wait_for(search.json()["id"])  # the worker loads (and indexes) what is there
    return collection_id


def stored(large: Service, collection_id: str) -> tuple[list[str], np.ndarray]:
    store = Collections(large.redis)
    _, images, _, dim = store.counts(collection_id)
    rows = store.read_rows(collection_id, "emb", 0, images, dim).astype(np.float32)
    return store.image_ids(collection_id, 0, images), rows


def test_find_similar_through_the_index_matches_a_plain_scan(
    large: Service, collection: str
) -> None:
    ids, rows = stored(large, collection)
    assert len(ids) == IMAGES
    for row in (3, 150, 299):
        path = f"/v1/collections/{collection}/images/{ids[row]}/similar"
        job = large.wait_for(large.http.post(path, json={"top_k": 10}).json()["id"])
        assert job["status"] == "succeeded", job["error"]
        result = job["result"]
        assert result["approximate"] is True
        scores = rows @ rows[row]
        scores[row] = -np.inf  # the image itself is left out
        expected = [ids[i] for i in np.argsort(-scores)[:10]]
        got = [hit["image_id"] for hit in result["hits"]]
        assert len(set(got) & set(expected)) >= 9, (got, expected)
        for hit in result["hits"]:
            assert hit["image_score"] == pytest.approx(
                float(scores[ids.index(hit["image_id"])]), abs=5e-3
            )


def test_text_search_with_crops_through_the_index(large: Service, collection: str) -> None:
    response = large.http.post(
        f"/v1/collections/{collection}/search",
        json={"query": "a red circle", "top_k": 5, "rerank": "crops", "min_score": -1},
    )
    result = large.wait_for(response.json()["id"])["result"]
    assert result["approximate"] is True and len(result["hits"]) == 5
    for hit in result["hits"]:
        assert hit["score"] == pytest.approx(max(hit["image_score"], hit["crop_score"]))
        x0, y0, x1, y1 = hit["crop_box"]
        assert 0 <= x0 < x1 <= hit["width"] and 0 <= y0 < y1 <= hit["height"]
    calibrated = large.http.post(f"/v1/collections/{collection}/search", json={"query": "x"})
    assert large.wait_for(calibrated.json()["id"])["result"]["decision"] == "calibrated"


def test_a_restarted_worker_maps_the_saved_index_and_appends_new_rows(base_env, tmp_path) -> None:
    with private_redis(tmp_path / "redis") as server:
        env = env_on(
            base_env, server, CLIPQ_INDEX_EXACT_BELOW="256", CLIPQ_INDEX_DIR=str(tmp_path / "ix")
        )
        with running_service(env, tmp_path / "first") as first:  # trains and saves, then stops
            collection = ingest_and_search(first, range(280))
        snapshot = json.loads((tmp_path / "ix" / collection / "latest.json").read_text())
        assert snapshot["images"]["rows"] == 280
        with running_service(env, tmp_path / "again") as again:  # a new worker, same volume
            ingest_and_search(again, range(280, 285), collection)
            ids, rows = stored(again, collection)
            newest = len(ids) - 1  # added after the index was saved: searched beside it
            path = f"/v1/collections/{collection}/images/{ids[newest]}/similar"
            job = again.wait_for(again.http.post(path, json={"top_k": 5}).json()["id"])
            assert job["result"]["approximate"] is True
            scores = rows @ rows[newest]
            scores[newest] = -np.inf
            expected = {ids[i] for i in np.argsort(-scores)[:5]}
            assert len({h["image_id"] for h in job["result"]["hits"]} & expected) >= 4
    logs = "".join(p.read_text() for p in (tmp_path / "again").glob("*.log"))
    assert f"mapped the saved index of collection {collection}" in logs
    assert "saved the index" not in logs  # nothing was trained again


def ingest_and_search(service: Service, seeds, collection: str | None = None) -> str:
    if collection is None:
        collection = service.http.post("/v1/collections", json={"name": f"big {seeds[0]}"}).json()[
            "id"
        ]
    files = [("images", (f"{i}.png", noise_png(i), "image/png")) for i in seeds]
    response = service.http.post(f"/v1/collections/{collection}/images", files=files)
    assert service.wait_for(response.json()["id"], timeout=300)["status"] == "succeeded"
    search = service.http.post(
        f"/v1/collections/{collection}/search", json={"query": "x", "min_score": -1}
    )
    assert service.wait_for(search.json()["id"])["status"] == "succeeded"
    return collection


def test_a_collection_in_files_is_searched_from_them(base_env, tmp_path) -> None:
    """CLIPQ_VECTOR_DIR: rows in files, none in Redis; the index holds codes and re-scores
    from the files; what it answers matches a plain scan of them. The import is indexed once
    it has gone quiet, before any search, and once: not part by part."""
    from tests.e2e.test_imports import npy, pairs

    with private_redis(tmp_path / "redis") as server:
        env = env_on(
            base_env,
            server,
            CLIPQ_INDEX_EXACT_BELOW="256",
            CLIPQ_INDEX_DIR=str(tmp_path / "ix"),
            CLIPQ_VECTOR_DIR=str(tmp_path / "vectors"),
            CLIPQ_INDEX_AFTER_IMPORT_S="3",
        )
        with running_service(env, tmp_path / "logs") as service:
            dim = service.http.get("/v1/models").json()["models"][0]["embedding_dim"]
            collection = service.http.post("/v1/collections", json={"name": "files"}).json()["id"]
            for part in range(3):
                files = [("embeddings", (f"p{part}.npy", npy(pairs(dim, 400, seed=part)), "x/y"))]
                response = service.http.post(
                    f"/v1/collections/{collection}/embeddings", files=files
                )
                assert service.wait_for(response.json()["id"])["status"] == "succeeded"
            latest = tmp_path / "ix" / collection / "latest.json"
            deadline = time.monotonic() + 120
            while not latest.exists():  # no search sent: the clipq.index task builds it
                assert time.monotonic() < deadline, "the import was not indexed"
                time.sleep(0.2)
            assert json.loads(latest.read_text())["images"]["rows"] == 1200
            log = (tmp_path / "logs" / "worker0.log").read_text()
            # built once, at its full size: no index of a first part to extend
            held = [line for line in log.splitlines() if "images held" in line]
            assert len(held) == 1 and f"collection {collection}: 1200 images held" in held[0]
            store = Collections(service.redis, VectorFiles(tmp_path / "vectors"))
            assert store.vectors_in_files(collection)
            assert not service.redis.keys(f"{collection_key(collection)}:emb:*")
            ids = store.image_ids(collection, 0, 1200)
            rows = store.read_rows(collection, "emb", 0, 1200, dim).astype(np.float32)
            for row in (1, 600, 1199):
                path = f"/v1/collections/{collection}/images/{ids[row]}/similar"
                job = service.wait_for(service.http.post(path, json={"top_k": 5}).json()["id"])
                assert job["status"] == "succeeded", job["error"]
                assert job["result"]["approximate"] is True
                hits = job["result"]["hits"]
                assert hits[0]["image_id"] == ids[row ^ 1]  # its twin
                scores = rows @ rows[row]
                for hit in hits:
                    expected = float(scores[ids.index(hit["image_id"])])
                    assert hit["image_score"] == pytest.approx(expected, abs=2e-3)
            [saved] = (tmp_path / "ix" / collection).glob("images-*.faiss")
            assert saved.stat().st_size < 1200 * dim * 2  # codes and ids: less than fp16 copies
