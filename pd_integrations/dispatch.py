"""Background delivery: the request path hands events over here and never waits.

``submit`` encodes the event in the caller's thread (so a slow or hostile object costs
its own caller, never the sender, and the payload is frozen), then takes a lock for a
few dictionary operations and returns. One daemon sender thread delivers what is ready,
in the order :mod:`pd_integrations.schedule` decides: an event waiting for its retry
never holds up another, a dedup key's events stay in order, the most important ready
event goes first when the routing key's rate budget is scarce, a 429 pauses the key
and repeated connection failures open a short circuit. Pending triggers with the same
dedup key are merged (the latest payload wins and the number of occurrences is
reported), so an error storm becomes one event. Whatever goes wrong with one event
(it cannot be encoded, PagerDuty refuses it, sending it raises) ends that event as
failed: logged, counted and signalled, never silent.

With a spool (:mod:`pd_integrations.spool`), the queue lives in an SQLite file instead:
``submit`` still only touches memory, a writer thread moves what was submitted into the
file (in batches, so a storm costs one transaction per batch), and the sender claims the
most important due row from the file, sends it and deletes it once PagerDuty has
accepted it; a failed attempt goes back to the file with its next-attempt time.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import client as client_module
from . import shutdown, signals
from .client import OCCURRENCES_KEY as OCCURRENCES_KEY
from .client import PreparedEvent
from .config import DEFAULT_EXIT_FLUSH_TIMEOUT as DEFAULT_EXIT_FLUSH_TIMEOUT
from .config import FLUSH_TIMEOUT_VAR as FLUSH_TIMEOUT_VAR
from .config import SPOOL_VAR as SPOOL_VAR
from .config import resolve_flush_timeout as resolve_flush_timeout
from .config import resolve_spool_path as resolve_spool_path
from .errors import (
    DeliveryError,
    InvalidEventError,
    PagerDutyError,
    RateLimitedError,
)
from .events import Event, TriggerEvent, new_dedup_key
from .ratelimit import DEFAULT_PER_MINUTE, RateBudget, shared_budget
from .schedule import CIRCUIT_MAX_PAUSE, CIRCUIT_THRESHOLD, Schedule, Slot
from .spool import Spool, SpooledEvent, SpoolError, open_spool

if TYPE_CHECKING:
    from .client import EventsClient

_log = logging.getLogger("pd_integrations.dispatch")

DEFAULT_MAX_QUEUE = 1000
DEFAULT_GIVE_UP_AFTER = 900.0
BUDGET_RECHECK_SECONDS = 1.0
# How often an idle spool sender looks for rows other processes wrote or abandoned.
SPOOL_POLL_SECONDS = 1.0
DROP_LOG_INTERVAL = 60.0
"""Seconds between drop warnings while events keep being dropped (the first warns at once)."""


@dataclass(frozen=True, slots=True)
class DispatchStats:
    """Counts since the dispatcher was created (or since the process forked)."""

    queued: int
    sent: int
    retried: int
    failed: int
    dropped: int
    coalesced: int
    suppressed_by_policy: int = 0
    """Triggers a routing rule or ``before_send`` dropped (counted by the AlertManager)."""


@dataclass(slots=True)
class _Item:
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


def with_occurrences(event: TriggerEvent, occurrences: int) -> TriggerEvent:
    """The trigger with ``occurrences`` added to its ``custom_details``."""
    details: Any = event.custom_details
    if details is None:
        merged: dict[str, Any] = {}
    elif isinstance(details, Mapping):
        merged = dict(details)
    else:
        merged = {"details": details}
    merged[OCCURRENCES_KEY] = occurrences
    return replace(event, custom_details=merged)


class DropLog:
    """Logs dropped events without flooding the log during an outage.

    The first drop warns at once; later drops within ``interval`` seconds of the last
    warning are only counted, and the next drop after that warns once for all of them,
    with the count per reason. :meth:`flush` logs what is still only counted (the
    dispatcher calls it when it closes). Counting here never replaces the exact figures:
    ``stats().dropped`` and the ``event_dropped`` signal still see every event.

    :param interval: the least number of seconds between two warnings; 0 warns for
        every drop.
    :param clock: a monotonic clock in seconds (tests pass their own).
    """

    def __init__(
        self, interval: float = DROP_LOG_INTERVAL, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval >= 0:
            raise ValueError(f"drop_log_interval must be seconds >= 0, not {interval!r}")
        self.interval = float(interval)
        self._clock = clock
        self._lock = threading.Lock()
        self._last_warning: float | None = None
        self._unlogged: dict[str, int] = {}

    def dropped(self, action: str, reason: str, total: int) -> None:
        """Count one dropped ``action`` event; warn now unless a warning was recent.

        :param total: every event dropped so far, this one included.
        """
        with self._lock:
            now = self._clock()
            last = self._last_warning
            if last is not None and now - last < self.interval:
                self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
                return
            self._last_warning = now
            unlogged, self._unlogged = self._unlogged, {}
        if not unlogged:
            _log.warning(
                "dropped a PagerDuty %s event (%s); %d dropped so far%s",
                action,
                reason,
                total,
                f"; more drops are summarised every {self.interval:g} s" if self.interval else "",
            )
            return
        unlogged[reason] = unlogged.get(reason, 0) + 1
        self._summarise(unlogged, now - (last or now), total)

    def flush(self, total: int) -> None:
        """Log the drops counted since the last warning, if any."""
        with self._lock:
            unlogged, self._unlogged = self._unlogged, {}
            last = self._last_warning
            now = self._clock()
        if unlogged:
            self._summarise(unlogged, now - (last or now), total)

    @staticmethod
    def _summarise(unlogged: dict[str, int], seconds: float, total: int) -> None:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(unlogged.items()))
        _log.warning(
            "dropped %d more PagerDuty event(s) in the last %.0f s (%s); %d dropped so far",
            sum(unlogged.values()),
            seconds,
            reasons,
            total,
        )


def default_lease(client: EventsClient) -> float:
    """A spool lease comfortably longer than one attempt (connect, write and read timeouts)."""
    return max(10.0, 4 * client.timeout + 5.0)


class Dispatcher:
    """Delivers events in the background through an :class:`~pd_integrations.EventsClient`.

    :param client: sends the events; its routing key names the rate budget and the spool rows.
    :param max_queue: the most events waiting in memory, and with a spool the most rows
        of this routing key in the file; the least important go first when full.
    :param rate_limit: events per minute for the client's routing key (``None``: no budget).
    :param give_up_after: seconds one event is retried before it is given up.
    :param exit_flush_timeout: seconds the exit (and SIGTERM) flush may take; ``None``
        reads ``PAGERDUTY_FLUSH_TIMEOUT``, else 2 s.
    :param budget: a rate budget to share instead of the process-wide one for the key.
    :param spool: an SQLite file that keeps pending events across crashes and restarts
        and may be shared by several processes; ``None`` reads ``PAGERDUTY_SPOOL``, and
        without either the queue is in memory only. A spool that cannot be used is
        reported once (a warning) and the dispatcher works in memory.
    :param spool_lease: seconds another process waits before it takes over a row whose
        sender stopped renewing its claim (it died); by default derived from the
        client's timeout (at least 10 s).
    :param handle_sigterm: install the SIGTERM flush of :mod:`pd_integrations.shutdown`
        when SIGTERM would otherwise end the process without running exit handlers.
    :param drop_log_interval: seconds between two warnings about dropped events (see
        :class:`DropLog`); 0 warns for every drop.
    :param rng: draws the backoff jitter (tests pass a seeded or scripted one).
    """

    def __init__(
        self,
        client: EventsClient,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        rate_limit: int | None = DEFAULT_PER_MINUTE,
        give_up_after: float = DEFAULT_GIVE_UP_AFTER,
        exit_flush_timeout: float | None = None,
        budget: RateBudget | None = None,
        spool: str | os.PathLike[str] | None = None,
        spool_lease: float | None = None,
        handle_sigterm: bool = True,
        drop_log_interval: float = DROP_LOG_INTERVAL,
        rng: random.Random | None = None,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        if spool_lease is not None and not spool_lease > 0:
            raise ValueError(f"spool_lease must be a positive number of seconds, not {spool_lease}")
        self.client = client
        self.max_queue = max_queue
        self._drop_log = DropLog(drop_log_interval)
        self.give_up_after = give_up_after
        self.exit_flush_timeout = resolve_flush_timeout(exit_flush_timeout)
        if budget is None and rate_limit is not None:
            budget = shared_budget(client.routing_key, rate_limit)
        self._budget = budget
        self._rng = rng if rng is not None else random.Random()
        path = resolve_spool_path(spool)
        self.spool_path = path
        self._spool: Spool | None = None
        if path is not None:
            self._spool = open_spool(
                path,
                routing_key=client.routing_key,
                scrubber=client.scrubber,
                lease=spool_lease if spool_lease is not None else default_lease(client),
            )
        self._init_state()
        _live.add(self)
        if handle_sigterm:
            shutdown.install()
        if self._spool is not None:
            self._resume_spool()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        # Notified when something may have become sendable (a submission, a settled event).
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        # Waits for the budget or a backoff use their own condition: a submission must
        # not cut them short, only close() does.
        self._stopping = threading.Condition(self._lock)
        # Without a spool: the queue itself. With one: what the writer moves to the file.
        self._schedule: Schedule[_Item] = Schedule()
        # dedup key -> slot of the pending trigger a new one may merge into.
        self._mergeable: dict[str, int] = {}
        self._closed = False
        self._worker: threading.Thread | None = None
        self._pid = os.getpid()
        self._sent = self._retried = self._failed = self._dropped = self._coalesced = 0
        # Spool mode: the writer drains the schedule into the file; the sender sends from it.
        self._spooled = threading.Condition(self._lock)
        self._sender: threading.Thread | None = None
        self._spool_inflight = 0
        self._writing = 0
        self._written = 0  # batches written: tells the sender its empty claim is stale
        self._drained = True  # the sender found nothing to claim since the last write

    # -- the caller's side ------------------------------------------------------------

    def submit(self, event: Event) -> bool:
        """Queue ``event`` for delivery; ``False`` if it was dropped or cannot be sent.

        Never blocks on delivery and never raises: the event is encoded here, in the
        caller's thread; one that cannot be encoded is failed (logged, counted in
        ``stats().failed`` and signalled through ``event_failed``).
        """
        try:
            if isinstance(event, TriggerEvent) and event.dedup_key is None:
                # Fixed before the first attempt, so a retry cannot open a second incident.
                event = event.with_dedup_key(new_dedup_key())
            try:
                prepared = self.client.prepare(event)
            except Exception as error:
                self._failed_to_prepare(event, error)
                return False
            return self._submit(prepared)
        except Exception:  # the host application must never see our failures
            _log.exception("could not queue a PagerDuty event")
            return False

    def _failed_to_prepare(self, event: Event, error: Exception) -> None:
        failure = (
            error
            if isinstance(error, PagerDutyError)
            else PagerDutyError(f"the event cannot be encoded: {type(error).__name__}: {error}")
        )
        with self._lock:
            self._failed += 1
        _log.error(
            "PagerDuty %s event (dedup key %s) not delivered: %s",
            event.action,
            event.dedup_key,
            failure,
        )
        signals.emit(signals.event_failed, self, event=event, error=failure)

    def _submit(self, prepared: PreparedEvent) -> bool:
        event = prepared.event
        dropped: _Item | None = None
        occurrences = 0
        with self._lock:
            if self._closed:
                self._dropped += 1
                dropped = _Item(prepared, 0.0)
                reason = "closed"
            else:
                schedule = self._schedule
                key = event.dedup_key
                is_trigger = isinstance(event, TriggerEvent)
                rank = schedule.rank_of(key, event.priority, is_trigger=is_trigger)
                seq = self._mergeable.get(key) if key is not None and is_trigger else None
                slot = schedule.get(seq) if seq is not None else None
                if slot is not None and not slot.in_flight:
                    slot.item.prepared = prepared
                    slot.item.occurrences += 1
                    schedule.rerank(slot.seq, rank)
                    self._coalesced += 1
                    occurrences = slot.item.occurrences
                else:
                    if schedule.waiting >= self.max_queue:
                        dropped = self._make_room(prepared, rank)
                        reason = "queue-full"
                    if dropped is None or dropped.prepared is not prepared:
                        self._enqueue(_Item(prepared, time.monotonic()), rank)
                    self._ensure_worker()
                self._wake.notify()
        if dropped is not None:
            self._report_drop(dropped, reason)
            return dropped.prepared is not prepared
        if occurrences:
            signals.emit(signals.event_coalesced, self, event=event, occurrences=occurrences)
        return True

    def _enqueue(self, item: _Item, rank: int) -> None:
        """Add ``item`` to the schedule; under the lock."""
        key = item.event.dedup_key
        slot = self._schedule.add(item, key, rank)
        if key is not None:
            if isinstance(item.event, TriggerEvent):
                self._mergeable[key] = slot.seq
            else:
                # A later trigger must not jump back over this acknowledge/resolve.
                self._mergeable.pop(key, None)

    def _forget(self, slot: Slot[_Item]) -> None:
        """Take ``slot`` out of the schedule; under the lock."""
        self._schedule.remove(slot.seq)
        key = slot.dedup_key
        if key is not None and self._mergeable.get(key) == slot.seq:
            del self._mergeable[key]

    def _make_room(self, incoming: PreparedEvent, rank: int) -> _Item:
        """Drop the least important item: the incoming one unless something ranks lower."""
        victim = self._schedule.lowest()
        self._dropped += 1
        if victim is None or victim.rank >= rank:
            return _Item(incoming, 0.0)
        self._forget(victim)
        return victim.item

    def _report_drop(self, item: _Item, reason: str) -> None:
        # A full queue during an outage drops thousands of events a second: the log gets
        # a summary now and then, the signal (and the count in stats) every one of them.
        self._drop_log.dropped(item.event.action, reason, self._dropped)
        signals.emit(signals.event_dropped, self, event=item.event, reason=reason)

    def _ensure_worker(self) -> None:
        if self._pid != os.getpid():
            return  # _after_fork resets us; nothing to do in a half-forked state
        if self._worker is None or not self._worker.is_alive():
            target = self._send_from_memory if self._spool is None else self._write_spool
            self._worker = threading.Thread(
                target=target, name="pd_integrations-dispatch", daemon=True
            )
            self._worker.start()
        if self._spool is not None:
            self._ensure_sender()

    def _ensure_sender(self) -> None:
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(
                target=self._send_spooled,
                args=(self._spool,),
                name="pd_integrations-spool-sender",
                daemon=True,
            )
            self._sender.start()

    def _busy(self) -> bool:
        """Whether anything this process could still send is pending; under the lock."""
        if len(self._schedule) or self._spool_inflight:
            return True
        return self._spool is not None and (self._writing > 0 or not self._drained)

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until everything queued has been delivered or given up; ``False`` on timeout.

        With a spool, "everything" is every row of this routing key in the file,
        including rows another process is sending (or held when it died: those are
        taken over once their claim runs out).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._busy():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    def close(self, timeout: float | None = 5.0) -> bool:
        """Flush for up to ``timeout`` seconds, then stop.

        Without a spool, what is left is dropped and reported. With one, it stays in
        the file (and is reported) for the next process that opens it.
        """
        flushed = self.flush(timeout)
        with self._lock:
            self._closed = True
            spool = self._spool
            # An event in flight is the sender's to settle; everything else is left over.
            leftovers = [slot for slot in self._schedule if not slot.in_flight]
            for slot in leftovers:
                self._forget(slot)
            quiet = not self._schedule.in_flight and not self._writing and not self._spool_inflight
            self._wake.notify_all()
            self._stopping.notify_all()
            self._spooled.notify_all()
        items = [slot.item for slot in leftovers]
        if spool is not None:
            kept = self._close_spool(spool, items, [slot.rank for slot in leftovers], quiet)
            self._drop_log.flush(self._dropped)
            _live.discard(self)
            return flushed and kept is not None and kept == 0
        self._drop_log.flush(self._dropped)
        with self._lock:
            self._dropped += len(items)
        if items:
            # One line for the lot: a full queue at shutdown must not flood the logs.
            _log.warning(
                "closing with %d PagerDuty event(s) not delivered; they are dropped",
                len(items),
            )
            if signals.event_dropped.receivers:
                for item in items:
                    signals.emit(signals.event_dropped, self, event=item.event, reason="shutdown")
        _live.discard(self)
        return flushed and not items

    def _close_spool(
        self, spool: Spool, leftovers: list[_Item], ranks: list[int], quiet: bool
    ) -> int | None:
        """Persist what the writer had not written yet and report what the file keeps.

        Returns the number of rows of this routing key left in the file (``None`` when
        the file failed and the leftovers were lost).
        """
        try:
            if leftovers:
                self._put_in_spool(spool, leftovers, ranks)
            kept = spool.pending_count()
        except SpoolError as error:
            with self._lock:
                self._dropped += len(leftovers)
            _log.warning(
                "closing: %s; %d PagerDuty event(s) not delivered are dropped",
                error,
                len(leftovers),
            )
            return None
        if kept:
            _log.warning(
                "closing with %d PagerDuty event(s) not delivered; they stay in the spool %s "
                "and the next process that opens it sends them",
                kept,
                spool.path,
            )
        if quiet:
            # Else a thread is still sending or writing; the connection goes with it.
            spool.close()
        return kept

    def stats(self) -> DispatchStats:
        """Counts so far; with a spool, ``queued`` counts the routing key's rows in the file."""
        spool = self._spool
        in_file = 0
        if spool is not None:
            try:
                in_file = spool.pending_count()
            except SpoolError:
                in_file = 0
        with self._lock:
            return DispatchStats(
                queued=len(self._schedule) + self._writing + in_file,
                sent=self._sent,
                retried=self._retried,
                failed=self._failed,
                dropped=self._dropped,
                coalesced=self._coalesced,
            )

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def spool(self) -> Spool | None:
        """The spool in use; ``None`` without one, or after it failed (see the log)."""
        return self._spool

    # -- the sender's side (memory) ----------------------------------------------------

    def _send_from_memory(self) -> None:
        """The sender thread without a spool: send whatever the schedule says is ready."""
        while True:
            with self._lock:
                slot = self._next_slot()
                if slot is None:
                    self._idle.notify_all()
                    return  # closed, or the spool took over
            retry_in = self._attempt(slot.item, slot.attempts)
            interrupted = False
            with self._lock:
                if retry_in is not None and not self._closed:
                    self._schedule.retry_at(slot.seq, time.monotonic() + retry_in)
                else:
                    interrupted = retry_in is not None
                    self._forget(slot)
                if not self._busy():
                    self._idle.notify_all()
            if interrupted:
                self._give_back(slot.item)

    def _next_slot(self) -> Slot[_Item] | None:
        """Wait (under the lock) for a ready slot and the budget to send it; ``None``: closed."""
        schedule = self._schedule
        while not self._closed and self._spool is None:
            wait = schedule.next_ready(time.monotonic(), take=False)
            if wait is None:
                if not self._busy():
                    self._idle.notify_all()
                self._wake.wait()
                continue
            if isinstance(wait, float):
                self._wake.wait(wait)
                continue
            # Something is ready: spend the budget first, then take the most important
            # ready slot, which may have arrived while the budget was scarce.
            delay = self._budget_delay()
            if delay > 0:
                self._stopping.wait(min(delay, BUDGET_RECHECK_SECONDS))
                continue
            slot = schedule.next_ready(time.monotonic())
            if isinstance(slot, Slot):
                return slot
        return None

    def _budget_delay(self) -> float:
        if self._budget is None or client_module._capture_sinks:
            return 0.0
        return self._budget.try_acquire()

    # -- the sender's side (spool) ------------------------------------------------------

    def _resume_spool(self) -> None:
        """Deliver what an earlier (or another) process left in the file."""
        spool = self._spool
        if spool is None:
            return
        try:
            waiting = spool.pending_count()
        except SpoolError as error:
            self._spool_failed(spool, error, [])
            return
        if waiting:
            _log.info("%d PagerDuty event(s) waiting in the spool %s", waiting, spool.path)
            with self._lock:
                self._drained = False
                self._ensure_sender()

    def _write_spool(self) -> None:
        """The writer thread: move submitted events from memory into the file."""
        spool = self._spool
        if spool is None:
            return
        while True:
            with self._lock:
                while not len(self._schedule) and not self._closed and self._spool is spool:
                    self._wake.wait()
                if self._closed or self._spool is not spool:
                    return  # close() persists what is left; a failure re-queued it in memory
                batch = self._schedule.drain()
                self._mergeable.clear()
                self._writing = len(batch)
            try:
                self._put_in_spool(spool, [slot.item for slot in batch], [s.rank for s in batch])
            except SpoolError as error:
                self._spool_failed(spool, error, batch)
                return
            with self._lock:
                self._writing = 0
                self._written += 1
                self._drained = False
                self._spooled.notify_all()

    def _put_in_spool(self, spool: Spool, items: list[_Item], ranks: list[int]) -> None:
        result = spool.put(
            [
                (item.prepared, item.occurrences, rank)
                for item, rank in zip(items, ranks, strict=True)
            ],
            max_rows=self.max_queue,
        )
        with self._lock:
            self._dropped += len(result.dropped)
            self._coalesced += len(result.coalesced)
        for event in result.dropped:
            self._drop_log.dropped(event.action, "queue-full", self._dropped)
            signals.emit(signals.event_dropped, self, event=event, reason="queue-full")
        for event, occurrences in result.coalesced:
            signals.emit(signals.event_coalesced, self, event=event, occurrences=occurrences)
        for event, error in result.unencodable:
            with self._lock:
                self._failed += 1
            _log.error("PagerDuty %s event not delivered: %s", event.action, error)
            signals.emit(signals.event_failed, self, event=event, error=error)

    def _send_spooled(self, spool: Spool) -> None:
        """The sender thread with a spool: claim the best due row, attempt it, settle it."""
        while True:
            with self._lock:
                if self._closed or self._spool is not spool:
                    self._idle.notify_all()
                    return
                written = self._written
                blocked = self._schedule.circuit.blocked_for(time.monotonic())
                if blocked > 0:
                    self._stopping.wait(blocked)
                    continue
                # Counted before the claim: close() must not close the file under a claim.
                self._spool_inflight += 1
            try:
                claimed = self._claim(spool)
            except SpoolError as error:
                self._spool_settled()
                self._spool_failed(spool, error, [])
                return
            if isinstance(claimed, SpooledEvent):
                self._send_claimed(claimed)
                self._spool_settled()
                continue
            self._spool_settled()
            with self._lock:
                if claimed is None:
                    self._stopping.wait(BUDGET_RECHECK_SECONDS)
                elif self._written == written:
                    empty, due = claimed
                    if empty and not len(self._schedule) and not self._writing:
                        self._drained = True
                        self._idle.notify_all()
                    if not self._closed:
                        # Woken by the writer; the timeout finds rows whose retry came
                        # due and rows other processes wrote or abandoned.
                        poll = SPOOL_POLL_SECONDS if due is None else min(due, SPOOL_POLL_SECONDS)
                        self._spooled.wait(poll)

    def _claim(self, spool: Spool) -> SpooledEvent | tuple[bool, float | None] | None:
        """A claimed row; ``None`` when the budget is scarce; else (file empty, next due)."""
        claimed = spool.claim()
        if claimed is None:
            # Rows other processes hold count too: one of them may have died holding a
            # claim, which this process takes over once it runs out.
            empty = spool.pending_count() == 0
            return empty, None if empty else spool.next_due()
        if self._closed:
            spool.release(claimed)
            return False, None
        if self._budget_delay() > 0:
            # Given back while the budget is scarce, so that the most important row, not
            # this one, goes out when it allows a send again.
            spool.release(claimed)
            return None
        with self._lock:
            self._drained = False
        return claimed

    def _send_claimed(self, claimed: SpooledEvent) -> None:
        item = _Item(
            PreparedEvent(claimed.event, claimed.body),
            claimed.enqueued_at,
            claimed.occurrences,
            claimed,
        )
        retry_in = self._attempt(item, claimed.attempts + 1)
        if retry_in is not None:
            if self._closed:
                self._settle(item, "release")
            else:
                self._settle(item, "retry", when=time.time() + retry_in)

    def _spool_settled(self) -> None:
        with self._lock:
            self._spool_inflight -= 1
            if not self._busy():
                self._idle.notify_all()

    def _spool_failed(self, spool: Spool, error: SpoolError, unsent: list[Slot[_Item]]) -> None:
        """Warn once and carry on in memory with what had not reached the file."""
        with self._lock:
            if self._spool is not spool or self._closed:
                return  # already handled, or close() closed the file under a thread
            self._spool = None
            self._writing = 0
            self._drained = True
            # Ahead of what arrived meanwhile: they were submitted first.
            rest = self._schedule.drain()
            self._mergeable.clear()
            for slot in [*unsent, *rest]:
                self._enqueue(slot.item, slot.rank)
            self._worker = None  # the writer is exiting; a memory sender takes over
            self._wake.notify_all()
            self._spooled.notify_all()
            self._stopping.notify_all()
            if not self._closed:
                self._ensure_worker()
            if not self._busy():
                self._idle.notify_all()
        _log.warning(
            "%s; PagerDuty events are now kept in memory only. Events already in the file "
            "stay there for the next process that can open it.",
            error,
        )

    def _settle(
        self, item: _Item, action: str, *, reason: str = "", error: str = "", when: float = 0.0
    ) -> None:
        """Record in the spool what became of a spooled event."""
        spooled = item.spooled
        spool = self._spool
        if spooled is None or spool is None:
            return
        try:
            if action == "complete":
                done = spool.complete(spooled)
            elif action == "fail":
                done = spool.fail(spooled, reason=reason, error=error)
            elif action == "retry":
                done = spool.retry_later(spooled, when)
            else:
                done = spool.release(spooled)
        except SpoolError as failure:
            _log.warning("%s; the event may be sent again by the next process", failure)
            return
        if not done and action != "release":
            _log.warning(
                "the claim on a spooled PagerDuty %s event ran out before it was settled; "
                "another process may send it again (same dedup key, so no second incident)",
                item.event.action,
            )

    def _still_ours(self, item: _Item) -> bool:
        """Renew the claim on a spooled event; ``False`` if another process took it over."""
        spooled, spool = item.spooled, self._spool
        if spooled is None or spool is None:
            return True
        try:
            return spool.renew(spooled)
        except SpoolError:
            return True  # the file failed; the event is in hand, so send it anyway

    # -- one attempt, shared by both senders ---------------------------------------------

    def _attempt(self, item: _Item, attempt: int) -> float | None:
        """Make one attempt at ``item``; the seconds until its retry, or ``None`` if settled.

        Settled means delivered, failed (refused, expired, or any unexpected error) or
        handed back to the spool; every outcome is counted and signalled here.
        """
        event = item.event
        if not self._still_ours(item):
            _log.warning(
                "another process took over a spooled PagerDuty %s event; not sending it",
                event.action,
            )
            return None
        try:
            response = self.client.send_prepared(
                item.prepared, occurrences=item.occurrences, attempt=attempt
            )
        except InvalidEventError as error:
            self._circuit_answered()
            self._finish_failed(item, event, error, "rejected")
            return None
        except DeliveryError as error:
            if item.age() >= self.give_up_after:
                self._finish_failed(item, event, error, "expired")
                return None
            with self._lock:
                self._retried += 1
            signals.emit(signals.event_retried, self, event=event, error=error)
            return self._after_failure(error, attempt)
        except PagerDutyError as error:
            if self.client.closed and item.spooled is not None:
                self._settle(item, "release")  # shutting down: the next process sends it
                return None
            self._finish_failed(item, event, error, "refused")
            return None
        except Exception as error:  # a bug or a hostile object: fail the event, loudly
            _log.exception("unexpected error while sending a PagerDuty %s event", event.action)
            failure = PagerDutyError(f"sending failed: {type(error).__name__}: {error}")
            self._finish_failed(item, event, failure, "error")
            return None
        with self._lock:
            self._schedule.circuit.accepted()
            self._sent += 1
        self._settle(item, "complete")
        signals.emit(signals.event_sent, self, event=event, response=response)
        return None

    def _after_failure(self, error: DeliveryError, attempt: int) -> float:
        """How long the event waits, pausing the routing key or the endpoint if need be."""
        retry, rng = self.client.retry, self._rng
        now = time.monotonic()
        with self._lock:
            circuit = self._schedule.circuit
            if isinstance(error, RateLimitedError):
                # PagerDuty's limit is per routing key: every event of the key waits.
                circuit.answered()
                circuit.rate_limited += 1
                circuit.pause(now + retry.backoff(circuit.rate_limited, rate_limited=True, rng=rng))
            else:
                # No answer, or a 5xx: in an outage every event fails alike, and retrying
                # each in turn would spend the whole rate budget on failures, leaving none
                # for the first page once PagerDuty is back.
                circuit.failures += 1
                failures = circuit.failures - CIRCUIT_THRESHOLD + 1
                if failures > 0:
                    # Open: one probe after the pause, not every ready event in turn.
                    pause = retry.backoff(failures, rate_limited=False, rng=rng)
                    circuit.pause(now + min(pause, CIRCUIT_MAX_PAUSE))
            own = retry.backoff(attempt, rate_limited=False, rng=rng)
            return max(own, circuit.blocked_for(now))

    def _circuit_answered(self) -> None:
        with self._lock:
            self._schedule.circuit.answered()

    def _finish_failed(self, item: _Item, event: Event, error: PagerDutyError, reason: str) -> None:
        self._settle(item, "fail", reason=reason, error=str(error))
        with self._lock:
            self._failed += 1
        _log.error(
            "PagerDuty %s event (dedup key %s) not delivered: %s",
            event.action,
            event.dedup_key,
            error,
        )
        signals.emit(signals.event_failed, self, event=event, error=error)

    def _give_back(self, item: _Item) -> None:
        """Closing interrupted a retry: drop the event, or leave it in the spool."""
        if item.spooled is not None:
            self._settle(item, "release")
            return
        with self._lock:
            self._dropped += 1
        self._report_drop(item, "shutdown")

    def _after_fork(self) -> None:
        # The parent still owns (and will deliver) what was queued before the fork; the
        # child shares the spool file, with a connection and an owner id of its own.
        budget, client, spool = self._budget, self.client, self._spool
        self._init_state()
        self._budget, self.client, self._spool = budget, client, spool
        # Its lock may have been held by another thread at the fork.
        self._drop_log = DropLog(self._drop_log.interval)
        if spool is not None:
            spool._reset_lock_after_fork()


_live: weakref.WeakSet[Dispatcher] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for dispatcher in list(_live):
        dispatcher._after_fork()


def _flush_at_exit() -> None:
    for dispatcher in list(_live):
        if not dispatcher.closed:
            dispatcher.close(dispatcher.exit_flush_timeout)


def _exit_budget() -> float:
    """How long :func:`_flush_at_exit` may take: the sum of the live dispatchers' timeouts."""
    return sum(d.exit_flush_timeout for d in list(_live) if not d.closed)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_flush_at_exit)
shutdown.register(_flush_at_exit, _exit_budget)
