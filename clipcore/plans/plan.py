"""A reconstruction plan from a dataset's uploads: scenes, hygiene, then the pair shortlist.

The images are embedded once (through the embedding cache, as scene jobs do); the same
embeddings classify the scenes, propose near-duplicates and shortlist the pairs. Images
hygiene suggests dropping take part in no pair.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clipcore.batching import BatchObserver, EmbeddingStore, Upload, embed_uploads
from clipcore.clip_model import LoadedClip, load_clip
from clipcore.encode import EmbeddingCache
from clipcore.images import DEFAULT_BATCH_PIXELS
from clipcore.plans.hygiene import Measured, judge, measure_image, unreadable
from clipcore.plans.schemas import (
    Action,
    HygieneReport,
    HygieneThresholds,
    PairShortlist,
    ShortlistStrategy,
)
from clipcore.plans.shortlist import pair_shortlist
from clipcore.scene_classifier import cached_scene_embeddings, scenes_from_embedded
from clipcore.schemas import SceneBatch
from clipcore.taxonomy import Speed, Taxonomy

# Chosen from clipcore.lab.plan_eval's measurements (README, "Plans").
DEFAULT_PAIRS_PER_IMAGE = 30
DEFAULT_WINDOW = 20


@dataclass(frozen=True)
class PlanOptions:
    taxonomy: Taxonomy
    speed: Speed = Speed.balanced
    strategy: ShortlistStrategy = ShortlistStrategy.retrieval
    pairs_per_image: int = DEFAULT_PAIRS_PER_IMAGE
    window: int = DEFAULT_WINDOW
    thresholds: HygieneThresholds | None = None
    min_confidence: float = 0.5
    min_margin: float = 0.1


@dataclass(frozen=True)
class Plan:
    scenes: SceneBatch
    shortlist: PairShortlist
    hygiene: HygieneReport


def plan_uploads(
    clip: LoadedClip,
    cache: EmbeddingCache,
    uploads: Sequence[Upload],
    options: PlanOptions,
    *,
    batch_size: int,
    max_pixels: int,
    max_batch_pixels: int = DEFAULT_BATCH_PIXELS,
    on_progress: Callable[[int], None] = lambda done: None,
    image_cache: EmbeddingStore | None = None,
    observe: BatchObserver | None = None,
) -> Plan:
    """The plan of ``uploads``; ``on_progress`` counts embedded images."""
    embedded = embed_uploads(
        clip,
        uploads,
        batch_size=batch_size,
        max_pixels=max_pixels,
        max_batch_pixels=max_batch_pixels,
        on_progress=on_progress,
        cache=image_cache,
        observe=observe,
    )
    scenes = scenes_from_embedded(
        clip,
        uploads,
        embedded,
        cached_scene_embeddings(cache, clip, options.taxonomy),
        taxonomy=options.taxonomy,
        speed=options.speed,
        min_confidence=options.min_confidence,
        min_margin=options.min_margin,
    )
    embeddings = np.zeros((len(uploads), clip.embedding_dim), dtype=np.float32)
    for row, item in enumerate(embedded):
        if isinstance(item, torch.Tensor):
            embeddings[row] = item.float().cpu().numpy()
    measured = [
        measure_image(upload.filename, upload.data)
        if isinstance(item, torch.Tensor)
        else unreadable(upload.filename, item.detail or item.title)
        for upload, item in zip(uploads, embedded, strict=True)
    ]
    names = [upload.filename for upload in uploads]
    return plan_embedded(scenes, names, embeddings, measured, options)


def plan_embedded(
    scenes: SceneBatch,
    names: Sequence[str],
    embeddings: np.ndarray,
    measured: Sequence[Measured],
    options: PlanOptions,
) -> Plan:
    """Hygiene and shortlist once the images are embedded and measured."""
    hygiene = judge(measured, embeddings, options.thresholds)
    dropped = {i for i, image in enumerate(hygiene.images) if image.action == Action.drop}
    shortlist = pair_shortlist(
        embeddings,
        names,
        strategy=options.strategy,
        pairs_per_image=options.pairs_per_image,
        window=options.window,
        exclude=dropped,
    )
    return Plan(scenes, shortlist, hygiene)


def plan_paths(
    paths: Sequence[Path],
    options: PlanOptions,
    *,
    model: str,
    device: str,
    batch_size: int,
    max_pixels: int,
    on_progress: Callable[[int], None] = lambda done: None,
) -> Plan:
    """The plan of image files, in-process (``clipq plan`` without ``--server``)."""
    uploads = []
    for path in paths:
        data = path.read_bytes()
        uploads.append(Upload(path.name, hashlib.sha256(data).hexdigest(), data, "local"))
    clip = load_clip(model, device)
    return plan_uploads(
        clip,
        EmbeddingCache(),
        uploads,
        options,
        batch_size=batch_size,
        max_pixels=max_pixels,
        on_progress=on_progress,
    )
