"""The ``pd-integrations`` command: send events, check the setup, run the emulator or the demo.

Exit status: 0 on success, 1 when PagerDuty refuses an event, delivery fails or a check
finds a problem, 2 on usage or configuration errors. Every failure is one line on
stderr, ``pd-integrations: error: ...``, with routing keys masked.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from typing import cast

from pd_integrations import environment
from pd_integrations.context import deploy
from pd_integrations.emulator import demo
from pd_integrations.errors import ConfigurationError

from . import check, events
from . import rest as cli_rest
from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    KEY_LIKE,
    PROG,
    Parser,
    UsageError,
    fail,
    mask_match,
)
from .rest import secrets_in


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="PagerDuty alerting from the command line: send Events API v2 events, "
        "check the configuration, run the local emulator or a demo.",
        epilog="Environment: PAGERDUTY_ROUTING_KEY (or PAGERDUTY_INTEGRATION_KEY), "
        "PAGERDUTY_EVENTS_BASE_URL, APP_NAME. Exit status: 0 success, 1 refused or "
        "failed, 2 usage or configuration error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    events.add_commands(commands)
    check.add_command(commands)

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

    deploy.add_command(commands)

    cli_rest.add_commands(commands)

    from pd_integrations.heartbeats import (
        cli as heartbeats_cli,  # its commands import what they need
    )

    heartbeats_cli.add_commands(commands)
    from pd_integrations.insights import (
        command as insights_command,  # the report loads when it runs
    )

    insights_command.add_commands(commands)
    return parser


def _emulator_parser() -> Parser:
    # The emulator's own flags, defined once in its entry point. As a parent parser only
    # its arguments are copied, so its plain ArgumentParser class does not matter.
    from pd_integrations.emulator.__main__ import build_parser as build_emulator_parser

    return cast(Parser, build_emulator_parser())


def _version() -> str:
    try:
        return metadata.version("pd-integrations")
    except metadata.PackageNotFoundError:
        return "unknown"


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
        return fail(KEY_LIKE.sub(mask_match, str(error)), secrets, EXIT_USAGE)
    except ConfigurationError as error:
        return fail(str(error), secrets, EXIT_USAGE)
    except KeyboardInterrupt:
        return fail("interrupted", secrets, EXIT_INTERRUPTED)
    except Exception as error:
        # A bug or an environment problem: still one line, the traceback only on request.
        if "-v" in args_list or "--verbose" in args_list:
            traceback.print_exc()
        return fail(f"unexpected {type(error).__name__}: {error}", secrets, EXIT_FAILED)


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
    found = [
        key
        for key in (environment.routing_key(), environment.env_value(environment.API_KEY_VAR))
        if key
    ]
    found += secrets_in(argv)
    for index, word in enumerate(argv):
        if word == "--routing-key" and index + 1 < len(argv):
            found.append(argv[index + 1])
        elif word.startswith("--routing-key="):
            found.append(word.partition("=")[2])
    return [key for key in found if key]


def _emulator(args: argparse.Namespace, argv: list[str]) -> int:
    if args.ca_file and not args.tls:
        raise UsageError("--ca-file needs --tls")
    from pd_integrations.emulator.__main__ import main as emulator_main
    from pd_integrations.emulator.__main__ import webhook_secrets

    if args.webhook_url and not webhook_secrets(args.webhook_secret):
        raise UsageError("--webhook-url needs --webhook-secret (or $PAGERDUTY_WEBHOOK_SECRET)")

    # The emulator's entry point parses the same flags and owns the foreground loop; the
    # top-level parser has no option taking a value, so the first "emulator" word is
    # the command itself.
    return emulator_main(argv[argv.index("emulator") + 1 :])


def _demo(args: argparse.Namespace) -> int:
    return demo.run(args)
