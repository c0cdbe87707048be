"""Benchmark 1: images per second through the whole service, divided by the raw model's.

    python -m bench.service_vs_raw [--quick]

Raw: the same model in this process, same dtype (fp32 on CPU), forward passes of
``BATCH_SIZE`` pre-processed images (no decoding, no HTTP). Service: HTTP upload → Redis →
worker → result long-polled, for (a) 8 jobs of 32 images from 8 concurrent clients and
(b) 256 single-image jobs from 16 concurrent clients (each submits, waits for the
result, submits the next). The raw rate is measured before and after the service runs,
and the mean is used, so that drift on a shared machine shows.
"""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from bench.common import (
    BATCH_SIZE,
    cpu_table,
    measure,
    photos,
    run_alone,
    service,
    table,
    warm_up,
)

if TYPE_CHECKING:
    from clipcore.clip_model import LoadedClip


def raw_images_per_second(
    folder: Path,
    batches: int = 4,
    batch_size: int = BATCH_SIZE,
    runtime: str = "torch",
    onnx_dir: str = "",
) -> float:
    """Forward-pass throughput of the model alone on pre-processed pixels."""
    from clipcore.encode import embed_pixels, preprocess_images
    from clipcore.images import decode_image

    clip = raw_clip(folder, runtime, onnx_dir)
    images = [decode_image(d, "x.jpg", max_pixels=10**8) for d in photos(batch_size, seed=1)]
    pixels = preprocess_images(clip, images)
    embed_pixels(clip, pixels)  # warm-up
    started = time.perf_counter()
    for _ in range(batches):
        embed_pixels(clip, pixels)
    return batches * batch_size / (time.perf_counter() - started)


@cache
def raw_clip(folder: Path, runtime: str = "torch", onnx_dir: str = "") -> LoadedClip:
    from clipcore.clip_model import load_clip

    return load_clip(str(folder), "cpu", runtime=runtime, onnx_dir=onnx_dir)


def main(folder: Path, quick: bool = False) -> dict[str, float]:
    big_jobs, big_size = (2, 32) if quick else (8, 32)
    small_jobs = 96 if quick else 256
    raw_before = raw_images_per_second(folder, batches=2 if quick else 4)
    with service(folder) as running:
        warm_up(running)
        big = [photos(big_size, seed=100 + i) for i in range(big_jobs)]
        phase_a = measure(running, "classify", big, clients=big_jobs)
        singles = [[image] for image in photos(small_jobs, seed=200)]
        phase_b = measure(running, "classify", singles, clients=16)
    raw_after = raw_images_per_second(folder, batches=2 if quick else 4)
    raw = (raw_before + raw_after) / 2
    rate_a = big_jobs * big_size / phase_a.seconds
    rate_b = small_jobs / phase_b.seconds
    print(f"\n== 1. service vs raw model (batch {BATCH_SIZE}, fp32, CPU) ==")
    print(
        table(
            [
                ["raw forward, before", round(raw_before, 2), "", ""],
                ["raw forward, after", round(raw_after, 2), "", ""],
                [
                    f"(a) {big_jobs} jobs × {big_size} images, {big_jobs} clients",
                    round(rate_a, 2),
                    round(rate_a / raw, 3),
                    "≥ 0.9",
                ],
                [
                    f"(b) {small_jobs} jobs × 1 image, 16 clients",
                    round(rate_b, 2),
                    round(rate_b / raw, 3),
                    "≥ 0.8",
                ],
            ],
            ["", "images/s", "÷ raw", "target"],
        )
    )
    print("\nWhere the CPU went (2 cores = 200 % of wall time):")
    print(cpu_table({"(a)": phase_a, "(b)": phase_b}))
    return {"raw": raw, "a": rate_a, "b": rate_b, "ratio_a": rate_a / raw, "ratio_b": rate_b / raw}


if __name__ == "__main__":
    run_alone(main, __doc__, "small sizes, for debugging")
