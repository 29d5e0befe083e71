"""The ``PAGERDUTY`` setting, read once and validated into one typed object.

Every problem found is recorded with the id of the system check that reports it
(``pd_integrations.E002`` ...). At run time an invalid value is replaced by its
default, so a typo in the settings never breaks a request; ``manage.py check`` (and
every ``runserver``, ``migrate``...) reports it. The object is cached and dropped when
the setting changes (``override_settings``) or :func:`reset` is called.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

from django.conf import settings as django_settings

from pd_integrations import config
from pd_integrations import settings as values
from pd_integrations.client import DEFAULT_BASE_URL
from pd_integrations.config import DEFAULT_EXIT_FLUSH_TIMEOUT
from pd_integrations.errors import ConfigurationError
from pd_integrations.events import Link, Severity, check_routing_key, mask_key
from pd_integrations.health import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_RECOVERY_THRESHOLD,
    DEFAULT_TIMEOUT,
)
from pd_integrations.health import HealthCheck as HealthCheckFn
from pd_integrations.monitor import DEFAULT_EXCLUDE_PATHS, DedupBy
from pd_integrations.settings import InvalidSetting
from pd_integrations.state import safe_url
from pd_integrations.webhook_signature import parse_secrets

SETTING: Final = "PAGERDUTY"
CHECK_ID_PREFIX: Final = "pd_integrations"
SLOW_REQUEST_MS_VAR: Final = "PAGERDUTY_SLOW_REQUEST_MS"
# A client that hangs up while uploading makes Django raise this on reading the body:
# the response is a 500, but nothing on the server is broken.
DEFAULT_IGNORE_EXCEPTIONS: Final = ("django.http.UnreadablePostError",)

KNOWN_SETTINGS: Final = (
    "ROUTING_KEY",
    "EVENTS_BASE_URL",
    "SOURCE",
    "ENVIRONMENT",
    "COMPONENT",
    "CLIENT_URL",
    "SLOW_REQUEST_MS",
    "SLOW_ROUTES",
    "EXCLUDE_PATHS",
    "ALERT_ON_HANDLED_5XX",
    "SEVERITY_FOR_STATUS",
    "DEDUP_BY",
    "RUNBOOKS",
    "IGNORE_EXCEPTIONS",
    "HEALTH_CHECKS",
    "HEALTH_INTERVAL",
    "HEALTH_TIMEOUT",
    "HEALTH_FAILURE_THRESHOLD",
    "HEALTH_RECOVERY_THRESHOLD",
    "HEALTH_ERRORS",
    "WEBHOOK_SECRET",
    "STATE_URL",
    "SPOOL",
    "FLUSH_TIMEOUT",
    "REFRESH_AFTER",
)
HEALTH_CHECK_OPTIONS: Final = (
    "CHECK",
    "TIMEOUT",
    "DEPENDS_ON",
    "SEVERITY",
    "RUNBOOK",
    "FAILURE_THRESHOLD",
    "RECOVERY_THRESHOLD",
)

Level = Literal["error", "warning"]
_Value = TypeVar("_Value")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the settings, as the system check reports it."""

    id: str
    """``pd_integrations.E001`` ..."""
    level: Level
    msg: str
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class HealthCheckSpec:
    """One entry of ``HEALTH_CHECKS``, imported and checked."""

    name: str
    check: HealthCheckFn
    target: str
    """The dotted path it was imported from, or the callable's name."""
    timeout: float | None = None
    depends_on: tuple[str, ...] = ()
    severity: Severity = Severity.CRITICAL
    runbook: str | None = None
    failure_threshold: int | None = None
    recovery_threshold: int | None = None


