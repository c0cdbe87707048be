"""What clipcore asks of a model family: its own inputs, two towers and a scoring rule."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import torch
from PIL import Image

from clipcore.device_images import ImageRecipe
from clipcore.images import WorkingSize

# Pre-processing should still resize a proper picture, not one already at its input size.
INPUT_MARGIN = 2
# Past this multiple of what a centre crop keeps, the rest of a long picture is cut off
# before the pre-processing, which would otherwise resize all of it (a 20,000,000 × 2 PNG
# to 224 × 2.2 billion pixels) only to keep the centre.
ASPECT_MARGIN = 4


class ScoringRule(StrEnum):
    softmax = "softmax"
    sigmoid = "sigmoid"


@dataclass(frozen=True)
class Scoring:
    """How a model turns an image's and a text's cosine similarity into a probability.

    ``softmax`` (CLIP): over the labels given, of ``scale`` × cosine: the labels share a
    probability of 1, so one label alone always gets 100 %. ``sigmoid`` (SigLIP): of
    ``scale`` × cosine + ``bias``, each label on its own ("does this text describe the
    image?"): none, one or several may be likely, and they need not sum to 1.
    """

    rule: ScoringRule
    scale: float
    bias: float = 0.0

    def logits(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        return self.scale * images @ texts.T + self.bias

    def probabilities(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """Each label's probability for each image, as the model defines it: (images, texts)."""
        logits = self.logits(images, texts)
        return logits.softmax(dim=-1) if self.rule == ScoringRule.softmax else logits.sigmoid()

    def choice(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """A distribution over alternatives of which exactly one holds (a scene taxonomy):
        the softmax of the model's logits whatever its rule (a sigmoid model's bias cancels)."""
        return self.logits(images, texts).softmax(dim=-1)


@dataclass(frozen=True)
class ModelShape:
    """What a model reads and gives: ``GET /v1/models`` shows it."""

    embedding_dim: int
    input_size: int  # side in pixels its vision tower reads (the largest, for NaFlex)
    context_length: int  # tokens its text tower reads


class Family(ABC):
    """One loaded model: how images and texts become its inputs, its two towers (giving
    unnormalised embeddings, as ``get_image_features`` does), and how it scores.

    Pre-processing gives one batch-first CPU tensor per image batch, whatever the family,
    so that batching, slicing, pinning and the ONNX export treat every family alike.
    """

    name: str  # "clip", "siglip", "siglip2", "open_clip"

    def __init__(
        self, module: torch.nn.Module, *, scoring: Scoring, shape: ModelShape, folder: Path | None
    ) -> None:
        self.module = module  # the whole model: device, dtype, weights
        self.scoring = scoring
        self.shape = shape
        self.folder = folder  # where its files are; None for a hub id

    @abstractmethod
    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """RGB images into the vision tower's input batch (on the CPU)."""

    @abstractmethod
    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Texts into the text tower's inputs, padded and truncated as the model was trained."""

    @abstractmethod
    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """The vision tower on a pre-processed batch already on the model's device."""

    @abstractmethod
    def text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """The text tower on tokenised texts already on the model's device."""

    @abstractmethod
    def working_size(self) -> WorkingSize:
        """The least of a picture the pre-processing needs (:mod:`clipcore.images`)."""

    def image_recipe(self) -> ImageRecipe | None:
        """The pre-processing as tensor ops, for decoding and resizing on a GPU
        (:mod:`clipcore.device_images`); None where it is more than resize, crop and
        normalise (SigLIP2's NaFlex), which then stays on the CPU."""
        return None

    # --- the ONNX export (clipcore.onnx_towers) ---
    onnx_exportable = True

    def export_mode(self) -> AbstractContextManager[object]:
        """Settings the towers take while they are exported (e.g. plain-matmul attention)."""
        return nullcontext()
