"""Time the test views take, on the clock the middleware times them with.

A test that cares how long its requests take calls :func:`use_fake_clock` once the
runtime serving them exists (inside ``pagerduty(...)``, or after ``runtime.reset()``).
The slow and streaming views then :func:`spend` their time on that clock alone: a
"slow" request takes exactly what the test asked for, and a quick one takes no time at
all, however loaded the machine running the suite is.

Nothing here sleeps for real: a real sleep against a real clock is how a quick request
once crossed a 50 ms threshold in CI. A view asked to take time while the monitor has
a real clock raises instead, so a test that forgot its fake clock fails at once and
loudly rather than passing by luck.
"""

from __future__ import annotations

from pd_integrations.django import runtime
from tests.clock import FakeClock


def use_fake_clock() -> FakeClock:
    """Give the current runtime's request monitor a fresh :class:`FakeClock`; return it.

    A settings change (``pagerduty(...)``) builds a new runtime with a real clock, so
    call this inside the block whose requests it should time.
    """
    monitor = runtime.current().monitor
    if monitor is None:
        raise RuntimeError("alerting is off (no routing key?): no request monitor to give a clock")
    clock = FakeClock()
    monitor.clock = clock
    return clock


class NoFakeClockError(RuntimeError):
    """A view was asked to take time but the monitor timing it has a real clock."""


def spend(seconds: float) -> None:
    """Let ``seconds`` pass for the request being served, on the monitor's fake clock.

    Without a request monitor (alerting off) nobody times the request, and nothing
    happens. With a monitor on a real clock, :class:`NoFakeClockError` is raised.
    """
    if seconds <= 0:
        return  # nothing to spend: the runtime is not even looked up
    monitor = runtime.current().monitor
    if monitor is None:
        return
    if not isinstance(monitor.clock, FakeClock):
        raise NoFakeClockError(
            f"a view was asked to take {seconds * 1000:g} ms but the request monitor has a "
            "real clock: call tests.django.timing.use_fake_clock() in the test"
        )
    monitor.clock.advance(seconds)
