"""Scene classification results and dataset-level matcher recommendations.

The pure part works on plain per-scene probabilities (aligned with
``taxonomy.scenes``) and needs no model: one image's result with its
recommended matcher and an ``uncertain`` flag, and the summary of a batch —
scene distribution, dominant scenes, a matcher per dominant scene and one
overall matcher for the whole dataset.

Rules, as implemented below:

* **Dominant scenes**: every scene holding more than 20 % of the images; if
  none does, the two largest. Ties keep taxonomy order.
* **Overall matcher**: if one scene holds at least 80 % of the images, that
  scene's matcher for the job's speed. Otherwise every matcher among the
  dominant scenes' four options is scored by share: a dominant scene counts in
  full where the matcher is its choice for the job's speed and half where it
  is one of its other options. The highest score wins; a tie goes to the more
  robust (slower) matcher, or for a fast job to the faster one, then by name.
  A fast job is never given a matcher slower than the dominant scenes' own
  fast choices. The overall recommendation is always present: for a dataset
  of one scene it is simply that scene's matcher.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, Field

from clipcore.domain_check import DomainCheck
from clipcore.taxonomy import Matcher, Speed, Taxonomy

DOMINANT_SHARE = 20.0  # percent; a scene above it is dominant
DOMINANT_FALLBACK = 2  # when no scene is above DOMINANT_SHARE, the largest this many
SINGLE_SCENE_SHARE = 80.0  # percent; at or above it one scene's matcher serves the dataset
# An option that is not the scene's choice for the job's speed still covers it, half as well.
OTHER_OPTION_WEIGHT = 0.5

Probability = float


class SceneScore(BaseModel):
    scene: str
    probability: Probability = Field(ge=0.0, le=1.0)


class SceneImageResult(BaseModel):
    """One image's scene, its confidence and the matcher to use for it."""

    filename: str
    top_scene: str
    description: str = Field(description="The top scene's description from the taxonomy.")
    confidence: Probability = Field(ge=0.0, le=1.0, description="Probability of the top scene.")
    margin: Probability = Field(
        ge=0.0, le=1.0, description="Top probability minus the second highest."
    )
    scores: list[SceneScore] = Field(description="Every scene, most probable first.")
    recommended_matcher: Matcher
    domain: DomainCheck | None = Field(
        None,
        description="Whether the image looks like anything the loaded model can judge; "
        "null when the model has no domain reference.",
    )
    uncertain: bool = Field(
        description="True when confidence or margin falls below the service's thresholds, "
        "or the image is out of the model's domain."
    )


class DominantScene(BaseModel):
    scene: str
    percentage: float = Field(ge=0.0, le=100.0)
    matcher: Matcher


class DatasetRecommendation(BaseModel):
    """One matcher for the whole dataset, and why."""

    matcher: Matcher
    reason: str
    scenes: list[str] = Field(
        description="The dataset's scenes, largest first, listing this matcher as an option."
    )


class DatasetSummary(BaseModel):
    """A batch of images at a glance (the seed's summary plus ``overall``)."""

    total_images: int = Field(ge=1)
    scene_distribution: dict[str, float] = Field(
        description="Percent of images per scene that occurs, largest first."
    )
    dominant_scenes: list[str]
    recommended_matchers: list[DominantScene]
    overall: DatasetRecommendation = Field(
        description="Always present: for a single-scene dataset it is that scene's matcher."
    )
    mixed: bool = Field(description="True when the images fall into more than one scene.")


# --- one image ----------------------------------------------------------------------


