"""What clipcore takes and returns besides tensors: pydantic models and enums (no torch).

The service's contracts (:mod:`clipq.contracts`) are built from these; clipcore
itself knows nothing of jobs. Boxes are ``[x0, y0, x1, y1]`` in the original
image's pixels.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field

from clipcore.domain_check import DomainCheck
from clipcore.problem import Problem
from clipcore.scenes import DatasetSummary, SceneImageResult
from clipcore.taxonomy import Speed

Box = Annotated[list[float], Field(min_length=4, max_length=4)]


class RerankMode(StrEnum):
    none = "none"
    crops = "crops"


class Fusion(StrEnum):
    """How an image's score and its best crop's score combine under ``rerank=crops``."""

    max = "max"  # the seed's rule: max(image score, best crop score)
    weighted = "weighted"  # (1 - crop_weight) × image score + crop_weight × best crop score


class CropBackground(StrEnum):
    """What a crop shows around its object: the scene (``keep``) or grey (``mask``)."""

    keep = "keep"
    mask = "mask"


class Region(BaseModel):
    box: Box
    score: float


class LabelScore(BaseModel):
    label: str
    probability: float


class ClassifiedImage(BaseModel):
    filename: str
    sha256: str
    predictions: list[LabelScore] = Field(
        default_factory=list, description="The top-k labels, most probable first."
    )
    error: Problem | None = Field(
        None, description="Set when this image could not be decoded; the others still count."
    )
    domain: DomainCheck | None = Field(
        None,
        description="Whether the image looks like anything the loaded model can judge; "
        "null when the model has no domain reference.",
    )
    uncertain: bool = Field(
        False,
        description="True when the image is out of the model's domain: its labels are then "
        "the least bad of those given, not a recognition.",
    )


class TaxonomyRef(BaseModel):
    name: str
    version: str
    hash: str = Field(description="sha256 of the taxonomy's canonical JSON.")


class SceneImage(BaseModel):
    filename: str
    sha256: str
    prediction: SceneImageResult | None = None
    error: Problem | None = Field(
        None, description="Set when this image could not be decoded; the others still count."
    )


class SceneBatch(BaseModel):
    """The scenes of a batch of images, and their dataset summary."""

    model: str
    taxonomy: TaxonomyRef
    speed: Speed
    images: list[SceneImage]
    summary: DatasetSummary | None = Field(
        None, description="The dataset summary, when two or more images were classified."
    )
