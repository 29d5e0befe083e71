"""The ``pd-integrations`` command: send events, check the setup, run the emulator or the demo.

Exit status: 0 on success, 1 when PagerDuty refuses an event, delivery fails or a check
finds a problem, 2 on usage or configuration errors. Every failure is one line on
stderr, ``pd-integrations: error: ...``, with routing keys masked.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import ssl
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from importlib import metadata
from typing import Any, NoReturn, cast
from urllib.parse import urlsplit

import httpx

from . import config, demo
from .client import DEFAULT_BASE_URL, EventResponse, EventsClient, RetryPolicy
from .errors import ConfigurationError, InvalidEventError, PagerDutyError
from .events import (
    ROUTING_KEY_LENGTH,
    AcknowledgeEvent,
    ChangeEvent,
    Event,
    Image,
    Link,
    ResolveEvent,
    Severity,
    TriggerEvent,
    check_routing_key,
    mask_key,
)
from .settings import load as load_settings
from .settings.report import Finding, format_findings, settings_findings
from .state import safe_url

PROG = "pd-integrations"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_TIMEOUT = 10.0
DEFAULT_CHECK_TIMEOUT = 5.0
DEFAULT_RETRIES = RetryPolicy().max_attempts - 1

# argparse may echo any command-line word in its messages: anything shaped like an
# integration key is masked there, in case a key was passed where it did not belong.
_KEY_LIKE = re.compile(rf"(?<![A-Za-z0-9])[A-Za-z0-9]{{{ROUTING_KEY_LENGTH}}}(?![A-Za-z0-9])")


class UsageError(Exception):
    """The command line or the configuration is wrong: exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are exceptions, so ``main`` reports them in one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


# -- argument types ---------------------------------------------------------------------


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text!r}")
    return value


# -- the parser ---------------------------------------------------------------------------


