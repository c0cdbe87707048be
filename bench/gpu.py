"""The GPU path, measured in one run: ``make bench-gpu`` (``python -m bench.gpu``).

With an NVIDIA GPU (about 6 minutes), random weights in real shapes, fp16:

1. raw images/s of the image tower, ViT-B/32 and ViT-L/14 (pre-processed batches already on
   the GPU), and the GPU memory it holds;
2. decode + pre-process images/s of 640 × 480 JPEGs: batched on the GPU (nvJPEG, tensor
   resize; ``clipcore.device_images``) against Pillow and the model's processor on one CPU
   thread (what a worker's decode thread does without ``CLIPQ_DEVICE_DECODE``);
3. end to end through the service (HTTP upload → Redis → GPU worker → result), ViT-B/32:
   classify jobs of 32 images from 32 clients, and single-image jobs from 64 clients, each as
   images/s and as a share of the raw rate; with the GPU memory in use meanwhile.

Goals: end to end ≥ 0.8 of raw fp16; ≥ 5,000 images/s for 32-image jobs and ≥ 1,000 for
single-image streams on an H100-class GPU. Without a GPU (or with ``--reduced``) the same
steps run on the CPU in fp32 with few images: that checks the benchmark, not the GPU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bench.common import (
    machine,
    measure,
    photos,
    service,
    table,
    vit_b32_clip,
    vit_l14_clip,
    warm_up,
)

GOAL_SHARE, GOAL_JOBS, GOAL_SINGLE = 0.8, 5000, 1000


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def raw_rate(folder: Path, device: torch.device, batch: int, batches: int) -> tuple[float, float]:
    """(images/s, GiB the model and its activations held) of the image tower alone."""
    from clipcore.clip_model import load_clip
    from clipcore.encode import embed_pixels

    clip = load_clip(str(folder), str(device))
    size = clip.family.shape.input_size
    pixels = torch.randn(batch, 3, size, size, device=device, dtype=clip.dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    embed_pixels(clip, pixels)  # warm-up (cuDNN/cuBLAS pick their kernels)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(batches):
        embed_pixels(clip, pixels)
    synchronize(device)
    rate = batch * batches / (time.perf_counter() - started)
    held = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    del clip, pixels
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rate, held


def decode_rates(folder: Path, device: torch.device, count: int, batch: int) -> tuple[float, float]:
    """(device images/s, one CPU thread's images/s) of decoding and pre-processing JPEGs."""
    import dataclasses

    from clipcore.batching import Upload, prepare_batch
    from clipcore.clip_model import load_clip

    clip = load_clip(str(folder), str(device))
    on_device = dataclasses.replace(clip, device_recipe=clip.family.image_recipe())
    on_cpu = dataclasses.replace(clip, device_recipe=None)
    data = photos(count, seed=11, size=(640, 480))
    uploads = [Upload(f"{i}.jpg", f"{i:064x}", blob) for i, blob in enumerate(data)]
    rates = []
    for loaded in (on_device, on_cpu):
        threads = torch.get_num_threads()
        if loaded is on_cpu:
            torch.set_num_threads(1)  # as the worker's decode thread runs
        prepare_batch(loaded, uploads[:batch], 0, 10**8)  # warm-up
        synchronize(device)
        started = time.perf_counter()
        for start in range(0, count, batch):
            prepared = prepare_batch(loaded, uploads[start : start + batch], start, 10**8)
            assert not prepared.errors, prepared.errors
        synchronize(device)
        rates.append(count / (time.perf_counter() - started))
        torch.set_num_threads(threads)
    return rates[0], rates[1]


def device_memory_in_use(device: torch.device) -> float:
    """GiB in use on the whole device (the service's worker included)."""
    if device.type != "cuda":
        return 0.0
    free, total = torch.cuda.mem_get_info(device)
    return (total - free) / 2**30


def service_rates(
    folder: Path, device: torch.device, jobs: int, singles: int, batch: int
) -> dict[str, float]:
    env = {
        "CLIPQ_DEVICE": str(device),
        "CLIPQ_BATCH_SIZE": str(batch),
        "CLIPQ_DETECTOR_MODEL": "embedded",  # classify detects nothing; no download
        "CLIPQ_MAX_QUEUED_JOBS": "100000",
        "CLIPQ_MAX_QUEUED_JOBS_PER_TENANT": "100000",
        "CLIPQ_CLIP_RUNTIME": "torch",  # as the raw rates (a GPU worker runs torch anyway)
    }
    found: dict[str, float] = {}
    with service(folder, **env) as running:
        warm_up(running)
        big = [photos(32, seed=1000 + i, size=(640, 480)) for i in range(jobs)]
        found["jobs"] = jobs * 32 / measure(running, "classify", big, clients=32).seconds
        found["memory"] = device_memory_in_use(device)
        small = [photos(1, seed=5000 + i, size=(640, 480)) for i in range(singles)]
        found["singles"] = singles / measure(running, "classify", small, clients=64).seconds
    return found


def main() -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reduced", action="store_true", help="the CPU check, even with a GPU")
    args = parser.parse_args()
    reduced = args.reduced or not torch.cuda.is_available()
    device = torch.device("cpu" if reduced else "cuda")
    print(machine())
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    else:
        print("reduced mode: on the CPU in fp32, few images (a check that this runs)")
    batch, batches = (32, 1) if reduced else (256, 20)
    b32, l14 = vit_b32_clip(), vit_l14_clip()
    results: dict[str, float] = {}
    results["b32_raw"], results["b32_memory"] = raw_rate(b32, device, batch, batches)
    results["l14_raw"], results["l14_memory"] = raw_rate(l14, device, batch // 2, batches)
    count = 64 if reduced else 2048
    results["decode_device"], results["decode_cpu"] = decode_rates(b32, device, count, batch)
    jobs, singles = (4, 32) if reduced else (320, 4000)
    found = service_rates(b32, device, jobs, singles, batch)
    results.update({f"service_{name}": value for name, value in found.items()})

    precision = "fp32" if reduced else "fp16"
    raw = results["b32_raw"]
    print(f"\n== GPU path ({device.type}, {precision}) ==")
    rows = [
        ["ViT-B/32 raw", f"{raw:,.0f}", "1.00", f"{results['b32_memory']:.2f}", ""],
        ["ViT-L/14 raw", f"{results['l14_raw']:,.0f}", "", f"{results['l14_memory']:.2f}", ""],
        [
            "ViT-B/32 service, 32-image jobs",
            f"{results['service_jobs']:,.0f}",
            f"{results['service_jobs'] / raw:.2f}",
            f"{results['service_memory']:.2f}",
            f"≥ {GOAL_SHARE} of raw, ≥ {GOAL_JOBS:,}/s",
        ],
        [
            "ViT-B/32 service, single-image jobs",
            f"{results['service_singles']:,.0f}",
            f"{results['service_singles'] / raw:.2f}",
            "",
            f"≥ {GOAL_SINGLE:,}/s",
        ],
        ["decode + pre-process, device", f"{results['decode_device']:,.0f}", "", "", ""],
        ["decode + pre-process, 1 CPU thread", f"{results['decode_cpu']:,.0f}", "", "", ""],
    ]
    print(table(rows, ["", "images/s", "÷ B/32 raw", "GPU GiB", "goal"]))
    return results


if __name__ == "__main__":
    main()
