"""A bounded load test of a running clipq: job submissions and polls, over loopback only.

    python bench/loadtest.py --url http://127.0.0.1:8080 --requests 2000 --concurrency 32

Sends ``--requests`` requests from ``--concurrency`` concurrent clients (or fewer, if
``--duration`` seconds pass first), mixing classify and scene job submissions (small PNGs)
with polls of the jobs already submitted. Then it waits, up to ``--drain-timeout`` seconds,
for every submitted job to end, and prints the requests sent, the errors (an unexpected
status, a transport error, a job that failed or came back with the wrong number of
images), the lost jobs (accepted, then unknown or never finished), the p50/p95/p99
latency of submissions and of polls, and the throughput. Exits 1 when there was any
error or lost job, 2 when the URL is not a loopback address.

A 429 (the queue is full) is the service working as designed: it is counted as
throttled, not as an error, and the client waits out its ``Retry-After``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import ipaddress
import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from PIL import Image

FINAL = {"succeeded", "failed", "cancelled"}
LABELS = ["cat", "dog", "bird", "car"]
SPEEDS = ["fast", "balanced", "accurate"]
MAX_RETRY_AFTER = 5.0
LONG_POLL_SECONDS = 10


@dataclass(frozen=True)
class Options:
    url: str = "http://127.0.0.1:8080"
    requests: int = 2000
    concurrency: int = 32
    duration: float = 300.0
    drain_timeout: float = 300.0
    submit_share: float = 0.25
    seed: int = 0
    api_key: str | None = None


@dataclass
class Tally:
    sent: int = 0
    throttled: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"submit": [], "poll": []})
    jobs: dict[str, int] = field(default_factory=dict)  # job id -> number of images sent
    final: dict[str, str] = field(default_factory=dict)  # job id -> final status
    lost: dict[str, str] = field(default_factory=dict)  # job id -> why
    load_seconds: float = 0.0
    drain_seconds: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def is_loopback(url: str) -> bool:
    """True for http(s) URLs on localhost or a loopback IP literal; no name is resolved."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def small_pngs(count: int, rng: random.Random) -> list[bytes]:
    """Distinct 32 × 32 PNGs of two random colours each."""
    pictures = []
    for _ in range(count):
        image = Image.new("RGB", (32, 32), tuple(rng.randrange(256) for _ in range(3)))
        image.paste(tuple(rng.randrange(256) for _ in range(3)), (0, 0, 16, 32))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        pictures.append(buffer.getvalue())
    return pictures


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0–100) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


class LoadTest:
    def __init__(self, options: Options, client: httpx.AsyncClient) -> None:
        self.options = options
        self.client = client
        self.rng = random.Random(options.seed)
        self.pictures = small_pngs(16, self.rng)
        self.tally = Tally()
        self.deadline = 0.0

    async def run(self) -> Tally:
        started = time.monotonic()
        self.deadline = started + self.options.duration
        await asyncio.gather(*(self.client_loop() for _ in range(self.options.concurrency)))
        self.tally.load_seconds = time.monotonic() - started
        drain_started = time.monotonic()
        await self.drain()
        self.tally.drain_seconds = time.monotonic() - drain_started
        return self.tally

    def take_ticket(self) -> bool:
        if self.tally.sent >= self.options.requests or time.monotonic() >= self.deadline:
            return False
        self.tally.sent += 1
        return True

    async def client_loop(self) -> None:
        while self.take_ticket():
            pending = [job for job in self.tally.jobs if job not in self.tally.final]
            if not pending or self.rng.random() < self.options.submit_share:
                await self.submit()
            else:
                await self.poll(self.rng.choice(pending))

    async def timed(self, kind: str, method: str, path: str, **kwargs) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.tally.errors[f"{kind}: {type(exc).__name__}"] += 1
            return None
        self.tally.latencies[kind].append(time.perf_counter() - started)
        return response

    async def submit(self) -> None:
        count = self.rng.choice([1, 2])
        images = [
            ("images", (f"{i}.png", self.rng.choice(self.pictures), "image/png"))
            for i in range(count)
        ]
        if self.rng.random() < 0.5:
            path, fields = "/v1/classify", [("labels", (None, label)) for label in LABELS]
        else:
            path, fields = "/v1/scenes", [("speed", (None, self.rng.choice(SPEEDS)))]
        response = await self.timed("submit", "POST", path, files=images + fields)
        if response is None:
            return
        if response.status_code == 202:
            self.tally.jobs[response.json()["id"]] = count
        elif response.status_code == 429:
            self.tally.throttled += 1
            retry_after = float(response.headers.get("retry-after", "1"))
            await asyncio.sleep(min(retry_after, MAX_RETRY_AFTER))
        else:
            self.tally.errors[f"submit {path}: {response.status_code}"] += 1

    async def poll(self, job_id: str, wait: float = 0) -> None:
        params = {"wait": wait} if wait else None
        response = await self.timed("poll", "GET", f"/v1/jobs/{job_id}", params=params)
        if response is None:
            return
        if response.status_code == 404:
            self.tally.lost[job_id] = "404 while polling"
            self.tally.final[job_id] = "lost"
        elif response.status_code != 200:
            self.tally.errors[f"poll: {response.status_code}"] += 1
        else:
            self.record(job_id, response.json())

    def record(self, job_id: str, job: dict) -> None:
        status = job["status"]
        if status not in FINAL:
            return
        self.tally.final[job_id] = status
        if status != "succeeded":
            self.tally.errors[f"job {status}"] += 1
        elif len(job["result"]["images"]) != self.tally.jobs[job_id]:
            self.tally.errors["job result with the wrong number of images"] += 1

    async def drain(self) -> None:
        """Long-poll every job not yet seen to end, until it ends or the drain time is up."""
        deadline = time.monotonic() + self.options.drain_timeout
        queue: asyncio.Queue[str] = asyncio.Queue()
        for job_id in self.tally.jobs:
            if job_id not in self.tally.final:
                queue.put_nowait(job_id)

        async def drainer() -> None:
            while not queue.empty():
                job_id = queue.get_nowait()
                while job_id not in self.tally.final:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self.tally.lost[job_id] = "not finished when the drain time ran out"
                        return
                    await self.poll_final(job_id, min(LONG_POLL_SECONDS, remaining))

        await asyncio.gather(*(drainer() for _ in range(self.options.concurrency)))

    async def poll_final(self, job_id: str, wait: float) -> None:
        try:
            response = await self.client.get(f"/v1/jobs/{job_id}", params={"wait": wait})
        except httpx.HTTPError as exc:
            self.tally.errors[f"drain: {type(exc).__name__}"] += 1
            await asyncio.sleep(1)
            return
        if response.status_code == 404:
            self.tally.lost[job_id] = "404 while waiting for it to end"
            self.tally.final[job_id] = "lost"
        elif response.status_code != 200:
            self.tally.errors[f"drain: {response.status_code}"] += 1
            await asyncio.sleep(1)
        else:
            self.record(job_id, response.json())