def _add_summary(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("summary", nargs="?", help=f"{what} (or --summary TEXT)")
    parser.add_argument("--summary", dest="summary_option", metavar="TEXT", help=argparse.SUPPRESS)
    parser.add_argument(
        "--source", help="where it happened (default: $APP_NAME, then this host's name)"
    )


def _add_payload(parser: argparse.ArgumentParser) -> None:
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


def _add_dedup_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dedup_key", nargs="?", help="the alert's dedup key (or --dedup-key KEY)")
    parser.add_argument(
        "--dedup-key", dest="dedup_key_option", metavar="KEY", help=argparse.SUPPRESS
    )


def _add_target(parser: argparse.ArgumentParser, *, timeout: float) -> None:
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
        type=_positive_float,
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


def _add_send(parser: argparse.ArgumentParser) -> None:
    _add_target(parser, timeout=DEFAULT_TIMEOUT)
    group = parser.add_argument_group("delivery")
    group.add_argument(
        "--retries",
        type=_non_negative_int,
        default=DEFAULT_RETRIES,
        metavar="N",
        help="retry 429s, 5xx answers and network errors up to N times "
        f"(default {DEFAULT_RETRIES})",
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", help="log each attempt and retry to stderr"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="PagerDuty alerting from the command line: send Events API v2 events, "
        "check the configuration, run the local emulator or a demo.",
        epilog="Environment: PAGERDUTY_ROUTING_KEY (or PAGERDUTY_INTEGRATION_KEY), "
        "PAGERDUTY_EVENTS_BASE_URL, APP_NAME. Exit status: 0 success, 1 refused or "
        "failed, 2 usage or configuration error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    trigger = commands.add_parser(
        "trigger",
        help="open an alert (or update the open one with the same dedup key)",
        description="Send a trigger event and wait for PagerDuty's answer; prints the dedup key.",
    )
    _add_summary(trigger, "what is wrong")
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
    _add_payload(trigger)
    _add_send(trigger)
    trigger.set_defaults(handler=_trigger)

    for action, handler in (("acknowledge", _acknowledge), ("resolve", _resolve)):
        command = commands.add_parser(
            action,
            help=f"{action} the open alert with a dedup key",
            description=f"{action.capitalize()} the open alert with this dedup key; "
            "prints the dedup key.",
        )
        _add_dedup_key(command)
        _add_send(command)
        command.set_defaults(handler=handler)

    change = commands.add_parser(
        "change",
        help="record a change event (a deploy, a config change); pages nobody",
        description="Send a change event and wait for PagerDuty's answer.",
    )
    _add_summary(change, "what changed")
    _add_payload(change)
    _add_send(change)
    change.set_defaults(handler=_change)

    check = commands.add_parser(
        "check",
        help="check the routing key and that the Events API is reachable",
        description="Check the configuration without sending an event: the routing key is "
        "present and well formed, the base URL is valid, and something answers HTTP there.",
    )
    _add_target(check, timeout=DEFAULT_CHECK_TIMEOUT)
    check.set_defaults(handler=_check)

    commands.add_parser(
        "emulator",
        parents=[_emulator_parser()],
        add_help=False,
        help="run the local PagerDuty emulator and its console until Ctrl-C",
        description="A local PagerDuty Events API v2 with a console page and fault injection.",
    )

    demo_command = commands.add_parser(
        "demo",
        help="show the library at work against a local emulator",
        description=demo.DESCRIPTION,
    )
    demo.add_arguments(demo_command)
    demo_command.set_defaults(handler=_demo)

    from .context import deploy  # imported here: it builds on this module's helpers

    deploy.add_command(commands)

    from . import cli_rest  # imported here: it builds on this module's helpers

    cli_rest.add_commands(commands)

    from .heartbeats import cli as heartbeats_cli  # its commands import what they need

    heartbeats_cli.add_commands(commands)
    from .insights import command as insights_command  # the report loads when it runs

    insights_command.add_commands(commands)
    return parser


def _emulator_parser() -> _Parser:
    # The emulator's own flags, defined once in its entry point. As a parent parser only
    # its arguments are copied, so its plain ArgumentParser class does not matter.
    from .emulator.__main__ import build_parser as build_emulator_parser

    return cast(_Parser, build_emulator_parser())


def _version() -> str:
    try:
        return metadata.version("pd-integrations")
    except metadata.PackageNotFoundError:
        return "unknown"


# -- main ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    secrets = _secrets(args_list)
    try:
        args = build_parser().parse_args(args_list)
        if args.command == "emulator":
            return _emulator(args, args_list)
        handler: Callable[[argparse.Namespace], int] = args.handler
        with _library_logging(verbose=getattr(args, "verbose", False)):
            return handler(args)
    except SystemExit as exit_:  # --help and --version
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    except UsageError as error:
        return _fail(_KEY_LIKE.sub(_mask_match, str(error)), secrets, EXIT_USAGE)
    except ConfigurationError as error:
        return _fail(str(error), secrets, EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted", secrets, EXIT_INTERRUPTED)
    except Exception as error:
        # A bug or an environment problem: still one line, the traceback only on request.
        if "-v" in args_list or "--verbose" in args_list:
            traceback.print_exc()
        return _fail(f"unexpected {type(error).__name__}: {error}", secrets, EXIT_FAILED)


@contextmanager
def _library_logging(*, verbose: bool) -> Iterator[None]:
    """The library's log lines on stderr with --verbose, and nowhere otherwise.

    Without a handler of its own, Python would print the library's warnings (a retry
    given up, say) next to the one-line error this command prints anyway.
    """
    logger = logging.getLogger("pd_integrations")
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    else:
        handler = logging.NullHandler()
    previous_level = logger.level
    logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def _secrets(argv: Sequence[str]) -> list[str]:
    """The routing keys, API keys and webhook secrets this run may know, so error
    messages can mask them."""
    from .cli_rest import secrets_in

    found = [key for key in (config.routing_key(), config.env_value(config.API_KEY_VAR)) if key]
    found += secrets_in(argv)
    for index, word in enumerate(argv):
        if word == "--routing-key" and index + 1 < len(argv):
            found.append(argv[index + 1])
        elif word.startswith("--routing-key="):
            found.append(word.partition("=")[2])
    return [key for key in found if key]


def _mask_match(match: re.Match[str]) -> str:
    return mask_key(match.group(0))


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, mask_key(secret))
    return text


def _fail(message: str, secrets: Iterable[str], status: int) -> int:
    # One line, whatever the message contains: scripts grep stderr.
    line = " ".join(_redact(message, secrets).split())
    print(f"{PROG}: error: {line}", file=sys.stderr)
    return status


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# -- sending events ------------------------------------------------------------------------


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
            links=[_link(text) for text in args.link],
            images=[_image(url) for url in args.image],
            timestamp=args.timestamp,
        )

    return _send(args, build)


def _acknowledge(args: argparse.Namespace) -> int:
    return _send(args, lambda client: AcknowledgeEvent(_dedup_key(args)))


def _resolve(args: argparse.Namespace) -> int:
    return _send(args, lambda client: ResolveEvent(_dedup_key(args)))


def _change(args: argparse.Namespace) -> int:
    def build(client: EventsClient) -> Event:
        return ChangeEvent(
            _summary(args),
            source=args.source or client.source,
            custom_details=_details(args),
            links=[_link(text) for text in args.link],
            images=[_image(url) for url in args.image],
            timestamp=args.timestamp,
        )

    return _send(args, build)


