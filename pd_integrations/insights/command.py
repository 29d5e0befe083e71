"""``pd-integrations report`` and ``pd-integrations timeline``.

The parser is built without importing the report's modules; they load when a command
runs. Exit status as for the rest of the command (see :mod:`pd_integrations.cli.main`): 0
on success, 1 when PagerDuty refuses or cannot be reached, 2 on usage or configuration
errors, with one ``pd-integrations: error: ...`` line on stderr and API keys masked.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pd_integrations import environment
from pd_integrations.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    UsageError,
    fail,
    tls_verify,
)
from pd_integrations.errors import ConfigurationError, PagerDutyError

FORMATS = ("text", "json", "html")


def _connection(parser: argparse.ArgumentParser) -> None:
    from pd_integrations.cli import (
        rest as cli_rest,  # the parser side only: no REST client loads here
    )

    group = cli_rest.add_connection(parser, writes=False, json_output=False)
    group.add_argument(
        "--requests-per-minute",
        type=int,
        default=960,
        metavar="N",
        help="stay within this many REST requests a minute (default 960, PagerDuty's limit)",
    )


def add_commands(commands: Any) -> None:
    """Add ``report`` and ``timeline`` to the top-level subparsers."""
    report = commands.add_parser(
        "report",
        help="alert fatigue, MTTA/MTTR and SLA figures from PagerDuty's records",
        description="Read the incidents created in a window and their log entries, and "
        "report per service and per alert: counts, MTTA/MTTR (median, p90), noise "
        "candidates with a suggestion each, and SLA breaches.",
    )
    report.add_argument(
        "--since",
        default="30d",
        metavar="WHEN",
        help="start: ISO 8601 or a duration ago (default 30d)",
    )
    report.add_argument(
        "--until", metavar="WHEN", help="end: ISO 8601 or a duration ago (default now)"
    )
    report.add_argument(
        "--service",
        dest="services",
        action="append",
        default=[],
        metavar="ID",
        help="only this service (repeatable)",
    )
    report.add_argument(
        "--team",
        dest="teams",
        action="append",
        default=[],
        metavar="ID",
        help="only this team's incidents (repeatable)",
    )
    report.add_argument(
        "--sla",
        action="append",
        default=[],
        metavar="DURATION|SERVICE=DURATION",
        help="time-to-resolve target, e.g. 30m; SERVICE_ID=15m for one service (repeatable)",
    )
    report.add_argument(
        "--flap-minutes",
        type=float,
        default=30.0,
        metavar="N",
        help="a trigger within N minutes of the same alert's resolve is flapping (default 30)",
    )
    report.add_argument(
        "--time-zone",
        default="UTC",
        metavar="ZONE",
        help="judge out-of-hours pages in this zone when a responder's is unknown",
    )
    report.add_argument("--format", choices=FORMATS, default="text")
    report.add_argument(
        "--output", "-o", metavar="FILE", help="write the report here instead of stdout"
    )
    _connection(report)
    report.set_defaults(handler=_report)

    timeline = commands.add_parser(
        "timeline",
        help="an incident's timeline in Markdown, for a post-mortem",
        description="Print an incident's timeline (trigger, notifications, acknowledgements, "
        "escalations, notes, resolve) and, when it came from pd_integrations, its details.",
    )
    timeline.add_argument("incident", metavar="INCIDENT", help="the incident's id")
    _connection(timeline)
    timeline.set_defaults(handler=_timeline)


def _client(args: argparse.Namespace, notice: Any) -> Any:
    import httpx

    from pd_integrations.insights.fetch import PacedTransport
    from pd_integrations.rest.client import RestClient

    if args.requests_per_minute < 1:
        raise UsageError("--requests-per-minute must be 1 or more")
    verify = tls_verify(args.ca_file)
    transport = PacedTransport(
        httpx.HTTPTransport(verify=verify), per_minute=args.requests_per_minute, notice=notice
    )
    return RestClient(
        args.api_key, base_url=args.base_url, timeout=args.timeout, transport=transport
    )


def _notice(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


class _Progress:
    """Incidents read so far, on one rewritten line, only when stderr is a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()

    def __call__(self, count: int) -> None:
        if self.live and count % 25 == 0:
            self.stream.write(f"\rread {count} incidents…")
            self.stream.flush()

    def done(self) -> None:
        if self.live:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _secrets(args: argparse.Namespace) -> list[str]:
    return [key for key in (args.api_key or environment.env_value(environment.API_KEY_VAR),) if key]


def _report(args: argparse.Namespace) -> int:
    from pd_integrations import insights

    now = datetime.now(UTC)
    try:
        until = insights.parse_when(args.until, now) if args.until else now
        since = insights.parse_when(args.since, now)
        sla, by_service = insights.parse_sla(args.sla)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if until <= since:
        raise UsageError(f"--until ({until.isoformat()}) must come after --since")
    try:
        ZoneInfo(args.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"--time-zone must be an IANA zone such as Europe/Paris, got {args.time_zone!r}"
        ) from None
    secrets = _secrets(args)
    progress = _Progress(sys.stderr)
    try:
        with _client(args, _notice) as client:
            report = insights.build_report(
                client,
                since=since,
                until=until,
                service_ids=args.services,
                team_ids=args.teams,
                sla=sla,
                sla_by_service=by_service,
                flap_minutes=args.flap_minutes,
                default_time_zone=args.time_zone,
                progress=progress,
            )
    except ConfigurationError as error:
        return fail(str(error), secrets, EXIT_USAGE)
    except PagerDutyError as error:
        return fail(str(error), secrets, EXIT_FAILED)
    finally:
        progress.done()
    render = {
        "text": insights.render_text,
        "json": insights.render_json,
        "html": insights.render_html,
    }[args.format]
    return _write(render(report), args.output, secrets)


def _timeline(args: argparse.Namespace) -> int:
    from pd_integrations.insights import timeline

    secrets = _secrets(args)
    try:
        with _client(args, _notice) as client:
            text = timeline(client, args.incident)
    except ConfigurationError as error:
        return fail(str(error), secrets, EXIT_USAGE)
    except PagerDutyError as error:
        return fail(str(error), secrets, EXIT_FAILED)
    return _write(text, None, secrets)


def _write(text: str, output: str | None, secrets: list[str]) -> int:
    if output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as error:
        return fail(f"cannot write {output}: {error}", secrets, EXIT_FAILED)
    return EXIT_OK
