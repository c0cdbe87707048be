"""The models the workers serve: which CLIP, what it reads and knows, and the detector."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import SettingsDep, StoreDep
from api.openapi import problems
from clipq.contracts.models import ModelList
from clipq.errors import ServiceUnavailable

router = APIRouter(prefix="/v1", tags=["models"])

NO_WORKER = "No worker is running (or Redis is unreachable or busy); retry after Retry-After"


@router.get(
    "/models", response_model=ModelList, responses=problems(401, 503, descriptions={503: NO_WORKER})
)
async def list_models(store: StoreDep, settings: SettingsDep) -> ModelList:
    """The models the live workers serve, from their heartbeats: each model string (what a
    job's or collection's `model` names), its family and scoring rule, its kind
    (`embedded-demo` is the small model shipped with clipq, which knows only generated
    coloured shapes), input size, embedding length and context length, what it knows, what to
    set for photographs, and the detector; with how many workers serve each, and which model
    is the default."""
    workers, models = await store.served_models()
    if not workers:
        raise ServiceUnavailable(
            "no worker is running, so no model is loaded: start a worker "
            "(celery -A worker.celery_app worker); GET /readyz says when one is ready"
        )
    return ModelList(
        models=models,
        workers=workers,
        default_model=settings.served_models[0],
        configured=settings.served_models,
    )
