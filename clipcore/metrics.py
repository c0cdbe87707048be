"""Retrieval metrics on ranked lists: Recall@K and (mean) reciprocal rank.

A ranking is a sequence of item ids, best first; ``relevant`` is the set of
ids that answer the query. Recall@K is text→image retrieval's R@K: 1 when a
relevant item is among the top K, else 0 — averaged over queries, the share of
queries answered within K (with one relevant item per query it is the classic
recall). The reciprocal rank is 1 / (rank of the first relevant item), 0 when
none is ranked.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence


def first_relevant_rank(ranking: Sequence[Hashable], relevant: Collection[Hashable]) -> int | None:
    """1-based rank of the first relevant item, or None."""
    for position, item in enumerate(ranking, start=1):
        if item in relevant:
            return position
    return None


def recall_at_k(ranking: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """1.0 when a relevant item is in the top ``k``, else 0.0."""
    rank = first_relevant_rank(ranking[:k], relevant)
    return 0.0 if rank is None else 1.0


def reciprocal_rank(ranking: Sequence[Hashable], relevant: Collection[Hashable]) -> float:
    rank = first_relevant_rank(ranking, relevant)
    return 0.0 if rank is None else 1.0 / rank


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def summarize(per_query: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over queries (keys as in the per-query mappings)."""
    keys = per_query[0].keys() if per_query else []
    return {key: mean([q[key] for q in per_query]) for key in keys}
