"""OpenAPI helpers: problem responses documented per operation, stable operation ids."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from api.problems import PROBLEM_JSON
from clipcore.problem import Problem

OCTET_STREAM = "application/octet-stream"

_DESCRIPTIONS = {
    400: "Malformed request body (not parseable as multipart/form-data or JSON)",
    401: "Missing or invalid API key (when the service requires keys)",
    403: "Quota exceeded: this API key holds all it may; delete something first",
    404: "Unknown id",
    409: "Conflict with the resource's state",
    413: "Upload too large",
    415: "Unsupported media type",
    422: "Invalid input: the problem names the field or file",
    429: "Too many jobs or waits (the service's or this API key's); retry after Retry-After",
    503: "Redis or the queue is unreachable or busy; retry after Retry-After seconds",
    507: "The job store (Redis) is out of memory: nothing was kept; retry after Retry-After",
}


def problems(
    *codes: int, descriptions: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """Problem responses of an operation; ``descriptions`` words a code for this operation."""
    worded = {**_DESCRIPTIONS, **(descriptions or {})}
    return {
        code: {
            "model": Problem,
            "description": worded[code],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code in codes
    }


def operation_id(route: APIRoute) -> str:
    """The route's function name is its operationId: generated clients get clean names."""
    return route.name


def _mark_binary(node: Any) -> None:
    """Add ``format: binary`` beside ``contentMediaType: application/octet-stream``.

    FastAPI describes file fields the OpenAPI 3.1 way only; client generators such as
    openapi-python-client still look for ``format: binary`` to make them file uploads
    (openapi-generators/openapi-python-client#1418). Both are valid 3.1.
    """
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("contentMediaType") == OCTET_STREAM:
            node.setdefault("format", "binary")
        for value in node.values():
            _mark_binary(value)
    elif isinstance(node, list):
        for value in node:
            _mark_binary(value)


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _mark_binary(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way