@dataclass(frozen=True, slots=True)
class PagerDutySettings:
    """``settings.PAGERDUTY`` with the environment's fallbacks applied and checked."""

    # Not in repr(): settings objects end up in logs and tracebacks.
    routing_key: str | None = field(repr=False)
    """The key in effect (from the setting, else the environment); ``None`` if there is none."""
    routing_key_origin: str | None
    """Where it came from: ``PAGERDUTY['ROUTING_KEY']`` or an environment variable's name."""
    routing_key_error: str | None
    """Why the key in effect is unusable (malformed), with the key masked."""
    events_base_url: str
    source: str
    environment: str | None
    component: str | None
    client_url: str | None
    slow_request_ms: float | None
    slow_routes: Mapping[str, float | None]
    exclude_paths: tuple[str, ...]
    alert_on_handled_5xx: bool
    severity_for_status: Mapping[int, Severity | None]
    dedup_by: DedupBy
    runbooks: Mapping[str, str | Link]
    ignore_exceptions: tuple[type[BaseException], ...]
    health_checks: tuple[HealthCheckSpec, ...]
    health_interval: float | None
    health_timeout: float
    health_failure_threshold: int
    health_recovery_threshold: int
    health_errors: bool
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    """The webhook signing secrets in effect (several during rotation); none: no webhooks."""
    webhook_secrets_origin: str | None = None
    """``PAGERDUTY['WEBHOOK_SECRET']`` or ``PAGERDUTY_WEBHOOK_SECRET``; ``None`` without one."""
    state_url: str | None = field(default=None, repr=False)
    """Where alert state is shared (``redis://...``); ``None``: in this process. May hold a
    password: not in ``repr()``, and :meth:`summary` shows it without."""
    spool: str | None = None
    """The SQLite spool file; ``None``: events wait in memory only."""
    flush_timeout: float = DEFAULT_EXIT_FLUSH_TIMEOUT
    """Seconds the flush at exit and on SIGTERM may take."""
    refresh_after: float = config.DEFAULT_REFRESH_AFTER
    """Seconds between triggers of an open alert that keeps occurring; 0: never."""

    @property
    def enabled(self) -> bool:
        """Is there a well-formed routing key, so that alerts are sent?"""
        return self.routing_key is not None and self.routing_key_error is None

    @property
    def masked_routing_key(self) -> str:
        return mask_key(self.routing_key)

    def summary(self) -> dict[str, Any]:
        """What ``manage.py pagerduty check`` shows: every setting, the key masked."""
        return {
            "routing_key": self.masked_routing_key if self.routing_key else None,
            "routing_key_origin": self.routing_key_origin,
            "enabled": self.enabled,
            "events_base_url": self.events_base_url,
            "source": self.source,
            "environment": self.environment,
            "component": self.component,
            "client_url": self.client_url,
            "slow_request_ms": self.slow_request_ms,
            "slow_routes": dict(self.slow_routes),
            "exclude_paths": list(self.exclude_paths),
            "alert_on_handled_5xx": self.alert_on_handled_5xx,
            "severity_for_status": {
                str(status): None if sev is None else sev.value
                for status, sev in self.severity_for_status.items()
            },
            "dedup_by": self.dedup_by,
            "runbooks": {
                name: url if isinstance(url, str) else url.href
                for name, url in self.runbooks.items()
            },
            "ignore_exceptions": [_qualname(cls) for cls in self.ignore_exceptions],
            "health_checks": {spec.name: spec.target for spec in self.health_checks},
            "health_interval": self.health_interval,
            "health_timeout": self.health_timeout,
            "health_failure_threshold": self.health_failure_threshold,
            "health_recovery_threshold": self.health_recovery_threshold,
            "health_errors": self.health_errors,
            "webhook_secrets": len(self.webhook_secrets),
            "webhook_secrets_origin": self.webhook_secrets_origin,
            "state_url": None if self.state_url is None else safe_url(self.state_url),
            "spool": self.spool,
            "flush_timeout": self.flush_timeout,
            "refresh_after": self.refresh_after,
        }


def _id(code: str) -> str:
    return f"{CHECK_ID_PREFIX}.{code}"


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# -- value checks: pd_integrations.settings, shared with the Flask extension ----------

