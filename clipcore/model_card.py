"""What a loaded model is and what it knows, said to the people who send it images.

A worker describes the models it has loaded (:func:`describe_clip`) and publishes the
description; the service shows it (``GET /v1/models``, the web page), so that nobody takes
the embedded demo CLIP, which knows only generated coloured shapes, for one that reads
photographs. A model folder may carry a ``domain.json`` saying what the model was trained on
(the embedded one does, see :class:`ModelDomain`); keys this module does not know are
ignored, so the file may grow.

Nothing here imports torch: the API reads these schemas from what the workers publish.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clipcore.errors import ModelLoadError
from clipcore.model_names import EMBEDDED

if TYPE_CHECKING:
    from clipcore.clip_model import LoadedClip

DOMAIN_FILE = "domain.json"
# What the README and docker-compose.yml run for photographs.
PHOTO_CLIP = "openai/clip-vit-base-patch32"
COCO_DETECTOR = "torchvision:COCO_V1"


class ModelKind(StrEnum):
    embedded_demo = "embedded-demo"  # the small CLIP shipped in clipcore: generated shapes only
    clip = "clip"  # any other CLIP


class DetectorKind(StrEnum):
    embedded_demo = "embedded-demo"  # the tiny Mask R-CNN shipped in clipcore
    coco = "coco"  # torchvision's maskrcnn_resnet50_fpn_v2 with its COCO weights
    custom = "custom"  # a folder or a .pth state dict of the operator's


class ModelKnowledge(BaseModel):
    """What a model was trained on, in words and, for a world of shapes, its vocabulary."""

    summary: str = Field(description="What the model was trained on, in one sentence.")
    colours: list[str] = Field(
        default_factory=list, description="The colours it can name (empty: not a shapes world)."
    )
    shapes: list[str] = Field(
        default_factory=list, description="The shapes it can name (empty: not a shapes world)."
    )


class ModelDomain(ModelKnowledge):
    """A model folder's ``domain.json``. Keys not named here are ignored: the file may grow."""

    model_config = ConfigDict(extra="ignore")

    kind: str = ModelKind.clip


class DetectorDescription(BaseModel):
    id: str = Field(
        description="The detector loaded for crop proposals (CLIPQ_DETECTOR_MODEL as resolved): "
        "'embedded', 'torchvision:COCO_V1', a folder or a .pth file."
    )
    kind: DetectorKind = Field(
        description="'embedded-demo': the tiny Mask R-CNN shipped with clipcore, trained on "
        "generated shapes only; 'coco': torchvision's COCO Mask R-CNN; 'custom': the "
        "operator's own weights."
    )
    summary: str = Field(description="What it proposes regions of, in one sentence.")


class ModelDescription(BaseModel):
    """One worker's models: the CLIP (what it reads, what it knows) and the detector."""

    id: str = Field(
        description="The model string as configured (CLIPQ_CLIP_MODEL), which jobs and "
        "collections name it by: 'embedded', 'hf:<hub id or folder>', 'open_clip:<name>', "
        "or a bare hub id or folder."
    )
    model: str = Field(description="The model id job results carry, e.g. 'embedded:clip-tiny'.")
    kind: ModelKind = Field(
        description="'embedded-demo': the small CLIP shipped with clipcore, which knows only "
        "generated coloured shapes (photographs get meaningless answers); 'clip': any other."
    )
    family: str = Field(
        "clip",
        description="Its family: 'clip', 'siglip' or 'siglip2' (transformers), or 'open_clip'.",
    )
    scoring: str = Field(
        "softmax",
        description="How label probabilities are made: 'softmax' (CLIP: shared among the "
        "labels given, summing to 1) or 'sigmoid' (SigLIP: each label on its own).",
    )
    runtime: str = Field(
        "torch", description="What runs its towers: 'torch' or 'onnx' (ONNX Runtime)."
    )
    input_size: int = Field(
        description="Side in pixels of the square its vision tower reads (SigLIP2's NaFlex: "
        "of the square of as many patches, each image keeping its aspect ratio)."
    )
    embedding_dim: int = Field(description="Length of its image and text embeddings.")
    context_length: int = Field(0, description="Tokens its text tower reads; longer texts are cut.")
    knows: ModelKnowledge | None = Field(
        description="What it was trained on, when its folder says (domain.json); null for a "
        "general-purpose CLIP."
    )
    advice: str | None = Field(
        description="What to set for photographs when what is loaded cannot read them; null "
        "otherwise."
    )
    domain_check: str | None = Field(
        None,
        description="What each result's 'domain' check compares images with (the model's "
        "reference images); null when the model has none and results carry no check.",
    )
    detector: DetectorDescription


