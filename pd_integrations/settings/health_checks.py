"""The ``health_checks`` setting: named checks given as dotted paths, with their options.

``{"database": "myapp.health.db_ok", "cache": {"CHECK": "myapp.health.cache_ok",
"DEPENDS_ON": ["database"], "TIMEOUT": 2}}``: each entry is imported and checked here,
and the checks come out ordered so that each follows what it depends on (as
:class:`~pd_integrations.health.HealthMonitor` requires). Option names are
upper-case, as Django settings are; lower-case is accepted too.

An entry's options become one :class:`~pd_integrations.health.CheckOptions`, which
checks them as for a check registered in code; an option it refuses is reported with the
entry's name. The setting adds one rule of its own: a ``RUNBOOK`` is an http(s) URL, as
in the ``runbooks`` setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from pd_integrations.health import CheckOptions
from pd_integrations.health import HealthCheck as HealthCheckFn

from .values import InvalidSetting, check_mapping, import_object

__all__ = ["HEALTH_CHECK_OPTIONS", "HealthCheckSpec", "check_health_checks", "health_check_errors"]

HEALTH_CHECK_OPTIONS: Final = (
    "CHECK",
    "TIMEOUT",
    "DEPENDS_ON",
    "SEVERITY",
    "RUNBOOK",
    "FAILURE_THRESHOLD",
    "RECOVERY_THRESHOLD",
)


@dataclass(frozen=True, slots=True)
class HealthCheckSpec:
    """One entry of ``health_checks``, imported and checked."""

    name: str
    check: HealthCheckFn
    target: str
    """The dotted path it was imported from, or the callable's name."""
    options: CheckOptions = field(default_factory=CheckOptions)
    """As given: the monitor fills in its defaults (``HEALTH_TIMEOUT``...)."""


def health_check_errors(
    value: object,
) -> tuple[tuple[HealthCheckSpec, ...], list[InvalidSetting]]:
    """Every usable check (dependencies first), and one error per unusable entry.

    An error's text starts with the entry it is about (``['db'] ...``), or is about the
    whole value when it does not start with ``[``.
    """
    try:
        entries = check_mapping(value)
    except InvalidSetting as error:
        return (), [error]
    errors: list[InvalidSetting] = []
    specs: dict[str, HealthCheckSpec] = {}
    for name, entry in entries.items():
        try:
            if not isinstance(name, str) or not name.strip():
                raise InvalidSetting(f"names must be non-empty strings, not {name!r}")
            specs[name] = _health_check(name, entry)
        except InvalidSetting as error:
            errors.append(InvalidSetting(f"[{name!r}] {error}", hint=error.hint))
    return _dependencies_first(specs, errors), errors


def check_health_checks(value: object) -> tuple[HealthCheckSpec, ...]:
    """The checks of ``value``; :class:`InvalidSetting` for the first unusable entry."""
    specs, errors = health_check_errors(value)
    if errors:
        raise errors[0]
    return specs


def _import(path: str) -> object:
    try:
        return import_object(path)
    except ImportError as error:
        raise InvalidSetting(f"cannot import {path!r}: {error}") from None


def _health_check(name: str, entry: object) -> HealthCheckSpec:
    options: Mapping[Any, Any] = (
        {str(key).upper(): option for key, option in entry.items()}
        if isinstance(entry, Mapping)
        else {"CHECK": entry}
    )
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
    runbook = options.get("RUNBOOK")
    if runbook is not None and (
        not isinstance(runbook, str) or urlsplit(runbook).scheme not in ("http", "https")
    ):
        raise InvalidSetting(f"'RUNBOOK' must be an http:// or https:// URL, not {runbook!r}")
    try:
        check_options = CheckOptions(
            timeout=options.get("TIMEOUT"),
            depends_on=options.get("DEPENDS_ON", ()),
            severity=options.get("SEVERITY", "critical"),
            runbook=runbook,
            failure_threshold=options.get("FAILURE_THRESHOLD"),
            recovery_threshold=options.get("RECOVERY_THRESHOLD"),
        )
    except ValueError as error:
        raise InvalidSetting(f"has an invalid option: {error}") from None
    return HealthCheckSpec(name=name, check=check, target=str(label), options=check_options)


def _dependencies_first(
    specs: dict[str, HealthCheckSpec], errors: list[InvalidSetting]
) -> tuple[HealthCheckSpec, ...]:
    ordered: dict[str, HealthCheckSpec] = {}
    visiting: set[str] = set()

    def visit(spec: HealthCheckSpec) -> bool:
        if spec.name in ordered:
            return True
        if spec.name in visiting:
            errors.append(InvalidSetting(f"[{spec.name!r}] depends on itself"))
            return False
        visiting.add(spec.name)
        try:
            for dependency in spec.options.depends_on:
                if dependency not in specs:
                    errors.append(
                        InvalidSetting(
                            f"[{spec.name!r}] depends on {dependency!r}, which is not a usable "
                            "check"
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
