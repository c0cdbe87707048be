"""What one worker process holds for all its tasks: settings, Redis, the loaded models."""

from __future__ import annotations

from functools import cache

import redis
import torch

from api.collection_store import Collections
from api.store import WorkerStore
from clipcore.clip_model import ClipCache, LoadedClip, select_device
from clipcore.detector import load_detector
from clipcore.encode import EmbeddingCache
from clipcore.errors import ModelLoadError
from clipcore.settings import get_settings
from worker.collections import CollectionIndexes


@cache
def store() -> WorkerStore:
    settings = get_settings()
    return WorkerStore(redis.Redis.from_url(settings.redis_url), settings.job_ttl_seconds)


@cache
def clip_cache() -> ClipCache:
    return ClipCache()


@cache
def text_cache() -> EmbeddingCache:
    return EmbeddingCache(max_entries=128)


@cache
def collections() -> Collections:
    return Collections(redis.Redis.from_url(get_settings().redis_url))


@cache
def indexes() -> CollectionIndexes:
    return CollectionIndexes(collections())


def detector() -> torch.nn.Module:
    settings = get_settings()
    return _detector(settings.detector_model, settings.device)


@cache
def _detector(spec: str, device: str) -> torch.nn.Module:
    try:
        return load_detector(spec, select_device(device))
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load the detector {spec!r} ({exc}); check CLIPQ_DETECTOR_MODEL"
        ) from exc


def clip() -> LoadedClip:
    settings = get_settings()
    return clip_cache().get(settings.clip_model, settings.device)
