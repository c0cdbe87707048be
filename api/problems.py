"""Rendering every error as RFC 9457 ``application/problem+json``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from clipcore.contracts import FieldError, Problem
from clipcore.errors import ClipqError, InvalidInput, MalformedBody, ServiceUnavailable

PROBLEM_JSON = "application/problem+json"
REDIS_RETRY_AFTER_SECONDS = 5

log = logging.getLogger(__name__)


SEED_PREFIX = "/api/"


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _field_name(location: tuple[str | int, ...]) -> str:
    """('body', 'labels', 3) -> 'labels[3]'; ('query', 'wait') -> 'wait'."""
    parts = [part for part in location if part not in ("body", "query", "path", "header")]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _render(
    request: Request, problem: Problem, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A problem response; the seed's clients also read ``success`` and ``error``."""
    if request.url.path.startswith(SEED_PREFIX):
        problem = problem.model_copy(update={"success": False, "error": problem.detail})
    return problem_response(problem, headers)


async def _clipq_error(request: Request, exc: ClipqError) -> JSONResponse:
    headers = dict(exc.headers)
    if exc.status == 503:
        headers.setdefault("Retry-After", str(REDIS_RETRY_AFTER_SECONDS))
    return _render(request, exc.to_problem(), headers or None)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    if any(error.get("type") == "json_invalid" for error in exc.errors()):
        return _render(request, MalformedBody("the body is not valid JSON").to_problem())
    errors = [
        FieldError(field=_field_name(tuple(error["loc"])), message=error["msg"])
        for error in exc.errors()
    ]
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return _render(request, InvalidInput(detail, errors=errors).to_problem())


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:  # Starlette could not parse the body (multipart, bytes, ...)
        return _render(request, MalformedBody(str(exc.detail)).to_problem())
    problem = Problem(title=_title(exc.status_code), status=exc.status_code, detail=exc.detail)
    return _render(request, problem, getattr(exc, "headers", None))


async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("Redis unreachable: %s", exc)
    error = ServiceUnavailable("the job store (Redis) is unreachable; try again shortly")
    return _render(request, error.to_problem(), {"Retry-After": str(REDIS_RETRY_AFTER_SECONDS)})


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ClipqError, _clipq_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RedisConnectionError, _redis_down)
    app.add_exception_handler(RedisTimeoutError, _redis_down)
