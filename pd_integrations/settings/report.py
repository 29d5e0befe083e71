"""The ``check`` report, shared by ``pd-integrations check``, ``flask pagerduty check``
and ``manage.py pagerduty check``.

Each command adds lines of its own (a network probe, the health checks) but the
settings part, including "the routing key and where it came from", is computed here
from one :class:`~.model.PagerDutySettings`, and every line is printed the same way:
``OK``, ``FAIL``, ``WARN`` or ``SKIP``, the subject, the detail. Never a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pd_integrations.delivery.spool import Spool, SpoolError
from pd_integrations.events import mask_key
from pd_integrations.state.base import safe_url
from pd_integrations.workers import multi_process_warning

from .model import PagerDutySettings

__all__ = ["Finding", "delivery_findings", "format_findings", "settings_findings", "state_finding"]


@dataclass(frozen=True)
class Finding:
    """One line of a ``check`` report; ``ok`` is None when the check could not run."""

    name: str
    ok: bool | None
    detail: str
    warning: bool = False
    """A line that does not fail the check but needs attention (``WARN``)."""

    @property
    def mark(self) -> str:
        if self.warning:
            return "WARN"
        return {True: "OK  ", False: "FAIL", None: "SKIP"}[self.ok]


def settings_findings(
    settings: PagerDutySettings, *, missing_key: str = "set PAGERDUTY_ROUTING_KEY"
) -> list[Finding]:
    """The routing key and base URL with their origins, then every invalid setting.

    :param missing_key: how to give a routing key, in the command's own terms.
    """
    findings: list[Finding] = []
    key_error = settings.routing_key_error
    if key_error is not None:
        findings.append(Finding("routing key", False, key_error))
    elif settings.routing_key is None:
        findings.append(
            Finding("routing key", False, f"missing: {missing_key} (alerting is disabled)")
        )
    else:
        note = ""
        if settings.routing_key.startswith("R"):
            note = "; a global ruleset key: change events need a service integration key"
        findings.append(
            Finding(
                "routing key",
                True,
                f"{mask_key(settings.routing_key)} (from {settings.origin('routing_key')}){note}",
            )
        )
    url_errors = [p for p in settings.errors if p.setting == "events_base_url"]
    if url_errors:
        findings.append(Finding("base URL", False, str(url_errors[0])))
    else:
        url = safe_url(settings.events_base_url)
        findings.append(
            Finding("base URL", True, f"{url} (from {settings.origin('events_base_url')})")
        )
    findings.extend(_rule_key_findings(settings))
    for problem in settings.errors:
        if problem.setting not in ("routing_key", "events_base_url"):
            findings.append(Finding(problem.setting or "settings", False, str(problem)))
    return [*findings, *delivery_findings(settings)]


def delivery_findings(settings: PagerDutySettings) -> list[Finding]:
    """Who hears about failing delivery, and what a spool file holds back or lost.

    A running app reports its live delivery health through ``AlertManager.health()``
    and its health endpoint; a ``check`` command is a process of its own, so it reads
    only what outlives a process: the spool.
    """
    findings = []
    alarm_key = settings.delivery_alert_routing_key
    if alarm_key is not None:
        origin = settings.origin("delivery_alert_routing_key")
        findings.append(
            Finding("delivery alert", True, f"to {mask_key(alarm_key)} (from {origin})")
        )
    if settings.spool is not None and settings.routing_key is not None:
        findings.append(_spool_finding(settings.spool, settings.routing_key, settings))
    return findings


def _spool_finding(path: str, routing_key: str, settings: PagerDutySettings) -> Finding:
    if not Path(path).exists():
        return Finding("spool backlog", True, f"{path}: no file yet (created at the first event)")
    try:
        spool = Spool(path, routing_key=routing_key)
    except SpoolError as error:
        return Finding("spool backlog", False, str(error))
    try:
        waiting, oldest = spool.pending_count(), spool.oldest_age()
        refused = [f for f in spool.failed() if f.reason == "rejected"]
    except SpoolError as error:
        return Finding("spool backlog", False, str(error))
    finally:
        spool.close()
    detail = f"{path}: {waiting} event(s) waiting"
    if oldest is not None:
        detail += f", the oldest for {oldest:.0f} s"
    if refused:
        detail += f"; {len(refused)} refused by PagerDuty, the last: {refused[-1].error}"
    stalled = oldest is not None and oldest >= settings.delivery_stall_after
    return Finding("spool backlog", True, detail, warning=stalled or bool(refused))


def _rule_key_findings(settings: PagerDutySettings) -> list[Finding]:
    """One line per routing key the routing rules send alerts to (checked when read)."""
    findings: list[Finding] = []
    seen: set[str] = set()
    for number, rule in enumerate(settings.routing_rules, 1):
        key = rule.routing_key
        if key is None or key in seen:
            continue
        seen.add(key)
        detail = f"{mask_key(key)} (routing rule {number}, from {settings.origin('routing_rules')})"
        findings.append(Finding(f"routing key {len(seen) + 1}", True, detail))
    if seen and settings.routing_key is None:
        findings.append(
            Finding(
                "routing rules",
                False,
                "need the main routing key too: without it alerting is disabled, rules and all",
            )
        )
    return findings


def state_finding(settings: PagerDutySettings) -> Finding:
    """Where alert state lives, and a warning when workers would each keep their own."""
    shared = settings.state_url is not None and not settings.state_url.startswith("memory:")
    where = safe_url(settings.state_url) if shared and settings.state_url else "in this process"
    warning = multi_process_warning(shared)
    if warning is not None:
        return Finding("shared state", True, warning.removeprefix("PagerDuty: "), warning=True)
    return Finding("shared state", True, where)


def format_findings(findings: Sequence[Finding], secrets: Sequence[str] = ()) -> list[str]:
    """One line per finding, the subjects aligned; ``secrets`` never appear."""
    if not findings:
        return []
    width = max(len(finding.name) for finding in findings)
    lines = []
    for finding in findings:
        detail = finding.detail
        for secret in secrets:
            if secret:
                detail = detail.replace(secret, mask_key(secret))
        lines.append(f"{finding.mark}  {finding.name:<{width}}  {detail}")
    return lines
