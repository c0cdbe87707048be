"""One error hierarchy for all of clipq.

Each class carries the HTTP status and the RFC 9457 problem ``type`` it maps
to, so the core can raise plain domain errors and the API renders them in one
place. Nothing here knows about FastAPI.
"""

from __future__ import annotations

from typing import ClassVar

from clipcore.problem import FieldError, Problem

PROBLEM_BASE = "/problems/"


class ClipqError(Exception):
    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}  # e.g. Retry-After; used when rendered as HTTP

    @classmethod
    def problem_type(cls) -> str:
        return PROBLEM_BASE + cls.slug

    def to_problem(self) -> Problem:
        return Problem(
            type=self.problem_type(),
            title=self.title,
            status=self.status,
            detail=self.detail,
            errors=self.errors,
        )


class MalformedBody(ClipqError):
    status = 400
    slug = "malformed-body"
    title = "Malformed request body"


class InvalidInput(ClipqError):
    status = 422
    slug = "invalid-input"
    title = "Invalid input"

    @classmethod
    def for_field(cls, field: str, message: str) -> InvalidInput:
        return cls(f"{field}: {message}", errors=[FieldError(field=field, message=message)])


class InvalidImage(InvalidInput):
    slug = "invalid-image"
    title = "Invalid image"

    def __init__(self, filename: str, message: str, *, field: str = "images") -> None:
        detail = f"{filename}: {message}"
        super().__init__(detail, errors=[FieldError(field=field, message=detail)])
        self.filename = filename


class PayloadTooLarge(ClipqError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(ClipqError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class Unauthorized(ClipqError):
    status = 401
    slug = "unauthorized"
    title = "Unauthorized"


class TooManyRequests(ClipqError):
    status = 429
    slug = "too-many-requests"
    title = "Too many requests"


class QuotaExceeded(ClipqError):
    """The tenant holds all it may (collections, stored images): it must delete some first."""

    status = 403
    slug = "quota-exceeded"
    title = "Quota exceeded"


class NotFound(ClipqError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(ClipqError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class DeviceOutOfMemory(ClipqError):
    status = 507
    slug = "device-out-of-memory"
    title = "Out of device memory"


class ServiceUnavailable(ClipqError):
    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"


class StoreOutOfMemory(ClipqError):
    """Redis refused a write: it is at its ``maxmemory``. Nothing of the request was kept."""

    status = 507
    slug = "store-out-of-memory"
    title = "Job store out of memory"

    def __init__(
        self,
        detail: str = "the job store (Redis) is out of memory; nothing of this request was "
        "kept; try again later",
    ) -> None:
        super().__init__(detail)


class JobCancelled(ClipqError):
    """Raised inside a running job when its record says it was cancelled."""

    status = 409
    slug = "job-cancelled"
    title = "Job cancelled"


class JobTimeout(ClipqError):
    status = 504
    slug = "job-timeout"
    title = "Job took too long"


class ModelLoadError(ClipqError):
    status = 503
    slug = "model-unavailable"
    title = "Model could not be loaded"


class RelayedProblem(ClipqError):
    """Passes on a problem reported elsewhere: a job's own, or a service's answer to a client."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail or problem.title)
        self.problem = problem

    def to_problem(self) -> Problem:
        return self.problem
