"""``pd-integrations trigger|acknowledge|resolve|change``: Events API v2 events from a shell."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

from pd_integrations import environment
from pd_integrations.client import DEFAULT_BASE_URL, EventResponse, EventsClient, RetryPolicy
from pd_integrations.errors import InvalidEventError, PagerDutyError
from pd_integrations.events import (
    AcknowledgeEvent,
    ChangeEvent,
    Event,
    Image,
    Link,
    ResolveEvent,
    Severity,
    TriggerEvent,
    check_routing_key,
)

from .common import (
    DEFAULT_TIMEOUT,
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    fail,
    non_negative_int,
    positive_float,
    print_json,
    redact,
    tls_verify,
)

DEFAULT_RETRIES = RetryPolicy().max_attempts - 1


def add_summary(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("summary", nargs="?", help=f"{what} (or --summary TEXT)")
    parser.add_argument("--summary", dest="summary_option", metavar="TEXT", help=argparse.SUPPRESS)
    parser.add_argument(
        "--source", help="where it happened (default: $APP_NAME, then this host's name)"
    )


def add_payload(parser: argparse.ArgumentParser) -> None:
    """What triggers and change events share besides the summary."""
    parser.add_argument(
        "--details",
        metavar="JSON",
        help="custom details as a JSON object, or @FILE to read it from a file",
    )
    parser.add_argument(
        "--detail",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one custom detail (a string); repeatable, overrides --details",
    )
    parser.add_argument(
        "--link",
        action="append",
        default=[],
        metavar="URL[=TEXT]",
        help="a link; repeatable (for a URL with a query string write 'URL TEXT')",
    )
    parser.add_argument(
        "--image", action="append", default=[], metavar="URL", help="an https:// image; repeatable"
    )
    parser.add_argument(
        "--timestamp", metavar="ISO8601", help="when it happened (default: when received)"
    )


def add_dedup_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dedup_key", nargs="?", help="the alert's dedup key (or --dedup-key KEY)")
    parser.add_argument(
        "--dedup-key", dest="dedup_key_option", metavar="KEY", help=argparse.SUPPRESS
    )


def add_target_options(parser: argparse.ArgumentParser, *, timeout: float) -> None:
    group = parser.add_argument_group("PagerDuty connection")
    group.add_argument(
        "--routing-key",
        metavar="KEY",
        help="the 32-character integration key "
        "(default: $PAGERDUTY_ROUTING_KEY, then $PAGERDUTY_INTEGRATION_KEY)",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help=f"Events API base URL (default: $PAGERDUTY_EVENTS_BASE_URL, then {DEFAULT_BASE_URL})",
    )
    group.add_argument(
        "--timeout",
        type=positive_float,
        default=timeout,
        metavar="SECONDS",
        help=f"network timeout (default {timeout:g})",
    )
    group.add_argument(
        "--ca-file",
        metavar="PEM",
        help="verify TLS against this CA certificate, e.g. the emulator's",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print machine-readable JSON")


def add_send_options(parser: argparse.ArgumentParser) -> None:
    add_target_options(parser, timeout=DEFAULT_TIMEOUT)
    group = parser.add_argument_group("delivery")
    group.add_argument(
        "--retries",
        type=non_negative_int,
        default=DEFAULT_RETRIES,
        metavar="N",
        help="retry 429s, 5xx answers and network errors up to N times "
        f"(default {DEFAULT_RETRIES})",
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", help="log each attempt and retry to stderr"
    )


def _trigger(args: argparse.Namespace) -> int:
    def build(client: EventsClient) -> Event:
        return TriggerEvent(
            _summary(args),
            args.severity,
            args.source or client.source,
            dedup_key=args.dedup_key,
            component=args.component,
            group=args.group,
            class_=args.class_,
            custom_details=_details(args),
            links=[parse_link(text) for text in args.link],
            images=[_image(url) for url in args.image],
            timestamp=args.timestamp,
        )

    return send(args, build)


def _acknowledge(args: argparse.Namespace) -> int:
    return send(args, lambda client: AcknowledgeEvent(_dedup_key(args)))


def _resolve(args: argparse.Namespace) -> int:
    return send(args, lambda client: ResolveEvent(_dedup_key(args)))


def _change(args: argparse.Namespace) -> int:
    def build(client: EventsClient) -> Event:
        return ChangeEvent(
            _summary(args),
            source=args.source or client.source,
            custom_details=_details(args),
            links=[parse_link(text) for text in args.link],
            images=[_image(url) for url in args.image],
            timestamp=args.timestamp,
        )

    return send(args, build)


def send(args: argparse.Namespace, build: Callable[[EventsClient], Event]) -> int:
    """Build the event, send it with retries, print the answer; the exit status."""
    routing_key = routing_key_for(args.routing_key)
    client = EventsClient(
        routing_key,
        base_url=args.base_url,
        timeout=args.timeout,
        retry=RetryPolicy(max_attempts=args.retries + 1),
        verify=tls_verify(args.ca_file),
    )
    with client:
        try:
            event = build(client)
        except InvalidEventError as error:
            raise UsageError(str(error)) from error
        try:
            response = client.send(event)
        except PagerDutyError as error:
            return _delivery_failed(args, error, [routing_key])
    _print_response(args, event, response)
    return EXIT_OK


def _delivery_failed(args: argparse.Namespace, error: PagerDutyError, secrets: list[str]) -> int:
    if args.json:
        body: dict[str, Any] = {"status": "error", "message": redact(str(error), secrets)}
        if isinstance(error, InvalidEventError):
            body["errors"] = [redact(text, secrets) for text in error.errors]
        code = getattr(error, "status_code", None)
        if code is not None:
            body["status_code"] = code
        print_json(body)
    return fail(str(error), secrets, EXIT_FAILED)


def _print_response(args: argparse.Namespace, event: Event, response: EventResponse) -> None:
    if args.json:
        print_json(asdict(response))
    elif isinstance(event, ChangeEvent):
        print(response.message)
    else:
        print(response.dedup_key or event.dedup_key)


def routing_key_for(explicit: str | None) -> str:
    key = environment.routing_key(explicit)
    if not key:
        raise UsageError(
            "no PagerDuty routing key: pass --routing-key or set PAGERDUTY_ROUTING_KEY"
        )
    return check_routing_key(key)


def _summary(args: argparse.Namespace) -> str:
    positional, option = args.summary, args.summary_option
    if positional is not None and option is not None and positional != option:
        raise UsageError("give the summary once: as an argument or with --summary")
    summary: str | None = positional if positional is not None else option
    if not summary or not summary.strip():
        raise UsageError("a summary is required: pd-integrations trigger 'Disk full on db1'")
    return summary


def _dedup_key(args: argparse.Namespace) -> str:
    positional, option = args.dedup_key, args.dedup_key_option
    if positional is not None and option is not None and positional != option:
        raise UsageError("give the dedup key once: as an argument or with --dedup-key")
    key: str | None = positional if positional is not None else option
    if not key:
        raise UsageError(f"{args.command} needs the dedup key of the alert it acts on")
    return key


def _details(args: argparse.Namespace) -> dict[str, Any] | None:
    details: dict[str, Any] = {}
    if args.details is not None:
        details.update(_json_object(args.details))
    for item in args.detail:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--detail takes KEY=VALUE, got {item!r}")
        details[key.strip()] = value
    return details or None


def _json_object(text: str) -> dict[str, Any]:
    where = "--details"
    if text.startswith("@"):
        where = text[1:]
        try:
            with open(where, encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"cannot read --details file {where}: {error}") from None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise UsageError(f"{where} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise UsageError(f'{where} must be a JSON object, like {{"region": "eu-west-1"}}')
    return value


def parse_link(text: str) -> Link:
    # "URL=TEXT" when the "=" comes before any query string (whose own "=" belong to the
    # URL); otherwise "URL TEXT", unambiguous because URLs never contain whitespace.
    before, sep, after = text.strip().partition("=")
    if sep and after.strip() and "?" not in before and not any(c.isspace() for c in before):
        href, label = before, after.strip()
    else:
        words = text.split(None, 1)
        href = words[0] if words else ""
        label = words[1].strip() if len(words) == 2 else ""
    parts = urlsplit(href)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--link needs an absolute http(s) URL, got {href!r}")
    return Link(href, label or None)


def _image(url: str) -> Image:
    try:
        return Image(url)
    except InvalidEventError as error:
        raise UsageError(f"--image: {error}") from None


def add_commands(commands: Any) -> None:
    """Add ``trigger``, ``acknowledge``, ``resolve`` and ``change`` to the sub-command parser."""
    trigger = commands.add_parser(
        "trigger",
        help="open an alert (or update the open one with the same dedup key)",
        description="Send a trigger event and wait for PagerDuty's answer; prints the dedup key.",
    )
    add_summary(trigger, "what is wrong")
    trigger.add_argument(
        "--severity",
        type=str.lower,
        choices=[severity.value for severity in Severity],
        default=Severity.ERROR.value,
        help="default: error",
    )
    trigger.add_argument("--component", help="the part of the source that is broken")
    trigger.add_argument("--group", help="a logical grouping of components")
    trigger.add_argument("--class", dest="class_", metavar="CLASS", help="the kind of event")
    trigger.add_argument(
        "--dedup-key",
        metavar="KEY",
        help="the alert's identity: triggers with one key update one alert "
        "(default: a new random key)",
    )
    add_payload(trigger)
    add_send_options(trigger)
    trigger.set_defaults(handler=_trigger)

    for action, handler in (("acknowledge", _acknowledge), ("resolve", _resolve)):
        command = commands.add_parser(
            action,
            help=f"{action} the open alert with a dedup key",
            description=f"{action.capitalize()} the open alert with this dedup key; "
            "prints the dedup key.",
        )
        add_dedup_key(command)
        add_send_options(command)
        command.set_defaults(handler=handler)

    change = commands.add_parser(
        "change",
        help="record a change event (a deploy, a config change); pages nobody",
        description="Send a change event and wait for PagerDuty's answer.",
    )
    add_summary(change, "what changed")
    add_payload(change)
    add_send_options(change)
    change.set_defaults(handler=_change)
