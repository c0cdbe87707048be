"""Plan jobs: of uploaded images, or of a collection's (its stored embeddings and thumbnails)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from clipcore.batching import BatchObserver, EmbeddingStore, Upload
from clipcore.clip_model import LoadedClip
from clipcore.encode import EmbeddingCache
from clipcore.errors import InvalidInput
from clipcore.plans.hygiene import measure_thumbnail
from clipcore.plans.plan import Plan, PlanOptions, plan_embedded, plan_uploads
from clipcore.scene_classifier import cached_scene_embeddings, scenes_from_embedded
from clipcore.taxonomy import load_default_taxonomy
from clipq.contracts.jobs import ImageRef, PlanPayload, PlanResult
from clipq.errors import Conflict
from clipq.settings import Settings
from clipq.store.collections import Collections
from worker.collections import require_collection


def options_of(payload: PlanPayload, settings: Settings) -> PlanOptions:
    return PlanOptions(
        taxonomy=payload.taxonomy or load_default_taxonomy(),
        speed=payload.speed,
        strategy=payload.strategy,
        pairs_per_image=payload.pairs_per_image,
        window=payload.window,
        thresholds=settings.plan_thresholds,
        min_confidence=settings.scene_min_confidence,
        min_margin=settings.scene_min_margin,
    )


def plan(
    job_id: str,
    payload: PlanPayload,
    clip: LoadedClip,
    cache: EmbeddingCache,
    uploads_of: Callable[[Sequence[ImageRef]], list[Upload]],
    collections: Callable[[], Collections],
    progress: Callable[[int], None],
    settings: Settings,
    image_cache: EmbeddingStore | None = None,
    observe: BatchObserver | None = None,
) -> PlanResult:
    """The job's plan, of its uploads or of its collection."""
    options = options_of(payload, settings)
    if payload.collection_id:
        made = collection_plan(collections(), clip, cache, payload.collection_id, options, settings)
        progress(len(made.scenes.images))
    else:
        made = plan_uploads(
            clip,
            cache,
            uploads_of(payload.images),
            options,
            batch_size=settings.batch_size,
            max_pixels=settings.max_image_pixels,
            max_batch_pixels=settings.max_batch_pixels,
            on_progress=progress,
            image_cache=image_cache,
            observe=observe,
        )
    return PlanResult(
        **dict(made.scenes),
        shortlist=made.shortlist,
        hygiene=made.hygiene,
        collection_id=payload.collection_id,
        bundle_url=f"/v1/plans/{job_id}/bundle",
    )


def collection_plan(
    store: Collections,
    clip: LoadedClip,
    cache: EmbeddingCache,
    collection_id: str,
    options: PlanOptions,
    settings: Settings,
) -> Plan:
    """A collection's plan from what it keeps: embeddings, sizes, thumbnails (no re-embedding,
    no full pictures: sharpness and EXIF are not known)."""
    require_collection(store, collection_id, settings.clip_model)
    counts = store.counts(collection_id)
    if counts is None:
        raise InvalidInput.for_field("collection_id", f"collection {collection_id!r} is gone")
    _, count, _, dim = counts
    if count < 2:
        raise InvalidInput.for_field("collection_id", "a plan needs two or more images")
    ids = store.image_ids(collection_id, 0, count)
    found = store.images(collection_id, ids)
    images = [image for image in found if image is not None]
    if len(images) != count:
        raise Conflict(f"collection {collection_id} changed while it was read; try again")
    names = [image.filename for image in images]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidInput.for_field(
            "collection_id",
            f"file names {', '.join(map(repr, repeated[:5]))} occur more than once in the "
            "collection; a plan names images by file name",
        )
    vectors = store.read_rows(collection_id, "emb", 0, count, dim).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    thumbnails = store.thumbnails(collection_id, ids)
    measured = [
        measure_thumbnail(image.filename, data, image.width, image.height)
        for image, data in zip(images, thumbnails, strict=True)
    ]
    uploads = [Upload(image.filename, image.sha256, b"", "") for image in images]
    scenes = scenes_from_embedded(
        clip,
        uploads,
        list(torch.from_numpy(vectors).to(clip.device, clip.dtype)),
        cached_scene_embeddings(cache, clip, options.taxonomy),
        taxonomy=options.taxonomy,
        speed=options.speed,
        min_confidence=options.min_confidence,
        min_margin=options.min_margin,
    )
    return plan_embedded(scenes, names, vectors, measured, options)
