"""Every setting, declared once; read from any source with the environment as fallback.

:data:`SETTINGS` is the table: name, how text reads, how a value is checked, the
default, the Django check code and the docs text. A framework adapter supplies only a
source (Flask ``app.config["PAGERDUTY_<NAME>"]``, Django ``PAGERDUTY["<NAME>"]``, the
Starlette middleware's keyword ``<name>``) and an error policy; :func:`load` does the
rest, the same way for all of them:

- a setting not given (absent, ``None`` or ``""``; ``None`` counts as given where it
  turns the feature off) is read from ``PAGERDUTY_<NAME>``, then from the extra
  variables some settings have (``APP_NAME``, ``APP_ENV``, ``APP_URL``,
  ``PAGERDUTY_INTEGRATION_KEY``), else it has its default;
- text, from either place, is read as the setting needs (numbers, ``true``/``false``,
  comma-separated lists, JSON objects), then checked by :mod:`.values`;
- an invalid value becomes a :class:`Problem` naming the setting as its source spells
  it, the value, where it came from and what is allowed, and the default is used.

:func:`load` never raises; :meth:`LoadedSettings.raise_for_errors` is the error policy
of the adapters that fail start-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any, Final, Literal

from pd_integrations.alerts import DEFAULT_AUTO_RESOLVE_AFTER
from pd_integrations.client import DEFAULT_BASE_URL
from pd_integrations.context.breadcrumbs import DEFAULT_BREADCRUMB_BYTES, DEFAULT_BREADCRUMBS
from pd_integrations.context.release import RELEASE_VARIABLES
from pd_integrations.delivery.dispatcher import DEFAULT_STALL_AFTER
from pd_integrations.environment import DEFAULT_EXIT_FLUSH_TIMEOUT, DEFAULT_REFRESH_AFTER
from pd_integrations.errors import ConfigurationError
from pd_integrations.events import (
    ROUTING_KEY_LENGTH,
    Link,
    Severity,
    check_routing_key,
    mask_key,
)
from pd_integrations.health import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_RECOVERY_THRESHOLD,
    DEFAULT_TIMEOUT,
)
from pd_integrations.monitor import DEFAULT_EXCLUDE_PATHS, DEFAULT_INCLUDE_HEADERS, DedupBy
from pd_integrations.policy import BeforeSend, Rule
from pd_integrations.state.base import safe_url
from pd_integrations.webhooks.signature import parse_secrets

from . import values as v
from .health_checks import HealthCheckSpec, check_health_checks
from .tasks import TaskRule, check_severity, check_task_overrides
from .values import InvalidSetting

__all__ = [
    "ENV_PREFIX",
    "SETTINGS",
    "SETTINGS_BY_NAME",
    "LoadedSettings",
    "PagerDutySettings",
    "Problem",
    "Setting",
    "load",
]

ENV_PREFIX: Final = "PAGERDUTY_"
DEFAULT_HEALTH_PATH: Final = "/health"
DEFAULT_TIMEOUT_SECONDS: Final = 10.0
ENVIRONMENT_ORIGIN: Final = "the environment"

Level = Literal["error", "warning"]


def _as_is(value: object) -> object:
    return value


def _number(value: object) -> object:
    return v.number_from_text(v.off_from_text(value))


def _flag(value: object) -> object:
    # Config files and Flask's from_prefixed_env often give 0/1 for a flag.
    if type(value) is int and value in (0, 1):
        return bool(value)
    return v.flag_from_text(value)


def _threshold(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return v.threshold_from_text(value)


def _path_or_off(value: object) -> object:
    if value is False:
        return None
    return v.off_from_text(value)


def _check_path(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("/"):
        raise InvalidSetting("must be a path starting with / (or None)", value)
    return value


def _check_routing_key(value: object) -> str:
    if not isinstance(value, str):
        # The type only: a key is a secret.
        raise InvalidSetting(f"must be a string, not {type(value).__name__}")
    key = value.strip()
    try:
        return check_routing_key(key)
    except ConfigurationError:
        raise InvalidSetting(
            f"is malformed ({mask_key(key)}, {len(key)} characters): an integration key is "
            f"{ROUTING_KEY_LENGTH} letters and digits",
            hint="Copy it from the service's Integrations tab in PagerDuty, without spaces "
            "or a trailing newline.",
        ) from None


def _check_webhook_secret(value: object) -> tuple[str, ...]:
    if isinstance(value, str | list | tuple) and all(
        isinstance(item, str) and item.strip()
        for item in ([value] if isinstance(value, str) else value)
    ):
        return parse_secrets(value)
    # The type only: the value may hold a secret.
    raise InvalidSetting(
        f"must be a string or a list of non-empty strings, not {type(value).__name__}",
        hint="The signing secret of the webhook subscription, or several while rotating.",
    )


def _count(value: object) -> object:
    # ``False``/``off`` turn a count off, as 0 does.
    if value is False:
        return 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("off", "false", "no", "none"):
            return 0
        return v.number_from_text(text)
    return value


def _check_count(value: object) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidSetting("must be a whole number, 0 for off", value)
    return value


def _check_trace_url_template(value: object) -> str | None:
    template = v.check_optional_text(value)
    if template is None:
        return None
    try:
        template.format(trace_id="0" * 32, span_id="0" * 16)
    except (KeyError, IndexError, ValueError):
        raise InvalidSetting(
            "may only use the placeholders {trace_id} and {span_id}", value
        ) from None
    if "{trace_id}" not in template and "{span_id}" not in template:
        raise InvalidSetting("must contain {trace_id} or {span_id}", value)
    return template


def _secrets_text(value: object) -> object:
    return parse_secrets(value) if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: everything any adapter, check command or docs page needs to know."""

    name: str
    """The Python name: the Starlette keyword and the attribute of :class:`PagerDutySettings`."""
    check: Callable[[Any], Any]
    """A Python value -> the checked value; :class:`InvalidSetting` if it cannot be used."""
    default: Any
    code: str
    """The Django system check's code (``E002`` -> ``pd_integrations.E002``)."""
    doc: str
    text: Callable[[object], object] = _as_is
    """Text (an environment variable, a config file's value) -> the Python value."""
    none_means_off: bool = False
    """An explicit ``None`` is a value (it turns the feature off), not "unset"."""
    more_env: tuple[str, ...] = ()
    """Variables read after ``PAGERDUTY_<NAME>``: ``APP_NAME``, an alias..."""
    secret: bool = False
    """Never shown: not in messages, not in ``check`` output."""

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def env_vars(self) -> tuple[str, ...]:
        return (self.env_var, *self.more_env)

    @property
    def flask_key(self) -> str:
        return self.env_var

    @property
    def django_key(self) -> str:
        return self.name.upper()


