"""Image collections in Redis: the key layout, and what the API does with them (asyncio).

Layout (``{c}`` is ``clipq:coll:{<id>}``, ``{t}`` is ``clipq:tenant:<owner>``)::

    {t}:collections           sorted set of the tenant's collection ids by creation time
    {c}                       hash: id, name, model, owner, created_at, crop_background,
                              image_count (rows, deleted ones too), deleted_count,
                              crop_count, dim, version
    {c}:img:{image_id}        hash: filename, sha256, labels, metadata, width, height, regions,
                              thumbnail, row (an ingested image)
    {c}:block:{first_row}     string: the records of one bulk-imported part's images
    {c}:blocks                sorted set: first row of each block
                              (the two above: :mod:`clipq.store.imported`)
    {c}:rows                  list: image id of each embedding row
    {c}:sha                   hash: sha256 → image id (re-ingesting the same bytes is a no-op)
    {c}:labels                hash: label → number of images carrying it
    {c}:deleted               set: ids of deleted images (their rows stay, never matched)
    {c}:parts                 hash: part name → JSON {rows, first_row} of each bulk import
    {c}:emb:{segment}         fp16 image embeddings, SEGMENT_ROWS rows per string
    {c}:crop:{segment}        fp16 crop embeddings, SEGMENT_ROWS rows per string
    {c}:owner:{segment}       int32 image row of each crop row
                              (the three above live in files instead when the record says
                              ``vectors: files``: :mod:`clipq.store.vector_files`)
    {c}:index_due             when an import part last landed (``clipq.index`` task)
    {c}:sources               hash: import shard name → JSON tally of a shard read to its end

Every key of a collection carries its id as a hash tag (``{<id>}``), so on a Redis Cluster a
collection's keys share one slot and every script and transaction here touches one slot: a
collection lives whole on one node, and collections spread over the nodes. Nothing touches a
tenant's key and a collection's together: the tenant's stored images are the sum of its
collections' counts, taken under the tenant's lock with the commit they admit.

Every key of a collection can be named from its record and its rows, so listing and
deleting never scan the keyspace. :class:`AsyncCollections` is the API's half;
:class:`Collections` the workers', which append embeddings (never rewriting them, so a
worker holding a collection in memory loads only the rows past what it has: ``version``
tells it something changed) and reads them back with numpy, imported only there
(:mod:`clipq._optional`): the API's image has none. Appends and deletion take the
collection's lock, so two ingest jobs never interleave rows. Segments keep each Redis
value small (4 MB at 512 dimensions) while 1 M images load in a few hundred round trips.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis

from clipcore.problem import FieldError
from clipcore.schemas import CropBackground, Region
from clipq._optional import numpy
from clipq.contracts.collections import Collection, CollectionImage
from clipq.errors import Conflict, QuotaExceeded, ServiceUnavailable
from clipq.store.imported import (
    IMPORT_SCRIPT,
    RECORDS_PER_CALL,
    RECORDS_SCRIPT,
    ImportRow,
    as_record,
    block_key,
    encode_block,
    imported_ids,
    label_counts,
)
from clipq.store.vector_files import VectorFiles

PREFIX = "clipq:coll"
TENANT_PREFIX = "clipq:tenant:"
LEGACY_INDEX_KEY = "clipq:collections"  # one index of every tenant's collections, before 0.2
SEGMENT_ROWS = 4096
LOCK_TIMEOUT_SECONDS = 120
DELETE_CHUNK = 500
INDEX_DUE_TTL_SECONDS = 86_400  # a mark no task took (its worker died) goes by itself
EMBEDDING_DTYPE = "float16"
OWNER_DTYPE = "int32"
COUNT_FIELDS = ["image_count", "deleted_count"]

if TYPE_CHECKING:
    import numpy as np


def collection_key(collection_id: str) -> str:
    return f"{PREFIX}:{{{collection_id}}}"  # the hash tag: a collection's keys share a slot


def untagged_key(collection_id: str) -> str:
    """The collection's record key before hash tags (:meth:`AsyncCollections.retag_all`)."""
    return f"{PREFIX}:{collection_id}"


def image_key(collection_id: str, image_id: str) -> str:
    return f"{collection_key(collection_id)}:img:{image_id}"


