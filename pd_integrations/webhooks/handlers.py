"""Calling webhook handlers, sync or async, from sync or async code; the ready-made ones.

Also :class:`AlertSync`, which brings what responders do in PagerDuty back into the open
alerts of this app's AlertManagers: an incident resolved there is closed here (its next
occurrence triggers at once), an acknowledged one is marked acknowledged. An incident
maps back to an alert through its ``incident_key``, which is the dedup key the alert was
triggered with.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from .events import Reference, WebhookEvent

if TYPE_CHECKING:
    from pd_integrations.alerts import AlertManager

__all__ = [
    "AlertSync",
    "BackgroundWork",
    "DefaultHandlers",
    "Handler",
    "call_async",
    "call_sync",
]

_log = logging.getLogger("pd_integrations.webhooks")

Handler = Callable[[WebhookEvent], Any]
"""A handler takes the event and returns nothing; it may be ``async``."""


class BackgroundWork:
    """Handlers to run after the response was sent; they never raise (failures are logged)."""

    def __init__(self, calls: list[tuple[Handler, WebhookEvent]]) -> None:
        self.calls = calls

    def run(self) -> None:
        """Run them in this thread (a WSGI server's, once the body went out)."""
        for handler, event in self.calls:
            try:
                call_sync(handler, event)
            except Exception:
                _failed(handler, event)

    async def arun(self) -> None:
        """Run them on the event loop; sync handlers in a worker thread."""
        for handler, event in self.calls:
            try:
                await call_async(handler, event)
            except Exception:
                _failed(handler, event)


def _failed(handler: Handler, event: WebhookEvent) -> None:
    name = getattr(handler, "__qualname__", None) or repr(handler)
    _log.exception(
        "background webhook handler %s failed on %s %s", name, event.event_type, event.id
    )


def _is_async(handler: Handler) -> bool:
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - async callable objects
    )


def call_sync(handler: Handler, event: WebhookEvent) -> None:
    """Call ``handler``; an async one runs to completion in an event loop of its own."""
    outcome = handler(event)
    if inspect.isawaitable(outcome):
        _run_awaitable(outcome)


async def call_async(handler: Handler, event: WebhookEvent) -> None:
    """Await ``handler``; a sync one runs in a worker thread, not blocking the loop."""
    if _is_async(handler):
        await handler(event)
        return
    outcome = await asyncio.to_thread(handler, event)
    if inspect.isawaitable(outcome):
        await outcome


def _run_awaitable(awaitable: Awaitable[Any]) -> None:
    async def wait() -> None:
        await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(wait())
        return
    # This thread runs a loop already, which must not be blocked: use another thread.
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(wait())
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)

    worker = threading.Thread(target=run, name="pd-webhook-handler")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


def _label(ref: Reference) -> str:
    return ref.summary or ref.id


