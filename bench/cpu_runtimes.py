"""CPU runtimes side by side: PyTorch, ONNX Runtime (fp32, int8) and OpenVINO, raw and
through the service.

    python -m bench.cpu_runtimes [--quick]

ViT-B/32-sized CLIP with random weights, 2 cores. Raw: forward passes of the image tower on
``BATCH_SIZE`` pre-processed images, and of the text tower on 256 prompts, in this process.
Service: 8 classify jobs of 32 images from 8 clients (HTTP upload → worker → result), one
service per runtime (``CLIPQ_CLIP_RUNTIME``); the export is made once, before, in a folder
all share. Every ratio is to PyTorch's raw image rate in this run. int8's agreement with
fp32: cosines on 64 photographs (ViT-B/32) and top-1 agreement of the embedded model's
zero-shot answers on held-out images of its world from the two renderers it was not
trained on.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from bench.common import BATCH_SIZE, measure, photos, run_alone, service, table, warm_up
from bench.service_vs_raw import raw_clip, raw_images_per_second
from clipcore.lab import world

RUNTIMES = ("torch", "onnx", "onnx-int8", "openvino")
HELD_OUT = ("alt", "third")  # renderers the embedded model was not trained on


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


def cosines(folder: Path, onnx_dir: str) -> dict[str, tuple[float, float]]:
    """Per runtime, (min, mean) cosine to PyTorch's image embeddings of the same photographs."""
    from clipcore.encode import embed_images
    from clipcore.images import decode_image

    images = [decode_image(d, "x.jpg", max_pixels=10**8) for d in photos(64, seed=3)]
    reference = embed_images(raw_clip(folder, "torch", onnx_dir), images)
    found = {}
    for runtime in RUNTIMES[1:]:
        clip = raw_clip(folder, runtime, onnx_dir)
        assert clip.runtime == runtime, f"{runtime} fell back to {clip.runtime}"
        similarity = torch.nn.functional.cosine_similarity(reference, embed_images(clip, images))
        found[runtime] = (float(similarity.min()), float(similarity.mean()))
    return found


def int8_top1_agreement(onnx_dir: str, count: int) -> float:
    """Share of held-out images whose zero-shot answer (30 classes) int8 and fp32 agree on,
    with the embedded model."""
    from clipcore.clip_model import load_clip
    from clipcore.encode import embed_images, embed_texts
    from clipcore.lab.evaluate import zero_shot_set

    answers = []
    for runtime in ("onnx", "onnx-int8"):
        clip = load_clip("embedded", "cpu", runtime=runtime, onnx_dir=onnx_dir)
        texts = embed_texts(clip, world.zero_shot_prompts())
        picks = []
        for renderer in HELD_OUT:
            images, _ = zero_shot_set(renderer, seed=4242, count=count)
            picks.append((embed_images(clip, images) @ texts.T).argmax(1))
        answers.append(torch.cat(picks))
    return float((answers[0] == answers[1]).float().mean())


def main(folder: Path, quick: bool = False) -> dict[str, float]:
    jobs, batches, held_out = (2, 2, 100) if quick else (8, 4, 600)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="clipq-onnx-") as onnx_dir:
        began = time.perf_counter()
        agreement = cosines(folder, onnx_dir)  # exports (and quantises), once
        results["export_s"] = time.perf_counter() - began
        for runtime, (low, mean) in agreement.items():
            results[f"{runtime}_min_cosine"], results[f"{runtime}_mean_cosine"] = low, mean
        results["int8_top1_agreement"] = int8_top1_agreement(onnx_dir, held_out)
        raw_clip.cache_clear()  # the services get the CPU and memory to themselves
        for runtime in RUNTIMES:
            env = {"CLIPQ_CLIP_RUNTIME": runtime, "CLIPQ_ONNX_DIR": onnx_dir}
            env["CLIPQ_DETECTOR_MODEL"] = "embedded"  # classify detects nothing; no download
            with service(folder, **env) as running:
                warm_up(running)
                big = [photos(32, seed=100 + i) for i in range(jobs)]
                phase = measure(running, "classify", big, clients=jobs)
            results[f"{runtime}_service"] = jobs * 32 / phase.seconds
        for runtime in RUNTIMES:
            images, texts = raw_rates(folder, runtime, onnx_dir, batches)
            results[f"{runtime}_raw"], results[f"{runtime}_texts"] = images, texts
    base = results["torch_raw"]
    rows = [
        [
            runtime,
            round(results[f"{runtime}_raw"], 1),
            round(results[f"{runtime}_raw"] / base, 2),
            round(results[f"{runtime}_service"], 1),
            round(results[f"{runtime}_service"] / base, 2),
            round(results[f"{runtime}_texts"], 1),
            "1" if runtime == "torch" else f"{results[f'{runtime}_min_cosine']:.7f}",
        ]
        for runtime in RUNTIMES
    ]
    print(f"\n== CPU runtimes (ViT-B/32-sized, batch {BATCH_SIZE}) ==")
    header = ["runtime", "raw images/s", "÷ torch raw", "service images/s", "÷ torch raw"]
    print(table(rows, [*header, "raw texts/s", "min cosine to torch"]))
    print(
        f"int8: mean cosine to fp32 {results['onnx-int8_mean_cosine']:.5f} (64 photographs, "
        f"ViT-B/32); top-1 agreement {100 * results['int8_top1_agreement']:.1f} % on "
        f"{len(HELD_OUT) * held_out} held-out images of the embedded model's world; the "
        f"exports and quantisation with the first loads: {results['export_s']:.0f} s"
    )
    return results


if __name__ == "__main__":
    run_alone(main, __doc__, "fewer jobs, for debugging")