def load_domain(folder: Path) -> ModelDomain | None:
    """The ``domain.json`` of a model folder, or None when it has none."""
    path = folder / DOMAIN_FILE
    if not path.is_file():
        return None
    try:
        return ModelDomain.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
        raise ModelLoadError(
            f"{path} is not a valid model domain ({exc}); fix or remove it"
        ) from exc


def describe_detector(spec: str) -> DetectorDescription:
    """What the detector of ``spec`` (as :func:`clipcore.detector.load_detector` takes it) is."""
    spec = (spec or "").strip()
    if spec in ("", EMBEDDED):
        return DetectorDescription(
            id=EMBEDDED,
            kind=DetectorKind.embedded_demo,
            summary="The embedded tiny Mask R-CNN: object proposals trained only on the "
            "generated coloured shapes.",
        )
    if spec.startswith("torchvision:"):
        return DetectorDescription(
            id=spec,
            kind=DetectorKind.coco,
            summary="torchvision's maskrcnn_resnet50_fpn_v2 with COCO weights: object "
            "proposals in photographs.",
        )
    return DetectorDescription(
        id=spec, kind=DetectorKind.custom, summary=f"A Mask R-CNN loaded from {spec}."
    )


def photo_advice(kind: ModelKind, detector: DetectorKind) -> str | None:
    """One line on what to set for photographs, or None when the models can read them."""
    if kind == ModelKind.embedded_demo:
        return (
            f"For photographs set CLIPQ_CLIP_MODEL={PHOTO_CLIP} and leave CLIPQ_DETECTOR_MODEL "
            f"at auto (it then loads {COCO_DETECTOR})."
        )
    if detector == DetectorKind.embedded_demo:
        return (
            "The detector is the embedded demo, which knows only generated shapes: for "
            f"photographs set CLIPQ_DETECTOR_MODEL=auto ({COCO_DETECTOR} beside this CLIP)."
        )
    return None


def describe(
    *,
    spec: str,
    model_id: str,
    folder: Path | None,
    input_size: int,
    embedding_dim: int,
    detector_spec: str,
) -> ModelDescription:
    """The description of a CLIP loaded from ``spec`` (its files in ``folder``, None for a
    hub id) beside the detector of ``detector_spec``."""
    domain = load_domain(folder) if folder is not None else None
    kind = (
        ModelKind.embedded_demo
        if domain is not None and domain.kind == ModelKind.embedded_demo
        else ModelKind.clip
    )
    detector = describe_detector(detector_spec)
    knows = (
        ModelKnowledge(summary=domain.summary, colours=domain.colours, shapes=domain.shapes)
        if domain is not None
        else None
    )
    return ModelDescription(
        id=spec or EMBEDDED,
        model=model_id,
        kind=kind,
        input_size=input_size,
        embedding_dim=embedding_dim,
        knows=knows,
        advice=photo_advice(kind, detector.kind),
        detector=detector,
    )


def describe_clip(clip: LoadedClip, spec: str, detector_spec: str) -> ModelDescription:
    """Describe a model loaded by :func:`clipcore.clip_model.load_clip` from ``spec``.

    Its shape and scoring come from its family; what it knows from the ``domain.json``
    beside its weights, when it was loaded from a folder.
    """
    family = clip.family
    description = describe(
        spec=spec,
        model_id=clip.model_id,
        folder=family.folder,
        input_size=family.shape.input_size,
        embedding_dim=family.shape.embedding_dim,
        detector_spec=detector_spec,
    )
    description.family = family.name
    description.scoring = family.scoring.rule
    description.runtime = clip.runtime
    description.context_length = family.shape.context_length
    if clip.domain is not None:
        description.domain_check = clip.domain.made_from
    return description