_ms_or_none = partial(values.check_positive_or_none, unit="milliseconds")
_seconds = partial(values.check_positive, unit="seconds")
_seconds_or_none = partial(values.check_positive_or_none, unit="seconds")


def _import(path: str) -> object:
    try:
        return values.import_object(path)
    except ImportError as error:
        raise InvalidSetting(f"cannot import {path!r}: {error}") from None


# -- HEALTH_CHECKS ----------------------------------------------------------------------


def _health_checks(value: object, problems: list[Problem]) -> tuple[HealthCheckSpec, ...]:
    """Every usable check, dependencies first; each unusable one is a problem of its own."""
    try:
        entries = values.check_mapping(value)
    except InvalidSetting as error:
        problems.append(_problem("E010", _ref("HEALTH_CHECKS"), error))
        return ()
    specs: dict[str, HealthCheckSpec] = {}
    for name, entry in entries.items():
        try:
            if not isinstance(name, str) or not name.strip():
                raise InvalidSetting(f"names must be non-empty strings, not {name!r}")
            specs[name] = _health_check(name, entry)
        except InvalidSetting as error:
            problems.append(_problem("E010", _check_ref(name), error))
    return _dependencies_first(specs, problems)


def _check_ref(name: object) -> str:
    return f"{_ref('HEALTH_CHECKS')}[{name!r}]"


def _health_check(name: str, entry: object) -> HealthCheckSpec:
    options: Mapping[Any, Any] = entry if isinstance(entry, Mapping) else {"CHECK": entry}
    unknown = [key for key in options if key not in HEALTH_CHECK_OPTIONS]
    if unknown:
        raise InvalidSetting(
            f"has unknown option(s) {', '.join(map(repr, unknown))}",
            hint=f"known options: {', '.join(HEALTH_CHECK_OPTIONS)}",
        )
    target = options.get("CHECK")
    if target is None:
        raise InvalidSetting("needs 'CHECK': a dotted path to the check function")
    check = _import(target) if isinstance(target, str) else target
    if not callable(check):
        raise InvalidSetting(f"{target!r} is not callable")
    label = target if isinstance(target, str) else getattr(check, "__qualname__", repr(check))
    try:
        severity = Severity.parse(options.get("SEVERITY", Severity.CRITICAL))
    except (ValueError, AttributeError):
        raise InvalidSetting(
            f"'SEVERITY' must be critical, error, warning or info, not {options['SEVERITY']!r}"
        ) from None
    runbook = options.get("RUNBOOK")
    if runbook is not None and (
        not isinstance(runbook, str) or urlsplit(runbook).scheme not in ("http", "https")
    ):
        raise InvalidSetting(f"'RUNBOOK' must be an http:// or https:// URL, not {runbook!r}")
    timeout = options.get("TIMEOUT")
    failures = options.get("FAILURE_THRESHOLD")
    successes = options.get("RECOVERY_THRESHOLD")
    try:
        depends_on = values.check_strings(options.get("DEPENDS_ON", ()))
        return HealthCheckSpec(
            name=name,
            check=check,
            target=str(label),
            timeout=None if timeout is None else _seconds(timeout),
            depends_on=depends_on,
            severity=severity,
            runbook=runbook,
            failure_threshold=None if failures is None else values.check_threshold(failures),
            recovery_threshold=None if successes is None else values.check_threshold(successes),
        )
    except InvalidSetting as error:
        raise InvalidSetting(f"has an invalid option: {error}") from None


