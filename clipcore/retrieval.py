"""Exact search over a collection's embeddings (by text or by image), with crop reranking.

:class:`CollectionIndex` is what a worker holds in memory per collection: the
image matrix, the crop matrix and which image each crop belongs to. Search is
a matrix product (exact, no approximation): at 1 M images of 512 dimensions it
is 1 GFLOP per query, milliseconds on a GPU. Past what one worker holds, shard
collections across workers or put an approximate index (FAISS) behind the same
``search`` signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from clipcore.metrics import first_relevant_rank, recall_at_k, reciprocal_rank
from clipcore.rerank import best_crops, fuse
from clipcore.schemas import Fusion, RerankMode
from clipcore.search_decision import NullScores, null_scores


@dataclass
class CollectionIndex:
    """Embeddings of one collection, rows aligned with ``image_ids``; crops point to rows."""

    image_ids: list[str] = field(default_factory=list)
    images: torch.Tensor = field(default_factory=lambda: torch.empty(0, 0))
    crops: torch.Tensor = field(default_factory=lambda: torch.empty(0, 0))
    crop_owners: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))
    version: int = -1
    # clipcore.search_decision's statistics, per way of scoring; cleared when rows are added
    null_cache: dict[tuple, NullScores] = field(default_factory=dict)
    _rows: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        return len(self.image_ids)

    def row_of(self, image_id: str) -> int | None:
        """The row of an image id (the lookup is built on first use after rows are added)."""
        if len(self._rows) != self.size:
            self._rows = {image: row for row, image in enumerate(self.image_ids)}
        return self._rows.get(image_id)

    def extend(
        self,
        image_ids: Sequence[str],
        images: torch.Tensor,
        crops: torch.Tensor,
        crop_owners: torch.Tensor,
        version: int,
    ) -> None:
        """Append rows (crop owners are absolute image rows)."""
        self.image_ids.extend(image_ids)
        self.images = images if self.images.numel() == 0 else torch.cat([self.images, images])
        if crops.numel():
            self.crops = crops if self.crops.numel() == 0 else torch.cat([self.crops, crops])
            self.crop_owners = torch.cat([self.crop_owners, crop_owners])
        self.version = version
        self.null_cache.clear()

    def region_index(self, crop_row: int) -> int:
        """Which of its image's regions a crop row is (crops of an image are contiguous)."""
        owner = self.crop_owners[crop_row]
        return crop_row - int(torch.searchsorted(self.crop_owners, owner))

    @property
    def nbytes(self) -> int:
        return sum(
            t.numel() * t.element_size() for t in (self.images, self.crops, self.crop_owners)
        )


@dataclass(frozen=True)
class Ranked:
    row: int
    score: float
    image_score: float
    crop_score: float | None
    crop_row: int | None


def score_images(
    index: CollectionIndex,
    queries: torch.Tensor,
    rerank: RerankMode,
    fusion: Fusion = Fusion.max,
    crop_weight: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For (q, dim) unit queries: final, image and best-crop scores (q, n) and best-crop rows."""
    image_scores = queries @ index.images.T
    n = index.size
    if rerank == RerankMode.none or index.crops.numel() == 0:
        empty = torch.full_like(image_scores, float("-inf"))
        return image_scores, image_scores, empty, torch.full(image_scores.shape, -1)
    crop_scores = queries @ index.crops.T
    per_query = [best_crops(row, index.crop_owners, n) for row in crop_scores]
    best = torch.stack([b for b, _ in per_query])
    rows = torch.stack([r for _, r in per_query])
    return fuse(image_scores, best, fusion, crop_weight), image_scores, best, rows


def search(
    index: CollectionIndex,
    query: torch.Tensor,
    top_k: int,
    rerank: RerankMode = RerankMode.none,
    fusion: Fusion = Fusion.max,
    crop_weight: float = 0.5,
    exclude: int | None = None,
) -> list[Ranked]:
    """The ``top_k`` images for one unit query embedding, best first (``exclude``: a row
    left out, the query image itself when it is one of the collection's)."""
    if index.size == 0:
        return []
    final, image, crop, rows = score_images(index, query[None], rerank, fusion, crop_weight)
    if exclude is not None:
        final[0, exclude] = float("-inf")
    scores, order = final[0].topk(min(top_k, index.size - (exclude is not None)))
    hits = []
    for score, row in zip(scores.tolist(), order.tolist(), strict=True):
        crop_score = float(crop[0, row])
        has_crop = crop_score != float("-inf")
        hits.append(
            Ranked(
                row=row,
                score=score,
                image_score=float(image[0, row]),
                crop_score=crop_score if has_crop else None,
                crop_row=int(rows[0, row]) if has_crop else None,
            )
        )
    return hits


def collection_nulls(
    index: CollectionIndex,
    nulls: torch.Tensor,
    rerank: RerankMode = RerankMode.none,
    fusion: Fusion = Fusion.max,
    crop_weight: float = 0.5,
) -> NullScores:
    """How well the null prompts do in this collection, scored as a query would be."""
    key = (rerank, fusion, crop_weight)
    if key not in index.null_cache:  # once per collection version and way of scoring
        final, *_ = score_images(index, nulls, rerank, fusion, crop_weight)
        index.null_cache[key] = null_scores(final.max(dim=1).values)
    return index.null_cache[key]


def rankings(
    index: CollectionIndex,
    queries: torch.Tensor,
    rerank: RerankMode,
    depth: int,
    fusion: Fusion = Fusion.max,
    crop_weight: float = 0.5,
) -> list[list[int]]:
    """For evaluation: each query's top ``depth`` image rows, best first."""
    if index.size == 0:
        return [[] for _ in range(len(queries))]
    final, *_ = score_images(index, queries, rerank, fusion, crop_weight)
    return final.topk(min(depth, index.size), dim=1).indices.tolist()


# --- evaluation ------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryOutcome:
    rank: int | None
    reciprocal_rank: float
    recall_at: dict[str, float]


def evaluate_rankings(
    ranked_rows: Sequence[Sequence[int]],
    row_labels: Sequence[Sequence[str]],
    relevant_labels: Sequence[Sequence[str]],
    ks: Sequence[int],
) -> list[QueryOutcome]:
    """Per query: rank of the first relevant row, reciprocal rank and Recall@K.

    A row is relevant to a query when it carries any of the query's labels.
    """
    outcomes = []
    for ranking, wanted in zip(ranked_rows, relevant_labels, strict=True):
        wanted_set = set(wanted)
        relevant = {row for row, labels in enumerate(row_labels) if wanted_set & set(labels)}
        outcomes.append(
            QueryOutcome(
                rank=first_relevant_rank(ranking, relevant),
                reciprocal_rank=reciprocal_rank(ranking, relevant),
                recall_at={str(k): recall_at_k(ranking, relevant, k) for k in ks},
            )
        )
    return outcomes
