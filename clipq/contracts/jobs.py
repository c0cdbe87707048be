"""Jobs: kinds, statuses, payloads and typed results.

Pydantic only — the API imports this module and must never pull in torch.
The job *record* in Redis is built from these models; the HTTP response for a
job is :class:`Job`, whose ``result`` is typed per job kind so that generated
OpenAPI clients get real classes.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from clipcore.plans.schemas import HygieneReport, PairShortlist, ShortlistStrategy
from clipcore.problem import FieldError, Problem
from clipcore.schemas import ClassifiedImage, SceneBatch
from clipcore.taxonomy import Speed, Taxonomy
from clipq.contracts.collections import (
    EvaluatePayload,
    EvaluateResult,
    ImageRef,
    ImportPayload,
    ImportResult,
    IngestPayload,
    IngestResult,
    SearchPayload,
    SearchResult,
)
from clipq.contracts.sources import (
    SourceImportPayload,
    SourceImportResult,
    SourceShardPayload,
    SourceShardResult,
)


class JobKind(StrEnum):
    classify = "classify"
    scenes = "scenes"
    ingest = "ingest"
    search = "search"
    evaluate = "evaluate"
    bulk_import = "import"  # precomputed embeddings
    plan = "plan"  # a reconstruction plan
    source_import = "source_import"  # images read by reference (split into shard jobs)
    source_shard = "source_shard"  # one shard of a source import


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


__all__ = ["FieldError", "ImageRef", "Problem"]  # re-exported: part of the contract

FINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


class Progress(BaseModel):
    done: int = 0
    total: int = 0


# --- payloads: what a task needs besides the image bytes ----------------------------


class ClassifyPayload(BaseModel):
    kind: Literal[JobKind.classify] = JobKind.classify
    images: list[ImageRef]
    labels: list[str]
    prompt_template: str
    top_k: int


class ScenesPayload(BaseModel):
    kind: Literal[JobKind.scenes] = JobKind.scenes
    images: list[ImageRef]
    speed: Speed = Speed.balanced
    taxonomy: Taxonomy | None = Field(None, description="None: the shipped default taxonomy.")


class PlanPayload(BaseModel):
    kind: Literal[JobKind.plan] = JobKind.plan
    images: list[ImageRef] = Field(default_factory=list, description="Uploaded images, or:")
    collection_id: str | None = Field(None, description="A collection's images instead.")
    speed: Speed = Speed.balanced
    taxonomy: Taxonomy | None = None
    strategy: ShortlistStrategy = ShortlistStrategy.retrieval
    pairs_per_image: int = Field(description="k of the nearest-neighbour shortlist.")
    window: int = Field(description="The sequential window (strategies with 'sequential').")


JobPayload = Annotated[
    ClassifyPayload
    | ScenesPayload
    | PlanPayload
    | IngestPayload
    | SearchPayload
    | EvaluatePayload
    | ImportPayload
    | SourceImportPayload
    | SourceShardPayload,
    Field(discriminator="kind"),
]


# --- results ------------------------------------------------------------------------


class ClassifyResult(BaseModel):
    kind: Literal[JobKind.classify] = JobKind.classify
    model: str = Field(description="The CLIP model that produced the result.")
    images: list[ClassifiedImage]


class ScenesResult(SceneBatch):
    kind: Literal[JobKind.scenes] = JobKind.scenes

    @classmethod
    def of(cls, batch: SceneBatch) -> ScenesResult:
        return cls(**dict(batch))


class PlanResult(SceneBatch):
    """The scene analysis with the overall matcher, which pairs to match, the dataset's
    hygiene, and where to download the ready-to-run bundle."""

    kind: Literal[JobKind.plan] = JobKind.plan
    shortlist: PairShortlist
    hygiene: HygieneReport
    collection_id: str | None = None
    bundle_url: str = Field(description="GET it for the plan's archive (zip).")


JobResult = Annotated[
    ClassifyResult
    | ScenesResult
    | PlanResult
    | IngestResult
    | SearchResult
    | EvaluateResult
    | ImportResult
    | SourceImportResult
    | SourceShardResult,
    Field(discriminator="kind"),
]


class Job(BaseModel):
    id: str
    kind: JobKind
    status: JobStatus
    progress: Progress
    attempts: int = Field(0, description="How many times a worker started the job.")
    model: str | None = Field(
        None,
        description="The model the job runs on (the request's 'model', the collection's, or "
        "the deployment's default); null for jobs queued before models were named.",
    )
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: JobResult | None = None
    error: Problem | None = None


def result_from_json(data: str | bytes | dict[str, Any]) -> JobResult:
    """Parse a stored result document into its typed model."""
    if isinstance(data, dict):
        return _RESULT.validate_python(data)
    return _RESULT.validate_json(data)


def payload_from_json(data: str | bytes) -> JobPayload:
    return _PAYLOAD.validate_json(data)


_RESULT: TypeAdapter[JobResult] = TypeAdapter(JobResult)
_PAYLOAD: TypeAdapter[JobPayload] = TypeAdapter(JobPayload)
