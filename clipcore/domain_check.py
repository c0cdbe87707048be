"""The per-image domain check of a result (no torch: the API reads it too; see clipcore.domain)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class DomainCheck(BaseModel):
    """Where one image lands among the images the loaded model knows."""

    score: float = Field(
        description="Mean cosine similarity of the image to its nearest reference images."
    )
    threshold: float = Field(description="Below this score the image is out of the model's domain.")
    caption_margin: float = Field(
        description="How much better the best prompt of the model's bank fits the image than "
        "the median prompt (an image the model knows has one caption that fits it)."
    )
    caption_margin_threshold: float = Field(
        description="Below this margin the image is out of the model's domain."
    )
    in_domain: bool = Field(
        description="False when the image looks like nothing the loaded model was made for "
        "(its answers are then not meaningful)."
    )
