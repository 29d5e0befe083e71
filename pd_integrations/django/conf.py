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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.utils.module_loading import import_string

from pd_integrations import config
from pd_integrations.client import DEFAULT_BASE_URL
from pd_integrations.errors import ConfigurationError
from pd_integrations.events import Severity, check_routing_key, mask_key
from pd_integrations.health import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_RECOVERY_THRESHOLD,
    DEFAULT_TIMEOUT,
)
from pd_integrations.health import HealthCheck as HealthCheckFn
from pd_integrations.monitor import DEFAULT_EXCLUDE_PATHS, DedupBy
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
    runbooks: Mapping[str, str]
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
            "runbooks": dict(self.runbooks),
            "ignore_exceptions": [_qualname(cls) for cls in self.ignore_exceptions],
            "health_checks": {spec.name: spec.target for spec in self.health_checks},
            "health_interval": self.health_interval,
            "health_timeout": self.health_timeout,
            "health_failure_threshold": self.health_failure_threshold,
            "health_recovery_threshold": self.health_recovery_threshold,
            "health_errors": self.health_errors,
            "webhook_secrets": len(self.webhook_secrets),
            "webhook_secrets_origin": self.webhook_secrets_origin,
        }


class _Invalid(ValueError):
    """A value that cannot be used; ``str()`` completes "PAGERDUTY['NAME'] ..."."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def _id(code: str) -> str:
    return f"{CHECK_ID_PREFIX}.{code}"


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# -- value parsers: each returns the checked value or raises _Invalid -------------------


def _number(value: object) -> float:
    # bool is an int, but True milliseconds is certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"must be a number, not {value!r}")
    return float(value)


def _positive(value: object) -> float:
    number = _number(value)
    if not 0 < number < float("inf"):
        raise _Invalid(f"must be a positive number, not {value!r}")
    return number


def _positive_or_none(value: object) -> float | None:
    return None if value is None else _positive(value)


def _threshold(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid(f"must be a whole number of at least 1, not {value!r}")
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be True or False, not {value!r}")
    return value


def _text_or_none(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, not {value!r}")
    return value.strip() or None


def _url(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a URL string, not {value!r}")
    url = value.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        valid = False
    if not valid:
        raise _Invalid(
            f"must be an http:// or https:// URL with a host, not {value!r}",
            f"PagerDuty's is {DEFAULT_BASE_URL}; a local emulator's is http://127.0.0.1:8765",
        )
    return url


def _dedup_by(value: object) -> DedupBy:
    if value == "fingerprint":
        return "fingerprint"
    if value == "route":
        return "route"
    raise _Invalid(
        f"must be 'fingerprint' or 'route', not {value!r}",
        "'fingerprint': one incident per bug; 'route': one incident per method and route",
    )


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise _Invalid(f"must be a list of strings, not {value!r}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise _Invalid(f"must be a list of non-empty strings; {item!r} is not one")
    return items


def _mapping(value: object) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise _Invalid(f"must be a dict, not {type(value).__name__}")
    return value


def _slow_routes(value: object) -> dict[str, float | None]:
    routes: dict[str, float | None] = {}
    for route, ms in _mapping(value).items():
        if not isinstance(route, str) or not route.strip():
            raise _Invalid(
                f"keys must be route templates such as '/orders/<int:pk>/', not {route!r}"
            )
        try:
            routes[route] = _positive_or_none(ms)
        except _Invalid as error:
            raise _Invalid(
                f"[{route!r}] {error} (milliseconds, or None to turn the route off)"
            ) from None
    return routes


def _runbooks(value: object) -> dict[str, str]:
    runbooks: dict[str, str] = {}
    for name, url in _mapping(value).items():
        if not isinstance(name, str) or not name:
            raise _Invalid(
                f"keys must be names (an exception, a route, an alert type), not {name!r}"
            )
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise _Invalid(f"[{name!r}] must be an http:// or https:// URL, not {url!r}")
        runbooks[name] = url
    return runbooks


def _severity_for_status(value: object) -> dict[int, Severity | None]:
    rules: dict[int, Severity | None] = {}
    for status, severity in _mapping(value).items():
        try:
            code = int(status)
        except (TypeError, ValueError):
            code = 0
        if isinstance(status, bool) or not 500 <= code <= 599:
            raise _Invalid(f"keys must be 5xx statuses such as 503, not {status!r}")
        try:
            rules[code] = (
                None
                if severity is None
                else Severity.parse(severity)
                if isinstance(severity, str | Severity)
                else Severity.parse(str(severity))
            )
        except ValueError:
            raise _Invalid(
                f"[{status!r}] must be critical, error, warning, info or None, not {severity!r}"
            ) from None
    return rules


def _exception_types(value: object) -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    for entry in _strings_or_types(value):
        cls = _import(entry) if isinstance(entry, str) else entry
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise _Invalid(f"{entry!r} is not an exception class")
        found.append(cls)
    return tuple(found)


def _strings_or_types(value: object) -> list[object]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise _Invalid(f"must be a list of dotted paths to exception classes, not {value!r}")
    return list(value)


def _import(path: str) -> object:
    try:
        return import_string(path)
    except ImportError as error:
        raise _Invalid(f"cannot import {path!r}: {error}") from None


# -- HEALTH_CHECKS ----------------------------------------------------------------------


def _health_checks(value: object, problems: list[Problem]) -> tuple[HealthCheckSpec, ...]:
    """Every usable check, dependencies first; each unusable one is a problem of its own."""
    try:
        entries = _mapping(value)
    except _Invalid as error:
        problems.append(_problem("E010", _ref("HEALTH_CHECKS"), error))
        return ()
    specs: dict[str, HealthCheckSpec] = {}
    for name, entry in entries.items():
        try:
            if not isinstance(name, str) or not name.strip():
                raise _Invalid(f"names must be non-empty strings, not {name!r}")
            specs[name] = _health_check(name, entry)
        except _Invalid as error:
            problems.append(_problem("E010", _check_ref(name), error))
    return _dependencies_first(specs, problems)


def _check_ref(name: object) -> str:
    return f"{_ref('HEALTH_CHECKS')}[{name!r}]"


def _health_check(name: str, entry: object) -> HealthCheckSpec:
    options: Mapping[Any, Any] = entry if isinstance(entry, Mapping) else {"CHECK": entry}
    unknown = [key for key in options if key not in HEALTH_CHECK_OPTIONS]
    if unknown:
        raise _Invalid(
            f"has unknown option(s) {', '.join(map(repr, unknown))}",
            f"known options: {', '.join(HEALTH_CHECK_OPTIONS)}",
        )
    target = options.get("CHECK")
    if target is None:
        raise _Invalid("needs 'CHECK': a dotted path to the check function")
    check = _import(target) if isinstance(target, str) else target
    if not callable(check):
        raise _Invalid(f"{target!r} is not callable")
    label = target if isinstance(target, str) else getattr(check, "__qualname__", repr(check))
    try:
        severity = Severity.parse(options.get("SEVERITY", Severity.CRITICAL))
    except (ValueError, AttributeError):
        raise _Invalid(
            f"'SEVERITY' must be critical, error, warning or info, not {options['SEVERITY']!r}"
        ) from None
    runbook = options.get("RUNBOOK")
    if runbook is not None and (
        not isinstance(runbook, str) or urlsplit(runbook).scheme not in ("http", "https")
    ):
        raise _Invalid(f"'RUNBOOK' must be an http:// or https:// URL, not {runbook!r}")
    timeout = options.get("TIMEOUT")
    failures = options.get("FAILURE_THRESHOLD")
    successes = options.get("RECOVERY_THRESHOLD")
    try:
        depends_on = _strings(options.get("DEPENDS_ON", ()))
        return HealthCheckSpec(
            name=name,
            check=check,
            target=str(label),
            timeout=None if timeout is None else _positive(timeout),
            depends_on=depends_on,
            severity=severity,
            runbook=runbook,
            failure_threshold=None if failures is None else _threshold(failures),
            recovery_threshold=None if successes is None else _threshold(successes),
        )
    except _Invalid as error:
        raise _Invalid(f"has an invalid option: {error}") from None


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
            problems.append(_problem("E010", _check_ref(spec.name), _Invalid("depends on itself")))
            return False
        visiting.add(spec.name)
        try:
            for dependency in spec.depends_on:
                if dependency not in specs:
                    problems.append(
                        _problem(
                            "E010",
                            _check_ref(spec.name),
                            _Invalid(f"depends on {dependency!r}, which is not a usable check"),
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


def _problem(code: str, ref: str, error: _Invalid) -> Problem:
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
        except _Invalid as error:
            self.problems.append(_problem(code, _ref(name), error))
            return default

    def text(self, name: str, env: Callable[[str | None], str | None]) -> str | None:
        """A text setting that falls back to its environment variable."""
        return env(self.get(name, "E015", _text_or_none, None))


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


def _slow_request_ms(reader: _Reader, environ: Mapping[str, str] | None) -> float | None:
    """The setting (``None`` there turns it off), else the environment, else off."""
    if "SLOW_REQUEST_MS" in reader.raw:
        value: float | None = reader.get("SLOW_REQUEST_MS", "E002", _positive_or_none, None)
        return value
    text = config.env_value(SLOW_REQUEST_MS_VAR, environ)
    if text is None:
        return None
    try:
        return _positive(float(text))
    except (ValueError, _Invalid):
        reader.problems.append(
            Problem(
                _id("E002"),
                "error",
                f"{SLOW_REQUEST_MS_VAR} must be a positive number of milliseconds, "
                f"not {text!r}; slow-request alerts are off",
            )
        )
        return None


def _webhook_secrets(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return parse_secrets(value)
    if not isinstance(value, list | tuple) or not all(
        isinstance(item, str) and item.strip() for item in value
    ):
        raise _Invalid(
            f"must be a string or a list of non-empty strings, not {value!r:.40}",
            "The signing secret of the webhook subscription, or several while rotating; "
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
    base_url = reader.get("EVENTS_BASE_URL", "E012", _url, None)
    if base_url is None:
        env_url = config.events_base_url(None, environ)
        if env_url is not None:
            try:
                base_url = _url(env_url)
            except _Invalid as error:
                problems.append(
                    Problem(
                        _id("E012"),
                        "error",
                        f"{config.EVENTS_BASE_URL_VAR} {error}; using {DEFAULT_BASE_URL}",
                        error.hint,
                    )
                )
    health_checks: tuple[HealthCheckSpec, ...] = ()
    if "HEALTH_CHECKS" in raw:
        health_checks = _health_checks(raw["HEALTH_CHECKS"], problems)
    webhook_secrets, webhook_secrets_origin = _webhook_secrets_in_effect(reader, environ)
    settings = PagerDutySettings(
        routing_key=key,
        routing_key_origin=origin,
        routing_key_error=key_error,
        events_base_url=base_url or DEFAULT_BASE_URL,
        source=config.source(reader.get("SOURCE", "E015", _text_or_none, None), environ),
        environment=reader.text("ENVIRONMENT", lambda v: config.environment(v, environ)),
        component=reader.get("COMPONENT", "E015", _text_or_none, None),
        client_url=reader.text("CLIENT_URL", lambda v: config.client_url(v, environ)),
        slow_request_ms=_slow_request_ms(reader, environ),
        slow_routes=reader.get("SLOW_ROUTES", "E007", _slow_routes, {}),
        exclude_paths=reader.get("EXCLUDE_PATHS", "E008", _strings, DEFAULT_EXCLUDE_PATHS),
        alert_on_handled_5xx=reader.get("ALERT_ON_HANDLED_5XX", "E013", _flag, False),
        severity_for_status=reader.get("SEVERITY_FOR_STATUS", "E014", _severity_for_status, {}),
        dedup_by=reader.get("DEDUP_BY", "E004", _dedup_by, "fingerprint"),
        runbooks=reader.get("RUNBOOKS", "E009", _runbooks, {}),
        ignore_exceptions=reader.get(
            "IGNORE_EXCEPTIONS",
            "E016",
            _exception_types,
            _exception_types(DEFAULT_IGNORE_EXCEPTIONS),
        ),
        health_checks=health_checks,
        health_interval=reader.get("HEALTH_INTERVAL", "E011", _positive_or_none, None),
        health_timeout=reader.get("HEALTH_TIMEOUT", "E011", _positive, DEFAULT_TIMEOUT),
        health_failure_threshold=reader.get(
            "HEALTH_FAILURE_THRESHOLD", "E011", _threshold, DEFAULT_FAILURE_THRESHOLD
        ),
        health_recovery_threshold=reader.get(
            "HEALTH_RECOVERY_THRESHOLD", "E011", _threshold, DEFAULT_RECOVERY_THRESHOLD
        ),
        health_errors=reader.get("HEALTH_ERRORS", "E013", _flag, False),
        webhook_secrets=webhook_secrets,
        webhook_secrets_origin=webhook_secrets_origin,
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
