"""The service's errors: each carries its HTTP status and problem type, like clipcore's own.

One hierarchy: everything here derives from :class:`clipcore.errors.ClipqError`, so the API
renders a domain error from the ML core and a service error in the same place.
"""

from __future__ import annotations

from clipcore.errors import ClipqError
from clipcore.problem import Problem


class MalformedBody(ClipqError):
    status = 400
    slug = "malformed-body"
    title = "Malformed request body"


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


class SourceUnreadable(ClipqError):
    """A by-reference source (a shard, a file, a URL) that could not be read as it was named:
    missing, refused by its server, too large, too slow, or not a tar."""

    status = 422
    slug = "source-unreadable"
    title = "Source unreadable"


class Conflict(ClipqError):
    status = 409
    slug = "conflict"
    title = "Conflict"


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


class RelayedProblem(ClipqError):
    """Passes on a problem reported elsewhere: a job's own, or a service's answer to a client."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail or problem.title)
        self.problem = problem

    def to_problem(self) -> Problem:
        return self.problem


def internal_error() -> Problem:
    """A bug or a broken model, not the client's fault; the details are in the log."""
    return Problem(
        type="/problems/internal-error",
        title="Internal error",
        status=500,
        detail="the worker hit an unexpected error; it has been logged",
    )
