"""Approximate nearest neighbours over a large collection's unit embeddings (FAISS).

Below :attr:`IndexPolicy.exact_below` rows a collection is scanned exactly (a matrix
product, :mod:`clipcore.retrieval`); from there on, :class:`ApproximateIndex` holds its
vectors instead: an inverted file (IVF, ``nlist`` about sqrt(n) lists, ``nprobe`` of them
searched) of 4-bit fast-scan product-quantiser codes (``dim / 4`` bytes a vector) that
shortlists ``refine`` x k candidates, which are then re-scored exactly from fp16 vectors:
search time grows with ``nprobe`` x sqrt(n) codes scanned, not with n. The fp16 vectors
are either held by the index (``Refine(SQfp16)``: about 1.1 KB a 512-d vector against the
exact scan's 2 KB of fp32) or read from where the collection keeps them (a ``source``:
memory-mapped segment files, and the index holds about 136 bytes a vector). The kind and
its parameters come from ``bench/ann_index.py``'s measurements (README, "Collections at
scale").

The index is trained on a sample of the vectors it is built from and extended
incrementally; once the collection has grown :attr:`IndexPolicy.retrain_growth` times past
what it was trained on, its lists no longer fit the data and :meth:`ApproximateIndex.stale`
says so (the owner swaps in :meth:`ApproximateIndex.rebuilt`). Fewer than ``MIN_ROWS``
vectors (a collection's first few crops) are held in an exact flat index.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

MIN_ROWS = 256  # fewer cannot train the quantisers (16 centroids each), nor need them
BLOCK = 262_144  # vectors added (or read) at a time: 512 MB of fp32 at 512 dimensions
# Rows a mapped base keeps beside it, scored exactly per query, before it is merged: 50 k
# at 512 dimensions cost about 5 ms a query.
MAX_DELTA = 50_000
# The vectors of these (sorted) rows, fp32: where a collection keeps them durably.
RowSource = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class IndexPolicy:
    exact_below: int = 100_000  # rows; an exact scan of 100 k 512-d rows takes 17 ms
    nprobe: int = 32  # inverted lists searched per query
    refine: int = 100  # PQ candidates re-scored from fp16 per wanted hit (FAISS k_factor)
    retrain_growth: float = 4.0  # rebuild once this many times the rows it was trained on
    threads: int = 0  # FAISS OpenMP threads; 0: its default


def nlist_for(rows: int) -> int:
    """Inverted lists for ``rows`` vectors: about sqrt(n), a power of two, with at least 16
    training points each (k-means on 2 cores trains 1,024 lists on 40 k points in seconds;
    4 sqrt(n) lists took minutes at 1 M)."""
    return max(1, min(2 ** round(math.log2(math.sqrt(max(rows, 1)))), rows // 16))


class ApproximateIndex:
    """IVF + fast-scan PQ codes whose candidates are re-scored exactly; rows are insertion
    order.

    The exact re-scoring reads fp16 vectors either from copies the index holds
    (``Refine(SQfp16)``, 1 KB a 512-d vector in the worker) or, given a ``source``, from
    where the collection keeps them durably (memory-mapped segment files: the index holds
    only its 128-byte codes). Built here it is owned and takes ``add``; loaded from a saved
    file (:meth:`load`) it is memory-mapped, read-only and shared with every process of the
    host that maps it, and the rows added after it are kept beside it, exact (``delta``),
    until :meth:`stale` asks for :meth:`rebuilt`.
    """

    def __init__(
        self,
        index,
        policy: IndexPolicy,
        *,
        trained_rows: int,
        flat: bool = False,
        mapped: bool = False,
        source: RowSource | None = None,
    ) -> None:
        import faiss

        if policy.threads:
            faiss.omp_set_num_threads(policy.threads)
        self.index, self.policy, self.source = index, policy, source
        self.dim = int(index.d)
        self.trained_rows, self.flat, self.mapped = trained_rows, flat, mapped
        self.delta = np.zeros((0, self.dim), np.float32)  # rows after a mapped base, exact
        if not flat:
            faiss.extract_index_ivf(index).nprobe = policy.nprobe
            if source is None:
                index.k_factor = policy.refine

    @classmethod
    def of(
        cls, vectors: np.ndarray, policy: IndexPolicy, source: RowSource | None = None
    ) -> ApproximateIndex:
        """Trained on these vectors, holding them all."""
        return cls.built(lambda a, b: vectors[a:b], *vectors.shape, policy, source)

    @classmethod
    def built(
        cls,
        read: Callable[[int, int], np.ndarray],
        rows: int,
        dim: int,
        policy: IndexPolicy,
        source: RowSource | None = None,
    ) -> ApproximateIndex:
        """Trained on a sample of ``rows`` vectors and holding them all, read ``BLOCK`` rows
        at a time with ``read(start, end)`` (10 M fp32 vectors would take 20 GB at once)."""
        built = cls.trained(read, rows, dim, policy, source)
        for start in range(0, rows, BLOCK):
            built.add(read(start, min(start + BLOCK, rows)))
        return built

    @classmethod
    def trained(
        cls,
        read: Callable[[int, int], np.ndarray],
        rows: int,
        dim: int,
        policy: IndexPolicy,
        source: RowSource | None = None,
    ) -> ApproximateIndex:
        """An empty index trained for ``rows`` vectors on a sample of them.

        Too few vectors to train quantisers on (a collection's first crops, say): an exact
        flat index, until :meth:`stale` asks for the real one.
        """
        import faiss

        flat = rows < MIN_ROWS
        nlist = nlist_for(rows)
        key = "Flat" if flat else f"IVF{nlist},PQ{max(1, dim // 2)}x4fs"
        key += ",Refine(SQfp16)" if not flat and source is None else ""
        index = faiss.index_factory(dim, key, faiss.METRIC_INNER_PRODUCT)
        if not flat:  # k-means needs ~40-256 points a list, no more
            index.train(_float32(_sample(read, rows, 40 * nlist)))
        return cls(index, policy, trained_rows=rows, flat=flat, source=source)

    @classmethod
    def load(
        cls,
        path: Path,
        policy: IndexPolicy,
        trained_rows: int | None = None,
        source: RowSource | None = None,
    ) -> ApproximateIndex:
        """A saved index, memory-mapped read-only (its lists, and its fp16 copies if any)."""
        import faiss

        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY
        index = faiss.read_index(str(path), flags)
        rows = int(index.ntotal) if trained_rows is None else trained_rows
        return cls(index, policy, trained_rows=rows, mapped=True, source=source)

    def save(self, path: Path) -> None:
        """Write the index (owned, no delta) to ``path`` atomically."""
        import faiss

        assert not self.mapped and not self.flat, "only a trained, owned index is saved"
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        faiss.write_index(self.index, str(partial))
        os.replace(partial, path)

    @property
    def base_size(self) -> int:
        return int(self.index.ntotal)

    @property
    def size(self) -> int:
        return self.base_size + len(self.delta)

    @property
    def nbytes(self) -> int:
        """Memory the codes, lists and fp16 copies take (mapped: shared by the host's
        processes), plus the exact rows beside a mapped base."""
        import faiss

        return len(faiss.serialize_index(self.index)) + self.delta.nbytes

    def add(self, vectors: np.ndarray) -> None:
        if not len(vectors):
            return
        if self.mapped:  # a mapped index cannot grow (FAISS aborts): keep them beside it
            self.delta = np.concatenate([self.delta, _float32(vectors)])
        else:
            self.index.add(_float32(vectors))

    def stale(self) -> bool:
        """Grown past what it was trained for (or past flat), or a mapped base's delta past
        ``MAX_DELTA`` rows or a tenth of it: time for :meth:`rebuilt`."""
        if self.flat:
            return self.size >= MIN_ROWS
        return self._delta_full() or self.size >= self.policy.retrain_growth * self.trained_rows

    def _delta_full(self) -> bool:
        return len(self.delta) > max(MIN_ROWS, min(MAX_DELTA, self.base_size // 10))

    def rebuilt(self) -> ApproximateIndex:
        """A new, owned index of every row: trained again when it has outgrown its training;
        otherwise a mapped base copied into memory with its delta added (no retraining)."""
        import faiss

        if self.flat or self.size >= self.policy.retrain_growth * self.trained_rows:
            return self.built(
                lambda a, b: self.vectors(np.arange(a, b)),
                self.size,
                self.dim,
                self.policy,
                self.source,
            )
        owned = faiss.deserialize_index(faiss.serialize_index(self.index))
        merged = ApproximateIndex(
            owned, self.policy, trained_rows=self.trained_rows, source=self.source
        )
        merged.add(self.delta)
        return merged

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and rows (q, k), best first; rows of -1 where fewer than k were found."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        queries = _float32(queries)
        scores, rows = self._search_base(queries, min(k, max(self.base_size, 1)))
        if not len(self.delta):
            return scores, rows
        extra = queries @ self.delta.T  # the rows after the base, scored exactly
        scores = np.concatenate([scores, extra], axis=1)
        after = np.arange(self.base_size, self.size)
        rows = np.concatenate([rows, np.broadcast_to(after, extra.shape)], axis=1)
        return _best(scores, rows, k)

    def _search_base(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.source is None or self.flat:
            return self.index.search(queries, k)
        # The codes shortlist refine x k candidates; their vectors, read once for all the
        # queries from the source, give the exact scores.
        _, candidates = self.index.search(queries, min(k * self.policy.refine, self.base_size))
        found = np.unique(candidates[candidates >= 0])
        exact = queries @ self.source(found).T
        at = np.searchsorted(found, np.maximum(candidates, 0))
        scores = np.where(candidates >= 0, np.take_along_axis(exact, at, 1), -np.inf)
        return _best(scores.astype(np.float32), candidates, k)

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The (fp16-exact) vectors of these rows, fp32."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        out = np.zeros((len(rows), self.dim), np.float32)
        inside = rows < self.base_size
        if inside.any():
            if self.source is not None:
                out[inside] = self.source(rows[inside])
            else:
                out[inside] = self.index.reconstruct_batch(np.ascontiguousarray(rows[inside]))
        if (~inside).any():
            out[~inside] = self.delta[rows[~inside] - self.base_size]
        return out


def _best(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    best = np.take_along_axis(scores, order, 1)
    return best, np.where(np.isfinite(best), np.take_along_axis(rows, order, 1), -1)


def _sample(read: Callable[[int, int], np.ndarray], rows: int, want: int) -> np.ndarray:
    """About ``want`` of ``rows`` vectors, in 64 blocks spread over them: contiguous reads
    (a store serves ranges far faster than single rows) that still cover every part of a
    collection imported in order."""
    if rows <= want:
        return read(0, rows)
    blocks, size = 64, max(1, want // 64)
    rng = np.random.default_rng(0)
    edges = np.linspace(0, rows, blocks + 1).astype(np.int64)
    starts = [int(rng.integers(a, max(a + 1, b - size))) for a, b in pairwise(edges)]
    return np.concatenate([read(s, min(s + size, rows)) for s in starts])


def _float32(vectors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(vectors, dtype=np.float32)