def segment_key(collection_id: str, kind: str, segment: int) -> str:
    return f"{collection_key(collection_id)}:{kind}:{segment}"


def lock_name(collection_id: str) -> str:
    return f"clipq:lock:coll:{collection_id}"  # outside the collection's own keys


def tenant_lock_name(owner: str) -> str:
    return f"clipq:lock:tenant:{owner or '-'}"


def tenant_key(owner: str) -> str:
    return f"{TENANT_PREFIX}{owner or '-'}"  # '-': the anonymous owner of a service without keys


def tenant_collections_key(owner: str) -> str:
    return f"{tenant_key(owner)}:collections"


def thumbnail_url(collection_id: str, image_id: str) -> str:
    return f"/v1/collections/{collection_id}/images/{image_id}/thumbnail"


def as_text(value: object) -> str:
    """A Redis reply as text ('' for none)."""
    return value.decode() if isinstance(value, bytes) else str(value or "")


def collection_from_record(record: Mapping[Any, Any]) -> Collection:
    fields = {as_text(k): v for k, v in record.items()}
    return Collection(
        id=as_text(fields["id"]),
        name=as_text(fields["name"]),
        model=as_text(fields["model"]),
        image_count=int(fields.get("image_count", 0)) - int(fields.get("deleted_count", 0)),
        version=int(fields.get("version", 0)),
        created_at=datetime.fromisoformat(as_text(fields["created_at"])),
        crop_background=CropBackground(as_text(fields["crop_background"])),
    )


def image_from_record(collection_id: str, record: Mapping[Any, Any]) -> CollectionImage:
    fields = {as_text(k): v for k, v in record.items() if as_text(k) != "thumbnail"}
    image_id = as_text(fields["id"])
    pictured = len(fields) < len(record)  # imported embeddings come without a picture
    return CollectionImage(
        id=image_id,
        filename=as_text(fields.get("filename")),
        sha256=as_text(fields.get("sha256")),
        labels=json.loads(fields.get("labels", "[]")),
        metadata=json.loads(fields.get("metadata", "{}")),
        width=int(fields.get("width", 0)),
        height=int(fields.get("height", 0)),
        regions=[Region.model_validate(r) for r in json.loads(fields.get("regions", "[]"))],
        thumbnail_url=thumbnail_url(collection_id, image_id) if pictured else None,
    )


# KEYS: the tenant's index. ARGV: limit, id, created epoch. 1 added, 0 the tenant already
# has ``limit`` collections.
ADMIT_SCRIPT = """
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
return 1
"""

# KEYS: (old name, new name) pairs; each old key that exists is renamed.
RENAME_SCRIPT = """
local moved = 0
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('RENAME', KEYS[i], KEYS[i + 1])
    moved = moved + 1
  end
end
return moved
"""
LAYOUT_KEY = "clipq:layout"  # "tagged" once every collection's keys carry their hash tag


def same_name(name: str) -> str:
    """What makes two collection names the same to a person: case and spacing aside."""
    return " ".join(name.split()).casefold()


def stored_count(image_count: str | bytes | None, deleted_count: str | bytes | None) -> int:
    """A collection's images as its record counts them (``image_count`` counts rows)."""
    return int(image_count or 0) - int(deleted_count or 0)


