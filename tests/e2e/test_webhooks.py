"""A slow webhook receiver holds neither the inference worker nor the delivery worker."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests.e2e.conftest import Service, env_on, private_redis, running_service
from tests.receivers import SlowReceiver
from tests.support import png_bytes

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DEADLINE = 2.0  # CLIPQ_WEBHOOK_TIMEOUT_SECONDS: the whole of one attempt
MARGIN = 1.0


def submit(service: Service, colour: tuple[int, int, int], **fields: str) -> dict:
    files = [("images", ("a.png", png_bytes(colour), "image/png")), ("labels", (None, "a"))]
    files += [(key, (None, value)) for key, value in fields.items()]
    response = service.http.post("/v1/classify", files=files)
    assert response.status_code == 202, response.text
    return response.json()


def exit_times(processes: list[subprocess.Popen], timeout: float) -> list[float]:
    """SIGTERM all of ``processes`` at once; the seconds each took to exit."""
    started = time.monotonic()
    for process in processes:
        process.send_signal(signal.SIGTERM)
    ended: dict[int, float] = {}
    while len(ended) < len(processes) and time.monotonic() - started < timeout:
        for i, process in enumerate(processes):
            if i not in ended and process.poll() is not None:
                ended[i] = time.monotonic() - started
        time.sleep(0.05)
    return [ended.get(i, float("inf")) for i in range(len(processes))]


def test_a_slow_receiver_holds_neither_worker(base_env, tmp_path: Path) -> None:
    # One byte a second: no single read waits as long as the deadline, the answer a minute.
    receiver = SlowReceiver(interval=1.0)
    with private_redis(tmp_path / "redis") as server:
        env = env_on(
            base_env,
            server,
            CLIPQ_WEBHOOK_SECRET=SECRET,
            CLIPQ_WEBHOOK_ALLOW="127.0.0.1",
            CLIPQ_WEBHOOK_TIMEOUT_SECONDS=str(DEADLINE),
            CLIPQ_WEBHOOK_MAX_RETRIES="3",
        )
        with running_service(env, tmp_path / "logs") as service:
            slow = submit(service, (1, 2, 3), callback_url=receiver.url)
            assert service.wait_for(slow["id"])["status"] == "succeeded"
            receiver.wait_started(1, timeout=30)

            # While the receiver dawdles, other jobs go through the inference worker.
            started = time.monotonic()
            for colour in [(4, 5, 6), (7, 8, 9)]:
                other = submit(service, colour)
                assert service.wait_for(other["id"], timeout=30)["status"] == "succeeded"
            assert time.monotonic() - started < 10

            # Each attempt ends at the deadline, as the receiver sees it, and is retried.
            ended = receiver.wait_ended(2, timeout=30)
            for attempt in ended:
                assert DEADLINE - 0.5 < attempt.seconds < DEADLINE + MARGIN, ended
            assert len({a.headers["webhook-id"] for a in ended}) == 1

            # With an attempt under way, both workers stop promptly on SIGTERM.
            receiver.wait_started(3, timeout=30)
            assert service.deliveries is not None
            worker, deliveries = exit_times([service.workers[0], service.deliveries], 60)
            # An idle inference worker takes 4-6 s here (its pool child, torch loaded, exits);
            # holding a delivery it took over a minute.
            assert worker < 10, f"the inference worker took {worker:.1f} s to stop"
            assert deliveries < DEADLINE + 5, f"the delivery worker took {deliveries:.1f} s"
            third = receiver.wait_ended(3, timeout=10)[2]
            assert third.seconds < DEADLINE + MARGIN
    receiver.close()
    print(
        f"attempts: {[round(a.seconds, 2) for a in receiver.attempts]} s; "
        f"SIGTERM to exit: inference {worker:.2f} s, deliveries {deliveries:.2f} s"
    )
