"""A clock the tests move by hand.

Given to whatever takes a ``clock`` (the request monitor, the dispatcher's drop log,
the emulator's budget, the Redis backend's local window), it makes durations exact: a
"slow" request is slow because the test said so, and a quick one stays quick however
loaded the machine running the suite is.
"""

from __future__ import annotations


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
