"""The webhook delivery worker is a Celery app of its own, light enough for a small container."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from clipq.settings import get_settings
from clipq.transport import WEBHOOK_QUEUE, WEBHOOK_TASK, inference_queue

ROOT = Path(__file__).resolve().parents[2]


def test_the_delivery_worker_imports_no_ml_stack() -> None:
    code = (
        "import sys, worker.webhooks\n"
        "heavy = {'torch', 'transformers', 'torchvision', 'numpy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_each_app_consumes_its_own_queue_and_only_deliveries_run_webhooks() -> None:
    import worker.tasks  # noqa: F401 - registers the inference tasks
    from worker import celery_app, webhooks

    model_queue = inference_queue(get_settings().clip_model)  # its model's jobs only
    assert set(celery_app.app.amqp.queues.consume_from) == {model_queue}
    assert set(webhooks.app.amqp.queues.consume_from) == {WEBHOOK_QUEUE}
    assert WEBHOOK_TASK in webhooks.app.tasks
    assert WEBHOOK_TASK not in celery_app.app.tasks


def test_both_apps_restore_unacknowledged_messages_after_the_same_time() -> None:
    # Every consumer of the Redis restores every queue's unacknowledged messages by its own
    # visibility timeout: a shorter one in either app would re-run long inference jobs.
    from worker import celery_app, webhooks

    inference = celery_app.app.conf.broker_transport_options["visibility_timeout"]
    assert webhooks.app.conf.broker_transport_options["visibility_timeout"] == inference
    assert inference > 300 + webhooks.settings.webhook_timeout_seconds  # the longest backoff
