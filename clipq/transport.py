"""How the API reaches the workers: queues and task names (by name, never by import)."""

from __future__ import annotations

from clipcore.model_names import model_key
from clipq.contracts.jobs import JobKind

INFERENCE_QUEUE = "clipq.inference"  # each model's queue is named under it
WEBHOOK_QUEUE = "clipq.webhooks"  # deliveries never wait behind inference, nor it behind them
WEBHOOK_TASK = "clipq.webhook"
TASK_NAMES: dict[JobKind, str] = {
    JobKind.classify: "clipq.classify",
    JobKind.scenes: "clipq.scenes",
    JobKind.ingest: "clipq.ingest",
    JobKind.search: "clipq.search",
    JobKind.evaluate: "clipq.evaluate",
    JobKind.bulk_import: "clipq.import",
    JobKind.plan: "clipq.plan",
    JobKind.source_import: "clipq.source_import",
    JobKind.source_shard: "clipq.source_shard",
}
SEARCH_SHARD_TASK = "clipq.search_shard"  # one shard's part of a search (worker.search)
INDEX_TASK = "clipq.index"  # a worker's index of a collection, brought up to date after imports


def same_model(a: str, b: str) -> bool:
    """Whether two model strings name one model (``hf:x`` and ``x``; ``""`` and ``embedded``)."""
    return model_key(a) == model_key(b)


def inference_queue(model: str) -> str:
    """The queue of the workers that serve ``model`` (their CLIPQ_CLIP_MODEL)."""
    return f"{INFERENCE_QUEUE}.{model_key(model)}"


def shard_queue(number: int) -> str:
    """The queue of the workers that hold shard ``number`` (CLIPQ_WORKER_SHARD)."""
    return f"clipq.shard.{number}"
