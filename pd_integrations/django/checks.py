"""System checks: ``manage.py check`` (and ``runserver``, ``migrate``...) report bad settings.

Ids are ``pd_integrations.<code>``; the codes are listed in docs/django.md. Silence one
with ``SILENCED_SYSTEM_CHECKS = ["pd_integrations.W001"]`` (for instance in a local
development settings file that has no routing key).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from . import conf

TAG: Final = "pagerduty"
MIDDLEWARE_PATH: Final = "pd_integrations.django.middleware.PagerDutyMiddleware"


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Every problem in ``settings.PAGERDUTY`` and the environment's fallbacks."""
    _, problems = conf.load()
    return [_message(problem) for problem in problems]


def _message(problem: conf.Problem) -> checks.CheckMessage:
    cls = checks.Error if problem.level == "error" else checks.Warning
    return cls(problem.msg, hint=problem.hint, id=problem.id)


def check_middleware(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """``PagerDutyMiddleware`` should be in ``MIDDLEWARE``, once."""
    entries = list(getattr(settings, "MIDDLEWARE", None) or ())
    found = sum(1 for entry in entries if _is_ours(entry))
    if found == 0:
        return [
            checks.Warning(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE: unhandled exceptions still alert, "
                "but slow requests and handled 5xx responses are not watched.",
                hint=f"Add {MIDDLEWARE_PATH!r} to MIDDLEWARE, as its first entry to time "
                "the whole request.",
                id=f"{conf.CHECK_ID_PREFIX}.W002",
            )
        ]
    if found > 1:
        return [
            checks.Error(
                f"{MIDDLEWARE_PATH} is in MIDDLEWARE {found} times: each request would be "
                "timed and reported more than once.",
                hint="Keep one entry.",
                id=f"{conf.CHECK_ID_PREFIX}.E005",
            )
        ]
    return []


def _is_ours(entry: object) -> bool:
    if entry == MIDDLEWARE_PATH:
        return True
    if not isinstance(entry, str) or not entry.endswith("PagerDutyMiddleware"):
        return False
    try:
        cls = import_string(entry)
    except ImportError:
        return False  # Django's own checks and handler report a broken entry
    from .middleware import PagerDutyMiddleware

    return isinstance(cls, type) and issubclass(cls, PagerDutyMiddleware)


def register() -> None:
    """Register the checks (from ``AppConfig.ready``); registering twice is harmless."""
    checks.register(check_settings, TAG)
    checks.register(check_middleware, TAG)
