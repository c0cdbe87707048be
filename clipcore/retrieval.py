"""Search over a collection's embeddings (by text or by image), with crop reranking.

:class:`CollectionIndex` is what a worker holds in memory per collection: the image
vectors, the crop vectors and which image each crop belongs to. Below its policy's
``exact_below`` rows, search is exact: a matrix product over fp32 rows (at 1 M images of
512 dimensions, 1 GFLOP a query). From there on the vectors move into FAISS
(:mod:`clipcore.vector_index`): the approximate index shortlists images (and, with crop
reranking, crops, whose images join the shortlist), and the shortlist is scored exactly,
fused the same way. Either way ``search`` returns the same kind of answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from clipcore.metrics import first_relevant_rank, recall_at_k, reciprocal_rank
from clipcore.rerank import best_crops, fuse
from clipcore.schemas import Fusion, RerankMode
from clipcore.search_decision import NullScores, null_scores
from clipcore.vector_index import MIN_ROWS, ApproximateIndex, IndexPolicy, RowSource

# An approximate collection ranks at most this deep for evaluation (a first relevant image
# beyond it counts as not found: its reciprocal rank would be under 0.001).
APPROXIMATE_DEPTH = 1000
EXACT_ONLY = IndexPolicy(exact_below=2**62)  # a shortlist is scored exactly, however long
# An approximate search scores exactly this many nearest images per wanted hit, and with
# crop reranking the owners of this many nearest crops (an image keeps up to 8 crops).
SHORTLIST_IMAGES, SHORTLIST_CROPS = 2, 8


@dataclass
class CollectionIndex:
    """Embeddings of one collection, rows aligned with ``image_ids``; crops point to rows.

    Exact: ``images`` and ``crops`` are fp32 matrices. Approximate (``approximate_images``
    set): the vectors live in FAISS and those matrices are empty.
    """

    image_ids: list[str] = field(default_factory=list)
    images: torch.Tensor = field(default_factory=lambda: torch.empty(0, 0))
    crops: torch.Tensor = field(default_factory=lambda: torch.empty(0, 0))
    crop_owners: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))
    version: int = -1
    policy: IndexPolicy = field(default_factory=IndexPolicy)
    approximate_images: ApproximateIndex | None = None
    approximate_crops: ApproximateIndex | None = None
    # each null prompt's best score (clipcore.search_decision), per way of scoring; cleared
    # when rows are added
    null_cache: dict[tuple, torch.Tensor] = field(default_factory=dict)
    # an approximate index was trained here since it was last saved (worker.collections)
    built: bool = False
    # where approximate indexes read the exact vectors of their rows from, when the
    # collection keeps them in files; None: the indexes hold fp16 copies themselves
    image_source: RowSource | None = None
    crop_source: RowSource | None = None
    _rows: dict[str, int] = field(default_factory=dict, repr=False)

    @classmethod
    def from_saved(
        cls,
        images: ApproximateIndex,
        crops: ApproximateIndex | None,
        image_ids: Sequence[str],
        crop_owners: torch.Tensor,
        policy: IndexPolicy,
    ) -> CollectionIndex:
        """An approximate index loaded from disk: its rows' ids and crop owners given, its
        version unknown (the next refresh appends the rows added since it was saved)."""
        index = cls(list(image_ids), crop_owners=crop_owners, policy=policy)
        index.approximate_images, index.approximate_crops = images, crops
        index.image_source, index.crop_source = images.source, crops.source if crops else None
        return index

    def build_approximate(
        self,
        image_ids: Sequence[str],
        read_images: Callable[[int, int], np.ndarray],
        crop_owners: torch.Tensor,
        read_crops: Callable[[int, int], np.ndarray],
        dim: int,
        version: int,
    ) -> None:
        """Fill an empty index met at a size past ``exact_below``: trained once at that size
        (not retrained as it grows row by row), its vectors read a block at a time."""
        assert self.size == 0
        self.image_ids, self.crop_owners, self.version = list(image_ids), crop_owners, version
        self.approximate_images = ApproximateIndex.built(
            read_images, len(image_ids), dim, self.policy, self.image_source
        )
        self.approximate_crops = (
            ApproximateIndex.built(read_crops, len(crop_owners), dim, self.policy, self.crop_source)
            if len(crop_owners)
            else None
        )
        self.built = True

    @property
    def size(self) -> int:
        return len(self.image_ids)

    @property
    def approximate(self) -> bool:
        return self.approximate_images is not None

    @property
    def crop_count(self) -> int:
        return len(self.crop_owners)

    def row_of(self, image_id: str) -> int | None:
        """The row of an image id (the lookup is built on first use after rows are added)."""
        if len(self._rows) != self.size:
            self._rows = {image: row for row, image in enumerate(self.image_ids)}
        return self._rows.get(image_id)

    def vector(self, row: int) -> torch.Tensor:
        """One image's embedding."""
        if self.approximate_images is not None:
            return torch.from_numpy(self.approximate_images.vectors(np.array([row])))[0]
        return self.images[row]

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
        if crops.numel():
            self.crop_owners = torch.cat([self.crop_owners, crop_owners])
        self.version = version
        self.null_cache.clear()
        if self.approximate_images is not None:
            self.approximate_images.add(images.numpy())
            if crops.numel():
                if self.approximate_crops is None:
                    self.approximate_crops = ApproximateIndex.of(
                        crops.numpy(), self.policy, self.crop_source
                    )
                else:
                    self.approximate_crops.add(crops.numpy())
            if self.approximate_images.stale():  # each retrained on its own, when it needs it
                self.approximate_images = self.approximate_images.rebuilt()
                self.built = True
            if self.approximate_crops is not None and self.approximate_crops.stale():
                self.approximate_crops = self.approximate_crops.rebuilt()
                self.built = True
            return
        self.images = images if self.images.numel() == 0 else torch.cat([self.images, images])
        if crops.numel():
            self.crops = crops if self.crops.numel() == 0 else torch.cat([self.crops, crops])
        if self.size >= max(self.policy.exact_below, MIN_ROWS):  # the crops follow their images
            self._go_approximate()

    def _go_approximate(self) -> None:
        """Train the approximate indexes on every vector, and drop the exact matrices."""
        crops = self.crops.numpy()
        self.approximate_images = ApproximateIndex.of(
            self.images.numpy(), self.policy, self.image_source
        )
        self.approximate_crops = (
            ApproximateIndex.of(crops, self.policy, self.crop_source) if len(crops) else None
        )
        self.images, self.crops = torch.empty(0, 0), torch.empty(0, 0)
        self.built = True

    def region_index(self, crop_row: int) -> int:
        """Which of its image's regions a crop row is (crops of an image are contiguous)."""
        owner = self.crop_owners[crop_row]
        return crop_row - int(torch.searchsorted(self.crop_owners, owner))

    @property
    def nbytes(self) -> int:
        dense = sum(
            t.numel() * t.element_size() for t in (self.images, self.crops, self.crop_owners)
        )
        return dense + sum(
            a.nbytes for a in (self.approximate_images, self.approximate_crops) if a is not None
        )

    def shortlist(self, query: torch.Tensor, want: int, rerank: RerankMode) -> np.ndarray:
        """Approximate: the image rows worth scoring exactly for ``want`` hits, sorted.

        The images nearest the query, and with crops the owners of the nearest crops: an
        image can rank by its crop's score, and its crops may trail several of each of the
        images ahead of it (``SHORTLIST_CROPS`` per hit)."""
        assert self.approximate_images is not None
        q = query[None].numpy()
        _, rows = self.approximate_images.search(q, SHORTLIST_IMAGES * want)
        found = [rows[0]]
        if rerank == RerankMode.crops and self.approximate_crops is not None:
            _, crop_rows = self.approximate_crops.search(q, SHORTLIST_CROPS * want)
            hit = crop_rows[0][crop_rows[0] >= 0]
            found.append(self.crop_owners[torch.from_numpy(hit)].numpy())
        rows = np.unique(np.concatenate(found))
        return rows[rows >= 0]

    def subset(self, rows: np.ndarray) -> tuple[CollectionIndex, np.ndarray]:
        """An exact index of these image rows (with their crops), and its crops' rows here."""
        assert self.approximate_images is not None
        picked = torch.from_numpy(rows)
        low = torch.searchsorted(self.crop_owners, picked)
        high = torch.searchsorted(self.crop_owners, picked, right=True)
        crop_rows = np.concatenate(
            [np.arange(a, b) for a, b in zip(low.tolist(), high.tolist(), strict=True)] or [[]]
        ).astype(np.int64)
        sub = CollectionIndex(policy=EXACT_ONLY)
        crops = torch.empty(0, 0)
        if len(crop_rows) and self.approximate_crops is not None:
            crops = torch.from_numpy(self.approximate_crops.vectors(crop_rows))
        owners = torch.repeat_interleave(torch.arange(len(rows)), high - low)
        images = torch.from_numpy(self.approximate_images.vectors(rows))
        sub.extend([self.image_ids[r] for r in rows], images, crops, owners, self.version)
        return sub, crop_rows


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
    if index.approximate:
        return _search_shortlist(index, query, top_k, rerank, fusion, crop_weight, exclude)
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


