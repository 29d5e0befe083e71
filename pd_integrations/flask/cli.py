"""``flask pagerduty test`` and ``flask pagerduty check``, added to every app by the extension.

Both work on the app Flask loads (``--app`` / ``FLASK_APP``), through that app's own
settings and :class:`~pd_integrations.AlertManager`, so they test exactly what the
running app would do.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import click
from flask import current_app
from flask.cli import AppGroup, ScriptInfo

from pd_integrations import signals
from pd_integrations.events import Event, Severity, mask_key
from pd_integrations.health import CheckStatus
from pd_integrations.settings.report import (
    Finding,
    format_findings,
    settings_findings,
    state_finding,
)

from .state import PagerDutyState, get_state

if TYPE_CHECKING:
    from pd_integrations.delivery.dispatcher import Dispatcher

DEFAULT_TEST_SUMMARY = "Test alert from `flask pagerduty test`"

pagerduty_cli = AppGroup("pagerduty", help="Test and check this app's PagerDuty alerting.")


def _state() -> PagerDutyState:
    try:
        return get_state()
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None


@pagerduty_cli.command("test")
@click.option("--summary", default=DEFAULT_TEST_SUMMARY, show_default=True)
@click.option(
    "--severity",
    type=click.Choice([severity.value for severity in Severity]),
    default=Severity.INFO.value,
    show_default=True,
)
@click.option(
    "--no-resolve",
    "keep_open",
    is_flag=True,
    help="Leave the test alert open (resolve it in PagerDuty yourself).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds to wait for delivery.",
)
def test_command(summary: str, severity: str, keep_open: bool, timeout: float) -> None:
    """Send a test trigger (and its resolve) through this app's AlertManager."""
    state = _state()
    alerts = state.alerts
    dispatcher = alerts.dispatcher
    if dispatcher is None:
        raise click.ClickException(
            "PagerDuty alerting is disabled: no routing key (set PAGERDUTY_ROUTING_KEY in "
            "app.config or the environment)"
        )
    problems: list[str] = []

    def failed(sender: object, event: Event, error: Exception, **extra: Any) -> None:
        problems.append(f"the {event.action} event failed: {error}")

    def dropped(sender: object, event: Event, reason: str, **extra: Any) -> None:
        problems.append(f"the {event.action} event was dropped ({reason})")

    with (
        signals.event_failed.connected_to(failed, sender=dispatcher),
        signals.event_dropped.connected_to(dropped, sender=dispatcher),
    ):
        key = alerts.alert(
            summary,
            severity,
            alert_type="cli_test",
            identifier=uuid.uuid4().hex[:12],
            custom_details={"app": current_app.name, "command": "flask pagerduty test"},
        )
        click.echo(f"Dedup key: {key}")
        if not keep_open:
            alerts.resolve(key)
        delivered = alerts.flush(timeout)
    where = dispatcher.client.base_url
    if problems:
        raise click.ClickException("; ".join(problems))
    if not delivered:
        raise click.ClickException(
            f"not delivered to {where} within {timeout:g} s (still retrying in the background)"
        )
    sent = "trigger" if keep_open else "trigger and resolve"
    click.echo(f"Sent the test {sent} to {where}.")


@pagerduty_cli.command("check", with_appcontext=False)
@click.option(
    "--probe/--no-probe",
    default=False,
    show_default=True,
    help="Also check that the Events API answers over the network.",
)
def check_command(probe: bool) -> None:
    """Show this app's PagerDuty settings and run its health checks (without alerting)."""
    # Loaded here, not by Flask before the command: an app whose PagerDuty settings are
    # invalid fails to start, and check must say why in one line, not in a traceback.
    info = click.get_current_context().ensure_object(ScriptInfo)
    try:
        app = info.load_app()
    except Exception as error:  # the app's own start-up failed; say so, and how
        for line in format_findings([Finding("app", False, f"{type(error).__name__}: {error}")]):
            click.echo(line)
        raise click.ClickException("the app did not start: 1 problem found") from None
    with app.app_context():
        _check(probe)


def _check(probe: bool) -> None:
    state = _state()
    settings = state.settings
    dispatcher = state.alerts.dispatcher
    findings = settings_findings(settings)
    if not state.owns_alerts:
        # The AlertManager passed to PagerDuty() is what runs, not the app's settings.
        key = dispatcher.client.routing_key if dispatcher is not None else None
        base_url = dispatcher.client.base_url if dispatcher is not None else None
        given = "(from the AlertManager passed to PagerDuty())"
        findings[0] = (
            Finding("routing key", True, f"{mask_key(key)} {given}")
            if key
            else Finding("routing key", False, "missing: the AlertManager passed has none")
        )
        findings[1] = Finding("base URL", True, f"{base_url} {given}")
    else:
        base_url = settings.events_base_url
    findings += [
        Finding(name, True, value)
        for name, value in (
            ("source", state.alerts.source),
            ("environment", settings.environment or "-"),
            ("slow requests", _slow_line(state)),
            ("handled 5xx", "alert" if state.monitor.alert_on_handled_5xx else "no alert"),
            ("dedup by", state.monitor.dedup_by),
            ("health endpoint", _health_line(state)),
        )
    ]
    state_line = state_finding(settings)
    findings.append(
        state_line
        if state_line.warning
        else Finding("shared state", True, state.alerts.state.description)
    )
    findings.append(Finding("spool", True, _spool_line(dispatcher)))
    problems = sum(1 for finding in findings if finding.ok is False)
    for line in format_findings(findings):
        click.echo(line)
    if probe and base_url is not None:
        # The core command's reachability check.
        from pd_integrations.cli.check import probe as probe_url

        finding = probe_url(base_url, 5.0)
        click.echo(format_findings([finding])[0])
        problems += 0 if finding.ok else 1
    # A diagnosis must never page: a one-shot failure here would open an incident that
    # no running server knows it has to resolve.
    report = state.health.run(alert=False)
    if report.checks:
        click.echo("health checks:")
    for result in report.checks:
        ok = {CheckStatus.HEALTHY: True, CheckStatus.SKIPPED: None}.get(result.status, False)
        detail = f"  {result.error}" if result.error else ""
        check = Finding(result.name, ok, f"({result.duration_ms:.1f} ms){detail}")
        click.echo("  " + format_findings([check])[0])
    if not report.healthy:
        problems += 1
    if problems:
        raise click.ClickException(f"{problems} problem(s) found")
    click.echo("All checks passed.")


def _slow_line(state: PagerDutyState) -> str:
    monitor = state.monitor
    overrides = len(state.settings.slow_routes) if state.owns_monitor else 0
    base = "off" if monitor.slow_request_ms is None else f"{monitor.slow_request_ms:g} ms"
    return f"{base} ({overrides} route override(s))" if overrides else base


def _health_line(state: PagerDutyState) -> str:
    path = state.settings.health_path or "off"
    interval = state.settings.health_interval
    every = f", every {interval:g} s in the background" if interval else ""
    return f"{path} ({len(state.health.names)} check(s){every})"


def _spool_line(dispatcher: Dispatcher | None) -> str:
    if dispatcher is None:
        return "-"
    flush = f"flush at exit and on SIGTERM: up to {dispatcher.exit_flush_timeout:g} s"
    if dispatcher.spool_path is None:
        return f"none, events wait in memory ({flush})"
    if dispatcher.spool is None:
        return f"{dispatcher.spool_path} UNUSABLE, events wait in memory ({flush})"
    return f"{dispatcher.spool_path} ({flush})"
