"""Serving the API: ``python -m api.server`` (uvicorn, configured from :class:`Settings`).

uvicorn bounds idle keep-alive connections but not a request whose headers never
finish: a client that sends half a header line keeps its connection forever.
:class:`HeaderDeadlineProtocol` closes a connection whose request headers are not
complete ``CLIPQ_HEADER_TIMEOUT_SECONDS`` after it opened (or after its previous
response); the body has its own deadline in :class:`api.limits.BodyDeadline`.
"""

from __future__ import annotations

import asyncio
from asyncio import TimerHandle

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from clipq.settings import get_settings

_LATE_BODY = (
    b'{"type":"about:blank","title":"Request Timeout","status":408,'
    b'"detail":"the request headers did not arrive in time"}'
)
HEADERS_LATE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_LATE_BODY), _LATE_BODY)
)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline on each request's headers."""

    _header_timer: TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's own signature
        super().connection_made(transport)
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        timeout = get_settings().header_timeout_seconds  # read here: workers are processes
        self._header_timer = self.loop.call_later(timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # not inside a request
            self.transport.write(HEADERS_LATE)
        self.transport.close()


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        "api.main:app",
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        http=HeaderDeadlineProtocol,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_keep_alive=settings.keep_alive_seconds,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
    )


if __name__ == "__main__":
    main()
