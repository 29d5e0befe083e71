"""Jobs the RQ tests enqueue; the worker process imports them from here."""

from __future__ import annotations

import os
import signal
import time


def flaky(fail: bool) -> str:
    if fail:
        raise ValueError("the report's upstream is down")
    return "ok"


def kill_own_horse() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def never_ends() -> None:
    time.sleep(600)
