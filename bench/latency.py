"""Benchmark 3: what the service adds to one image's model time, submit → succeeded.

    python -m bench.latency [--quick]

One client sends single-image classify jobs one after another (different images, so
the embedding cache never answers) and long-polls each to its end. A job's overhead is
its latency minus the model's own time for its image: the worker's forward-pass time
for that job (read from ``/metrics`` after it, while nothing else runs). The model's
time for one image measured in this process is shown beside it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from bench.common import (
    FINAL,
    LABELS,
    median,
    percentile,
    photos,
    run_alone,
    service,
    table,
    warm_up,
)


def forward_seconds(http: httpx.Client) -> float:
    text = http.get("/metrics").text
    found = re.search(r"^clipq_forward_seconds_total (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def in_process_model_ms(folder: Path, repeats: int = 10) -> float:
    """Median forward time of one pre-processed image, in this process."""
    from clipcore.clip_model import load_clip
    from clipcore.encode import embed_pixels, preprocess_images
    from clipcore.images import decode_image

    clip = load_clip(str(folder), "cpu")
    pixels = preprocess_images(clip, [decode_image(photos(1, 7)[0], "x", max_pixels=10**8)])
    embed_pixels(clip, pixels)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        embed_pixels(clip, pixels)
        times.append(time.perf_counter() - started)
    return median(times) * 1000


def main(folder: Path, quick: bool = False) -> dict[str, float]:
    count = 10 if quick else 60
    model_ms = in_process_model_ms(folder)
    latencies, overheads = [], []
    with service(folder) as running:
        warm_up(running)
        http = running.http
        for number, data in enumerate(photos(count, seed=400)):
            before = forward_seconds(http)
            started = time.perf_counter()
            response = http.post(
                "/v1/classify",
                files=[("images", (f"l{number}.jpg", data, "image/jpeg"))],
                data={"labels": LABELS},
            )
            job = response.json()
            while job["status"] not in FINAL:
                job = http.get(f"/v1/jobs/{job['id']}", params={"wait": 30}).json()
            latency = time.perf_counter() - started
            forward = forward_seconds(http) - before
            latencies.append(latency * 1000)
            overheads.append((latency - forward) * 1000)
    rows = [
        ["submit → succeeded", median(latencies), percentile(latencies, 95)],
        [
            "overhead (minus the worker's forward time)",
            median(overheads),
            percentile(overheads, 95),
        ],
        ["overhead (minus in-process model time)", median(latencies) - model_ms, ""],
    ]
    print(f"\n== 3. latency of a single-image job ({count} jobs, one client, loopback) ==")
    print(f"model's own time for one image, in-process: {model_ms:.1f} ms")
    print(table(rows, ["ms", "p50", "p95"]))
    print("target: p50 overhead ≤ 30 ms")
    return {
        "latency_p50": median(latencies),
        "latency_p95": percentile(latencies, 95),
        "overhead_p50": median(overheads),
        "overhead_p95": percentile(overheads, 95),
        "model_ms": model_ms,
    }


if __name__ == "__main__":
    run_alone(main, __doc__, "small sizes, for debugging")
