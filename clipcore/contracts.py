"""What the API and the workers agree on: job kinds, statuses, payloads and results.

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

from clipcore.problem import FieldError, Problem
from clipcore.retrieval_models import (
    EvaluatePayload,
    EvaluateResult,
    IngestPayload,
    IngestResult,
    SearchPayload,
    SearchResult,
)
from clipcore.scenes import DatasetSummary, SceneImageResult
from clipcore.taxonomy import Speed, Taxonomy


class JobKind(StrEnum):
    classify = "classify"
    scenes = "scenes"
    ingest = "ingest"
    search = "search"
    evaluate = "evaluate"


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


__all__ = ["FieldError", "Problem"]  # re-exported: part of the contract

FINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


class Progress(BaseModel):
    done: int = 0
    total: int = 0


class ImageRef(BaseModel):
    """An uploaded image: its content address in Redis and the client's filename."""

    sha256: str
    filename: str


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


JobPayload = Annotated[
    ClassifyPayload | ScenesPayload | IngestPayload | SearchPayload | EvaluatePayload,
    Field(discriminator="kind"),
]


# --- results ------------------------------------------------------------------------


class LabelScore(BaseModel):
    label: str
    probability: float


class ClassifiedImage(BaseModel):
    filename: str
    sha256: str
    predictions: list[LabelScore] = Field(
        default_factory=list, description="The top-k labels, most probable first."
    )
    error: Problem | None = Field(
        None, description="Set when this image could not be decoded; the others still count."
    )


class ClassifyResult(BaseModel):
    kind: Literal[JobKind.classify] = JobKind.classify
    model: str = Field(description="The CLIP model that produced the result.")
    images: list[ClassifiedImage]


class TaxonomyRef(BaseModel):
    name: str
    version: str
    hash: str = Field(description="sha256 of the taxonomy's canonical JSON.")


class SceneImage(BaseModel):
    filename: str
    sha256: str
    prediction: SceneImageResult | None = None
    error: Problem | None = Field(
        None, description="Set when this image could not be decoded; the others still count."
    )


class ScenesResult(BaseModel):
    kind: Literal[JobKind.scenes] = JobKind.scenes
    model: str
    taxonomy: TaxonomyRef
    speed: Speed
    images: list[SceneImage]
    summary: DatasetSummary | None = Field(
        None, description="The dataset summary, when two or more images were classified."
    )


JobResult = Annotated[
    ClassifyResult | ScenesResult | IngestResult | SearchResult | EvaluateResult,
    Field(discriminator="kind"),
]


class Job(BaseModel):
    id: str
    kind: JobKind
    status: JobStatus
    progress: Progress
    attempts: int = Field(0, description="How many times a worker started the job.")
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


# --- transport: how the API reaches the workers (by name, never by import) ---------

INFERENCE_QUEUE = "clipq.inference"
WEBHOOK_QUEUE = "clipq.webhooks"  # deliveries never wait behind inference, nor it behind them
WEBHOOK_TASK = "clipq.webhook"
TASK_NAMES: dict[JobKind, str] = {
    JobKind.classify: "clipq.classify",
    JobKind.scenes: "clipq.scenes",
    JobKind.ingest: "clipq.ingest",
    JobKind.search: "clipq.search",
    JobKind.evaluate: "clipq.evaluate",
}
