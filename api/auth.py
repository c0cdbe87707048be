"""API keys, and the owner (tenant) they make of every request.

Every path needs a key except the few in :data:`OPEN_PATHS` (health, the API
document and its viewers, the web page and its files); ``/metrics`` needs
``CLIPQ_METRICS_KEY`` when one is set. :class:`Authentication` checks the key
in ASGI, before anything reads the request body, so a stranger gets a 401 and
never has an upload parsed; unknown paths need a key too (a stranger cannot
map the API). Routes read the owner through :data:`OwnerDep`, which the
protected routers also carry as a router-level dependency: a route added
there cannot forget it, and one mounted elsewhere fails closed.

With no keys configured everyone is the anonymous owner ``""``. With keys,
``Authorization: Bearer <key>`` is required, compared in constant time, never
logged; the owner is a short hash of the key, so jobs and collections belong
to the key that created them.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import cache
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import problem_response
from clipq.errors import Unauthorized
from clipq.settings import Settings

# Served to anyone. Everything else (every /v1 and /api route, any unknown path) needs a key.
OPEN_PATHS = frozenset(
    {"/", "/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect"}
)
OPEN_PREFIXES = ("/static/", "/docs/assets/")
METRICS_PATH = "/metrics"  # open unless CLIPQ_METRICS_KEY is set
OWNER_STATE = "clipq_owner"

_CHALLENGE = 'Bearer realm="clipq"'


def owner_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


@cache
def _keys(api_keys: str, api_key_file: str) -> tuple[str, ...]:
    keys = [k.strip() for k in api_keys.split(",") if k.strip()]
    if api_key_file:
        for line in Path(api_key_file).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                keys.append(line)
    return tuple(keys)


def configured_keys(settings: Settings) -> tuple[str, ...]:
    return _keys(settings.api_keys, settings.api_key_file)


def _matching(presented: str, keys: tuple[str, ...]) -> str:
    """The key equal to ``presented``, or ''. Compares with every key: the time tells nothing."""
    matched = ""
    for key in keys:
        if hmac.compare_digest(key.encode(), presented.encode()):
            matched = key
    return matched


def _bearer(authorization: str) -> str:
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized(
            "send an API key as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": _CHALLENGE},
        )
    return presented.strip()


def _invalid_key() -> Unauthorized:
    return Unauthorized(
        "the API key is not valid",
        headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
    )


def owner_for(authorization: str, settings: Settings) -> str:
    """The owner of a request with this Authorization header; :class:`Unauthorized` if none."""
    keys = configured_keys(settings)
    if not keys:
        return ""
    matched = _matching(_bearer(authorization), keys)
    if not matched:
        raise _invalid_key()
    return owner_of(matched)


def check_metrics_key(authorization: str, settings: Settings) -> None:
    if settings.metrics_key and not _matching(_bearer(authorization), (settings.metrics_key,)):
        raise _invalid_key()


class Authentication:
    """ASGI middleware: the key is checked from the headers alone, before the app runs.

    A refused request is answered at once, body unread, and its connection closed, so an
    unauthenticated upload costs the server nothing but its headers.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        authorization = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
        try:
            if scope["path"] == METRICS_PATH:
                check_metrics_key(authorization, self.settings)
            else:
                scope.setdefault("state", {})[OWNER_STATE] = owner_for(authorization, self.settings)
        except Unauthorized as exc:
            headers = {**exc.headers, "Connection": "close"}
            await problem_response(exc.to_problem(), headers)(scope, receive, send)
            return
        await self.app(scope, receive, send)


_bearer_scheme = HTTPBearer(
    auto_error=False, description="An API key, when the service is configured with keys."
)


def authenticated_owner(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)] = None,
) -> str:
    """The owner :class:`Authentication` found; 401 if it did not run (fail closed).

    The bearer scheme is declared here so that the OpenAPI document (and the clients
    generated from it) know how to send the key.
    """
    owner = request.scope.get("state", {}).get(OWNER_STATE)
    if owner is None:
        raise Unauthorized("this route is not behind the API key check")
    return owner


OwnerDep = Annotated[str, Depends(authenticated_owner)]
