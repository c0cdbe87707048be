"""The worker's half of the collection store against a real Redis: appends under the quota."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import redis

from clipq.store.collections import Collections, collection_key, tenant_key


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