_seconds = partial(v.check_positive, unit="seconds")
_seconds_or_off = partial(v.check_positive_or_none, unit="seconds")
_ms_or_off = partial(v.check_positive_or_none, unit="milliseconds")


def _attempt_or_off(value: object) -> int | None:
    return None if value is None else v.check_threshold(value)


def _threshold_or_off(value: object) -> object:
    return _threshold(v.off_from_text(value))


SETTINGS: Final[tuple[Setting, ...]] = (
    # -- where events go ------------------------------------------------------------
    Setting("routing_key", _check_routing_key, None, "E001",
            "the Events API v2 integration key of a PagerDuty service; none: nothing is sent",
            more_env=("PAGERDUTY_INTEGRATION_KEY",), secret=True),
    Setting("events_base_url", v.check_events_base_url, DEFAULT_BASE_URL, "E012",
            "where events go: PagerDuty's EU endpoint or a local emulator"),
    Setting("source", v.check_optional_text, None, "E015",
            "the events' `source` (default: the host name)", more_env=("APP_NAME",)),
    Setting("environment", v.check_optional_text, None, "E015",
            "shown in every alert and put in front of every dedup key",
            more_env=("APP_ENV",)),
    Setting("client_url", v.check_optional_text, None, "E015",
            "the events' `client_url`, a link back to your app", more_env=("APP_URL",)),
    Setting("component", v.check_optional_text, None, "E015", "the events' `component`"),
    Setting("timeout", _seconds, DEFAULT_TIMEOUT_SECONDS, "E022",
            "seconds one HTTP request to the Events API may take", text=v.number_from_text),
    Setting("auto_resolve_after", _seconds_or_off, DEFAULT_AUTO_RESOLVE_AFTER, "E023",
            "seconds without a new occurrence before an alert resolves; `None` or `off`: never",
            text=_number, none_means_off=True),
    Setting("refresh_after", v.check_refresh_after, DEFAULT_REFRESH_AFTER, "E021",
            "seconds between two triggers of an open alert that keeps occurring; "
            "`0` or `off`: never",
            text=v.number_from_text),
    Setting("state_url", v.check_state_url, None, "E018",
            "where alert state lives: `memory://` (this process) or a Redis URL shared by "
            "every process"),
    Setting("spool", v.check_spool_path, None, "E019",
            "an SQLite file where events wait until PagerDuty accepted them"),
    Setting("flush_timeout", v.check_flush_timeout, DEFAULT_EXIT_FLUSH_TIMEOUT, "E020",
            "seconds the flush of queued events at exit and on SIGTERM may take",
            text=v.number_from_text),
    Setting("delivery_alert_routing_key", _check_routing_key, None, "E029",
            "a second integration's key: one alert there while delivery to the main key "
            "fails (refused, or stalled)", secret=True),
    Setting("delivery_stall_after", _seconds, DEFAULT_STALL_AFTER, "E030",
            "seconds events may wait with nothing delivered before delivery counts as "
            "failing", text=v.number_from_text),
    # -- policy (see docs/policy.md) -------------------------------------------------
    Setting("before_send", v.check_before_send, None, "E040",
            "a function `(event, hint) -> event or None` (or its dotted path) that sees "
            "every trigger before it is queued"),
    Setting("routing_rules", v.check_routing_rules, (), "E041",
            "rules that ignore alerts, change their severity or send them to another "
            "routing key", text=v.json_from_text),
    # -- context (docs/context.md) --------------------------------------------------
    Setting("release", v.check_optional_text, None, "E034",
            "the running release, in every alert's details; unset: detected from CI and "
            "hosting variables (`SOURCE_VERSION`, `GIT_COMMIT`...)",
            more_env=RELEASE_VARIABLES),
    Setting("announce_release", v.check_flag, False, "E035",
            "send a change event when a release first starts (once per state backend)",
            text=_flag),
    Setting("trace_url_template", _check_trace_url_template, None, "E031",
            "a link to the alert's trace, with `{trace_id}` (and `{span_id}`)"),
    Setting("breadcrumbs", _check_count, DEFAULT_BREADCRUMBS, "E032",
            "the failing request's last log records put in its alert; `0`: none",
            text=_count),
    Setting("breadcrumb_bytes", _check_count, DEFAULT_BREADCRUMB_BYTES, "E032",
            "at most this many bytes of breadcrumbs per alert", text=_count),
    Setting("send_user", v.check_flag, False, "E033",
            "put the authenticated user's id in alerts", text=_flag),
    # -- requests -------------------------------------------------------------------
    Setting("slow_request_ms", _ms_or_off, None, "E002",
            "requests slower than this many milliseconds raise a `warning`; unset: off",
            text=_number, none_means_off=True),
    Setting("slow_routes", v.check_slow_routes, {}, "E007",
            "per-route thresholds: route template to milliseconds, `None` for off",
            text=v.json_from_text),
    Setting("exclude_paths", v.check_strings, DEFAULT_EXCLUDE_PATHS, "E008",
            "path prefixes never reported as slow", text=v.strings_from_text),
    Setting("alert_on_handled_5xx", v.check_flag, False, "E013",
            "alert on 5xx responses the app produced itself, not only on exceptions",
            text=_flag),
    Setting("severity_for_status", v.check_severity_for_status, {}, "E014",
            "5xx status to severity, `None` for no alert", text=v.json_from_text),
    Setting("dedup_by", v.check_dedup_by, "fingerprint", "E004",
            "`fingerprint`: one incident per bug; `route`: one per method and route"),
    Setting("runbooks", v.check_runbooks, {}, "E009",
            "exception, route or alert type to a runbook URL", text=v.json_from_text),
    Setting("ignore_exceptions", v.check_exception_types, (), "E016",
            "exception classes (or dotted paths) that never alert", text=v.strings_from_text),
    Setting("auto_resolve", v.check_flag, True, "E024",
            "request alerts resolve by themselves after `auto_resolve_after`", text=_flag),
    Setting("in_app_include", v.check_strings, (), "E025",
            "module prefixes that are your code (for the fingerprint and the culprit frame)",
            text=v.strings_from_text),
    Setting("in_app_exclude", v.check_strings, (), "E025",
            "module prefixes that are not your code", text=v.strings_from_text),
    Setting("include_headers", v.check_strings, DEFAULT_INCLUDE_HEADERS, "E026",
            "request headers copied into alerts (scrubbed)", text=v.strings_from_text),
    Setting("send_client_ip", v.check_flag, False, "E027",
            "put the client's IP address in alerts", text=_flag),
    # -- health checks --------------------------------------------------------------
    Setting("health_checks", check_health_checks, (), "E010",
            "name to a check function's dotted path, or to its options "
            "(`CHECK`, `TIMEOUT`, `DEPENDS_ON`, `SEVERITY`, `RUNBOOK`, thresholds)",
            text=v.json_from_text),
    Setting("health_interval", _seconds_or_off, None, "E011",
            "seconds between periodic health checks; unset: checks run when probed",
            text=_number, none_means_off=True),
    Setting("health_timeout", _seconds, DEFAULT_TIMEOUT, "E011",
            "seconds one health check may take", text=v.number_from_text),
    Setting("health_failure_threshold", v.check_threshold, DEFAULT_FAILURE_THRESHOLD, "E011",
            "failures in a row before a check pages", text=_threshold),
    Setting("health_recovery_threshold", v.check_threshold, DEFAULT_RECOVERY_THRESHOLD, "E011",
            "successes in a row before its alert resolves", text=_threshold),
    Setting("health_show_errors", v.check_flag, False, "E013",
            "put the checks' (scrubbed) error messages in the health response", text=_flag),
    Setting("health_path", _check_path, DEFAULT_HEALTH_PATH, "E028",
            "where the health endpoint is served; `None` or `off`: not served",
            text=_path_or_off, none_means_off=True),
    # -- webhooks -------------------------------------------------------------------
    Setting("webhook_secret", _check_webhook_secret, (), "E017",
            "the webhook subscription's signing secret; several, separated by commas, "
            "while rotating", text=_secrets_text, secret=True),
    # -- background tasks (Celery) ---------------------------------------------------
    Setting("task_severity", check_severity, Severity.ERROR, "E040",
            "the severity of a task that failed for good"),
    Setting("alert_on_attempt", _attempt_or_off, None, "E041",
            "also alert when a task's attempt number N or later fails and is retried; "
            "unset: only a task that failed for good alerts",
            text=_threshold_or_off, none_means_off=True),
    Setting("slow_task_ms", _ms_or_off, None, "E042",
            "tasks running longer than this many milliseconds raise a `warning`; unset: off",
            text=_number, none_means_off=True),
    Setting("include_task_args", v.check_flag, True, "E043",
            "put a task's arguments (scrubbed, bounded) in its alerts", text=_flag),
    Setting("task_overrides", check_task_overrides, {}, "E044",
            "per task name: `severity` (`None`: never alerts), `slow_task_ms`, "
            "`alert_on_attempt`", text=v.json_from_text),
    # -- end of background tasks -----------------------------------------------------
)  # fmt: skip