async def run_load(options: Options) -> Tally:
    headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else None
    limits = httpx.Limits(max_connections=options.concurrency)
    timeout = httpx.Timeout(30.0, read=LONG_POLL_SECONDS + 30.0)
    async with httpx.AsyncClient(
        base_url=options.url, headers=headers, limits=limits, timeout=timeout, trust_env=False
    ) as client:
        return await LoadTest(options, client).run()


def report(options: Options, tally: Tally) -> str:
    def latency(kind: str) -> str:
        values = tally.latencies[kind]
        shown = "  ".join(f"p{q} {percentile(values, q) * 1000:7.1f} ms" for q in (50, 95, 99))
        return f"{kind:<7} latency  {shown}  ({len(values)} answered)"

    lines = [
        f"clipq load test against {options.url}: concurrency {options.concurrency}",
        f"requests sent   {tally.sent} in {tally.load_seconds:.1f} s"
        f"  ({tally.sent / max(tally.load_seconds, 1e-9):.1f} requests/s)",
        f"jobs submitted  {len(tally.jobs)}, throttled (429) {tally.throttled}",
        f"jobs ended      {sum(1 for s in tally.final.values() if s != 'lost')}"
        f" ({Counter(tally.final.values()).most_common()}),"
        f" all ended {tally.load_seconds + tally.drain_seconds:.1f} s after the start",
        latency("submit"),
        latency("poll"),
        f"errors          {tally.error_count}",
        *(f"  {count:6d} × {kind}" for kind, count in tally.errors.most_common()),
        f"lost jobs       {len(tally.lost)}",
        *(f"  {job_id}: {why}" for job_id, why in list(tally.lost.items())[:20]),
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=defaults.url, help="a loopback URL of a running clipq")
    parser.add_argument("--requests", type=int, default=defaults.requests)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument(
        "--duration", type=float, default=defaults.duration, help="most seconds of sending"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=defaults.drain_timeout,
        help="most seconds to wait, after sending, for the submitted jobs to end",
    )
    parser.add_argument(
        "--submit-share",
        type=float,
        default=defaults.submit_share,
        help="share of requests that submit a job (the rest poll)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--api-key", default=None, help="sent as Authorization: Bearer")
    args = parser.parse_args(argv)
    return Options(**vars(args))


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if not is_loopback(options.url):
        print(f"refusing {options.url}: this load test only runs against loopback", file=sys.stderr)
        return 2
    tally = asyncio.run(run_load(options))
    print(report(options, tally))
    return 1 if tally.error_count or tally.lost else 0


if __name__ == "__main__":
    sys.exit(main())
