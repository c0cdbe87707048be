"""What one worker process holds for all its tasks: settings, Redis, the loaded models."""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

import redis
import torch
from redis import RedisError

from clipcore.clip_model import ClipCache, ClipLoad, LoadedClip, select_device
from clipcore.detector import load_detector
from clipcore.encode import EmbeddingCache
from clipcore.errors import ModelLoadError
from clipcore.model_card import ModelDescription, describe_clip
from clipcore.vector_index import IndexPolicy
from clipq.metrics import record_batch
from clipq.settings import get_settings
from clipq.store.collections import Collections
from clipq.store.jobs import WorkerStore
from clipq.store.shards import Shard, ShardView
from clipq.store.vector_files import VectorFiles
from worker.collections import CollectionIndexes
from worker.embedding_cache import RedisEmbeddingStore
from worker.source_reader import SourceReader

log = logging.getLogger(__name__)


@cache
def store() -> WorkerStore:
    settings = get_settings()
    return WorkerStore(
        redis.Redis.from_url(settings.redis_url),
        settings.job_ttl_seconds,
        lease_seconds=settings.job_lease_seconds,
        max_attempts=settings.max_attempts,
    )


@cache
def source_reader() -> SourceReader:
    return SourceReader(get_settings())


@cache
def clip_cache() -> ClipCache:
    return ClipCache()


@cache
def text_cache() -> EmbeddingCache:
    return EmbeddingCache(max_entries=128)


@cache
def collections() -> Collections:
    settings = get_settings()
    files = VectorFiles(Path(settings.vector_dir)) if settings.vector_dir else None
    return Collections(redis.Redis.from_url(settings.redis_url), files)


@cache
def indexes() -> CollectionIndexes:
    settings = get_settings()
    policy = IndexPolicy(
        exact_below=settings.index_exact_below,
        nprobe=settings.index_nprobe,
        refine=settings.index_refine,
    )
    folder = Path(settings.index_dir) if settings.index_dir else None
    if settings.worker_shard < 0:
        return CollectionIndexes(collections(), policy, folder)
    shard = Shard(settings.worker_shard, settings.shards, settings.shard_block_rows)
    folder = folder / f"shard-{shard.number}-of-{shard.count}" if folder else None
    return CollectionIndexes(ShardView(collections(), shard), policy, folder)


def image_cache() -> RedisEmbeddingStore:
    settings = get_settings()
    return _image_cache(settings.clip_model, settings.job_ttl_seconds)


@cache
def _image_cache(model: str, ttl: int) -> RedisEmbeddingStore:
    return RedisEmbeddingStore(store().redis, model, ttl)


def observe_batch(images: int, seconds: float) -> None:
    """Count a forward pass in the service metrics (a metrics hiccup never fails a job)."""
    try:
        record_batch(store().redis, images, seconds)
    except RedisError:
        log.warning("could not record batch metrics")


def detector() -> torch.nn.Module:
    settings = get_settings()
    return _detector(settings.resolved_detector_model, settings.device)


@cache
def _detector(spec: str, device: str) -> torch.nn.Module:
    try:
        return load_detector(spec, select_device(device))
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load the detector {spec!r} ({exc}); check CLIPQ_DETECTOR_MODEL"
        ) from exc


def _clip_load() -> ClipLoad:
    """How this process loads its CLIP."""
    settings = get_settings()
    return ClipLoad(
        settings.clip_model,
        settings.device,
        settings.clip_domain_reference,
        settings.clip_runtime,
        settings.onnx_dir,
        settings.device_decode,
    )


def clip() -> LoadedClip:
    settings = get_settings()
    loaded = clip_cache().get(_clip_load())
    if settings.fault_oom_above_batch >= 0:
        _inject_oom(loaded, settings.fault_oom_above_batch)
    return loaded


def description() -> ModelDescription | None:
    """What this process serves, once its CLIP is loaded; None before (a lazy worker's first
    job loads it). :class:`ModelLoadError` when the model's domain.json is broken."""
    load = _clip_load()
    if clip_cache().loaded(load) is None:
        return None
    return _description(load, get_settings().resolved_detector_model)


@cache
def _description(load: ClipLoad, detector_spec: str) -> ModelDescription:
    return describe_clip(clip_cache().get(load), load.spec, detector_spec)


def _inject_oom(loaded: LoadedClip, limit: int) -> None:
    """Testing only: make the vision tower fail as a full GPU does, for batches over ``limit``."""
    tower = loaded.towers or loaded.family  # whichever runs the forward pass
    if getattr(tower, "_clipq_oom_limit", None) == limit:
        return
    real = type(tower).image_features.__get__(tower)

    def image_features(pixels: torch.Tensor) -> torch.Tensor:
        if pixels.shape[0] > limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory (injected: batch over {limit})")
        return real(pixels)

    setattr(tower, "image_features", image_features)  # noqa: B010 - a fault, on purpose
    setattr(tower, "_clipq_oom_limit", limit)  # noqa: B010