SETTINGS_BY_NAME: Final = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the settings, worded the same in every framework."""

    code: str
    """``E002``...; Django's system check id is ``pd_integrations.<code>``."""
    level: Level
    message: str
    hint: str | None = None
    setting: str | None = None

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} ({self.hint})"


@dataclass(frozen=True)
class PagerDutySettings:
    """Every setting's value in effect, checked; the fields are :data:`SETTINGS`' names."""

    routing_key: str | None = field(default=None, repr=False)
    events_base_url: str = DEFAULT_BASE_URL
    source: str | None = None
    environment: str | None = None
    client_url: str | None = None
    component: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    auto_resolve_after: float | None = DEFAULT_AUTO_RESOLVE_AFTER
    refresh_after: float = DEFAULT_REFRESH_AFTER
    state_url: str | None = field(default=None, repr=False)
    spool: str | None = None
    flush_timeout: float = DEFAULT_EXIT_FLUSH_TIMEOUT
    delivery_alert_routing_key: str | None = field(default=None, repr=False)
    delivery_stall_after: float = DEFAULT_STALL_AFTER
    before_send: BeforeSend | None = None
    routing_rules: tuple[Rule, ...] = ()
    release: str | None = None
    announce_release: bool = False
    trace_url_template: str | None = None
    breadcrumbs: int = DEFAULT_BREADCRUMBS
    breadcrumb_bytes: int = DEFAULT_BREADCRUMB_BYTES
    send_user: bool = False
    slow_request_ms: float | None = None
    slow_routes: Mapping[str, float | None] = field(default_factory=dict)
    exclude_paths: tuple[str, ...] = DEFAULT_EXCLUDE_PATHS
    alert_on_handled_5xx: bool = False
    severity_for_status: Mapping[int, Severity | None] = field(default_factory=dict)
    dedup_by: DedupBy = "fingerprint"
    runbooks: Mapping[str, str | Link] = field(default_factory=dict)
    ignore_exceptions: tuple[type[BaseException], ...] = ()
    auto_resolve: bool = True
    in_app_include: tuple[str, ...] = ()
    in_app_exclude: tuple[str, ...] = ()
    include_headers: tuple[str, ...] = DEFAULT_INCLUDE_HEADERS
    send_client_ip: bool = False
    health_checks: tuple[HealthCheckSpec, ...] = ()
    health_interval: float | None = None
    health_timeout: float = DEFAULT_TIMEOUT
    health_failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    health_recovery_threshold: int = DEFAULT_RECOVERY_THRESHOLD
    health_show_errors: bool = False
    health_path: str | None = DEFAULT_HEALTH_PATH
    webhook_secret: tuple[str, ...] = field(default=(), repr=False)
    # background tasks
    task_severity: Severity = Severity.ERROR
    alert_on_attempt: int | None = None
    slow_task_ms: float | None = None
    include_task_args: bool = True
    task_overrides: Mapping[str, TaskRule] = field(default_factory=dict)
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)
    """Where each setting given came from: ``app.config``, ``the environment``..."""
    refs: Mapping[str, str] = field(default_factory=dict, compare=False)
    """How each setting given is spelled where it came from: ``PAGERDUTY_TIMEOUT``..."""
    problems: tuple[Problem, ...] = field(default=(), compare=False)

    def origin(self, name: str) -> str:
        """Where a setting's value came from, for people: ``default`` when not given."""
        if name not in self.origins:
            return "default"
        if self.origins[name] == ENVIRONMENT_ORIGIN:
            return f"environment variable {self.refs[name]}"
        return self.origins[name]

    @property
    def routing_key_origin(self) -> str | None:
        """Where the routing key came from (see :meth:`origin`); ``None``: unset."""
        return self.origin("routing_key") if "routing_key" in self.refs else None

    @property
    def routing_key_error(self) -> str | None:
        """Why the routing key given cannot be used (masked), or ``None``."""
        for problem in self.problems:
            if problem.setting == "routing_key" and problem.level == "error":
                return problem.message
        return None

    @property
    def enabled(self) -> bool:
        """Is there a well-formed routing key, so that alerts are sent?"""
        return self.routing_key is not None

    @property
    def masked_routing_key(self) -> str:
        return mask_key(self.routing_key)

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(problem for problem in self.problems if problem.level == "error")

    def raise_for_errors(self) -> None:
        """The policy of adapters that fail start-up: the first error, as ConfigurationError."""
        errors = self.errors
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise ConfigurationError(f"{errors[0]}{more}")

    def summary(self) -> dict[str, Any]:
        """Every setting for display: secrets masked or counted, URLs without passwords."""
        shown: dict[str, Any] = {}
        for setting in SETTINGS:
            value = getattr(self, setting.name)
            if setting.name == "routing_key":
                value = None if value is None else mask_key(value)
            elif setting.name == "state_url":
                value = None if value is None else safe_url(value)
            elif setting.name == "webhook_secret":
                value = len(value)
            else:
                value = _plain(value)
            shown[setting.name] = value
        return shown


