from __future__ import annotations

from collections.abc import Iterator

import pytest

from pd_integrations.emulator import Emulator

from .dataset import MAY, ROSTER, MovableNow, load


@pytest.fixture(scope="module")
def month() -> Iterator[tuple[Emulator, MovableNow]]:
    """An emulator holding the month of ``dataset.py``, its clock at June 1st."""
    now = MovableNow(MAY)
    with Emulator(port=0, rate_limit_per_minute=None, roster=ROSTER, now=now) as emulator:
        load(emulator, now)
        yield emulator, now
