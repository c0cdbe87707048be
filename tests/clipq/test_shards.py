"""Shards: which rows are whose, and a shard read as a collection of its own."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from clipq.store.collections import Collections
from clipq.store.shards import Shard, ShardView
from clipq.store.vector_files import VectorFiles
from tests.clipq.test_collection_store import collection, records


@pytest.mark.parametrize("count", [1, 2, 3])
def test_every_row_is_one_shards_and_the_maps_agree(count: int) -> None:
    shards = [Shard(n, count, block=4) for n in range(count)]
    rows = np.arange(50)
    owners = np.stack([s.owns(rows) for s in shards])
    assert (owners.sum(axis=0) == 1).all()
    for shard in shards:
        mine = rows[shard.owns(rows)]
        assert shard.local_size(50) == len(mine)
        local = np.arange(len(mine))
        assert np.array_equal(shard.to_global(local), mine)
        assert np.array_equal(shard.to_local(mine), local)
        runs = shard.runs(1, len(mine))
        assert np.array_equal(np.concatenate([np.arange(a, b) for a, b in runs]), mine[1:])


@pytest.mark.parametrize("files", [False, True])
def test_a_shard_view_reads_its_images_and_their_crops(redis_url: str, tmp_path, files) -> None:
    base = Collections(
        redis.Redis.from_url(redis_url), VectorFiles(tmp_path / "v") if files else None
    )
    collection_id = collection(base, "shards")
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((10, 8)).astype(np.float16)
    per_image = [1, 0, 2, 0, 1, 3, 0, 0, 1, 2]
    crops = rng.standard_normal((sum(per_image), 8)).astype(np.float16)
    names = [f"{i:02d}" for i in range(10)]
    base.append(collection_id, records(*names), embeddings, crops, per_image, 100)
    ids = base.image_ids(collection_id, 0, 10)
    crop_owner = np.repeat(np.arange(10), per_image)
    for number in range(2):
        shard = Shard(number, 2, block=3)
        view = ShardView(base, shard)
        mine = np.flatnonzero(shard.owns(np.arange(10)))
        _, images, crop_count, dim = view.counts(collection_id)
        assert (images, dim) == (len(mine), 8)
        assert view.image_ids(collection_id, 0, images) == [ids[i] for i in mine]
        rows = view.read_rows(collection_id, "emb", 1, images, 8)
        assert np.array_equal(rows, embeddings[mine[1:]])
        my_crops = np.flatnonzero(np.isin(crop_owner, mine))
        assert crop_count == len(my_crops)
        assert np.array_equal(
            view.read_rows(collection_id, "crop", 0, crop_count, 8), crops[my_crops]
        )
        owners = view.read_rows(collection_id, "owner", 0, crop_count, 1)[:, 0]
        assert np.array_equal(mine[owners], crop_owner[my_crops])  # local rows of their images
        if files:
            taken = view.take_rows(collection_id, "emb", np.array([0, images - 1]), 8)
            assert np.array_equal(taken, embeddings[mine[[0, -1]]].astype(np.float32))
