"""Cross-job batching through the real service: small jobs share forward passes."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import CLIPModel, CLIPProcessor

from tests.e2e.conftest import env_on, private_redis, running_service, start_worker, stop
from tests.support import distinct_pngs


def metric(text: str, name: str, **labels: str) -> float:
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(
        "^" + re.escape(name + (f"{{{selector}}}" if labels else "")) + r" (\S+)$", text, re.M
    )
    assert found, f"{name} {labels} not in metrics"
    return float(found.group(1))


def skips(log: str) -> int:
    return log.count("is not runnable") + log.count("is held by another worker")


def wait_for_skips(path: Path, count: int, timeout: float = 20) -> str:
    """The worker's log once it has dropped ``count`` deliveries (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while skips(log := path.read_text()) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return log


def test_single_image_jobs_share_model_batches(
    base_env: dict[str, str], random_clip_dir: Path, tmp_path: Path
) -> None:
    with private_redis(tmp_path / "redis") as server:
        env = env_on(base_env, server, CLIPQ_BATCH_SIZE="16", CLIPQ_BATCH_WAIT_MS="50")
        # The jobs are queued before any worker runs, as behind a busy worker.
        with running_service(env, tmp_path / "logs", workers=0) as service:
            pictures = distinct_pngs(24, (20, 20))
            ids = []
            for i, data in enumerate(pictures):
                files = [("images", (f"p{i}.png", data))]
                labels = {"labels": ["cat", "dog"]}
                ids.append(service.http.post("/v1/classify", files=files, data=labels).json()["id"])
            worker = start_worker(env, tmp_path / "logs" / "worker.log")
            try:
                jobs = [service.wait_for(job_id) for job_id in ids]
                log = wait_for_skips(tmp_path / "logs" / "worker.log", 22)
            finally:
                stop(worker)
            text = service.http.get("/metrics").text

    assert all(job["status"] == "succeeded" for job in jobs), jobs
    assert all(job["attempts"] == 1 for job in jobs)
    # 24 single-image jobs, two forward passes: 16 images, then the 8 left.
    assert metric(text, "clipq_batch_size_count") == 2
    assert metric(text, "clipq_images_embedded_total") == 24
    assert metric(text, "clipq_batch_size_bucket", le="8") == 1
    assert "claimed jobs share one model batch" in log
    # Each claimed job's own Celery message came later and was dropped, not run again.
    assert skips(log) == 22

    # Each job's answer is the one transformers gives for that image alone.
    model = CLIPModel.from_pretrained(random_clip_dir).eval()
    processor = CLIPProcessor.from_pretrained(random_clip_dir)
    for data, job in list(zip(pictures, jobs, strict=True))[::5]:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        inputs = processor(
            text=["a photo of a cat.", "a photo of a dog."],
            images=[image],
            return_tensors="pt",
            padding=True,
        )
        with torch.no_grad():
            expected = model(**inputs).logits_per_image.softmax(dim=-1)[0].tolist()
        got = {p["label"]: p["probability"] for p in job["result"]["images"][0]["predictions"]}
        assert got["cat"] == pytest.approx(expected[0], abs=1e-4)
        assert got["dog"] == pytest.approx(expected[1], abs=1e-4)