def _search_shortlist(
    index: CollectionIndex,
    query: torch.Tensor,
    top_k: int,
    rerank: RerankMode,
    fusion: Fusion,
    crop_weight: float,
    exclude: int | None,
) -> list[Ranked]:
    """Approximate: the shortlist scored exactly, its rows mapped back to the collection's."""
    rows = index.shortlist(query, top_k + (exclude is not None), rerank)
    sub, crop_rows = index.subset(rows)
    inside = np.flatnonzero(rows == exclude)
    hits = search(
        sub, query, top_k, rerank, fusion, crop_weight, int(inside[0]) if len(inside) else None
    )
    return [
        Ranked(
            row=int(rows[h.row]),
            score=h.score,
            image_score=h.image_score,
            crop_score=h.crop_score,
            crop_row=None if h.crop_row is None else int(crop_rows[h.crop_row]),
        )
        for h in hits
    ]


def collection_nulls(
    index: CollectionIndex,
    nulls: torch.Tensor,
    rerank: RerankMode = RerankMode.none,
    fusion: Fusion = Fusion.max,
    crop_weight: float = 0.5,
) -> NullScores:
    """How well the null prompts do in this collection, scored as a query would be."""
    return null_scores(null_best(index, nulls, rerank, fusion, crop_weight))


