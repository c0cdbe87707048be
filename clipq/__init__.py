"""clipq's service kernel: what the HTTP edge (``api``) and the Celery edge (``worker``) share.

Settings, the job and collection contracts, queue and task names, the Redis stores,
metrics, webhook delivery, the typed HTTP client and the CLI. It imports neither
FastAPI, Celery, torch nor numpy at module level; the ML core (``clipcore``) knows
nothing of it.
"""
