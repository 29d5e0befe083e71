"""List open incidents and who is on call, with the PagerDuty REST API v2 client.

    PAGERDUTY_API_KEY=... python examples/rest_client.py
    PAGERDUTY_API_KEY=... python examples/rest_client.py --schedule PSCHED1 --limit 50

``PAGERDUTY_REST_BASE_URL`` points it somewhere other than https://api.pagerduty.com
(a proxy, a test server). Nothing is written, so no ``From`` address is needed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pd_integrations.errors import ConfigurationError, RestError
from pd_integrations.rest import RestClient


def _name(reference: Any) -> str:
    """The readable name of a PagerDuty reference such as ``{"id": ..., "summary": ...}``."""
    if not isinstance(reference, dict):
        return "-"
    return str(reference.get("summary") or reference.get("name") or reference.get("id") or "-")


def show_open_incidents(client: RestClient, limit: int) -> None:
    print("Open incidents")
    count = 0
    for incident in client.list_incidents(statuses=["triggered", "acknowledged"], limit=limit):
        count += 1
        print(
            f"  #{incident.get('incident_number', '?')} [{incident.get('status')}, "
            f"{incident.get('urgency')}] {incident.get('title')} "
            f"({_name(incident.get('service'))})"
        )
    if count == 0:
        print("  none")


def show_on_call(client: RestClient, schedule_ids: list[str]) -> None:
    print("On call now")
    if schedule_ids:
        for schedule_id in schedule_ids:
            users = client.current_on_call(schedule_id)
            names = ", ".join(_name(user) for user in users) or "nobody"
            print(f"  schedule {schedule_id}: {names}")
        return
    count = 0
    for oncall in client.list_oncalls(earliest=True):
        count += 1
        print(
            f"  {_name(oncall.get('user'))}: {_name(oncall.get('escalation_policy'))}, "
            f"level {oncall.get('escalation_level')}, schedule {_name(oncall.get('schedule'))}"
        )
    if count == 0:
        print("  nobody")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--schedule", action="append", default=[], help="a schedule id")
    parser.add_argument("--limit", type=int, default=25, help="most incidents to list")
    args = parser.parse_args(argv)
    try:
        with RestClient() as client:
            show_open_incidents(client, args.limit)
            show_on_call(client, args.schedule)
    except (ConfigurationError, RestError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
