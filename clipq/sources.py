"""References an import may read: brace expansion, and who may read what.

A by-reference source is read by the worker, with the worker's filesystem and credentials,
so a reference is checked before anything is read: local paths only under
``CLIPQ_INGEST_ROOTS`` (empty: none), remote ones only in ``CLIPQ_INGEST_SCHEMES``. The API
checks what it is sent (a 422 naming the field) and the worker checks again where it reads,
resolving symlinks there, since only the worker sees its own filesystem.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Iterator
from urllib.parse import unquote, urlsplit

from clipcore.errors import InvalidInput
from clipq.settings import Settings

_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")
LOCAL_SCHEMES = ("", "file")


def expand_braces(pattern: str, limit: int) -> list[str]:
    """Bash-style brace expansion, as webdataset and img2dataset write shard lists:
    ``{00000..00127}`` (zero-padded as its first bound is) and ``{a,b,c}``, nested or
    several in one pattern. :class:`ValueError` past ``limit`` names or on an unclosed brace."""
    found: list[str] = []
    try:
        for name in _expand(pattern):
            found.append(name)
            if len(found) > limit:
                raise ValueError(f"expands to more than {limit} names")
    except RecursionError:
        raise ValueError("has too many brace groups") from None
    return found


def _expand(pattern: str) -> Iterator[str]:
    start = pattern.find("{")
    if start < 0:
        if "}" in pattern:
            raise ValueError("has a '}' without its '{'")
        yield pattern
        return
    depth, end = 0, -1
    for at in range(start, len(pattern)):
        depth += {"{": 1, "}": -1}.get(pattern[at], 0)
        if depth == 0:
            end = at
            break
    if end < 0:
        raise ValueError("has a '{' without its '}'")
    head, body, tail = pattern[:start], pattern[start + 1 : end], pattern[end + 1 :]
    choices = _choices(body)
    if choices is None:  # "{x}": not a list, kept as written (bash does the same)
        for rest in _expand(tail):
            yield head + "{" + body + "}" + rest
        return
    for choice in choices:
        yield from _expand(head + choice + tail)


def _choices(body: str) -> Iterable[str] | None:
    """A group's choices (a range lazily: '{0..99999999999}' is cut off at the limit), or
    None for a group that is not a list."""
    numbers = _RANGE.match(body)
    if numbers:
        first, last = numbers.groups()
        width = len(first.lstrip("-")) if first.lstrip("-").startswith("0") else 0
        low, high = int(first), int(last)
        step = 1 if high >= low else -1
        return (f"{value:0{width}d}" for value in range(low, high + step, step))
    depth, part = 0, ""
    parts = []
    for char in body:
        if char == "," and depth == 0:
            parts.append(part)
            part = ""
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        part += char
    parts.append(part)
    return parts if len(parts) > 1 else None


def split_roots(roots: str) -> list[str]:
    return [posixpath.normpath(r.strip()) for r in roots.split(",") if r.strip()]


def allowed_schemes(settings: Settings) -> set[str]:
    return {s.strip().lower() for s in settings.ingest_schemes.split(",") if s.strip()}


def checked_reference(reference: str, field: str, settings: Settings) -> str:
    """The reference as the worker opens it (a local path as ``file://`` + its absolute path),
    or :class:`InvalidInput` naming ``field`` if this deployment does not read it."""
    try:
        parts = urlsplit(reference)
        parts.hostname  # noqa: B018 - parsed on access: '[::1' raises here, not later
    except ValueError:
        raise InvalidInput.for_field(field, "is not a valid path or URL") from None
    scheme = parts.scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter is no scheme; clipq's workers are POSIX
        scheme = ""
    if scheme in LOCAL_SCHEMES:
        path = unquote(parts.path) if scheme == "file" else reference
        if scheme == "file" and parts.netloc not in ("", "localhost"):
            raise InvalidInput.for_field(field, "a file:// URL names no host")
        return "file://" + local_path(path, field, settings)
    if scheme not in allowed_schemes(settings):
        raise InvalidInput.for_field(
            field,
            f"{scheme}:// is not read by this service (CLIPQ_INGEST_SCHEMES: "
            f"{settings.ingest_schemes or 'none'})",
        )
    if scheme in ("http", "https") and not parts.hostname:
        raise InvalidInput.for_field(field, "must be an absolute URL with a host")
    if parts.username or parts.password:
        raise InvalidInput.for_field(field, "must not carry credentials")
    return reference


def local_path(path: str, field: str, settings: Settings, *, resolve: bool = False) -> str:
    """``path``, normalised (and with ``resolve``, its symlinks followed: where the worker
    reads), if it lies under one of ``CLIPQ_INGEST_ROOTS``."""
    roots = split_roots(settings.ingest_roots)
    if not roots:
        raise InvalidInput.for_field(
            field, "local files are not read by this service (CLIPQ_INGEST_ROOTS is empty)"
        )
    if not path.startswith("/"):
        raise InvalidInput.for_field(field, "a local path must be absolute")
    normal = os.path.realpath(path) if resolve else posixpath.normpath(path)
    if resolve:
        roots = [os.path.realpath(root) for root in roots]
    if not any(normal == root or normal.startswith(root.rstrip("/") + "/") for root in roots):
        raise InvalidInput.for_field(
            field, f"{path} is outside the folders this service reads (CLIPQ_INGEST_ROOTS)"
        )
    return normal