def _dependencies_first(
    specs: dict[str, HealthCheckSpec], problems: list[Problem]
) -> tuple[HealthCheckSpec, ...]:
    """Order checks so each comes after what it depends on (HealthMonitor requires it)."""
    ordered: dict[str, HealthCheckSpec] = {}
    visiting: set[str] = set()

    def visit(spec: HealthCheckSpec) -> bool:
        if spec.name in ordered:
            return True
        if spec.name in visiting:
            problems.append(
                _problem("E010", _check_ref(spec.name), InvalidSetting("depends on itself"))
            )
            return False
        visiting.add(spec.name)
        try:
            for dependency in spec.depends_on:
                if dependency not in specs:
                    problems.append(
                        _problem(
                            "E010",
                            _check_ref(spec.name),
                            InvalidSetting(
                                f"depends on {dependency!r}, which is not a usable check"
                            ),
                        )
                    )
                    return False
                if not visit(specs[dependency]):
                    return False
        finally:
            visiting.discard(spec.name)
        ordered[spec.name] = spec
        return True

    for spec in specs.values():
        visit(spec)
    return tuple(ordered.values())


# -- reading the whole setting ----------------------------------------------------------


def _ref(name: str) -> str:
    return f"{SETTING}[{name!r}]"


def _problem(code: str, ref: str, error: InvalidSetting) -> Problem:
    """``ref`` is what is wrong, such as ``PAGERDUTY['SLOW_REQUEST_MS']``."""
    return Problem(_id(code), "error", f"{ref} {error}", error.hint)


class _Reader:
    """Reads one name at a time, recording a problem and using the default on failure."""

    def __init__(self, raw: Mapping[Any, Any]) -> None:
        self.raw = raw
        self.problems: list[Problem] = []

    def get(self, name: str, code: str, parse: Callable[[object], Any], default: Any) -> Any:
        if name not in self.raw:
            return default
        try:
            return parse(self.raw[name])
        except InvalidSetting as error:
            self.problems.append(_problem(code, _ref(name), error))
            return default

    def text(self, name: str, env: Callable[[str | None], str | None]) -> str | None:
        """A text setting that falls back to its environment variable."""
        return env(self.get(name, "E015", values.check_optional_text, None))


def _routing_key(
    reader: _Reader, environ: Mapping[str, str] | None
) -> tuple[str | None, str | None, str | None]:
    """The key in effect, where it came from, and why it is unusable (if it is)."""
    explicit = reader.raw.get("ROUTING_KEY")
    key: str | None = None
    origin: str | None = None
    if explicit is not None and not isinstance(explicit, str):
        error = f"{SETTING}['ROUTING_KEY'] must be a string, not {type(explicit).__name__}"
        reader.problems.append(Problem(_id("E001"), "error", error, _KEY_HINT))
        return None, f"{SETTING}['ROUTING_KEY']", error
    if explicit:
        key, origin = explicit, f"{SETTING}['ROUTING_KEY']"
    else:
        for name in config.ROUTING_KEY_VARS:
            key = config.env_value(name, environ)
            if key:
                origin = name
                break
    if key is None:
        reader.problems.append(
            Problem(
                _id("W001"),
                "warning",
                "No PagerDuty routing key: alerting is disabled and nothing will be sent.",
                f"Set {SETTING}['ROUTING_KEY'] or the PAGERDUTY_ROUTING_KEY environment "
                "variable to a 32-character Events API v2 integration key.",
            )
        )
        return None, None, None
    try:
        check_routing_key(key)
    except ConfigurationError as error:
        message = f"{error} (from {origin}); alerting is disabled"
        reader.problems.append(Problem(_id("E001"), "error", message, _KEY_HINT))
        return key, origin, message
    return key, origin, None


_KEY_HINT = (
    "An Events API v2 integration key is 32 letters and digits: copy it from the service's "
    "Integrations tab in PagerDuty, without spaces or a trailing newline."
)


def _from_env(
    reader: _Reader,
    var: str,
    code: str,
    check: Callable[[object], _Value],
    environ: Mapping[str, str] | None,
    consequence: str,
    text: Callable[[object], object] = lambda value: value,
) -> _Value | None:
    """The checked value of environment variable ``var``; ``None`` if unset or invalid."""
    raw = config.env_value(var, environ)
    if raw is None:
        return None
    try:
        return check(text(raw))
    except InvalidSetting as error:
        message = f"{var} {error.problem}, not {raw!r}; {consequence}"
        reader.problems.append(Problem(_id(code), "error", message, error.hint))
        return None


