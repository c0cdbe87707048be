"""What a reconstruction plan holds besides its scene analysis (pydantic only, no numpy).

Pairs name images by their file names, as hloc's ``pairs.txt`` does; a pair is written once,
``image0`` before ``image1`` in the dataset's order.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class ShortlistStrategy(StrEnum):
    """Which image pairs a plan proposes to match."""

    retrieval = "retrieval"  # each image's k nearest neighbours by CLIP embedding
    sequential = "sequential"  # each image with the next `window` in file-name order
    retrieval_sequential = "retrieval+sequential"  # the union: ordered captures (video, bursts)
    exhaustive = "exhaustive"  # every pair: n(n-1)/2, for small sets


class PairSource(StrEnum):
    retrieval = "retrieval"
    sequential = "sequential"
    exhaustive = "exhaustive"


class ImagePair(BaseModel):
    image0: str
    image1: str
    similarity: float = Field(description="Cosine similarity of the two images' embeddings.")
    sources: list[PairSource] = Field(description="What proposed the pair.")


class PairShortlist(BaseModel):
    strategy: ShortlistStrategy
    pairs_per_image: int = Field(description="k of the nearest-neighbour search (retrieval).")
    window: int = Field(description="How many following images each is paired with (sequential).")
    pairs: list[ImagePair] = Field(description="Most similar first.")
    exhaustive_pairs: int = Field(description="n(n-1)/2: what exhaustive matching would take.")
    unpaired: list[str] = Field(
        default_factory=list,
        description="Images in no pair (dropped by hygiene, or alone): they cannot register.",
    )


class Action(StrEnum):
    keep = "keep"
    drop = "drop"
    review = "review"


class HygieneFlag(StrEnum):
    blurry = "blurry"  # sharpness far below the dataset's own
    overexposed = "overexposed"  # many clipped highlights
    underexposed = "underexposed"  # many crushed shadows
    low_resolution = "low_resolution"
    near_duplicate = "near_duplicate"  # adds no baseline to another image of its group
    undecodable = "undecodable"


class HygieneThresholds(BaseModel):
    """When an image is flagged; the defaults are justified in the README ("Plans")."""

    blur_review: float = Field(
        0.3, description="Flag as blurry below this share of the dataset's median sharpness."
    )
    blur_drop: float = Field(0.15, description="Suggest dropping below this share.")
    clipped_share: float = Field(
        0.25, description="Flag exposure when more than this share of pixels is clipped."
    )
    min_side: int = Field(480, description="Flag images whose shorter side is below this (px).")
    duplicate_similarity: float = Field(
        0.92,
        description="Two images are near-duplicates when their small grey thumbnails correlate "
        "at least this much (and their embeddings are neighbours).",
    )


class ImageHygiene(BaseModel):
    filename: str
    width: int | None = None
    height: int | None = None
    sharpness: float | None = Field(
        None, description="Variance of the Laplacian of the grey image at 512 px on the long side."
    )
    relative_sharpness: float | None = Field(
        None, description="sharpness ÷ the dataset's median sharpness."
    )
    clipped_highlights: float | None = Field(None, description="Share of pixels at ≥ 250 of 255.")
    clipped_shadows: float | None = Field(None, description="Share of pixels at ≤ 5 of 255.")
    focal_length_mm: float | None = Field(None, description="EXIF FocalLength.")
    focal_length_35mm: float | None = Field(None, description="EXIF FocalLengthIn35mmFilm.")
    camera_make: str | None = None
    camera_model: str | None = None
    duplicate_group: int | None = Field(None, description="Id of its near-duplicate group.")
    flags: list[HygieneFlag] = Field(default_factory=list)
    action: Action = Action.keep
    reasons: list[str] = Field(default_factory=list, description="Why the action, in words.")


class DuplicateGroup(BaseModel):
    id: int
    images: list[str]
    keep: str = Field(description="The sharpest of the group; the others are suggested drops.")


class HygieneReport(BaseModel):
    thresholds: HygieneThresholds
    images: list[ImageHygiene]
    duplicate_groups: list[DuplicateGroup] = Field(default_factory=list)

    def actions(self) -> dict[Action, int]:
        counts = {action: 0 for action in Action}
        for image in self.images:
            counts[image.action] += 1
        return counts
