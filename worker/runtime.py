"""What one worker process holds for all its tasks: settings, Redis, the loaded models."""

from __future__ import annotations

from functools import cache

import redis

from api.store import WorkerStore
from clipcore.clip_model import ClipCache, LoadedClip
from clipcore.encode import EmbeddingCache
from clipcore.settings import get_settings


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


def clip() -> LoadedClip:
    settings = get_settings()
    return clip_cache().get(settings.clip_model, settings.device)
