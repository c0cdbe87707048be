"""Which image pairs to match: a shortlist from the images' global CLIP embeddings.

Exhaustive matching costs n(n-1)/2 pairs. As hloc's ``pairs_from_retrieval`` does with
NetVLAD (and the Image Matching Challenge 2024 baseline with DINOv2), each image is paired
with its k nearest neighbours by global descriptor; the pairs are symmetrised (i's neighbour
j and j's neighbour i are one pair) and, for ordered captures (video frames, numbered file
names), merged with a sequential window in natural file-name order. Images excluded by
hygiene take part in no pair; images left in none are reported, since they cannot register.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

import numpy as np

from clipcore.plans.schemas import ImagePair, PairShortlist, PairSource, ShortlistStrategy

# Rows of the similarity matrix computed at once: 2,048 × n float32 stays small at any n.
_ROW_BLOCK = 2048


def nearest_neighbours(embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` most similar other rows: (indices, cosine similarities), (n, k) each,
    most similar first. ``embeddings`` are L2-normalised rows; ``k`` is capped at n - 1."""
    n = len(embeddings)
    k = max(0, min(k, n - 1))
    indices = np.zeros((n, k), dtype=np.int64)
    similarities = np.zeros((n, k), dtype=np.float32)
    if k == 0:
        return indices, similarities
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    for start in range(0, n, _ROW_BLOCK):
        block = vectors[start : start + _ROW_BLOCK] @ vectors.T
        rows = np.arange(len(block))
        block[rows, start + rows] = -np.inf  # an image is not its own neighbour
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        indices[start : start + len(block)] = np.take_along_axis(top, order, axis=1)
        similarities[start : start + len(block)] = np.take_along_axis(top_scores, order, axis=1)
    return indices, similarities


def capture_order(names: Sequence[str]) -> list[int]:
    """Indices of ``names`` in natural order (``frame_2`` before ``frame_10``)."""

    def key(index: int) -> list[tuple[int, int | str]]:
        parts = re.split(r"(\d+)", names[index].casefold())
        return [(0, int(part)) if part.isdigit() else (1, part) for part in parts]

    return sorted(range(len(names)), key=key)


def pair_shortlist(
    embeddings: np.ndarray,
    names: Sequence[str],
    *,
    strategy: ShortlistStrategy,
    pairs_per_image: int,
    window: int,
    exclude: Collection[int] = (),
) -> PairShortlist:
    """The pairs to match among ``names`` (rows of ``embeddings``) but those in ``exclude``."""
    n = len(names)
    kept = [i for i in range(n) if i not in exclude]
    vectors = np.asarray(embeddings, dtype=np.float32)[kept]
    sources: dict[tuple[int, int], set[PairSource]] = {}

    def propose(a: int, b: int, source: PairSource) -> None:
        pair = (min(a, b), max(a, b))  # positions in ``kept``, which keeps the dataset's order
        sources.setdefault(pair, set()).add(source)

    if strategy == ShortlistStrategy.exhaustive:
        for a in range(len(kept)):
            for b in range(a + 1, len(kept)):
                propose(a, b, PairSource.exhaustive)
    if strategy in (ShortlistStrategy.retrieval, ShortlistStrategy.retrieval_sequential):
        neighbours, _ = nearest_neighbours(vectors, pairs_per_image)
        for a, row in enumerate(neighbours):
            for b in row:
                propose(a, int(b), PairSource.retrieval)
    if strategy in (ShortlistStrategy.sequential, ShortlistStrategy.retrieval_sequential):
        order = capture_order([names[i] for i in kept])
        for position, a in enumerate(order):
            for b in order[position + 1 : position + 1 + window]:
                propose(a, b, PairSource.sequential)

    pairs = [
        ImagePair(
            image0=names[kept[a]],
            image1=names[kept[b]],
            similarity=round(float(vectors[a] @ vectors[b]), 6),
            sources=sorted(found),
        )
        for (a, b), found in sources.items()
    ]
    pairs.sort(key=lambda pair: -pair.similarity)
    paired = {name for pair in pairs for name in (pair.image0, pair.image1)}
    return PairShortlist(
        strategy=strategy,
        pairs_per_image=pairs_per_image,
        window=window,
        pairs=pairs,
        exhaustive_pairs=n * (n - 1) // 2,
        unpaired=[name for name in names if name not in paired],
    )
