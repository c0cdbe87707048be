"""Scene results and dataset aggregation, on hand-built probabilities and score tables."""

from __future__ import annotations

import math
from typing import Any

import pytest

from clipcore.scenes import (
    DatasetSummary,
    dominant_scenes,
    overall_recommendation,
    scene_image_result,
    summarize_dataset,
)
from clipcore.taxonomy import Speed, Taxonomy, load_default_taxonomy, parse_taxonomy

THRESHOLDS = {"min_confidence": 0.4, "min_margin": 0.1}


@pytest.fixture
def default() -> Taxonomy:
    return load_default_taxonomy()


def probs(**by_scene: float) -> list[float]:
    """Probabilities aligned with the default taxonomy; unnamed scenes share the rest."""
    names = load_default_taxonomy().scene_names
    rest = (1.0 - sum(by_scene.values())) / (len(names) - len(by_scene))
    return [by_scene.get(n, rest) for n in names]


def toy_taxonomy(**scenes: tuple[str, str, str, str]) -> Taxonomy:
    """A taxonomy whose scenes map to (primary, alternative, fast, accurate) matcher names.

    A matcher's speed is read from its name's first letter: f(ast), m(edium), s(low).
    """
    speed = {"f": "fast", "m": "medium", "s": "slow"}

    def matcher(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "speed": speed[name[0]],
            "reason": f"because {name}",
            "pipeline": {"project": f"https://example.org/{name}"},
        }

    return parse_taxonomy(
        {
            "version": "test",
            "name": "toy",
            "scenes": [
                {
                    "name": name,
                    "description": f"{name} scene",
                    "use_cases": [],
                    "prompts": [f"a photo of {name}"],
                    "recommendations": dict(
                        zip(
                            ("primary", "alternative", "fast", "accurate"),
                            map(matcher, slots),
                            strict=True,
                        )
                    ),
                }
                for name, slots in scenes.items()
            ],
        }
    )


# --- one image -------------------------------------------------------------------------


def test_image_result_names_the_top_scene_and_its_matcher(default: Taxonomy) -> None:
    p = probs(outdoor=0.7, far_away=0.2)
    result = scene_image_result(default, "street.jpg", p, Speed.balanced, **THRESHOLDS)
    assert result.filename == "street.jpg"
    assert result.top_scene == "outdoor"
    assert result.description == default.scene("outdoor").description
    assert result.confidence == pytest.approx(0.7)
    assert result.margin == pytest.approx(0.5)
    assert result.recommended_matcher.name == "XFeat"
    assert result.uncertain is False
    assert [s.scene for s in result.scores][:2] == ["outdoor", "far_away"]
    assert sorted(s.scene for s in result.scores) == sorted(default.scene_names)
    values = [s.probability for s in result.scores]
    assert values == sorted(values, reverse=True)


@pytest.mark.parametrize(
    ("speed", "name"),
    [(Speed.balanced, "XoFTR"), (Speed.fast, "xfeat+lightglue"), (Speed.accurate, "DUSt3R")],
)
def test_image_result_matcher_follows_the_speed(default: Taxonomy, speed: Speed, name: str) -> None:
    result = scene_image_result(default, "x.jpg", probs(glass_shiny=0.9), speed, **THRESHOLDS)
    assert result.recommended_matcher.name == name


@pytest.mark.parametrize(
    ("p", "uncertain"),
    [
        (probs(outdoor=0.7, far_away=0.2), False),
        (probs(outdoor=0.35, far_away=0.1), True),  # low confidence, big margin
        (probs(outdoor=0.5, far_away=0.45), True),  # confident enough, margin too small
        (probs(outdoor=0.4, far_away=0.2), False),  # confidence exactly at the threshold
        (probs(outdoor=0.55, far_away=0.45), False),  # margin exactly at the threshold
    ],
    ids=[
        "clear",
        "low-confidence",
        "small-margin",
        "confidence-at-threshold",
        "margin-at-threshold",
    ],
)
def test_uncertain_flag(default: Taxonomy, p: list[float], uncertain: bool) -> None:
    result = scene_image_result(default, "x.jpg", p, Speed.balanced, **THRESHOLDS)
    assert result.uncertain is uncertain


def test_equal_probabilities_keep_taxonomy_order_and_are_uncertain(default: Taxonomy) -> None:
    p = [1 / 6] * 6
    result = scene_image_result(default, "x.jpg", p, Speed.balanced, **THRESHOLDS)
    assert result.top_scene == "indoor_small"
    assert [s.scene for s in result.scores] == default.scene_names
    assert result.margin == 0.0
    assert result.uncertain is True


