"""``open_clip_torch`` models: LAION and DFN CLIPs, SigLIP ports, MobileCLIP, local fine-tunes.

Loaded with open_clip's own ``create_model_from_pretrained`` and ``get_tokenizer``, so
every name open_clip takes works: ``hf-hub:org/repo``, ``local-dir:/folder`` (what
``open_clip.push_to_hf_hub.save_for_hf`` writes) and ``Architecture`` + pretrained tag.
A model with a ``logit_bias`` (the SigLIP ports) scores by sigmoid, the others by softmax.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

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


class OpenClip(Family):
    name = "open_clip"

    def __init__(
        self,
        model: torch.nn.Module,
        transform: Callable[[Image.Image], torch.Tensor],
        tokenizer: Callable[[list[str]], torch.Tensor],
        folder_name: str,
    ) -> None:
        self.model = model
        self.transform = transform
        self.tokenizer = tokenizer
        size = model.visual.image_size
        side = int(max(size) if isinstance(size, tuple | list) else size)
        bias = getattr(model, "logit_bias", None)
        scale = float(model.logit_scale.detach().float().exp())
        scoring = (
            Scoring(ScoringRule.softmax, scale)
            if bias is None
            else Scoring(ScoringRule.sigmoid, scale, float(bias.detach().float()))
        )
        super().__init__(
            model,
            scoring=scoring,
            shape=ModelShape(
                embedding_dim=_embedding_dim(model, side),
                input_size=side,
                context_length=int(getattr(tokenizer, "context_length", 0) or 0),
            ),
            folder=Path(folder_name) if folder_name else None,
        )

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform(image) for image in images])

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return {"input_ids": self.tokenizer(list(texts))}

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.encode_text(tokens["input_ids"])

    def working_size(self) -> WorkingSize:
        mode = getattr(self.model.visual, "preprocess_cfg", {}).get("resize_mode", "shortest")
        side = INPUT_MARGIN * self.shape.input_size
        if mode == "shortest":  # shorter side resized to the input, then the centre cut
            return WorkingSize(shortest_side=side, max_aspect=ASPECT_MARGIN)
        if mode == "longest":  # longer side resized to the input, then padded
            return WorkingSize(longest_side=side)
        return WorkingSize(shortest_side=side)  # "squash": resized to the square

    def image_recipe(self) -> ImageRecipe | None:
        config = getattr(self.model.visual, "preprocess_cfg", {})
        mode = config.get("resize_mode", "shortest")
        interpolation = config.get("interpolation", "bicubic")
        if mode not in ("shortest", "squash") or interpolation not in ("bicubic", "bilinear"):
            return None
        mean = tuple(config.get("mean") or self.model.visual.image_mean)
        std = tuple(config.get("std") or self.model.visual.image_std)
        size = self.shape.input_size
        return ImageRecipe(size, mode == "shortest", mean, std, interpolation)  # type: ignore[arg-type]


def _embedding_dim(model: torch.nn.Module, side: int) -> int:
    dim = getattr(model.visual, "output_dim", None)
    if isinstance(dim, int) and dim > 0:
        return dim
    with torch.inference_mode():  # a timm tower: its output says
        parameter = next(model.parameters())
        probe = torch.zeros(1, 3, side, side, device=parameter.device, dtype=parameter.dtype)
        return int(model.encode_image(probe).shape[-1])


def load_open_clip(name: str, device: torch.device, dtype: torch.dtype) -> OpenClip:
    """``name`` as open_clip takes it: ``hf-hub:…``, ``local-dir:…`` or ``Arch/tag``."""
    try:
        import open_clip
    except ImportError as exc:  # the worker extra installs it
        raise ModelLoadError(
            "open_clip models need open_clip_torch: pip install 'clipq[worker]'"
        ) from exc
    architecture, _, tag = name.partition("/")
    schema = name.startswith(("hf-hub:", "local-dir:"))
    precision = "fp16" if dtype == torch.float16 else "fp32"
    try:
        model, transform = open_clip.create_model_from_pretrained(
            name if schema else architecture,
            pretrained=None if schema else tag,
            precision=precision,
            device=device,
        )
        tokenizer = open_clip.get_tokenizer(name if schema else architecture)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise ModelLoadError(
            f"cannot load open_clip:{name} ({exc}); check CLIPQ_CLIP_MODEL, and for a hub "
            "id that the machine can reach the hub or has the model in its cache"
        ) from exc
    folder = name.removeprefix("local-dir:") if name.startswith("local-dir:") else ""
    return OpenClip(model.eval(), transform, tokenizer, folder)
