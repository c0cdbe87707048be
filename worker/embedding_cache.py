"""Image embeddings by (model, tenant, sha256) in Redis, shared by every worker.

Keyed by :attr:`clipcore.batching.Upload.cache_key`, which includes the job's
tenant: a hit is never the trace of another tenant's upload. Stored in float32
(not fp16) so that a cached answer equals a fresh one; they expire with the uploads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import redis
import torch


class RedisEmbeddingStore:
    def __init__(self, client: redis.Redis, model_id: str, ttl_seconds: int) -> None:
        self.redis = client
        self.prefix = f"clipq:emb:{hashlib.sha256(model_id.encode()).hexdigest()[:12]}:"
        self.ttl = ttl_seconds

    def get_many(self, keys: Sequence[str]) -> list[torch.Tensor | None]:
        if not keys:
            return []
        found = self.redis.mget([self.prefix + key for key in keys])
        return [
            torch.from_numpy(np.frombuffer(data, dtype=np.float32).copy())
            if isinstance(data, bytes)
            else None
            for data in found
        ]

    def put_many(self, embeddings: dict[str, torch.Tensor]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for key, embedding in embeddings.items():
            data = embedding.detach().to(torch.float32).cpu().numpy().tobytes()
            pipe.set(self.prefix + key, data, ex=self.ttl)
        pipe.execute()
