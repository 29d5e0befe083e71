"""Client-side rate budget, so a storm queues and coalesces instead of drawing 429s.

PagerDuty accepts about 120 events per minute per integration key over a sliding
60-second window. Every dispatcher in the process that sends with the same key shares
one :class:`RateBudget`, so two managers on one key cannot spend it twice.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable

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
            while self._sent and now - self._sent[0] >= WINDOW_SECONDS:
                self._sent.popleft()
            if len(self._sent) < self.per_minute:
                self._sent.append(now)
                return 0.0
            return WINDOW_SECONDS - (now - self._sent[0])

    def reset(self) -> None:
        with self._lock:
            self._sent.clear()


_shared: dict[tuple[str, int], RateBudget] = {}
_shared_lock = threading.Lock()


def shared_budget(routing_key: str, per_minute: int) -> RateBudget:
    """The process-wide budget for ``routing_key`` (one per key and limit)."""
    with _shared_lock:
        budget = _shared.get((routing_key, per_minute))
        if budget is None:
            budget = _shared[(routing_key, per_minute)] = RateBudget(per_minute)
        return budget


def _reset_after_fork() -> None:
    global _shared_lock
    # A child inherits the parent's window but not its future sends; start clean and
    # replace the lock in case the fork happened while another thread held it.
    _shared_lock = threading.Lock()
    for budget in _shared.values():
        budget._lock = threading.Lock()
        budget._sent.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
