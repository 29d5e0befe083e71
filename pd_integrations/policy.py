"""Alert policy: a ``before_send`` hook, and rules that ignore, re-rate or re-route alerts.

Both run only when an alert fires, never for a healthy request, and neither can lose a
page:

- **Rules** (:class:`Rule`, read from settings by :func:`parse_rules`) are data: a
  :class:`Match` on the kind of alert, the route or path, the exception, the status,
  the task/monitor/check name or the severity, and one action: ``ignore``, a new
  ``severity``, or another ``routing_key``. The first rule that matches decides; one
  that matches nothing leaves the alert as it is. They are checked when they are read,
  so a typo is a start-up error, not a page lost at 3 a.m.
  :class:`~pd_integrations.routing.RoutingAlertManager` applies them.
- **before_send** (:class:`BeforeSendHook` around the user's callable) sees every
  trigger that is about to be queued, with a *hint* (see below), on the caller's
  thread and before the event is encoded. It returns the event (changed or not) or
  ``None`` to drop it. A hook that raises, returns anything else, or returns an event
  that cannot be sent is logged once per kind of failure, and the original event is
  sent.

Alerts dropped by either are counted (``stats().suppressed_by_policy``) and signalled
(:data:`pd_integrations.signals.event_suppressed_by_policy`).

The hint is a mapping; every key but ``kind`` and ``alert_type`` may be missing:

``kind``
    ``exception``, ``slow_request``, ``handled_5xx``, ``health``, ``task`` or
    ``heartbeat`` (:data:`KINDS`); for an alert raised directly, the ``alert_type``.
``alert_type``
    the ``alert_type`` given to ``AlertManager.alert``.
``exception``
    the exception that caused the alert.
``request``
    the :class:`~pd_integrations.monitor.RequestInfo` of the request;
    ``route``, ``path`` and ``status`` are copied beside it.
``name``
    the task, monitor or health check's name; ``task``: the task's own description.
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from . import signals
from .errors import ConfigurationError
from .events import Severity, TriggerEvent, check_routing_key, mask_key

__all__ = [
    "KINDS",
    "BeforeSend",
    "BeforeSendHook",
    "Hint",
    "InvalidRule",
    "Match",
    "Rule",
    "alert_kind",
    "as_hook",
    "decide",
    "import_hook",
    "parse_rules",
]

_log = logging.getLogger("pd_integrations.policy")

KINDS: Final = ("exception", "slow_request", "handled_5xx", "health", "task", "heartbeat")
"""The kinds of alert a rule can match (``match.kind``)."""

# The kind of an alert raised without a hint (a direct AlertManager.alert call, a health
# check): its alert_type, under the name rules use.
_KIND_OF_ALERT_TYPE: Final = {"health_check": "health"}
# Kinds whose alerts are named by their identifier (the check's, task's or job's name).
_NAMED_KINDS: Final = frozenset({"health", "task", "heartbeat"})

Hint = Mapping[str, Any]
BeforeSend = Callable[[TriggerEvent, Hint], TriggerEvent | None]

_MATCH_KEYS: Final = (
    "kind",
    "route",
    "path_prefix",
    "exception",
    "exception_module",
    "status",
    "name",
    "severity",
)
_RULE_KEYS: Final = ("match", "ignore", "severity", "routing_key")


class InvalidRule(ConfigurationError):
    """A routing rule that cannot be used; the message names the rule and the problem."""


@dataclass(frozen=True, slots=True)
class Match:
    """What an alert must be for a rule to apply; an empty condition matches anything.

    Within a condition, any of its values will do; every condition given must hold.
    ``path_prefixes`` match whole path segments (``/pay`` matches ``/pay`` and
    ``/pay/refund``, not ``/payments``), against the request's path, else its route.
    ``exceptions`` are dotted class names (``myapp.errors.PaymentError``; builtins by
    their bare name) matched against the exception's class and every base class;
    ``exception_modules`` match the class's module and its submodules.
    """

    kinds: frozenset[str] = frozenset()
    routes: frozenset[str] = frozenset()
    path_prefixes: tuple[str, ...] = ()
    exceptions: frozenset[str] = frozenset()
    exception_modules: tuple[str, ...] = ()
    statuses: frozenset[int] = frozenset()
    names: frozenset[str] = frozenset()
    severities: frozenset[Severity] = frozenset()

    def matches(self, kind: str, severity: Severity, identifier: str | None, hint: Hint) -> bool:
        if self.kinds and kind not in self.kinds:
            return False
        if self.severities and severity not in self.severities:
            return False
        if self.statuses and hint.get("status") not in self.statuses:
            return False
        if self.names and _name(kind, identifier, hint) not in self.names:
            return False
        if self.routes and _request_value(hint, "route") not in self.routes:
            return False
        if self.path_prefixes and not _under(
            _request_value(hint, "path") or _request_value(hint, "route"), self.path_prefixes
        ):
            return False
        if self.exceptions or self.exception_modules:
            return _exception_matches(hint.get("exception"), self)
        return True


@dataclass(frozen=True, slots=True)
class Rule:
    """A :class:`Match` and what to do with the alerts it matches.

    ``ignore``: the alert is not raised at all. Otherwise ``severity`` and/or
    ``routing_key`` (the integration key of another PagerDuty service, which gets its
    own rate budget, suppression and state) change it.
    """

    match: Match = Match()
    ignore: bool = False
    severity: Severity | None = None
    routing_key: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        action = (
            "ignore"
            if self.ignore
            else ", ".join(
                part
                for part in (
                    f"severity={self.severity.value}" if self.severity else "",
                    f"routing_key={mask_key(self.routing_key)}" if self.routing_key else "",
                )
                if part
            )
        )
        return f"Rule({self.match!r}, {action})"


def alert_kind(alert_type: str, hint: Hint | None) -> str:
    """The kind rules and hooks see: the hint's, else the one ``alert_type`` stands for."""
    if hint is not None:
        kind = hint.get("kind")
        if isinstance(kind, str):
            return kind
    return _KIND_OF_ALERT_TYPE.get(alert_type, alert_type)


