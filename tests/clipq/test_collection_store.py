"""The worker's half of the collection store against a real Redis: appends under the quota."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import redis

from clipq.errors import QuotaExceeded, ServiceUnavailable
from clipq.store.collections import Collections, collection_key, tenant_key
from clipq.store.vector_files import VectorFiles


@pytest.fixture
def store(redis_url: str) -> Collections:
    return Collections(redis.Redis.from_url(redis_url))


def collection(store: Collections, owner: str) -> str:
    collection_id = uuid.uuid4().hex
    store.redis.hset(
        collection_key(collection_id),
        mapping={
            "id": collection_id,
            "owner": owner,
            "image_count": 0,
            "crop_count": 0,
            "version": 0,
        },
    )
    return collection_id


def records(*shas: str) -> list[dict]:
    return [
        {"id": sha[:24], "sha256": sha, "filename": f"{sha}.png", "labels": ["x"],
         "metadata": {}, "regions": [], "width": 4, "height": 4, "thumbnail": b""}
        for sha in shas
    ]  # fmt: skip


def append(store: Collections, collection_id: str, shas: list[str], quota: int) -> dict:
    rows = np.ones((len(shas), 8), np.float32)
    return store.append(
        collection_id, records(*shas), rows, np.zeros((0, 8)), [0] * len(shas), quota
    )


def test_the_tenant_quota_holds_across_its_collections(store: Collections) -> None:
    owner = uuid.uuid4().hex[:16]
    first, second = collection(store, owner), collection(store, owner)
    assert set(append(store, first, ["a" * 64, "b" * 64], quota=3)) == {"a" * 64, "b" * 64}
    # One place left for this tenant, whichever collection the next images go to.
    assert set(append(store, second, ["c" * 64, "d" * 64], quota=3)) == {"c" * 64}
    assert append(store, second, ["e" * 64], quota=3) == {}
    assert int(store.redis.hget(tenant_key(owner), "images")) == 3
    # Bytes already stored are no new image: they need no room.
    assert append(store, first, ["a" * 64], quota=3) == {"a" * 64: "a" * 24}
    assert store.counts(second)[1] == 1


def test_an_append_to_a_deleted_collection_is_a_lookup_error(store: Collections) -> None:
    with pytest.raises(LookupError):
        append(store, uuid.uuid4().hex, ["f" * 64], quota=10)


@pytest.fixture
def file_store(redis_url: str, tmp_path) -> Collections:
    return Collections(redis.Redis.from_url(redis_url), VectorFiles(tmp_path / "vectors"))


def test_a_new_collection_keeps_its_rows_in_files_and_redis_counts_them(
    file_store: Collections, tmp_path
) -> None:
    collection_id = collection(file_store, "files")
    rows = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float16)
    crops = np.ones((3, 8), np.float16)
    file_store.append(collection_id, records(*"abcde"), rows, crops, [2, 0, 1, 0, 0], 100)
    assert file_store.vectors_in_files(collection_id)
    key = collection_key(collection_id)
    assert not file_store.redis.exists(f"{key}:emb:0", f"{key}:crop:0", f"{key}:owner:0")
    assert np.array_equal(file_store.read_rows(collection_id, "emb", 1, 5, 8), rows[1:])
    assert file_store.read_rows(collection_id, "owner", 0, 3, 1)[:, 0].tolist() == [0, 0, 2]
    taken = file_store.take_rows(collection_id, "emb", np.array([0, 3]), 8)
    assert taken.dtype == np.float32 and np.array_equal(taken, rows[[0, 3]].astype(np.float32))
    # what a writer that died before committing left past the rows is cut off by the next
    files = file_store.files
    assert files is not None
    files.write(collection_id, "emb", 5, np.full((4, 8), 9, np.float16))  # never committed
    more = np.full((2, 8), 2, np.float16)
    file_store.append(collection_id, records("f", "g"), more, crops[:0], [0, 0], 100)
    assert np.array_equal(file_store.read_rows(collection_id, "emb", 5, 7, 8), more)
    path = files.home(collection_id) / "emb-00000.bin"
    assert path.stat().st_size == 7 * 8 * 2
    # a worker without the folder refuses such a collection clearly, instead of guessing
    bare = Collections(file_store.redis)
    with pytest.raises(ServiceUnavailable, match="CLIPQ_VECTOR_DIR"):
        bare.read_rows(collection_id, "emb", 0, 1, 8)


def test_a_collection_that_began_in_redis_stays_there(redis_url: str, tmp_path) -> None:
    plain = Collections(redis.Redis.from_url(redis_url))
    collection_id = collection(plain, "redis")
    append(plain, collection_id, ["a" * 64], quota=10)
    later = Collections(plain.redis, VectorFiles(tmp_path / "vectors"))
    append(later, collection_id, ["b" * 64], quota=10)
    assert not later.vectors_in_files(collection_id)
    assert later.read_rows(collection_id, "emb", 0, 2, 8).shape == (2, 8)
    assert not (tmp_path / "vectors").exists()


def test_a_bulk_part_is_imported_once_and_whole(store: Collections) -> None:
    collection_id = collection(store, uuid.uuid4().hex[:16])
    part = [{**r, "sha256": ""} for r in records("p" * 64, "q" * 64)]
    rows = np.ones((2, 8), np.float16)
    assert store.import_rows(collection_id, "img_emb_0", part, rows, 10) == (2, False)
    assert store.import_rows(collection_id, "img_emb_0", part, rows, 10) == (2, True)
    with pytest.raises(QuotaExceeded):
        store.import_rows(collection_id, "img_emb_1", part * 5, np.ones((10, 8)), 10)
    assert store.counts(collection_id)[1] == 2
    assert not store.redis.exists(f"{collection_key(collection_id)}:sha")  # none to dedupe by
