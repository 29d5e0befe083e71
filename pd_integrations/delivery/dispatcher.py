"""Background delivery: the request path hands events over here and never waits.

``submit`` encodes the event in the caller's thread (so a slow or hostile object costs
its own caller, never the sender, and the payload is frozen), then takes a lock for a
few dictionary operations and returns. One daemon sender thread delivers what is ready,
in the order :mod:`pd_integrations.delivery.schedule` decides: an event waiting for its retry
never holds up another, a dedup key's events stay in order, the most important ready
event goes first when the routing key's rate budget is scarce, a 429 pauses the key
and repeated connection failures open a short circuit. Pending triggers with the same
dedup key are merged (the latest payload wins and the number of occurrences is
reported), so an error storm becomes one event. Whatever goes wrong with one event
(it cannot be encoded, PagerDuty refuses it, sending it raises) ends that event as
failed: logged, counted and signalled, never silent.

With a spool (:mod:`pd_integrations.delivery.spool`), the queue lives in an SQLite file instead:
``submit`` still only touches memory, a writer thread moves what was submitted into the
file (in batches, so a storm costs one transaction per batch), and the sender claims the
most important due row from the file, sends it and deletes it once PagerDuty has
accepted it; a failed attempt goes back to the file with its next-attempt time.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pd_integrations import signals
from pd_integrations.client import OCCURRENCES_KEY as OCCURRENCES_KEY
from pd_integrations.client import PreparedEvent
from pd_integrations.delivery import lifecycle
from pd_integrations.environment import DEFAULT_EXIT_FLUSH_TIMEOUT as DEFAULT_EXIT_FLUSH_TIMEOUT
from pd_integrations.environment import FLUSH_TIMEOUT_VAR as FLUSH_TIMEOUT_VAR
from pd_integrations.environment import SPOOL_VAR as SPOOL_VAR
from pd_integrations.environment import resolve_flush_timeout as resolve_flush_timeout
from pd_integrations.environment import resolve_spool_path as resolve_spool_path
from pd_integrations.errors import (
    DeliveryError,
    InvalidEventError,
    PagerDutyError,
    RateLimitedError,
)
from pd_integrations.events import Event, TriggerEvent, mask_key, new_dedup_key

from .droplog import DROP_LOG_INTERVAL as DROP_LOG_INTERVAL
from .droplog import DropLog as DropLog
from .memory import BUDGET_RECHECK_SECONDS as BUDGET_RECHECK_SECONDS
from .memory import MemoryQueue
from .pending import Pending
from .ratelimit import DEFAULT_PER_MINUTE, RateBudget, shared_budget
from .schedule import CIRCUIT_MAX_PAUSE, CIRCUIT_THRESHOLD, Schedule, Slot
from .spool import Spool, SpoolError, open_spool
from .spooled import SPOOL_POLL_SECONDS as SPOOL_POLL_SECONDS
from .spooled import SpoolQueue

if TYPE_CHECKING:
    from pd_integrations.client import EventsClient

_log = logging.getLogger("pd_integrations.dispatch")

DEFAULT_MAX_QUEUE = 1000
DEFAULT_GIVE_UP_AFTER = 900.0


DEFAULT_STALL_AFTER = 300.0
"""Seconds events may wait with nothing delivered before delivery counts as failing."""


@dataclass(frozen=True, slots=True)
class DeliveryHealth:
    """Whether a routing key's events reach PagerDuty (see :meth:`Dispatcher.health`)."""

    routing_key: str  # masked
    queued: int
    oldest_queued_seconds: float | None
    sent: int
    failed: int
    rejected: int  # refused with a 4xx: never retried, lost
    dropped: int
    last_sent_seconds_ago: float | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


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
    :param handle_sigterm: install the SIGTERM flush of :mod:`pd_integrations.delivery.lifecycle`
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
        self._spool_to_open: Spool | None = None
        if path is not None:
            self._spool_to_open = open_spool(
                path,
                routing_key=client.routing_key,
                scrubber=client.scrubber,
                lease=spool_lease if spool_lease is not None else default_lease(client),
            )
        self._init_state()
        _live.add(self)
        if handle_sigterm:
            lifecycle.install()
        if isinstance(self._queue, SpoolQueue):
            self._queue.resume()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        # Notified when something may have become sendable (a submission, a settled event).
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        # Waits for the budget or a backoff use their own condition: a submission must
        # not cut them short, only close() does.
        self._stopping = threading.Condition(self._lock)
        # The memory queue's queue itself; what a spool queue's writer moves to the file.
        self._schedule: Schedule[Pending] = Schedule()
        # dedup key -> slot of the pending trigger a new one may merge into.
        self._mergeable: dict[str, int] = {}
        self._closed = False
        self._pid = os.getpid()
        self._sent = self._retried = self._failed = self._dropped = self._coalesced = 0
        # For health(): when PagerDuty last accepted an event, and what refused one since.
        self._last_sent: float | None = None
        self._rejected = 0
        self._rejected_since_sent: str | None = None
        spool = getattr(self, "_spool_to_open", None)
        self._queue: MemoryQueue | SpoolQueue = (
            MemoryQueue(self) if spool is None else SpoolQueue(self, spool)
        )

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
        self._failed_for_good(event, failure)

    def _submit(self, prepared: PreparedEvent) -> bool:
        event = prepared.event
        dropped: Pending | None = None
        occurrences = 0
        with self._lock:
            if self._closed:
                self._dropped += 1
                dropped = Pending(prepared, 0.0)
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
                        self._enqueue(Pending(prepared, time.monotonic()), rank)
                    if self._pid == os.getpid():  # else _after_fork is about to reset us
                        self._queue.start()
                self._wake.notify()
        if dropped is not None:
            self._report_drop(dropped, reason)
            return dropped.prepared is not prepared
        if occurrences:
            signals.emit(signals.event_coalesced, self, event=event, occurrences=occurrences)
        return True

    def _enqueue(self, item: Pending, rank: int) -> None:
        """Add ``item`` to the schedule; under the lock."""
        key = item.event.dedup_key
        slot = self._schedule.add(item, key, rank)
        if key is not None:
            if isinstance(item.event, TriggerEvent):
                self._mergeable[key] = slot.seq
            else:
                # A later trigger must not jump back over this acknowledge/resolve.
                self._mergeable.pop(key, None)

    def _forget(self, slot: Slot[Pending]) -> None:
        """Take ``slot`` out of the schedule; under the lock."""
        self._schedule.remove(slot.seq)
        key = slot.dedup_key
        if key is not None and self._mergeable.get(key) == slot.seq:
            del self._mergeable[key]

    def _make_room(self, incoming: PreparedEvent, rank: int) -> Pending:
        """Drop the least important item: the incoming one unless something ranks lower."""
        victim = self._schedule.lowest()
        self._dropped += 1
        if victim is None or victim.rank >= rank:
            return Pending(incoming, 0.0)
        self._forget(victim)
        return victim.item

    def _report_drop(self, item: Pending, reason: str) -> None:
        # A full queue during an outage drops thousands of events a second: the log gets
        # a summary now and then, the signal (and the count in stats) every one of them.
        self._drop_log.dropped(item.event.action, reason, self._dropped)
        signals.emit(signals.event_dropped, self, event=item.event, reason=reason)

    def _busy(self) -> bool:
        """Whether anything this process could still send is pending; under the lock."""
        return self._queue.busy()

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
            queue = self._queue
            # An event in flight is the sender's to settle; everything else is left over.
            leftovers = [slot for slot in self._schedule if not slot.in_flight]
            for slot in leftovers:
                self._forget(slot)
            quiet = not self._schedule.in_flight
            self._wake.notify_all()
            self._stopping.notify_all()
            if isinstance(queue, SpoolQueue):
                queue.wake()
        undelivered = queue.close(leftovers, quiet)
        self._drop_log.flush(self._dropped)
        _live.discard(self)
        return flushed and not undelivered

    def stats(self) -> DispatchStats:
        """Counts so far; with a spool, ``queued`` counts the routing key's rows in the file."""
        elsewhere = self._queue.queued()
        with self._lock:
            return DispatchStats(
                queued=len(self._schedule) + elsewhere,
                sent=self._sent,
                retried=self._retried,
                failed=self._failed,
                dropped=self._dropped,
                coalesced=self._coalesced,
            )

    def health(self, stall_after: float = DEFAULT_STALL_AFTER) -> DeliveryHealth:
        """Whether events of this routing key are reaching PagerDuty, and what is wrong if not.

        A problem is either a refusal (PagerDuty answered 4xx, as it does for a revoked
        routing key) with no event accepted since, or events waiting for longer than
        ``stall_after`` seconds while nothing was accepted for as long.
        """
        spool = self._queue.spool
        now = time.monotonic()
        file_age: float | None = None
        if spool is not None:
            try:
                file_age = spool.oldest_age()
            except SpoolError:
                file_age = None
        with self._lock:
            ages = [now - slot.item.enqueued_at for slot in self._schedule]
            last_sent, refused = self._last_sent, self._rejected_since_sent
            rejected = self._rejected
            counts = (self._sent, self._failed, self._dropped)
        queued = self.stats().queued
        oldest = max([*ages, *([file_age] if file_age is not None else [])], default=None)
        since_sent = None if last_sent is None else now - last_sent
        problem = None
        if refused is not None:
            problem = f"PagerDuty refuses events for this routing key: {refused}"
        elif (
            oldest is not None
            and oldest >= stall_after
            and (since_sent is None or since_sent >= stall_after)
        ):
            problem = f"nothing delivered for {oldest:.0f} s while {queued} event(s) wait"
        return DeliveryHealth(
            routing_key=mask_key(self.client.routing_key),
            queued=queued,
            oldest_queued_seconds=oldest,
            sent=counts[0],
            failed=counts[1],
            rejected=rejected,
            dropped=counts[2],
            last_sent_seconds_ago=since_sent,
            problem=problem,
        )

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def spool(self) -> Spool | None:
        """The spool in use; ``None`` without one, or after it failed (see the log)."""
        return self._queue.spool

    def _fall_back_to_memory(self, failed: object, unsent: list[Slot[Pending]]) -> bool:
        """The spool failed: carry on in memory, its unsent batch first; under the lock.

        ``False`` if that already happened or the dispatcher is closing.
        """
        if self._queue is not failed or self._closed:
            return False
        # Ahead of what arrived meanwhile: they were submitted first.
        rest = self._schedule.drain()
        self._mergeable.clear()
        for slot in [*unsent, *rest]:
            self._enqueue(slot.item, slot.rank)
        self._queue = MemoryQueue(self)
        self._wake.notify_all()
        self._stopping.notify_all()
        self._queue.start()
        if not self._busy():
            self._idle.notify_all()
        return True

    def _budget_delay(self) -> float:
        if self._budget is None:
            return 0.0
        return self._budget.try_acquire()

    # -- one attempt, shared by both queues ----------------------------------------------

    def _attempt(self, item: Pending, attempt: int) -> float | None:
        """Make one attempt at ``item``; the seconds until its retry, or ``None`` if settled.

        Settled means delivered, failed (refused, expired, or any unexpected error) or
        handed back to the spool; every outcome is counted and signalled here.
        """
        event = item.event
        queue = self._queue
        if not queue.still_ours(item):
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
            with self._lock:
                self._rejected += 1
                self._rejected_since_sent = str(error)
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
                queue.settle(item, "release")  # shutting down: the next process sends it
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
            self._last_sent = time.monotonic()
            self._rejected_since_sent = None
        queue.settle(item, "complete")
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

    def _finish_failed(
        self, item: Pending, event: Event, error: PagerDutyError, reason: str
    ) -> None:
        self._queue.settle(item, "fail", reason=reason, error=str(error))
        self._failed_for_good(event, error)

    def _failed_for_good(self, event: Event, error: PagerDutyError) -> None:
        """Count, log and signal an event that will never be sent: never silent."""
        with self._lock:
            self._failed += 1
        _log.error(
            "PagerDuty %s event (dedup key %s) not delivered: %s",
            event.action,
            event.dedup_key,
            error,
        )
        signals.emit(signals.event_failed, self, event=event, error=error)

    def _give_back(self, item: Pending) -> None:
        """Closing interrupted a retry: drop the event, or leave it in the spool."""
        if item.spooled is not None:
            self._queue.settle(item, "release")
            return
        with self._lock:
            self._dropped += 1
        self._report_drop(item, "shutdown")

    def _after_fork(self) -> None:
        # The parent still owns (and will deliver) what was queued before the fork; the
        # child shares the spool file, with a connection and an owner id of its own.
        spool = self._queue.spool
        self._spool_to_open = spool
        self._init_state()
        # Its lock may have been held by another thread at the fork.
        self._drop_log = DropLog(self._drop_log.interval)


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


lifecycle.after_fork_in_child(_after_fork_in_child)
lifecycle.register(_flush_at_exit, _exit_budget)