@pytest.mark.parametrize(
    "p",
    [[0.5, 0.5], [0.2] * 7, [1.2, 0, 0, 0, 0, 0], [-0.1, 0.3, 0.2, 0.2, 0.2, 0.2], [math.nan] * 6],
    ids=["too-few", "too-many", "above-one", "negative", "nan"],
)
def test_bad_probabilities_are_refused(default: Taxonomy, p: list[float]) -> None:
    with pytest.raises(ValueError):
        scene_image_result(default, "x.jpg", p, Speed.balanced, **THRESHOLDS)


# --- dominant scenes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("distribution", "expected"),
    [
        ({"a": 50.0, "b": 30.0, "c": 20.0}, ["a", "b"]),  # exactly 20 % is not dominant
        ({"a": 85.0, "b": 15.0}, ["a"]),  # one above 20 %: no top-two fill-up
        ({"a": 21.0, "b": 21.0, "c": 21.0, "d": 21.0, "e": 16.0}, ["a", "b", "c", "d"]),
        ({"c": 30.0, "a": 40.0, "b": 30.0}, ["a", "c", "b"]),  # ties keep the mapping's order
        ({"a": 20.0, "b": 20.0, "c": 20.0, "d": 20.0, "e": 20.0}, ["a", "b"]),  # none above
        ({"a": 15.0, "b": 19.0, "c": 18.0, "d": 16.0, "e": 17.0, "f": 15.0}, ["b", "c"]),
        ({"a": 100.0, "b": 0.0}, ["a"]),
        ({"b": 0.0, "a": 0.0}, []),
    ],
)
def test_dominant_scenes(distribution: dict[str, float], expected: list[str]) -> None:
    assert dominant_scenes(distribution) == expected


# --- dataset summary --------------------------------------------------------------------


def test_summary_of_500_images(default: Taxonomy) -> None:
    tops = ["outdoor"] * 300 + ["far_away"] * 125 + ["close_up"] * 50 + ["glass_shiny"] * 25
    summary = summarize_dataset(default, tops, Speed.balanced)
    assert summary.total_images == 500
    assert summary.scene_distribution == {
        "outdoor": 60.0,
        "far_away": 25.0,
        "close_up": 10.0,
        "glass_shiny": 5.0,
    }
    assert list(summary.scene_distribution) == ["outdoor", "far_away", "close_up", "glass_shiny"]
    assert summary.dominant_scenes == ["outdoor", "far_away"]
    assert [(d.scene, d.percentage, d.matcher.name) for d in summary.recommended_matchers] == [
        ("outdoor", 60.0, "XFeat"),
        ("far_away", 25.0, "SIFT"),
    ]
    assert summary.mixed is True
    # XFeat: outdoor's primary (60) + far_away's fast option (0.5 * 25) = 72.5, ahead of
    # SIFT: far_away's primary (25) + outdoor's fast option (0.5 * 60) = 55.
    assert summary.overall.matcher.name == "XFeat"
    assert summary.overall.scenes == ["outdoor", "far_away", "close_up"]


def test_summary_falls_back_to_the_top_two(default: Taxonomy) -> None:
    # Five scenes at exactly 20 % each: none is above 20 %, so the two first in taxonomy order.
    tops = [s for s in reversed(default.scene_names[:5]) for _ in range(100)]
    summary = summarize_dataset(default, tops, Speed.balanced)
    assert set(summary.scene_distribution.values()) == {20.0}
    assert list(summary.scene_distribution) == default.scene_names[:5]
    assert summary.dominant_scenes == ["indoor_small", "indoor_large"]


def test_summary_of_a_single_scene_dataset(default: Taxonomy) -> None:
    summary = summarize_dataset(default, ["outdoor", "outdoor"], Speed.balanced)
    assert summary.scene_distribution == {"outdoor": 100.0}
    assert summary.dominant_scenes == ["outdoor"]
    assert summary.mixed is False
    assert summary.overall.matcher.name == "XFeat"
    assert summary.overall.reason.startswith("All images are outdoor")


def test_summary_rounds_for_display(default: Taxonomy) -> None:
    summary = summarize_dataset(default, ["outdoor", "close_up", "far_away"], Speed.fast)
    assert summary.scene_distribution == {"outdoor": 33.33, "close_up": 33.33, "far_away": 33.33}
    assert summary.dominant_scenes == ["outdoor", "close_up", "far_away"]
    assert [d.matcher.name for d in summary.recommended_matchers] == ["SIFT", "XFeat", "XFeat"]
    # XFeat is the fast choice of two thirds of the images.
    assert summary.overall.matcher.name == "XFeat"


def test_summary_serialises_to_json(default: Taxonomy) -> None:
    summary = summarize_dataset(default, ["outdoor", "indoor_large"], Speed.accurate)
    assert DatasetSummary.model_validate_json(summary.model_dump_json()) == summary


