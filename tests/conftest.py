from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds every request of a ``ScriptedTransport(gate=...)``; set at teardown at the latest."""
    gate = threading.Event()
    yield gate
    gate.set()


@pytest.fixture
def default_sigterm() -> Iterator[None]:
    """SIGTERM's default disposition for the test (another test may have installed ours)."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
