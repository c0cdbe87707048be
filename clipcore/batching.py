"""Embedding uploaded images in batches, with per-image errors and progress.

Decoding and pre-processing of batch *n + 1* run on a helper thread while the
model works on batch *n*, so the device does not wait for Pillow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from clipcore.clip_model import LoadedClip
from clipcore.contracts import Problem
from clipcore.encode import embed_pixels, preprocess_images
from clipcore.errors import ClipqError, DeviceOutOfMemory
from clipcore.images import decode_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    """One image of a job: the client's filename, its content address and its bytes."""

    filename: str
    sha256: str
    data: bytes


@dataclass
class PreparedBatch:
    indices: list[int]  # positions in the job of the images that decoded
    pixel_values: torch.Tensor | None
    errors: dict[int, Problem]
    size: int  # images in the batch, decoded or not


def prepare_batch(
    clip: LoadedClip, uploads: Sequence[Upload], offset: int, max_pixels: int
) -> PreparedBatch:
    """Decode and pre-process a slice of uploads; undecodable images become problems."""
    images, indices, errors = [], [], {}
    for position, upload in enumerate(uploads, start=offset):
        try:
            images.append(decode_image(upload.data, upload.filename, max_pixels=max_pixels))
            indices.append(position)
        except ClipqError as exc:
            errors[position] = exc.to_problem()
    pixels = preprocess_images(clip, images) if images else None
    return PreparedBatch(indices, pixels, errors, len(uploads))


def _prepared_batches(
    clip: LoadedClip, uploads: Sequence[Upload], batch_size: int, max_pixels: int
) -> Iterator[PreparedBatch]:
    starts = range(0, len(uploads), batch_size)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="clipq-decode") as pool:
        pending = None
        for start in starts:
            future = pool.submit(
                prepare_batch, clip, uploads[start : start + batch_size], start, max_pixels
            )
            if pending is not None:
                yield pending.result()
            pending = future
        if pending is not None:
            yield pending.result()


def embed_fitting(clip: LoadedClip, pixel_values: torch.Tensor) -> list[torch.Tensor | Problem]:
    """Embed a batch; out of device memory, halve it and retry, down to single images.

    An image that does not fit even alone gets a problem; the rest are embedded.
    """
    try:
        return list(embed_pixels(clip, pixel_values))
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if len(pixel_values) == 1:
            error = DeviceOutOfMemory("the image does not fit in the device's memory")
            return [error.to_problem()]
        log.warning("out of device memory at batch %d; halving", len(pixel_values))
        half = len(pixel_values) // 2
        return embed_fitting(clip, pixel_values[:half]) + embed_fitting(clip, pixel_values[half:])


def embed_uploads(
    clip: LoadedClip,
    uploads: Sequence[Upload],
    *,
    batch_size: int,
    max_pixels: int,
    on_progress: Callable[[int], None] = lambda done: None,
) -> list[torch.Tensor | Problem]:
    """Embed every upload; returns, per upload, a unit embedding or the problem that stopped it.

    ``on_progress(done)`` runs after each batch; it may raise (e.g. to cancel the job).
    """
    results: list[torch.Tensor | Problem] = [Problem(title="not processed", status=500)] * len(
        uploads
    )
    done = 0
    for batch in _prepared_batches(clip, uploads, batch_size, max_pixels):
        for position, problem in batch.errors.items():
            results[position] = problem
        if batch.pixel_values is not None:
            embeddings = embed_fitting(clip, batch.pixel_values)
            for position, item in zip(batch.indices, embeddings, strict=True):
                results[position] = item
        done += batch.size
        on_progress(done)
    return results


def stack_embedded(embedded: Sequence[torch.Tensor | Problem]) -> tuple[list[int], torch.Tensor]:
    """Positions of the uploads that were embedded, and their embeddings as one matrix."""
    positions = [i for i, item in enumerate(embedded) if not isinstance(item, Problem)]
    if not positions:
        return [], torch.empty(0)
    return positions, torch.stack([embedded[i] for i in positions])  # type: ignore[misc]
