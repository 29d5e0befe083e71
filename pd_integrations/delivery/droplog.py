"""Warnings about dropped events that do not flood the log during an outage."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

_log = logging.getLogger("pd_integrations.dispatch")

DROP_LOG_INTERVAL = 60.0
"""Seconds between drop warnings while events keep being dropped (the first warns at once)."""


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
