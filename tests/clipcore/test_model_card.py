"""The model description: what a loaded CLIP is and knows, and what to set for photographs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clipcore.errors import ModelLoadError
from clipcore.lab.world import COLOURS, SHAPES
from clipcore.model_card import (
    DOMAIN_FILE,
    DetectorKind,
    ModelKind,
    describe,
    describe_clip,
    describe_detector,
    load_domain,
)
from clipcore.models import EMBEDDED_CLIP_DIR

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def embedded():
    from clipcore.clip_model import load_clip

    return load_clip("embedded", "cpu")


def test_the_embedded_model_says_it_is_the_demo_and_what_it_knows(embedded) -> None:
    description = describe_clip(embedded, "embedded", "embedded")
    assert description.id == "embedded"
    assert description.model == "embedded:clip-tiny"
    assert description.kind == ModelKind.embedded_demo
    assert description.input_size == 96
    assert description.embedding_dim == 128
    assert description.knows is not None
    assert len(description.knows.colours) == 6 and len(description.knows.shapes) == 5
    assert "Not photographs" in description.knows.summary
    assert description.advice is not None
    assert "CLIPQ_CLIP_MODEL=openai/clip-vit-base-patch32" in description.advice
    assert "CLIPQ_DETECTOR_MODEL" in description.advice
    assert description.detector.kind == DetectorKind.embedded_demo
    # The unset setting ('') is the embedded model too, and says so.
    assert describe_clip(embedded, "", "").id == "embedded"


def test_the_domain_file_agrees_with_the_world_it_was_trained_on() -> None:
    """domain.json is written out (the service never imports clipcore.lab): it must not drift."""
    domain = json.loads((EMBEDDED_CLIP_DIR / DOMAIN_FILE).read_text())
    assert domain["kind"] == "embedded-demo"
    assert domain["colours"] == list(COLOURS)
    assert domain["shapes"] == list(SHAPES)
    assert domain["summary"]


def test_a_domain_file_may_grow(tmp_path: Path) -> None:
    """Keys it does not know (an out-of-domain reference, say) are ignored, not refused."""
    grown = {
        **json.loads((EMBEDDED_CLIP_DIR / DOMAIN_FILE).read_text()),
        "out_of_domain": {"images": ["cup.jpg"], "threshold": 0.3},
        "version": 2,
    }
    (tmp_path / DOMAIN_FILE).write_text(json.dumps(grown))
    domain = load_domain(tmp_path)
    assert domain is not None and domain.kind == "embedded-demo"
    assert domain.colours == list(COLOURS)


def test_a_broken_domain_file_is_named(tmp_path: Path) -> None:
    (tmp_path / DOMAIN_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match=DOMAIN_FILE):
        load_domain(tmp_path)


def test_a_general_clip_has_no_domain_and_needs_no_advice(random_clip_dir: Path) -> None:
    from clipcore.clip_model import load_clip

    clip = load_clip(str(random_clip_dir), "cpu")
    description = describe_clip(clip, str(random_clip_dir), "torchvision:COCO_V1")
    assert description.kind == ModelKind.clip
    assert description.id == str(random_clip_dir)
    assert description.input_size == clip.family.model.config.vision_config.image_size
    assert description.knows is None and description.advice is None
    assert description.detector.kind == DetectorKind.coco
    # ...but beside the embedded detector it is told how to get one for photographs.
    beside_demo = describe_clip(clip, str(random_clip_dir), "embedded")
    assert beside_demo.advice is not None and "CLIPQ_DETECTOR_MODEL=auto" in beside_demo.advice


def test_a_copy_of_the_demo_model_is_still_the_demo(tmp_path: Path) -> None:
    """The kind comes from the folder's domain.json, not from the setting's spelling."""
    copy = tmp_path / "my-clip"
    shutil.copytree(EMBEDDED_CLIP_DIR, copy)
    description = describe(
        spec=str(copy),
        model_id=str(copy),
        folder=copy,
        input_size=48,
        embedding_dim=128,
        detector_spec="embedded",
    )
    assert description.kind == ModelKind.embedded_demo and description.advice


def test_a_hub_model_has_no_folder_to_read(tmp_path: Path) -> None:
    description = describe(
        spec="openai/clip-vit-base-patch32",
        model_id="openai/clip-vit-base-patch32",
        folder=None,
        input_size=224,
        embedding_dim=512,
        detector_spec="torchvision:COCO_V1",
    )
    assert description.kind == ModelKind.clip and description.knows is None
    assert description.advice is None


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("", DetectorKind.embedded_demo),
        ("embedded", DetectorKind.embedded_demo),
        ("torchvision:COCO_V1", DetectorKind.coco),
        ("/models/maskrcnn_v2_coco.pth", DetectorKind.custom),
        ("/models/my-detector", DetectorKind.custom),
    ],
)
def test_the_detector_is_named_by_its_setting(spec: str, kind: DetectorKind) -> None:
    detector = describe_detector(spec)
    assert detector.kind == kind
    assert detector.id == (spec or "embedded")
    assert detector.summary
