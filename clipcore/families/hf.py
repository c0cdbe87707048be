"""Hugging Face ``transformers`` families: ``CLIPModel``, ``SiglipModel`` and ``Siglip2Model``.

Which one a checkpoint is comes from its ``config.json`` (``model_type``); each loads
through ``from_pretrained`` with its own processor, so a hub id and a folder saved with
``save_pretrained`` go the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoProcessor,
    CLIPModel,
    CLIPProcessor,
    PreTrainedModel,
    ProcessorMixin,
    Siglip2Model,
    SiglipModel,
)
from transformers.utils import logging as hf_logging

from clipcore.device_images import ImageRecipe
from clipcore.errors import ModelLoadError
from clipcore.families.base import (
    ASPECT_MARGIN,
    INPUT_MARGIN,
    Family,
    ModelShape,
    Scoring,
    ScoringRule,
)
from clipcore.images import WorkingSize

INTERPOLATIONS = {2: "bilinear", 3: "bicubic"}  # PIL's resampling filters, as torch names them


class TransformersClip(Family):
    """``CLIPModel``: softmax over the labels of ``logit_scale`` × cosine."""

    name = "clip"
    model_class: type[PreTrainedModel] = CLIPModel

    def __init__(self, model: PreTrainedModel, processor: ProcessorMixin, folder: Path | None):
        self.model = model
        self.processor = processor
        config = model.config
        super().__init__(
            model,
            scoring=self._scoring(model),
            shape=ModelShape(
                embedding_dim=int(self._embedding_dim(config)),
                input_size=self._input_size(),
                context_length=int(config.text_config.max_position_embeddings),
            ),
            folder=folder,
        )

    @staticmethod
    def _scoring(model: PreTrainedModel) -> Scoring:
        return Scoring(ScoringRule.softmax, float(model.logit_scale.detach().float().exp()))

    @staticmethod
    def _embedding_dim(config: object) -> int:
        return config.projection_dim  # type: ignore[attr-defined]

    def _input_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.processor(images=list(images), return_tensors="pt")["pixel_values"]

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return dict(
            self.processor(text=list(texts), return_tensors="pt", padding=True, truncation=True)
        )

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.get_image_features(pixel_values=pixels).pooler_output

    def text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.get_text_features(**tokens).pooler_output

    def working_size(self) -> WorkingSize:
        """``INPUT_MARGIN`` × the input size; a processor that resizes the shorter side and
        cuts the centre also gets long pictures cut to ``ASPECT_MARGIN`` × that centre. A
        processor configured otherwise (e.g. ``longest_edge``) gets pictures as they are."""
        processor = self.processor.image_processor
        shortest = processor.size.get("shortest_edge")
        if shortest:
            aspect = None
            if processor.do_center_crop:
                crop = processor.crop_size
                kept = max(crop.get("height") or 0, crop.get("width") or 0) or shortest
                aspect = ASPECT_MARGIN * kept / shortest
            return WorkingSize(shortest_side=INPUT_MARGIN * shortest, max_aspect=aspect)
        height, width = processor.size.get("height"), processor.size.get("width")
        if height and width:  # resized to exactly height × width, aspect ratio ignored
            return WorkingSize(shortest_side=INPUT_MARGIN * max(height, width))
        return WorkingSize()

    def image_recipe(self) -> ImageRecipe | None:
        processor = self.processor.image_processor
        interpolation = INTERPOLATIONS.get(int(getattr(processor, "resample", 3)))
        if interpolation is None or not (processor.do_rescale and processor.do_normalize):
            return None
        mean, std = tuple(processor.image_mean), tuple(processor.image_std)
        shortest = processor.size.get("shortest_edge")
        if shortest:
            crop = processor.crop_size if processor.do_center_crop else {}
            if crop.get("height") == crop.get("width") == shortest:
                return ImageRecipe(shortest, True, mean, std, interpolation)  # type: ignore[arg-type]
            return None
        height, width = processor.size.get("height"), processor.size.get("width")
        if height and height == width:
            return ImageRecipe(height, False, mean, std, interpolation)  # type: ignore[arg-type]
        return None

    @contextmanager
    def export_mode(self) -> Iterator[None]:
        """Attention as plain matmuls while exported: 6 % faster on ONNX Runtime."""
        config = self.model.config
        configs = [config, config.vision_config, config.text_config]
        attention = [c._attn_implementation for c in configs]
        for c in configs:
            c._attn_implementation = "eager"
        try:
            yield
        finally:
            for c, implementation in zip(configs, attention, strict=True):
                c._attn_implementation = implementation


class TransformersSiglip(TransformersClip):
    """``SiglipModel``: each label's sigmoid of ``logit_scale`` × cosine + ``logit_bias``.

    Its text tower reads the last position, so texts are padded to the full context length,
    as SigLIP was trained (``padding="max_length"``).
    """

    name = "siglip"
    model_class = SiglipModel

    @staticmethod
    def _scoring(model: PreTrainedModel) -> Scoring:
        scale = float(model.logit_scale.detach().float().exp())
        return Scoring(ScoringRule.sigmoid, scale, float(model.logit_bias.detach().float()))

    @staticmethod
    def _embedding_dim(config: object) -> int:
        return config.vision_config.hidden_size  # type: ignore[attr-defined]

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return dict(
            self.processor(
                text=list(texts),
                return_tensors="pt",
                padding="max_length",
                max_length=self.model.config.text_config.max_position_embeddings,
                truncation=True,
            )
        )


class TransformersSiglip2(TransformersSiglip):
    """``Siglip2Model`` (NaFlex): each image keeps its aspect ratio, as up to
    ``max_num_patches`` patches. Its three inputs (patches, their mask, the patch grid's
    shape) travel packed along the last axis of one tensor, unpacked by the vision tower."""

    name = "siglip2"
    model_class = Siglip2Model
    onnx_exportable = False  # the patch grid's shape drives position-embedding resizing

    def _input_size(self) -> int:
        processor = self.processor.image_processor
        return int(processor.patch_size * math.isqrt(processor.max_num_patches))

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        # the image processor's own patch size and budget (Siglip2Processor's call would
        # put its class defaults, 16 and 256, over a checkpoint's other values)
        inputs = self.processor.image_processor(images=list(images), return_tensors="pt")
        patches = inputs["pixel_values"]
        count, length, _ = patches.shape
        mask = inputs["pixel_attention_mask"].to(patches.dtype)[..., None]
        grid = inputs["spatial_shapes"].to(patches.dtype)[:, None, :].expand(count, length, 2)
        return torch.cat([patches, mask, grid], dim=-1)

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        patches, mask, grid = pixels[..., :-3], pixels[..., -3], pixels[:, 0, -2:]
        return self.model.get_image_features(
            pixel_values=patches,
            pixel_attention_mask=mask.round().long(),
            spatial_shapes=grid.round().long(),
        ).pooler_output

    def working_size(self) -> WorkingSize:
        return WorkingSize(shortest_side=INPUT_MARGIN * self.shape.input_size)

    def image_recipe(self) -> ImageRecipe | None:
        return None  # NaFlex: each picture its own patch grid


FAMILIES: dict[str, type[TransformersClip]] = {
    family.name: family for family in (TransformersClip, TransformersSiglip, TransformersSiglip2)
}


def load_transformers(source: str, dtype: torch.dtype) -> TransformersClip:
    """A CLIP, SigLIP or SigLIP2 from a hub id or a ``save_pretrained`` folder."""
    hf_logging.disable_progress_bar()  # "Loading weights" bars are noise in logs and the CLI
    try:
        model_type = AutoConfig.from_pretrained(source).model_type
        family = FAMILIES.get(model_type)
        if family is None:
            raise ModelLoadError(
                f"{source!r} is a {model_type!r} model; clipq's transformers families are "
                f"{', '.join(FAMILIES)} (other CLIPs: open_clip:…)"
            )
        model = family.model_class.from_pretrained(source, dtype=dtype)
        loader = CLIPProcessor if family is TransformersClip else AutoProcessor
        processor = loader.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load {source!r} with transformers ({exc}); check CLIPQ_CLIP_MODEL, and "
            "for a hub id that the machine can reach the hub or has the model in its cache"
        ) from exc
    folder = Path(source) if Path(source).is_dir() else None
    return family(model.eval(), processor, folder)
