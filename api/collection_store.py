"""Image collections in Redis: the key layout, and what the API does with them (asyncio).

Layout (``{c}`` is ``clipq:coll:{id}``, ``{t}`` is ``clipq:tenant:{owner}``)::

    {t}:collections           sorted set of the tenant's collection ids by creation time
    {t}                       hash: images (stored across the tenant's collections)
    {c}                       hash: id, name, model, owner, created_at, crop_background,
                              image_count, crop_count, dim, version
    {c}:img:{image_id}        hash: filename, sha256, labels, metadata, width, height, regions,
                              thumbnail, row
    {c}:rows                  list: image id of each embedding row
    {c}:sha                   hash: sha256 → image id (re-ingesting the same bytes is a no-op)
    {c}:labels                hash: label → number of images carrying it
    {c}:emb:{segment}         fp16 image embeddings, SEGMENT_ROWS rows per string
    {c}:crop:{segment}        fp16 crop embeddings, SEGMENT_ROWS rows per string
    {c}:owner:{segment}       int32 image row of each crop row

Every key of a collection can be named from its record and its rows, so listing and
deleting never scan the keyspace. Embeddings are appended by the workers
(:mod:`worker.collection_store`), never rewritten; appends and deletion take the
collection's lock, so two ingest jobs never interleave rows. This module imports no
numpy: the API's image does not have it.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import redis.asyncio as aioredis

from clipcore.retrieval_models import Collection, CollectionImage, CropBackground, Region

PREFIX = "clipq:coll"
TENANT_PREFIX = "clipq:tenant:"
LEGACY_INDEX_KEY = "clipq:collections"  # one index of every tenant's collections, before 0.2
SEGMENT_ROWS = 4096
LOCK_TIMEOUT_SECONDS = 120
DELETE_CHUNK = 500


def collection_key(collection_id: str) -> str:
    return f"{PREFIX}:{collection_id}"


def image_key(collection_id: str, image_id: str) -> str:
    return f"{PREFIX}:{collection_id}:img:{image_id}"


def segment_key(collection_id: str, kind: str, segment: int) -> str:
    return f"{PREFIX}:{collection_id}:{kind}:{segment}"


def lock_name(collection_id: str) -> str:
    return f"clipq:lock:coll:{collection_id}"  # outside the collection's own keys


def tenant_key(owner: str) -> str:
    return f"{TENANT_PREFIX}{owner or '-'}"  # '-': the anonymous owner of a service without keys


def tenant_collections_key(owner: str) -> str:
    return f"{tenant_key(owner)}:collections"


def thumbnail_url(collection_id: str, image_id: str) -> str:
    return f"/v1/collections/{collection_id}/images/{image_id}/thumbnail"


def as_text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def collection_from_record(record: dict[bytes, bytes]) -> Collection:
    fields = {as_text(k): v for k, v in record.items()}
    return Collection(
        id=as_text(fields["id"]),
        name=as_text(fields["name"]),
        model=as_text(fields["model"]),
        image_count=int(fields.get("image_count", 0)),
        version=int(fields.get("version", 0)),
        created_at=datetime.fromisoformat(as_text(fields["created_at"])),
        crop_background=CropBackground(as_text(fields["crop_background"])),
    )


def image_from_record(collection_id: str, record: dict[bytes, bytes]) -> CollectionImage:
    fields = {as_text(k): v for k, v in record.items() if as_text(k) != "thumbnail"}
    image_id = as_text(fields["id"])
    return CollectionImage(
        id=image_id,
        filename=as_text(fields["filename"]),
        sha256=as_text(fields["sha256"]),
        labels=json.loads(fields["labels"]),
        metadata=json.loads(fields["metadata"]),
        width=int(fields["width"]),
        height=int(fields["height"]),
        regions=[Region.model_validate(r) for r in json.loads(fields["regions"])],
        thumbnail_url=thumbnail_url(collection_id, image_id),
    )


# KEYS: the tenant's index, the collection. ARGV: limit, id, created epoch, then field/value
# pairs of the record. 1 created, 0 the tenant already has ``limit`` collections.
CREATE_SCRIPT = """
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
return 1
"""


class AsyncCollections:
    """What the API does with collections (asyncio)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self._create = client.register_script(CREATE_SCRIPT)

    async def create(
        self, name: str, model: str, crop_background: CropBackground, owner: str, limit: int
    ) -> Collection | None:
        """A new empty collection; None if ``owner`` already holds ``limit`` collections."""
        collection_id = uuid.uuid4().hex
        created = datetime.now(UTC)
        record = {
            "id": collection_id,
            "name": name,
            "model": model,
            "created_at": created.isoformat(),
            "crop_background": str(crop_background),
            "owner": owner,
            "image_count": 0,
            "crop_count": 0,
            "version": 0,
        }
        pairs = [str(item) for field in record.items() for item in field]
        keys = [tenant_collections_key(owner), collection_key(collection_id)]
        if not await self._create(
            keys=keys, args=[limit, collection_id, created.timestamp(), *pairs]
        ):
            return None
        return collection_from_record({k.encode(): str(v).encode() for k, v in record.items()})

    async def get(self, collection_id: str, owner: str | None = None) -> Collection | None:
        """The collection, or None if unknown — or another owner's when ``owner`` is given."""
        record = await self.redis.hgetall(collection_key(collection_id))
        if not record or (owner is not None and as_text(record.get(b"owner")) != owner):
            return None
        return collection_from_record(record)

    async def stored_images(self, owner: str) -> int:
        return int(await self.redis.hget(tenant_key(owner), "images") or 0)

    async def list(self, owner: str) -> list[Collection]:
        ids = [as_text(i) for i in await self.redis.zrange(tenant_collections_key(owner), 0, -1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for collection_id in ids:
                pipe.hgetall(collection_key(collection_id))
            records = await pipe.execute()
        return [collection_from_record(r) for r in records if r]

    async def labels(self, collection_id: str) -> set[str]:
        return {
            as_text(label)
            for label in await self.redis.hkeys(f"{collection_key(collection_id)}:labels")
        }

    async def images(
        self, collection_id: str, offset: int, limit: int
    ) -> tuple[int, list[CollectionImage]]:
        rows_key = f"{collection_key(collection_id)}:rows"
        total = await self.redis.llen(rows_key)
        ids = [as_text(i) for i in await self.redis.lrange(rows_key, offset, offset + limit - 1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for image_id in ids:
                pipe.hgetall(image_key(collection_id, image_id))
            records = await pipe.execute()
        return total, [image_from_record(collection_id, r) for r in records if r]

    async def thumbnail(self, collection_id: str, image_id: str) -> bytes | None:
        return await self.redis.hget(image_key(collection_id, image_id), "thumbnail")

    async def delete(self, collection_id: str) -> bool:
        """Remove the collection and all its data; waits for a running append to finish.

        The collection is gone for clients as soon as its index entry and record are; its
        data follows, in chunks, then the tenant's image count.
        """
        key = collection_key(collection_id)
        lock = self.redis.lock(lock_name(collection_id), timeout=LOCK_TIMEOUT_SECONDS)
        async with lock:
            owner, images, crops = await self.redis.hmget(
                key, ["owner", "image_count", "crop_count"]
            )
            if images is None:
                return False
            tenant = as_text(owner)
            await self.redis.zrem(tenant_collections_key(tenant), collection_id)
            await self.redis.unlink(key)
            async for chunk in self._data_keys(collection_id, int(images), int(crops or 0)):
                await self.redis.unlink(*chunk)
            await self.redis.hincrby(tenant_key(tenant), "images", -int(images))
        return True

    async def _data_keys(
        self, collection_id: str, images: int, crops: int
    ) -> AsyncIterator[list[str]]:
        """Every key of the collection but its record, in chunks, named without a scan.

        The rows list names the image keys, so it goes last.
        """
        key = collection_key(collection_id)
        for start in range(0, images, DELETE_CHUNK):
            ids = await self.redis.lrange(f"{key}:rows", start, start + DELETE_CHUNK - 1)
            if ids:
                yield [image_key(collection_id, as_text(i)) for i in ids]
        for kind, rows in (("emb", images), ("crop", crops), ("owner", crops)):
            segments = [segment_key(collection_id, kind, s) for s in range(_segments(rows))]
            for start in range(0, len(segments), DELETE_CHUNK):
                yield segments[start : start + DELETE_CHUNK]
        yield [f"{key}:rows", f"{key}:sha", f"{key}:labels"]

    async def migrate_legacy_index(self) -> int:
        """Move collections of the single pre-0.2 index into their tenants' indexes."""
        ids = [as_text(i) for i in await self.redis.zrange(LEGACY_INDEX_KEY, 0, -1)]
        for collection_id in ids:
            owner, created, images = await self.redis.hmget(
                collection_key(collection_id), ["owner", "created_at", "image_count"]
            )
            if created is not None:
                tenant, when = as_text(owner), datetime.fromisoformat(as_text(created)).timestamp()
                await self.redis.zadd(tenant_collections_key(tenant), {collection_id: when})
                await self.redis.hincrby(tenant_key(tenant), "images", int(images or 0))
            await self.redis.zrem(LEGACY_INDEX_KEY, collection_id)
        return len(ids)


def _segments(rows: int) -> int:
    return math.ceil(rows / SEGMENT_ROWS)
