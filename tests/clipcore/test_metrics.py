"""Metrics on hand-computed cases."""

from __future__ import annotations

import pytest

from clipcore.metrics import first_relevant_rank, recall_at_k, reciprocal_rank, summarize

RANKING = ["a", "b", "c", "d", "e"]


def test_recall_at_k_is_whether_a_relevant_item_made_the_top_k() -> None:
    relevant = {"c", "e"}
    assert [recall_at_k(RANKING, relevant, k) for k in (1, 2, 3, 5, 50)] == [0, 0, 1, 1, 1]
    assert recall_at_k(RANKING, {"z"}, 5) == 0
    assert recall_at_k(RANKING, set(), 5) == 0


def test_reciprocal_rank_uses_the_first_relevant_item() -> None:
    assert reciprocal_rank(RANKING, {"a"}) == 1
    assert reciprocal_rank(RANKING, {"c", "d"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(RANKING, {"x"}) == 0
    assert first_relevant_rank(RANKING, {"d"}) == 4
    assert first_relevant_rank(RANKING, set()) is None


def test_mean_reciprocal_rank_over_queries() -> None:
    # ranks 1, 2 and none: MRR = (1 + 0.5 + 0) / 3
    per_query = [
        {"rr": reciprocal_rank(RANKING, {"a"}), "r@1": recall_at_k(RANKING, {"a"}, 1)},
        {"rr": reciprocal_rank(RANKING, {"b"}), "r@1": recall_at_k(RANKING, {"b"}, 1)},
        {"rr": reciprocal_rank(RANKING, {"q"}), "r@1": recall_at_k(RANKING, {"q"}, 1)},
    ]
    assert summarize(per_query) == {"rr": pytest.approx(0.5), "r@1": pytest.approx(1 / 3)}
    # Recall@2 over the same three queries: a (rank 1) and b (rank 2) make it, q never does.
    r2 = [recall_at_k(RANKING, {x}, 2) for x in "abq"]
    assert summarize([{"r@2": v} for v in r2]) == {"r@2": pytest.approx(2 / 3)}
    assert summarize([]) == {}
