#!/usr/bin/env bash
# `make run`: Redis (started if needed), one Celery inference worker, the webhook delivery
# worker and the API on :8080, in the foreground; Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-.venv}"
scripts/ensure-redis.sh
# Collections' embedding rows and saved indexes: files here (compose keeps them on volumes).
export CLIPQ_VECTOR_DIR="${CLIPQ_VECTOR_DIR-.clipq/vectors}" CLIPQ_INDEX_DIR="${CLIPQ_INDEX_DIR-.clipq/indexes}"

"$venv/bin/celery" -A worker.celery_app worker --concurrency "${CLIPQ_WORKER_CONCURRENCY:-1}" \
    --loglevel INFO &
worker=$!
# Deliveries wait on other people's servers: threads in a process of their own, never the model's.
"$venv/bin/celery" -A worker.webhooks worker -Q clipq.webhooks --pool threads \
    --concurrency "${CLIPQ_WEBHOOK_CONCURRENCY:-8}" --hostname "webhooks@%h" --loglevel INFO &
webhooks=$!
"$venv/bin/python" -m api.server &  # CLIPQ_API_HOST / CLIPQ_API_PORT, default 127.0.0.1:8080
api=$!

stop() {
    trap - INT TERM EXIT
    kill -TERM "$worker" "$webhooks" "$api" 2>/dev/null || true
    wait "$worker" "$webhooks" "$api" 2>/dev/null || true
}
trap stop INT TERM EXIT
echo "clipq: API on http://${CLIPQ_API_HOST:-127.0.0.1}:${CLIPQ_API_PORT:-8080} (docs at /docs); Ctrl-C stops it" >&2
# Whichever ends first (or Ctrl-C) ends all of them.
wait -n "$worker" "$webhooks" "$api"
