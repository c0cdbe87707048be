"""The worker's half of the collection store against a real Redis: appends under the quota."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis

from clipq.errors import QuotaExceeded, ServiceUnavailable
from clipq.store.collections import (
    LAYOUT_KEY,
    AsyncCollections,
    Collections,
    collection_key,
    tenant_collections_key,
    untagged_key,
)
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
    store.redis.zadd(tenant_collections_key(owner), {collection_id: 0})
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
    assert store.room(owner, 3) == 0 and store.room(owner, 10) == 7
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
    part = [("p.jpg", ["x"], {}), ("q.jpg", [], {"caption": "a q"})]
    rows = np.ones((2, 8), np.float16)
    assert store.import_rows(collection_id, "img_emb_0", part, rows, 10) == (2, False)
    assert store.import_rows(collection_id, "img_emb_0", part, rows, 10) == (2, True)
    with pytest.raises(QuotaExceeded):
        store.import_rows(collection_id, "img_emb_1", part * 5, np.ones((10, 8)), 10)
    assert store.counts(collection_id)[1] == 2
    assert not store.redis.exists(f"{collection_key(collection_id)}:sha")  # none to dedupe by


def test_imported_images_read_like_ingested_ones_from_their_blocks(store: Collections) -> None:
    collection_id = collection(store, uuid.uuid4().hex[:16])
    append(store, collection_id, ["a" * 64], quota=100)  # row 0: an ingested image's hash
    first = [(f"{i}.jpg", ["cat", "dog"][: i % 3], {"n": i} if i % 2 else {}) for i in range(7)]
    second = [("ünï\0cödé.jpg", ["dog"], {"caption": "tab\tand\nnewline"})]
    vectors = np.random.default_rng(1).standard_normal((8, 8)).astype(np.float16)
    assert store.import_rows(collection_id, "one", first, vectors[:7], 100) == (8, False)
    assert store.import_rows(collection_id, "two", second, vectors[7:], 100) == (9, False)
    ids = store.image_ids(collection_id, 0, 9)
    assert len(set(ids)) == 9 and all(len(i) == 24 for i in ids)
    found = store.images(collection_id, ids[::-1])[::-1]  # any order, across blocks
    assert [f.filename for f in found] == [
        "a" * 64 + ".png",
        *(f for f, _, _ in first),
        "ünïcödé.jpg",
    ]
    assert [f.labels for f in found[1:]] == [labels for _, labels, _ in first + second]
    assert [f.metadata for f in found[1:]] == [meta for _, _, meta in first + second]
    assert found[0].thumbnail_url and not any(f.thumbnail_url for f in found[1:])
    assert store.image_labels(collection_id, ids) == [["x"], *(f.labels for f in found[1:])]
    assert store.labels(collection_id) == ["cat", "dog", "x"]
    counts = store.redis.hgetall(f"{collection_key(collection_id)}:labels")
    assert counts == {b"x": b"1", b"cat": b"4", b"dog": b"3"}
    np.testing.assert_allclose(store.vector_of(collection_id, ids[8]), vectors[7], atol=1e-3)
    # an id that names a row but not its image, a row past a block, or nothing, finds none
    forged = [ids[8][:12] + ids[4][12:], ids[8][:12] + f"{9:012x}", "nope", ids[1][:23] + "g"]
    assert store.images(collection_id, forged) == [None] * 4
    assert store.vector_of(collection_id, forged[0]) is None


def test_imported_blocks_are_deleted_with_their_collection(
    store: Collections, redis_url: str
) -> None:
    owner = uuid.uuid4().hex[:16]
    collection_id = collection(store, owner)
    store.redis.zadd(tenant_collections_key(owner), {collection_id: 1})
    append(store, collection_id, ["b" * 64], quota=100)
    store.import_rows(collection_id, "one", [("a.jpg", ["x"], {})] * 3, np.ones((3, 8)), 100)
    key = collection_key(collection_id)
    assert store.redis.exists(f"{key}:block:1", f"{key}:img:{'b' * 24}") == 2

    async def delete() -> bool:
        api = AsyncCollections(aioredis.Redis.from_url(redis_url))
        try:
            assert (await api.images(collection_id, 0, 10))[0] == 4
            return await api.delete(collection_id)
        finally:
            await api.redis.aclose()

    assert asyncio.run(delete())
    assert not store.redis.keys(f"*{collection_id}*")


def test_an_import_is_due_for_indexing_once_parts_stop_landing(store: Collections) -> None:
    collection_id = uuid.uuid4().hex
    assert store.mark_imported(collection_id, now=100.0)  # the first part: schedule
    assert not store.mark_imported(collection_id, now=101.0)  # one is scheduled already
    assert store.index_due_in(collection_id, quiet=5, now=104.0) == pytest.approx(2.0)
    assert store.index_due_in(collection_id, quiet=5, now=106.0) == 0  # quiet: index now
    assert store.mark_imported(collection_id, now=107.0)  # a later part schedules anew
    store.redis.delete(f"{collection_key(collection_id)}:index_due")
    assert store.index_due_in(collection_id, quiet=5, now=108.0) == 0  # mark gone: index


def test_a_collection_stored_before_hash_tags_is_renamed_into_them(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    collection_id, owner = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    old, new = untagged_key(collection_id), collection_key(collection_id)
    client.delete(LAYOUT_KEY)
    client.hset(old, mapping={"id": collection_id, "owner": owner, "image_count": 2,
                              "crop_count": 1, "version": 3})  # fmt: skip
    client.rpush(f"{old}:rows", "i1", "i2")
    for image_id in ("i1", "i2"):
        client.hset(f"{old}:img:{image_id}", mapping={"id": image_id, "filename": image_id})
    client.append(f"{old}:emb:0", b"\1" * 32)
    client.append(f"{old}:crop:0", b"\2" * 16)
    client.append(f"{old}:owner:0", b"\0" * 4)
    client.hset(f"{old}:labels", "cat", 2)
    client.zadd(tenant_collections_key(owner), {collection_id: 0})

    async def retag() -> int:
        api = AsyncCollections(aioredis.Redis.from_url(redis_url))
        try:
            return await api.retag_all()
        finally:
            await api.redis.aclose()

    assert asyncio.run(retag()) == 1
    assert not client.keys(f"{old}*")  # "{" is no pattern character: only untagged names
    assert client.lrange(f"{new}:rows", 0, -1) == [b"i1", b"i2"]
    assert client.hget(f"{new}:img:i2", "filename") == b"i2"
    assert client.get(f"{new}:emb:0") == b"\1" * 32 and client.get(f"{new}:owner:0")
    assert Collections(client).counts(collection_id) == (3, 2, 1, 0)
    assert Collections(client).room(owner, 10) == 8
    assert asyncio.run(retag()) == 0  # once: clipq:layout says it is done