def _send(args: argparse.Namespace, build: Callable[[EventsClient], Event]) -> int:
    """Build the event, send it with retries, print the answer; the exit status."""
    routing_key = _routing_key(args.routing_key)
    client = EventsClient(
        routing_key,
        base_url=args.base_url,
        timeout=args.timeout,
        retry=RetryPolicy(max_attempts=args.retries + 1),
        verify=_verify(args.ca_file),
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
        body: dict[str, Any] = {"status": "error", "message": _redact(str(error), secrets)}
        if isinstance(error, InvalidEventError):
            body["errors"] = [_redact(text, secrets) for text in error.errors]
        code = getattr(error, "status_code", None)
        if code is not None:
            body["status_code"] = code
        _print_json(body)
    return _fail(str(error), secrets, EXIT_FAILED)


def _print_response(args: argparse.Namespace, event: Event, response: EventResponse) -> None:
    if args.json:
        _print_json(asdict(response))
    elif isinstance(event, ChangeEvent):
        print(response.message)
    else:
        print(response.dedup_key or event.dedup_key)


def _routing_key(explicit: str | None) -> str:
    key = config.routing_key(explicit)
    if not key:
        raise UsageError(
            "no PagerDuty routing key: pass --routing-key or set PAGERDUTY_ROUTING_KEY"
        )
    return check_routing_key(key)


def _verify(ca_file: str | None) -> ssl.SSLContext | bool:
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise UsageError(f"cannot use --ca-file {ca_file}: {error}") from None


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


def _link(text: str) -> Link:
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


# -- check ---------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    flags = {"routing_key": "--routing-key", "events_base_url": "--base-url"}
    settings = load_settings(
        {"routing_key": args.routing_key, "events_base_url": args.base_url},
        origin=lambda setting: flags[setting.name],
        ref=lambda setting: setting.name.replace("_", " "),
    )
    findings = settings_findings(
        settings, missing_key="pass --routing-key or set PAGERDUTY_ROUTING_KEY"
    )
    key, url = settings.routing_key, settings.events_base_url
    url_finding = findings[1]
    verify: ssl.SSLContext | bool = True
    if args.ca_file is not None:
        try:
            verify = _verify(args.ca_file)
            findings.append(Finding("CA file", True, args.ca_file))
        except UsageError as error:
            findings.append(Finding("CA file", False, str(error)))
            verify = False
    if not url_finding.ok:
        findings.append(Finding("reachable", None, "skipped: no valid base URL"))
    elif verify is False:
        findings.append(Finding("reachable", None, "skipped: the CA file is unusable"))
    else:
        findings.append(probe(url.rstrip("/"), args.timeout, verify))
    ok = all(finding.ok for finding in findings)
    secrets = [key] if key else []
    if args.json:
        _print_json(
            {
                "ok": ok,
                "routing_key": mask_key(key) if key else None,
                "base_url": safe_url(url),
                "checks": [
                    {**asdict(finding), "detail": _redact(finding.detail, secrets)}
                    for finding in findings
                ],
            }
        )
    else:
        _print_findings(findings, secrets)
        problems = sum(1 for finding in findings if not finding.ok)
        print("All checks passed." if ok else f"{problems} problem(s) found.")
    return EXIT_OK if ok else EXIT_FAILED


def probe(url: str, timeout: float, verify: ssl.SSLContext | bool = True) -> Finding:
    """Is anything answering HTTP at ``url``? Gives up after about ``timeout`` seconds.

    Any HTTP answer counts: the point is that the network path (DNS, TCP, TLS) works.
    The request runs in a daemon thread because name resolution ignores socket timeouts,
    and a sandbox without DNS must not make ``check`` hang.
    """
    result: list[Finding] = []

    def attempt() -> None:
        try:
            with httpx.Client(timeout=timeout, verify=verify) as http:
                response = http.get(url + "/")
        except httpx.TimeoutException:
            result.append(Finding("reachable", False, f"no answer from {url} within {timeout:g} s"))
        except httpx.HTTPError as error:
            result.append(Finding("reachable", False, _connection_problem(url, error)))
        else:
            result.append(Finding("reachable", True, f"{url} answered HTTP {response.status_code}"))

    thread = threading.Thread(target=attempt, name="pd-integrations-check", daemon=True)
    thread.start()
    # Connect, TLS handshake and read each get the timeout; allow a little for all.
    thread.join(timeout * 2 + 0.5)
    if not result:
        return Finding("reachable", False, f"no answer from {url} within {timeout:g} s")
    return result[0]


def _connection_problem(url: str, error: httpx.HTTPError) -> str:
    detail = str(error) or type(error).__name__
    hint = ""
    if "CERTIFICATE_VERIFY_FAILED" in detail:
        hint = " (for a private CA such as the emulator's, pass --ca-file)"
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"cannot reach {parts.hostname}:{port}: {detail}{hint}"


def _print_findings(findings: Sequence[Finding], secrets: Sequence[str]) -> None:
    for line in format_findings(findings, secrets):
        print(line)


# -- emulator and demo -------------------------------------------------------------------


def _emulator(args: argparse.Namespace, argv: list[str]) -> int:
    if args.ca_file and not args.tls:
        raise UsageError("--ca-file needs --tls")
    from .emulator.__main__ import main as emulator_main
    from .emulator.__main__ import webhook_secrets

    if args.webhook_url and not webhook_secrets(args.webhook_secret):
        raise UsageError("--webhook-url needs --webhook-secret (or $PAGERDUTY_WEBHOOK_SECRET)")

    # The emulator's entry point parses the same flags and owns the foreground loop; the
    # top-level parser has no option taking a value, so the first "emulator" word is
    # the command itself.
    return emulator_main(argv[argv.index("emulator") + 1 :])


def _demo(args: argparse.Namespace) -> int:
    return demo.run(args)
