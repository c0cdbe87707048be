"""The plan evaluation: its counting, and a quick run end to end."""

from __future__ import annotations

import numpy as np

from clipcore.lab import plan_eval
from clipcore.lab.plan_eval import Truth


def test_sequential_budget_and_random_pairs():
    assert plan_eval.sequential_pairs(5, 1) == 4
    assert plan_eval.sequential_pairs(5, 4) == 10  # every pair
    assert plan_eval.window_for(100, 0) == 1
    assert plan_eval.window_for(100, 945) == 10  # 100 * 10 - 55 = 945
    assert plan_eval.window_for(100, 946) == 11
    pairs = plan_eval.random_pairs(np.random.default_rng(0), 30, 100)
    assert len(pairs) == 100 and all(0 <= i < j < 30 for i, j in pairs)


def test_measure_counts_recall_of_overlapping_pairs():
    truth = Truth({(0, 1), (1, 2), (2, 3), (0, 3)}, {(0, 1)}, np.array([0, 0, 0, 0]), 4)
    m = plan_eval.measure({(0, 1), (1, 3)}, truth)
    assert (m.pairs, m.recall, m.recall_half) == (2, 0.25, 1.0)
    assert m.three == 0.0 and m.connected == 0.5  # 0-1 connected, 2 and 3 alone
    m = plan_eval.measure({(0, 1), (1, 2), (2, 3)}, truth)
    assert m.connected == 1.0 and m.three == 0.5  # each has 2 partners: 1 and 2 find both
    assert truth.exhaustive == 6


def test_same_site_share():
    e = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.1, 0.99]], np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    assert plan_eval.same_site_share(e, np.array([0, 0, 1, 1]), 1) == 1.0
    assert plan_eval.same_site_share(e, np.array([0, 1, 1, 1]), 1) == 0.5


def test_quick_run_prints_every_table(capsys):
    plan_eval.main(["--quick"])
    out = capsys.readouterr().out
    for heading in ("unordered", "ordered", "Hygiene", "EXIF read-back", "thumbnail correlation"):
        assert heading in out
    starts = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert {"exhaustive", "retrieval", "retrieval+sequential", "sequential", "random"} <= starts
    for flag in ("blurry", "overexposed", "underexposed", "near_duplicate", "low_resolution"):
        assert flag in out
