"""``pd-integrations deploy``: record a deploy as a PagerDuty change event.

Built on the ``change`` command's helpers (connection options, links, retries, output),
so its flags and exit statuses are the same. The release is ``--release``, else the
``release`` setting's sources (``PAGERDUTY_RELEASE``, then the CI and hosting variables
of :data:`~pd_integrations.context.release.RELEASE_ENV_VARS`).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from pd_integrations.cli.common import UsageError
from pd_integrations.cli.events import add_send_options, parse_link, send
from pd_integrations.events import ChangeEvent, Event

from .release import MAX_RELEASE, detect_release

RELEASE_VAR = "PAGERDUTY_RELEASE"


def add_command(commands: Any) -> None:
    """Add ``deploy`` to the ``pd-integrations`` sub-commands."""
    deploy = commands.add_parser(
        "deploy",
        help="record a deploy of a release as a change event; pages nobody",
        description="Send a change event saying that a release was deployed, with links "
        "(the commit, the pipeline run) and wait for PagerDuty's answer.",
    )
    deploy.add_argument(
        "--release",
        metavar="V",
        help=f"the release deployed (default: ${RELEASE_VAR}, then the CI or hosting "
        "platform's commit variable)",
    )
    deploy.add_argument(
        "--summary", metavar="TEXT", help="the change event's summary (default: 'Deployed V')"
    )
    deploy.add_argument(
        "--source", help="where it was deployed (default: $APP_NAME, then this host's name)"
    )
    deploy.add_argument(
        "--link",
        action="append",
        default=[],
        metavar="URL[=TEXT]",
        help="a link (the commit, the pipeline run, the changelog); repeatable",
    )
    add_send_options(deploy)
    deploy.set_defaults(handler=_deploy)


def release_of(args: argparse.Namespace) -> str:
    given = (args.release or "").strip()
    if given:
        return given[:MAX_RELEASE]
    configured = os.environ.get(RELEASE_VAR, "").strip()
    if configured:
        return configured[:MAX_RELEASE]
    detected = detect_release(os.environ)
    if detected is None:
        raise UsageError(
            f"deploy needs a release: --release V, or set {RELEASE_VAR} "
            "(see the context page of the docs for the variables read)"
        )
    return detected[0]


def _deploy(args: argparse.Namespace) -> int:
    release = release_of(args)
    summary = (args.summary or "").strip() or f"Deployed {release}"
    links = [parse_link(text) for text in args.link]

    def build(client: Any) -> Event:
        return ChangeEvent(
            summary,
            source=args.source or client.source,
            custom_details={"release": release},
            links=links,
        )

    return send(args, build)
