"""Refusing oversized request bodies before anything parses them, and slow ones in time."""

from __future__ import annotations

import asyncio
from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response
from clipcore.problem import Problem
from clipq.errors import PayloadTooLarge


class BodySizeLimit:
    """ASGI middleware: 413 problem for a body over ``max_bytes``.

    A declared ``Content-Length`` is checked up front; a chunked body is read
    into memory up to the limit (no further) and then replayed to the app.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b""):
            await self.app(scope, receive, send)
            return
        body, more = bytearray(), True
        while more:
            try:
                message = await receive()
            except HTTPException as exc:  # the body's deadline passed (BodyDeadline)
                await self._answer(scope, receive, send, exc.status_code, str(exc.detail))
                return
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(f"the request body is over the limit of {self.max_bytes} bytes")
        await problem_response(error.to_problem(), {"Connection": "close"})(scope, receive, send)

    @staticmethod
    async def _answer(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
        problem = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail)
        await problem_response(problem, {"Connection": "close"})(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class BodyDeadline:
    """ASGI middleware: the whole body must arrive within ``seconds`` of its headers.

    A client that sends its upload a byte at a time would otherwise hold its connection (and
    whatever it has sent so far) for as long as it likes; an idle-read timeout does not stop
    one that sends a byte every few seconds. Past the deadline the request gets a 408 problem
    and its connection is closed. After the last chunk, ``receive`` waits for a disconnect
    as usual, without a deadline. (Headers are bounded by the server: ``api.server``.)
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        complete = False

        async def receive_in_time() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408,
                    f"the request body did not arrive within {self.seconds:g} s",
                    headers={"Connection": "close"},
                ) from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, receive_in_time, send)
