"""A small Django shop that pages through PagerDuty when it breaks or slows down."""

from __future__ import annotations

# Celery's usual Django layout: the app is loaded with Django, so @shared_task uses it.
from .celery import app as celery_app

__all__ = ["celery_app"]
