"""Slow and idle clients cannot hold the API: deadlines on headers and bodies, long polls that
share one Redis connection, a bounded pool that queues rather than fails.

The service here has no worker (every job stays queued), a Redis pool of only 10
connections and short deadlines, so each limit is reached in seconds.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.conftest import Service, env_on, private_redis, running_service
from tests.support import png_bytes

KEY_A, KEY_B = "slow-a-0123456789", "slow-b-0123456789"
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}
POOL, WAITS = 10, 40


@pytest.fixture(scope="module")
def api(base_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("slow")
    with private_redis(folder / "redis") as server:
        env = env_on(
            base_env,
            server,
            CLIPQ_API_KEYS=f"{KEY_A},{KEY_B}",
            CLIPQ_HEADER_TIMEOUT_SECONDS="1",
            CLIPQ_REQUEST_BODY_TIMEOUT_SECONDS="2",
            CLIPQ_REDIS_MAX_CONNECTIONS=str(POOL),
            CLIPQ_MAX_WAITS_PER_TENANT=str(WAITS),
        )
        with running_service(env, folder / "logs", workers=0) as service:
            yield service


def connect(service: Service) -> socket.socket:
    host, port = urlsplit(service.base_url).netloc.split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_all(connection: socket.socket) -> bytes:
    data = b""
    while chunk := connection.recv(4096):
        data += chunk
    return data


def read_response(connection: socket.socket, first: bytes = b"") -> bytes:
    """One whole response: its headers, then as many bytes as its Content-Length says."""
    data = first
    while b"\r\n\r\n" not in data:
        data += connection.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))
    while len(body) < length:
        body += connection.recv(4096)
    return head + b"\r\n\r\n" + body


def test_headers_that_never_finish_are_cut_off(api: Service) -> None:
    for opening in (b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "):
        with connect(api) as connection:
            started = time.monotonic()
            connection.sendall(opening)
            reply = read_all(connection)  # ends when the server closes the connection
            assert 0.8 < time.monotonic() - started < 3, opening
            assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
    # The next request on a kept-alive connection gets its own deadline.
    with connect(api) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(connection).startswith(b"HTTP/1.1 200")
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert read_all(connection).startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 3


def test_a_body_that_never_finishes_gets_a_408(api: Service) -> None:
    with connect(api) as connection:
        connection.sendall(
            b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY_A.encode()
            + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
            + b'--b\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n\r\n'
        )  # fmt: skip
        started = time.monotonic()
        reply = b""
        try:
            while not reply and time.monotonic() - started < 10:
                connection.sendall(b"xxxx")  # a few bytes of the file every 0.3 s: never idle
                connection.settimeout(0.3)
                try:
                    reply = connection.recv(4096)
                except TimeoutError:
                    continue
            connection.settimeout(5)
            reply = read_response(connection, reply)
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"application/problem+json" in reply and b"within 2 s" in reply
    assert 1.8 < time.monotonic() - started < 5


def classify_form(colour: tuple[int, int, int] = (10, 20, 30)) -> list[tuple]:
    return [
        ("images", ("a.png", png_bytes(colour), "image/png")),
        ("labels", (None, "a")),
        ("labels", (None, "b")),
    ]


async def client(service: Service) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    return httpx.AsyncClient(base_url=service.base_url, timeout=60, limits=limits)


def test_long_polls_do_not_take_the_pool_and_are_capped_per_tenant(api: Service) -> None:
    queued = api.http.post("/v1/classify", files=classify_form(), headers=A).json()

    async def scenario() -> tuple[list[int], list[int], int]:
        async with await client(api) as http:
            url = f"/v1/jobs/{queued['id']}"
            polls = [
                asyncio.create_task(http.get(url, params={"wait": 8}, headers=A))
                for _ in range(WAITS)
            ]
            await asyncio.sleep(1.5)  # every poll is waiting now
            extra = await http.get(url, params={"wait": 8}, headers=A)
            started = time.monotonic()
            others = await asyncio.gather(
                *(http.post("/v1/classify", files=classify_form(), headers=B) for _ in range(30))
            )
            elapsed = time.monotonic() - started
            assert elapsed < 5, f"B's submissions took {elapsed:.1f} s beside A's long polls"
            waited = await asyncio.gather(*polls)
            return [r.status_code for r in others], [r.status_code for r in waited], extra

    others, waited, extra = asyncio.run(scenario())
    assert others == [202] * 30  # 4x more long polls than pool connections: B is not hurt
    assert waited == [200] * WAITS
    assert extra.status_code == 429 and "already waiting" in extra.json()["detail"]
    assert int(extra.headers["retry-after"]) >= 1


def test_slow_uploads_finishing_together_are_all_accepted(api: Service) -> None:
    """200 uploads dripping their bodies, then completing at once, on a pool of 10."""

    async def scenario() -> list[int]:
        go = asyncio.Event()

        async def drip(index: int) -> AsyncIterator[bytes]:
            yield _multipart(index)
            await go.wait()
            yield b"--x--\r\n"

        async with await client(api) as http:
            headers = A | {"Content-Type": "multipart/form-data; boundary=x"}
            uploads = [
                asyncio.create_task(http.post("/v1/classify", content=drip(i), headers=headers))
                for i in range(200)
            ]
            await asyncio.sleep(1.0)
            go.set()
            responses = await asyncio.gather(*uploads)
        return [r.status_code for r in responses]

    assert asyncio.run(scenario()) == [202] * 200


def _multipart(index: int) -> bytes:
    image = png_bytes((index % 251, 3, 5))
    return (
        b'--x\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + image + b"\r\n"
        b'--x\r\nContent-Disposition: form-data; name="labels"\r\n\r\na\r\n'
        b'--x\r\nContent-Disposition: form-data; name="labels"\r\n\r\nb\r\n'
    )
