"""Health checks named in the tests' HEALTH_CHECKS by dotted path."""

from __future__ import annotations

import asyncio


class Upstream:
    """A dependency the tests take down and bring back."""

    up = True


def upstream() -> bool:
    return Upstream.up


async def cache() -> bool:
    await asyncio.sleep(0)
    return True


def broken() -> None:
    raise ConnectionRefusedError("connection refused by db:5432")


NOT_CALLABLE = 42


class Counted:
    """Counts its runs, to tell a served report from a fresh one."""

    runs = 0


def counted() -> bool:
    Counted.runs += 1
    return Upstream.up
