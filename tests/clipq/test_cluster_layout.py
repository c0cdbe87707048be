"""The collection key layout on a real three-node Redis Cluster: every script, transaction and
lock of a collection touches one slot, and collections spread over the nodes.

The jobs and the Celery broker keep their single Redis (see the README); these are the
collection store's own operations, API half and worker half, through redis-py's cluster
clients.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
import redis.asyncio.cluster as async_cluster
from redis.cluster import RedisCluster

from clipcore.schemas import CropBackground
from clipq.errors import QuotaExceeded
from clipq.store.collections import AsyncCollections, Collections, collection_key
from clipq.store.vector_files import VectorFiles
from tests.clipq.test_collection_store import records

NODES = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def cluster_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    folder = tmp_path_factory.mktemp("cluster")
    ports = [free_port() for _ in range(NODES)]
    servers = [
        subprocess.Popen(
            ["redis-server", "--port", str(port), "--cluster-port", str(free_port()),
             "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
             "--dir", str(folder), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        for port in ports
    ]  # fmt: skip
    try:
        for port in ports:
            _wait(lambda p=port: redis.Redis(port=p).ping())
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True,
        )  # fmt: skip
        for port in ports:
            _wait(lambda p=port: redis.Redis(port=p).cluster("info")["cluster_state"] == "ok")
        yield ports[0]
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)


def _wait(ready, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if ready():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the Redis cluster did not come up")
        time.sleep(0.1)


def test_collections_live_whole_on_one_slot_and_spread_over_the_nodes(
    cluster_port: int, tmp_path: Path
) -> None:
    client = RedisCluster(host="127.0.0.1", port=cluster_port)
    in_redis = Collections(client)  # rows in Redis segments
    store = Collections(client, VectorFiles(tmp_path / "vectors"))  # rows in files

    async def create(count: int) -> list[str]:
        api = AsyncCollections(async_cluster.RedisCluster(host="127.0.0.1", port=cluster_port))
        made = [
            await api.create(f"c{i}", "m", CropBackground.keep, "tenant", 100) for i in range(count)
        ]
        assert await api.create("one too many", "m", CropBackground.keep, "tenant", count) is None
        await api.redis.aclose()
        return [c.id for c in made if c]

    ids = asyncio.run(create(12))
    assert len(ids) == 12
    nodes = {client.get_node_from_key(collection_key(c)).name for c in ids}
    assert len(nodes) > 1  # twelve random ids on one of three nodes: p = 2e-5

    ingested, imported = ids[0], ids[1]
    rows = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    stored = in_redis.append(ingested, records("a" * 64, "b" * 64, "c" * 64), rows,
                          np.ones((2, 8), np.float32), [2, 0, 0], max_tenant_images=5)  # fmt: skip
    assert len(stored) == 3
    part = [(f"{i}.jpg", ["x"], {}) for i in range(4)]
    with pytest.raises(QuotaExceeded, match="do not fit"):  # 3 of 5 stored: 4 more do not fit
        store.import_rows(imported, "p0", part, rows[[0, 1, 2, 0]], max_tenant_images=5)
    assert store.import_rows(imported, "p0", part, rows[[0, 1, 2, 0]], 10) == (4, False)
    assert store.import_rows(imported, "p0", part, rows[[0, 1, 2, 0]], 10) == (4, True)
    assert store.room("tenant", 10) == 3

    assert in_redis.counts(ingested)[1:] == (3, 2, 8)
    assert client.exists(f"{collection_key(ingested)}:emb:0")
    np.testing.assert_allclose(in_redis.read_rows(ingested, "emb", 0, 3, 8), rows, atol=1e-3)
    np.testing.assert_allclose(store.read_rows(imported, "emb", 0, 4, 8), rows[[0, 1, 2, 0]],
                               atol=1e-3)  # fmt: skip
    found = store.images(imported, store.image_ids(imported, 0, 4))
    assert [image.filename for image in found] == [f"{i}.jpg" for i in range(4)]
    for collection_id in (ingested, imported):
        keys = {k for node in client.get_primaries()
                for k in client.keys(f"*{collection_id}*", target_nodes=node)}  # fmt: skip
        assert len(keys) > 3
        assert {client.keyslot(k) for k in keys} == {client.keyslot(collection_key(collection_id))}

    async def delete(collection_id: str) -> tuple[bool, int]:
        api = AsyncCollections(async_cluster.RedisCluster(host="127.0.0.1", port=cluster_port))
        deleted = await api.delete(collection_id)
        left = await api.stored_images("tenant")
        await api.redis.aclose()
        return deleted, left

    assert asyncio.run(delete(ingested)) == (True, 4)
    assert not [k for node in client.get_primaries()
                for k in client.keys(f"*{ingested}*", target_nodes=node)]  # fmt: skip
    client.close()
