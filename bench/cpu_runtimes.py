"""CPU runtimes side by side: PyTorch against ONNX Runtime, raw and through the service.

    python -m bench.cpu_runtimes [--quick]

ViT-B/32-sized CLIP with random weights, fp32, 2 cores. Raw: forward passes of the image
tower on ``BATCH_SIZE`` pre-processed images, and of the text tower on 256 prompts, in this
process. Service: 8 classify jobs of 32 images from 8 clients (HTTP upload → worker →
result), one service per runtime (``CLIPQ_CLIP_RUNTIME``); the ONNX export is made once,
before, in a folder both share. Every ratio is to PyTorch's raw image rate in this run.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from bench.common import BATCH_SIZE, measure, photos, run_alone, service, table, warm_up
from bench.service_vs_raw import raw_clip, raw_images_per_second
from clipcore.lab import world

RUNTIMES = ("torch", "onnx")


def raw_rates(folder: Path, runtime: str, onnx_dir: str, batches: int) -> tuple[float, float]:
    """(images/s, texts/s) of the towers alone."""
    from clipcore.encode import embed_texts

    image_rate = raw_images_per_second(folder, batches, runtime=runtime, onnx_dir=onnx_dir)
    clip = raw_clip(folder, runtime, onnx_dir)
    prompts = [f"a photo of a {label}." for label in world.zero_shot_labels()] * 9
    embed_texts(clip, prompts[:8])
    started = time.perf_counter()
    embed_texts(clip, prompts)
    return image_rate, len(prompts) / (time.perf_counter() - started)


def agreement(folder: Path, onnx_dir: str) -> float:
    """Minimum cosine between the two runtimes' image embeddings of the same photographs."""
    from clipcore.encode import embed_images
    from clipcore.images import decode_image

    images = [decode_image(d, "x.jpg", max_pixels=10**8) for d in photos(64, seed=3)]
    eager, onnx = (raw_clip(folder, runtime, onnx_dir) for runtime in RUNTIMES)
    a, b = embed_images(eager, images), embed_images(onnx, images)
    return float(torch.nn.functional.cosine_similarity(a, b).min())


def main(folder: Path, quick: bool = False) -> dict[str, float]:
    jobs, batches = (2, 2) if quick else (8, 4)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="clipq-onnx-") as onnx_dir:
        began = time.perf_counter()
        results["min_cosine"] = agreement(folder, onnx_dir)  # exports, once
        results["export_s"] = time.perf_counter() - began
        for runtime in RUNTIMES:
            images, texts = raw_rates(folder, runtime, onnx_dir, batches)
            results[f"{runtime}_raw"], results[f"{runtime}_texts"] = images, texts
            env = {"CLIPQ_CLIP_RUNTIME": runtime, "CLIPQ_ONNX_DIR": onnx_dir}
            env["CLIPQ_DETECTOR_MODEL"] = "embedded"  # classify detects nothing; no download
            with service(folder, **env) as running:
                warm_up(running)
                big = [photos(32, seed=100 + i) for i in range(jobs)]
                phase = measure(running, "classify", big, clients=jobs)
            results[f"{runtime}_service"] = jobs * 32 / phase.seconds
    base = results["torch_raw"]
    rows = [
        [
            runtime,
            round(results[f"{runtime}_raw"], 1),
            round(results[f"{runtime}_raw"] / base, 2),
            round(results[f"{runtime}_service"], 1),
            round(results[f"{runtime}_service"] / base, 2),
            round(results[f"{runtime}_texts"], 1),
        ]
        for runtime in RUNTIMES
    ]
    print(f"\n== CPU runtimes (ViT-B/32-sized, fp32, batch {BATCH_SIZE}) ==")
    header = ["runtime", "raw images/s", "÷ torch raw", "service images/s", "÷ torch raw"]
    print(table(rows, [*header, "raw texts/s"]))
    print(
        f"min cosine ONNX Runtime vs PyTorch, 64 photographs: {results['min_cosine']:.7f}; "
        f"the export of both towers with the first loads: {results['export_s']:.0f} s"
    )
    return results


if __name__ == "__main__":
    run_alone(main, __doc__, "fewer jobs, for debugging")
