"""One error hierarchy for all of clipq.

Each class carries the HTTP status and the RFC 9457 problem ``type`` it maps
to, so the core can raise plain domain errors and the API renders them in one
place. Nothing here knows about FastAPI.
"""

from __future__ import annotations

from typing import ClassVar, Self

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


class InvalidInput(ClipqError):
    status = 422
    slug = "invalid-input"
    title = "Invalid input"

    @classmethod
    def for_field(cls, field: str, message: str) -> Self:
        return cls(f"{field}: {message}", errors=[FieldError(field=field, message=message)])


class InvalidImage(InvalidInput):
    slug = "invalid-image"
    title = "Invalid image"

    def __init__(self, filename: str, message: str, *, field: str = "images") -> None:
        detail = f"{filename}: {message}"
        super().__init__(detail, errors=[FieldError(field=field, message=detail)])
        self.filename = filename


class DeviceOutOfMemory(ClipqError):
    status = 507
    slug = "device-out-of-memory"
    title = "Out of device memory"


class ModelLoadError(ClipqError):
    status = 503
    slug = "model-unavailable"
    title = "Model could not be loaded"