class AsyncCollections:
    """What the API does with collections (asyncio)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self._admit = client.register_script(ADMIT_SCRIPT)
        self._rename = client.register_script(RENAME_SCRIPT)
        self._records = client.register_script(RECORDS_SCRIPT)

    async def create(
        self, name: str, model: str, crop_background: CropBackground, owner: str, limit: int
    ) -> Collection | None:
        """A new empty collection; None if ``owner`` already holds ``limit`` collections.
        :class:`Conflict` if one of its collections has this name already (:func:`same_name`);
        the tenant's lock keeps two concurrent creations from both passing that check."""
        async with self.redis.lock(tenant_lock_name(owner), timeout=LOCK_TIMEOUT_SECONDS):
            for existing in await self.owned_by(owner):
                if same_name(existing.name) == same_name(name):
                    message = f"this API key already has a collection named {existing.name!r}"
                    raise Conflict(
                        f"name: {message}", errors=[FieldError(field="name", message=message)]
                    )
            return await self._create(name, model, crop_background, owner, limit)

    async def _create(
        self, name: str, model: str, crop_background: CropBackground, owner: str, limit: int
    ) -> Collection | None:
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
        # The record first: a tenant's index never names a collection without one. Refused,
        # it goes again; nobody else knows the new id yet.
        pairs = [str(item) for field in record.items() for item in field]
        await self.redis.hset(collection_key(collection_id), items=pairs)
        keys = [tenant_collections_key(owner)]
        if not await self._admit(keys=keys, args=[limit, collection_id, created.timestamp()]):
            await self.redis.unlink(collection_key(collection_id))
            return None
        return collection_from_record({k.encode(): str(v).encode() for k, v in record.items()})

    async def get(self, collection_id: str, owner: str | None = None) -> Collection | None:
        """The collection, or None if unknown — or another owner's when ``owner`` is given."""
        record = await self.redis.hgetall(collection_key(collection_id))
        if not record or (owner is not None and as_text(record.get(b"owner")) != owner):
            return None
        return collection_from_record(record)

    async def stored_images(self, owner: str) -> int:
        """The images ``owner`` stores, across its collections."""
        ids = await self.redis.zrange(tenant_collections_key(owner), 0, -1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for collection_id in ids:
                pipe.hmget(collection_key(as_text(collection_id)), COUNT_FIELDS)
            return sum(stored_count(*counts) for counts in await pipe.execute())

    async def owned_by(self, owner: str) -> list[Collection]:
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
        rows, deleted = await self.redis.hmget(collection_key(collection_id), COUNT_FIELDS)
        total = stored_count(rows, deleted)
        ids = await self.redis.lrange(rows_key, offset, offset + limit - 1)
        records = await self._records_of(collection_id, ids)
        return total, [image_from_record(collection_id, r) for r in records if r]

    async def embedding_dim(self, collection_id: str) -> int:
        """The width of the collection's embeddings; 0 before its first image."""
        return int(await self.redis.hget(collection_key(collection_id), "dim") or 0)

    async def imported_parts(self, collection_id: str) -> dict[str, dict[str, int]]:
        """Part name → {rows, first_row} of every bulk-imported part, in import order."""
        found = await self.redis.hgetall(f"{collection_key(collection_id)}:parts")
        parts = {as_text(k): json.loads(v) for k, v in found.items()}
        return dict(sorted(parts.items(), key=lambda item: item[1]["first_row"]))

    async def has_image(self, collection_id: str, image_id: str) -> bool:
        return bool((await self._records_of(collection_id, [image_id]))[0])

    async def _records_of(self, collection_id: str, ids: Sequence[Any]) -> list[dict[Any, Any]]:
        """The images' records (:data:`RECORDS_SCRIPT`), empty for unknown ids."""
        records = []
        for start in range(0, len(ids), RECORDS_PER_CALL):
            chunk = list(ids[start : start + RECORDS_PER_CALL])
            records += await self._records(keys=[collection_key(collection_id)], args=chunk)
        return [as_record(r) for r in records]

    async def thumbnail(self, collection_id: str, image_id: str) -> bytes | None:
        data = await self.redis.hget(image_key(collection_id, image_id), "thumbnail")
        return data if isinstance(data, bytes) else None

    async def delete_image(self, collection_id: str, image_id: str) -> bool:
        """Remove one image; False if the collection holds no such image.

        Its embedding rows stay where they are (rows are append-only, and a worker holding
        the collection loads only rows past what it has) but its id joins ``{c}:deleted``:
        reading its record answers nothing from then on, so no search, listing or
        evaluation shows it. Its bytes may come again, as a new image. Under the
        collection's lock, as appends are, so counts and label tallies stay exact.
        """
        key = collection_key(collection_id)
        async with self.redis.lock(lock_name(collection_id), timeout=LOCK_TIMEOUT_SECONDS):
            [record] = await self._records_of(collection_id, [image_id])
            if not record:
                return False
            sha256 = as_text(record.get(b"sha256"))
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.sadd(f"{key}:deleted", image_id)
                pipe.hincrby(key, "deleted_count", 1)
                pipe.hincrby(key, "version", 1)
                pipe.unlink(image_key(collection_id, image_id))  # the thumbnail goes with it
                if sha256:
                    pipe.hdel(f"{key}:sha", sha256)
                await pipe.execute()
            await self._tally(collection_id, json.loads(record.get(b"labels", b"[]")), [])
        return True

    async def set_labels(
        self, collection_id: str, image_id: str, labels: Sequence[str]
    ) -> CollectionImage | None:
        """Replace one image's labels; the image as it is now, or None if there is none.
        :class:`Conflict` for an image imported as an embedding: its record lives in its
        part's block, which is written once (:mod:`clipq.store.imported`)."""
        async with self.redis.lock(lock_name(collection_id), timeout=LOCK_TIMEOUT_SECONDS):
            [record] = await self._records_of(collection_id, [image_id])
            if not record:
                return None
            if not await self.redis.exists(image_key(collection_id, image_id)):
                message = "an image imported as an embedding keeps the labels of its import"
                raise Conflict(
                    f"labels: {message}", errors=[FieldError(field="labels", message=message)]
                )
            before = json.loads(record.get(b"labels", b"[]"))
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(image_key(collection_id, image_id), "labels", json.dumps(list(labels)))
                pipe.hincrby(collection_key(collection_id), "version", 1)
                await pipe.execute()
            await self._tally(collection_id, before, labels)
            [record] = await self._records_of(collection_id, [image_id])
        return image_from_record(collection_id, record)

    async def _tally(
        self, collection_id: str, removed: Sequence[str], added: Sequence[str]
    ) -> None:
        """Move the label counts (``{c}:labels``) from ``removed`` to ``added``; a label no
        image carries any more is no label of the collection (evaluation's queries)."""
        key = f"{collection_key(collection_id)}:labels"
        changes = {label: 0 for label in (*removed, *added)}
        for label in removed:
            changes[label] -= 1
        for label in added:
            changes[label] += 1
        for label, change in changes.items():
            if change and await self.redis.hincrby(key, label, change) <= 0:
                await self.redis.hdel(key, label)

    async def delete(self, collection_id: str) -> bool:
        """Remove the collection and all its data; waits for a running append to finish.

        The collection is gone for clients (and from its tenant's stored images) as soon as
        its index entry and record are; its data follows, in chunks.
        """
        key = collection_key(collection_id)
        lock = self.redis.lock(lock_name(collection_id), timeout=LOCK_TIMEOUT_SECONDS)
        async with lock:
            owner, images, crops = await self.redis.hmget(
                key, ["owner", "image_count", "crop_count"]
            )
            if images is None:
                return False
            await self.redis.zrem(tenant_collections_key(as_text(owner)), collection_id)
            await self.redis.unlink(key)
            async for chunk in self._data_keys(key, int(images), int(crops or 0)):
                await self.redis.unlink(*chunk)
        return True

    async def _data_keys(self, key: str, images: int, crops: int) -> AsyncIterator[list[str]]:
        """Every key of the collection whose record is ``key`` but the record, in chunks,
        named without a scan. The rows list names the image keys, so it goes last.
        """
        blocks = await self._blocks(key)
        for start, end in _gaps(blocks, images):  # rows in blocks have no hash of their own
            for first in range(start, end, DELETE_CHUNK):
                last = min(end, first + DELETE_CHUNK)
                ids = await self.redis.lrange(f"{key}:rows", first, last - 1)
                if ids:
                    yield [f"{key}:img:{as_text(i)}" for i in ids]
        for kind, rows in (("emb", images), ("crop", crops), ("owner", crops)):
            segments = [f"{key}:{kind}:{s}" for s in range(_segments(rows))]
            for start in range(0, len(segments), DELETE_CHUNK):
                yield segments[start : start + DELETE_CHUNK]
        names = [block_key(key, first) for first, _ in blocks]
        names += [
            f"{key}:{name}"
            for name in ("sha", "labels", "parts", "blocks", "index_due", "deleted", "sources")
        ]
        for start in range(0, len(names), DELETE_CHUNK):
            yield names[start : start + DELETE_CHUNK]
        yield [f"{key}:rows"]

    async def _blocks(self, key: str) -> list[tuple[int, int]]:
        """(first row, end) of each imported block, in row order."""
        firsts = {int(as_text(f)) for f in await self.redis.zrange(f"{key}:blocks", 0, -1)}
        parts = [json.loads(p) for p in (await self.redis.hgetall(f"{key}:parts")).values()]
        return sorted(
            (p["first_row"], p["first_row"] + p["rows"]) for p in parts if p["first_row"] in firsts
        )

    async def migrate_legacy_index(self) -> int:
        """Move collections of the single pre-0.2 index into their tenants' indexes."""
        ids = [as_text(i) for i in await self.redis.zrange(LEGACY_INDEX_KEY, 0, -1)]
        for collection_id in ids:
            owner, created = await self.redis.hmget(  # named before hash tags, too
                untagged_key(collection_id), ["owner", "created_at"]
            )
            if created is not None:
                tenant, when = as_text(owner), datetime.fromisoformat(as_text(created)).timestamp()
                await self.redis.zadd(tenant_collections_key(tenant), {collection_id: when})
            await self.redis.zrem(LEGACY_INDEX_KEY, collection_id)
        return len(ids)

    async def retag_all(self) -> int:
        """Give the keys of every collection stored before hash tags their tagged names, once
        (then ``clipq:layout`` says so); the collections retagged. A retag that stopped part
        way is finished by the next: each key is renamed only if it is still there, and the
        record, which names the rest, goes last."""
        if await self.redis.get(LAYOUT_KEY) == b"tagged":
            return 0
        moved = 0
        async for tenant in self.redis.scan_iter(match=f"{TENANT_PREFIX}*:collections", count=1000):
            for collection_id in await self.redis.zrange(tenant, 0, -1):
                moved += await self._retag(as_text(collection_id))
        await self.redis.set(LAYOUT_KEY, "tagged")
        return moved

    async def _retag(self, collection_id: str) -> int:
        old, new = untagged_key(collection_id), collection_key(collection_id)
        async with self.redis.lock(lock_name(collection_id), timeout=LOCK_TIMEOUT_SECONDS):
            images, crops = await self.redis.hmget(old, ["image_count", "crop_count"])
            if images is None:
                return 0
            async for chunk in self._data_keys(old, int(images), int(crops or 0)):
                await self._rename(keys=[n for k in chunk for n in (k, new + k[len(old) :])])
            await self._rename(keys=[old, new])
        return 1


def _gaps(spans: Sequence[tuple[int, int]], end: int) -> Iterator[tuple[int, int]]:
    """The stretches of 0..``end`` outside the sorted, disjoint ``spans``."""
    at = 0
    for first, last in spans:
        if first > at:
            yield at, first
        at = max(at, last)
    if at < end:
        yield at, end


def _segments(rows: int) -> int:
    return math.ceil(rows / SEGMENT_ROWS)


class Collections:
    """What a worker does with collections (synchronous).

    With ``files`` (``CLIPQ_VECTOR_DIR``), a collection that starts empty keeps its
    embedding rows there instead of in Redis (its record says ``vectors: files``); one
    that began in Redis stays there.
    """

    def __init__(self, client: redis.Redis, files: VectorFiles | None = None) -> None:
        self.redis = client
        self.files = files
        self._import = client.register_script(IMPORT_SCRIPT)
        self._records = client.register_script(RECORDS_SCRIPT)

    def vectors_in_files(self, collection_id: str) -> bool:
        where = as_text(self.redis.hget(collection_key(collection_id), "vectors"))
        if where == "files" and self.files is None:
            raise ServiceUnavailable(
                f"collection {collection_id} keeps its vectors in CLIPQ_VECTOR_DIR, which this "
                "worker does not have"
            )
        return where == "files"

    def _place_vectors(self, collection_id: str, rows: int) -> tuple[bool, bool]:
        """Whether an append writes files, and whether that is chosen now: the collection's
        own choice, or for an empty one this worker's (the append records it)."""
        if as_text(self.redis.hget(collection_key(collection_id), "vectors")):
            return self.vectors_in_files(collection_id), False
        chosen = self.files is not None and rows == 0
        return chosen, chosen

    def get(self, collection_id: str) -> Collection | None:
        record = self.redis.hgetall(collection_key(collection_id))
        return collection_from_record(record) if record else None

    def owner(self, collection_id: str) -> str:
        return as_text(self.redis.hget(collection_key(collection_id), "owner"))

    def room(self, owner: str, limit: int) -> int:
        """How many more images ``owner`` may store under a quota of ``limit`` (exact under
        the owner's lock, :meth:`append`)."""
        ids = self.redis.zrange(tenant_collections_key(owner), 0, -1)
        with self.redis.pipeline(transaction=False) as pipe:
            for collection_id in ids:
                pipe.hmget(collection_key(as_text(collection_id)), COUNT_FIELDS)
            stored = sum(stored_count(*counts) for counts in pipe.execute())
        return max(0, limit - stored)

    def counts(self, collection_id: str) -> tuple[int, int, int, int] | None:
        """(version, images, crops, dim) or None if the collection is gone."""
        values = self.redis.hmget(
            collection_key(collection_id), ["version", "image_count", "crop_count", "dim"]
        )
        if values[0] is None:
            return None
        version, images, crops, dim = (int(v or 0) for v in values)
        return version, images, crops, dim

    def known_images(self, collection_id: str, hashes: Sequence[str]) -> list[str | None]:
        if not hashes:
            return []
        found = self.redis.hmget(f"{collection_key(collection_id)}:sha", list(hashes))
        return [as_text(v) or None for v in found]

    def source_done(self, collection_id: str, name: str) -> bool:
        """Whether the import shard ``name`` (a tar's URL, a list's first file) is in."""
        return bool(self.redis.hexists(f"{collection_key(collection_id)}:sources", name))

    def mark_source_done(self, collection_id: str, name: str, summary: dict[str, int]) -> None:
        """Remember that shard ``name`` was read to its end: an import run again skips it.
        (A shard cut short is read again; its images already in are skipped by SHA-256.)"""
        key = collection_key(collection_id)
        if self.redis.exists(key):  # not for a collection deleted meanwhile
            self.redis.hset(f"{key}:sources", name, json.dumps(summary))

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
        np = numpy()
        crop_start = np.cumsum([0, *crops_per_image])
        key = collection_key(collection_id)
        # The collection's lock keeps its rows in order; the tenant's keeps its quota across
        # concurrent appends to its other collections (room is counted under it).
        with self._locked(collection_id) as owner, self.redis.pipeline(transaction=True) as pipe:
            counts = self.counts(collection_id)
            if counts is None:
                raise LookupError(f"collection {collection_id} is gone")
            _, image_count, crop_count, _ = counts
            room = self.room(owner, max_tenant_images)
            known = self.known_images(collection_id, [r["sha256"] for r in records])
            stored = {r["sha256"]: k for r, k in zip(records, known, strict=True) if k}
            new_rows: list[Any] = []
            new_crops: list[Any] = []
            owners: list[int] = []
            pipe.multi()
            files, chosen = self._place_vectors(collection_id, image_count + crop_count)
            if chosen:
                pipe.hset(key, "vectors", "files")
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
            writes = []
            if new_rows:
                stacked = np.stack(new_rows)
                writes += self._write_rows(files, collection_id, "emb", image_count, stacked)
            if new_crops:
                crops = np.stack(new_crops)
                writes += self._write_rows(files, collection_id, "crop", crop_count, crops)
                owned = np.asarray(owners, OWNER_DTYPE)[:, None]
                writes += self._write_rows(files, collection_id, "owner", crop_count, owned)
            for segment, data in writes:
                pipe.append(segment, data)
            if new_rows:
                pipe.hset(key, "dim", embeddings.shape[1])
            pipe.hincrby(key, "image_count", len(new_rows))
            pipe.hincrby(key, "crop_count", len(new_crops))
            pipe.hincrby(key, "version", 1)
            pipe.execute()
        return stored

    def import_rows(
        self,
        collection_id: str,
        part: str,
        rows: Sequence[ImportRow],
        embeddings: np.ndarray,
        max_tenant_images: int,
    ) -> tuple[int, bool]:
        """Append one part of a bulk import, all of it or nothing, together with the mark that
        it is imported: (image count after it, whether the part had been imported before).

        Its records go into one block (:mod:`clipq.store.imported`); they have no picture and
        no sha256: the part's name is what makes a retry a no-op. :class:`QuotaExceeded` if
        the part does not fit the tenant's quota; :class:`LookupError` if the collection is
        gone.
        """
        key = collection_key(collection_id)
        with self._locked(collection_id) as owner:
            counts = self.counts(collection_id)
            if counts is None:
                raise LookupError(f"collection {collection_id} is gone")
            image_count = counts[1]
            room = self.room(owner, max_tenant_images)
            files, chosen = self._place_vectors(collection_id, image_count + counts[2])
            writes = self._write_rows(files, collection_id, "emb", image_count, embeddings)
            ids = imported_ids(image_count, len(rows))
            arguments: list[Any] = [part, room, len(rows), "files" if chosen else ""]
            arguments += [image_count, "".join(ids), encode_block(ids, rows), label_counts(rows)]
            arguments += [item for write in writes for item in write]
            if not counts[3]:  # before the rows: a reader never sees rows without a width
                self.redis.hset(key, "dim", embeddings.shape[1])
            keys = [key, f"{key}:parts", f"{key}:rows", f"{key}:labels", f"{key}:blocks"]
            after, flag = self._import(keys=keys, args=arguments)
            if after == -1:
                raise LookupError(f"collection {collection_id} is gone")
            if after == -2:
                raise QuotaExceeded(
                    f"the part's {len(rows)} images do not fit: this API key may "
                    f"store {flag} more (CLIPQ_MAX_IMAGES_PER_TENANT)"
                )
            if after == -3:
                raise RuntimeError(f"rows were added to {collection_id} under its lock")
            return int(after), bool(flag)

    @contextmanager
    def _locked(self, collection_id: str) -> Iterator[str]:
        """The collection's lock, then its owner's (always in this order); the owner."""
        owner = self.owner(collection_id)
        with (
            self.redis.lock(lock_name(collection_id), timeout=LOCK_TIMEOUT_SECONDS),
            self.redis.lock(tenant_lock_name(owner), timeout=LOCK_TIMEOUT_SECONDS),
        ):
            yield owner

    def mark_imported(self, collection_id: str, now: float) -> bool:
        """Note that a part landed at ``now``; True if no indexing was due yet (the caller
        schedules one, :meth:`index_due_in`)."""
        key = f"{collection_key(collection_id)}:index_due"
        return self.redis.set(key, now, ex=INDEX_DUE_TTL_SECONDS, get=True) is None

    def index_due_in(self, collection_id: str, quiet: float, now: float) -> float:
        """Seconds until no part will have landed for ``quiet`` seconds; 0: index now (the
        mark is taken, and a part landing from here on marks and schedules anew). A part that
        landed before the mark went is committed, so the indexing that follows includes it."""
        key = f"{collection_key(collection_id)}:index_due"
        landed = self.redis.get(key)
        if landed is not None and now - float(landed) < quiet:
            return quiet - (now - float(landed))
        self.redis.delete(key)
        return 0.0

    @staticmethod
    def _add_record(pipe: Any, collection_id: str, record: dict[str, Any], row: int) -> None:
        key = collection_key(collection_id)
        structured = ("labels", "metadata", "regions")
        fields = {
            **{k: v for k, v in record.items() if k not in structured},
            **{k: json.dumps(record[k]) for k in structured},
            "row": row,
        }
        # Empty fields are left out (read back as their defaults): an imported embedding
        # has only an id, a name and a row, and ten million of them are a Redis cost.
        empty = ("", 0, "[]", "{}")
        pipe.hset(
            image_key(collection_id, record["id"]),
            mapping={k: v for k, v in fields.items() if k in ("id", "row") or v not in empty},
        )
        if record["sha256"]:  # imported embeddings have none
            pipe.hset(f"{key}:sha", record["sha256"], record["id"])
        pipe.rpush(f"{key}:rows", record["id"])
        for label in record["labels"]:
            pipe.hincrby(f"{key}:labels", label, 1)

    def _write_rows(
        self, files: bool, collection_id: str, kind: str, start: int, rows: np.ndarray
    ) -> list[tuple[str, bytes]]:
        """Rows ``start``.. of ``kind``: written to the files now (before the transaction
        that commits the counts making them visible), or the Redis segment appends that
        transaction is to make."""
        dtype = OWNER_DTYPE if kind == "owner" else EMBEDDING_DTYPE
        data = numpy().ascontiguousarray(rows, dtype=dtype)
        if files:
            assert self.files is not None  # _place_vectors said files
            self.files.write(collection_id, kind, start, data)
            return []
        writes = []
        position = start
        while position < start + len(data):
            segment, within = divmod(position, SEGMENT_ROWS)
            take = min(SEGMENT_ROWS - within, start + len(data) - position)
            chunk = data[position - start : position - start + take]
            writes.append((segment_key(collection_id, kind, segment), chunk.tobytes()))
            position += take
        return writes

    def read_rows(
        self, collection_id: str, kind: str, start: int, end: int, width: int
    ) -> np.ndarray:
        """Rows ``start``..``end`` of an append-only array (``width`` values per row)."""
        np = numpy()
        dtype = OWNER_DTYPE if kind == "owner" else EMBEDDING_DTYPE
        if end > start and self.vectors_in_files(collection_id):
            assert self.files is not None  # vectors_in_files raised otherwise
            return self.files.read(collection_id, kind, start, end, width, dtype)
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

    def take_rows(self, collection_id: str, kind: str, rows: np.ndarray, width: int) -> np.ndarray:
        """Embedding rows at these sorted positions, fp32, from a collection's files (a
        source an approximate index re-scores from)."""
        assert self.files is not None
        taken = self.files.take(collection_id, kind, rows, width, EMBEDDING_DTYPE)
        return taken.astype(numpy().float32)

    def vector_of(self, collection_id: str, image_id: str) -> np.ndarray | None:
        """An image's embedding, fp32, read from where the collection keeps it."""
        row = self.rows_of(collection_id, [image_id])[0]
        counts = self.counts(collection_id)
        if row is None or counts is None:
            return None
        vector = self.read_rows(collection_id, "emb", row, row + 1, counts[3])[0]
        return vector.astype(numpy().float32)

    def rows_of(self, collection_id: str, image_ids: Sequence[str]) -> list[int | None]:
        """Each image's embedding row; None for an id the collection does not hold."""
        records = self._records_of(collection_id, image_ids)
        return [int(r[b"row"]) if b"row" in r else None for r in records]

    def deleted(self, collection_id: str) -> set[str]:
        """The ids of the collection's deleted images (their rows stay in its arrays)."""
        return {as_text(i) for i in self.redis.smembers(f"{collection_key(collection_id)}:deleted")}

    def image_ids(self, collection_id: str, start: int, end: int) -> list[str]:
        ids = self.redis.lrange(f"{collection_key(collection_id)}:rows", start, end - 1)
        return [as_text(i) for i in ids]

    def images(self, collection_id: str, image_ids: Sequence[str]) -> list[CollectionImage | None]:
        records = self._records_of(collection_id, image_ids)
        return [image_from_record(collection_id, r) if r else None for r in records]

    def thumbnails(self, collection_id: str, image_ids: Sequence[str]) -> list[bytes | None]:
        pipe = self.redis.pipeline(transaction=False)
        for image_id in image_ids:
            pipe.hget(image_key(collection_id, image_id), "thumbnail")
        return pipe.execute()

    def image_labels(self, collection_id: str, image_ids: Sequence[str]) -> list[list[str]]:
        return [
            json.loads(r.get(b"labels", b"[]")) for r in self._records_of(collection_id, image_ids)
        ]

    def _records_of(self, collection_id: str, ids: Sequence[str]) -> list[dict[Any, Any]]:
        """The images' records (:data:`RECORDS_SCRIPT`), empty for unknown ids."""
        records = []
        for start in range(0, len(ids), RECORDS_PER_CALL):
            chunk = list(ids[start : start + RECORDS_PER_CALL])
            records += self._records(keys=[collection_key(collection_id)], args=chunk)
        return [as_record(r) for r in records]
