"""Celery tasks: the app (`celery_app`) and one module per job."""
