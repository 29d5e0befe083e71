"""The background-task settings: the values of ``task_overrides`` and ``task_severity``.

Declared in :data:`~.model.SETTINGS` like every other setting (so Celery's
``conf["pagerduty_<name>"]`` and ``PAGERDUTY_<NAME>`` read them the same way); what a
valid value is lives here, next to the one structure it produces, :class:`TaskRule`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pd_integrations.errors import InvalidEventError
from pd_integrations.events import Severity

from .values import InvalidSetting, check_mapping

__all__ = [
    "TASK_RULE_KEYS",
    "TASK_SETTINGS",
    "TaskRule",
    "check_severity",
    "check_task_overrides",
]

_UNSET: Final = object()
TASK_RULE_KEYS: Final = ("severity", "slow_task_ms", "alert_on_attempt")
TASK_SETTINGS: Final = frozenset(
    {"task_severity", "alert_on_attempt", "slow_task_ms", "include_task_args", "task_overrides"}
)
"""The settings only task-queue adapters read; web adapters take no keyword for them."""


@dataclass(frozen=True, slots=True)
class TaskRule:
    """One task's overrides; a field left ``UNSET`` keeps the global setting.

    ``severity=None`` means the task's failures never alert; ``slow_task_ms=None`` and
    ``alert_on_attempt=None`` turn those off for the task.
    """

    severity: Severity | object | None = _UNSET
    slow_task_ms: float | object | None = _UNSET
    alert_on_attempt: int | object | None = _UNSET

    def shown(self) -> dict[str, object]:
        """The options given, for ``check`` and the settings summary."""
        given = {name: getattr(self, name) for name in TASK_RULE_KEYS}
        return {
            name: value.value if isinstance(value, Severity) else value
            for name, value in given.items()
            if value is not _UNSET
        }


UNSET: Final = _UNSET


def check_severity(value: object) -> Severity:
    try:
        if not isinstance(value, str | Severity):
            raise InvalidEventError("not a string")
        return Severity.parse(value)
    except InvalidEventError:
        raise InvalidSetting("must be one of critical, error, warning, info", value) from None


def _rule(name: str, options: object) -> TaskRule:
    if not isinstance(options, Mapping) or not set(options) <= set(TASK_RULE_KEYS):
        raise InvalidSetting(
            f"must map task names to options among {', '.join(TASK_RULE_KEYS)}",
            {name: options},
        )
    found: dict[str, object] = {}
    for key, value in options.items():
        if value is None:
            found[key] = None
        elif key == "severity":
            found[key] = check_severity(value)
        elif key == "slow_task_ms":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not (ok and value > 0 and math.isfinite(value)):
                raise InvalidSetting("slow_task_ms must be positive milliseconds", {name: options})
            found[key] = float(value)
        else:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidSetting("alert_on_attempt must be at least 1", {name: options})
            found[key] = value
    return TaskRule(**found)


def check_task_overrides(value: object) -> dict[str, TaskRule]:
    """Task names to their :class:`TaskRule` (given as mappings, or rules already)."""
    rules: dict[str, TaskRule] = {}
    for name, options in check_mapping(value).items():
        if not isinstance(name, str) or not name.strip():
            raise InvalidSetting("must map task names to options", {name: options})
        rules[name] = options if isinstance(options, TaskRule) else _rule(name, options)
    return rules
