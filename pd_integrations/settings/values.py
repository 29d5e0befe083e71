"""Checking setting values, the same way for every framework adapter.

The Flask extension and the Django app read the same settings from different places
(``app.config["PAGERDUTY_SLOW_REQUEST_MS"]``, ``PAGERDUTY["SLOW_REQUEST_MS"]``, the
environment) and report problems differently (Flask raises at ``init_app``, Django
collects coded system-check messages). What a valid value is lives here, once:

- the ``check_*`` functions take a Python value and return it checked and normalised,
  or raise :class:`InvalidSetting`; they accept no text standing for another type;
- the ``*_from_text`` functions turn text (an environment variable) into the Python
  value it stands for, as far as they can: text they cannot read is returned unchanged,
  so that the check that follows reports it with the usual message.

An adapter names the setting and where it came from when it reports the error.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections.abc import Iterable, Mapping
from importlib import import_module
from typing import Any, Final
from urllib.parse import urlsplit

from pd_integrations import environment
from pd_integrations.client import DEFAULT_BASE_URL
from pd_integrations.errors import ConfigurationError
from pd_integrations.events import Link, Severity
from pd_integrations.monitor import DedupBy
from pd_integrations.policy import BeforeSend, InvalidRule, Rule, import_hook, parse_rules
from pd_integrations.state.base import safe_url, state_backend_kind

__all__ = [
    "MEMORY_STATE_URL",
    "InvalidSetting",
    "check_before_send",
    "check_dedup_by",
    "check_events_base_url",
    "check_exception_types",
    "check_flag",
    "check_flush_timeout",
    "check_mapping",
    "check_optional_text",
    "check_positive",
    "check_positive_or_none",
    "check_refresh_after",
    "check_routing_rules",
    "check_runbooks",
    "check_severity_for_status",
    "check_slow_routes",
    "check_spool_path",
    "check_state_url",
    "check_strings",
    "check_threshold",
    "flag_from_text",
    "import_object",
    "json_from_text",
    "missing_spool_directory",
    "number_from_text",
    "off_from_text",
    "shown",
    "strings_from_text",
    "threshold_from_text",
]

MEMORY_STATE_URL: Final = "memory://"
"""The state URL of in-process state: passed explicitly so no environment variable is read."""

TRUE_WORDS: Final = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS: Final = frozenset({"0", "false", "no", "off"})
OFF_WORDS: Final = frozenset({"none", "off"})
_SHOWN_MAX = 80


_NO_VALUE: Final = object()


class InvalidSetting(ValueError):
    """A value that cannot be used; ``str()`` completes "<the setting> ...".

    :param problem: e.g. ``must be a positive number of seconds``.
    :param value: the offending value (or entry of a list or mapping), shown shortened;
        left out when the problem says it all (``depends on itself``).
    :param hint: how to fix it, for messages that have room for one.
    """

    def __init__(self, problem: str, value: object = _NO_VALUE, hint: str | None = None) -> None:
        self.problem = problem
        self.value = value
        self.hint = hint
        super().__init__(f"{problem}, not {shown(value)}" if self.has_value else problem)

    @property
    def has_value(self) -> bool:
        return self.value is not _NO_VALUE


def shown(value: object) -> str:
    """``repr(value)``, cut short: a message must stay one readable line."""
    text = repr(value)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 3] + "..."


# -- text ---------------------------------------------------------------------------------


def number_from_text(value: object) -> object:
    """``"2.5"`` -> ``2.5``; anything else unchanged."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def threshold_from_text(value: object) -> object:
    """``"3"`` -> ``3``; anything else unchanged."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def flag_from_text(value: object) -> object:
    """``true``/``false``, ``yes``/``no``, ``on``/``off``, ``1``/``0`` -> a bool."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS | FALSE_WORDS:
            return word in TRUE_WORDS
    return value


def off_from_text(value: object) -> object:
    """``none`` or ``off`` -> ``None``, for settings that ``None`` turns off."""
    if isinstance(value, str) and value.strip().lower() in OFF_WORDS:
        return None
    return value


def json_from_text(value: object) -> object:
    """JSON text -> what it encodes; :class:`InvalidSetting` when it is not JSON."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise InvalidSetting("is not valid JSON", value) from None


def strings_from_text(value: object) -> object:
    """``"a, b"`` (or a JSON list) -> ``["a", "b"]``; blank items are left out."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json_from_text(text)
    return [part.strip() for part in text.split(",") if part.strip()]


# -- values -------------------------------------------------------------------------------