def _setting_or_env(
    reader: _Reader,
    name: str,
    var: str,
    code: str,
    check: Callable[[object], _Value],
    environ: Mapping[str, str] | None,
    consequence: str,
    text: Callable[[object], object] = lambda value: value,
) -> tuple[_Value, str] | None:
    """The setting, else (unset, ``None`` or invalid) the environment variable; and its origin."""
    if reader.raw.get(name) is not None:
        value: _Value | None = reader.get(name, code, check, None)
        if value is not None:
            return value, _ref(name)
    value = _from_env(reader, var, code, check, environ, consequence, text)
    return None if value is None else (value, var)


def _slow_request_ms(reader: _Reader, environ: Mapping[str, str] | None) -> float | None:
    """The setting (``None`` there turns it off), else the environment, else off."""
    if "SLOW_REQUEST_MS" in reader.raw:
        value: float | None = reader.get("SLOW_REQUEST_MS", "E002", _ms_or_none, None)
        return value
    return _from_env(
        reader,
        SLOW_REQUEST_MS_VAR,
        "E002",
        partial(values.check_positive, unit="milliseconds"),
        environ,
        "slow-request alerts are off",
        values.number_from_text,
    )


def _state_url(reader: _Reader, environ: Mapping[str, str] | None) -> str | None:
    found = _setting_or_env(
        reader,
        "STATE_URL",
        config.STATE_URL_VAR,
        "E018",
        values.check_state_url,
        environ,
        "alert state stays in this process",
    )
    return None if found is None else found[0]


def _spool(reader: _Reader, environ: Mapping[str, str] | None) -> str | None:
    found = _setting_or_env(
        reader,
        "SPOOL",
        config.SPOOL_VAR,
        "E019",
        values.check_spool_path,
        environ,
        "events wait in memory only",
    )
    if found is None:
        return None
    path, origin = found
    directory = values.missing_spool_directory(path)
    if directory is not None:
        reader.problems.append(
            Problem(
                _id("W003"),
                "warning",
                f"The spool file {path!r} (from {origin}) cannot be created: the directory "
                f"{directory!r} does not exist, so events will wait in memory only.",
                "Create the directory, writable by the user the server runs as, or point "
                f"{origin} at a file in an existing one.",
            )
        )
    return path


def _flush_timeout(reader: _Reader, environ: Mapping[str, str] | None) -> float:
    found = _setting_or_env(
        reader,
        "FLUSH_TIMEOUT",
        config.FLUSH_TIMEOUT_VAR,
        "E020",
        values.check_flush_timeout,
        environ,
        f"the flush at exit waits {DEFAULT_EXIT_FLUSH_TIMEOUT:g} s",
        values.number_from_text,
    )
    return DEFAULT_EXIT_FLUSH_TIMEOUT if found is None else found[0]


def _refresh_after(reader: _Reader, environ: Mapping[str, str] | None) -> float:
    found = _setting_or_env(
        reader,
        "REFRESH_AFTER",
        config.REFRESH_AFTER_VAR,
        "E021",
        values.check_refresh_after,
        environ,
        f"open alerts are refreshed every {config.DEFAULT_REFRESH_AFTER:g} s",
        values.number_from_text,
    )
    return config.DEFAULT_REFRESH_AFTER if found is None else found[0]