def scene_image_result(
    taxonomy: Taxonomy,
    filename: str,
    probabilities: Sequence[float],
    speed: Speed,
    *,
    min_confidence: float,
    min_margin: float,
    domain: DomainCheck | None = None,
) -> SceneImageResult:
    """Turn one image's scene probabilities into its result.

    ``probabilities`` are aligned with ``taxonomy.scenes`` (e.g. a softmax over
    the scenes' ensembled prompt embeddings), each in [0, 1]. The image is
    ``uncertain`` when the top probability is below ``min_confidence`` or its
    lead over the second is below ``min_margin``, or when ``domain`` says it is out of the
    model's domain. Equal probabilities keep
    taxonomy order, so the result is deterministic.
    """
    if len(probabilities) != len(taxonomy.scenes):
        raise ValueError(
            f"got {len(probabilities)} probabilities for {len(taxonomy.scenes)} scenes"
        )
    if any(not (math.isfinite(p) and 0.0 <= p <= 1.0) for p in probabilities):
        raise ValueError("probabilities must be finite numbers in [0, 1]")
    # sorted() is stable: ties stay in taxonomy order.
    ranked = sorted(
        zip(taxonomy.scenes, probabilities, strict=True), key=lambda pair: pair[1], reverse=True
    )
    top, confidence = ranked[0]
    margin = confidence - ranked[1][1]
    return SceneImageResult(
        filename=filename,
        top_scene=top.name,
        description=top.description,
        confidence=confidence,
        margin=margin,
        scores=[SceneScore(scene=s.name, probability=p) for s, p in ranked],
        recommended_matcher=top.recommendations.for_speed(speed),
        domain=domain,
        uncertain=confidence < min_confidence
        or margin < min_margin
        or (domain is not None and not domain.in_domain),
    )


# --- a dataset ----------------------------------------------------------------------


def dominant_scenes(
    distribution: Mapping[str, float],
    *,
    threshold: float = DOMINANT_SHARE,
    fallback: int = DOMINANT_FALLBACK,
) -> list[str]:
    """The dominant scenes of a distribution (scene -> percent), largest first.

    Every scene above ``threshold`` percent; if none is, the ``fallback``
    largest scenes that occur. Ties keep the mapping's order
    (:func:`summarize_dataset` builds it in taxonomy order).
    """
    ranked = [s for s, _ in sorted(distribution.items(), key=lambda kv: kv[1], reverse=True)]
    above = [s for s in ranked if distribution[s] > threshold]
    if above:
        return above
    return [s for s in ranked if distribution[s] > 0][:fallback]


def summarize_dataset(
    taxonomy: Taxonomy, top_scenes: Sequence[str], speed: Speed
) -> DatasetSummary:
    """Aggregate the top scene of each image into the dataset summary.

    ``top_scenes`` holds one scene name per image (at least one). Percentages
    are rounded to two decimals for display; the rules use exact shares.
    """
    if not top_scenes:
        raise ValueError("summarize_dataset needs at least one image")
    order = {name: i for i, name in enumerate(taxonomy.scene_names)}
    unknown = sorted(set(top_scenes) - order.keys())
    if unknown:
        raise ValueError(f"scenes not in taxonomy '{taxonomy.name}': {', '.join(unknown)}")

    total = len(top_scenes)
    counts = Counter(top_scenes)
    names = sorted(counts, key=lambda s: (-counts[s], order[s]))
    shares = {s: 100.0 * counts[s] / total for s in names}
    dominant = dominant_scenes(shares)
    return DatasetSummary(
        total_images=total,
        scene_distribution={s: round(shares[s], 2) for s in names},
        dominant_scenes=dominant,
        recommended_matchers=[
            DominantScene(
                scene=s,
                percentage=round(shares[s], 2),
                matcher=taxonomy.scene(s).recommendations.for_speed(speed),
            )
            for s in dominant
        ],
        overall=overall_recommendation(taxonomy, shares, speed),
        mixed=len(names) > 1,
    )


