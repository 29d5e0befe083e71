"""Which pending event goes out next: a sans-IO delivery schedule.

The dispatcher's sender asks :meth:`Schedule.next_ready` for an event, attempts it and
reports back. The rules, each there so that no single event can hold the others up:

- an event waiting for its retry is parked until its next-attempt time; everything
  else stays sendable meanwhile;
- a dedup key's events go out in the order they were submitted: a key's later event
  waits for its earlier one (in flight or backing off), and nothing else waits for it;
- among the ready events, the most important goes first (critical, error, warning,
  info; an acknowledge or resolve ranks with its alert), the oldest within a rank;
- a 429 pauses the whole routing key (PagerDuty's limit is per key), and repeated
  connection failures open a circuit: one probe at a time, with a growing pause,
  until the endpoint answers again.

Nothing here blocks, sleeps or reads a clock: times are passed in, so the rules are
tested without threads. Not thread-safe: the dispatcher calls it under its lock.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["CIRCUIT_MAX_PAUSE", "CIRCUIT_THRESHOLD", "Circuit", "Schedule", "Slot"]

# Consecutive attempts that found the endpoint down (no HTTP answer, or a 5xx) before the
# circuit opens.
CIRCUIT_THRESHOLD = 3
# The longest wait between two probes while it is open: short, so that the first page
# after an outage goes out within a second of PagerDuty answering again, and long enough
# that an outage spends at most 60 of the key's 120 sends a minute on probes.
CIRCUIT_MAX_PAUSE = 1.0
# How many dedup keys remember the severity of their trigger, so that an acknowledge or
# resolve ranks with its alert; the oldest are forgotten first.
KNOWN_RANKS = 2048

T = TypeVar("T")


@dataclass(slots=True)
class Slot(Generic[T]):
    """One pending event and its place in the schedule."""

    seq: int
    item: T
    dedup_key: str | None
    rank: int
    ready_at: float = 0.0
    attempts: int = 0
    in_flight: bool = False


@dataclass(slots=True)
class Circuit:
    """Pauses for the whole endpoint: after a 429, and while it keeps failing (down)."""

    paused_until: float = 0.0
    failures: int = 0
    rate_limited: int = 0

    def blocked_for(self, now: float) -> float:
        return max(0.0, self.paused_until - now)

    def pause(self, until: float) -> None:
        self.paused_until = max(self.paused_until, until)

    def answered(self) -> None:
        """The endpoint answered something other than a 5xx: it is up."""
        self.failures = 0

    def accepted(self) -> None:
        self.failures = 0
        self.rate_limited = 0


@dataclass(slots=True)
class Schedule(Generic[T]):
    """The pending events of one routing key, with the rules of the module docstring."""

    _slots: dict[int, Slot[T]] = field(default_factory=dict)
    # Per dedup key, the sequence numbers of its events in submission order; the first
    # is the only one that may be sent (or be in flight).
    _chains: dict[str, deque[int]] = field(default_factory=dict)
    # Heads whose time has come, by (-rank, seq); heads still backing off by (ready_at, seq).
    # Both are pruned lazily: an entry whose slot is gone or moved is skipped.
    _ready: list[tuple[int, int]] = field(default_factory=list)
    _waiting: list[tuple[float, int]] = field(default_factory=list)
    _ranks: OrderedDict[str, int] = field(default_factory=OrderedDict)
    _seq: int = 0
    _in_flight: int = 0
    circuit: Circuit = field(default_factory=Circuit)

    def __len__(self) -> int:
        return len(self._slots)

    def __iter__(self) -> Iterator[Slot[T]]:
        return iter(list(self._slots.values()))

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Slots not in flight: what counts against a queue's bound."""
        return len(self._slots) - self._in_flight

    def rank_of(self, dedup_key: str | None, own_rank: int, *, is_trigger: bool) -> int:
        """The rank an event is scheduled with: a trigger's own, else its alert's if known."""
        if dedup_key is None:
            return own_rank
        if is_trigger:
            self._ranks[dedup_key] = own_rank
            self._ranks.move_to_end(dedup_key)
            if len(self._ranks) > KNOWN_RANKS:
                self._ranks.popitem(last=False)
            return own_rank
        return self._ranks.get(dedup_key, own_rank)

    def add(self, item: T, dedup_key: str | None, rank: int, ready_at: float = 0.0) -> Slot[T]:
        self._seq += 1
        slot = Slot(self._seq, item, dedup_key, rank, ready_at)
        self._slots[slot.seq] = slot
        if dedup_key is not None:
            chain = self._chains.setdefault(dedup_key, deque())
            chain.append(slot.seq)
            if len(chain) > 1:
                return slot  # waits for the key's earlier events
        self._park(slot)
        return slot

    def get(self, seq: int) -> Slot[T] | None:
        return self._slots.get(seq)

    def remove(self, seq: int) -> Slot[T] | None:
        """Take a slot out (delivered, failed, dropped); its key's next event may go."""
        slot = self._slots.pop(seq, None)
        if slot is None:
            return None
        if slot.in_flight:
            self._in_flight -= 1
        key = slot.dedup_key
        if key is not None:
            chain = self._chains[key]
            was_head = chain[0] == seq
            chain.remove(seq)
            if not chain:
                del self._chains[key]
            elif was_head:
                self._park(self._slots[chain[0]])
        return slot

    def retry_at(self, seq: int, when: float) -> None:
        """An attempt failed: park the slot until ``when``; others go meanwhile."""
        slot = self._slots[seq]
        if slot.in_flight:
            self._in_flight -= 1
        slot.in_flight = False
        slot.ready_at = when
        self._park(slot)

    def lowest(self) -> Slot[T] | None:
        """The least important slot not in flight: the lowest rank, the oldest within it."""
        candidates = [s for s in self._slots.values() if not s.in_flight]
        if not candidates:
            return None
        return min(candidates, key=lambda s: (s.rank, s.seq))

    def drain(self) -> list[Slot[T]]:
        """Take out every slot not in flight, in submission order (a spool's writer)."""
        taken = [slot for slot in self._slots.values() if not slot.in_flight]
        for slot in taken:
            self.remove(slot.seq)
        return taken

    def next_ready(self, now: float, *, take: bool = True) -> Slot[T] | float | None:
        """The slot to send now (marked in flight), else seconds until one may be ready.

        ``None`` when nothing could be sent without something new arriving (empty, or
        only events in flight and those waiting for them). With ``take=False`` the slot
        is only looked at, not marked.
        """
        blocked = self.circuit.blocked_for(now)
        while self._waiting and self._waiting[0][0] <= now:
            _, seq = heapq.heappop(self._waiting)
            slot = self._slots.get(seq)
            if slot is not None and not slot.in_flight and slot.ready_at <= now:
                heapq.heappush(self._ready, (-slot.rank, seq))
        while self._ready:
            negative_rank, seq = self._ready[0]
            slot = self._slots.get(seq)
            if slot is None or slot.in_flight or -negative_rank != slot.rank or slot.ready_at > now:
                heapq.heappop(self._ready)  # stale: gone, moved or re-ranked
                continue
            if blocked > 0:
                return blocked
            if not take:
                return slot
            heapq.heappop(self._ready)
            slot.in_flight = True
            self._in_flight += 1
            slot.attempts += 1
            return slot
        while self._waiting:
            ready_at, seq = self._waiting[0]
            slot = self._slots.get(seq)
            if slot is None or slot.in_flight or slot.ready_at != ready_at:
                heapq.heappop(self._waiting)
                continue
            return max(ready_at - now, blocked)
        return None

    def rerank(self, seq: int, rank: int) -> None:
        """A merged trigger brought a new severity: schedule the slot with it."""
        slot = self._slots[seq]
        if slot.rank == rank:
            return
        slot.rank = rank
        if not slot.in_flight and self._is_head(slot):
            self._park(slot)

    def _is_head(self, slot: Slot[T]) -> bool:
        return slot.dedup_key is None or self._chains[slot.dedup_key][0] == slot.seq

    def _park(self, slot: Slot[T]) -> None:
        if slot.ready_at > 0:
            heapq.heappush(self._waiting, (slot.ready_at, slot.seq))
        else:
            heapq.heappush(self._ready, (-slot.rank, slot.seq))
        if len(self._ready) + len(self._waiting) > 2 * len(self._slots) + 64:
            self._compact()

    def _compact(self) -> None:
        """Rebuild both heaps from the live heads: dropped slots must not pile up in them."""
        heads = [
            slot for slot in self._slots.values() if not slot.in_flight and self._is_head(slot)
        ]
        self._ready = [(-s.rank, s.seq) for s in heads if s.ready_at <= 0]
        self._waiting = [(s.ready_at, s.seq) for s in heads if s.ready_at > 0]
        heapq.heapify(self._ready)
        heapq.heapify(self._waiting)
