"""The scene taxonomy: the shipped default, validation of a client's, hash, lookups."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clipcore.errors import InvalidInput
from clipcore.taxonomy import (
    MatcherSpeed,
    Speed,
    Taxonomy,
    TaxonomyError,
    load_default_taxonomy,
    parse_taxonomy,
    recommend,
    taxonomy_hash,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_SCENES = ["indoor_small", "indoor_large", "outdoor", "close_up", "far_away", "glass_shiny"]
SEED_MATCHER_SPEEDS = {
    "SIFT": MatcherSpeed.fast,
    "LightGlue": MatcherSpeed.fast,
    "XFeat": MatcherSpeed.fast,
    "xfeat+lightglue": MatcherSpeed.fast,
    "SuperGlue": MatcherSpeed.medium,
    "OmniGlue": MatcherSpeed.medium,
    "XoFTR": MatcherSpeed.medium,
    "RIPE": MatcherSpeed.medium,
    "DISK": MatcherSpeed.slow,
    "MASt3R": MatcherSpeed.slow,
    "DUSt3R": MatcherSpeed.slow,
}
SEED_PRIMARY = {
    "indoor_small": "LightGlue",
    "indoor_large": "SuperGlue",
    "outdoor": "XFeat",
    "close_up": "DISK",
    "far_away": "SIFT",
    "glass_shiny": "XoFTR",
}

# Keys of the `confs` dicts in cvg/Hierarchical-Localization, read from
# hloc/extract_features.py and hloc/match_features.py (the versions with
# LightGlue and ALIKED support). Only local-feature confs are listed.
HLOC_EXTRACT_CONFS = {
    "superpoint_aachen",
    "superpoint_max",
    "superpoint_inloc",
    "r2d2",
    "d2net-ss",
    "sift",
    "sosnet",
    "disk",
    "aliked-n16",
}
HLOC_MATCH_CONFS = {
    "superpoint+lightglue",
    "disk+lightglue",
    "aliked+lightglue",
    "superglue",
    "superglue-fast",
    "NN-superpoint",
    "NN-ratio",
    "NN-mutual",
    "adalam",
}
# Which feature confs each matcher conf we use can consume.
HLOC_COMPATIBLE = {
    "superpoint+lightglue": {"superpoint_aachen", "superpoint_max", "superpoint_inloc"},
    "superglue": {"superpoint_aachen", "superpoint_max", "superpoint_inloc"},
    "disk+lightglue": {"disk"},
    "NN-ratio": {"sift", "sosnet"},
}
# Matchers that have no hloc configuration: the default must say so with null.
NOT_IN_HLOC = {"XFeat", "xfeat+lightglue", "OmniGlue", "XoFTR", "RIPE", "MASt3R", "DUSt3R"}
# COLMAP option names checked against COLMAP's documentation (doc/features.rst, FAQ).
COLMAP_EXTRACT_OPTIONS = {"SiftExtraction.max_num_features", "FeatureExtraction.type"}
COLMAP_MATCH_OPTIONS = {"SiftMatching.max_ratio", "FeatureMatching.type"}
COLMAP_TYPE_PAIRS = {("SIFT", "SIFT_BRUTEFORCE"), ("ALIKED_N16ROT", "ALIKED_LIGHTGLUE")}


@pytest.fixture
def default() -> Taxonomy:
    return load_default_taxonomy()


@pytest.fixture
def raw() -> dict[str, Any]:
    """The default taxonomy as a fresh, mutable document."""
    return copy.deepcopy(load_default_taxonomy().model_dump(mode="json"))


def all_matchers(t: Taxonomy):
    return [(s.name, m) for s in t.scenes for m in s.recommendations.options()]


# --- the shipped default -------------------------------------------------------------


def test_default_has_the_six_seed_scenes_with_six_prompts(default: Taxonomy) -> None:
    assert default.version == "1.0.0"
    assert default.name
    assert default.scene_names == SEED_SCENES
    for scene in default.scenes:
        assert scene.description
        assert scene.use_cases
        assert len(scene.prompts) == 6
        assert len(set(scene.prompts)) == 6


def test_default_has_four_recommendations_per_scene_keeping_the_seed_primaries(
    default: Taxonomy,
) -> None:
    for scene in default.scenes:
        recs = scene.recommendations
        assert len(recs.options()) == 4
        assert recs.primary.name == SEED_PRIMARY[scene.name]
        assert recs.fast.speed is MatcherSpeed.fast
        assert recs.accurate.speed.rank >= recs.primary.speed.rank
        for matcher in recs.options():
            assert matcher.reason
            assert matcher.pipeline is not None


def test_every_seed_matcher_appears_with_its_seed_speed(default: Taxonomy) -> None:
    used = {m.name for _, m in all_matchers(default)}
    assert used == set(SEED_MATCHER_SPEEDS)
    for scene, matcher in all_matchers(default):
        assert matcher.speed is SEED_MATCHER_SPEEDS[matcher.name], (scene, matcher.name)


def test_hloc_configs_name_real_hloc_confs(default: Taxonomy) -> None:
    for scene, matcher in all_matchers(default):
        hloc = matcher.pipeline.hloc
        if matcher.name in NOT_IN_HLOC:
            assert hloc is None, (scene, matcher.name)
            continue
        assert hloc is not None, (scene, matcher.name)
        assert hloc.features in HLOC_EXTRACT_CONFS, (scene, hloc)
        assert hloc.matcher in HLOC_MATCH_CONFS, (scene, hloc)
        assert hloc.features in HLOC_COMPATIBLE[hloc.matcher], (scene, hloc)


def test_pipelines_without_integration_point_to_the_project(default: Taxonomy) -> None:
    for scene, matcher in all_matchers(default):
        pipeline = matcher.pipeline
        assert pipeline.project.startswith("https://github.com/"), (scene, matcher.name)
        if pipeline.hloc is None and pipeline.colmap is None:
            assert "No hloc or COLMAP integration" in pipeline.notes, (scene, matcher.name)


def test_colmap_configs_use_documented_options(default: Taxonomy) -> None:
    seen = 0
    for _, matcher in all_matchers(default):
        colmap = matcher.pipeline.colmap
        if colmap is None:
            continue
        seen += 1
        assert set(colmap.feature_extractor) <= COLMAP_EXTRACT_OPTIONS
        assert set(colmap.matcher_options) <= COLMAP_MATCH_OPTIONS
        types = (
            colmap.feature_extractor.get("FeatureExtraction.type", "SIFT"),
            colmap.matcher_options.get("FeatureMatching.type", "SIFT_BRUTEFORCE"),
        )
        assert types in COLMAP_TYPE_PAIRS
    assert seen > 0


def test_colmap_command_lines_are_pasteable(default: Taxonomy) -> None:
    sift = recommend(default, "far_away", Speed.balanced)
    assert sift.name == "SIFT"
    assert sift.pipeline.colmap.command_lines("db.db", "imgs") == [
        "colmap feature_extractor --database_path db.db --image_path imgs"
        " --SiftExtraction.max_num_features 8192",
        "colmap exhaustive_matcher --database_path db.db --SiftMatching.max_ratio 0.8",
    ]


def test_default_is_loaded_once(default: Taxonomy) -> None:
    assert load_default_taxonomy() is default


def test_default_round_trips_through_json(default: Taxonomy) -> None:
    again = parse_taxonomy(default.model_dump_json())
    assert again == default
    assert taxonomy_hash(again) == taxonomy_hash(default)


# --- a client's taxonomy ----------------------------------------------------------------


def test_parse_accepts_dict_str_and_bytes(raw: dict[str, Any]) -> None:
    text = json.dumps(raw)
    parsed = [parse_taxonomy(raw), parse_taxonomy(text), parse_taxonomy(text.encode())]
    assert parsed[0] == parsed[1] == parsed[2]


def test_a_minimal_seed_style_taxonomy_is_accepted() -> None:
    """Pipelines are optional, so the seed's own table can be sent as it is."""

    def m(name: str, speed: str) -> dict[str, str]:
        return {"name": name, "speed": speed, "reason": f"{name} because"}

    recs = {
        "primary": m("LightGlue", "fast"),
        "alternative": m("SuperGlue", "medium"),
        "fast": m("SIFT", "fast"),
        "accurate": m("DISK", "slow"),
    }
    scenes = [
        {
            "name": n,
            "description": n,
            "use_cases": [],
            "prompts": [f"a photo of {n}"],
            "recommendations": recs,
        }
        for n in ("kitchen", "garage")
    ]
    t = parse_taxonomy({"version": "0.1", "name": "mine", "scenes": scenes})
    assert t.scene_names == ["kitchen", "garage"]
    assert recommend(t, "garage", Speed.accurate).name == "DISK"


