"""Decoding and resizing on the device (a GPU worker's path), run here on the CPU: the same
embeddings as each family's own processor, and every bad file still its own problem."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
import torch
from PIL import Image

from bench.common import photos
from clipcore.batching import Upload, embed_uploads
from clipcore.clip_model import load_clip
from clipcore.device_images import decode_on_device, preprocess_on_device
from clipcore.encode import embed_pixels, preprocess_images
from clipcore.problem import Problem
from tests.support import build_random_open_clip, build_random_siglip, png_bytes

CPU = torch.device("cpu")


def jpegs() -> list[bytes]:
    return photos(6, seed=3, size=(320, 256)) + photos(4, seed=4, size=(200, 300))


@pytest.mark.parametrize("family", ["embedded", "siglip", "open_clip"])
def test_the_recipe_gives_the_processors_embeddings(family: str, tmp_path: Path) -> None:
    spec = {
        "embedded": lambda: "embedded",
        "siglip": lambda: str(build_random_siglip(tmp_path / "siglip")),
        "open_clip": lambda: str(build_random_open_clip(tmp_path / "open_clip")),
    }[family]()
    clip = load_clip(spec, "cpu")
    recipe = clip.family.image_recipe()
    assert recipe is not None
    data = jpegs()
    pictures = decode_on_device(data, [f"{i}.jpg" for i in range(len(data))], CPU, 10**8)
    on_device = preprocess_on_device(pictures, recipe, torch.float32)  # type: ignore[arg-type]
    processor = preprocess_images(clip, [Image.open(io.BytesIO(d)).convert("RGB") for d in data])
    assert on_device.shape == processor.shape
    assert (on_device - processor).abs().mean() < 0.01  # about 1/255 of the pixel range
    similarity = torch.nn.functional.cosine_similarity(
        embed_pixels(clip, on_device), embed_pixels(clip, processor)
    )
    assert similarity.min() >= 0.9999


def test_siglip2_has_no_recipe_and_stays_on_the_cpu(tmp_path: Path) -> None:
    clip = load_clip(str(build_random_siglip(tmp_path / "s2", version=2)), "cpu")
    assert clip.family.image_recipe() is None


def test_a_batch_on_the_device_keeps_each_files_problem() -> None:
    clip = load_clip("embedded", "cpu")
    on_device = dataclasses.replace(clip, device_recipe=clip.family.image_recipe())
    good = jpegs()[:3]
    broken = good[0][: len(good[0]) // 3]  # a JPEG cut short
    datas = [good[0], b"not an image", png_bytes((200, 30, 30), (64, 48)), broken, good[1]]
    uploads = [Upload(f"{i}.img", f"{i:064x}", d) for i, d in enumerate(datas)]
    results = embed_uploads(on_device, uploads, batch_size=8, max_pixels=10**7)
    reference = embed_uploads(clip, uploads, batch_size=8, max_pixels=10**7)
    assert isinstance(results[1], Problem) and isinstance(reference[1], Problem)
    assert results[1].status == reference[1].status == 422
    for position in (0, 2, 4):  # JPEGs on the device's decoder, the PNG on the CPU's
        got, want = results[position], reference[position]
        assert isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor)
        assert float(got @ want) >= 0.9999
    # the cut JPEG: libjpeg may decode what is there, or refuse it; never a crash
    assert isinstance(results[3], Problem | torch.Tensor)
