"""What every ``pd-integrations`` command shares: exit codes, usage errors, argument types,
the one-line error with secrets masked."""

from __future__ import annotations

import argparse
import json
import re
import ssl
import sys
from collections.abc import Iterable
from typing import NoReturn

from pd_integrations.events import (
    ROUTING_KEY_LENGTH,
    mask_key,
)

PROG = "pd-integrations"


EXIT_OK = 0


EXIT_FAILED = 1


EXIT_USAGE = 2


EXIT_INTERRUPTED = 130


DEFAULT_TIMEOUT = 10.0


# argparse may echo any command-line word in its messages: anything shaped like an
# integration key is masked there, in case a key was passed where it did not belong.
KEY_LIKE = re.compile(rf"(?<![A-Za-z0-9])[A-Za-z0-9]{{{ROUTING_KEY_LENGTH}}}(?![A-Za-z0-9])")


class UsageError(Exception):
    """The command line or the configuration is wrong: exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are exceptions, so ``main`` reports them in one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text!r}")
    return value


def mask_match(match: re.Match[str]) -> str:
    return mask_key(match.group(0))


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, mask_key(secret))
    return text


def fail(message: str, secrets: Iterable[str], status: int) -> int:
    # One line, whatever the message contains: scripts grep stderr.
    line = " ".join(redact(message, secrets).split())
    print(f"{PROG}: error: {line}", file=sys.stderr)
    return status


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def tls_verify(ca_file: str | None) -> ssl.SSLContext | bool:
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise UsageError(f"cannot use --ca-file {ca_file}: {error}") from None
