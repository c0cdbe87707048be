"""``python -m worker.health``: exit 0 when a pool process on this host has its models loaded
and beats (the container's healthcheck; :mod:`worker.process` starts the beats)."""

from __future__ import annotations

import socket
import sys

import redis

from clipq.settings import get_settings
from clipq.store.jobs import WorkerStore


def main() -> int:
    settings = get_settings()
    store = WorkerStore(redis.Redis.from_url(settings.redis_url), settings.job_ttl_seconds)
    try:
        alive = store.workers_on(socket.gethostname())
    except redis.RedisError as exc:
        print(f"unhealthy: Redis: {exc}", file=sys.stderr)
        return 1
    if not alive:
        print("unhealthy: no pool process with its models loaded yet", file=sys.stderr)
        return 1
    print(f"healthy: {', '.join(alive)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
