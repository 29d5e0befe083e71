"""PagerDuty's per-integration-key rate limit: a sliding 60-second window.

PagerDuty accepts about 120 events per minute per routing key. The window remembers
when each admitted request arrived, per key; a request is refused while the window
already holds ``limit`` requests from the last 60 seconds. Refused requests are not
remembered, so a client that backs off gets back in as soon as old requests age out.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

DEFAULT_LIMIT = 120
WINDOW_SECONDS = 60.0


class SlidingWindow:
    """Thread-safe per-key admission; ``limit=None`` admits everything."""

    def __init__(
        self,
        limit: int | None = DEFAULT_LIMIT,
        *,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._arrivals: dict[str, deque[float]] = {}
        self._window = window
        self._clock = clock
        self._limit: int | None = None
        self.limit = limit

    @property
    def limit(self) -> int | None:
        return self._limit

    @limit.setter
    def limit(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or value < 1):
            raise ValueError("the rate limit must be a positive number of events, or None")
        with self._lock:
            self._limit = value

    def admit(self, key: str) -> bool:
        """Count one request for ``key``; False when the key is over its budget."""
        with self._lock:
            if self._limit is None:
                return True
            now = self._clock()
            arrivals = self._arrivals.setdefault(key, deque())
            horizon = now - self._window
            while arrivals and arrivals[0] <= horizon:
                arrivals.popleft()
            if len(arrivals) >= self._limit:
                return False
            arrivals.append(now)
            return True

    def reset(self) -> None:
        with self._lock:
            self._arrivals.clear()