def null_best(
    index: CollectionIndex,
    nulls: torch.Tensor,
    rerank: RerankMode = RerankMode.none,
    fusion: Fusion = Fusion.max,
    crop_weight: float = 0.5,
) -> torch.Tensor:
    """Each null prompt's best score in this collection (of a sharded collection: the
    maximum over its shards' is the whole collection's)."""
    key = (rerank, fusion, crop_weight)
    if key not in index.null_cache:  # once per collection version and way of scoring
        if index.approximate:
            found = [search(index, null, 1, rerank, fusion, crop_weight) for null in nulls]
            best = torch.tensor([hits[0].score for hits in found])
        else:
            final, *_ = score_images(index, nulls, rerank, fusion, crop_weight)
            best = final.max(dim=1).values
        index.null_cache[key] = best
    return index.null_cache[key]


def rankings(
    index: CollectionIndex,
    queries: torch.Tensor,
    rerank: RerankMode,
    depth: int,
    fusion: Fusion = Fusion.max,
    crop_weight: float = 0.5,
) -> list[list[int]]:
    """For evaluation: each query's top ``depth`` image rows, best first (an approximate
    collection's at most ``APPROXIMATE_DEPTH``)."""
    if index.size == 0:
        return [[] for _ in range(len(queries))]
    if index.approximate:
        depth = min(depth, APPROXIMATE_DEPTH)
        return [
            [hit.row for hit in search(index, q, depth, rerank, fusion, crop_weight)]
            for q in queries
        ]
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
