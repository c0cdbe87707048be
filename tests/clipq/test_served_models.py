"""The models the live workers serve, read from their heartbeats in a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis

from clipcore.model_card import ModelDescription, describe
from clipq.store.events import JobEvents
from clipq.store.jobs import WORKER_HEARTBEAT_TTL, WORKERS_KEY, ApiStore, WorkerStore, worker_key


def description(spec: str, detector: str = "embedded") -> ModelDescription:
    return describe(
        spec=spec,
        model_id=spec,
        folder=None,
        input_size=224,
        embedding_dim=512,
        detector_spec=detector,
    )


def served(redis_url: str) -> tuple[int, list[dict]]:
    async def read() -> tuple[int, list[dict]]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            store = ApiStore(client, 60, JobEvents(client, 4))
            workers, models = await store.served_models()
            return workers, [model.model_dump(mode="json") for model in models]
        finally:
            await client.aclose()

    return asyncio.run(read())


NAMES = ["a/1", "a/2", "b/1", "c/1", "d/1", "gone/1"]


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """Redis without workers, and none of this test's left behind for the e2e service's."""
    client = redis.Redis.from_url(redis_url)
    client.delete(WORKERS_KEY, *map(worker_key, NAMES))
    yield client
    client.delete(WORKERS_KEY, *map(worker_key, NAMES))
    client.close()


def test_workers_are_counted_per_distinct_model(client: redis.Redis, redis_url: str) -> None:
    workers = WorkerStore(client, 60)
    old, new = description("openai/clip-vit-base-patch32"), description("/models/clip-v2")
    for name, info in [
        ("a/1", {"description": new.model_dump(mode="json")}),
        ("a/2", {"description": old.model_dump(mode="json")}),
        ("b/1", {"description": old.model_dump(mode="json")}),
        ("c/1", {}),  # a lazy worker, not loaded yet
        ("d/1", {"description": {"id": "from a newer worker, unreadable here"}}),
    ]:
        workers.heartbeat(name, {"name": name, "model": "x", **info})
    # A worker gone quiet (its beat older than the TTL) is not counted.
    client.zadd(WORKERS_KEY, {"gone/1": time.time() - WORKER_HEARTBEAT_TTL - 5})
    client.set(worker_key("gone/1"), '{"description": null}')

    alive, models = served(redis_url)
    assert alive == 5
    assert [(m["id"], m["workers"]) for m in models] == [
        ("openai/clip-vit-base-patch32", 2),
        ("/models/clip-v2", 1),
    ]
    assert models[0]["detector"]["kind"] == "embedded-demo"


def test_no_worker_no_model(client: redis.Redis, redis_url: str) -> None:
    assert served(redis_url) == (0, [])