LoadedSettings = PagerDutySettings
"""What :func:`load` gives: the settings, with their origins and problems."""

assert {f.name for f in fields(PagerDutySettings)} - {"origins", "refs", "problems"} == set(
    SETTINGS_BY_NAME
), "every declared setting is a field of PagerDutySettings, and every field is declared"


def _plain(value: object) -> object:
    """A JSON-friendly view of a checked value."""
    if isinstance(value, Severity):
        return value.value
    if isinstance(value, Link):
        return value.href
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, HealthCheckSpec):
        return value.target
    if isinstance(value, TaskRule):
        return value.shown()
    if isinstance(value, Rule):
        return repr(value)  # the routing key masked
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        if value and all(isinstance(item, HealthCheckSpec) for item in value):
            return {item.name: item.target for item in value}
        return [_plain(item) for item in value]
    return value


def _given(value: object, setting: Setting) -> bool:
    if value is None:
        return setting.none_means_off
    return not (isinstance(value, str) and not value.strip())


def load(
    given: Mapping[str, object],
    *,
    origin: str | Callable[[Setting], str],
    ref: Callable[[Setting], str],
    environ: Mapping[str, str] | None = None,
    defaults: Mapping[str, object] | None = None,
    env_fallback: Iterable[str] | None = None,
) -> PagerDutySettings:
    """Read every setting: ``given`` (by setting name) first, then the environment.

    :param origin: where ``given`` comes from, for messages (``app.config``), or where
        one setting comes from (``--routing-key``).
    :param ref: a setting's name as that source spells it (``PAGERDUTY_TIMEOUT``).
    :param defaults: an adapter's own defaults, replacing the table's for some settings.
    :param env_fallback: the settings that fall back to the environment; default: all.
    """
    env = os.environ if environ is None else environ
    fallback = None if env_fallback is None else frozenset(env_fallback)
    found: dict[str, Any] = {}
    origins: dict[str, str] = {}
    refs: dict[str, str] = {}
    problems: list[Problem] = []
    for setting in SETTINGS:
        default = (
            setting.default if defaults is None else defaults.get(setting.name, setting.default)
        )
        raw: object = None
        where: tuple[str, str] | None = None
        if setting.name in given and _given(given[setting.name], setting):
            where = (origin if isinstance(origin, str) else origin(setting), ref(setting))
            raw = given[setting.name]
        elif fallback is None or setting.name in fallback:
            for var in setting.env_vars:
                text = env.get(var, "").strip()
                if text:
                    raw, where = text, (ENVIRONMENT_ORIGIN, var)
                    break
        if where is None:
            found[setting.name] = default
            continue
        try:
            found[setting.name] = setting.check(setting.text(raw))
        except InvalidSetting as error:
            problems.append(_problem(setting, error, raw, *where))
            found[setting.name] = default
            continue
        origins[setting.name], refs[setting.name] = where
    problems.extend(_warnings(found, refs, problems))
    return PagerDutySettings(**found, origins=origins, refs=refs, problems=tuple(problems))


