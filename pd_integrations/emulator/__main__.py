"""``python -m pd_integrations.emulator``: run the emulator until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .faults import MAX_LATENCY
from .throttle import DEFAULT_LIMIT

DEFAULT_PORT = 8765
WEBHOOK_SECRET_VAR = "PAGERDUTY_WEBHOOK_SECRET"  # noqa: S105 - a variable name


def _rate_limit(text: str) -> int | None:
    if text.strip().lower() in ("0", "off", "none"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a positive integer, 0 or 'off'") from None
    if value < 0:
        raise argparse.ArgumentTypeError("expected a positive integer, 0 or 'off'")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("expected a number between 0 and 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of seconds") from None
    if not 0.0 <= value <= MAX_LATENCY:
        raise argparse.ArgumentTypeError(f"expected 0 to {MAX_LATENCY:g} seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pd_integrations.emulator",
        description="A local PagerDuty Events API v2 with a console page and fault injection.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port, 0 for any (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a further host name requests may use (such as a container's service name); "
        "repeat for several (default: only loopback names and --host)",
    )
    parser.add_argument("--tls", action="store_true", help="serve HTTPS (throwaway CA)")
    parser.add_argument("--ca-file", help="with --tls: write the CA certificate (PEM) here")
    parser.add_argument(
        "--rate-limit",
        type=_rate_limit,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"events per routing key per minute; 0 or 'off' disables (default {DEFAULT_LIMIT})",
    )
    faults = parser.add_argument_group("fault injection (Events API endpoints only)")
    faults.add_argument("--error-rate", type=_share, default=0.0, help="share answered 5xx")
    faults.add_argument(
        "--rate-limit-429-rate", type=_share, default=0.0, help="share answered 429"
    )
    faults.add_argument("--latency", type=_seconds, default=0.0, help="seconds before each answer")
    faults.add_argument("--drop-rate", type=_share, default=0.0, help="share of connections closed")
    faults.add_argument("--outage", action="store_true", help="answer every request 503")
    faults.add_argument("--outage-seconds", type=float, help="end the outage after this long")
    faults.add_argument(
        "--outage-mode",
        choices=("error", "drop"),
        default="error",
        help="during an outage: answer 503 (error) or close the connection (drop)",
    )
    faults.add_argument("--seed", type=int, help="seed for reproducible fault decisions")
    rest = parser.add_argument_group("REST API and webhooks")
    rest.add_argument(
        "--api-token",
        metavar="TOKEN",
        help="the only REST API key accepted (default: any non-empty key)",
    )
    rest.add_argument(
        "--webhook-url",
        metavar="URL",
        help="send signed v3 webhooks there when an incident changes",
    )
    rest.add_argument(
        "--webhook-secret",
        action="append",
        metavar="SECRET",
        help=f"the webhook signing secret; repeat to sign with several "
        f"(default: ${WEBHOOK_SECRET_VAR})",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def webhook_secrets(given: list[str] | None) -> list[str]:
    """``--webhook-secret`` values, else the comma-separated environment variable."""
    if given:
        return given
    value = os.environ.get(WEBHOOK_SECRET_VAR, "")
    return [part.strip() for part in value.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.ca_file and not args.tls:
        build_parser().error("--ca-file needs --tls")
    secrets = webhook_secrets(args.webhook_secret)
    if args.webhook_url and not secrets:
        build_parser().error(f"--webhook-url needs --webhook-secret (or ${WEBHOOK_SECRET_VAR})")
    from .server import Emulator  # loaded only to serve, not to read the flags

    try:
        emulator = Emulator(
            args.host,
            args.port,
            tls=args.tls,
            ca_file=args.ca_file,
            rate_limit_per_minute=args.rate_limit,
            error_rate=args.error_rate,
            rate_limit_429_rate=args.rate_limit_429_rate,
            latency=args.latency,
            drop_rate=args.drop_rate,
            outage=args.outage,
            outage_seconds=args.outage_seconds,
            outage_mode=args.outage_mode,
            seed=args.seed,
            verbose=args.verbose,
            api_token=args.api_token,
            webhook_url=args.webhook_url,
            webhook_secret=secrets or None,
            allowed_hosts=args.allowed_host,
        )
        emulator.start()
    except (OSError, ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with emulator:
        print(f"PagerDuty emulator listening on {emulator.url}", flush=True)
        print(f"  Events API: {emulator.events_url}", flush=True)
        print(f"  REST API:   {emulator.rest_url}", flush=True)
        print(f"  Console:    {emulator.console_url}", flush=True)
        if emulator.webhook_url is not None:
            print(f"  Webhooks:   {emulator.webhook_url}", flush=True)
        if emulator.ca_file is not None:
            print(f"  CA file:    {emulator.ca_file}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