def _delete(doc: dict[str, Any], *path: str | int) -> None:
    for key in path[:-1]:
        doc = doc[key]
    del doc[path[-1]]


def _set(doc: dict[str, Any], value: Any, *path: str | int) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


BAD_TAXONOMIES = [
    pytest.param(
        lambda d: _delete(d, "scenes", 1, "description"),
        "scenes[1].description",
        "Field required",
        id="missing-scene-field",
    ),
    pytest.param(
        lambda d: _delete(d, "version"), "version", "Field required", id="missing-version"
    ),
    pytest.param(
        lambda d: _delete(d, "scenes", 4, "recommendations", "accurate"),
        "scenes[4].recommendations.accurate",
        "Field required",
        id="missing-recommendation",
    ),
    pytest.param(
        lambda d: _set(d, [], "scenes", 0, "prompts"),
        "scenes[0].prompts",
        "at least 1 item",
        id="no-prompts",
    ),
    pytest.param(
        lambda d: _set(d, "   ", "scenes", 0, "prompts", 2),
        "scenes[0].prompts[2]",
        "at least 1 character",
        id="blank-prompt",
    ),
    pytest.param(
        lambda d: _set(d, "indoor_small", "scenes", 3, "name"),
        "scenes",
        "duplicate scene name 'indoor_small'",
        id="duplicate-scene",
    ),
    pytest.param(
        lambda d: _set(d, "red", "scenes", 2, "recommendations", "primary", "colour"),
        "scenes[2].recommendations.primary.colour",
        "Extra inputs are not permitted",
        id="unknown-matcher-field",
    ),
    pytest.param(
        lambda d: _set(d, "turbo", "scenes", 2, "recommendations", "primary", "speed"),
        "scenes[2].recommendations.primary.speed",
        "Input should be 'fast', 'medium' or 'slow'",
        id="unknown-speed",
    ),
    pytest.param(
        lambda d: _set(d, "Indoor Small", "scenes", 0, "name"),
        "scenes[0].name",
        "should match pattern",
        id="name-not-a-slug",
    ),
    pytest.param(
        lambda d: _set(d, d["scenes"][:1], "scenes"),
        "scenes",
        "at least 2 items",
        id="one-scene",
    ),
    pytest.param(
        lambda d: _set(
            d,
            "magic_matcher",
            "scenes",
            2,
            "recommendations",
            "fast",
            "pipeline",
            "colmap",
            "matcher",
        ),
        "scenes[2].recommendations.fast.pipeline.colmap.matcher",
        "exhaustive_matcher",
        id="unknown-colmap-command",
    ),
    pytest.param(
        lambda d: _set(d, 1, "scenes", 5, "recommendations", "fast", "pipeline", "extra"),
        "scenes[5].recommendations.fast.pipeline.extra",
        "Extra inputs are not permitted",
        id="unknown-pipeline-field",
    ),
]