def _problem(
    setting: Setting, error: InvalidSetting, raw: object, origin: str, ref: str
) -> Problem:
    if setting.secret or not error.has_value:
        text = error.problem
    else:
        value = error.value
        if isinstance(raw, str) and isinstance(value, int | float):
            value = raw  # the text as written, not the number it was read as
        text = f"{error.problem}, not {v.shown(value)}"
    separator = "" if text.startswith("[") else " "
    return Problem(
        setting.code,
        "error",
        f"{ref}{separator}{text}" + ("" if origin == ref else f" (from {origin})"),
        error.hint,
        setting.name,
    )


def _warnings(
    found: Mapping[str, Any], refs: Mapping[str, str], problems: Iterable[Problem]
) -> list[Problem]:
    warnings: list[Problem] = []
    bad_key = any(problem.setting == "routing_key" for problem in problems)
    if found["routing_key"] is None and not bad_key:
        warnings.append(
            Problem(
                "W001",
                "warning",
                "No PagerDuty routing key: alerting is disabled and nothing will be sent.",
                "Set the routing key setting or the PAGERDUTY_ROUTING_KEY environment "
                "variable to a 32-character Events API v2 integration key.",
                "routing_key",
            )
        )
    spool = found["spool"]
    if spool is not None:
        directory = v.missing_spool_directory(spool)
        if directory is not None:
            where = refs.get("spool", "the spool setting")
            warnings.append(
                Problem(
                    "W003",
                    "warning",
                    f"The spool file {spool!r} (from {where}) cannot be created: the "
                    f"directory {directory!r} does not exist, so events will wait in "
                    "memory only.",
                    "Create the directory, writable by the user the server runs as, or "
                    f"point {where} at a file in an existing one.",
                    "spool",
                )
            )
    return warnings
