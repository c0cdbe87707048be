"""OpenAPI helpers: problem responses documented per operation, stable operation ids."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute

from api.problems import PROBLEM_JSON
from clipcore.contracts import Problem

_DESCRIPTIONS = {
    404: "Unknown id",
    409: "Conflict with the resource's state",
    413: "Upload too large",
    415: "Unsupported media type",
    422: "Invalid input: the problem names the field or file",
    503: "Redis or the queue is unreachable; retry after Retry-After seconds",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {
            "model": Problem,
            "description": _DESCRIPTIONS[code],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code in codes
    }


def operation_id(route: APIRoute) -> str:
    """The route's function name is its operationId: generated clients get clean names."""
    return route.name
