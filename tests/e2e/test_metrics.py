"""Prometheus metrics and the image-embedding cache, through the real service."""

from __future__ import annotations

import re

from tests.e2e.conftest import Service
from tests.support import png_bytes


def metric(text: str, name: str, **labels: str) -> float:
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(selector) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    assert found, f"{name} {labels} not in metrics"
    return float(found.group(1))


def classify(service: Service, data: bytes) -> dict:
    files = [("images", ("x.png", data)), ("labels", (None, "a")), ("labels", (None, "b"))]
    return service.wait_for(service.http.post("/v1/classify", files=files).json()["id"])


def test_metrics_count_jobs_batches_and_latency(service: Service) -> None:
    classify(service, png_bytes((1, 2, 3), (33, 33)))
    response = service.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "clipq_jobs_submitted_total", kind="classify") >= 1
    assert metric(text, "clipq_jobs_finished_total", kind="classify", status="succeeded") >= 1
    assert metric(text, "clipq_queue_depth") >= 0
    assert metric(text, "clipq_workers_alive") >= 1
    assert metric(text, "clipq_batch_size_bucket", le="+Inf") >= 1
    assert metric(text, "clipq_job_latency_seconds_count", kind="classify") >= 1
    assert metric(text, "clipq_images_per_second") > 0


def test_a_resubmitted_image_costs_no_forward_pass(service: Service) -> None:
    data = png_bytes((77, 66, 55), (41, 29))
    first = classify(service, data)
    before = metric(service.http.get("/metrics").text, "clipq_images_embedded_total")
    second = classify(service, data)
    after = metric(service.http.get("/metrics").text, "clipq_images_embedded_total")
    assert after == before
    assert second["result"]["images"] == first["result"]["images"]
