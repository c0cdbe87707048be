"""Crop-aware reranking: crops around detected objects, and fusing crop and image scores.

A crop is a square around a Mask R-CNN box, ``context`` times the box's longer
side (clipped to the image): a little of the scene around an object helps CLIP
more than a tight box. With ``mask`` the pixels outside the object's mask are
painted grey.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from clipcore.schemas import CropBackground, Fusion

DEFAULT_CONTEXT = 2.0
MASK_GREY = (128, 128, 128)


def context_box(
    box: Sequence[float], width: int, height: int, context: float = DEFAULT_CONTEXT
) -> tuple[int, int, int, int]:
    """A square of ``context`` × the box's longer side around its centre, kept inside the image."""
    x0, y0, x1, y1 = box
    side = min(max(x1 - x0, y1 - y0) * context, width, height)
    side = max(side, 1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = min(max(cx - side / 2, 0), width - side)
    top = min(max(cy - side / 2, 0), height - side)
    return round(left), round(top), round(left + side), round(top + side)


def crop_regions(
    image: Image.Image,
    boxes: Sequence[Sequence[float]],
    masks: Sequence[np.ndarray] | None = None,
    *,
    background: CropBackground = CropBackground.keep,
    context: float = DEFAULT_CONTEXT,
) -> list[Image.Image]:
    """One crop per box; with ``background=mask`` (and masks) everything but the object is grey."""
    crops = []
    for index, box in enumerate(boxes):
        area = context_box(box, image.width, image.height, context)
        if background == CropBackground.mask and masks is not None:
            keep = Image.fromarray(np.asarray(masks[index], dtype=np.uint8) * 255)
            grey = Image.new("RGB", image.size, MASK_GREY)
            crops.append(Image.composite(image, grey, keep).crop(area))
        else:
            crops.append(image.crop(area))
    return crops


def best_crops(
    crop_scores: torch.Tensor, owners: torch.Tensor, n_images: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the best crop score (-inf without crops) and that crop's row (-1 without)."""
    best = torch.full((n_images,), float("-inf"), dtype=crop_scores.dtype)
    rows = torch.full((n_images,), -1, dtype=torch.long)
    if crop_scores.numel() == 0:
        return best, rows
    best = best.scatter_reduce(0, owners, crop_scores, reduce="amax")
    is_best = crop_scores == best[owners]
    rows = rows.scatter(0, owners[is_best], torch.nonzero(is_best).squeeze(1))
    return best, rows


def fuse(
    image_scores: torch.Tensor,
    best_crop_scores: torch.Tensor,
    fusion: Fusion = Fusion.max,
    crop_weight: float = 0.5,
) -> torch.Tensor:
    """Final scores: the image's own where it has no crop; else max or a weighted mean."""
    has_crop = torch.isfinite(best_crop_scores)
    crop = torch.where(has_crop, best_crop_scores, image_scores)
    if fusion == Fusion.max:
        return torch.maximum(image_scores, crop)
    return (1 - crop_weight) * image_scores + crop_weight * crop