@pytest.mark.parametrize(("mutate", "field", "message"), BAD_TAXONOMIES)
def test_bad_taxonomy_is_refused_naming_the_field(
    raw: dict[str, Any], mutate: Any, field: str, message: str
) -> None:
    mutate(raw)
    with pytest.raises(TaxonomyError) as caught:
        parse_taxonomy(raw)
    error = caught.value
    assert f"{field}: " in str(error)
    assert message in str(error)
    assert any(e.field == field and message in e.message for e in error.errors)
    # The same document as JSON text fails the same way.
    with pytest.raises(TaxonomyError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_taxonomy(json.dumps(raw))


def test_unknown_speed_message_is_exact(raw: dict[str, Any]) -> None:
    raw["scenes"][2]["recommendations"]["primary"]["speed"] = "turbo"
    with pytest.raises(TaxonomyError) as caught:
        parse_taxonomy(raw)
    assert str(caught.value) == (
        "invalid taxonomy: scenes[2].recommendations.primary.speed: "
        "Input should be 'fast', 'medium' or 'slow'"
    )


@pytest.mark.parametrize("data", [b"{not json", "[]", "null", b""])
def test_non_object_json_is_refused(data: bytes | str) -> None:
    with pytest.raises(TaxonomyError) as caught:
        parse_taxonomy(data)
    assert caught.value.errors[0].field == "taxonomy"


def test_wrong_python_type_is_refused() -> None:
    with pytest.raises(TaxonomyError, match="expected a JSON object"):
        parse_taxonomy([1, 2])  # type: ignore[arg-type]


def test_many_errors_are_all_listed_but_the_message_stays_short(raw: dict[str, Any]) -> None:
    for scene in raw["scenes"]:
        scene["prompts"] = []
        del scene["description"]
    with pytest.raises(TaxonomyError) as caught:
        parse_taxonomy(raw)
    assert len(caught.value.errors) == 12
    assert str(caught.value).endswith("and 7 more")


def test_taxonomy_error_is_a_422_value_error(raw: dict[str, Any]) -> None:
    del raw["name"]
    with pytest.raises(TaxonomyError) as caught:
        parse_taxonomy(raw)
    error = caught.value
    assert isinstance(error, ValueError)
    assert isinstance(error, InvalidInput)
    problem = error.to_problem()
    assert problem.status == 422
    assert problem.type.endswith("invalid-taxonomy")
    assert problem.errors and problem.errors[0].field == "name"


# --- hash --------------------------------------------------------------------------------


def test_hash_is_hex_sha256_and_ignores_key_order_and_omitted_defaults(
    default: Taxonomy, raw: dict[str, Any]
) -> None:
    h = taxonomy_hash(default)
    assert len(h) == 64 and int(h, 16) >= 0

    def reverse_keys(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reverse_keys(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reverse_keys(v) for v in value]
        return value

    assert taxonomy_hash(parse_taxonomy(reverse_keys(raw))) == h
    raw["scenes"][0]["recommendations"]["primary"]["pipeline"]["notes"] = ""
    with_empty_notes = taxonomy_hash(parse_taxonomy(raw))
    del raw["scenes"][0]["recommendations"]["primary"]["pipeline"]["notes"]
    assert taxonomy_hash(parse_taxonomy(raw)) == with_empty_notes


def test_hash_is_stable_across_processes(default: Taxonomy) -> None:
    code = (
        "from clipcore.taxonomy import load_default_taxonomy, taxonomy_hash;"
        "print(taxonomy_hash(load_default_taxonomy()))"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            cwd=REPO_ROOT,
        )
        assert out.stdout.strip() == taxonomy_hash(default)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: _set(d, "1.0.1", "version"),
        lambda d: _set(d, "a photo of a tiny room", "scenes", 0, "prompts", 0),
        lambda d: _set(d, "slow", "scenes", 1, "recommendations", "alternative", "speed"),
        lambda d: _set(
            d,
            "superglue-fast",
            "scenes",
            1,
            "recommendations",
            "primary",
            "pipeline",
            "hloc",
            "matcher",
        ),
        lambda d: d["scenes"].reverse(),
    ],
    ids=["version", "prompt", "speed", "hloc-conf", "scene-order"],
)
def test_hash_changes_with_any_content_change(raw: dict[str, Any], change: Any) -> None:
    before = taxonomy_hash(parse_taxonomy(raw))
    change(raw)
    assert taxonomy_hash(parse_taxonomy(raw)) != before


