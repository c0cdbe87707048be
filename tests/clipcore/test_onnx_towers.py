"""The towers on ONNX Runtime agree with PyTorch, and are exported once per model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clipcore import onnx_towers
from clipcore.clip_model import load_clip
from clipcore.encode import embed_images, embed_texts
from clipcore.lab import world
from clipcore.lab.evaluate import scene_set


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


def test_the_embedded_model_scores_alike_on_both_runtimes(exports: Path) -> None:
    eager = load_clip("embedded", "cpu")
    onnx = load_clip("embedded", "cpu", runtime="onnx", onnx_dir=str(exports))
    assert eager.towers is None and onnx.towers is not None
    images = [s.image for s in scene_set("alt", seed=7, count=48)]  # the held-out renderer
    prompts = [f"a photo of a {label}." for label in world.zero_shot_labels()]
    # texts of several lengths in one batch: the text tower's length is dynamic
    texts = [*prompts, "a", "a small red circle beside a large blue square on grey"]
    for a, b in ((embed_images(eager, images), embed_images(onnx, images)),
                 (embed_texts(eager, texts), embed_texts(onnx, texts))):  # fmt: skip
        assert torch.nn.functional.cosine_similarity(a, b).min() >= 0.9999
    probabilities = [
        clip.scoring.probabilities(embed_images(clip, images), embed_texts(clip, prompts))
        for clip in (eager, onnx)
    ]
    assert (probabilities[0] - probabilities[1]).abs().max() <= 1e-4
    assert torch.equal(probabilities[0].argmax(1), probabilities[1].argmax(1))


def test_a_model_is_exported_once_and_its_export_reused(
    exports: Path, random_clip_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_clip(str(random_clip_dir), "cpu", runtime="onnx", onnx_dir=str(exports))
    assert first.towers is not None
    files = sorted(first.towers.folder.iterdir())
    assert [f.name for f in files] == ["image.onnx", "text.onnx"]
    assert not [p for p in exports.iterdir() if p.name.startswith(".export-")]  # no staging

    def no_export(*_: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_towers, "export_towers", no_export)
    again = load_clip(str(random_clip_dir), "cpu", runtime="onnx", onnx_dir=str(exports))
    assert again.towers is not None and again.towers.folder == first.towers.folder
    size = again.family.shape.input_size
    pixels = torch.randn(3, 3, size, size)
    with torch.inference_mode():
        expected = again.family.image_features(pixels)
    torch.testing.assert_close(again.towers.image_features(pixels), expected, atol=1e-4, rtol=0)
    # other weights, another export
    assert onnx_towers.fingerprint(again.family) != onnx_towers.fingerprint(
        load_clip("embedded", "cpu").family
    )


@pytest.mark.parametrize("family", ["siglip", "open_clip_sigmoid"])
def test_other_families_export_and_agree(exports: Path, tmp_path: Path, family: str) -> None:
    """SigLIP (texts padded to the context) and open_clip (one text input) export too."""
    from PIL import Image

    from tests.support import build_random_open_clip, build_random_siglip

    folder = (
        build_random_siglip(tmp_path / family)
        if family == "siglip"
        else build_random_open_clip(tmp_path / family, sigmoid=True)
    )
    eager = load_clip(str(folder), "cpu")
    onnx = load_clip(str(folder), "cpu", runtime="onnx", onnx_dir=str(exports))
    assert onnx.towers is not None and onnx.runtime == "onnx"
    images = [Image.new("RGB", (40 + 9 * i, 30), (20 * i, 90, 200 - 20 * i)) for i in range(5)]
    texts = ["a", "a red circle", "a photo of a bird, a car and a truck"]
    for a, b in ((embed_images(eager, images), embed_images(onnx, images)),
                 (embed_texts(eager, texts), embed_texts(onnx, texts))):  # fmt: skip
        assert torch.nn.functional.cosine_similarity(a, b).min() >= 0.9999


def test_siglip2_runs_on_torch_when_asked_for_onnx(exports: Path, tmp_path: Path) -> None:
    from tests.support import build_random_siglip

    folder = build_random_siglip(tmp_path / "siglip2", version=2)
    clip = load_clip(str(folder), "cpu", runtime="onnx", onnx_dir=str(exports))
    assert clip.towers is None and clip.runtime == "torch"


def test_openvino_runs_the_same_export(exports: Path) -> None:
    images = [s.image for s in scene_set("alt", seed=8, count=16)]
    eager = load_clip("embedded", "cpu")
    compiled = load_clip("embedded", "cpu", runtime="openvino", onnx_dir=str(exports))
    assert compiled.runtime == "openvino" and compiled.towers is not None
    texts = ["a", "a photo of a red circle.", "two blue squares and a green star"]
    for a, b in ((embed_images(eager, images), embed_images(compiled, images)),
                 (embed_texts(eager, texts), embed_texts(compiled, texts))):  # fmt: skip
        assert torch.nn.functional.cosine_similarity(a, b).min() >= 0.9999


def test_int8_is_used_only_where_it_agrees_with_fp32(
    exports: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = load_clip("embedded", "cpu", runtime="onnx-int8", onnx_dir=str(exports))
    verdict = json.loads((clip.towers.folder / "int8.json").read_text())
    assert verdict["holds"] == (clip.runtime == "onnx-int8")
    assert min(verdict["image_mean_cosine"], verdict["text_mean_cosine"]) > 0.99
    # where the agreement does not hold, the towers run in fp32
    monkeypatch.setattr(onnx_towers, "INT8_MIN_MEAN_COSINE", 1.01)
    strict = tmp_path / "strict"
    fallback = load_clip("embedded", "cpu", runtime="onnx-int8", onnx_dir=str(strict))
    assert fallback.runtime == "onnx" and fallback.towers is not None
    assert not json.loads((fallback.towers.folder / "int8.json").read_text())["holds"]