class DefaultHandlers:
    """The seed's six incident handlers: each logs one line at INFO.

    They run for an event only when no registered handler matches its type. Override
    a method in a subclass of :class:`~pd_integrations.webhooks.receiver.WebhookReceiver` to
    change one, or register your own handler for the type to replace it.
    """

    #: The ready-made handlers: event type to method name.
    DEFAULT_HANDLERS: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "incident.triggered": "on_incident_triggered",
            "incident.acknowledged": "on_incident_acknowledged",
            "incident.resolved": "on_incident_resolved",
            "incident.reassigned": "on_incident_reassigned",
            "incident.escalated": "on_incident_escalated",
            "incident.priority_updated": "on_incident_priority_updated",
        }
    )

    def default_handler(self, event_type: str) -> Handler | None:
        method = self.DEFAULT_HANDLERS.get(event_type)
        handler: Handler | None = getattr(self, method) if method else None
        return handler

    def on_incident_triggered(self, event: WebhookEvent) -> None:
        self.log_event(event)

    def on_incident_acknowledged(self, event: WebhookEvent) -> None:
        self.log_event(event)

    def on_incident_resolved(self, event: WebhookEvent) -> None:
        self.log_event(event)

    def on_incident_reassigned(self, event: WebhookEvent) -> None:
        self.log_event(event, self._assignees(event))

    def on_incident_escalated(self, event: WebhookEvent) -> None:
        self.log_event(event, self._assignees(event))

    def on_incident_priority_updated(self, event: WebhookEvent) -> None:
        priority = event.incident.priority if event.incident else None
        self.log_event(event, "priority " + (_label(priority) if priority else "none"))

    @staticmethod
    def _assignees(event: WebhookEvent) -> str:
        assignees = event.incident.assignees if event.incident else ()
        return "to " + (", ".join(_label(a) for a in assignees) or "nobody")

    def log_event(self, event: WebhookEvent, detail: str = "") -> None:
        """One line, such as ``incident.triggered #2 "Disk full" [high] on API by Ann <url>``."""
        incident = event.incident
        parts = [event.event_type]
        if incident is not None:
            if incident.number is not None:
                parts.append(f"#{incident.number}")
            parts.append(json.dumps(incident.title or incident.id, ensure_ascii=False))
            if incident.urgency:
                parts.append(f"[{incident.urgency}]")
            if incident.service is not None:
                parts.append(f"on {_label(incident.service)}")
        if detail:
            parts.append(detail)
        if event.agent is not None:
            parts.append(f"by {_label(event.agent)}")
        if incident is not None and incident.html_url:
            parts.append(incident.html_url)
        _log.info("PagerDuty %s", " ".join(parts))


class AlertSync:
    """Applies ``incident.resolved`` and ``incident.acknowledged`` to open alerts.

    :param alerts: the managers whose alerts the webhooks are about; ``None`` means every
        :class:`~pd_integrations.AlertManager` of this process not yet closed, looked up
        per event (so managers created after the receiver count too); an empty
        collection turns this off.

    Only alerts a manager has open with the incident's ``incident_key`` as dedup key
    are touched, and nothing is sent to PagerDuty: it already knows. Never raises.
    """

    RESOLVED: ClassVar[str] = "incident.resolved"
    ACKNOWLEDGED: ClassVar[str] = "incident.acknowledged"

    def __init__(self, alerts: AlertManager | Iterable[AlertManager] | None = None) -> None:
        if alerts is None:
            self._alerts: tuple[AlertManager, ...] | None = None
        else:
            from pd_integrations.alerts import (
                AlertManager,  # late: the alerts module imports the client
            )

            self._alerts = (alerts,) if isinstance(alerts, AlertManager) else tuple(alerts)

    @property
    def enabled(self) -> bool:
        return self._alerts is None or bool(self._alerts)

    def managers(self) -> tuple[AlertManager, ...]:
        if self._alerts is not None:
            return self._alerts
        from pd_integrations.alerts import live_managers

        return tuple(live_managers())

    def wanted(self, events: Iterable[WebhookEvent]) -> list[tuple[str, str]]:
        """``(event type, dedup key)`` of the events this applies to, in order."""
        if not self.enabled:
            return []
        found: list[tuple[str, str]] = []
        for event in events:
            incident = event.incident
            if (
                event.event_type in (self.RESOLVED, self.ACKNOWLEDGED)
                and incident is not None
                and incident.incident_key
            ):
                found.append((event.event_type, incident.incident_key))
        return found

    def apply(self, actions: Iterable[tuple[str, str]]) -> None:
        """Mark each alert resolved or acknowledged in every manager that has it open."""
        managers = self.managers()
        for event_type, dedup_key in actions:
            for manager in managers:
                try:
                    if event_type == self.RESOLVED:
                        changed = manager.mark_resolved(dedup_key)
                    else:
                        changed = manager.mark_acknowledged(dedup_key)
                except Exception:  # a broken state must not fail the delivery
                    _log.exception("could not apply %s to alert %r", event_type, dedup_key)
                    continue
                if changed:
                    _log.info("PagerDuty %s: alert %r updated here", event_type, dedup_key)
