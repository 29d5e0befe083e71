"""The spool queue: pending events live in an SQLite file that survives a crash.

``submit`` still only touches memory: a writer thread moves what the dispatcher's
schedule holds into the file (one transaction per batch), and a sender thread claims
the most important due row, sends it, and settles it in the file (deleted once
PagerDuty accepted it, moved to the ``failed`` table, or given back with its
next-attempt time). If the file fails, the queue hands everything it still holds back
to the dispatcher, which carries on in memory.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from pd_integrations import signals
from pd_integrations.client import PreparedEvent
from pd_integrations.delivery.spool import Spool, SpooledEvent, SpoolError

from .memory import BUDGET_RECHECK_SECONDS
from .pending import Pending
from .schedule import Slot

if TYPE_CHECKING:
    from pd_integrations.delivery.host import Host

_log = logging.getLogger("pd_integrations.dispatch")

# How often an idle sender looks for rows other processes wrote or abandoned.
SPOOL_POLL_SECONDS = 1.0


class SpoolQueue:
    """A writer and a sender thread over one :class:`~pd_integrations.delivery.spool.Spool`."""

    def __init__(self, dispatcher: Host, spool: Spool) -> None:
        self._dispatcher = dispatcher
        self.spool = spool
        lock = dispatcher._lock
        # Notified when a batch reached the file (the sender may have rows to claim).
        self._spooled = threading.Condition(lock)
        self._writer: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        self._inflight = 0  # claims being made or sent: close() keeps the file open
        self._writing = 0
        self._written = 0  # batches written: tells the sender its empty claim is stale
        self._drained = True  # the sender found nothing to claim since the last write
        self._failed = False

    # -- what the dispatcher asks -------------------------------------------------------

    def start(self) -> None:
        """Start the writer and the sender unless they run; under the dispatcher's lock."""
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(
                target=self._write, name="pd_integrations-dispatch", daemon=True
            )
            self._writer.start()
        self._start_sender()

    def resume(self) -> None:
        """Deliver what an earlier (or another) process left in the file."""
        try:
            waiting = self.spool.pending_count()
        except SpoolError as error:
            self._file_failed(error, [])
            return
        if waiting:
            _log.info("%d PagerDuty event(s) waiting in the spool %s", waiting, self.spool.path)
            with self._dispatcher._lock:
                self._drained = False
                self._start_sender()

    def busy(self) -> bool:
        """Anything this process could still send, the file included; under the lock."""
        return (
            len(self._dispatcher._schedule) > 0
            or self._inflight > 0
            or self._writing > 0
            or not self._drained
        )

    def queued(self) -> int:
        """The routing key's rows in the file (and a batch being written)."""
        try:
            in_file = self.spool.pending_count()
        except SpoolError:
            in_file = 0
        return in_file + self._writing

    def wake(self) -> None:
        """Closing: stop waiting; under the lock."""
        self._spooled.notify_all()

    def close(self, leftovers: list[Slot[Pending]], quiet: bool) -> int:
        """Persist what the writer had not written yet; returns the rows the file keeps.

        Every row left is reported: the next process that opens the file sends it.
        """
        dispatcher = self._dispatcher
        quiet = quiet and not self._inflight and not self._writing
        try:
            if leftovers:
                self._put(leftovers)
            kept = self.spool.pending_count()
        except SpoolError as error:
            with dispatcher._lock:
                dispatcher._dropped += len(leftovers)
            _log.warning(
                "closing: %s; %d PagerDuty event(s) not delivered are dropped",
                error,
                len(leftovers),
            )
            return len(leftovers) or 1
        if kept:
            _log.warning(
                "closing with %d PagerDuty event(s) not delivered; they stay in the spool %s "
                "and the next process that opens it sends them",
                kept,
                self.spool.path,
            )
        if quiet:
            # Else a thread is still sending or writing; the connection goes with it.
            self.spool.close()
        return int(kept)

    def still_ours(self, item: Pending) -> bool:
        """Renew the claim on a spooled event; ``False`` if another process took it over."""
        spooled = item.spooled
        if spooled is None:
            return True
        try:
            return self.spool.renew(spooled)
        except SpoolError:
            return True  # the file failed; the event is in hand, so send it anyway

    def settle(self, item: Pending, action: str, *, reason: str = "", error: str = "") -> None:
        """Record in the file what became of a claimed event."""
        spooled = item.spooled
        if spooled is None:
            return
        try:
            if action == "complete":
                done = self.spool.complete(spooled)
            elif action == "fail":
                done = self.spool.fail(spooled, reason=reason, error=error)
            else:
                done = self.spool.release(spooled)
        except SpoolError as failure:
            _log.warning("%s; the event may be sent again by the next process", failure)
            return
        if not done and action != "release":
            _log.warning(
                "the claim on a spooled PagerDuty %s event ran out before it was settled; "
                "another process may send it again (same dedup key, so no second incident)",
                item.event.action,
            )

    # -- the writer ---------------------------------------------------------------------

    def _write(self) -> None:
        dispatcher = self._dispatcher
        while True:
            with dispatcher._lock:
                while (
                    not len(dispatcher._schedule)
                    and not dispatcher._closed
                    and dispatcher._queue is self
                ):
                    dispatcher._wake.wait()
                if dispatcher._closed or dispatcher._queue is not self:
                    return  # close() persists what is left; a failure re-queued it in memory
                batch = dispatcher._schedule.drain()
                dispatcher._mergeable.clear()
                self._writing = len(batch)
            try:
                self._put(batch)
            except SpoolError as error:
                self._file_failed(error, batch)
                return
            with dispatcher._lock:
                self._writing = 0
                self._written += 1
                self._drained = False
                self._spooled.notify_all()

    def _put(self, slots: list[Slot[Pending]]) -> None:
        dispatcher = self._dispatcher
        result = self.spool.put(
            [(slot.item.prepared, slot.item.occurrences, slot.rank) for slot in slots],
            max_rows=dispatcher.max_queue,
        )
        with dispatcher._lock:
            dispatcher._dropped += len(result.dropped)
            dispatcher._coalesced += len(result.coalesced)
        for event in result.dropped:
            dispatcher._drop_log.dropped(event.action, "queue-full", dispatcher._dropped)
            signals.emit(signals.event_dropped, dispatcher, event=event, reason="queue-full")
        for event, occurrences in result.coalesced:
            signals.emit(signals.event_coalesced, dispatcher, event=event, occurrences=occurrences)
        for event, error in result.unencodable:
            with dispatcher._lock:
                dispatcher._failed += 1
            _log.error("PagerDuty %s event not delivered: %s", event.action, error)
            signals.emit(signals.event_failed, dispatcher, event=event, error=error)

    # -- the sender ---------------------------------------------------------------------

    def _start_sender(self) -> None:
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(
                target=self._send, name="pd_integrations-spool-sender", daemon=True
            )
            self._sender.start()

    def _send(self) -> None:
        """Claim the best due row, attempt it, settle it; until closed or failed."""
        dispatcher = self._dispatcher
        while True:
            with dispatcher._lock:
                if dispatcher._closed or dispatcher._queue is not self:
                    dispatcher._idle.notify_all()
                    return
                written = self._written
                blocked = dispatcher._schedule.circuit.blocked_for(time.monotonic())
                if blocked > 0:
                    dispatcher._stopping.wait(blocked)
                    continue
                # Counted before the claim: close() must not close the file under a claim.
                self._inflight += 1
            try:
                claimed = self._claim()
            except SpoolError as error:
                self._settled()
                self._file_failed(error, [])
                return
            if isinstance(claimed, SpooledEvent):
                self._send_claimed(claimed)
                self._settled()
                continue
            self._settled()
            with dispatcher._lock:
                if claimed is None:
                    dispatcher._stopping.wait(BUDGET_RECHECK_SECONDS)
                elif self._written == written:
                    empty, due = claimed
                    if empty and not len(dispatcher._schedule) and not self._writing:
                        self._drained = True
                        dispatcher._idle.notify_all()
                    if not dispatcher._closed:
                        # Woken by the writer; the timeout finds rows whose retry came
                        # due and rows other processes wrote or abandoned.
                        poll = SPOOL_POLL_SECONDS if due is None else min(due, SPOOL_POLL_SECONDS)
                        self._spooled.wait(poll)

    def _claim(self) -> SpooledEvent | tuple[bool, float | None] | None:
        """A claimed row; ``None`` when the budget is scarce; else (file empty, next due)."""
        spool, dispatcher = self.spool, self._dispatcher
        claimed = spool.claim()
        if claimed is None:
            # Rows other processes hold count too: one of them may have died holding a
            # claim, which this process takes over once it runs out.
            empty = spool.pending_count() == 0
            return empty, None if empty else spool.next_due()
        if dispatcher._closed:
            spool.release(claimed)
            return False, None
        if dispatcher._budget_delay() > 0:
            # Given back while the budget is scarce, so that the most important row, not
            # this one, goes out when it allows a send again.
            spool.release(claimed)
            return None
        with dispatcher._lock:
            self._drained = False
        return claimed

    def _send_claimed(self, claimed: SpooledEvent) -> None:
        item = Pending(
            PreparedEvent(claimed.event, claimed.body),
            claimed.enqueued_at,
            claimed.occurrences,
            claimed,
        )
        retry_in = self._dispatcher._attempt(item, claimed.attempts + 1)
        if retry_in is None:
            return
        if self._dispatcher._closed:
            self.settle(item, "release")
            return
        try:
            if not self.spool.retry_later(claimed, time.time() + retry_in):
                _log.warning(
                    "the claim on a spooled PagerDuty %s event ran out while it was sent",
                    item.event.action,
                )
        except SpoolError as error:
            _log.warning("%s; the event may be sent again by the next process", error)

    def _settled(self) -> None:
        dispatcher = self._dispatcher
        with dispatcher._lock:
            self._inflight -= 1
            if not dispatcher._busy():
                dispatcher._idle.notify_all()

    def _file_failed(self, error: SpoolError, unsent: list[Slot[Pending]]) -> None:
        """Warn once, and have the dispatcher carry on in memory with what is unsent."""
        with self._dispatcher._lock:
            if self._failed:
                return
            self._failed = True
            self._writing = 0
            self._drained = True
            self._spooled.notify_all()
            switched = self._dispatcher._fall_back_to_memory(self, unsent)
        if switched:
            _log.warning(
                "%s; PagerDuty events are now kept in memory only. Events already in the "
                "file stay there for the next process that can open it.",
                error,
            )
