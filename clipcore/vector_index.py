"""Approximate nearest neighbours over a large collection's unit embeddings (FAISS).

Below :attr:`IndexPolicy.exact_below` rows a collection is scanned exactly (a matrix
product, :mod:`clipcore.retrieval`); from there on, :class:`ApproximateIndex` holds its
vectors instead: an inverted file (IVF, ``nlist`` about sqrt(n) lists, ``nprobe`` of them
searched) of 4-bit fast-scan product-quantiser codes (``dim / 16`` bytes a vector) that
shortlists candidates, which are then re-scored from fp16 copies of the vectors
(``Refine(SQfp16)``): about 1.1 KB a 512-d vector against the exact scan's 2 KB of fp32,
and search time that grows with ``nprobe`` x sqrt(n) codes scanned, not with n. The kind and
its parameters come from ``bench/ann_index.py``'s measurements (README, "Collections at
scale").

The index is trained on the vectors it is built from and extended incrementally; once the
collection has grown :attr:`IndexPolicy.retrain_growth` times past what it was trained
on, its lists no longer fit the data and :meth:`ApproximateIndex.stale` says so (the owner
swaps in :meth:`ApproximateIndex.rebuilt`, trained on its fp16 copies). Fewer than
``MIN_ROWS`` vectors (a collection's first few crops) are held in an exact flat index.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIN_ROWS = 256  # fewer cannot train the quantisers (16 centroids each), nor need them


@dataclass(frozen=True)
class IndexPolicy:
    exact_below: int = 100_000  # rows; an exact scan of 100 k 512-d rows takes 17 ms
    nprobe: int = 32  # inverted lists searched per query
    refine: int = 50  # PQ candidates re-scored from fp16 per wanted hit (FAISS k_factor)
    retrain_growth: float = 4.0  # rebuild once this many times the rows it was trained on
    threads: int = 0  # FAISS OpenMP threads; 0: its default


def nlist_for(rows: int) -> int:
    """Inverted lists for ``rows`` vectors: about sqrt(n), a power of two, with at least 16
    training points each (k-means on 2 cores trains 1,024 lists on 40 k points in seconds;
    4 sqrt(n) lists took minutes at 1 M)."""
    return max(1, min(2 ** round(math.log2(math.sqrt(max(rows, 1)))), rows // 16))


class ApproximateIndex:
    """IVF + fast-scan PQ codes, refined from fp16 vectors; rows are insertion order.

    Built here (``ApproximateIndex(vectors, policy)``) it is owned and takes ``add``.
    Loaded from a saved file (:meth:`load`) it is memory-mapped, read-only and shared with
    every process of the host that maps the same file; the rows added after it are kept
    beside it, exact (``delta``), until :meth:`stale` asks for a rebuild.
    """

    def __init__(self, vectors: np.ndarray, policy: IndexPolicy, index=None) -> None:
        import faiss

        if policy.threads:
            faiss.omp_set_num_threads(policy.threads)
        rows, dim = vectors.shape
        self.policy = policy
        self.dim = dim
        self.delta = np.zeros((0, dim), np.float32)  # rows after a mapped base, exact
        self.mapped = index is not None
        if index is not None:  # a loaded base (see load)
            self.index, self.trained_rows, self.flat = index, int(index.ntotal), False
            self._tune()
            return
        self.trained_rows = rows
        # Too few vectors to train quantisers on (a collection's first crops, say): an
        # exact flat index, until stale() asks for the real one.
        self.flat = rows < MIN_ROWS
        key = "Flat" if self.flat else f"IVF{nlist_for(rows)},PQ{max(1, dim // 8)}x4fs"
        key += "" if self.flat else ",Refine(SQfp16)"
        self.index = faiss.index_factory(dim, key, faiss.METRIC_INNER_PRODUCT)
        if not self.flat:
            sample = vectors
            if rows > 40 * nlist_for(rows):  # k-means needs ~40-256 points a list, no more
                picks = np.random.default_rng(0).choice(rows, 40 * nlist_for(rows), replace=False)
                sample = vectors[np.sort(picks)]
            self.index.train(_float32(sample))
            self._tune()
        self.add(vectors)

    def _tune(self) -> None:
        import faiss

        faiss.extract_index_ivf(self.index).nprobe = self.policy.nprobe
        self.index.k_factor = self.policy.refine

    @classmethod
    def load(cls, path: Path, policy: IndexPolicy) -> ApproximateIndex:
        """A saved index, memory-mapped read-only (its lists and its fp16 copies)."""
        import faiss

        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY
        index = faiss.read_index(str(path), flags)
        return cls(np.zeros((0, index.d), np.float32), policy, index)

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
        """Grown past what it was trained for (or past flat, or a mapped base's delta past a
        tenth of it): time to rebuild."""
        if self.flat:
            return self.size >= MIN_ROWS
        if len(self.delta) > max(MIN_ROWS, self.base_size // 10):
            return True
        return self.size >= self.policy.retrain_growth * self.trained_rows

    def rebuilt(self) -> ApproximateIndex:
        """A new, owned index trained on every vector this one holds (its fp16 copies)."""
        return ApproximateIndex(self.vectors(np.arange(self.size)), self.policy)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and rows (q, k), best first; rows of -1 where fewer than k were found."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        queries = _float32(queries)
        scores, rows = self.index.search(queries, min(k, max(self.base_size, 1)))
        if not len(self.delta):
            return scores, rows
        extra = queries @ self.delta.T  # the rows after the base, scored exactly
        scores = np.concatenate([scores, extra], axis=1)
        after = np.arange(self.base_size, self.size)
        rows = np.concatenate([rows, np.broadcast_to(after, extra.shape)], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The (fp16-exact) vectors of these rows, fp32."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        out = np.zeros((len(rows), self.dim), np.float32)
        inside = rows < self.base_size
        if inside.any():
            out[inside] = self.index.reconstruct_batch(np.ascontiguousarray(rows[inside]))
        if (~inside).any():
            out[~inside] = self.delta[rows[~inside] - self.base_size]
        return out


def _float32(vectors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(vectors, dtype=np.float32)
