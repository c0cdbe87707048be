"""Ingest: images at the detector's size, answers in the upload's own pixels."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from clipcore import ingest
from clipcore.batching import Upload
from clipcore.clip_model import LoadedClip, load_clip
from clipcore.detector import load_detector
from clipcore.images import WorkingSize
from clipcore.ingest import CropSettings, PreparedImage, ingest_working_size, prepare_images

BIG = 40_000_000
EVERY_REGION = CropSettings(per_image=4, min_score=0.0)


@pytest.fixture(scope="module")
def clip(random_clip_dir: Path) -> LoadedClip:
    return load_clip(str(random_clip_dir), "cpu")


@pytest.fixture(scope="module")
def detector(random_detector_dir: Path) -> torch.nn.Module:
    return load_detector(str(random_detector_dir))  # longer side scaled to at most 256


def scene(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Some objects on a background, so that the random detector has something to see."""
    image = Image.new("RGB", size, (90 + seed * 20, 140, 170))
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.ellipse((width * 0.1, height * 0.2, width * 0.4, height * 0.6), fill=(230, 40, 40))
    draw.rectangle((width * 0.55, height * 0.5, width * 0.9, height * 0.9), fill=(30, 30, 200))
    return image


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def prepared(results: Sequence[object]) -> list[PreparedImage]:
    assert all(isinstance(item, PreparedImage) for item in results), results
    return list(results)  # type: ignore[arg-type]


class DetectorCalls:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[list[tuple[int, int]]] = []
        real = ingest.propose_regions

        def spy(model, images, *args):
            self.sizes.append([image.size for image in images])
            return real(model, images, *args)

        monkeypatch.setattr(ingest, "propose_regions", spy)


def test_ingest_detects_at_working_size_and_answers_in_the_uploads_pixels(
    clip: LoadedClip, detector: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ingest_working_size(clip, detector) == WorkingSize(longest_side=256)
    big = scene((2048, 1536))
    working = ingest_working_size(clip, detector).reduce(big)
    assert working.size == (256, 192)
    turned = Image.Exif()
    turned[0x0112] = 6
    datas = [encoded(big), encoded(working), encoded(big, "JPEG", exif=turned, quality=95)]
    calls = DetectorCalls(monkeypatch)
    ingested = prepare_images(
        clip,
        detector,
        [Upload(f"{i}", f"sha{i}", data) for i, data in enumerate(datas)],
        crops=EVERY_REGION,
        batch_size=8,
        max_pixels=BIG,
    )
    full, small, photo = prepared(ingested)
    assert calls.sizes == [[(256, 192), (256, 192), (192, 256)]]
    assert (full.width, full.height) == (2048, 1536) and (small.width, small.height) == (256, 192)
    assert (photo.width, photo.height) == (1536, 2048)
    # The big upload was seen as exactly its working-size copy; only the units differ.
    assert len(full.regions) == len(small.regions) > 0
    for region, reference in zip(full.regions, small.regions, strict=True):
        assert region.score == pytest.approx(reference.score, abs=1e-5)
        assert region.box == pytest.approx([8 * v for v in reference.box], abs=0.5)
    assert torch.allclose(full.embedding, small.embedding, atol=1e-5)
    assert torch.allclose(full.crop_embeddings, small.crop_embeddings, atol=1e-5)
    for region in photo.regions:
        x0, y0, x1, y1 = region.box
        assert 0 <= x0 < x1 <= 1536 and 0 <= y0 < y1 <= 2048
    assert max(Image.open(io.BytesIO(full.thumbnail)).size) == 256


def test_the_pixel_cap_bounds_what_waits_for_the_detector(
    clip: LoadedClip, detector: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    datas = [encoded(scene((256, 192), seed)) for seed in range(3)]  # 49,152 pixels each
    batch = [Upload(f"{i}", f"sha{i}", data) for i, data in enumerate(datas)]
    whole = prepared(
        prepare_images(clip, detector, batch, crops=EVERY_REGION, batch_size=8, max_pixels=BIG)
    )
    calls = DetectorCalls(monkeypatch)
    done: list[int] = []
    capped = prepared(
        prepare_images(
            clip,
            detector,
            batch,
            crops=EVERY_REGION,
            batch_size=8,
            max_pixels=BIG,
            max_batch_pixels=100_000,
            on_progress=done.append,
        )
    )
    assert [len(call) for call in calls.sizes] == [2, 1] and done == [3]
    for a, b in zip(capped, whole, strict=True):
        assert a.upload == b.upload and torch.allclose(a.embedding, b.embedding, atol=1e-5)
        assert len(a.regions) == len(b.regions)
        for region, reference in zip(a.regions, b.regions, strict=True):
            assert region.box == pytest.approx(reference.box, abs=0.2)
