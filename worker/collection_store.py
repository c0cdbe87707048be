"""What a worker does with collections in Redis (synchronous, numpy): the key layout and the
API's half are in :mod:`api.collection_store`.

Embeddings are appended, never rewritten, so a worker that holds a collection in
memory loads only the rows past what it has (``version`` tells it something
changed). Segments keep each Redis value small (4 MB at 512 dimensions) while
1 M images load in a few hundred round trips.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import redis

from api.collection_store import (
    LOCK_TIMEOUT_SECONDS,
    SEGMENT_ROWS,
    as_text,
    collection_from_record,
    collection_key,
    image_from_record,
    image_key,
    lock_name,
    segment_key,
    tenant_key,
)
from clipcore.retrieval_models import Collection, CollectionImage

EMBEDDING_DTYPE = np.float16
OWNER_DTYPE = np.int32


class Collections:
    """What a worker does with collections (synchronous)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def get(self, collection_id: str) -> Collection | None:
        record = self.redis.hgetall(collection_key(collection_id))
        return collection_from_record(record) if record else None

    def owner(self, collection_id: str) -> str:
        return as_text(self.redis.hget(collection_key(collection_id), "owner"))

    def room(self, owner: str, limit: int) -> int:
        """How many more images ``owner`` may store under a quota of ``limit``."""
        return max(0, limit - int(self.redis.hget(tenant_key(owner), "images") or 0))

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
        return [as_text(v) or None for v in found]

    def labels(self, collection_id: str) -> list[str]:
        return sorted(
            as_text(label) for label in self.redis.hkeys(f"{collection_key(collection_id)}:labels")
        )

    def append(
        self,
        collection_id: str,
        records: Sequence[dict[str, Any]],
        embeddings: np.ndarray,
        crop_embeddings: np.ndarray,
        crops_per_image: Sequence[int],
        max_tenant_images: int,
    ) -> dict[str, str]:
        """Add images (bytes already present are not added again); returns sha256 → image id
        of every record stored, new or known. Records past the tenant's ``max_tenant_images``
        are left out. :class:`LookupError` if the collection is gone.

        ``records`` carry id, sha256, filename, labels, metadata, width, height, regions and
        thumbnail; ``crop_embeddings`` holds the crops of all images in order.
        """
        tenant = tenant_key(self.owner(collection_id))
        with self.redis.lock(lock_name(collection_id), timeout=LOCK_TIMEOUT_SECONDS):
            while True:
                try:
                    return self._append_once(
                        collection_id,
                        tenant,
                        records,
                        embeddings,
                        crop_embeddings,
                        np.cumsum([0, *crops_per_image]),
                        max_tenant_images,
                    )
                except redis.WatchError:
                    continue  # another collection of the tenant grew meanwhile: count again

    def _append_once(
        self,
        collection_id: str,
        tenant: str,
        records: Sequence[dict[str, Any]],
        embeddings: np.ndarray,
        crop_embeddings: np.ndarray,
        crop_start: np.ndarray,
        max_tenant_images: int,
    ) -> dict[str, str]:
        key = collection_key(collection_id)
        with self.redis.pipeline(transaction=True) as pipe:
            # The tenant's count is watched: its quota holds across concurrent ingests into
            # its other collections (this collection's own lock covers the rest).
            pipe.watch(tenant)
            counts = self.counts(collection_id)
            if counts is None:
                raise LookupError(f"collection {collection_id} is gone")
            _, image_count, crop_count, _ = counts
            room = max_tenant_images - int(pipe.hget(tenant, "images") or 0)
            known = self.known_images(collection_id, [r["sha256"] for r in records])
            stored = {r["sha256"]: k for r, k in zip(records, known, strict=True) if k}
            new_rows, new_crops, owners = [], [], []
            pipe.multi()
            for position, record in enumerate(records):
                if record["sha256"] in stored or len(new_rows) >= room:
                    continue
                row = image_count + len(new_rows)
                stored[record["sha256"]] = record["id"]
                new_rows.append(embeddings[position])
                crops = crop_embeddings[crop_start[position] : crop_start[position + 1]]
                new_crops.extend(crops)
                owners.extend([row] * len(crops))
                self._add_record(pipe, collection_id, record, row)
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
            if new_rows:
                pipe.hset(key, "dim", embeddings.shape[1])
            pipe.hincrby(key, "image_count", len(new_rows))
            pipe.hincrby(tenant, "images", len(new_rows))
            pipe.hincrby(key, "crop_count", len(new_crops))
            pipe.hincrby(key, "version", 1)
            pipe.execute()
        return stored

    @staticmethod
    def _add_record(pipe: Any, collection_id: str, record: dict[str, Any], row: int) -> None:
        key = collection_key(collection_id)
        structured = ("labels", "metadata", "regions")
        pipe.hset(
            image_key(collection_id, record["id"]),
            mapping={
                **{k: v for k, v in record.items() if k not in structured},
                **{k: json.dumps(record[k]) for k in structured},
                "row": row,
            },
        )
        pipe.hset(f"{key}:sha", record["sha256"], record["id"])
        pipe.rpush(f"{key}:rows", record["id"])
        for label in record["labels"]:
            pipe.hincrby(f"{key}:labels", label, 1)

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
        return [as_text(i) for i in ids]

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
