"""Encoding in three steps: pre-processing (CPU), the forward pass (device), and
normalisation. Keeping them apart is what lets callers batch and overlap them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager

import torch
from PIL import Image

from clipcore.clip_model import LoadedClip


def preprocess_images(clip: LoadedClip, images: Sequence[Image.Image]) -> torch.Tensor:
    """Resize, crop and normalise RGB images into a CPU ``pixel_values`` batch.

    For a GPU the batch is in pinned (page-locked) memory, so that its copy to the device
    is a fast DMA that ``non_blocking`` can overlap.
    """
    with _own_thread_only(clip):
        pixels = clip.family.preprocess(images)
    return pixels.pin_memory() if clip.device.type == "cuda" else pixels


@contextmanager
def _own_thread_only(clip: LoadedClip) -> Iterator[None]:
    """On a helper thread beside a CPU model, run the processor's torch ops on that thread.

    The image processor resizes and normalises with torch ops, which start a team of
    intra-op threads as large as the CPU. Beside a forward pass that already uses every
    core, the two teams oversubscribe the CPU and both stall at their barriers: on 2 cores,
    30 ms per image instead of 0.6 ms. One thread is plenty for the processor. (On a GPU
    the forward pass leaves the cores free, so the processor keeps them.) The thread count
    is the calling thread's own (OpenMP), and is put back after.
    """
    if clip.device.type != "cpu" or threading.current_thread() is threading.main_thread():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def tokenize(clip: LoadedClip, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    return clip.family.tokenize(texts)


@torch.inference_mode()
def embed_pixels(clip: LoadedClip, pixel_values: torch.Tensor) -> torch.Tensor:
    """Forward a pre-processed batch; returns L2-normalised float32 embeddings on the CPU."""
    if clip.towers is not None:
        return _normalise(clip.towers.image_features(pixel_values))
    pixels = pixel_values.to(clip.device, dtype=clip.dtype, non_blocking=True)
    return _normalise(clip.family.image_features(pixels))


@torch.inference_mode()
def embed_texts(clip: LoadedClip, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Embed texts; returns L2-normalised float32 embeddings (len(texts), dim) on the CPU."""
    chunks = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenize(clip, texts[start : start + batch_size])
        if clip.towers is not None:
            chunks.append(_normalise(clip.towers.text_features(tokens)))
            continue
        tokens = {name: tensor.to(clip.device) for name, tensor in tokens.items()}
        chunks.append(_normalise(clip.family.text_features(tokens)))
    return torch.cat(chunks)


def embed_images(clip: LoadedClip, images: Sequence[Image.Image]) -> torch.Tensor:
    return embed_pixels(clip, preprocess_images(clip, images))


def _normalise(features: torch.Tensor) -> torch.Tensor:
    features = features.float()
    return (features / features.norm(dim=-1, keepdim=True)).cpu()


class EmbeddingCache:
    """A small thread-safe LRU of tensors, e.g. the text embeddings of label sets.

    Label sets repeat across jobs (the same client sends the same labels), and
    embedding 1,000 prompts costs far more than one image batch.
    """

    def __init__(self, max_entries: int = 64) -> None:
        self._entries: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: Hashable, compute) -> torch.Tensor:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
        value = compute()
        with self._lock:
            self.misses += 1
            self._entries[key] = value
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return value
