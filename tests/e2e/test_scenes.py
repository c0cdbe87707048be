"""Scene jobs and the seed-compatible endpoints, end to end (structure and contracts).

The tests that check *meaning* (the right scene for an image) use the embedded
model and a taxonomy of its world, in test_semantics.py.
"""

from __future__ import annotations

import json

import pytest

from clipcore.taxonomy import Speed, load_default_taxonomy
from tests.e2e.conftest import Service
from tests.support import distinct_pngs, png_bytes

TAXONOMY = load_default_taxonomy()
RED, BLUE = png_bytes((220, 40, 40)), png_bytes((40, 80, 220))


def submit_scenes(service: Service, images: list[tuple[str, bytes]], **fields: str):
    files = [("images", (name, data, "image/png")) for name, data in images]
    files += [(key, (None, value)) for key, value in fields.items()]
    return service.http.post("/v1/scenes", files=files)


def tiny_taxonomy(**overrides) -> dict:
    """A valid two-scene taxonomy built from the default's first two scenes."""
    data = json.loads(TAXONOMY.model_dump_json())
    data["scenes"] = data["scenes"][:2]
    data["name"] = "two-scenes"
    data.update(overrides)
    return data


def test_scene_job_classifies_and_summarises(service: Service) -> None:
    response = submit_scenes(service, [("a.png", RED), ("b.png", BLUE)], speed="fast")
    assert response.status_code == 202
    job = service.wait_for(response.json()["id"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["kind"] == "scenes" and result["speed"] == "fast"
    assert result["taxonomy"]["name"] == TAXONOMY.name
    for image in result["images"]:
        prediction = image["prediction"]
        assert prediction["top_scene"] in TAXONOMY.scene_names
        assert len(prediction["scores"]) == 6
        assert sum(s["probability"] for s in prediction["scores"]) == pytest.approx(1, abs=1e-4)
        expected = TAXONOMY.scene(prediction["top_scene"]).recommendations.for_speed(Speed.fast)
        assert prediction["recommended_matcher"]["name"] == expected.name
        assert isinstance(prediction["uncertain"], bool)
    summary = result["summary"]
    assert summary["total_images"] == 2
    assert sum(summary["scene_distribution"].values()) == pytest.approx(100)
    assert summary["dominant_scenes"] and summary["overall"]["matcher"]["name"]


def test_single_image_has_no_summary(service: Service) -> None:
    job = service.wait_for(submit_scenes(service, [("a.png", RED)]).json()["id"])
    assert job["result"]["summary"] is None
    assert job["result"]["speed"] == "balanced"


def test_a_batch_of_500_images(service: Service) -> None:
    images = [(f"{i}.png", data) for i, data in enumerate(distinct_pngs(500))]
    job = service.wait_for(submit_scenes(service, images).json()["id"], timeout=180)
    assert job["status"] == "succeeded"
    assert job["progress"] == {"done": 500, "total": 500}
    assert job["result"]["summary"]["total_images"] == 500


def test_custom_taxonomy_is_used(service: Service) -> None:
    taxonomy = tiny_taxonomy()
    response = submit_scenes(service, [("a.png", RED)], taxonomy=json.dumps(taxonomy))
    job = service.wait_for(response.json()["id"])
    scores = job["result"]["images"][0]["prediction"]["scores"]
    assert {s["scene"] for s in scores} == {s["name"] for s in taxonomy["scenes"]}
    assert job["result"]["taxonomy"]["name"] == "two-scenes"


def _without(data: dict, path: list, key: str) -> dict:
    node = data
    for part in path:
        node = node[part]
    del node[key]
    return data


BAD_TAXONOMIES = {
    "missing field": (_without(tiny_taxonomy(), ["scenes", 0], "description"), "description"),
    "scene with no prompts": (
        tiny_taxonomy(
            scenes=[{**tiny_taxonomy()["scenes"][0], "prompts": []}] * 1
            + [tiny_taxonomy()["scenes"][1]]
        ),
        "prompts",
    ),
    "duplicate scene names": (
        tiny_taxonomy(scenes=[tiny_taxonomy()["scenes"][0]] * 2),
        "duplicate",
    ),
    "unknown matcher field": (
        (lambda t: (t["scenes"][0]["recommendations"]["primary"].update(colour="red"), t)[1])(
            tiny_taxonomy()
        ),
        "colour",
    ),
    "not json": ("{scenes: oops", "taxonomy"),
}


@pytest.mark.parametrize("case", BAD_TAXONOMIES, ids=list(BAD_TAXONOMIES))
def test_bad_taxonomy_is_a_named_422(service: Service, case: str) -> None:
    taxonomy, mentions = BAD_TAXONOMIES[case]
    text = taxonomy if isinstance(taxonomy, str) else json.dumps(taxonomy)
    response = submit_scenes(service, [("a.png", RED)], taxonomy=text)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "/problems/invalid-taxonomy"
    assert mentions in problem["detail"]
    assert all(e["field"].startswith("taxonomy") for e in problem["errors"])


def test_unknown_speed_is_a_named_422(service: Service) -> None:
    response = submit_scenes(service, [("a.png", RED)], speed="ludicrous")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "speed"


def test_scene_types_lists_the_default_taxonomy(service: Service) -> None:
    body = service.http.get("/v1/scene-types").json()
    assert [s["name"] for s in body["scenes"]] == TAXONOMY.scene_names
    assert body["version"] == TAXONOMY.version


# --- the seed's endpoints, field for field ---------------------------------------------


def assert_seed_model(model: dict) -> None:
    assert set(model) == {"name", "speed", "reason"}
    assert model["speed"] in ("fast", "medium", "slow")


def test_seed_classify_single(service: Service) -> None:
    response = service.http.post("/api/classify", files={"image": ("photo.png", RED)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["image"].startswith("data:image/png;base64,")
    top = body["top_prediction"]
    assert top["type"] in TAXONOMY.scene_names
    assert isinstance(top["description"], str)
    assert isinstance(top["confidence"], float) and 0 <= top["confidence"] <= 100
    assert_seed_model(top["recommended_model"])
    assert body["all_predictions"][0]["type"] == top["type"]
    assert len(body["all_predictions"]) == 6


def test_seed_classify_batch(service: Service) -> None:
    files = [("images", (f"img{i}.png", data)) for i, data in enumerate([RED, BLUE, RED])]
    body = service.http.post("/api/classify-batch", files=files).json()
    assert body["success"] is True
    assert [r["filename"] for r in body["results"]] == ["img0.png", "img1.png", "img2.png"]
    for entry in body["results"]:
        assert entry["scene_type"] in TAXONOMY.scene_names
        assert 0 <= entry["confidence"] <= 100
    summary = body["summary"]
    assert summary["total_images"] == 3
    assert sum(summary["scene_distribution"].values()) == pytest.approx(100)
    assert summary["dominant_scenes"]
    for rec in summary["recommended_models"]:
        assert set(rec) == {"scene_type", "percentage", "model"}
        assert_seed_model(rec["model"])


def test_seed_scene_types(service: Service) -> None:
    body = service.http.get("/api/scene-types").json()
    assert body["success"] is True
    assert [s["type"] for s in body["scene_types"]] == TAXONOMY.scene_names
    assert all(s["description"] for s in body["scene_types"])


def test_seed_error_is_a_problem_with_success_false(service: Service) -> None:
    response = service.http.post("/api/classify", files={"image": ("a.txt", b"not an image")})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["success"] is False and "a.txt" in body["error"]
    assert body["errors"][0]["field"] == "image[0]"


def test_cli_against_the_service(service: Service, tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    good = [tmp_path / "a.png", tmp_path / "b.png"]
    good[0].write_bytes(RED)
    good[1].write_bytes(BLUE)
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is text")
    clipq = Path(sys.executable).parent / "clipq"
    command = [str(clipq), "scenes", "--server", service.base_url, "-o", "json", "-q"]
    done = subprocess.run(
        [*command, str(good[0]), str(bad), str(good[1])], capture_output=True, text=True
    )
    assert done.returncode == 1
    document = json.loads(done.stdout)
    assert [i["filename"] for i in document["images"]] == ["a.png", "notes.png", "b.png"]
    assert document["images"][1]["error"] and document["images"][0]["prediction"]
    assert document["summary"]["total_images"] == 2
    assert "notes.png" in done.stderr
