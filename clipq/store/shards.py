"""A collection split into shards that different workers serve (``CLIPQ_SHARDS``).

Image row ``r`` of every collection belongs to shard ``(r // block) % shards``: blocks of
``CLIPQ_SHARD_BLOCK_ROWS`` consecutive rows dealt round-robin, so each shard holds about
``1 / shards`` of every collection, grows as it grows, and reads its rows in long
contiguous runs; an image's crops go with it. :class:`ShardView` shows one shard's rows as
a collection of their own (local rows 0, 1, ... in order), so a worker's
:class:`worker.collections.CollectionIndexes` builds, refreshes and searches a shard
exactly as it does a whole collection. Redis and the vector files stay whole: a shard is a
way of reading them, and any number of shards can be served from one copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from clipq._optional import numpy
from clipq.store.collections import Collections

if TYPE_CHECKING:
    import numpy as np

    from clipq.contracts.collections import Collection, CollectionImage


@dataclass(frozen=True)
class Shard:
    number: int
    count: int
    block: int

    def owns(self, rows: np.ndarray) -> np.ndarray:
        return (rows // self.block) % self.count == self.number

    def local_size(self, rows: int) -> int:
        """How many of a collection's first ``rows`` image rows are this shard's."""
        full, rest = divmod(rows, self.block * self.count)
        return full * self.block + min(max(rest - self.number * self.block, 0), self.block)

    def to_global(self, local: np.ndarray) -> np.ndarray:
        block, within = numpy().divmod(local, self.block)
        return (block * self.count + self.number) * self.block + within

    def to_local(self, rows: np.ndarray) -> np.ndarray:
        """Local rows of global rows this shard owns."""
        return (rows // (self.block * self.count)) * self.block + rows % self.block

    def runs(self, start: int, end: int) -> list[tuple[int, int]]:
        """Local rows ``start``..``end`` as contiguous global ranges, in order."""
        found = []
        while start < end:
            global_start = int(self.to_global(numpy().asarray(start)))
            take = min(self.block - start % self.block, end - start)
            found.append((global_start, global_start + take))
            start += take
        return found

    def __str__(self) -> str:
        return f"shard {self.number} of {self.count}"


class ShardView:
    """One shard of every collection, read through a :class:`Collections` store."""

    def __init__(self, base: Collections, shard: Shard) -> None:
        self.base, self.shard = base, shard
        self.files = base.files
        self._owners: dict[str, np.ndarray] = {}  # global crop owners, as far as read

    # what is the same for the whole collection
    def get(self, collection_id: str) -> Collection | None:
        return self.base.get(collection_id)

    def vectors_in_files(self, collection_id: str) -> bool:
        return self.base.vectors_in_files(collection_id)

    def images(self, collection_id: str, image_ids: list[str]) -> list[CollectionImage | None]:
        return self.base.images(collection_id, image_ids)

    def image_labels(self, collection_id: str, image_ids: list[str]) -> list[list[str]]:
        return self.base.image_labels(collection_id, image_ids)

    def vector_of(self, collection_id: str, image_id: str) -> np.ndarray | None:
        return self.base.vector_of(collection_id, image_id)

    def deleted(self, collection_id: str) -> set[str]:
        return self.base.deleted(collection_id)

    # what is this shard's
    def counts(self, collection_id: str) -> tuple[int, int, int, int] | None:
        counts = self.base.counts(collection_id)
        if counts is None:
            self._owners.pop(collection_id, None)
            return None
        version, images, crops, dim = counts
        return (
            version,
            self.shard.local_size(images),
            len(self._crop_rows(collection_id, crops)),
            dim,
        )

    def image_ids(self, collection_id: str, start: int, end: int) -> list[str]:
        ids: list[str] = []
        for first, last in self.shard.runs(start, end):
            ids += self.base.image_ids(collection_id, first, last)
        return ids

    def read_rows(
        self, collection_id: str, kind: str, start: int, end: int, width: int
    ) -> np.ndarray:
        np = numpy()
        if kind == "emb":
            parts = [
                self.base.read_rows(collection_id, kind, a, b, width)
                for a, b in self.shard.runs(start, end)
            ]
            return (
                np.concatenate(parts)
                if parts
                else self.base.read_rows(collection_id, kind, 0, 0, width)
            )
        rows = self._crop_rows(collection_id)[start:end]
        if kind == "owner":
            owners = self._owners[collection_id][rows]
            return self.shard.to_local(owners).astype(np.int32)[:, None]
        if not len(rows):
            return self.base.read_rows(collection_id, kind, 0, 0, width)
        # an image's crops are contiguous, so a shard's crops come in runs too
        span = self.base.read_rows(collection_id, kind, int(rows[0]), int(rows[-1]) + 1, width)
        return span[rows - rows[0]]

    def take_rows(self, collection_id: str, kind: str, rows: np.ndarray, width: int) -> np.ndarray:
        if kind == "emb":
            return self.base.take_rows(collection_id, kind, self.shard.to_global(rows), width)
        return self.base.take_rows(collection_id, kind, self._crop_rows(collection_id)[rows], width)

    def _crop_rows(self, collection_id: str, crops: int | None = None) -> np.ndarray:
        """The global crop rows whose images are this shard's (crops: read up to there)."""
        np = numpy()
        owners = self._owners.setdefault(collection_id, np.zeros(0, np.int64))
        if crops is not None and crops > len(owners):
            more = self.base.read_rows(collection_id, "owner", len(owners), crops, 1)[:, 0]
            owners = self._owners[collection_id] = np.concatenate([owners, more.astype(np.int64)])
        return np.flatnonzero(self.shard.owns(owners))