@pytest.mark.parametrize("tops", [[], ["outdoor", "kitchen"]], ids=["empty", "unknown-scene"])
def test_summary_refuses_bad_input(default: Taxonomy, tops: list[str]) -> None:
    with pytest.raises(ValueError):
        summarize_dataset(default, tops, Speed.balanced)


# --- overall recommendation -------------------------------------------------------------


def test_one_scene_at_80_percent_decides(default: Taxonomy) -> None:
    rec = overall_recommendation(default, {"outdoor": 80.0, "close_up": 20.0}, Speed.balanced)
    assert rec.matcher == default.scene("outdoor").recommendations.primary
    assert rec.reason.startswith("outdoor makes up 80% of the images")
    assert "XFeat" in rec.reason


def test_mixed_dataset_prefers_a_matcher_covering_both_scenes(default: Taxonomy) -> None:
    dist = {"indoor_small": 60.0, "indoor_large": 40.0}
    # LightGlue: indoor_small's primary (60) + indoor_large's fast option (0.5 * 40) = 80,
    # ahead of SuperGlue: 0.5 * 60 + 40 = 70.
    rec = overall_recommendation(default, dist, Speed.balanced)
    assert rec.matcher == default.scene("indoor_small").recommendations.primary
    assert rec.scenes == ["indoor_small", "indoor_large"]
    assert "balanced (primary) choice for indoor small (60%)" in rec.reason
    assert "an option for indoor large (40%)" in rec.reason
    assert "holding 100% of the images" in rec.reason


@pytest.mark.parametrize(("speed", "name"), [(Speed.fast, "LightGlue"), (Speed.accurate, "MASt3R")])
def test_mixed_dataset_follows_the_speed(default: Taxonomy, speed: Speed, name: str) -> None:
    dist = {"indoor_small": 60.0, "indoor_large": 40.0}
    assert overall_recommendation(default, dist, speed).matcher.name == name


def test_a_tie_goes_to_the_more_robust_matcher(default: Taxonomy) -> None:
    # XFeat (outdoor's primary) and SuperGlue (indoor_large's primary) both score 50.
    rec = overall_recommendation(default, {"outdoor": 50.0, "indoor_large": 50.0}, Speed.balanced)
    assert rec.matcher.name == "SuperGlue"
    assert "tied with XFeat and is the more robust of the two" in rec.reason


def test_a_shared_slow_option_wins_a_balanced_tie_but_not_a_fast_job() -> None:
    t = toy_taxonomy(a=("f1", "m1", "f1", "s1"), b=("f2", "m2", "f2", "s1"))
    dist = {"a": 50.0, "b": 50.0}
    # f1 = 50, f2 = 50, s1 = 0.5 * 50 + 0.5 * 50 = 50: the slow one covers both scenes.
    balanced = overall_recommendation(t, dist, Speed.balanced)
    assert balanced.matcher.name == "s1"
    assert balanced.scenes == ["a", "b"]
    # A fast job never gets anything slower than the scenes' own fast choices.
    fast = overall_recommendation(t, dist, Speed.fast)
    assert fast.matcher.name == "f1"
    assert "tied" not in fast.reason  # f1 and f2 are equally fast: the name decides


def test_only_dominant_scenes_vote() -> None:
    t = toy_taxonomy(
        a=("f1", "m1", "f1", "s1"), b=("f2", "m1", "f2", "s2"), c=("m9", "m1", "f9", "s9")
    )
    # c holds exactly 20 %: not dominant, so its m9 does not count even though m1 is shared.
    rec = overall_recommendation(t, {"a": 45.0, "b": 35.0, "c": 20.0}, Speed.balanced)
    # f1 = 45, m1 = 0.5 * (45 + 35) = 40, f2 = 35.
    assert rec.matcher.name == "f1"
    assert rec.scenes == ["a"]


def test_the_matcher_comes_from_the_largest_scene_naming_it() -> None:
    t = toy_taxonomy(a=("f1", "m1", "f1", "s1"), b=("m1", "m2", "f2", "s2"))
    rec = overall_recommendation(t, {"a": 55.0, "b": 45.0}, Speed.balanced)
    # f1 = 55, m1 = 45 + 0.5 * 55 = 72.5: m1, taken from b where it is the primary.
    assert rec.matcher.name == "m1"
    assert rec.matcher == t.scene("b").recommendations.primary
    assert rec.scenes == ["a", "b"]


def test_overall_refuses_an_empty_distribution(default: Taxonomy) -> None:
    with pytest.raises(ValueError):
        overall_recommendation(default, {}, Speed.balanced)
