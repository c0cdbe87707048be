"""clipq's Celery workers: thin tasks around clipcore."""
