"""Rendering every error as RFC 9457 ``application/problem+json``."""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, OutOfMemoryError, RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from clipcore.errors import ClipqError, InvalidInput
from clipcore.problem import FieldError, Problem
from clipq.errors import MalformedBody, ServiceUnavailable, StoreOutOfMemory

PROBLEM_JSON = "application/problem+json"
REDIS_RETRY_AFTER_SECONDS = 5
STORE_FULL_RETRY_SECONDS = 30

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


async def _clipq_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ClipqError)  # Starlette types handlers loosely
    headers = dict(exc.headers)
    if exc.status == 503:
        headers.setdefault("Retry-After", str(REDIS_RETRY_AFTER_SECONDS))
    if exc.status == 507:
        headers.setdefault("Retry-After", str(STORE_FULL_RETRY_SECONDS))
    return _render(request, exc.to_problem(), headers or None)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # Starlette types handlers loosely
    if any(error.get("type") == "json_invalid" for error in exc.errors()):
        return _render(request, MalformedBody("the body is not valid JSON").to_problem())
    return _render(request, _invalid(exc.errors()).to_problem())


async def _model_error(request: Request, exc: Exception) -> JSONResponse:
    """A model built in a route from the client's input refused it: still the client's input."""
    assert isinstance(exc, ValidationError)  # Starlette types handlers loosely
    return _render(request, _invalid(exc.errors()).to_problem())


def _invalid(raw: Any) -> InvalidInput:
    errors = [
        FieldError(field=_field_name(tuple(error["loc"])), message=_message(error)) for error in raw
    ]
    return InvalidInput("; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)


def _message(error: dict[str, Any]) -> str:
    """pydantic's message, unless it describes our code rather than what the client sent."""
    message = str(error.get("msg", "is not valid"))
    if "UploadFile" in message:
        return "must be a file (a multipart part with a filename), not a text field"
    if "<class " in message or "object at 0x" in message:
        return "is not valid here"
    return message


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # Starlette types handlers loosely
    if exc.status_code == 400:  # Starlette could not parse the body (multipart, bytes, ...)
        return _render(request, MalformedBody(str(exc.detail)).to_problem())
    problem = Problem(title=_title(exc.status_code), status=exc.status_code, detail=exc.detail)
    return _render(request, problem, getattr(exc, "headers", None))


async def _redis_error(request: Request, exc: Exception) -> JSONResponse:
    """Redis out of memory, busy or away: say which, with when to come back."""
    if isinstance(exc, OutOfMemoryError):
        log.warning("Redis refused a write: out of memory")
        error: ClipqError = StoreOutOfMemory()
        retry = STORE_FULL_RETRY_SECONDS
    elif isinstance(exc, MaxConnectionsError) or (
        isinstance(exc, RedisConnectionError) and isinstance(exc.__cause__, asyncio.TimeoutError)
    ):
        log.warning("every Redis connection of this API process is busy")
        error = ServiceUnavailable(
            "the API's connections to its job store (Redis) are all busy; try again shortly"
        )
        retry = REDIS_RETRY_AFTER_SECONDS
    else:
        log.warning("Redis error: %s", exc)
        error = ServiceUnavailable("the job store (Redis) is unreachable; try again shortly")
        retry = REDIS_RETRY_AFTER_SECONDS
    return _render(request, error.to_problem(), {"Retry-After": str(retry)})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback, answered as a problem that reveals nothing."""
    log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
    problem = Problem(
        type="/problems/internal-error",
        title="Internal error",
        status=500,
        detail="the server hit an unexpected error; it has been logged",
    )
    return _render(request, problem)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ClipqError, _clipq_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ValidationError, _model_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RedisError, _redis_error)
    app.add_exception_handler(Exception, _unexpected)