def _webhook_secrets(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return parse_secrets(value)
    if not isinstance(value, list | tuple) or not all(
        isinstance(item, str) and item.strip() for item in value
    ):
        # The type only: the value may hold a secret.
        raise InvalidSetting(
            f"must be a string or a list of non-empty strings, not {type(value).__name__}",
            hint="The signing secret of the webhook subscription, or several while rotating; "
            "or leave it out and set PAGERDUTY_WEBHOOK_SECRET.",
        )
    return parse_secrets(value)


def _webhook_secrets_in_effect(
    reader: _Reader, environ: Mapping[str, str] | None
) -> tuple[tuple[str, ...], str | None]:
    """The setting's secrets, else the environment's; an invalid setting counts as unset."""
    secrets: tuple[str, ...] = reader.get("WEBHOOK_SECRET", "E017", _webhook_secrets, ())
    if secrets:
        return secrets, _ref("WEBHOOK_SECRET")
    secrets = parse_secrets(config.env_value(config.WEBHOOK_SECRET_VAR, environ))
    return secrets, config.WEBHOOK_SECRET_VAR if secrets else None


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
    reader = _Reader(raw)
    reader.problems = problems
    for name in raw:
        if name not in KNOWN_SETTINGS:
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
    key, origin, key_error = _routing_key(reader, environ)
    base_url = _setting_or_env(
        reader,
        "EVENTS_BASE_URL",
        config.EVENTS_BASE_URL_VAR,
        "E012",
        values.check_events_base_url,
        environ,
        f"using {DEFAULT_BASE_URL}",
    )
    health_checks: tuple[HealthCheckSpec, ...] = ()
    if "HEALTH_CHECKS" in raw:
        health_checks = _health_checks(raw["HEALTH_CHECKS"], problems)
    webhook_secrets, webhook_secrets_origin = _webhook_secrets_in_effect(reader, environ)
    settings = PagerDutySettings(
        routing_key=key,
        routing_key_origin=origin,
        routing_key_error=key_error,
        events_base_url=DEFAULT_BASE_URL if base_url is None else base_url[0],
        source=config.source(
            reader.get("SOURCE", "E015", values.check_optional_text, None), environ
        ),
        environment=reader.text("ENVIRONMENT", lambda v: config.environment(v, environ)),
        component=reader.get("COMPONENT", "E015", values.check_optional_text, None),
        client_url=reader.text("CLIENT_URL", lambda v: config.client_url(v, environ)),
        slow_request_ms=_slow_request_ms(reader, environ),
        slow_routes=reader.get("SLOW_ROUTES", "E007", values.check_slow_routes, {}),
        exclude_paths=reader.get(
            "EXCLUDE_PATHS", "E008", values.check_strings, DEFAULT_EXCLUDE_PATHS
        ),
        alert_on_handled_5xx=reader.get("ALERT_ON_HANDLED_5XX", "E013", values.check_flag, False),
        severity_for_status=reader.get(
            "SEVERITY_FOR_STATUS", "E014", values.check_severity_for_status, {}
        ),
        dedup_by=reader.get("DEDUP_BY", "E004", values.check_dedup_by, "fingerprint"),
        runbooks=reader.get("RUNBOOKS", "E009", values.check_runbooks, {}),
        ignore_exceptions=reader.get(
            "IGNORE_EXCEPTIONS",
            "E016",
            values.check_exception_types,
            values.check_exception_types(DEFAULT_IGNORE_EXCEPTIONS),
        ),
        health_checks=health_checks,
        health_interval=reader.get("HEALTH_INTERVAL", "E011", _seconds_or_none, None),
        health_timeout=reader.get("HEALTH_TIMEOUT", "E011", _seconds, DEFAULT_TIMEOUT),
        health_failure_threshold=reader.get(
            "HEALTH_FAILURE_THRESHOLD", "E011", values.check_threshold, DEFAULT_FAILURE_THRESHOLD
        ),
        health_recovery_threshold=reader.get(
            "HEALTH_RECOVERY_THRESHOLD", "E011", values.check_threshold, DEFAULT_RECOVERY_THRESHOLD
        ),
        health_errors=reader.get("HEALTH_ERRORS", "E013", values.check_flag, False),
        webhook_secrets=webhook_secrets,
        webhook_secrets_origin=webhook_secrets_origin,
        state_url=_state_url(reader, environ),
        spool=_spool(reader, environ),
        flush_timeout=_flush_timeout(reader, environ),
        refresh_after=_refresh_after(reader, environ),
    )
    return settings, problems


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
