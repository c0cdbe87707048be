"""Service metrics, kept in Redis so that every API and worker process adds to the same figures.

Workers count batches, images and finished jobs; the API counts submissions and
renders everything, plus live gauges (queue depth, running jobs, workers), in
the Prometheus text format at ``GET /metrics``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

import redis
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from redis.exceptions import RedisError

from clipq.store.collections import as_text

METRICS_KEY = "clipq:metrics"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

log = logging.getLogger(__name__)


def _bucket(value: float, buckets: tuple[float, ...]) -> str:
    return next((str(b) for b in buckets if value <= b), "+Inf")


def record_batch(client: redis.Redis, images: int, seconds: float) -> None:
    """A forward pass over ``images`` images took ``seconds``."""
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(METRICS_KEY, f"batch:{_bucket(images, BATCH_BUCKETS)}", 1)
    pipe.hincrby(METRICS_KEY, "batch_count", 1)
    pipe.hincrby(METRICS_KEY, "images", images)
    pipe.hincrbyfloat(METRICS_KEY, "forward_seconds", seconds)
    pipe.execute()


def record_finish(client: redis.Redis, kind: str, status: str, latency: float) -> None:
    """A job of ``kind`` ended with ``status``, ``latency`` seconds after it was submitted."""
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(METRICS_KEY, f"finished:{kind}:{status}", 1)
    pipe.hincrby(METRICS_KEY, f"latency:{kind}:{_bucket(latency, LATENCY_BUCKETS)}", 1)
    pipe.hincrbyfloat(METRICS_KEY, f"latency_sum:{kind}", latency)
    pipe.execute()


async def record_submit(client: aioredis.Redis, kind: str) -> None:
    await _count(client, f"submitted:{kind}")


class _Snapshot:
    """Prometheus collector over one reading of the Redis figures."""

    def __init__(self, fields: Mapping[str, float], gauges: Mapping[str, float]) -> None:
        self.fields, self.gauges = fields, gauges

    def _labelled(self, prefix: str) -> Iterator[tuple[list[str], float]]:
        for name, value in self.fields.items():
            if name.startswith(prefix + ":"):
                yield name.split(":")[1:], value

    def collect(self) -> Iterator[Metric]:
        submitted = CounterMetricFamily("clipq_jobs_submitted", "Jobs accepted", labels=["kind"])
        for (kind,), value in self._labelled("submitted"):
            submitted.add_metric([kind], value)
        yield submitted
        finished = CounterMetricFamily(
            "clipq_jobs_finished", "Jobs ended, by status", labels=["kind", "status"]
        )
        for labels, value in self._labelled("finished"):
            finished.add_metric(labels, value)
        yield finished
        yield CounterMetricFamily(
            "clipq_images_embedded", "Images through the model", value=self.fields.get("images", 0)
        )
        yield CounterMetricFamily(
            "clipq_forward_seconds",
            "Time spent in model forward passes",
            value=self.fields.get("forward_seconds", 0),
        )
        seconds = self.fields.get("forward_seconds", 0)
        yield GaugeMetricFamily(
            "clipq_images_per_second",
            "Images per second of forward-pass time, since the counters began",
            value=self.fields.get("images", 0) / seconds if seconds else 0,
        )
        yield self._histogram(
            "clipq_batch_size", "Images per forward pass", "batch", BATCH_BUCKETS, None
        )
        latency = HistogramMetricFamily(
            "clipq_job_latency_seconds", "Submission to end, per job kind", labels=["kind"]
        )
        kinds = {labels[0] for labels, _ in self._labelled("latency")}
        for kind in sorted(kinds):
            counts = {
                labels[1]: value for labels, value in self._labelled("latency") if labels[0] == kind
            }
            latency.add_metric(
                [kind],
                _cumulative(counts, LATENCY_BUCKETS),
                sum_value=self.fields.get(f"latency_sum:{kind}", 0),
            )
        yield latency
        for name, value in self.gauges.items():
            yield GaugeMetricFamily(name, name.replace("_", " "), value=value)

    def _histogram(
        self, name: str, doc: str, prefix: str, buckets: tuple[float, ...], sum_key: str | None
    ) -> HistogramMetricFamily:
        counts = {labels[0]: value for labels, value in self._labelled(prefix)}
        family = HistogramMetricFamily(name, doc)
        family.add_metric(
            [], _cumulative(counts, buckets), sum_value=self.fields.get(sum_key or "", 0)
        )
        return family


def _cumulative(counts: Mapping[str, float], buckets: tuple[float, ...]) -> list[tuple[str, float]]:
    total, rows = 0.0, []
    for bound in [*map(str, buckets), "+Inf"]:
        total += counts.get(bound, 0)
        rows.append((bound, total))
    return rows


async def render(client: aioredis.Redis, gauges: Mapping[str, float]) -> bytes:
    raw = await client.hgetall(METRICS_KEY)
    fields = {as_text(k): float(v) for k, v in raw.items()}
    registry = CollectorRegistry()
    registry.register(_Snapshot(fields, gauges))
    return generate_latest(registry)


async def record_cancelled(client: aioredis.Redis, kind: str) -> None:
    await _count(client, f"finished:{kind}:cancelled")


async def _count(client: aioredis.Redis, field: str) -> None:
    """Add one to a counter; a metrics hiccup never fails a request that already succeeded."""
    try:
        await client.hincrby(METRICS_KEY, field, 1)
    except RedisError as exc:
        log.warning("could not count %s: %s", field, exc)
