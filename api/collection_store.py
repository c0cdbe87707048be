"""Image collections in Redis: the source of truth for their embeddings and records.

Layout (``{c}`` is ``clipq:coll:{id}``)::

    clipq:collections         sorted set of collection ids by creation time
    {c}                       hash: name, model, created_at, crop_background, image_count,
                              crop_count, dim, version
    {c}:img:{image_id}        hash: filename, sha256, labels, metadata, width, height, regions,
                              thumbnail, row
    {c}:rows                  list: image id of each embedding row
    {c}:sha                   hash: sha256 → image id (re-ingesting the same bytes is a no-op)
    {c}:labels                hash: label → number of images carrying it
    {c}:emb:{segment}         fp16 image embeddings, SEGMENT_ROWS rows per string
    {c}:crop:{segment}        fp16 crop embeddings, SEGMENT_ROWS rows per string
    {c}:owner:{segment}       int32 image row of each crop row

Embeddings are appended, never rewritten, so a worker that holds a collection in
memory loads only the rows past what it has (``version`` tells it something
changed). Appends and deletion take the collection's lock, so two ingest jobs
never interleave rows. Segments keep each Redis value small (4 MB at 512
dimensions) while 1 M images load in a few hundred round trips.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import redis
import redis.asyncio as aioredis

from clipcore.retrieval_models import Collection, CollectionImage, CropBackground, Region

PREFIX = "clipq:coll"
INDEX_KEY = "clipq:collections"
SEGMENT_ROWS = 4096
LOCK_TIMEOUT_SECONDS = 120
EMBEDDING_DTYPE = np.float16
OWNER_DTYPE = np.int32


def collection_key(collection_id: str) -> str:
    return f"{PREFIX}:{collection_id}"


def image_key(collection_id: str, image_id: str) -> str:
    return f"{PREFIX}:{collection_id}:img:{image_id}"


def segment_key(collection_id: str, kind: str, segment: int) -> str:
    return f"{PREFIX}:{collection_id}:{kind}:{segment}"


def lock_name(collection_id: str) -> str:
    return f"clipq:lock:coll:{collection_id}"  # outside the prefix that delete() sweeps


def thumbnail_url(collection_id: str, image_id: str) -> str:
    return f"/v1/collections/{collection_id}/images/{image_id}/thumbnail"


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def collection_from_record(record: dict[bytes, bytes]) -> Collection:
    fields = {_text(k): v for k, v in record.items()}
    return Collection(
        id=_text(fields["id"]),
        name=_text(fields["name"]),
        model=_text(fields["model"]),
        image_count=int(fields.get("image_count", 0)),
        version=int(fields.get("version", 0)),
        created_at=datetime.fromisoformat(_text(fields["created_at"])),
        crop_background=CropBackground(_text(fields["crop_background"])),
    )


def image_from_record(collection_id: str, record: dict[bytes, bytes]) -> CollectionImage:
    fields = {_text(k): v for k, v in record.items() if _text(k) != "thumbnail"}
    image_id = _text(fields["id"])
    return CollectionImage(
        id=image_id,
        filename=_text(fields["filename"]),
        sha256=_text(fields["sha256"]),
        labels=json.loads(fields["labels"]),
        metadata=json.loads(fields["metadata"]),
        width=int(fields["width"]),
        height=int(fields["height"]),
        regions=[Region.model_validate(r) for r in json.loads(fields["regions"])],
        thumbnail_url=thumbnail_url(collection_id, image_id),
    )


class AsyncCollections:
    """What the API does with collections (asyncio)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client

    async def create(
        self, name: str, model: str, crop_background: CropBackground, owner: str = ""
    ) -> Collection:
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
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(collection_key(collection_id), mapping=record)
            pipe.zadd(INDEX_KEY, {collection_id: created.timestamp()})
            await pipe.execute()
        return collection_from_record({k.encode(): str(v).encode() for k, v in record.items()})

    async def get(self, collection_id: str, owner: str | None = None) -> Collection | None:
        """The collection, or None if unknown — or another owner's when ``owner`` is given."""
        record = await self.redis.hgetall(collection_key(collection_id))
        if not record or (owner is not None and _text(record.get(b"owner")) != owner):
            return None
        return collection_from_record(record)

    async def list(self, owner: str) -> list[Collection]:
        ids = [_text(i) for i in await self.redis.zrange(INDEX_KEY, 0, -1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for collection_id in ids:
                pipe.hgetall(collection_key(collection_id))
            records = await pipe.execute()
        return [collection_from_record(r) for r in records if r and _text(r.get(b"owner")) == owner]

    async def labels(self, collection_id: str) -> set[str]:
        return {
            _text(label)
            for label in await self.redis.hkeys(f"{collection_key(collection_id)}:labels")
        }

    async def images(
        self, collection_id: str, offset: int, limit: int
    ) -> tuple[int, list[CollectionImage]]:
        rows_key = f"{collection_key(collection_id)}:rows"
        total = await self.redis.llen(rows_key)
        ids = [_text(i) for i in await self.redis.lrange(rows_key, offset, offset + limit - 1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for image_id in ids:
                pipe.hgetall(image_key(collection_id, image_id))
            records = await pipe.execute()
        return total, [image_from_record(collection_id, r) for r in records if r]

    async def thumbnail(self, collection_id: str, image_id: str) -> bytes | None:
        return await self.redis.hget(image_key(collection_id, image_id), "thumbnail")

    async def delete(self, collection_id: str) -> bool:
        """Remove the collection and all its data; waits for a running append to finish."""
        lock = self.redis.lock(lock_name(collection_id), timeout=LOCK_TIMEOUT_SECONDS)
        async with lock:
            existed = await self.redis.zrem(INDEX_KEY, collection_id)
            await self.redis.delete(collection_key(collection_id))
            keys = [
                k async for k in self.redis.scan_iter(match=f"{collection_key(collection_id)}:*")
            ]
            for start in range(0, len(keys), 500):
                await self.redis.unlink(*keys[start : start + 500])
        return bool(existed)


class Collections:
    """What a worker does with collections (synchronous)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def get(self, collection_id: str) -> Collection | None:
        record = self.redis.hgetall(collection_key(collection_id))
        return collection_from_record(record) if record else None

    def counts(self, collection_id: str) -> tuple[int, int, int, int] | None:
        """(version, images, crops, dim) or None if the collection is gone."""
        values = self.redis.hmget(
            collection_key(collection_id), ["version", "image_count", "crop_count", "dim"]
        )
        if values[0] is None:
            return None
        return tuple(int(v or 0) for v in values)  # type: ignore[return-value]

    def known_images(self, collection_id: str, hashes: Sequence[str]) -> list[str | None]:
        if not hashes:
            return []
        found = self.redis.hmget(f"{collection_key(collection_id)}:sha", list(hashes))
        return [_text(v) or None for v in found]

    def labels(self, collection_id: str) -> list[str]:
        return sorted(
            _text(label) for label in self.redis.hkeys(f"{collection_key(collection_id)}:labels")
        )

    def append(
        self,
        collection_id: str,
        records: Sequence[dict[str, Any]],
        embeddings: np.ndarray,
        crop_embeddings: np.ndarray,
        crops_per_image: Sequence[int],
    ) -> list[str | None]:
        """Add images (skipping bytes already present); returns each image's id, None if gone.

        ``records`` carry id, sha256, filename, labels, metadata, width, height, regions and
        thumbnail; ``crop_embeddings`` holds the crops of all images in order.
        """
        key = collection_key(collection_id)
        with self.redis.lock(lock_name(collection_id), timeout=LOCK_TIMEOUT_SECONDS):
            counts = self.counts(collection_id)
            if counts is None:
                return [None] * len(records)
            _, image_count, crop_count, _ = counts
            existing = self.known_images(collection_id, [r["sha256"] for r in records])
            ids: list[str | None] = []
            new_rows, new_crops, owners, seen = [], [], [], {}
            crop_start = np.cumsum([0, *crops_per_image])
            pipe = self.redis.pipeline(transaction=True)
            for position, (record, known) in enumerate(zip(records, existing, strict=True)):
                duplicate = known or seen.get(record["sha256"])
                if duplicate:
                    ids.append(duplicate)
                    continue
                row = image_count + len(new_rows)
                seen[record["sha256"]] = record["id"]
                ids.append(record["id"])
                new_rows.append(embeddings[position])
                crops = crop_embeddings[crop_start[position] : crop_start[position + 1]]
                new_crops.extend(crops)
                owners.extend([row] * len(crops))
                pipe.hset(
                    image_key(collection_id, record["id"]),
                    mapping={
                        **{
                            k: v
                            for k, v in record.items()
                            if k not in ("labels", "metadata", "regions")
                        },
                        "labels": json.dumps(record["labels"]),
                        "metadata": json.dumps(record["metadata"]),
                        "regions": json.dumps(record["regions"]),
                        "row": row,
                    },
                )
                pipe.hset(f"{key}:sha", record["sha256"], record["id"])
                pipe.rpush(f"{key}:rows", record["id"])
                for label in record["labels"]:
                    pipe.hincrby(f"{key}:labels", label, 1)
            if new_rows:
                self._append_rows(pipe, collection_id, "emb", image_count, np.stack(new_rows))
            if new_crops:
                self._append_rows(pipe, collection_id, "crop", crop_count, np.stack(new_crops))
                self._append_rows(
                    pipe,
                    collection_id,
                    "owner",
                    crop_count,
                    np.asarray(owners, OWNER_DTYPE)[:, None],
                )
            pipe.hset(key, "dim", embeddings.shape[1])
            pipe.hincrby(key, "image_count", len(new_rows))
            pipe.hincrby(key, "crop_count", len(new_crops))
            pipe.hincrby(key, "version", 1)
            pipe.execute()
        return ids

    @staticmethod
    def _append_rows(
        pipe: Any, collection_id: str, kind: str, start: int, rows: np.ndarray
    ) -> None:
        dtype = OWNER_DTYPE if kind == "owner" else EMBEDDING_DTYPE
        data = np.ascontiguousarray(rows, dtype=dtype)
        position = start
        while position < start + len(data):
            segment, within = divmod(position, SEGMENT_ROWS)
            take = min(SEGMENT_ROWS - within, start + len(data) - position)
            chunk = data[position - start : position - start + take]
            pipe.append(segment_key(collection_id, kind, segment), chunk.tobytes())
            position += take

    def read_rows(
        self, collection_id: str, kind: str, start: int, end: int, width: int
    ) -> np.ndarray:
        """Rows ``start``..``end`` of an append-only array (``width`` values per row)."""
        dtype = OWNER_DTYPE if kind == "owner" else EMBEDDING_DTYPE
        row_bytes = width * np.dtype(dtype).itemsize
        pipe = self.redis.pipeline(transaction=False)
        position = start
        while position < end:
            segment, within = divmod(position, SEGMENT_ROWS)
            take = min(SEGMENT_ROWS - within, end - position)
            key = segment_key(collection_id, kind, segment)
            pipe.getrange(key, within * row_bytes, (within + take) * row_bytes - 1)
            position += take
        data = b"".join(pipe.execute()) if end > start else b""
        if len(data) != (end - start) * row_bytes:
            raise LookupError(f"collection {collection_id} changed while it was read")
        return np.frombuffer(data, dtype=dtype).reshape(end - start, width)

    def image_ids(self, collection_id: str, start: int, end: int) -> list[str]:
        ids = self.redis.lrange(f"{collection_key(collection_id)}:rows", start, end - 1)
        return [_text(i) for i in ids]

    def images(self, collection_id: str, image_ids: Sequence[str]) -> list[CollectionImage | None]:
        pipe = self.redis.pipeline(transaction=False)
        for image_id in image_ids:
            pipe.hgetall(image_key(collection_id, image_id))
        return [image_from_record(collection_id, r) if r else None for r in pipe.execute()]

    def image_labels(self, collection_id: str, image_ids: Sequence[str]) -> list[list[str]]:
        pipe = self.redis.pipeline(transaction=False)
        for image_id in image_ids:
            pipe.hget(image_key(collection_id, image_id), "labels")
        return [json.loads(v) if v else [] for v in pipe.execute()]
