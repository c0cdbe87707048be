"""The ASGI application: ``python -m api.server`` (or ``uvicorn api.main:app``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI
from fastapi_offline import FastAPIOffline
from redis.exceptions import RedisError

from api.auth import Authentication, authenticated_owner
from api.headers import ResponseHeaders
from api.limits import BodyDeadline, BodySizeLimit
from api.openapi import install_openapi, operation_id
from api.problems import install_problem_handlers
from api.queue import JobQueue
from api.routes import (
    classify,
    collections,
    health,
    imports,
    jobs,
    models,
    plans,
    scenes,
    seed,
    sources,
)
from api.routes.web import mount_web
from clipq.settings import Settings, get_settings
from clipq.store.collections import AsyncCollections
from clipq.store.events import JobEvents
from clipq.store.jobs import ApiStore

log = logging.getLogger(__name__)

DESCRIPTION = """
Asynchronous CLIP image understanding. POST a job, get `202 Accepted` and a
`Location` at once, then poll `GET /v1/jobs/{id}` (or long-poll with `?wait=N`).
Errors are RFC 9457 `application/problem+json`. When the service has API keys,
every `/v1` and `/api` operation needs `Authorization: Bearer <key>`.
"""


def redis_client(settings: Settings) -> aioredis.Redis:
    """The process's Redis client: a bounded pool, where a request waits for a connection
    rather than failing when all are busy."""
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_seconds,
    )
    return aioredis.Redis(connection_pool=pool)


def protected_routes() -> APIRouter:
    """Every /v1 and /api route, behind the API key (router-level, so none can forget it)."""
    router = APIRouter(dependencies=[Depends(authenticated_owner)])
    for module in (classify, scenes, plans, collections, imports, sources, jobs, models, seed):
        router.include_router(module.router)
    return router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = redis_client(settings)
        events = JobEvents(client, settings.max_waits_per_tenant)
        app.state.settings = settings
        app.state.store = ApiStore(client, settings.job_ttl_seconds, events)
        app.state.queue = JobQueue(settings.redis_url, settings.shards)
        app.state.collections = AsyncCollections(client)
        try:
            await app.state.collections.migrate_legacy_index()
            retagged = await app.state.collections.retag_all()
            if retagged:
                log.info("%d collections' keys renamed into their hash tags", retagged)
        except RedisError as exc:  # the API starts without Redis and recovers when it is back
            log.warning("collections of an old layout not moved (Redis: %s); next start", exc)
        events.start()
        yield
        await events.stop()
        await client.aclose()

    app = FastAPIOffline(
        title="clipq",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        static_url="/docs/assets",
        redoc_url=None,  # ReDoc fetches its logo from its CDN even when served locally
        # Room for the largest label set plus the other fields; a request one file over the
        # job limit still reaches our own check, which names the limit.
        form_limits={
            "max_fields": settings.max_labels + 32,
            "max_files": settings.max_files_per_job + 1,
        },
    )
    install_problem_handlers(app)
    install_openapi(app)
    # Each one added wraps the ones before: a request meets ResponseHeaders, then
    # Authentication (the key, before anything reads the body), then the body's deadline and
    # size (Starlette's own body limit answers in plain text, ours in problem+json).
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(BodyDeadline, seconds=settings.request_body_timeout_seconds)
    app.add_middleware(Authentication, settings=settings)
    app.add_middleware(ResponseHeaders)
    app.include_router(protected_routes())
    app.include_router(health.router)  # open: api.auth.OPEN_PATHS
    mount_web(app)  # GET / and /static/…, outside the OpenAPI document
    return app


app = create_app()
