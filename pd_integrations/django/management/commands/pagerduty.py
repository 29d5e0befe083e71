"""``manage.py pagerduty check|test|health``.

- ``check``: the system checks of this app and the settings in effect (key masked);
  exit status 1 when a check reports an error or an unsilenced warning.
- ``test``: send a test alert through the configured key and base URL, wait for
  PagerDuty to accept it, then resolve it (``--keep-open`` leaves it open); exit status
  1 when delivery failed, 2 without a usable key.
- ``health``: run ``PAGERDUTY['HEALTH_CHECKS']`` once and print the report; exit status
  1 when unhealthy. It never pages: a one-shot run cannot tell a blip from an outage
  (the running app's HealthMonitor does that), so it is safe in cron or a deploy step.

Every command takes ``--json`` for machine-readable output on stdout.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from typing import Any

from django.core.checks import WARNING, CheckMessage, run_checks
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pd_integrations import signals
from pd_integrations.alerts import AlertManager
from pd_integrations.django import conf, runtime
from pd_integrations.django.checks import TAG
from pd_integrations.events import Severity
from pd_integrations.health import HealthReport
from pd_integrations.settings.report import format_findings, settings_findings, state_finding

ACTIONS = ("check", "test", "health")
EXIT_FAILED = 1
EXIT_CONFIG = 2
DEFAULT_TIMEOUT = 10.0


class Command(BaseCommand):
    help = (
        "PagerDuty alerting: 'check' the settings, send a 'test' alert and resolve it, "
        "or run the 'health' checks once."
    )
    # `check` runs this app's checks itself; `test` and `health` must work despite warnings.
    requires_system_checks: list[str] = []  # noqa: RUF012 - Django's declared type

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=ACTIONS, help="what to do")
        parser.add_argument("--json", action="store_true", help="print JSON on stdout")
        parser.add_argument(
            "--severity",
            default=Severity.INFO.value,
            choices=[severity.value for severity in Severity],
            help="test: the test alert's severity (default: info)",
        )
        parser.add_argument(
            "--keep-open", action="store_true", help="test: leave the test alert open"
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=DEFAULT_TIMEOUT,
            help=f"test: seconds to wait for PagerDuty (default: {DEFAULT_TIMEOUT:g})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "check":
            self._check(as_json=options["json"])
        elif action == "test":
            self._test(
                as_json=options["json"],
                severity=Severity.parse(options["severity"]),
                keep_open=options["keep_open"],
                timeout=options["timeout"],
            )
        else:
            self._health(as_json=options["json"])

    # -- check ----------------------------------------------------------------------------

    def _check(self, *, as_json: bool) -> None:
        messages = run_checks(tags=[TAG])
        settings, _ = conf.load()
        failing = [m for m in messages if m.is_serious(WARNING) and not m.is_silenced()]
        if as_json:
            self._json(
                {
                    "ok": not failing,
                    "messages": [_message_dict(m) for m in messages],
                    "settings": {
                        **settings.summary(),
                        "routing_key_origin": settings.routing_key_origin,
                        "enabled": settings.enabled,
                    },
                }
            )
        else:
            self._print_settings(settings)
            self.stdout.write("")
            for message in messages:
                style = self.style.ERROR if message.is_serious() else self.style.WARNING
                self.stdout.write(style(str(message)))
            if not messages:
                self.stdout.write(self.style.SUCCESS("No problems found."))
        if failing:
            raise CommandError(f"{len(failing)} problem(s) found", returncode=EXIT_FAILED)

    def _print_settings(self, settings: conf.PagerDutySettings) -> None:
        # The lines every check command shows, then every setting in effect.
        findings = settings_findings(settings, missing_key="set PAGERDUTY['ROUTING_KEY']")
        for line in format_findings([*findings, state_finding(settings)]):
            self.stdout.write(line)
        self.stdout.write("")
        summary = settings.summary()
        summary.pop("routing_key")
        width = max(len(name) for name in summary)
        self.stdout.write(self.style.MIGRATE_HEADING("PagerDuty settings in effect:"))
        for name, value in summary.items():
            shown = value if isinstance(value, str) else json.dumps(value)
            self.stdout.write(f"  {name:<{width}}  {shown}")

    # -- test -----------------------------------------------------------------------------

    def _test(self, *, as_json: bool, severity: Severity, keep_open: bool, timeout: float) -> None:
        settings, _ = conf.load()
        if settings.routing_key_error is not None:
            raise CommandError(settings.routing_key_error, returncode=EXIT_CONFIG)
        if settings.routing_key is None:
            raise CommandError(
                "no PagerDuty routing key: set PAGERDUTY['ROUTING_KEY'] or PAGERDUTY_ROUTING_KEY",
                returncode=EXIT_CONFIG,
            )
        alerts = runtime.build_alerts(settings)
        if alerts is None or not alerts.enabled:
            raise CommandError(
                settings.routing_key_error or "the PagerDuty AlertManager could not be created",
                returncode=EXIT_CONFIG,
            )
        errors: list[str] = []

        def failed(sender: object, error: object = None, **extra: Any) -> None:
            errors.append(str(error))

        signals.event_failed.connect(failed, sender=alerts.dispatcher)
        try:
            key, delivered = self._send_test(alerts, settings, severity, keep_open, timeout)
            stats = alerts.stats()
        finally:
            signals.event_failed.disconnect(failed, sender=alerts.dispatcher)
            alerts.close(timeout=0)
        ok = delivered and not errors and stats.failed == 0 and stats.dropped == 0
        if as_json:
            self._json(
                {
                    "ok": ok,
                    "dedup_key": key,
                    "severity": severity.value,
                    "resolved": not keep_open,
                    "routing_key": settings.masked_routing_key,
                    "events_base_url": settings.events_base_url,
                    "errors": errors,
                    "stats": asdict(stats),
                }
            )
        elif ok:
            what = "left open" if keep_open else "then resolved"
            self.stdout.write(
                self.style.SUCCESS(
                    f"PagerDuty accepted the test alert ({severity.value}, dedup key {key}), "
                    f"{what}; routing key {settings.masked_routing_key}, "
                    f"{settings.events_base_url}."
                )
            )
        if not ok:
            reason = "; ".join(errors) or f"not delivered within {timeout:g} s"
            raise CommandError(f"the test alert failed: {reason}", returncode=EXIT_FAILED)

    @staticmethod
    def _send_test(
        alerts: AlertManager,
        settings: conf.PagerDutySettings,
        severity: Severity,
        keep_open: bool,
        timeout: float,
    ) -> tuple[str, bool]:
        key = alerts.alert(
            f"Test alert from {settings.source} (manage.py pagerduty test)",
            severity,
            alert_type="test",
            component=settings.component,
            identifier=uuid.uuid4().hex[:12],
            custom_details={
                "sent_by": "manage.py pagerduty test",
                "environment": settings.environment,
            },
        )
        delivered = alerts.flush(timeout)
        if not keep_open:
            alerts.resolve(key)
            delivered = alerts.flush(timeout) and delivered
        return key, delivered

    # -- health ---------------------------------------------------------------------------

    def _health(self, *, as_json: bool) -> None:
        settings, _ = conf.load()
        alerts = runtime.build_alerts(settings)
        if alerts is None:
            raise CommandError(
                settings.routing_key_error or "the PagerDuty AlertManager could not be created",
                returncode=EXIT_CONFIG,
            )
        try:
            report = runtime.build_health(settings, alerts).run(alert=False)
        finally:
            alerts.close(timeout=0)
        if as_json:
            self._json(report.to_dict())
        else:
            self._print_report(report)
        if not report.healthy:
            failing = [c.name for c in report.checks if not c.healthy]
            raise CommandError(f"unhealthy: {', '.join(failing)}", returncode=EXIT_FAILED)

    def _print_report(self, report: HealthReport) -> None:
        if not report.checks:
            self.stdout.write("No health checks configured (PAGERDUTY['HEALTH_CHECKS']).")
        width = max((len(c.name) for c in report.checks), default=0)
        for check in report.checks:
            style = self.style.SUCCESS if check.healthy else self.style.ERROR
            line = f"{check.name:<{width}}  {check.status.value:<9}  {check.duration_ms:9.1f} ms"
            if check.error:
                line += f"  {check.error}"
            self.stdout.write(style(line))
        overall = self.style.SUCCESS if report.healthy else self.style.ERROR
        self.stdout.write(overall(f"Overall: {report.status.value}"))

    def _json(self, value: object) -> None:
        self.stdout.write(json.dumps(value, indent=2, sort_keys=True))


def _message_dict(message: CheckMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "level": "error" if message.is_serious() else "warning",
        "msg": message.msg,
        "hint": message.hint,
        "silenced": message.is_silenced(),
    }
