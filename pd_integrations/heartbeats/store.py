"""Where check-ins are shared: this process's memory, an SQLite file, or Redis.

A store keeps one JSON record per monitor (its spec and its state) and offers three
things: an atomic read-modify-write of one record (:meth:`HeartbeatStore.transact`), the
list of monitors, and a lease that makes exactly one watchdog active at a time.

- :class:`MemoryStore`: one process (tests, or an app that checks in and watches itself).
- :class:`SQLiteStore`: every process of one host (a crontab wrapper and the app share
  the file); ``BEGIN IMMEDIATE`` serialises writers, and the lease is a row in the file.
- ``RedisStore`` (:mod:`.store_redis`): every process of every host (``PAGERDUTY_STATE_URL``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pd_integrations.delivery import lifecycle

__all__ = ["HeartbeatStore", "MemoryStore", "Record", "SQLiteStore", "default_path"]

Record = dict[str, Any]
R = TypeVar("R")
Change = Callable[[Record | None], tuple[Record | None, R]]
SQLITE_BUSY_TIMEOUT = 5.0


class HeartbeatStore(ABC):
    """The shared records of every monitor."""

    description = "store"

    @abstractmethod
    def transact(self, slug: str, change: Change[R]) -> R:
        """Read ``slug``'s record, write what ``change`` returns (unless ``None``), atomically."""

    @abstractmethod
    def load(self, slug: str) -> Record | None:
        """``slug``'s record, ``None`` if it has none."""

    @abstractmethod
    def slugs(self) -> list[str]:
        """Every monitor with a record."""

    @abstractmethod
    def acquire_lease(self, owner: str, ttl: float, now: float) -> bool:
        """Take or renew the watchdog lease for ``ttl`` seconds; ``False`` if another holds it."""

    @abstractmethod
    def release_lease(self, owner: str) -> None:
        """Give the watchdog lease up if ``owner`` holds it."""

    def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release connections; the store may be used again afterwards (it reconnects)."""


class MemoryStore(HeartbeatStore):
    description = "memory://"

    def __init__(self) -> None:
        self._records: dict[str, Record] = {}
        self._lease: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def transact(self, slug: str, change: Change[R]) -> R:
        with self._lock:
            current = self._records.get(slug)
            new, result = change(json.loads(json.dumps(current)) if current else None)
            if new is not None:
                self._records[slug] = new
            return result

    def load(self, slug: str) -> Record | None:
        with self._lock:
            return self._records.get(slug)

    def slugs(self) -> list[str]:
        with self._lock:
            return sorted(self._records)

    def acquire_lease(self, owner: str, ttl: float, now: float) -> bool:
        with self._lock:
            if self._lease is None or self._lease[0] == owner or self._lease[1] <= now:
                self._lease = (owner, now + ttl)
                return True
            return False

    def release_lease(self, owner: str) -> None:
        with self._lock:
            if self._lease is not None and self._lease[0] == owner:
                self._lease = None


def default_path() -> Path:
    """``$XDG_STATE_HOME/pd_integrations/heartbeats.sqlite3`` (``~/.local/state/...``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "pd_integrations" / "heartbeats.sqlite3"


class SQLiteStore(HeartbeatStore):
    """The records in an SQLite file shared by the processes of one host."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.description = f"sqlite:{self.path}"
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        lifecycle.replace_locks_after_fork(self)

    def _after_fork(self) -> None:
        # A connection must not cross a fork: the child opens its own on first use (the
        # parent's is left alone, not closed), with a lock that no parent thread holds.
        self._lock = threading.Lock()
        self._connection = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path,
                timeout=SQLITE_BUSY_TIMEOUT,
                isolation_level=None,
                check_same_thread=False,
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS monitors (slug TEXT PRIMARY KEY, record TEXT NOT NULL)"
            )
            connection.execute(
                "CREATE TABLE IF NOT EXISTS lease "
                "(id INTEGER PRIMARY KEY CHECK (id = 1), owner TEXT NOT NULL, until REAL NOT NULL)"
            )
            self._connection = connection
        return self._connection

    def transact(self, slug: str, change: Change[R]) -> R:
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                row = connection.execute(
                    "SELECT record FROM monitors WHERE slug = ?", (slug,)
                ).fetchone()
                new, result = change(json.loads(row[0]) if row else None)
                if new is not None:
                    connection.execute(
                        "INSERT INTO monitors (slug, record) VALUES (?, ?) "
                        "ON CONFLICT (slug) DO UPDATE SET record = excluded.record",
                        (slug, json.dumps(new)),
                    )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            return result

    def load(self, slug: str) -> Record | None:
        with self._lock:
            row = (
                self._connect()
                .execute("SELECT record FROM monitors WHERE slug = ?", (slug,))
                .fetchone()
            )
        return json.loads(row[0]) if row else None

    def slugs(self) -> list[str]:
        with self._lock:
            rows = self._connect().execute("SELECT slug FROM monitors ORDER BY slug").fetchall()
        return [row[0] for row in rows]

    def acquire_lease(self, owner: str, ttl: float, now: float) -> bool:
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                row = connection.execute("SELECT owner, until FROM lease WHERE id = 1").fetchone()
                taken = row is None or row[0] == owner or row[1] <= now
                if taken:
                    connection.execute(
                        "INSERT INTO lease (id, owner, until) VALUES (1, ?, ?) "
                        "ON CONFLICT (id) DO UPDATE "
                        "SET owner = excluded.owner, until = excluded.until",
                        (owner, now + ttl),
                    )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            return taken

    def release_lease(self, owner: str) -> None:
        with self._lock:
            self._connect().execute("DELETE FROM lease WHERE id = 1 AND owner = ?", (owner,))

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
            self._connection = None
