"""A worker's collection files: what a deleted collection leaves behind is swept."""

from __future__ import annotations

import numpy as np
import redis

from clipq.store.collections import Collections, collection_key
from clipq.store.vector_files import VectorFiles
from tests.clipq.test_collection_store import collection, records
from worker.collections import CollectionIndexes


def test_the_files_of_deleted_collections_are_swept(redis_url: str, tmp_path) -> None:
    store = Collections(redis.Redis.from_url(redis_url), VectorFiles(tmp_path / "vectors"))
    kept, deleted = collection(store, "sweep"), collection(store, "sweep")
    for collection_id in (kept, deleted):
        rows = np.ones((2, 8), np.float16)
        store.append(collection_id, records("a", "b"), rows, rows[:0], [0, 0], 100)
    (tmp_path / "indexes" / deleted).mkdir(parents=True)  # a saved index too
    store.redis.delete(collection_key(deleted))  # what the API's delete does first
    indexes = CollectionIndexes(store, folder=tmp_path / "indexes")
    assert indexes.sweep() == [deleted]
    assert [p.name for p in (tmp_path / "vectors").iterdir()] == [kept]
    assert not (tmp_path / "indexes" / deleted).exists()
    assert indexes.get(kept).size == 2
