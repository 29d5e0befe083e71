from __future__ import annotations

from pd_integrations.delivery.ratelimit import WINDOW_SECONDS, SharedRateBudget
from tests.clock import FakeClock


class FlakyWindow:
    """A shared window that grants every send until it becomes unreachable."""

    def __init__(self) -> None:
        self.available = True
        self.granted = 0

    def acquire(self, per_minute: int) -> float | None:
        if not self.available:
            return None
        self.granted += 1
        return 0.0

    def reset_window(self) -> None:
        self.granted = 0


def test_sends_the_shared_window_granted_count_locally_once_it_is_unreachable() -> None:
    clock = FakeClock()
    window = FlakyWindow()
    budget = SharedRateBudget(window, per_minute=3, clock=clock)
    # The shared window grants more than the local one holds: every grant stands.
    assert [budget.try_acquire() for _ in range(4)] == [0.0] * 4
    assert window.granted == 4
    window.available = False
    clock.advance(10)
    # The fallback starts from what this process really sent, not from an empty window.
    assert budget.try_acquire() == WINDOW_SECONDS - 10
    clock.advance(WINDOW_SECONDS - 10)
    assert budget.try_acquire() == 0.0


def test_reset_forgets_both_windows() -> None:
    window = FlakyWindow()
    budget = SharedRateBudget(window, per_minute=1, clock=FakeClock())
    assert budget.try_acquire() == 0.0
    budget.reset()
    assert window.granted == 0
    window.available = False
    assert budget.try_acquire() == 0.0
