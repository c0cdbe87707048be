"""Preparing images for a collection: embedding, region proposals, crop embeddings, thumbnail."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from clipcore.batching import Upload
from clipcore.clip_model import LoadedClip
from clipcore.detector import propose_regions
from clipcore.encode import embed_images
from clipcore.errors import ClipqError
from clipcore.images import decode_image
from clipcore.problem import Problem
from clipcore.rerank import DEFAULT_CONTEXT, crop_regions
from clipcore.retrieval_models import CropBackground, Region

THUMBNAIL_SIDE = 256


@dataclass
class PreparedImage:
    """What a collection stores of one image."""

    upload: Upload
    width: int
    height: int
    embedding: torch.Tensor  # (dim,), unit
    crop_embeddings: torch.Tensor  # (regions, dim), unit
    regions: list[Region]
    thumbnail: bytes


@dataclass(frozen=True)
class CropSettings:
    per_image: int = 8
    min_score: float = 0.5
    background: CropBackground = CropBackground.keep
    context: float = DEFAULT_CONTEXT


def thumbnail(image: Image.Image, side: int = THUMBNAIL_SIDE) -> bytes:
    """A JPEG whose longer side is at most ``side``."""
    small = image.copy()
    small.thumbnail((side, side))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def prepare_images(
    clip: LoadedClip,
    detector: torch.nn.Module,
    uploads: Sequence[Upload],
    *,
    crops: CropSettings,
    batch_size: int,
    max_pixels: int,
    on_progress: Callable[[int], None] = lambda done: None,
) -> list[PreparedImage | Problem]:
    """Decode, detect, crop and embed each upload; an undecodable one becomes its problem."""
    results: list[PreparedImage | Problem] = []
    for start in range(0, len(uploads), batch_size):
        batch = uploads[start : start + batch_size]
        decoded: list[tuple[Upload, Image.Image]] = []
        problems: dict[int, Problem] = {}
        for offset, upload in enumerate(batch):
            try:
                image = decode_image(upload.data, upload.filename, max_pixels=max_pixels)
                decoded.append((upload, image))
            except ClipqError as exc:
                problems[offset] = exc.to_problem()
        prepared = iter(_prepare_decoded(clip, detector, decoded, crops, batch_size))
        results.extend(problems[i] if i in problems else next(prepared) for i in range(len(batch)))
        on_progress(start + len(batch))
    return results


def _prepare_decoded(
    clip: LoadedClip,
    detector: torch.nn.Module,
    decoded: list[tuple[Upload, Image.Image]],
    crops: CropSettings,
    batch_size: int,
) -> list[PreparedImage]:
    if not decoded:
        return []
    images = [image for _, image in decoded]
    proposals = propose_regions(detector, images, crops.per_image, crops.min_score)
    crop_images: list[Image.Image] = []
    for image, regions in zip(images, proposals, strict=True):
        boxes = [region.box for region in regions]
        masks = [region.mask for region in regions]
        crop_images += crop_regions(
            image, boxes, masks, background=crops.background, context=crops.context
        )
    everything = images + crop_images
    embeddings = torch.cat(
        [
            embed_images(clip, everything[i : i + batch_size])
            for i in range(0, len(everything), batch_size)
        ]
    )
    image_embeddings, crop_embeddings = embeddings[: len(images)], embeddings[len(images) :]
    prepared, cursor = [], 0
    for (upload, image), regions, embedding in zip(
        decoded, proposals, image_embeddings, strict=True
    ):
        count = len(regions)
        prepared.append(
            PreparedImage(
                upload=upload,
                width=image.width,
                height=image.height,
                embedding=embedding,
                crop_embeddings=crop_embeddings[cursor : cursor + count],
                regions=[Region(box=[round(v, 1) for v in r.box], score=r.score) for r in regions],
                thumbnail=thumbnail(image),
            )
        )
        cursor += count
    return prepared
