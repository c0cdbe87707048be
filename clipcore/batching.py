"""Embedding uploaded images in batches, with per-image errors and progress.

Decoding and pre-processing of batch *n + 1* run on a helper thread while the
model works on batch *n*, so the device does not wait for Pillow.

Decoded memory is bounded per batch, whatever the uploads unpack to: images are
decoded one at a time, each cut down at once to what the processor needs (its
full-size pixels are gone before the next is decoded), and at most
``max_batch_pixels`` of those working-size pixels wait for the processor at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import torch
from PIL import Image

from clipcore.clip_model import LoadedClip
from clipcore.device_images import decode_on_device, preprocess_on_device
from clipcore.encode import embed_pixels, preprocess_images
from clipcore.errors import ClipqError, DeviceOutOfMemory
from clipcore.images import DEFAULT_BATCH_PIXELS, WorkingSize, decode_reduced, inspect_image
from clipcore.problem import Problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    """One image of a job: the client's filename, its content address and its bytes.

    ``scope`` partitions the embedding cache (the job's tenant): whether an image was seen
    before must never tell one tenant what another uploaded.
    """

    filename: str
    sha256: str
    data: bytes
    scope: str = ""

    @property
    def cache_key(self) -> str:
        return f"{self.scope}:{self.sha256}" if self.scope else self.sha256


@dataclass
class PreparedBatch:
    indices: list[int]  # positions in the job of the images that decoded
    pixel_values: torch.Tensor | None
    errors: dict[int, Problem]
    size: int  # images in the batch, decoded or not


def clip_working_size(clip: LoadedClip) -> WorkingSize:
    """What the model's pre-processing needs of a picture (its family says)."""
    return clip.family.working_size()


def prepare_batch(
    clip: LoadedClip,
    uploads: Sequence[Upload],
    offset: int,
    max_pixels: int,
    max_batch_pixels: int = DEFAULT_BATCH_PIXELS,
) -> PreparedBatch:
    """Decode and pre-process a slice of uploads; undecodable images become problems.

    Each image is cut down to :func:`clip_working_size` as it is decoded (one at a time);
    once the images waiting for the processor would pass ``max_batch_pixels`` they are
    pre-processed and let go before the next joins them. A model that pre-processes on its
    device (:attr:`LoadedClip.device_recipe`) gets the batch decoded and resized there.
    """
    if clip.device_recipe is not None:
        return _prepare_on_device(clip, uploads, offset, max_pixels, max_batch_pixels)
    working = clip_working_size(clip)
    chunks: list[torch.Tensor] = []
    waiting: list[Image.Image] = []
    held = 0
    indices, errors = [], {}
    for position, upload in enumerate(uploads, start=offset):
        try:
            image = decode_reduced(
                upload.data, upload.filename, max_pixels=max_pixels, working=working
            ).image
        except ClipqError as exc:
            errors[position] = exc.to_problem()
            continue
        if waiting and held + image.width * image.height > max_batch_pixels:
            chunks.append(preprocess_images(clip, waiting))
            waiting, held = [], 0
        waiting.append(image)
        held += image.width * image.height
        indices.append(position)
    if waiting:
        chunks.append(preprocess_images(clip, waiting))
    return PreparedBatch(indices, _joined(clip, chunks), errors, len(uploads))


def _prepare_on_device(
    clip: LoadedClip,
    uploads: Sequence[Upload],
    offset: int,
    max_pixels: int,
    max_batch_pixels: int,
) -> PreparedBatch:
    """:func:`prepare_batch` on the device: JPEGs decoded together there, every picture
    resized there, in groups of at most ``max_batch_pixels`` full-size pixels."""
    assert clip.device_recipe is not None
    groups: list[list[int]] = [[]]
    held = 0
    for position, upload in enumerate(uploads):
        try:
            info = inspect_image(upload.data, upload.filename, max_pixels=max_pixels)
            pixels = info.width * info.height
        except ClipqError:
            pixels = 0  # decode_on_device names the problem
        if groups[-1] and held + pixels > max_batch_pixels:
            groups.append([])
            held = 0
        groups[-1].append(position)
        held += pixels
    chunks, indices, errors = [], [], {}
    for group in groups:
        decoded = decode_on_device(
            [uploads[i].data for i in group],
            [uploads[i].filename for i in group],
            clip.device,
            max_pixels,
        )
        pictures = []
        for position, item in zip(group, decoded, strict=True):
            if isinstance(item, Problem):
                errors[offset + position] = item
            else:
                pictures.append(item)
                indices.append(offset + position)
        if pictures:
            chunks.append(preprocess_on_device(pictures, clip.device_recipe, clip.dtype))
    pixels = torch.cat(chunks) if chunks else None
    return PreparedBatch(indices, pixels, errors, len(uploads))


def _joined(clip: LoadedClip, chunks: list[torch.Tensor]) -> torch.Tensor | None:
    if len(chunks) <= 1:
        return chunks[0] if chunks else None
    pixels = torch.cat(chunks)
    # The chunks were pinned for the copy to the device; their concatenation is not.
    return pixels.pin_memory() if clip.device.type == "cuda" else pixels


def _prepared_batches(
    clip: LoadedClip,
    uploads: Sequence[Upload],
    batch_size: int,
    max_pixels: int,
    max_batch_pixels: int,
) -> Iterator[PreparedBatch]:
    starts = range(0, len(uploads), batch_size)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="clipq-decode") as pool:
        pending = None
        for start in starts:
            future = pool.submit(
                prepare_batch,
                clip,
                uploads[start : start + batch_size],
                start,
                max_pixels,
                max_batch_pixels,
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


class EmbeddingStore(Protocol):
    """Image embeddings kept by :attr:`Upload.cache_key`, so a re-submitted image costs no
    forward pass."""

    def get_many(self, keys: Sequence[str]) -> list[torch.Tensor | None]: ...

    def put_many(self, embeddings: dict[str, torch.Tensor]) -> None: ...


class BatchObserver(Protocol):
    def __call__(self, images: int, seconds: float) -> None: ...


def embed_uploads(
    clip: LoadedClip,
    uploads: Sequence[Upload],
    *,
    batch_size: int,
    max_pixels: int,
    max_batch_pixels: int = DEFAULT_BATCH_PIXELS,
    on_progress: Callable[[int], None] = lambda done: None,
    cache: EmbeddingStore | None = None,
    observe: BatchObserver | None = None,
) -> list[torch.Tensor | Problem]:
    """Embed every upload; returns, per upload, a unit embedding or the problem that stopped it.

    Embeddings found in ``cache`` are used as they are; new ones are added to it.
    ``on_progress(done)`` runs after each batch; it may raise (e.g. to cancel the job).
    ``observe(images, seconds)`` is told the size and forward time of each batch.
    ``max_batch_pixels`` bounds the decoded pixels of a batch (see :func:`prepare_batch`).
    """
    results: list[torch.Tensor | Problem | None] = [None] * len(uploads)
    if cache is not None:
        results = list(cache.get_many([upload.cache_key for upload in uploads]))
    todo = [i for i, item in enumerate(results) if item is None]
    done = len(uploads) - len(todo)
    if done:
        on_progress(done)
    fresh: dict[str, torch.Tensor] = {}
    pending = [uploads[i] for i in todo]
    for batch in _prepared_batches(clip, pending, batch_size, max_pixels, max_batch_pixels):
        for position, problem in batch.errors.items():
            results[todo[position]] = problem
        if batch.pixel_values is not None:
            started = time.perf_counter()
            embeddings = embed_fitting(clip, batch.pixel_values)
            if observe is not None:
                observe(len(batch.indices), time.perf_counter() - started)
            for position, item in zip(batch.indices, embeddings, strict=True):
                results[todo[position]] = item
                if isinstance(item, torch.Tensor):
                    fresh[pending[position].cache_key] = item
        done += batch.size
        on_progress(done)
    if cache is not None and fresh:
        cache.put_many(fresh)
    return results  # type: ignore[return-value]


def stack_embedded(embedded: Sequence[torch.Tensor | Problem]) -> tuple[list[int], torch.Tensor]:
    """Positions of the uploads that were embedded, and their embeddings as one matrix."""
    positions = [i for i, item in enumerate(embedded) if not isinstance(item, Problem)]
    if not positions:
        return [], torch.empty(0)
    return positions, torch.stack([embedded[i] for i in positions])  # type: ignore[misc]
