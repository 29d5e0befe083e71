"""The in-memory queue: the dispatcher's schedule is the queue, one thread sends from it.

Nothing survives the process: what is left at close is dropped and reported.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from pd_integrations import signals

from .pending import Pending
from .schedule import Slot

if TYPE_CHECKING:
    from pd_integrations.delivery.host import Host

_log = logging.getLogger("pd_integrations.dispatch")

# Re-check a scarce rate budget at least this often: it may be shared or reset meanwhile.
BUDGET_RECHECK_SECONDS = 1.0


class MemoryQueue:
    """Sends what the dispatcher's schedule says is ready, on one daemon thread."""

    spool = None

    def __init__(self, dispatcher: Host) -> None:
        self._dispatcher = dispatcher
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the sender unless it runs; under the dispatcher's lock."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="pd_integrations-dispatch", daemon=True
            )
            self._thread.start()

    def busy(self) -> bool:
        """Anything still to send; under the dispatcher's lock."""
        return len(self._dispatcher._schedule) > 0

    def queued(self) -> int:
        return 0  # everything waiting is in the schedule, counted by the dispatcher

    def still_ours(self, item: Pending) -> bool:
        return True

    def settle(self, item: Pending, action: str, **details: object) -> None:
        """Nothing to record: an event in memory is forgotten once settled."""

    def close(self, leftovers: list[Slot[Pending]], quiet: bool) -> int:
        """Drop and report what is left; returns how many were not delivered."""
        dispatcher = self._dispatcher
        with dispatcher._lock:
            dispatcher._dropped += len(leftovers)
        if leftovers:
            # One line for the lot: a full queue at shutdown must not flood the logs.
            _log.warning(
                "closing with %d PagerDuty event(s) not delivered; they are dropped",
                len(leftovers),
            )
            if signals.event_dropped.receivers:
                for slot in leftovers:
                    signals.emit(
                        signals.event_dropped, dispatcher, event=slot.item.event, reason="shutdown"
                    )
        return len(leftovers)

    def _run(self) -> None:
        dispatcher = self._dispatcher
        while True:
            with dispatcher._lock:
                slot = self._next_slot()
                if slot is None:
                    dispatcher._idle.notify_all()
                    return  # closed, or another queue took over
            retry_in = dispatcher._attempt(slot.item, slot.attempts)
            interrupted = False
            with dispatcher._lock:
                if retry_in is not None and not dispatcher._closed:
                    dispatcher._schedule.retry_at(slot.seq, time.monotonic() + retry_in)
                else:
                    interrupted = retry_in is not None
                    dispatcher._forget(slot)
                if not dispatcher._busy():
                    dispatcher._idle.notify_all()
            if interrupted:
                dispatcher._give_back(slot.item)

    def _next_slot(self) -> Slot[Pending] | None:
        """Wait (under the lock) for a ready slot and the budget to send it; ``None``: stop."""
        dispatcher = self._dispatcher
        schedule = dispatcher._schedule
        while not dispatcher._closed and dispatcher._queue is self:
            wait = schedule.next_ready(time.monotonic(), take=False)
            if wait is None:
                if not dispatcher._busy():
                    dispatcher._idle.notify_all()
                dispatcher._wake.wait()
                continue
            if isinstance(wait, float):
                dispatcher._wake.wait(wait)
                continue
            # Something is ready: spend the budget first, then take the most important
            # ready slot, which may have arrived while the budget was scarce.
            delay = dispatcher._budget_delay()
            if delay > 0:
                dispatcher._stopping.wait(min(delay, BUDGET_RECHECK_SECONDS))
                continue
            slot = schedule.next_ready(time.monotonic())
            if isinstance(slot, Slot):
                return slot
        return None