def _number(value: object) -> float | None:
    # bool is an int, but True milliseconds is certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def check_positive(value: object, unit: str) -> float:
    """A finite number above 0, such as a threshold in ``unit``."""
    number = _number(value)
    if number is None or not (number > 0 and math.isfinite(number)):
        raise InvalidSetting(f"must be a positive number of {unit}", value)
    return number


def check_positive_or_none(value: object, unit: str) -> float | None:
    """:func:`check_positive`, or ``None`` (which turns the feature off)."""
    if value is None:
        return None
    number = _number(value)
    if number is None or not (number > 0 and math.isfinite(number)):
        raise InvalidSetting(f"must be a positive number of {unit} (or None to turn it off)", value)
    return number


def check_threshold(value: object) -> int:
    """A count of consecutive results: a whole number of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidSetting("must be a whole number of at least 1", value)
    return value


def check_flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidSetting("must be true or false", value)
    return value


def check_optional_text(value: object) -> str | None:
    """A string, stripped; blank or ``None`` is ``None``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidSetting("must be a string", value)
    return value.strip() or None


def check_events_base_url(value: object) -> str:
    """An http(s) URL with a host (and a valid port), without a trailing slash."""
    url = value.strip().rstrip("/") if isinstance(value, str) else ""
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        valid = False
    if not valid:
        raise InvalidSetting(
            "must be an http:// or https:// URL with a host",
            safe_url(value) if isinstance(value, str) else value,  # never echo a password
            f"PagerDuty's is {DEFAULT_BASE_URL}; a local emulator's is http://127.0.0.1:8765",
        )
    return url


def check_dedup_by(value: object) -> DedupBy:
    if value == "fingerprint":
        return "fingerprint"
    if value == "route":
        return "route"
    raise InvalidSetting(
        "must be 'fingerprint' or 'route'",
        value,
        "'fingerprint': one incident per bug; 'route': one incident per method and route",
    )


def check_strings(value: object) -> tuple[str, ...]:
    """A list (tuple, set) of non-empty strings, each stripped."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidSetting("must be a list of strings", value)
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise InvalidSetting("must be a list of strings, none of them empty", item)
    return tuple(item.strip() for item in items)


def check_mapping(value: object) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise InvalidSetting("must be a mapping (a dict)", value)
    return value


def check_slow_routes(value: object) -> dict[str, float | None]:
    """Route templates (or ``"METHOD /template"``) to milliseconds, ``None`` for off."""
    routes: dict[str, float | None] = {}
    for route, ms in check_mapping(value).items():
        number = _number(ms)
        positive = number is not None and number > 0 and math.isfinite(number)
        if not isinstance(route, str) or not route.strip() or not (ms is None or positive):
            raise InvalidSetting(
                "must map route templates to positive milliseconds or None", {route: ms}
            )
        routes[route] = number
    return routes


def check_severity_for_status(value: object) -> dict[int, Severity | None]:
    """5xx statuses (ints or their text) to a severity, ``None`` for no alert."""
    rules: dict[int, Severity | None] = {}
    for status, severity in check_mapping(value).items():
        try:
            if isinstance(status, bool):
                raise ValueError
            code = int(status)
            if not 500 <= code <= 599:
                raise ValueError
            rules[code] = None if severity is None else Severity.parse(severity)
        except (TypeError, ValueError, AttributeError):
            raise InvalidSetting(
                "must map 5xx status codes to critical, error, warning, info or None",
                {status: severity},
            ) from None
    return rules


def _is_http_url(value: object) -> bool:
    return isinstance(value, str) and urlsplit(value).scheme in ("http", "https")


def check_runbooks(value: object) -> dict[str, str | Link]:
    """Names (an exception type, a route, an alert type, ``*``) to http(s) URLs or links."""
    runbooks: dict[str, str | Link] = {}
    for name, url in check_mapping(value).items():
        if (
            not isinstance(name, str)
            or not name
            or not (isinstance(url, Link) or _is_http_url(url))
        ):
            raise InvalidSetting(
                "must map exception names, routes or alert types to http:// or https:// "
                "runbook URLs",
                {name: url},
            )
        runbooks[name] = url
    return runbooks


def import_object(path: str) -> object:
    """What ``package.module.Name`` (or ``package.module:Name``) names."""
    module, _, name = path.strip().replace(":", ".").rpartition(".")
    if not module or not name:
        raise ImportError(f"{path!r} is not a dotted path such as package.module.Name")
    try:
        return getattr(import_module(module), name)
    except AttributeError:
        raise ImportError(f"module {module!r} has no attribute {name!r}") from None


def check_exception_types(value: object) -> tuple[type[BaseException], ...]:
    """Exception classes, or their dotted paths (imported here); one class alone is fine."""
    entries: Iterable[object]
    if isinstance(value, type):
        entries = [value]
    elif isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidSetting(
            "must be a list of exception classes or their dotted paths (package.module.Error)",
            value,
        )
    else:
        entries = value
    found: list[type[BaseException]] = []
    for entry in entries:
        cls = entry
        if isinstance(entry, str):
            try:
                cls = import_object(entry)
            except ImportError as error:
                raise InvalidSetting(
                    f"must list importable exception classes; cannot import it ({error})", entry
                ) from None
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise InvalidSetting(
                "must list exception classes or their dotted paths (package.module.Error)", entry
            )
        found.append(cls)
    return tuple(found)


def check_state_url(value: object) -> str:
    """A URL :func:`pd_integrations.state.open_state` can open, checked without connecting.

    An unknown scheme, a Redis URL while the ``redis`` package is missing, or a URL
    redis-py cannot parse is an error here, at start-up, rather than when the
    AlertManager is created.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidSetting("must be a URL string", value)
    url = value.strip()
    hint = (
        "memory:// keeps alert state in this process; redis://host:6379/0, rediss:// or "
        "unix:///path.sock shares it through Redis"
    )
    try:
        if state_backend_kind(url) == "memory":
            return url
    except ConfigurationError:
        raise InvalidSetting(
            "must be a memory://, redis://, rediss:// or unix:// URL", safe_url(url), hint
        ) from None
    if importlib.util.find_spec("redis") is None:
        raise InvalidSetting(
            "needs the redis package for a Redis URL",
            safe_url(url),
            "pip install 'pd-integrations[redis]'",
        )
    from redis.connection import parse_url  # only once the package is known to exist

    try:
        # Host, port and database; the query's options are left to redis-py and the
        # backend (it has options of its own, such as prefix=).
        parse_url(url.partition("?")[0])  # type: ignore[no-untyped-call]
    except (ValueError, TypeError) as error:
        raise InvalidSetting(f"is not a valid Redis URL ({error})", safe_url(url), hint) from None
    return url