def full_hint(alert_type: str, hint: Hint | None) -> dict[str, Any]:
    """``hint`` with ``kind`` and ``alert_type`` always present (a new dict)."""
    built = dict(hint) if hint else {}
    built["kind"] = alert_kind(alert_type, hint)
    built.setdefault("alert_type", alert_type)
    return built


def decide(
    rules: Iterable[Rule],
    alert_type: str,
    severity: Severity,
    identifier: str | None,
    hint: Hint | None,
) -> Rule | None:
    """The first rule matching the alert, or ``None``."""
    kind = alert_kind(alert_type, hint)
    facts: Hint = hint if hint is not None else {}
    for rule in rules:
        if rule.match.matches(kind, severity, identifier, facts):
            return rule
    return None


def _request_value(hint: Hint, name: str) -> str | None:
    value = hint.get(name)
    if value is None:
        value = getattr(hint.get("request"), name, None)
    return value if isinstance(value, str) else None


def _name(kind: str, identifier: str | None, hint: Hint) -> str | None:
    name = hint.get("name")
    if isinstance(name, str):
        return name
    return identifier if kind in _NAMED_KINDS else None


def _under(path: str | None, prefixes: tuple[str, ...]) -> bool:
    if not path:
        return False
    for prefix in prefixes:
        if path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/"):
            return True
    return False


def _class_names(cls: type) -> tuple[str, str]:
    module = getattr(cls, "__module__", "") or ""
    qualname = getattr(cls, "__qualname__", cls.__name__)
    return f"{module}.{qualname}", qualname if module == "builtins" else f"{module}.{qualname}"


def _exception_matches(exc: object, match: Match) -> bool:
    if not isinstance(exc, BaseException):
        return False
    cls = type(exc)
    if match.exception_modules:
        module = getattr(cls, "__module__", "") or ""
        if not any(module == m or module.startswith(m + ".") for m in match.exception_modules):
            return False
    if match.exceptions:
        return any(name in match.exceptions for base in cls.__mro__ for name in _class_names(base))
    return True


# -- reading rules ----------------------------------------------------------------------


def parse_rules(value: object) -> tuple[Rule, ...]:
    """Rules from settings data: a list of ``{"match": {...}, <action>}`` mappings.

    :class:`Rule` objects pass through. Keys may be upper case (Django style).
    :class:`InvalidRule` says which rule is wrong and why; routing keys are masked.
    """
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidRule(
            "must be a list of rules such as "
            '[{"match": {"path_prefix": "/payments"}, "routing_key": "..."}]'
        )
    return tuple(_rule(index, entry) for index, entry in enumerate(value, 1))


