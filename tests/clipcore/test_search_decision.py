"""A collection's own 'no match' threshold, from how well null prompts do in it."""

from __future__ import annotations

import torch

from clipcore.retrieval import CollectionIndex, collection_nulls, null_best
from clipcore.search_decision import MatchDecision, NullScores, null_prompts, null_scores


def test_null_prompts_are_plain_lines() -> None:
    prompts = null_prompts()
    assert len(prompts) >= 50
    assert all(p == p.strip() and not p.startswith("#") for p in prompts)


def test_threshold_is_mean_plus_z_spreads() -> None:
    nulls = null_scores(torch.tensor([0.2, 0.3, 0.4]))
    assert abs(nulls.mean - 0.3) < 1e-6 and abs(nulls.std - 0.1) < 1e-6
    decision = MatchDecision(2.0)
    assert abs(decision.threshold(nulls) - 0.5) < 1e-6
    assert decision.is_match(0.51, nulls) and not decision.is_match(0.49, nulls)


def test_identical_null_scores_still_have_a_spread() -> None:
    assert null_scores(torch.tensor([0.3, 0.3])).std > 0


def test_collection_statistics_are_cached_until_rows_are_added() -> None:
    index = CollectionIndex()
    rows = torch.eye(4)
    index.extend(["a", "b"], rows[:2], torch.empty(0, 0), torch.empty(0, dtype=torch.long), 1)
    nulls = rows[1:3]
    first = collection_nulls(index, nulls)
    assert first == NullScores(mean=0.5, std=float(torch.tensor([1.0, 0.0]).std()))
    assert null_best(index, nulls) is null_best(index, nulls)  # scored once, then cached
    assert collection_nulls(index, nulls) == first
    index.extend(["c"], rows[2:3], torch.empty(0, 0), torch.empty(0, dtype=torch.long), 2)
    assert collection_nulls(index, nulls).mean == 1.0  # the third null now finds its image