def check_spool_path(value: object) -> str:
    """A file path (text or ``os.PathLike``), not empty."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidSetting("must be the path of the SQLite spool file", value)
    return value


def missing_spool_directory(path: str) -> str | None:
    """The directory that should hold the spool file, when it does not exist.

    The spool then cannot be created: the dispatcher logs a warning and keeps events in
    memory only. Worth a warning before that happens, not an error.
    """
    directory = os.path.dirname(os.path.abspath(path))
    return None if os.path.isdir(directory) else directory


def check_flush_timeout(value: object) -> float:
    """Seconds the exit and SIGTERM flush may take: 0 (do not wait) or more, finite."""
    number = _number(value)
    if number is None or not (number >= 0 and math.isfinite(number)):
        raise InvalidSetting("must be a number of seconds, 0 or more", value)
    return number


def check_refresh_after(value: object) -> float:
    """Seconds between triggers of an open alert that keeps occurring; ``0.0``: never.

    A number of seconds, 0 or more and finite, or ``"off"`` (also ``"none"``) to turn
    refreshing off.
    """
    if isinstance(value, str) and value.strip().lower() not in environment.REFRESH_OFF_WORDS:
        raise InvalidSetting("must be a number of seconds, or 0 or 'off' to turn it off", value)
    try:
        return environment.parse_refresh_after(value)
    except ValueError:
        raise InvalidSetting(
            "must be a number of seconds, or 0 or 'off' to turn it off", value
        ) from None


def check_before_send(value: object) -> BeforeSend | None:
    """A callable ``before_send(event, hint)``, or its dotted path (imported here)."""
    if value is None:
        return None
    try:
        return import_hook(value)
    except (ImportError, TypeError) as error:
        raise InvalidSetting(
            f"must be a callable or the dotted path of one ({error})",
            value,
            "a function taking (event, hint) and returning the event or None, such as "
            "myapp.alerting.before_send",
        ) from None


def check_routing_rules(value: object) -> tuple[Rule, ...]:
    """A list of routing rules (see :func:`pd_integrations.policy.parse_rules`)."""
    try:
        return parse_rules(value)
    except InvalidRule as error:
        # The message names the rule and masks any key; the value is not repeated.
        raise InvalidSetting(
            f"is invalid: {error}",
            hint='e.g. [{"match": {"path_prefix": "/payments"}, "routing_key": "<key>"}]',
        ) from None
