"""Preparing images for a collection: embedding, region proposals, crop embeddings, thumbnail.

Each upload is decoded at most at the size the detector works at (its longer side
bounded as the detector's own transform bounds it), never at full size for the
whole batch; regions, ``width`` and ``height`` are still given in the upload's pixels.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from clipcore.batching import Upload, clip_working_size
from clipcore.clip_model import LoadedClip
from clipcore.detector import propose_regions
from clipcore.encode import embed_images
from clipcore.errors import ClipqError
from clipcore.images import DEFAULT_BATCH_PIXELS, DecodedImage, WorkingSize, decode_reduced
from clipcore.problem import Problem
from clipcore.rerank import DEFAULT_CONTEXT, crop_regions
from clipcore.schemas import CropBackground, Region

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


def ingest_working_size(
    clip: LoadedClip, detector: torch.nn.Module, crops: bool = True
) -> WorkingSize:
    """The largest picture ingest needs: what the detector (with ``crops``), CLIP and the
    thumbnail read.

    torchvision's detection transform scales every input so that its longer side is at
    most ``max_size`` (256 for the embedded detector, 1,333 for COCO Mask R-CNN); more
    pixels than that would only be thrown away by it.
    """
    clip_side = clip_working_size(clip).shortest_side or 0
    detector_side = detector.transform.max_size if crops else 0
    return WorkingSize(longest_side=max(detector_side, clip_side, THUMBNAIL_SIDE))


def prepare_images(
    clip: LoadedClip,
    detector: torch.nn.Module,
    uploads: Sequence[Upload],
    *,
    crops: CropSettings,
    batch_size: int,
    max_pixels: int,
    max_batch_pixels: int = DEFAULT_BATCH_PIXELS,
    on_progress: Callable[[int], None] = lambda done: None,
) -> list[PreparedImage | Problem]:
    """Decode, detect, crop and embed each upload; an undecodable one becomes its problem.

    Images are decoded one at a time at :func:`ingest_working_size`; once the decoded
    images waiting would pass ``max_batch_pixels`` they are
    detected, cropped, embedded and let go before the next joins them.
    """
    working = ingest_working_size(clip, detector, crops.per_image > 0)
    results: list[PreparedImage | Problem] = []
    for start in range(0, len(uploads), batch_size):
        batch = uploads[start : start + batch_size]
        waiting: list[tuple[Upload, DecodedImage]] = []
        held = 0
        prepared: list[PreparedImage] = []
        problems: dict[int, Problem] = {}
        for offset, upload in enumerate(batch):
            try:
                decoded = decode_reduced(
                    upload.data, upload.filename, max_pixels=max_pixels, working=working
                )
            except ClipqError as exc:
                problems[offset] = exc.to_problem()
                continue
            pixels = decoded.image.width * decoded.image.height
            if waiting and held + pixels > max_batch_pixels:
                prepared += _prepare_decoded(clip, detector, waiting, crops, batch_size)
                waiting, held = [], 0
            waiting.append((upload, decoded))
            held += pixels
        prepared += _prepare_decoded(clip, detector, waiting, crops, batch_size)
        ready = iter(prepared)
        results.extend(problems[i] if i in problems else next(ready) for i in range(len(batch)))
        on_progress(start + len(batch))
    return results


def _prepare_decoded(
    clip: LoadedClip,
    detector: torch.nn.Module,
    decoded: list[tuple[Upload, DecodedImage]],
    crops: CropSettings,
    batch_size: int,
) -> list[PreparedImage]:
    if not decoded:
        return []
    images = [item.image for _, item in decoded]
    # No crops wanted: the detector, the costliest step of an ingest, is not run at all.
    proposals = (
        propose_regions(detector, images, crops.per_image, crops.min_score)
        if crops.per_image
        else [[] for _ in images]
    )
    # CLIP reads less than the detector: its inputs are cut down to its working size as
    # they are made, so that only one image's crops exist at the detector's size at once.
    for_clip = clip_working_size(clip)
    crop_images: list[Image.Image] = []
    for image, regions in zip(images, proposals, strict=True):
        boxes = [region.box for region in regions]
        masks = [region.mask for region in regions]
        crop_images += [
            for_clip.reduce(crop)
            for crop in crop_regions(
                image, boxes, masks, background=crops.background, context=crops.context
            )
        ]
    everything = [for_clip.reduce(image) for image in images] + crop_images
    embeddings = torch.cat(
        [
            embed_images(clip, everything[i : i + batch_size])
            for i in range(0, len(everything), batch_size)
        ]
    )
    image_embeddings, crop_embeddings = embeddings[: len(images)], embeddings[len(images) :]
    prepared, cursor = [], 0
    for (upload, item), regions, embedding in zip(
        decoded, proposals, image_embeddings, strict=True
    ):
        count = len(regions)
        # Boxes come in working-size pixels; the contract is the upload's own pixels.
        sx, sy = item.width / item.image.width, item.height / item.image.height
        prepared.append(
            PreparedImage(
                upload=upload,
                width=item.width,
                height=item.height,
                embedding=embedding,
                crop_embeddings=crop_embeddings[cursor : cursor + count],
                regions=[Region(box=_scaled(r.box, sx, sy), score=r.score) for r in regions],
                thumbnail=thumbnail(item.image),
            )
        )
        cursor += count
    return prepared


def _scaled(box: Sequence[float], sx: float, sy: float) -> list[float]:
    x0, y0, x1, y1 = box
    return [round(x0 * sx, 1), round(y0 * sy, 1), round(x1 * sx, 1), round(y1 * sy, 1)]