# --- recommendations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("speed", "slot"),
    [(Speed.balanced, "primary"), (Speed.fast, "fast"), (Speed.accurate, "accurate")],
)
def test_recommend_picks_the_slot_for_the_speed(default: Taxonomy, speed: Speed, slot: str) -> None:
    for scene in default.scenes:
        assert recommend(default, scene.name, speed) == getattr(scene.recommendations, slot)


def test_recommend_accepts_plain_strings(default: Taxonomy) -> None:
    assert recommend(default, "outdoor", "fast").name == "SIFT"  # type: ignore[arg-type]
    assert recommend(default, "glass_shiny", Speed.accurate).name == "DUSt3R"


def test_recommend_unknown_scene_is_a_taxonomy_error(default: Taxonomy) -> None:
    with pytest.raises(TaxonomyError, match="unknown scene 'kitchen'"):
        recommend(default, "kitchen", Speed.balanced)


def test_colmap_command_lines_quote_a_clients_values(raw: dict[str, Any]) -> None:
    colmap = raw["scenes"][4]["recommendations"]["primary"]["pipeline"]["colmap"]
    colmap["feature_extractor"]["SiftExtraction.max_num_features"] = "1; rm -rf ~"
    t = parse_taxonomy(raw)
    lines = recommend(t, "far_away", Speed.balanced).pipeline.colmap.command_lines()
    assert lines[0].endswith("--SiftExtraction.max_num_features '1; rm -rf ~'")


def test_the_service_renders_the_colmap_commands_a_page_shows(raw: dict[str, Any]) -> None:
    """One quoting rule: the command lines travel with the taxonomy; a client's are replaced."""
    colmap = raw["scenes"][4]["recommendations"]["primary"]["pipeline"]["colmap"]
    colmap["feature_extractor"]["SiftExtraction.max_num_features"] = "1; rm -rf ~"
    colmap["commands"] = ["rm -rf /"]
    t = parse_taxonomy(raw)
    config = recommend(t, "far_away", Speed.balanced).pipeline.colmap
    assert config.commands == config.command_lines()
    assert config.commands[0].endswith("--SiftExtraction.max_num_features '1; rm -rf ~'")
