"""CPU options for the forward pass: fp32 eager (what the worker runs) against bf16 and
``torch.compile``, at the worker's batch size, with the largest change of probability.

    python -m bench.cpu_options [--quick]

An option is worth keeping only if it is faster *and* leaves the answers as they are.
Probabilities are a softmax over 10 labels at CLIP's trained logit scale (100), the
sharpest a real model gives, so differences are not hidden by a flat softmax.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch

from bench.common import BATCH_SIZE, LABELS, photos, run_alone, table

LOGIT_SCALE = 100.0


def _rate(forward, pixels: torch.Tensor, repeats: int) -> float:
    forward(pixels)
    started = time.perf_counter()
    for _ in range(repeats):
        forward(pixels)
    return repeats * len(pixels) / (time.perf_counter() - started)


def main(folder: Path, quick: bool = False) -> dict[str, float]:
    from clipcore.classify import build_zero_shot_classifier
    from clipcore.clip_model import load_clip
    from clipcore.encode import preprocess_images
    from clipcore.images import decode_image

    clip = load_clip(str(folder), "cpu")
    images = [decode_image(d, "x", max_pixels=10**8) for d in photos(BATCH_SIZE, seed=500)]
    pixels = preprocess_images(clip, images)
    labels = build_zero_shot_classifier(clip, LABELS, ["a photo of a {}."])
    repeats = 1 if quick else 3

    def probabilities(features: torch.Tensor) -> torch.Tensor:
        features = features.float()
        features = features / features.norm(dim=-1, keepdim=True)
        return (LOGIT_SCALE * features @ labels.T).softmax(dim=-1)

    model = clip.family.model
    bf16 = copy.deepcopy(model).to(torch.bfloat16)

    @torch.inference_mode()
    def eager(px: torch.Tensor) -> torch.Tensor:
        return model.get_image_features(pixel_values=px).pooler_output

    @torch.inference_mode()
    def half(px: torch.Tensor) -> torch.Tensor:
        return bf16.get_image_features(pixel_values=px.to(torch.bfloat16)).pooler_output

    reference = probabilities(eager(pixels))
    rows, figures = [], {}
    base = _rate(eager, pixels, repeats)
    rows.append(["fp32 eager (the worker)", base, 1.0, "0", ""])
    for name, forward in (("bf16 eager", half),):
        rate = _rate(forward, pixels, repeats)
        diff = float((probabilities(forward(pixels)) - reference).abs().max())
        rows.append([name, rate, rate / base, f"{diff:.1e}", ""])
        figures[name] = rate / base
        figures[f"{name} diff"] = diff
    started = time.perf_counter()
    try:
        compiled = torch.compile(model.vision_model)
        projection = model.visual_projection

        @torch.inference_mode()
        def compiled_forward(px: torch.Tensor) -> torch.Tensor:
            return projection(compiled(pixel_values=px).pooler_output)

        compiled_forward(pixels)
        compile_seconds = time.perf_counter() - started
        rate = _rate(compiled_forward, pixels, repeats)
        diff = float((probabilities(compiled_forward(pixels)) - reference).abs().max())
        note = f"compiling took {compile_seconds:.0f} s"
        rows.append(["fp32 torch.compile", rate, rate / base, f"{diff:.1e}", note])
        figures["compile"], figures["compile diff"] = rate / base, diff
    except Exception as exc:  # no compiler, or inductor cannot handle the model here
        rows.append(["fp32 torch.compile", "", "", "", f"failed: {type(exc).__name__}"])
    print(f"\n== CPU forward options (batch {BATCH_SIZE}, ViT-B/32-sized) ==")
    print(table(rows, ["", "images/s", "× fp32", "max |Δ probability|", ""]))
    return figures


if __name__ == "__main__":
    run_alone(main, __doc__, "fewer repeats")
