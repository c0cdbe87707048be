"""When is a search's best hit a match? A threshold that each collection sets itself.

A fixed cosine threshold means a different thing for every model and every collection:
a collection of cluttered scenes gives any text a high best score somewhere. Instead each
collection is asked how well queries that *mean nothing there* do: a bank of null prompts
(everyday captions from other domains, ``clipcore/data/null_prompts.txt``) is scored
against the collection, and the best score of each null prompt over the collection gives
a mean and a spread. A query is a match when its best score stands ``z`` spreads above
that mean (``DEFAULT_Z``, chosen from ``python -m clipcore.lab.honesty``).

The statistics are a function of the model and the collection alone, so nothing needs
tuning per deployment, and they mean the same for any CLIP: "better than what unrelated
text reaches in this collection". A request's ``min_score`` still overrides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import torch

DEFAULT_Z = 4.0


@cache
def null_prompts() -> tuple[str, ...]:
    text = resources.files("clipcore").joinpath("data", "null_prompts.txt").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip() and line[0] != "#")


@dataclass(frozen=True)
class NullScores:
    """How well meaningless queries do in one collection: mean and spread of their best."""

    mean: float
    std: float


def null_scores(best: torch.Tensor) -> NullScores:
    """The null statistics from each null prompt's best score over a collection."""
    best = best.float()
    return NullScores(mean=float(best.mean()), std=float(best.std().clamp(min=1e-3)))


@dataclass(frozen=True)
class MatchDecision:
    z: float = DEFAULT_Z

    def threshold(self, nulls: NullScores) -> float:
        return nulls.mean + self.z * nulls.std

    def is_match(self, best: float, nulls: NullScores) -> bool:
        return best >= self.threshold(nulls)
