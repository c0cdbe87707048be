"""The ASGI application: ``uvicorn api.main:app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI

from api.collection_store import AsyncCollections
from api.limits import BodySizeLimit
from api.openapi import install_openapi, operation_id
from api.problems import install_problem_handlers
from api.queue import JobQueue
from api.routes import classify, collections, health, jobs, scenes, seed
from api.routes.web import mount_web
from api.store import ApiStore
from clipcore.settings import Settings, get_settings

DESCRIPTION = """
Asynchronous CLIP image understanding. POST a job, get `202 Accepted` and a
`Location` at once, then poll `GET /v1/jobs/{id}` (or long-poll with `?wait=N`).
Errors are RFC 9457 `application/problem+json`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = aioredis.Redis.from_url(settings.redis_url)
        app.state.settings = settings
        app.state.store = ApiStore(client, settings.job_ttl_seconds)
        app.state.queue = JobQueue(settings.redis_url)
        app.state.collections = AsyncCollections(client)
        yield
        await client.aclose()

    app = FastAPI(
        title="clipq",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        # Room for the largest label set plus the other fields; a request one file over the
        # job limit still reaches our own check, which names the limit.
        form_limits={
            "max_fields": settings.max_labels + 32,
            "max_files": settings.max_files_per_job + 1,
        },
    )
    install_problem_handlers(app)
    install_openapi(app)
    # Starlette's own body limit answers in plain text; ours answers problem+json.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes)
    for module in (classify, scenes, collections, jobs, health, seed):
        app.include_router(module.router)
    mount_web(app)  # GET / and /static/…, outside the OpenAPI document
    return app


app = create_app()
