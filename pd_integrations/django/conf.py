"""The ``PAGERDUTY`` setting, read once through the shared settings model.

Each name of ``PAGERDUTY`` is a setting of :data:`pd_integrations.settings.SETTINGS`,
upper-case (``SLOW_REQUEST_MS``); one not given falls back to its ``PAGERDUTY_<NAME>``
environment variable, as in every framework. Every problem found is recorded with the
id of the system check that reports it (``pd_integrations.E002`` ...): the code is the
setting's, declared with it. At run time an invalid value is replaced by its default,
so a typo in the settings never breaks a request; ``manage.py check`` (and every
``runserver``, ``migrate``...) reports it. The object is cached and dropped when the
setting changes (``override_settings``) or :func:`reset` is called.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final, Literal

from django.conf import settings as django_settings
from django.http import UnreadablePostError

from pd_integrations.settings import SETTINGS, SETTINGS_BY_NAME, InvalidSetting, PagerDutySettings
from pd_integrations.settings import load as load_settings
from pd_integrations.settings.health_checks import HealthCheckSpec, health_check_errors
from pd_integrations.settings.model import Problem as SettingProblem

__all__ = [
    "CHECK_ID_PREFIX",
    "KNOWN_SETTINGS",
    "SETTING",
    "HealthCheckSpec",
    "PagerDutySettings",
    "Problem",
    "get",
    "get_with_problems",
    "load",
    "reset",
]

SETTING: Final = "PAGERDUTY"
CHECK_ID_PREFIX: Final = "pd_integrations"
# A client that hangs up while uploading makes Django raise this on reading the body:
# the response is a 500, but nothing on the server is broken.
DEFAULT_IGNORE_EXCEPTIONS: Final = (UnreadablePostError,)
# Names this app used before the settings model; read as the model's name.
ALIASES: Final = {"HEALTH_ERRORS": "HEALTH_SHOW_ERRORS"}
KNOWN_SETTINGS: Final = tuple(setting.django_key for setting in SETTINGS)
# Django's own defaults: the health view is routed in urls.py, not served at a path.
DJANGO_DEFAULTS: Final = {"ignore_exceptions": DEFAULT_IGNORE_EXCEPTIONS, "health_path": None}

Level = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the settings, as the system check reports it."""

    id: str
    """``pd_integrations.E001`` ..."""
    level: Level
    msg: str
    hint: str | None = None


def _id(code: str) -> str:
    return f"{CHECK_ID_PREFIX}.{code}"


def _ref(name: str) -> str:
    return f"{SETTING}[{name!r}]"


def _from_model(problem: SettingProblem) -> Problem:
    return Problem(_id(problem.code), problem.level, problem.message, problem.hint)


def load(
    raw: object = None, environ: Mapping[str, str] | None = None
) -> tuple[PagerDutySettings, list[Problem]]:
    """Read ``raw`` (by default ``settings.PAGERDUTY``) and the environment.

    Returns the settings to use, with every invalid value replaced by its default, and
    the problems found. Never raises.
    """
    if raw is None:
        raw = getattr(django_settings, SETTING, None)
    problems: list[Problem] = []
    if raw is None:
        raw = {}
    elif not isinstance(raw, Mapping):
        problems.append(
            Problem(
                _id("E006"),
                "error",
                f"The {SETTING} setting must be a dict, not {type(raw).__name__}.",
                f"{SETTING} = {{'ROUTING_KEY': ..., 'SLOW_REQUEST_MS': 5000}}",
            )
        )
        raw = {}
    given: dict[str, object] = {}
    for name, value in raw.items():
        key = ALIASES.get(name, name)
        if key in KNOWN_SETTINGS:
            given[key.lower()] = value
            continue
        close = difflib.get_close_matches(str(name), KNOWN_SETTINGS, n=1)
        problems.append(
            Problem(
                _id("E003"),
                "error",
                f"Unknown setting {SETTING}[{name!r}].",
                f"Did you mean {close[0]!r}?"
                if close
                else f"Known settings: {', '.join(KNOWN_SETTINGS)}.",
            )
        )
    # Every unusable health check is a problem of its own; the usable ones still run.
    checks = given.pop("health_checks", None)
    settings = _load_model(given, environ)
    if checks is not None:
        try:
            checks = SETTINGS_BY_NAME["health_checks"].text(checks)
        except InvalidSetting as not_json:
            specs: tuple[HealthCheckSpec, ...] = ()
            errors = [not_json]
        else:
            specs, errors = health_check_errors(checks)
        ref = _ref("HEALTH_CHECKS")
        for invalid in errors:
            text = str(invalid)
            separator = "" if text.startswith("[") else " "
            problems.append(Problem(_id("E010"), "error", f"{ref}{separator}{text}", invalid.hint))
        settings = replace(
            settings,
            health_checks=specs,
            origins={**settings.origins, "health_checks": ref},
            refs={**settings.refs, "health_checks": ref},
        )
    problems.extend(_from_model(problem) for problem in settings.problems)
    return settings, problems


def _load_model(
    given: Mapping[str, object], environ: Mapping[str, str] | None
) -> PagerDutySettings:
    """The model's loader with Django's names and defaults."""
    return load_settings(
        given,
        origin=lambda setting: _ref(setting.django_key),
        ref=lambda setting: _ref(setting.django_key),
        environ=environ,
        defaults=DJANGO_DEFAULTS,
    )


_cache: tuple[PagerDutySettings, list[Problem]] | None = None
_cache_lock = threading.Lock()


def get() -> PagerDutySettings:
    """The settings in effect (cached until the setting changes or :func:`reset`)."""
    return get_with_problems()[0]


def get_with_problems() -> tuple[PagerDutySettings, list[Problem]]:
    global _cache
    cached = _cache
    if cached is None:
        with _cache_lock:
            cached = _cache
            if cached is None:
                cached = _cache = load()
    return cached


def reset() -> None:
    """Forget the cached settings: the next :func:`get` reads them again."""
    global _cache
    with _cache_lock:
        _cache = None
