"""``pd-integrations incidents|oncall|webhook``: the REST API and webhooks from a shell.

``incidents list|show|ack|resolve|note`` and ``oncall`` use :class:`~.rest.RestClient`;
``webhook verify`` checks a captured delivery with :func:`~.webhooks.verify_signature`.
Exit status and error lines follow the rest of the command (see :mod:`.cli`): 0 on
success, 1 when PagerDuty refuses or cannot be reached (or a signature does not
match), 2 on usage or configuration errors. API keys and secrets are masked.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pd_integrations import environment
from pd_integrations.cli.common import (
    DEFAULT_TIMEOUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    fail,
    positive_float,
    print_json,
    redact,
    tls_verify,
)
from pd_integrations.errors import ConfigurationError, PagerDutyError, RestError
from pd_integrations.rest.client import RestClient
from pd_integrations.webhooks.receiver import parse_secrets, verify_signature

STATUSES = ("triggered", "acknowledged", "resolved")
TITLE_WIDTH = 60
DEFAULT_LIST_LIMIT = 25

Command = Callable[[RestClient, argparse.Namespace], Any]


# -- the parser ---------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {text!r}")
    return value


def add_connection(
    parser: argparse.ArgumentParser, *, writes: bool = True, json_output: bool = True
) -> Any:
    """The REST connection options (``--api-key``, ``--base-url``...); returns their group.

    ``writes`` adds ``--from`` (the user that writes act as); ``json_output`` ``--json``.
    """
    group = parser.add_argument_group("PagerDuty REST API connection")
    group.add_argument(
        "--api-key", metavar="KEY", help=f"a REST API key (default: ${environment.API_KEY_VAR})"
    )
    if writes:
        group.add_argument(
            "--from",
            dest="from_email",
            metavar="EMAIL",
            help=f"the user that writes act as (default: ${environment.FROM_EMAIL_VAR})",
        )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help=f"REST API base URL (default: ${environment.REST_BASE_URL_VAR}, "
        "then https://api.pagerduty.com)",
    )
    group.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"network timeout per attempt (default {DEFAULT_TIMEOUT:g})",
    )
    group.add_argument(
        "--ca-file", metavar="PEM", help="verify TLS against this CA, e.g. the emulator's"
    )
    if json_output:
        parser.add_argument_group("output").add_argument(
            "--json", action="store_true", help="print PagerDuty's objects as JSON"
        )
    return group


def add_commands(commands: Any) -> None:
    """Add ``incidents``, ``oncall`` and ``webhook`` to the top-level subparsers."""
    incidents = commands.add_parser(
        "incidents",
        help="list, show, acknowledge, resolve and annotate incidents (REST API)",
        description="Incidents through PagerDuty's REST API v2.",
    )
    actions = incidents.add_subparsers(dest="incidents_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list incidents, oldest first")
    listing.add_argument(
        "--status",
        action="append",
        choices=STATUSES,
        help="only incidents with this status; repeatable (default: all)",
    )
    listing.add_argument(
        "--limit",
        type=_positive_int,
        default=DEFAULT_LIST_LIMIT,
        metavar="N",
        help=f"at most N incidents (default {DEFAULT_LIST_LIMIT})",
    )
    add_connection(listing)
    listing.set_defaults(handler=_run(_list_incidents))

    show = actions.add_parser("show", help="one incident and its notes")
    show.add_argument("incident_id", metavar="ID")
    add_connection(show)
    show.set_defaults(handler=_run(_show_incident))

    ack = actions.add_parser("ack", help="acknowledge an incident (needs --from)")
    ack.add_argument("incident_id", metavar="ID")
    add_connection(ack)
    ack.set_defaults(handler=_run(_acknowledge))

    resolve = actions.add_parser("resolve", help="resolve an incident (needs --from)")
    resolve.add_argument("incident_id", metavar="ID")
    resolve.add_argument("--resolution", metavar="TEXT", help="how it was resolved")
    add_connection(resolve)
    resolve.set_defaults(handler=_run(_resolve))

    note = actions.add_parser("note", help="add a note to an incident (needs --from)")
    note.add_argument("incident_id", metavar="ID")
    note.add_argument("content", metavar="TEXT")
    add_connection(note)
    note.set_defaults(handler=_run(_add_note))

    oncall = commands.add_parser(
        "oncall",
        help="who is on call now on a schedule (REST API)",
        description="The users on call now on a schedule, lowest escalation level first.",
    )
    oncall.add_argument("schedule_id", metavar="SCHEDULE_ID")
    add_connection(oncall)
    oncall.set_defaults(handler=_run(_oncall))

    webhook = commands.add_parser(
        "webhook",
        help="check a captured webhook delivery's signature",
        description="Tools for PagerDuty's v3 webhooks.",
    )
    webhook_actions = webhook.add_subparsers(
        dest="webhook_command", metavar="ACTION", required=True
    )
    verify = webhook_actions.add_parser(
        "verify",
        help="check X-PagerDuty-Signature against the raw body",
        description="Check a delivery's X-PagerDuty-Signature header against its raw body "
        "(read from stdin or --body-file, byte for byte). Exit status 0: valid, 1: no "
        "v1 signature matches any secret, 2: usage error.",
    )
    verify.add_argument(
        "--secret",
        action="append",
        metavar="SECRET",
        help=f"the subscription's secret; repeat during a rotation "
        f"(default: ${environment.WEBHOOK_SECRET_VAR})",
    )
    verify.add_argument(
        "--signature", required=True, metavar="HEADER", help="the X-PagerDuty-Signature value"
    )
    verify.add_argument("--body-file", metavar="PATH", help="the raw body (default: stdin)")
    verify.set_defaults(handler=_verify_webhook)


# -- running a REST command -------------------------------------------------------------


def _run(command: Command) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        secrets = [
            key for key in (args.api_key or environment.env_value(environment.API_KEY_VAR),) if key
        ]
        try:
            client = RestClient(
                args.api_key,
                from_email=args.from_email,
                base_url=args.base_url,
                timeout=args.timeout,
                verify=tls_verify(args.ca_file),
            )
        except ConfigurationError as error:
            return fail(str(error), secrets, EXIT_USAGE)
        with client:
            try:
                result = command(client, args)
            except ConfigurationError as error:
                return fail(_in_cli_terms(str(error)), secrets, EXIT_USAGE)
            except PagerDutyError as error:
                return _failed(args, error, secrets)
        if args.json:
            print_json(result)
        return EXIT_OK

    return handler


def _in_cli_terms(message: str) -> str:
    """A client error as a command-line user acts on it: the flag, not the Python argument."""
    return message.replace("pass from_email=", "pass --from")


def _failed(args: argparse.Namespace, error: PagerDutyError, secrets: list[str]) -> int:
    if args.json:
        body: dict[str, Any] = {"status": "error", "message": redact(str(error), secrets)}
        if isinstance(error, RestError):
            body.update(status_code=error.status_code, code=error.code, errors=error.errors)
        print_json(body)
    return fail(str(error), secrets, EXIT_FAILED)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _clip(text: str, width: int = TITLE_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _name(reference: Any) -> str:
    if not isinstance(reference, dict):
        return "-"
    return str(reference.get("summary") or reference.get("name") or reference.get("id") or "-")


# -- incidents ---------------------------------------------------------------------------


def _list_incidents(client: RestClient, args: argparse.Namespace) -> list[dict[str, Any]]:
    incidents = list(client.list_incidents(statuses=args.status, limit=args.limit))
    if not args.json:
        if not incidents:
            print("No incidents.")
        else:
            header = ("ID", "NUMBER", "STATUS", "URGENCY", "CREATED", "SERVICE", "TITLE")
            rows = [
                (
                    str(i.get("id")),
                    str(i.get("incident_number", "")),
                    str(i.get("status")),
                    str(i.get("urgency", "")),
                    str(i.get("created_at", "")),
                    _name(i.get("service")),
                    _clip(str(i.get("title", ""))),
                )
                for i in incidents
            ]
            print(_table([header, *rows]))
    return incidents


def _show_incident(client: RestClient, args: argparse.Namespace) -> dict[str, Any]:
    incident = client.get_incident(args.incident_id)
    notes = client.list_notes(args.incident_id)
    if args.json:
        return {**incident, "notes": notes}
    assignees = [_name(a.get("assignee")) for a in incident.get("assignments") or []]
    fields = [
        ("ID", incident.get("id")),
        ("Number", incident.get("incident_number")),
        ("Title", incident.get("title")),
        ("Status", incident.get("status")),
        ("Urgency", incident.get("urgency")),
        ("Service", _name(incident.get("service"))),
        ("Incident key", incident.get("incident_key")),
        ("Created", incident.get("created_at")),
        ("Assigned to", ", ".join(assignees) or "-"),
        ("URL", incident.get("html_url")),
    ]
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{name + ':':<{width + 1}}  {'-' if value is None else value}")
    print(f"Notes ({len(notes)}):")
    for note in notes:
        print(f"  {note.get('created_at', '')}  {_name(note.get('user'))}: {note.get('content')}")
    return incident


def _acknowledge(client: RestClient, args: argparse.Namespace) -> dict[str, Any]:
    incident = client.acknowledge_incident(args.incident_id)
    if not args.json:
        print(f"{incident.get('id', args.incident_id)} {incident.get('status')}")
    return incident


def _resolve(client: RestClient, args: argparse.Namespace) -> dict[str, Any]:
    incident = client.resolve_incident(args.incident_id, resolution=args.resolution)
    if not args.json:
        print(f"{incident.get('id', args.incident_id)} {incident.get('status')}")
    return incident


def _add_note(client: RestClient, args: argparse.Namespace) -> dict[str, Any]:
    if not args.content.strip():
        raise ConfigurationError("a note needs some text")
    note = client.add_note(args.incident_id, args.content)
    if not args.json:
        print(f"note {note.get('id')} added to {args.incident_id}")
    return note


# -- on call ------------------------------------------------------------------------------


def _oncall(client: RestClient, args: argparse.Namespace) -> list[dict[str, Any]]:
    entries = sorted(
        client.list_oncalls(schedule_ids=[args.schedule_id]),
        key=lambda entry: int(entry.get("escalation_level") or 0),
    )
    if not entries:
        raise _NobodyOnCall(
            f"nobody is on call on schedule {args.schedule_id} (or no such schedule)"
        )
    if not args.json:
        header = ("LEVEL", "USER", "USER ID", "SCHEDULE", "UNTIL")
        rows = [
            (
                str(entry.get("escalation_level", "")),
                _name(entry.get("user")),
                str((entry.get("user") or {}).get("id", "")),
                _name(entry.get("schedule")),
                str(entry.get("end") or "-"),
            )
            for entry in entries
        ]
        print(_table([header, *rows]))
    return entries


class _NobodyOnCall(PagerDutyError):
    """The schedule has nobody on call now: exit status 1."""


# -- webhook verify --------------------------------------------------------------------


def _verify_webhook(args: argparse.Namespace) -> int:
    secrets = [s for s in args.secret or () if s] or list(
        parse_secrets(environment.env_value(environment.WEBHOOK_SECRET_VAR))
    )
    if not secrets:
        raise UsageError(
            f"no webhook secret: pass --secret or set {environment.WEBHOOK_SECRET_VAR}"
        )
    body = _read_body(args.body_file)
    if verify_signature(body, args.signature, secrets):
        print("valid: the signature matches the body")
        return EXIT_OK
    reason = "the body is empty" if not body else "no v1 signature matches the body"
    return fail(
        f"invalid signature: {reason} (checked against {len(secrets)} secret(s))",
        secrets,
        EXIT_FAILED,
    )


def _read_body(path: str | None) -> bytes:
    if path is None:
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise UsageError(f"cannot read --body-file {path}: {error.strerror or error}") from None


def secrets_in(argv: Iterable[str]) -> list[str]:
    """API keys and webhook secrets given on a command line, for masking."""
    words = list(argv)
    found = []
    for index, word in enumerate(words):
        for flag in ("--api-key", "--secret", "--webhook-secret"):
            if word == flag and index + 1 < len(words):
                found.append(words[index + 1])
            elif word.startswith(flag + "="):
                found.append(word.partition("=")[2])
    return [secret for secret in found if secret]
