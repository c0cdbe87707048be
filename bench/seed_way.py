"""Benchmark 2: clipq against the seed's way of classifying scenes, on the same model.

    python -m bench.seed_way [--quick]

The seed (000) saved each upload to a temporary file, opened it with Pillow,
pre-processed it, ran the vision tower on that one image, compared it with the scene
text embeddings and took the softmax — one image at a time, synchronously, in the web
request. Here that loop runs in-process on the same model (its scene embeddings computed
once, as the seed did at start-up), against the same images sent to the service as scene
jobs: one job with every image, and one single-image job per image from 16 clients.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from bench.common import photos, run_alone, service, table, through_service, warm_up


def seed_way(folder: Path, images: list[bytes]) -> float:
    """Seconds to classify ``images`` the seed's way."""
    from clipcore.clip_model import load_clip
    from clipcore.encode import embed_pixels, preprocess_images
    from clipcore.scene_classifier import build_scene_embeddings
    from clipcore.taxonomy import load_default_taxonomy

    clip = load_clip(str(folder), "cpu")
    scenes = build_scene_embeddings(clip, load_default_taxonomy())  # once, at start-up
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        for number, data in enumerate(images):
            path = Path(tmp) / f"upload-{number}.jpg"
            path.write_bytes(data)  # the seed saved each upload before classifying it
            with torch.no_grad():
                image = Image.open(path).convert("RGB")
                features = embed_pixels(clip, preprocess_images(clip, [image]))
                probabilities = clip.scoring.choice(features, scenes)
                probabilities[0].argmax().item()
            path.unlink()
        return time.perf_counter() - started


def main(folder: Path, quick: bool = False) -> dict[str, float]:
    count = 16 if quick else 64
    images = photos(count, seed=300)
    seed_seconds = seed_way(folder, images)
    with service(folder) as running:
        warm_up(running, "scenes")
        one_job = through_service(running.base_url, "scenes", [images], clients=1)
        # Other bytes, so that the image-embedding cache does not answer for the model.
        singles = [[image] for image in photos(count, seed=301)]
        many_jobs = through_service(running.base_url, "scenes", singles, clients=16)
    rows = [
        ["seed's way: one image at a time, synchronous", count / seed_seconds, 1.0],
        [f"clipq: one scenes job of {count} images", count / one_job, seed_seconds / one_job],
        [
            f"clipq: {count} single-image jobs, 16 clients",
            count / many_jobs,
            seed_seconds / many_jobs,
        ],
    ]
    print(f"\n== 2. clipq vs the seed's way ({count} images, same model, CPU) ==")
    print(table(rows, ["", "images/s", "speed-up"]))
    return {
        "seed": count / seed_seconds,
        "speedup_one_job": seed_seconds / one_job,
        "speedup_single_jobs": seed_seconds / many_jobs,
    }


if __name__ == "__main__":
    run_alone(main, __doc__, "small sizes, for debugging")
