"""``before_send`` hooks the policy tests name by dotted path (settings, environment)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pd_integrations.events import TriggerEvent

PAYMENTS_KEY = "paymentsteamroutingkey0000000001"
SEARCH_KEY = "searchteamroutingkey000000000001"


def tag_team(event: TriggerEvent, hint: Any) -> TriggerEvent:
    """Adds ``team`` and the hint's ``kind`` to the details."""
    event.custom_details["team"] = "web"
    event.custom_details["kind"] = hint["kind"]
    return event


def drop_everything(event: TriggerEvent, hint: Any) -> None:
    return None


def broken(event: TriggerEvent, hint: Any) -> TriggerEvent:
    """Changes the details, then fails: the original must be sent, unchanged."""
    event.custom_details["half_done"] = True
    raise RuntimeError("bug in the hook")


def returns_text(event: TriggerEvent, hint: Any) -> str:
    return "not an event"


def shout(event: TriggerEvent, hint: Any) -> TriggerEvent:
    return replace(event, summary=event.summary.upper())
