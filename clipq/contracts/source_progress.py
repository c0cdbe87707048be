"""What ``GET /v1/collections/{id}/imports/{job_id}`` answers: an import and its shards."""

from __future__ import annotations

from pydantic import BaseModel, Field

from clipcore.problem import Problem
from clipq.contracts.jobs import Job, JobStatus
from clipq.contracts.sources import SourceShardResult


class ShardProgress(BaseModel):
    shard: int
    name: str
    job_id: str
    status: JobStatus
    done: int = Field(description="Samples read so far.")
    attempts: int
    result: SourceShardResult | None = None
    error: Problem | None = None


class SourceImportProgress(BaseModel):
    """An import and each of its shards (none until a worker has split it)."""

    job: Job
    collection_id: str
    total_shards: int
    shards: list[ShardProgress]
