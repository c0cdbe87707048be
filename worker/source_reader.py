"""Reading by-reference sources through fsspec, within the deployment's limits.

Every reference is checked where it is read (:mod:`clipq.sources`): a local path with its
symlinks resolved on this host, an http(s) host against the addresses it resolves to (no
loopback, private or link-local network unless ``CLIPQ_INGEST_ALLOW_HOSTS`` names it;
redirects are not followed, so a public URL cannot send the worker elsewhere). Reads are
bounded in bytes and, over http(s), in time. ``s3://`` and ``gs://`` use the worker's own
credentials (s3fs, gcsfs) when ``CLIPQ_INGEST_SCHEMES`` allows them.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import IO, Any
from urllib.parse import urlsplit

from fsspec.core import url_to_fs

from clipcore.errors import ClipqError
from clipcore.webdataset import IMAGE_EXTENSIONS
from clipq.errors import SourceUnreadable
from clipq.settings import Settings
from clipq.sources import checked_reference, local_path
from clipq.webhooks import reachable

try:  # fsspec's http(s) filesystem runs on aiohttp
    from aiohttp import ClientError, ClientTimeout
except ImportError:  # pragma: no cover - the worker extra has it
    ClientError = OSError  # type: ignore[assignment,misc]
    ClientTimeout = None  # type: ignore[assignment,misc]

READ_ERRORS = (OSError, TimeoutError, ValueError, tarfile.TarError, ClientError)
SIDE_EXTENSIONS = ("txt", "json")


class TooLarge(SourceUnreadable):
    pass


class Bounded:
    """A stream that raises :class:`TooLarge` once more than ``limit`` bytes came through."""

    def __init__(self, stream: IO[bytes], limit: int, name: str) -> None:
        self.stream, self.left, self.name = stream, limit, name
        self.limit = limit

    def read(self, size: int = -1) -> bytes:
        want = self.left + 1 if size is None or size < 0 else min(size, self.left + 1)
        data = self.stream.read(want)
        self.left -= len(data)
        if self.left < 0:
            raise TooLarge(f"{self.name}: more than {self.limit} bytes")
        return data


class SourceReader:
    """Opens, reads and lists references for one worker, under its settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def checked(self, url: str, field: str = "source") -> str:
        """``url`` as it is read here, or the problem that refuses it."""
        url = checked_reference(url, field, self.settings)
        parts = urlsplit(url)
        if parts.scheme == "file":
            return "file://" + local_path(parts.path, field, self.settings, resolve=True)
        if parts.scheme in ("http", "https") and not _reachable(
            parts.hostname or "", self.settings.ingest_allow_hosts
        ):
            raise SourceUnreadable(
                f"{url}: its host is not public (allow it with CLIPQ_INGEST_ALLOW_HOSTS)"
            )
        return url

    @contextmanager
    def open(self, url: str, limit: int) -> Iterator[Bounded]:
        """A stream of the reference's bytes from its start (no seeking: one GET over http)."""
        checked = self.checked(url)
        try:
            fs, path = url_to_fs(checked, **self._options(checked))
            extra: dict[str, Any] = {"block_size": 0} if _is_http(checked) else {}
            with fs.open(path, "rb", **extra) as handle:
                yield Bounded(handle, limit, url)
        except ClipqError:
            raise
        except READ_ERRORS as exc:
            raise SourceUnreadable(f"{url}: {_reason(exc)}") from None

    def read(self, url: str, limit: int) -> bytes:
        with self.open(url, limit) as stream:
            try:
                return stream.read()
            except ClipqError:
                raise
            except READ_ERRORS as exc:
                raise SourceUnreadable(f"{url}: {_reason(exc)}") from None

    def images_under(self, url: str, field: str) -> tuple[list[str], set[str]]:
        """The image files ``url`` names (itself, or those under it: a folder read
        recursively, sorted), and the captions and metadata files beside them."""
        checked = self.checked(url, field)
        try:
            fs, path = url_to_fs(checked, **self._options(checked))
            names = [path] if fs.isfile(path) else sorted(fs.find(path))
        except READ_ERRORS as exc:
            raise SourceUnreadable(f"{url}: {_reason(exc)}") from None
        protocol = checked.split("://", 1)[0]
        named = [_with_protocol(protocol, n) for n in names]
        images = [n for n in named if n.rpartition(".")[2].lower() in IMAGE_EXTENSIONS]
        sides = {n for n in named if n.rpartition(".")[2].lower() in SIDE_EXTENSIONS}
        return images, sides

    def _options(self, url: str) -> dict[str, Any]:
        if not _is_http(url) or ClientTimeout is None:
            return {}
        seconds = self.settings.ingest_timeout_seconds
        timeout = ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
        return {"client_kwargs": {"timeout": timeout}, "allow_redirects": False}


def _with_protocol(protocol: str, name: str) -> str:
    """fsspec lists paths without their protocol (local ones absolute, buckets' as
    ``bucket/key``); a shard names them in full."""
    if "://" in name:
        return name
    return f"file://{name}" if protocol == "file" else f"{protocol}://{name.lstrip('/')}"


def _is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


@lru_cache(maxsize=1024)
def _reachable(host: str, allow: str) -> bool:
    """Hosts are checked once per worker process (a shard list names a few hosts many times)."""
    return reachable(host, allow)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "not found"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or exc.__class__.__name__
