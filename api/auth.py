"""Optional API keys, and the owner (tenant) they make of every request.

With no keys configured, everyone is the anonymous owner ``""``. With keys,
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

from clipcore.errors import Unauthorized
from clipcore.settings import Settings


def owner_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


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


def authenticate(request: Request) -> str:
    """The request's owner; 401 problem without a valid key when keys are configured."""
    keys = configured_keys(request.app.state.settings)
    if not keys:
        return ""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise Unauthorized(
            "send an API key as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": 'Bearer realm="clipq"'},
        )
    # Compare against every key, without stopping early: the time taken tells nothing.
    matched = ""
    for key in keys:
        if hmac.compare_digest(key.encode(), presented.encode()):
            matched = key
    if not matched:
        raise Unauthorized(
            "the API key is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="clipq", error="invalid_token"'},
        )
    return owner_of(matched)


OwnerDep = Annotated[str, Depends(authenticate)]
