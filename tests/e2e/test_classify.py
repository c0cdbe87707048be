"""Classification jobs end to end: real API over HTTP, real Redis, a real Celery worker."""

from __future__ import annotations

import io
import time

import pytest
import torch
from PIL import Image
from transformers import CLIPModel, CLIPProcessor

from tests.e2e.conftest import Service
from tests.support import distinct_pngs, png_bytes, truncated_png

RED, BLUE = png_bytes((220, 40, 40)), png_bytes((40, 80, 220))


def submit(service: Service, images: list[tuple[str, bytes]], labels: list[str], **form) -> dict:
    files = [("images", (name, data, "image/png")) for name, data in images]
    data = {"labels": labels, **{key: str(value) for key, value in form.items()}}
    response = service.http.post("/v1/classify", files=files, data=data)
    assert response.status_code == 202, response.text
    return response.json() | {"location": response.headers["location"]}


def test_classify_two_images_matches_transformers(service: Service, random_clip_dir) -> None:
    job = submit(service, [("cat.png", RED), ("dog.png", BLUE)], ["cat", "dog"])
    assert job["status"] == "queued"
    assert job["location"] == f"/v1/jobs/{job['id']}"
    done = service.wait_for(job["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"done": 2, "total": 2}
    images = done["result"]["images"]
    assert [image["filename"] for image in images] == ["cat.png", "dog.png"]

    # The same computation straight through transformers gives the same probabilities.
    model = CLIPModel.from_pretrained(random_clip_dir).eval()
    processor = CLIPProcessor.from_pretrained(random_clip_dir)
    pictures = [Image.open(io.BytesIO(data)).convert("RGB") for data in (RED, BLUE)]
    inputs = processor(
        text=["a photo of a cat.", "a photo of a dog."],
        images=pictures,
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        expected = model(**inputs).logits_per_image.softmax(dim=-1)
    for row, image in zip(expected.tolist(), images, strict=True):
        got = {p["label"]: p["probability"] for p in image["predictions"]}
        assert got["cat"] == pytest.approx(row[0], abs=1e-4)
        assert got["dog"] == pytest.approx(row[1], abs=1e-4)
        probabilities = [p["probability"] for p in image["predictions"]]
        assert probabilities == sorted(probabilities, reverse=True)


def test_top_k_defaults_to_five_and_is_clamped(service: Service) -> None:
    labels = [f"label {i}" for i in range(7)]
    default = service.wait_for(submit(service, [("a.png", RED)], labels)["id"])
    assert len(default["result"]["images"][0]["predictions"]) == 5
    two = service.wait_for(submit(service, [("a.png", RED)], labels, top_k=2)["id"])
    assert len(two["result"]["images"][0]["predictions"]) == 2
    many = service.wait_for(submit(service, [("a.png", RED)], ["x", "y"], top_k=50)["id"])
    assert len(many["result"]["images"][0]["predictions"]) == 2


def test_status_goes_queued_running_succeeded_with_progress(service: Service) -> None:
    images = [(f"{i}.png", data) for i, data in enumerate(distinct_pngs(300))]
    job = submit(service, images, ["cat", "dog"])
    seen = {job["status"]}
    progress = []
    while True:
        current = service.http.get(f"/v1/jobs/{job['id']}").json()
        seen.add(current["status"])
        if current["status"] == "running":
            progress.append(current["progress"]["done"])
        if current["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.02)
    assert current["status"] == "succeeded"
    assert {"queued", "running", "succeeded"} <= seen
    assert any(0 < done < 300 for done in progress), progress
    assert progress == sorted(progress)
    assert current["progress"] == {"done": 300, "total": 300}


def test_cancel_running_job_stops_between_batches(service: Service) -> None:
    images = [(f"{i}.png", data) for i, data in enumerate(distinct_pngs(400))]
    job = submit(service, images, ["cat", "dog"])
    while service.http.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued":
        time.sleep(0.01)
    cancelled = service.http.delete(f"/v1/jobs/{job['id']}")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    time.sleep(1.0)
    after = service.http.get(f"/v1/jobs/{job['id']}").json()
    assert after["status"] == "cancelled"
    assert after["result"] is None
    assert after["progress"]["done"] < 400
    again = service.http.delete(f"/v1/jobs/{job['id']}")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"


def test_cancel_queued_job_never_runs(service: Service) -> None:
    # Pictures of its own: the embedding cache would finish the usual 300 in
    # milliseconds, and the waiting job would start before the DELETE.
    pictures = distinct_pngs(300, (19, 17))
    busy = submit(service, [(f"{i}.png", d) for i, d in enumerate(pictures)], ["a"])
    waiting = submit(service, [("red.png", RED)], ["a", "b"])
    response = service.http.delete(f"/v1/jobs/{waiting['id']}")
    assert response.status_code == 200
    assert service.wait_for(busy["id"])["status"] == "succeeded"
    time.sleep(0.5)
    final = service.http.get(f"/v1/jobs/{waiting['id']}").json()
    assert final["status"] == "cancelled"
    assert final["started_at"] is None


def test_unknown_job_is_404_problem(service: Service) -> None:
    for method in ("GET", "DELETE"):
        response = service.http.request(method, "/v1/jobs/does-not-exist")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == 404
        assert "does-not-exist" in problem["detail"]


def test_long_poll_answers_when_the_job_ends(service: Service) -> None:
    job = submit(service, [("red.png", RED)], ["cat", "dog"])
    started = time.monotonic()
    response = service.http.get(f"/v1/jobs/{job['id']}", params={"wait": 20})
    assert response.json()["status"] == "succeeded"
    assert time.monotonic() - started < 10


def test_truncated_image_fails_alone(service: Service) -> None:
    job = submit(service, [("good.png", RED), ("broken.png", truncated_png())], ["cat", "dog"])
    done = service.wait_for(job["id"])
    assert done["status"] == "succeeded"
    good, broken = done["result"]["images"]
    assert good["error"] is None and len(good["predictions"]) == 2
    assert broken["predictions"] == []
    assert broken["error"]["status"] == 422
    assert "broken.png" in broken["error"]["detail"]
