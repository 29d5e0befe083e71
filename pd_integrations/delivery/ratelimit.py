"""Client-side rate budget, so a storm queues and coalesces instead of drawing 429s.

PagerDuty accepts about 120 events per minute per integration key over a sliding
60-second window. Every dispatcher in the process that sends with the same key shares
one :class:`RateBudget`, so two managers on one key cannot spend it twice. With shared
state (:mod:`pd_integrations.state.base`) a :class:`SharedRateBudget` extends that to every
process and host using the key; it falls back to this process's own window while the
shared store is unavailable.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from . import lifecycle

WINDOW_SECONDS = 60.0
DEFAULT_PER_MINUTE = 120


class RateBudget:
    """A sliding-window budget: at most ``per_minute`` sends in any 60 seconds."""

    def __init__(
        self, per_minute: int = DEFAULT_PER_MINUTE, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute < 1:
            raise ValueError("a rate budget needs at least one event per minute")
        self.per_minute = per_minute
        self._clock = clock
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def try_acquire(self) -> float:
        """Spend one send if the window allows it and return 0; else return the wait in seconds."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            if len(self._sent) < self.per_minute:
                self._sent.append(now)
                return 0.0
            return WINDOW_SECONDS - (now - self._sent[0])

    def _expire(self, now: float) -> None:
        while self._sent and now - self._sent[0] >= WINDOW_SECONDS:
            self._sent.popleft()

    def reset(self) -> None:
        with self._lock:
            self._sent.clear()


class SharedWindow(Protocol):
    """A sliding window kept outside the process (see ``pd_integrations.state.redis``)."""

    def acquire(self, per_minute: int) -> float | None:
        """Spend one send: 0 when granted, else seconds to wait; ``None`` when unavailable."""

    def reset_window(self) -> None:
        """Forget every send in the window."""


class SharedRateBudget(RateBudget):
    """A :class:`RateBudget` spent in a :class:`SharedWindow`, with a local fallback.

    Sends granted by the shared window are also noted locally, so when the shared store
    fails the local window starts from what this process really sent.
    """

    def __init__(
        self,
        window: SharedWindow,
        per_minute: int = DEFAULT_PER_MINUTE,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(per_minute, clock=clock)
        self.window = window

    def try_acquire(self) -> float:
        wait = self.window.acquire(self.per_minute)
        if wait is None:
            return super().try_acquire()
        if wait <= 0:
            super().try_acquire()  # noted locally when it has room; the grant stands either way
            return 0.0
        return wait

    def reset(self) -> None:
        self.window.reset_window()
        super().reset()


_shared: dict[tuple[str, int], RateBudget] = {}
# Weak: a budget lives as long as the shared state (and its connections) it spends in.
_windowed: weakref.WeakKeyDictionary[Any, dict[int, SharedRateBudget]] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


def shared_budget(
    routing_key: str, per_minute: int, window: SharedWindow | None = None
) -> RateBudget:
    """The budget for ``routing_key`` (one per key and limit).

    Without ``window`` it is process-wide. With the shared window of a routing key's
    state (``state.rate_budget()`` passes it) it is the budget of every process using
    that state.
    """
    with _shared_lock:
        if window is not None:
            budgets = _windowed.setdefault(window, {})
            shared = budgets.get(per_minute)
            if shared is None:
                shared = budgets[per_minute] = SharedRateBudget(window, per_minute)
            return shared
        budget = _shared.get((routing_key, per_minute))
        if budget is None:
            budget = _shared[(routing_key, per_minute)] = RateBudget(per_minute)
        return budget


def _reset_after_fork() -> None:
    global _shared_lock
    # A child inherits the parent's window but not its future sends; start clean and
    # replace the lock in case the fork happened while another thread held it.
    _shared_lock = threading.Lock()
    budgets = list(_shared.values())
    for by_limit in list(_windowed.values()):
        budgets.extend(by_limit.values())
    for budget in budgets:
        budget._lock = threading.Lock()
        budget._sent.clear()


lifecycle.after_fork_in_child(_reset_after_fork)