def _rule(index: int, entry: object) -> Rule:
    if isinstance(entry, Rule):
        return entry
    where = f"rule {index}"
    data = _lower_keys(entry, where, _RULE_KEYS)
    match = _match(where, data.get("match", {}))
    ignore = data.get("ignore", False)
    if not isinstance(ignore, bool):
        raise InvalidRule(f"{where}: ignore must be true or false, not {ignore!r}")
    severity = data.get("severity")
    level = None if severity is None else _severity(f"{where}: severity", severity)
    key = data.get("routing_key")
    if key is not None:
        key = _routing_key(where, key)
    if ignore and (level is not None or key is not None):
        raise InvalidRule(f"{where}: ignore cannot be combined with severity or routing_key")
    if not ignore and level is None and key is None:
        raise InvalidRule(f"{where} does nothing: give it ignore, severity or routing_key")
    return Rule(match, ignore, level, key)


def _lower_keys(entry: object, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise InvalidRule(f"{where} must be a mapping (a dict), not {entry!r}")
    data: dict[str, Any] = {}
    for key, item in entry.items():
        name = key.lower() if isinstance(key, str) else key
        if name not in allowed:
            close = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(allowed)}"
            raise InvalidRule(f"{where}: unknown key {key!r} ({hint})")
        data[name] = item
    return data


def _values(value: object) -> list[object]:
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return [value]


def _texts(where: str, value: object) -> list[str]:
    texts = _values(value)
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            raise InvalidRule(f"{where} must be a non-empty string or a list of them, not {text!r}")
    return [str(text).strip() for text in texts]


def _match(where: str, value: object) -> Match:
    data = _lower_keys(value, f"{where}: match", _MATCH_KEYS)
    found: dict[str, Any] = {}
    at = f"{where}: match.".__add__
    if "kind" in data:
        kinds = _texts(at("kind"), data["kind"])
        for kind in kinds:
            if kind not in KINDS:
                raise InvalidRule(f"{at('kind')} must be one of {', '.join(KINDS)}, not {kind!r}")
        found["kinds"] = frozenset(kinds)
    if "route" in data:
        found["routes"] = frozenset(_texts(at("route"), data["route"]))
    if "path_prefix" in data:
        prefixes = _texts(at("path_prefix"), data["path_prefix"])
        for prefix in prefixes:
            if not prefix.startswith("/"):
                raise InvalidRule(f"{at('path_prefix')} must start with /, not {prefix!r}")
        found["path_prefixes"] = tuple(prefixes)
    if "exception" in data:
        found["exceptions"] = frozenset(
            _exception_name(at("exception"), item) for item in _values(data["exception"])
        )
    if "exception_module" in data:
        found["exception_modules"] = tuple(_texts(at("exception_module"), data["exception_module"]))
    if "status" in data:
        found["statuses"] = frozenset(
            _status(at("status"), item) for item in _values(data["status"])
        )
    if "name" in data:
        found["names"] = frozenset(_texts(at("name"), data["name"]))
    if "severity" in data:
        found["severities"] = frozenset(
            _severity(at("severity"), item) for item in _values(data["severity"])
        )
    return Match(**found)


def _exception_name(where: str, value: object) -> str:
    if isinstance(value, type) and issubclass(value, BaseException):
        return _class_names(value)[1]
    (name,) = _texts(where, value)
    if name.startswith("builtins."):
        name = name.removeprefix("builtins.")
    return name


