"""One event waiting for delivery, as both queues hand it to the dispatcher's sender."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pd_integrations.client import PreparedEvent
from pd_integrations.delivery.spool import SpooledEvent
from pd_integrations.events import Event


@dataclass(slots=True)
class Pending:
    """An encoded event, how often it happened, and (with a spool) its claimed row."""

    prepared: PreparedEvent
    enqueued_at: float  # time.monotonic(), or time.time() for a spooled row
    occurrences: int = 1
    spooled: SpooledEvent | None = None

    @property
    def event(self) -> Event:
        return self.prepared.event

    def age(self) -> float:
        now = time.time() if self.spooled is not None else time.monotonic()
        return now - self.enqueued_at