def overall_recommendation(
    taxonomy: Taxonomy, distribution: Mapping[str, float], speed: Speed
) -> DatasetRecommendation:
    """One matcher for a whole dataset, given its distribution (scene -> percent).

    See the module docstring for the rule. ``reason`` says in words why this
    matcher was chosen; ``scenes`` lists the dataset's scenes, largest first,
    that have it among their four options.
    """
    present = [s for s, _ in sorted(distribution.items(), key=lambda kv: kv[1], reverse=True)]
    present = [s for s in present if distribution[s] > 0]
    if not present:
        raise ValueError("the distribution is empty")
    speed = Speed(speed)
    dominant = dominant_scenes(distribution)
    top = dominant[0]

    if distribution[top] >= SINGLE_SCENE_SHARE:
        matcher = taxonomy.scene(top).recommendations.for_speed(speed)
        lead = (
            f"All images are {_words(top)}"
            if len(present) == 1
            else f"{_words(top)} makes up {_pct(distribution[top])} of the images"
        )
        reason = f"{lead}, so its {_SLOT[speed]} matcher {matcher.name} suits the whole dataset."
        scenes = _scenes_offering(taxonomy, present, matcher.name)
        return DatasetRecommendation(matcher=matcher, reason=reason, scenes=scenes)

    chosen = {s: taxonomy.scene(s).recommendations.for_speed(speed) for s in dominant}
    offered = {s: {m.name for m in taxonomy.scene(s).recommendations.options()} for s in dominant}
    speeds = {
        m.name: m.speed for s in dominant for m in taxonomy.scene(s).recommendations.options()
    }
    if speed is Speed.fast:
        # The user asked for speed: nothing slower than the scenes' own fast choices.
        ceiling = max(m.speed.rank for m in chosen.values())
        speeds = {name: sp for name, sp in speeds.items() if sp.rank <= ceiling}

    def score(name: str) -> float:
        full = sum(distribution[s] for s in dominant if chosen[s].name == name)
        part = sum(
            distribution[s] for s in dominant if chosen[s].name != name and name in offered[s]
        )
        # Rounded so that float noise in shares like 33.33.. cannot break a real tie.
        return round(full + OTHER_OPTION_WEIGHT * part, 9)

    def robustness(name: str) -> int:
        # Slower is taken as more robust; a fast job prefers the faster instead.
        return -speeds[name].rank if speed is Speed.fast else speeds[name].rank

    ranked = sorted(speeds, key=lambda n: (-score(n), -robustness(n), n))
    best = ranked[0]
    as_choice = [s for s in dominant if chosen[s].name == best]
    as_option = [s for s in dominant if s not in as_choice and best in offered[s]]
    # Take the matcher (its reason and pipeline) from the largest scene that
    # names it for this speed, else from the largest that lists it at all.
    if as_choice:
        matcher = chosen[as_choice[0]]
    else:
        options = taxonomy.scene(as_option[0]).recommendations.options()
        matcher = next(m for m in options if m.name == best)

    scenes = _scenes_offering(taxonomy, present, best)
    parts = []
    if as_choice:
        parts.append(f"the {_SLOT[speed]} choice for {_join(as_choice, distribution)}")
    if as_option:
        parts.append(f"an option for {_join(as_option, distribution)}")
    mix = ", ".join(f"{_words(s)} {_pct(distribution[s])}" for s in present)
    covered = _pct(sum(distribution[s] for s in scenes))
    reason = (
        f"Mixed dataset ({mix}). {best} is {' and '.join(parts)}; "
        f"it is among the options of scenes holding {covered} of the images"
    )
    runner_up = ranked[1] if len(ranked) > 1 else None
    if runner_up and score(runner_up) == score(best) and speeds[runner_up] != speeds[best]:
        preferred = "faster" if speed is Speed.fast else "more robust"
        reason += f"; it tied with {runner_up} and is the {preferred} of the two"
    return DatasetRecommendation(matcher=matcher, reason=reason + ".", scenes=scenes)


_SLOT = {Speed.balanced: "balanced (primary)", Speed.fast: "fast", Speed.accurate: "accurate"}


def _scenes_offering(taxonomy: Taxonomy, present: list[str], name: str) -> list[str]:
    return [
        s
        for s in present
        if any(m.name == name for m in taxonomy.scene(s).recommendations.options())
    ]


def _pct(value: float) -> str:
    return f"{value:.0f}%" if float(value).is_integer() else f"{value:.1f}%"


def _join(scenes: list[str], distribution: Mapping[str, float]) -> str:
    return ", ".join(f"{_words(s)} ({_pct(distribution[s])})" for s in scenes)


def _words(scene: str) -> str:
    """A scene's name in prose, as the page writes it ('close_up' -> 'close up')."""
    return scene.replace("_", " ")
