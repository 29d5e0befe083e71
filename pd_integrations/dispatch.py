"""Background delivery: the request path hands events over here and never waits.

One :class:`Dispatcher` owns a bounded queue and one daemon worker thread. ``submit``
takes a lock for a few dictionary operations and returns; the worker sends events in
order, within the routing key's rate budget, retrying what PagerDuty's policy says to
retry. Pending triggers with the same dedup key are merged (the latest payload wins and
the number of occurrences is reported), so an error storm becomes one event.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import client as client_module
from . import signals
from .errors import DeliveryError, InvalidEventError, PagerDutyError, RateLimitedError
from .events import Event, TriggerEvent, new_dedup_key
from .ratelimit import DEFAULT_PER_MINUTE, RateBudget, shared_budget

if TYPE_CHECKING:
    from .client import EventsClient

_log = logging.getLogger("pd_integrations.dispatch")

DEFAULT_MAX_QUEUE = 1000
DEFAULT_GIVE_UP_AFTER = 900.0
DEFAULT_EXIT_FLUSH_TIMEOUT = 2.0
OCCURRENCES_KEY = "occurrences"
BUDGET_RECHECK_SECONDS = 1.0


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
    enqueued_at: float
    occurrences: int = 1


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


class Dispatcher:
    """Delivers events in the background through an :class:`~pd_integrations.EventsClient`.

    ``rate_limit`` is events per minute for the client's routing key (``None`` turns the
    budget off); ``give_up_after`` bounds, in seconds, how long one event is retried.
    """

    def __init__(
        self,
        client: EventsClient,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        rate_limit: int | None = DEFAULT_PER_MINUTE,
        give_up_after: float = DEFAULT_GIVE_UP_AFTER,
        exit_flush_timeout: float = DEFAULT_EXIT_FLUSH_TIMEOUT,
        budget: RateBudget | None = None,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.client = client
        self.max_queue = max_queue
        self.give_up_after = give_up_after
        self.exit_flush_timeout = exit_flush_timeout
        if budget is None and rate_limit is not None:
            budget = shared_budget(client.routing_key, rate_limit)
        self._budget = budget
        self._rng = random.Random()
        self._init_state()
        _live.add(self)

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
        self._inflight = False
        self._closed = False
        self._worker: threading.Thread | None = None
        self._pid = os.getpid()
        self._sent = self._retried = self._failed = self._dropped = self._coalesced = 0

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
        _log.warning(
            "dropped a PagerDuty %s event (%s); %d dropped so far",
            item.event.action,
            reason,
            self._dropped,
        )
        signals.emit(signals.event_dropped, self, event=item.event, reason=reason)

    def _ensure_worker(self) -> None:
        if self._pid != os.getpid():
            return  # _after_fork resets us; nothing to do in a half-forked state
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(
                target=self._run, name="pd_integrations-dispatch", daemon=True
            )
            self._worker.start()

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until everything queued has been delivered or given up; ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._pending or self._inflight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    def close(self, timeout: float | None = 5.0) -> bool:
        """Flush for up to ``timeout`` seconds, then stop; what is left is dropped and reported."""
        flushed = self.flush(timeout)
        with self._lock:
            self._closed = True
            leftovers = list(self._pending.values())
            self._pending.clear()
            self._mergeable.clear()
            self._dropped += len(leftovers)
            self._wake.notify_all()
            self._stopping.notify_all()
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

    def stats(self) -> DispatchStats:
        with self._lock:
            return DispatchStats(
                queued=len(self._pending) + int(self._inflight),
                sent=self._sent,
                retried=self._retried,
                failed=self._failed,
                dropped=self._dropped,
                coalesced=self._coalesced,
            )

    @property
    def closed(self) -> bool:
        return self._closed

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
                self._inflight = True
            try:
                self._deliver(item)
            except Exception:
                _log.exception("unexpected error while delivering a PagerDuty event")
            finally:
                with self._lock:
                    self._inflight = False
                    if not self._pending:
                        self._idle.notify_all()

    def _deliver(self, item: _Item) -> None:
        event = item.event
        if item.occurrences > 1 and isinstance(event, TriggerEvent):
            event = with_occurrences(event, item.occurrences)
        attempt = 0
        while True:
            if not self._wait_for_budget():
                self._give_back(item)
                return
            try:
                response = self.client.send_once(event)
            except InvalidEventError as error:
                self._finish_failed(event, error)
                return
            except DeliveryError as error:
                attempt += 1
                if time.monotonic() - item.enqueued_at >= self.give_up_after:
                    self._finish_failed(event, error)
                    return
                with self._lock:
                    self._retried += 1
                signals.emit(signals.event_retried, self, event=event, error=error)
                delay = self.client.retry.backoff(
                    attempt, rate_limited=isinstance(error, RateLimitedError), rng=self._rng
                )
                if not self._sleep(delay):
                    self._give_back(item)
                    return
            except PagerDutyError as error:
                self._finish_failed(event, error)
                return
            else:
                with self._lock:
                    self._sent += 1
                signals.emit(signals.event_sent, self, event=event, response=response)
                return

    def _finish_failed(self, event: Event, error: PagerDutyError) -> None:
        with self._lock:
            self._failed += 1
        _log.error("PagerDuty %s event not delivered: %s", event.action, error)
        signals.emit(signals.event_failed, self, event=event, error=error)

    def _give_back(self, item: _Item) -> None:
        """Closing interrupted a retry: count the event as dropped at shutdown."""
        with self._lock:
            self._dropped += 1
        self._report_drop(item, "shutdown")

    def _wait_for_budget(self) -> bool:
        while self._budget is not None and not client_module._capture_sinks:
            delay = self._budget.try_acquire()
            if delay <= 0:
                return True
            # Re-check at least every second: the budget may be shared or reset meanwhile.
            if not self._sleep(min(delay, BUDGET_RECHECK_SECONDS)):
                return False
        return not self._closed

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless closed meanwhile; ``False`` means stop."""
        with self._lock:
            if not self._closed:
                self._stopping.wait(seconds)
            return not self._closed

    def _after_fork(self) -> None:
        # The parent still owns (and will deliver) what was queued before the fork.
        budget, client = self._budget, self.client
        self._init_state()
        self._budget, self.client = budget, client


_live: weakref.WeakSet[Dispatcher] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for dispatcher in list(_live):
        dispatcher._after_fork()


def _flush_at_exit() -> None:
    for dispatcher in list(_live):
        if not dispatcher.closed:
            dispatcher.close(dispatcher.exit_flush_timeout)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_flush_at_exit)
