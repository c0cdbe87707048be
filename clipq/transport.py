"""How the API reaches the workers: queues and task names (by name, never by import)."""

from __future__ import annotations

from clipq.contracts.jobs import JobKind

INFERENCE_QUEUE = "clipq.inference"
WEBHOOK_QUEUE = "clipq.webhooks"  # deliveries never wait behind inference, nor it behind them
WEBHOOK_TASK = "clipq.webhook"
TASK_NAMES: dict[JobKind, str] = {
    JobKind.classify: "clipq.classify",
    JobKind.scenes: "clipq.scenes",
    JobKind.ingest: "clipq.ingest",
    JobKind.search: "clipq.search",
    JobKind.evaluate: "clipq.evaluate",
    JobKind.bulk_import: "clipq.import",
}