def _status(where: str, value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise InvalidRule(f"{where} must be an HTTP status code (100-599), not {value!r}")
    return value


def _severity(where: str, value: object) -> Severity:
    try:
        if not isinstance(value, str):
            raise TypeError
        return Severity.parse(value)
    except (ValueError, TypeError, AttributeError):
        raise InvalidRule(
            f"{where} must be critical, error, warning or info, not {value!r}"
        ) from None


def _routing_key(where: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidRule(f"{where}: routing_key must be a string, not {type(value).__name__}")
    key = value.strip()
    try:
        return check_routing_key(key)
    except ConfigurationError:
        raise InvalidRule(
            f"{where}: routing_key is malformed ({mask_key(key)}, {len(key)} characters): "
            "an integration key is 32 letters and digits"
        ) from None


# -- before_send ------------------------------------------------------------------------


def import_hook(value: object) -> BeforeSend:
    """A ``before_send`` callable, or the one a dotted path (``package.module.name``) names."""
    hook = value
    if isinstance(value, str):
        from importlib import import_module

        module, _, name = value.strip().replace(":", ".").rpartition(".")
        if not module or not name:
            raise ImportError(f"{value!r} is not a dotted path such as package.module.function")
        hook = getattr(import_module(module), name, None)
        if hook is None:
            raise ImportError(f"module {module!r} has no attribute {name!r}")
    if not callable(hook):
        raise TypeError(f"{value!r} is not callable")
    return hook


def as_hook(before_send: BeforeSend | BeforeSendHook | str | None) -> BeforeSendHook | None:
    """The hook to call, shared as is when it already is a :class:`BeforeSendHook`."""
    if before_send is None or isinstance(before_send, BeforeSendHook):
        return before_send
    return BeforeSendHook(import_hook(before_send))


class BeforeSendHook:
    """Calls the user's ``before_send`` so that it can change or drop a trigger, never lose it.

    The hook gets a copy of the event whose ``custom_details`` (and the dicts and lists
    in them) it may change in place, so a hook that changes them and then fails leaves
    the original intact.
    """

    __slots__ = ("_lock", "_reported", "function")

    def __init__(self, function: BeforeSend) -> None:
        self.function = function
        self._reported: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def __call__(
        self,
        event: TriggerEvent,
        hint: Hint,
        check: Callable[[TriggerEvent], object] | None = None,
    ) -> TriggerEvent | None:
        """The event to send, or ``None`` when the hook dropped it.

        ``check`` validates (encodes) what the hook returned; an event it rejects is
        replaced by the original.
        """
        try:
            result: object = self.function(
                replace(event, custom_details=_copy(event.custom_details)), hint
            )
        except Exception as error:
            self._once("raised", type(error).__name__, "raised", error)
            return event
        if result is None:
            return None
        if not isinstance(result, TriggerEvent):
            self._once("returned", type(result).__name__, f"returned a {type(result).__name__}")
            return event
        if result.dedup_key != event.dedup_key:
            # The state, auto-resolve and responders' resolves follow the original key.
            self._once("dedup_key", "", "changed the dedup key (kept the original)", level=30)
            result = result.with_dedup_key(event.dedup_key) if event.dedup_key else result
        if check is not None and result is not event:
            try:
                check(result)
            except Exception as error:
                self._once(
                    "invalid", type(error).__name__, "returned an event that cannot be sent", error
                )
                return event
        return result

    def _once(
        self,
        failure: str,
        detail: str,
        what: str,
        error: BaseException | None = None,
        level: int = logging.ERROR,
    ) -> None:
        with self._lock:
            if (failure, detail) in self._reported:
                return
            self._reported.add((failure, detail))
        name = getattr(self.function, "__qualname__", repr(self.function))
        consequence = "" if failure == "dedup_key" else "; the original event is sent"
        _log.log(
            level,
            "before_send %s %s%s (logged once)",
            name,
            what,
            consequence,
            exc_info=error,
        )


def _copy(value: Any) -> Any:
    """Dicts and lists copied (any mapping becomes a dict); other values shared."""
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


# -- counting what policy dropped -------------------------------------------------------


class Tally:
    """A thread-safe count of alerts dropped by policy (``suppressed_by_policy``)."""

    __slots__ = ("_count", "_lock")

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    @property
    def value(self) -> int:
        return self._count

    def suppressed(
        self,
        sender: object,
        dedup_key: str,
        reason: str,
        event: TriggerEvent | Callable[[], TriggerEvent],
    ) -> None:
        """Count one dropped alert and signal it (the event is built only for receivers)."""
        with self._lock:
            self._count += 1
        if signals.event_suppressed_by_policy.receivers:
            try:
                built = event if isinstance(event, TriggerEvent) else event()
            except Exception:
                _log.exception("could not describe an alert dropped by policy")
                return
            signals.emit(
                signals.event_suppressed_by_policy,
                sender,
                event=built,
                dedup_key=dedup_key,
                reason=reason,
            )
