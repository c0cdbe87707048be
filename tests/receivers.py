"""A slow webhook receiver on loopback: it answers one byte at a time, and times each attempt."""

from __future__ import annotations

import math
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass
class Attempt:
    """One connection: when it opened, when the client hung up (nan while open), its request."""

    opened: float
    closed: float = math.nan
    request: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.closed - self.opened


class SlowReceiver:
    """Reads each request, sends ``head`` at once, then ``trickle`` one byte every ``interval`` s.

    The default trickles a whole 204 answer: a minute's wait for a client without a deadline
    of its own, though no single read ever waits longer than ``interval``.
    """

    def __init__(
        self, interval: float = 1.0, trickle: bytes = NO_CONTENT, head: bytes = b""
    ) -> None:
        self.interval, self.trickle, self.head = interval, trickle, head
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}/hook"
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._server.close()

    def wait_started(self, count: int, timeout: float) -> list[Attempt]:
        """Wait until ``count`` attempts have opened a connection."""
        return self._wait(lambda: len(self.attempts) >= count, timeout, f"{count} attempts")

    def wait_ended(self, count: int, timeout: float) -> list[Attempt]:
        """Wait until the first ``count`` attempts have hung up."""

        def ended() -> bool:
            return len(self.attempts) >= count and all(
                not math.isnan(a.closed) for a in self.attempts[:count]
            )

        return self._wait(ended, timeout, f"{count} ended attempts")[:count]

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> list[Attempt]:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"no {what} in {timeout} s: {self.attempts}"
            time.sleep(0.05)
        with self._lock:
            return list(self.attempts)

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:  # closed
                return
            attempt = Attempt(time.monotonic())
            with self._lock:
                self.attempts.append(attempt)
            threading.Thread(target=self._answer, args=(connection, attempt), daemon=True).start()

    def _answer(self, connection: socket.socket, attempt: Attempt) -> None:
        with connection:
            if self._read_request(connection, attempt):
                self._send(connection)
            attempt.closed = time.monotonic()

    def _read_request(self, connection: socket.socket, attempt: Attempt) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self._receive(connection, 30)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        attempt.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }
        length = int(attempt.headers.get("content-length", "0"))
        while len(body) < length:
            chunk = self._receive(connection, 30)
            if not chunk:
                return False
            body += chunk
        attempt.request = body
        return True

    def _send(self, connection: socket.socket) -> None:
        """Answer slowly; return as soon as the client hangs up (it may not wait for the end)."""
        try:
            connection.sendall(self.head)
            for byte in self.trickle:
                if self._hung_up(connection, self.interval):
                    return
                connection.sendall(bytes([byte]))
            while not self._hung_up(connection, 60):
                pass
        except OSError:  # reset by the client
            return

    @staticmethod
    def _receive(connection: socket.socket, timeout: float) -> bytes:
        readable, _, _ = select.select([connection], [], [], timeout)
        try:
            return connection.recv(65536) if readable else b""
        except OSError:
            return b""

    @staticmethod
    def _hung_up(connection: socket.socket, wait: float) -> bool:
        """Whether the client closed its end within ``wait`` seconds (extra bytes are ignored)."""
        readable, _, _ = select.select([connection], [], [], wait)
        if not readable:
            return False
        try:
            return connection.recv(65536) == b""
        except OSError:
            return True
