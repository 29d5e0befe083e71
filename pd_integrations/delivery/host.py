"""What a queue needs from the dispatcher it serves (a protocol, so no import cycle).

The dispatcher owns the lock, the schedule of submitted events, the counters and the
one attempt logic; a queue decides where pending events live and which thread sends
them. Everything here is used under the dispatcher's lock unless said otherwise.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

from pd_integrations.delivery.pending import Pending
from pd_integrations.delivery.schedule import Schedule, Slot

if TYPE_CHECKING:
    from pd_integrations.delivery.droplog import DropLog


class Host(Protocol):
    max_queue: int
    _lock: threading.Lock
    _wake: threading.Condition  # something may have become sendable
    _idle: threading.Condition  # flush() waits on it
    _stopping: threading.Condition  # budget and pause waits: only close() cuts them short
    _schedule: Schedule[Pending]
    _mergeable: dict[str, int]
    _closed: bool

    @property
    def _queue(self) -> object:
        """The queue now in use: a queue's threads stop once it is no longer this one."""

    _dropped: int
    _coalesced: int
    _failed: int
    _drop_log: DropLog

    def _busy(self) -> bool:
        """Whether anything this process could still send is pending; under the lock."""

    def _forget(self, slot: Slot[Pending]) -> None:
        """Take ``slot`` out of the schedule; under the lock."""

    def _budget_delay(self) -> float:
        """Spend one send of the rate budget, or say how long to wait; not under the lock."""

    def _attempt(self, item: Pending, attempt: int) -> float | None:
        """One attempt: seconds until its retry, or ``None`` once settled; not under the lock."""

    def _give_back(self, item: Pending) -> None:
        """Closing interrupted a retry: drop ``item``, or leave it in the spool."""

    def _fall_back_to_memory(self, failed: object, unsent: list[Slot[Pending]]) -> bool:
        """The spool failed: carry on in memory, ``unsent`` first; ``False`` if already done."""
