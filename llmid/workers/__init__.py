"""Celery app and thin tasks per stage (engine in, store out) for scale-out on CPU/GPU workers (issue 7)."""
