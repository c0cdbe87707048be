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

from pydantic import BaseModel, ConfigDict, Field


class JobKind(StrEnum):
    classify = "classify"


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


class Problem(BaseModel):
    """An RFC 9457 problem: the error body of every 4xx/5xx and of a failed job or image."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = Field(
        None, description="For validation problems: which field or file was wrong, and why."
    )


class FieldError(BaseModel):
    field: str = Field(description="The request field (or 'images[2]' / a filename) at fault.")
    message: str


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


JobPayload = ClassifyPayload


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


JobResult = Annotated[ClassifyResult, Field(discriminator="kind")]


class Job(BaseModel):
    id: str
    kind: JobKind
    status: JobStatus
    progress: Progress
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: JobResult | None = None
    error: Problem | None = None


def result_from_json(data: str | bytes | dict[str, Any]) -> JobResult:
    """Parse a stored result document into its typed model."""
    from pydantic import TypeAdapter

    adapter: TypeAdapter[JobResult] = TypeAdapter(JobResult)
    if isinstance(data, dict):
        return adapter.validate_python(data)
    return adapter.validate_json(data)


# --- transport: how the API reaches the workers (by name, never by import) ---------

INFERENCE_QUEUE = "clipq.inference"
TASK_NAMES: dict[JobKind, str] = {JobKind.classify: "clipq.classify"}
