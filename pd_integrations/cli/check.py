"""``pd-integrations check``: the configuration and the Events API, checked without sending."""

from __future__ import annotations

import argparse
import ssl
import threading
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

import httpx

from pd_integrations.events import (
    mask_key,
)
from pd_integrations.settings import load as load_settings
from pd_integrations.settings.report import Finding, format_findings, settings_findings
from pd_integrations.state.base import safe_url

from .common import EXIT_FAILED, EXIT_OK, UsageError, print_json, redact, tls_verify
from .events import add_target_options

DEFAULT_CHECK_TIMEOUT = 5.0


def run_check(args: argparse.Namespace) -> int:
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
            verify = tls_verify(args.ca_file)
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
        print_json(
            {
                "ok": ok,
                "routing_key": mask_key(key) if key else None,
                "base_url": safe_url(url),
                "checks": [
                    {**asdict(finding), "detail": redact(finding.detail, secrets)}
                    for finding in findings
                ],
            }
        )
    else:
        print_findings(findings, secrets)
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


def print_findings(findings: Sequence[Finding], secrets: Sequence[str]) -> None:
    for line in format_findings(findings, secrets):
        print(line)


def add_command(commands: Any) -> None:
    """Add ``check`` to the sub-command parser."""
    command = commands.add_parser(
        "check",
        help="check the routing key and that the Events API is reachable",
        description="Check the configuration without sending an event: the routing key is "
        "present and well formed, the base URL is valid, and something answers HTTP there.",
    )
    add_target_options(command, timeout=DEFAULT_CHECK_TIMEOUT)
    command.set_defaults(handler=run_check)
