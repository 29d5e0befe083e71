"""An alert on a second integration when delivery to the main one is failing.

Alerting that breaks is silent by nature: a revoked routing key is answered with 400
and never retried, an endpoint that stays unreachable leaves events waiting. With
``delivery_alert_routing_key`` set, a :class:`DeliveryAlarm` watches the main
dispatcher's :meth:`~pd_integrations.delivery.dispatcher.Dispatcher.health` and sends one trigger
to that second key when a problem appears, and one resolve when it clears. Refusals are
seen at once (on the ``event_failed``/``event_sent`` signals); a stall is seen by a
check every ``check_every`` seconds. One dedup key per main routing key, so every
process of a fleet that sees the problem adds to the same incident.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any

from pd_integrations import signals
from pd_integrations.events import ResolveEvent, TriggerEvent

if TYPE_CHECKING:
    from pd_integrations.delivery.dispatcher import Dispatcher

_log = logging.getLogger("pd_integrations.delivery")

DEFAULT_CHECK_EVERY = 30.0


def alarm_dedup_key(routing_key: str) -> str:
    """The alarm's dedup key for a main routing key (a hash: the key itself is a secret)."""
    digest = hashlib.sha256(routing_key.encode()).hexdigest()[:16]
    return f"pd-integrations:delivery:{digest}"


class DeliveryAlarm:
    """Watches ``watched`` and alerts through ``alarm`` (another routing key's dispatcher).

    :param stall_after: seconds events may wait with nothing delivered before it alerts.
    :param check_every: seconds between two checks for a stall (refusals need none).
    :param source: the alert's ``payload.source`` (the app's name).
    """

    def __init__(
        self,
        watched: Dispatcher,
        alarm: Dispatcher,
        *,
        stall_after: float,
        check_every: float = DEFAULT_CHECK_EVERY,
        source: str,
    ) -> None:
        if watched.client.routing_key == alarm.client.routing_key:
            raise ValueError("the delivery alert needs a routing key of its own")
        self._watched = weakref.ref(watched)
        self.alarm = alarm
        self.stall_after = stall_after
        self.check_every = check_every
        self.source = source
        self.dedup_key = alarm_dedup_key(watched.client.routing_key)
        self._lock = threading.Lock()
        self._open = False
        self._stopped = threading.Event()
        signals.event_failed.connect(self._on_settled, sender=watched)
        signals.event_sent.connect(self._on_settled, sender=watched)
        self._thread = threading.Thread(
            target=self._run, name="pd_integrations-delivery-alarm", daemon=True
        )
        self._thread.start()

    @property
    def open(self) -> bool:
        """Whether the alarm's trigger was sent and not resolved yet."""
        return self._open

    def check(self) -> None:
        """Compare the watched dispatcher's health with the alarm's state; act on a change."""
        watched = self._watched()
        if watched is None or self.alarm.closed:
            return
        health = watched.health(self.stall_after)
        with self._lock:
            if (health.problem is not None) == self._open:
                return
            self._open = health.problem is not None
        if health.problem is not None:
            _log.error("PagerDuty delivery is failing: %s", health.problem)
            self.alarm.submit(
                TriggerEvent(
                    f"PagerDuty alerting is failing for {health.routing_key}: {health.problem}",
                    "critical",
                    self.source,
                    dedup_key=self.dedup_key,
                    component="pd_integrations",
                    class_="delivery",
                    custom_details={
                        "routing_key": health.routing_key,
                        "problem": health.problem,
                        "queued": health.queued,
                        "oldest_queued_seconds": health.oldest_queued_seconds,
                        "rejected": health.rejected,
                        "dropped": health.dropped,
                        "failed": health.failed,
                    },
                )
            )
        else:
            _log.warning("PagerDuty delivery for %s works again", health.routing_key)
            self.alarm.submit(ResolveEvent(self.dedup_key))

    def stop(self) -> None:
        self._stopped.set()
        watched = self._watched()
        if watched is not None:
            signals.event_failed.disconnect(self._on_settled, sender=watched)
            signals.event_sent.disconnect(self._on_settled, sender=watched)

    def _on_settled(self, sender: object, **extra: Any) -> None:
        self.check()

    def _run(self) -> None:
        while not self._stopped.wait(self.check_every):
            try:
                self.check()
            except Exception:  # never let the watcher die: it is the last line of defence
                _log.exception("checking PagerDuty delivery failed")
