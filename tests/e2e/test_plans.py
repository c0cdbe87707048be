"""Reconstruction plans end to end: the job, its result, its bundle, and what it refuses."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.e2e.conftest import Service
from tests.support import distinct_pngs

CLIPQ = str(Path(sys.executable).parent / "clipq")


def submit_plan(service: Service, images: list[tuple[str, bytes]], **fields: str):
    files = [("images", (name, data, "image/png")) for name, data in images]
    files += [(key, (None, value)) for key, value in fields.items()]
    return service.http.post("/v1/plans", files=files)


@pytest.fixture(scope="module")
def plan(service: Service) -> dict:
    images = [(f"frame_{i:03d}.png", data) for i, data in enumerate(distinct_pngs(12))]
    response = submit_plan(service, images, pairs_per_image="3", strategy="retrieval+sequential")
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    job = service.wait_for(response.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def test_a_plan_has_scenes_a_shortlist_and_hygiene(plan: dict) -> None:
    result = plan["result"]
    assert plan["kind"] == "plan" and result["kind"] == "plan"
    assert result["summary"]["overall"]["matcher"]["name"]
    assert len(result["images"]) == 12
    shortlist = result["shortlist"]
    assert shortlist["exhaustive_pairs"] == 66
    assert shortlist["pairs_per_image"] == 3 and shortlist["strategy"] == "retrieval+sequential"
    pairs = {(p["image0"], p["image1"]) for p in shortlist["pairs"]}
    assert len(pairs) == len(shortlist["pairs"]) <= 66
    hygiene = result["hygiene"]
    kept = {i["filename"] for i in hygiene["images"] if i["action"] != "drop"}
    assert all(a in kept and b in kept for a, b in pairs)
    for image in hygiene["images"]:
        assert image["action"] in {"keep", "review", "drop"}
        assert "low_resolution" in image["flags"]  # the test images are tiny
    assert result["bundle_url"] == f"/v1/plans/{plan['id']}/bundle"


def test_the_bundle_downloads_and_matches_the_shortlist(service: Service, plan: dict) -> None:
    response = service.http.get(plan["result"]["bundle_url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert f"plan-{plan['id']}.zip" in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = {name.removeprefix("clipq-plan/") for name in archive.namelist()}
        # run_hloc.py only where a matcher of the dataset's scenes has an hloc integration
        assert {"pairs.txt", "images.txt", "README.md", "run_colmap.sh", "run_glomap.sh"} <= names
        lines = archive.read("clipq-plan/pairs.txt").decode().splitlines()
    shortlist = plan["result"]["shortlist"]["pairs"]
    assert {tuple(line.split(" ")) for line in lines} == {
        (p["image0"], p["image1"]) for p in shortlist
    }


def test_what_a_plan_refuses(service: Service) -> None:
    one, two = distinct_pngs(2)
    response = submit_plan(service, [("a.png", one)])
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "images"
    response = submit_plan(service, [("a.png", one), ("a.png", two)])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "images[1]"
    response = submit_plan(service, [("a.png", one), ("b.png", two)], pairs_per_image="0")
    assert response.status_code == 422 and "pairs_per_image" in response.text
    response = submit_plan(service, [("a.png", one), ("b.png", two)], strategy="everything")
    assert response.status_code == 422 and "strategy" in response.text


def test_a_bundle_exists_only_for_a_finished_plan(service: Service) -> None:
    assert service.http.get("/v1/plans/nope/bundle").status_code == 404
    files = [("images", ("a.png", distinct_pngs(1)[0], "image/png"))]
    scenes = service.http.post("/v1/scenes", files=files).json()
    service.wait_for(scenes["id"])
    response = service.http.get(f"/v1/plans/{scenes['id']}/bundle")
    assert response.status_code == 404  # a job, but not a plan
    assert response.headers["content-type"] == "application/problem+json"


def test_the_cli_plans_through_the_service(service: Service, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, data in enumerate(distinct_pngs(8)):
        (photos / f"img_{i}.png").write_bytes(data)
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but nothing else")
    out = tmp_path / "plan"
    command = [CLIPQ, "plan", str(photos), "--out", str(out), "--server", service.base_url, "-q"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr  # one file refused, the rest planned
    assert "broken.png" in done.stderr
    assert "of 28 exhaustive" in done.stdout
    result = json.loads((out / "plan.json").read_text())
    assert len(result["images"]) == 8
    lines = (out / "pairs.txt").read_text().splitlines()
    assert len(lines) == len(result["shortlist"]["pairs"])
    assert (out / "run_colmap.sh").stat().st_mode & 0o111


def test_a_collection_is_planned_from_what_it_keeps(service: Service) -> None:
    made = service.http.post("/v1/collections", json={"name": "to plan"}).json()
    files = [("images", (f"c{i}.png", d, "image/png")) for i, d in enumerate(distinct_pngs(6))]
    ingest = service.http.post(f"/v1/collections/{made['id']}/images", files=files).json()
    assert service.wait_for(ingest["id"])["status"] == "succeeded"
    response = service.http.post(
        "/v1/plans", files=[("collection_id", (None, made["id"])), ("pairs_per_image", (None, "2"))]
    )
    assert response.status_code == 202, response.text
    job = service.wait_for(response.json()["id"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["collection_id"] == made["id"]
    assert [image["filename"] for image in result["hygiene"]["images"]] == [
        f"c{i}.png" for i in range(6)
    ]
    assert all(image["sharpness"] is None for image in result["hygiene"]["images"])
    assert result["shortlist"]["exhaustive_pairs"] == 15 and result["shortlist"]["pairs"]
    assert job["progress"] == {"done": 6, "total": 6}
    assert service.http.get(result["bundle_url"]).status_code == 200
    # neither both sources nor an unknown collection
    both = [("collection_id", (None, made["id"])), *files[:2]]
    assert service.http.post("/v1/plans", files=both).status_code == 422
    unknown = service.http.post("/v1/plans", files=[("collection_id", (None, "nope"))])
    assert unknown.status_code == 404
