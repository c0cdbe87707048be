#!/usr/bin/env bash
# `make run`: Redis (started if needed), one Celery worker and the API on :8080, in the
# foreground; Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-.venv}"
scripts/ensure-redis.sh

"$venv/bin/celery" -A worker.celery_app worker --concurrency "${CLIPQ_WORKER_CONCURRENCY:-1}" \
    --loglevel INFO &
worker=$!
"$venv/bin/python" -m api.server &  # CLIPQ_API_HOST / CLIPQ_API_PORT, default 127.0.0.1:8080
api=$!

stop() {
    trap - INT TERM EXIT
    kill -TERM "$worker" "$api" 2>/dev/null || true
    wait "$worker" "$api" 2>/dev/null || true
}
trap stop INT TERM EXIT
echo "clipq: API on http://${CLIPQ_API_HOST:-127.0.0.1}:${CLIPQ_API_PORT:-8080} (docs at /docs); Ctrl-C stops it" >&2
# Whichever ends first (or Ctrl-C) ends both.
wait -n "$worker" "$api"
