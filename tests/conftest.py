from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds every request of a ``ScriptedTransport(gate=...)``; set at teardown at the latest."""
    gate = threading.Event()
    yield gate
    gate.set()
