"""Background delivery: the request path hands events over here and never waits.

One :class:`Dispatcher` owns a bounded queue and one daemon worker thread. ``submit``
takes a lock for a few dictionary operations and returns; the worker sends events in
order, within the routing key's rate budget, retrying what PagerDuty's policy says to
retry. Pending triggers with the same dedup key are merged (the latest payload wins and
the number of occurrences is reported), so an error storm becomes one event.

With a spool (:mod:`pd_integrations.spool`), the queue lives in an SQLite file instead:
``submit`` still only touches memory, a writer thread moves what was submitted into the
file (in batches, so a storm costs one transaction per batch), and a sender thread claims
rows from the file, sends them and deletes them once PagerDuty has accepted them.
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
from .spool import Spool, SpooledEvent, SpoolError, open_spool

if TYPE_CHECKING:
    from .client import EventsClient

_log = logging.getLogger("pd_integrations.dispatch")

DEFAULT_MAX_QUEUE = 1000
DEFAULT_GIVE_UP_AFTER = 900.0
OCCURRENCES_KEY = "occurrences"
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


@dataclass(slots=True)
class _Item:
    event: Event
    enqueued_at: float  # time.monotonic(), or time.time() for a spooled row
    occurrences: int = 1
    spooled: SpooledEvent | None = None

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
        self._rng = random.Random()
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
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        # Backoff sleeps wait on their own condition: new submissions must not cut them short.
        self._stopping = threading.Condition(self._lock)
        # Insertion-ordered: the queue itself. Keys are sequence numbers.
        self._pending: dict[int, _Item] = {}
        # dedup key -> sequence number of the pending trigger a new one may merge into.
        self._mergeable: dict[str, int] = {}
        self._seq = 0
        # A count, not a flag: after a spool failure the spool sender may still finish
        # its last event while the memory worker starts on the next one.
        self._inflight = 0
        self._closed = False
        self._worker: threading.Thread | None = None
        self._pid = os.getpid()
        self._sent = self._retried = self._failed = self._dropped = self._coalesced = 0
        # Spool mode: the writer drains _pending into the file; the sender sends from it.
        self._spooled = threading.Condition(self._lock)
        self._sender: threading.Thread | None = None
        self._writing = 0
        self._written = 0  # batches written: tells the sender its empty claim is stale
        self._drained = True  # the sender found nothing to claim since the last write

    # -- the caller's side ------------------------------------------------------------

    def submit(self, event: Event) -> bool:
        """Queue ``event`` for delivery; ``False`` if it was dropped. Never blocks or raises."""
        try:
            return self._submit(event)
        except Exception:  # the host application must never see our failures
            _log.exception("could not queue a PagerDuty event")
            return False

    def _submit(self, event: Event) -> bool:
        if isinstance(event, TriggerEvent) and event.dedup_key is None:
            # Fixed before the first attempt, so a retry cannot open a second incident.
            event = event.with_dedup_key(new_dedup_key())
        dropped: _Item | None = None
        with self._lock:
            if self._closed:
                self._dropped += 1
                dropped = _Item(event, 0.0)
                reason = "closed"
            else:
                key = event.dedup_key
                seq = self._mergeable.get(key) if key is not None else None
                if seq is not None and isinstance(event, TriggerEvent):
                    item = self._pending[seq]
                    item.event = event
                    item.occurrences += 1
                    self._coalesced += 1
                    occurrences = item.occurrences
                else:
                    occurrences = 0
                    if len(self._pending) >= self.max_queue:
                        dropped = self._make_room(event)
                        reason = "queue-full"
                    if dropped is None or dropped.event is not event:
                        self._enqueue(event)
                    self._ensure_worker()
        if dropped is not None:
            self._report_drop(dropped, reason)
            return dropped.event is not event
        if occurrences:
            signals.emit(signals.event_coalesced, self, event=event, occurrences=occurrences)
        return True

    def _enqueue(self, event: Event) -> None:
        self._seq += 1
        self._pending[self._seq] = _Item(event, time.monotonic())
        key = event.dedup_key
        if key is not None:
            if isinstance(event, TriggerEvent):
                self._mergeable[key] = self._seq
            else:
                # A later trigger must not jump back over this acknowledge/resolve.
                self._mergeable.pop(key, None)
        self._wake.notify()

    def _make_room(self, incoming: Event) -> _Item:
        """Drop the least important item: the incoming one unless something ranks lower."""
        victim_seq, victim = min(
            self._pending.items(), key=lambda pair: (pair[1].event.priority, pair[0])
        )
        self._dropped += 1
        if victim.event.priority >= incoming.priority:
            return _Item(incoming, 0.0)
        del self._pending[victim_seq]
        key = victim.event.dedup_key
        if key is not None and self._mergeable.get(key) == victim_seq:
            del self._mergeable[key]
        return victim

    def _report_drop(self, item: _Item, reason: str) -> None:
        # A full queue during an outage drops thousands of events a second: the log gets
        # a summary now and then, the signal (and the count in stats) every one of them.
        self._drop_log.dropped(item.event.action, reason, self._dropped)
        signals.emit(signals.event_dropped, self, event=item.event, reason=reason)

    def _ensure_worker(self) -> None:
        if self._pid != os.getpid():
            return  # _after_fork resets us; nothing to do in a half-forked state
        if self._worker is None or not self._worker.is_alive():
            target = self._run if self._spool is None else self._write_spool
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
        if self._pending or self._inflight:
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
            leftovers = list(self._pending.values())
            self._pending.clear()
            self._mergeable.clear()
            spool = self._spool
            quiet = not self._inflight and not self._writing
            self._wake.notify_all()
            self._stopping.notify_all()
            self._spooled.notify_all()
        if spool is not None:
            kept = self._close_spool(spool, leftovers, quiet)
            self._drop_log.flush(self._dropped)
            _live.discard(self)
            return flushed and kept is not None and kept == 0
        self._drop_log.flush(self._dropped)
        with self._lock:
            self._dropped += len(leftovers)
        if leftovers:
            # One line for the lot: a full queue at shutdown must not flood the logs.
            _log.warning(
                "closing with %d PagerDuty event(s) not delivered; they are dropped",
                len(leftovers),
            )
            if signals.event_dropped.receivers:
                for item in leftovers:
                    signals.emit(signals.event_dropped, self, event=item.event, reason="shutdown")
        _live.discard(self)
        return flushed and not leftovers

    def _close_spool(self, spool: Spool, leftovers: list[_Item], quiet: bool) -> int | None:
        """Persist what the writer had not written yet and report what the file keeps.

        Returns the number of rows of this routing key left in the file (``None`` when
        the file failed and the leftovers were lost).
        """
        try:
            if leftovers:
                result = spool.put(
                    [(item.event, item.occurrences) for item in leftovers],
                    max_rows=self.max_queue,
                )
                self._account(result.dropped, result.coalesced)
                self._unencodable(result.unencodable)
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
            inflight = 0 if spool is not None else self._inflight
            return DispatchStats(
                queued=len(self._pending) + self._writing + inflight + in_file,
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

    # -- the worker's side ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._idle.notify_all()
                    self._wake.wait()
                if self._closed:
                    self._idle.notify_all()
                    return
                seq = next(iter(self._pending))
                item = self._pending.pop(seq)
                if self._mergeable.get(item.event.dedup_key or "") == seq:
                    del self._mergeable[item.event.dedup_key or ""]
                self._inflight += 1
            self._deliver_and_settle(item)

    def _deliver_and_settle(self, item: _Item) -> None:
        try:
            self._deliver(item)
        except Exception:
            _log.exception("unexpected error while delivering a PagerDuty event")
        finally:
            with self._lock:
                self._inflight -= 1
                if not self._busy():
                    self._idle.notify_all()

    # -- the spool's side ---------------------------------------------------------------

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
                while not self._pending and not self._closed and self._spool is spool:
                    self._wake.wait()
                if self._closed or self._spool is not spool:
                    return  # close() persists what is left; a failure re-queued it in memory
                batch = list(self._pending.values())
                self._pending.clear()
                self._mergeable.clear()
                self._writing = len(batch)
            try:
                result = spool.put(
                    [(item.event, item.occurrences) for item in batch], max_rows=self.max_queue
                )
            except SpoolError as error:
                self._spool_failed(spool, error, batch)
                return
            with self._lock:
                self._writing = 0
                self._written += 1
                self._drained = False
                self._spooled.notify_all()
            self._account(result.dropped, result.coalesced)
            self._unencodable(result.unencodable)

    def _account(self, dropped: list[Event], coalesced: list[tuple[Event, int]]) -> None:
        with self._lock:
            self._dropped += len(dropped)
            self._coalesced += len(coalesced)
        for event in dropped:
            self._report_drop(_Item(event, 0.0), "queue-full")
        for event, occurrences in coalesced:
            signals.emit(signals.event_coalesced, self, event=event, occurrences=occurrences)

    def _unencodable(self, events: list[tuple[Event, PagerDutyError]]) -> None:
        for event, error in events:
            with self._lock:
                self._failed += 1
            _log.error("PagerDuty %s event not delivered: %s", event.action, error)
            signals.emit(signals.event_failed, self, event=event, error=error)

    def _send_spooled(self, spool: Spool) -> None:
        """The sender thread: claim rows, deliver them, settle them in the file."""
        while True:
            with self._lock:
                if self._closed or self._spool is not spool:
                    self._idle.notify_all()
                    return
                written = self._written
            try:
                claimed = spool.claim()
            except SpoolError as error:
                self._spool_failed(spool, error, [])
                return
            if claimed is None:
                try:
                    # Rows other processes hold count too: one of them may have died
                    # holding a claim, which this process takes over once it runs out.
                    empty = spool.pending_count() == 0
                except SpoolError as error:
                    self._spool_failed(spool, error, [])
                    return
                with self._lock:
                    if self._written == written:
                        if empty and not self._pending and not self._writing:
                            self._drained = True
                            self._idle.notify_all()
                        if not self._closed:
                            # Woken by the writer; the timeout finds rows that other
                            # processes wrote or abandoned.
                            self._spooled.wait(SPOOL_POLL_SECONDS)
                continue
            with self._lock:
                self._inflight += 1
                self._drained = False
            self._deliver_and_settle(
                _Item(claimed.event, claimed.enqueued_at, claimed.occurrences, claimed)
            )

    def _spool_failed(self, spool: Spool, error: SpoolError, unsent: list[_Item]) -> None:
        """Warn once and carry on in memory with what had not reached the file."""
        with self._lock:
            if self._spool is not spool or self._closed:
                return  # already handled, or close() closed the file under a thread
            self._spool = None
            self._writing = 0
            self._drained = True
            if unsent:
                # Ahead of what arrived meanwhile: they were submitted first.
                rest = list(self._pending.values())
                self._pending.clear()
                self._mergeable.clear()
                for item in [*unsent, *rest]:
                    self._seq += 1
                    self._pending[self._seq] = item
                    key = item.event.dedup_key
                    if key is not None and isinstance(item.event, TriggerEvent):
                        self._mergeable[key] = self._seq
                    elif key is not None:
                        self._mergeable.pop(key, None)
            self._worker = None  # the writer is exiting; a memory worker takes over
            self._wake.notify_all()
            self._spooled.notify_all()
            if not self._closed:
                self._ensure_worker()
            if not self._busy():
                self._idle.notify_all()
        _log.warning(
            "%s; PagerDuty events are now kept in memory only. Events already in the file "
            "stay there for the next process that can open it.",
            error,
        )

    def _settle(self, item: _Item, action: str, **kw: str) -> None:
        """Record in the spool what became of a spooled event."""
        spooled = item.spooled
        spool = self._spool
        if spooled is None or spool is None:
            return
        try:
            if action == "complete":
                done = spool.complete(spooled)
            elif action == "fail":
                done = spool.fail(spooled, reason=kw["reason"], error=kw["error"])
            else:
                done = spool.release(spooled)
        except SpoolError as error:
            _log.warning("%s; the event may be sent again by the next process", error)
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

    def _deliver(self, item: _Item) -> None:
        event = item.event
        if item.occurrences > 1 and isinstance(event, TriggerEvent):
            event = with_occurrences(event, item.occurrences)
        attempt = 0
        while True:
            if not self._wait_for_budget(item):
                self._give_back(item)
                return
            if not self._still_ours(item):
                _log.warning(
                    "another process took over a spooled PagerDuty %s event; not sending it",
                    event.action,
                )
                return
            try:
                response = self.client.send_once(event)
            except InvalidEventError as error:
                self._finish_failed(item, event, error, "rejected")
                return
            except DeliveryError as error:
                attempt += 1
                if item.age() >= self.give_up_after:
                    self._finish_failed(item, event, error, "expired")
                    return
                with self._lock:
                    self._retried += 1
                signals.emit(signals.event_retried, self, event=event, error=error)
                delay = self.client.retry.backoff(
                    attempt, rate_limited=isinstance(error, RateLimitedError), rng=self._rng
                )
                if not self._sleep(delay, item):
                    self._give_back(item)
                    return
            except PagerDutyError as error:
                if self.client.closed and item.spooled is not None:
                    self._give_back(item)  # shutting down: the next process sends it
                    return
                self._finish_failed(item, event, error, "refused")
                return
            else:
                self._settle(item, "complete")
                with self._lock:
                    self._sent += 1
                signals.emit(signals.event_sent, self, event=event, response=response)
                return

    def _finish_failed(self, item: _Item, event: Event, error: PagerDutyError, reason: str) -> None:
        self._settle(item, "fail", reason=reason, error=str(error))
        with self._lock:
            self._failed += 1
        _log.error("PagerDuty %s event not delivered: %s", event.action, error)
        signals.emit(signals.event_failed, self, event=event, error=error)

    def _give_back(self, item: _Item) -> None:
        """Closing interrupted a retry: drop the event, or leave it in the spool."""
        if item.spooled is not None:
            self._settle(item, "release")
            return
        with self._lock:
            self._dropped += 1
        self._report_drop(item, "shutdown")

    def _wait_for_budget(self, item: _Item) -> bool:
        while self._budget is not None and not client_module._capture_sinks:
            delay = self._budget.try_acquire()
            if delay <= 0:
                return True
            # Re-check at least every second: the budget may be shared or reset meanwhile.
            if not self._sleep(min(delay, BUDGET_RECHECK_SECONDS), item):
                return False
        return not self._closed

    def _sleep(self, seconds: float, item: _Item) -> bool:
        """Sleep unless closed meanwhile; ``False`` means stop.

        A spooled event's claim is renewed along the way, so a long backoff does not let
        another process take over an event that is still being retried here.
        """
        deadline = time.monotonic() + seconds
        spool = self._spool
        step = seconds if item.spooled is None or spool is None else spool.lease / 3
        while True:
            with self._lock:
                remaining = deadline - time.monotonic()
                if not self._closed and remaining > 0:
                    self._stopping.wait(min(remaining, step))
                if self._closed:
                    return False
                if deadline - time.monotonic() <= 0:
                    return True
            self._still_ours(item)

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
