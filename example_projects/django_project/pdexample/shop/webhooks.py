"""PagerDuty's webhooks for the shop: who is working on which incident, and a status page.

Registered on the receiver served at ``/pagerduty/webhooks`` (see ``pdexample/urls.py``);
the secret comes from ``PAGERDUTY_WEBHOOK_SECRET``. Imported by ``ShopConfig.ready``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from pd_integrations.django.webhooks import receiver
from pd_integrations.webhooks import WebhookEvent

log = logging.getLogger("pdexample.shop.webhooks")


@dataclass(frozen=True)
class IncidentState:
    title: str
    status: str
    assignees: tuple[str, ...]
    last_event: str


INCIDENTS: dict[str, IncidentState] = {}
STATUS_PAGE: list[str] = []
_lock = threading.Lock()


@receiver.on("incident.*")
def track(event: WebhookEvent) -> None:
    incident = event.incident
    if incident is None:  # notes, responders...: no incident state in them
        return
    state = IncidentState(
        title=incident.title or incident.id,
        status=incident.status or "unknown",
        assignees=tuple(a.summary or a.id for a in incident.assignees),
        last_event=event.event_type,
    )
    with _lock:
        INCIDENTS[incident.id] = state
    log.info("incident %s is %s after %s", incident.id, state.status, event.event_type)


@receiver.on("incident.triggered", "incident.resolved", background=True)
def update_status_page(event: WebhookEvent) -> None:
    # A call to a status page provider would go here: slow, so after the response.
    title = event.incident.title if event.incident else event.id
    verb = "Investigating" if event.event_type == "incident.triggered" else "Resolved"
    with _lock:
        STATUS_PAGE.append(f"{verb}: {title}")


def reset() -> None:
    with _lock:
        INCIDENTS.clear()
        STATUS_PAGE.clear()
