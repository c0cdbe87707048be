"""Batches of uploads: what reaches CLIP's processor, and how much of it at once."""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from PIL import Image

from clipcore import batching
from clipcore.batching import Upload, clip_working_size, embed_uploads, prepare_batch
from clipcore.clip_model import LoadedClip, load_clip
from clipcore.images import WorkingSize
from tests.support import distinct_pngs

BIG = 40_000_000


@pytest.fixture(scope="module")
def clip(random_clip_dir: Path) -> LoadedClip:
    return load_clip(str(random_clip_dir), "cpu")  # a 32-pixel input, centre-cropped


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def uploads(datas: Sequence[bytes]) -> list[Upload]:
    return [Upload(f"{i}.png", f"sha{i}", data) for i, data in enumerate(datas)]


class ProcessorCalls:
    """Records the sizes of the images each call of the processor is handed, and where."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[list[tuple[int, int]]] = []
        self.threads: list[str] = []
        real = batching.preprocess_images

        def spy(clip: LoadedClip, images: Sequence[Image.Image]) -> torch.Tensor:
            self.sizes.append([image.size for image in images])
            self.threads.append(threading.current_thread().name)
            return real(clip, images)

        monkeypatch.setattr(batching, "preprocess_images", spy)


def test_the_processor_is_handed_working_size_pictures_and_small_ones_untouched(
    clip: LoadedClip, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Twice the 32-pixel input on the shorter side; at most 4 × the centre it keeps.
    assert clip_working_size(clip) == WorkingSize(shortest_side=64, max_aspect=4.0)
    calls = ProcessorCalls(monkeypatch)
    small = png(Image.new("RGB", (40, 30), (200, 40, 40)))
    datas = [
        png(Image.new("RGB", (1600, 1200), (40, 80, 220))),
        png(Image.new("RGB", (24_000, 3), (40, 200, 40))),
        small,
    ]
    batch = prepare_batch(clip, uploads(datas), 0, BIG)
    assert calls.sizes == [[(85, 64), (12, 3), (40, 30)]]
    assert batch.indices == [0, 1, 2] and batch.pixel_values is not None
    direct = clip.family.processor(
        images=[Image.open(io.BytesIO(small)).convert("RGB")], return_tensors="pt"
    )
    assert torch.equal(batch.pixel_values[2], direct["pixel_values"][0])


def test_the_pixel_cap_bounds_what_waits_for_the_processor(
    clip: LoadedClip, monkeypatch: pytest.MonkeyPatch
) -> None:
    datas = distinct_pngs(5, size=(64, 64))  # 4,096 pixels each
    whole = prepare_batch(clip, uploads(datas), 10, BIG)
    calls = ProcessorCalls(monkeypatch)
    capped = prepare_batch(clip, uploads(datas), 10, BIG, max_batch_pixels=9_000)
    assert [len(call) for call in calls.sizes] == [2, 2, 1]
    assert capped.indices == whole.indices == [10, 11, 12, 13, 14]
    assert capped.pixel_values is not None and whole.pixel_values is not None
    assert torch.equal(capped.pixel_values, whole.pixel_values)


def test_embed_uploads_caps_each_batch_and_still_decodes_ahead(
    clip: LoadedClip, monkeypatch: pytest.MonkeyPatch
) -> None:
    datas = distinct_pngs(6, size=(48, 48))
    expected = embed_uploads(clip, uploads(datas), batch_size=3, max_pixels=BIG)
    calls = ProcessorCalls(monkeypatch)
    got = embed_uploads(clip, uploads(datas), batch_size=3, max_pixels=BIG, max_batch_pixels=1)
    assert calls.sizes == [[(48, 48)]] * 6  # one image at a time, in two batches of three
    assert set(calls.threads) == {"clipq-decode_0"}  # decoded beside the forward pass
    for a, b in zip(got, expected, strict=True):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
        assert torch.allclose(a, b, atol=1e-6)
