"""The models the workers serve, as ``GET /v1/models`` answers (workers publish theirs)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from clipcore.model_card import ModelDescription


class ServedModel(ModelDescription):
    """A model and how many live workers serve it."""

    workers: int = Field(ge=1, description="Live workers serving this model.")


class ModelList(BaseModel):
    models: list[ServedModel] = Field(
        description="One entry per distinct model, most served first: workers may differ "
        "during a rollout. A worker still loading its model (CLIPQ_PRELOAD_MODEL=false, "
        "before its first job) is not in it yet."
    )
    workers: int = Field(
        description="Workers that sent a heartbeat in the last 15 s, loaded or not."
    )
    default_model: str = Field(
        "embedded",
        description="The model jobs and collections that name none run on (CLIPQ_MODELS' first).",
    )
    configured: list[str] = Field(
        default_factory=list,
        description="The models this deployment serves (CLIPQ_MODELS), whether or not a "
        "worker of each is up now; a job may name any of them.",
    )
