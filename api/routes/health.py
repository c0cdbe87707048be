"""Liveness, readiness and metrics, for load balancers and monitoring.

``/healthz`` and ``/readyz`` are open and say nothing a stranger could use (no host
names); ``/metrics`` needs ``CLIPQ_METRICS_KEY`` when one is set (see :mod:`api.auth`).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from api.deps import StoreDep
from api.openapi import problems
from clipq.metrics import render

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    redis: bool
    workers: int = Field(description="Workers that sent a heartbeat in the last 15 s.")


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The API process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(store: StoreDep) -> Readiness | JSONResponse:
    """Redis answers and at least one worker has sent a heartbeat recently."""
    try:
        await store.redis.ping()
        workers = await store.workers_alive()
        redis_ok = True
    except RedisError:
        workers, redis_ok = 0, False
    ready = redis_ok and workers > 0
    body = Readiness(status="ready" if ready else "not ready", redis=redis_ok, workers=workers)
    if ready:
        return body
    return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "5"})


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **problems(401)},
)
async def metrics(store: StoreDep) -> Response:
    """Prometheus metrics: jobs by kind and status, queue depth, batch sizes, images per second,
    job latency."""
    gauges = {
        "clipq_queue_depth": await store.queue_depth(),
        "clipq_jobs_running": await store.running_count(),
        "clipq_workers_alive": await store.workers_alive(),
    }
    return Response(await render(store.redis, gauges), media_type=CONTENT_TYPE_LATEST)
