"""Headers every response carries, whichever route (or error handler) produced it."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import is_open

# Answers behind a key are one tenant's: no shared cache may keep or serve them.
PRIVATE_CACHE = "private, no-store"


class ResponseHeaders:
    """ASGI middleware: ``nosniff`` on everything; keyed answers are private to their key.

    A route that sets its own ``Cache-Control`` (a thumbnail: ``private, max-age=…``)
    keeps it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = not is_open(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if private:
                    headers.setdefault("Cache-Control", PRIVATE_CACHE)
                    headers.add_vary_header("Authorization")
            await send(message)

        await self.app(scope, receive, send_with_headers)
