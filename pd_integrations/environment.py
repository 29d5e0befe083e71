"""Settings that fall back to environment variables when not given explicitly.

One place knows the variable names, so the client, the AlertManager and every
framework adapter read the environment the same way.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping

from .errors import ConfigurationError

ROUTING_KEY_VARS = ("PAGERDUTY_ROUTING_KEY", "PAGERDUTY_INTEGRATION_KEY")
EVENTS_BASE_URL_VAR = "PAGERDUTY_EVENTS_BASE_URL"
API_KEY_VAR = "PAGERDUTY_API_KEY"
SERVICE_ID_VAR = "PAGERDUTY_SERVICE_ID"
ESCALATION_POLICY_VAR = "PAGERDUTY_DEFAULT_ESCALATION_POLICY"
FROM_EMAIL_VAR = "PAGERDUTY_DEFAULT_FROM_EMAIL"
WEBHOOK_SECRET_VAR = "PAGERDUTY_WEBHOOK_SECRET"  # noqa: S105 - a variable name
APP_NAME_VAR = "APP_NAME"
APP_ENV_VAR = "APP_ENV"
APP_URL_VAR = "APP_URL"
STATE_URL_VAR = "PAGERDUTY_STATE_URL"
SPOOL_VAR = "PAGERDUTY_SPOOL"
FLUSH_TIMEOUT_VAR = "PAGERDUTY_FLUSH_TIMEOUT"
DEFAULT_EXIT_FLUSH_TIMEOUT = 2.0
REFRESH_AFTER_VAR = "PAGERDUTY_REFRESH_AFTER"
DEFAULT_REFRESH_AFTER = 300.0
REFRESH_OFF_WORDS = frozenset({"off", "none"})


def _first(names: tuple[str, ...], environ: Mapping[str, str] | None) -> str | None:
    env = os.environ if environ is None else environ
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def env_value(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The stripped value of ``name``, or ``None`` when unset or blank."""
    return _first((name,), environ)


def routing_key(
    explicit: str | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The routing key: ``explicit``, else ``PAGERDUTY_ROUTING_KEY``, else its alias."""
    return explicit if explicit else _first(ROUTING_KEY_VARS, environ)


def events_base_url(
    explicit: str | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    return explicit if explicit else env_value(EVENTS_BASE_URL_VAR, environ)


def source(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The event source: ``explicit``, else ``APP_NAME``, else this host's name."""
    return explicit or env_value(APP_NAME_VAR, environ) or socket.gethostname() or "unknown"


def environment(
    explicit: str | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    return explicit if explicit else env_value(APP_ENV_VAR, environ)


def client_url(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    return explicit if explicit else env_value(APP_URL_VAR, environ)


REST_BASE_URL_VAR = "PAGERDUTY_REST_BASE_URL"


def rest_base_url(
    explicit: str | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The REST API base URL: ``explicit``, else ``PAGERDUTY_REST_BASE_URL``, else ``None``."""
    return explicit if explicit else env_value(REST_BASE_URL_VAR, environ)


def state_url(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """Where alert state is shared: ``explicit``, else ``PAGERDUTY_STATE_URL``.

    ``None`` means in-process state (see :mod:`pd_integrations.state.base`).
    """
    return explicit if explicit else env_value(STATE_URL_VAR, environ)


def resolve_spool_path(
    explicit: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The spool file: ``explicit``, else ``PAGERDUTY_SPOOL``, else ``None`` (memory only)."""
    if explicit is not None:
        path = os.fspath(explicit)
        if not path:
            raise ConfigurationError("spool must be a file path, not an empty string")
        return path
    return env_value(SPOOL_VAR, environ)


def resolve_flush_timeout(
    explicit: float | None = None, environ: Mapping[str, str] | None = None
) -> float:
    """The exit flush timeout: ``explicit``, else ``PAGERDUTY_FLUSH_TIMEOUT``, else 2 s."""
    if explicit is None:
        raw = env_value(FLUSH_TIMEOUT_VAR, environ)
        if raw is None:
            return DEFAULT_EXIT_FLUSH_TIMEOUT
        try:
            explicit = float(raw)
        except ValueError:
            raise ConfigurationError(
                f"{FLUSH_TIMEOUT_VAR} must be a number of seconds, got {raw!r}"
            ) from None
    if isinstance(explicit, bool) or not isinstance(explicit, int | float) or not explicit >= 0:
        raise ConfigurationError(
            f"the exit flush timeout must be a number of seconds >= 0, got {explicit!r}"
        )
    return float(explicit)


def parse_refresh_after(value: object) -> float:
    """Seconds between re-sends of an open, still-occurring alert; ``0.0`` means never.

    Takes a number of seconds (0 or more, finite), its text, or ``"off"``/``"none"``.

    :raises ValueError: for anything else.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text in REFRESH_OFF_WORDS:
            return 0.0
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"not a number of seconds: {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"not a number of seconds: {value!r}")
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"not 0 or more seconds: {value!r}")
    return float(value)


def resolve_refresh_after(
    explicit: float | str | None = None, environ: Mapping[str, str] | None = None
) -> float:
    """The refresh interval: ``explicit``, else ``PAGERDUTY_REFRESH_AFTER``, else 300 s.

    ``0`` or ``"off"`` (either way) turns refreshing off and gives ``0.0``.
    """
    if explicit is None:
        raw = env_value(REFRESH_AFTER_VAR, environ)
        if raw is None:
            return DEFAULT_REFRESH_AFTER
        try:
            return parse_refresh_after(raw)
        except ValueError:
            raise ConfigurationError(
                f"{REFRESH_AFTER_VAR} must be a number of seconds, or 0 or 'off' to turn "
                f"refreshing off, got {raw!r}"
            ) from None
    try:
        return parse_refresh_after(explicit)
    except ValueError:
        raise ConfigurationError(
            "refresh_after must be a number of seconds, or 0 or 'off' to turn refreshing "
            f"off, got {explicit!r}"
        ) from None
