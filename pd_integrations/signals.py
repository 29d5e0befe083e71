"""Blinker signals for what happens to the library's own events.

Connect to them to log or count deliveries::

    from pd_integrations import signals

    @signals.event_dropped.connect
    def count_drop(sender, event, reason, **extra): ...

Every signal is sent with the emitting object as sender and the event as ``event``.
Receivers run on the dispatcher's worker thread (``event_sent``, ``event_failed``,
``event_retried``) or in the caller's thread (the others): keep them quick, and note
that an exception in a receiver is logged and otherwise ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal, Namespace

_namespace = Namespace()

#: PagerDuty accepted the event (202). Extra: ``response`` (EventResponse).
event_sent: NamedSignal = _namespace.signal("pagerduty.event-sent")
#: The event will not be delivered: PagerDuty refused it (400) or retries gave up.
#: Extra: ``error`` (PagerDutyError).
event_failed: NamedSignal = _namespace.signal("pagerduty.event-failed")
#: The event was discarded before delivery. Extra: ``reason`` ("queue-full", "closed",
#: "disabled", "shutdown").
event_dropped: NamedSignal = _namespace.signal("pagerduty.event-dropped")
#: An alert that is already open was raised again and not re-sent.
#: Extra: ``dedup_key``, ``occurrences``.
event_suppressed: NamedSignal = _namespace.signal("pagerduty.event-suppressed")
#: A trigger was dropped by policy before it was queued: an ``ignore`` routing rule, or
#: ``before_send`` returned ``None``. Extra: ``dedup_key``, ``reason`` ("rule" or
#: "before_send").
event_suppressed_by_policy: NamedSignal = _namespace.signal("pagerduty.event-suppressed-by-policy")
#: A pending trigger was merged into one with the same dedup key still in the queue.
#: Extra: ``occurrences``.
event_coalesced: NamedSignal = _namespace.signal("pagerduty.event-coalesced")
#: A delivery attempt failed and will be retried. Extra: ``error``.
event_retried: NamedSignal = _namespace.signal("pagerduty.event-retried")
#: Sent by a WebhookReceiver once for every event of an accepted delivery, after its
#: foreground handlers succeeded. Extra: ``event`` (WebhookEvent), ``webhook_id``.
webhook_received: NamedSignal = _namespace.signal("pagerduty.webhook-received")

_log = logging.getLogger("pd_integrations.signals")


def emit(signal: NamedSignal, sender: object, **kwargs: Any) -> None:
    """Send ``signal`` without letting a faulty receiver break delivery."""
    if not signal.receivers:
        return
    # Each receiver on its own: one that raises must not keep the others from hearing.
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **kwargs)
        except Exception:
            _log.exception("a receiver of %s raised", signal.name)
