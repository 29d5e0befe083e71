"""Health checks, named in ``PAGERDUTY["HEALTH_CHECKS"]``; none needs a database."""

from __future__ import annotations

import shutil
import tempfile

from django.core.cache import cache as django_cache

from .inventory import SERVICE

MIN_FREE_DISK = 0.05


def cache() -> bool:
    """A round trip through Django's cache."""
    django_cache.set("pdexample:health", "ok", timeout=5)
    return bool(django_cache.get("pdexample:health") == "ok")


def inventory() -> bool:
    """The inventory service answers."""
    return SERVICE.ping()


def disk() -> bool:
    """At least 5% free where uploads and exports are written."""
    usage = shutil.disk_usage(tempfile.gettempdir())
    return usage.free / usage.total >= MIN_FREE_DISK
