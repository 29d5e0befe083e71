"""A durable spool for the dispatcher: pending events in an SQLite file (WAL mode).

An event is written here before the dispatcher counts it as queued, and removed only
after PagerDuty's 202, or after a 400 (or ``give_up_after``), which moves it to the
bounded ``failed`` table. Several processes may share one file: a sender *claims* a row
with a lease before sending it, renews the lease before every attempt, and deletes the
row only while it still holds the lease, so no two live processes send the same row;
the rows of a process that died are taken over once its lease has run out.

What reaches the disk is the scrubbed body PagerDuty would get, without the routing key
(rows are tagged with a hash of it), so no secret is written that would not be sent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pd_integrations.client import PreparedEvent
from pd_integrations.delivery import lifecycle
from pd_integrations.errors import PagerDutyError
from pd_integrations.events import (
    AcknowledgeEvent,
    ChangeEvent,
    Event,
    ResolveEvent,
    TriggerEvent,
    encode_event,
)
from pd_integrations.scrub import DEFAULT_SCRUBBER, Scrubber

__all__ = [
    "DEFAULT_LEASE",
    "MAX_FAILED_RECORDS",
    "FailedEvent",
    "PutResult",
    "Spool",
    "SpoolError",
    "SpooledEvent",
]

_log = logging.getLogger("pd_integrations.spool")

SCHEMA_VERSION: Final = "2"
# Long enough for one attempt (an HTTP timeout on each of connect, write and read) and
# the lease renewal around it; see Dispatcher for how it is derived from the client.
DEFAULT_LEASE: Final = 60.0
DEFAULT_BUSY_TIMEOUT: Final = 5.0
MAX_FAILED_RECORDS: Final = 1000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    action TEXT NOT NULL,
    dedup_key TEXT,
    priority INTEGER NOT NULL,
    body TEXT NOT NULL,
    occurrences INTEGER NOT NULL DEFAULT 1,
    enqueued_at REAL NOT NULL,
    owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS pending_by_key ON pending (stream, dedup_key, id);
CREATE INDEX IF NOT EXISTS pending_by_rank ON pending (stream, priority, id);
CREATE TABLE IF NOT EXISTS failed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    failed_at REAL NOT NULL,
    action TEXT NOT NULL,
    dedup_key TEXT,
    reason TEXT NOT NULL,
    error TEXT NOT NULL,
    body TEXT NOT NULL
);
"""

# Connections opened before a fork: never used or closed in the child (SQLite forbids
# carrying a connection across fork), only kept so garbage collection cannot close them.
_inherited: list[sqlite3.Connection] = []


class SpoolError(PagerDutyError):
    """The spool file cannot be used: unreadable, unwritable, corrupt or not SQLite."""


@dataclass(frozen=True, slots=True)
class SpooledEvent:
    """A row this process has claimed: send it, then complete, fail or release it."""

    row_id: int
    event: Event
    occurrences: int
    enqueued_at: float  # wall-clock seconds (time.time()), shared by every process
    body: bytes = b""  # as prepared at the call site, without the routing key
    rank: int = 0
    attempts: int = 0  # attempts made so far, by any process


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """An event PagerDuty refused (``reason="rejected"``) or that was given up on."""

    failed_at: float
    action: str
    dedup_key: str | None
    reason: str
    error: str
    body: dict[str, Any]


@dataclass(slots=True)
class PutResult:
    """What :meth:`Spool.put` did besides storing: events dropped and merges made."""

    dropped: list[Event] = field(default_factory=list)
    coalesced: list[tuple[Event, int]] = field(default_factory=list)
    #: Events that could not be encoded (the client could not have sent them either).
    unencodable: list[tuple[Event, PagerDutyError]] = field(default_factory=list)


def stream_id(routing_key: str) -> str:
    """The tag of a routing key's rows: a hash, so the key itself is never on disk."""
    return hashlib.sha256(routing_key.encode()).hexdigest()[:24]


def event_body(event: Event, routing_key: str, scrubber: Scrubber | None) -> dict[str, Any]:
    """The body PagerDuty would receive (scrubbed, within limits), minus the routing key."""
    body: dict[str, Any] = json.loads(encode_event(event, routing_key, scrubber=scrubber))
    body.pop("routing_key", None)
    return body


def event_from_body(action: str, body: Mapping[str, Any]) -> Event:
    """Rebuild the event that :func:`event_body` encoded."""
    if action == "acknowledge":
        return AcknowledgeEvent(body["dedup_key"])
    if action == "resolve":
        return ResolveEvent(body["dedup_key"])
    payload: Mapping[str, Any] = body["payload"]
    if action == "change":
        return ChangeEvent(
            payload["summary"],
            source=payload.get("source"),
            timestamp=payload.get("timestamp"),
            custom_details=payload.get("custom_details"),
            links=body.get("links"),
            images=body.get("images"),
        )
    if action == "trigger":
        return TriggerEvent(
            payload["summary"],
            payload["severity"],
            payload["source"],
            dedup_key=body.get("dedup_key"),
            component=payload.get("component"),
            group=payload.get("group"),
            class_=payload.get("class"),
            custom_details=payload.get("custom_details"),
            images=body.get("images"),
            links=body.get("links"),
            timestamp=payload.get("timestamp"),
            client=body.get("client"),
            client_url=body.get("client_url"),
        )
    raise SpoolError(f"unknown event action {action!r} in the spool")


class Spool:
    """The pending events of one routing key in an SQLite file shared by any number of
    processes. Thread-safe; every method raises :class:`SpoolError` when the file fails.

    :param path: the SQLite file; created with mode ``0600`` if missing (SQLite gives
        its ``-wal`` and ``-shm`` files the same mode). An existing file of this user's
        loses only the access of every other user; someone else's is left as it is.
    :param routing_key: whose events these are; only its rows are read and written.
    :param scrubber: applied to what is written, as the client applies it to what it sends.
    :param lease: seconds a claim stays valid without renewal before another process
        may take the row over.
    :param busy_timeout: seconds to wait for another process's write lock.
    :param max_failed: how many failed events the ``failed`` table keeps (oldest go first).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        routing_key: str,
        scrubber: Scrubber | None = DEFAULT_SCRUBBER,
        lease: float = DEFAULT_LEASE,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        max_failed: int = MAX_FAILED_RECORDS,
    ) -> None:
        if not lease > 0:
            raise ValueError(f"the spool lease must be a positive number of seconds, not {lease}")
        if max_failed < 0:
            raise ValueError("max_failed must not be negative")
        self.path = Path(os.fspath(path))
        self.lease = lease
        self.busy_timeout = busy_timeout
        self.max_failed = max_failed
        self._routing_key = routing_key
        self._stream = stream_id(routing_key)
        self._scrubber = scrubber
        self._lock = threading.Lock()
        self._closed = False
        self._conn: sqlite3.Connection | None = self._connect()
        self.owner = _new_owner()
        lifecycle.replace_locks_after_fork(self)

    def __repr__(self) -> str:
        return f"<Spool {str(self.path)!r}{' closed' if self._closed else ''}>"

    # -- opening ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            _create_private(self.path)
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,  # explicit BEGIN IMMEDIATE: a claim is one transaction
                check_same_thread=False,  # every use is under self._lock
            )
        except (sqlite3.Error, OSError) as error:
            raise SpoolError(f"cannot open the PagerDuty spool {self.path}: {error}") from error
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise SpoolError(f"the PagerDuty spool {self.path} cannot use WAL mode ({mode})")
            # NORMAL in WAL mode: a commit survives the process being killed (it is in
            # the WAL file); only an OS crash or power loss can take the latest commits.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(pending)")}
            for column in ("next_at REAL", "attempts INTEGER"):
                if column.split()[0] not in columns:  # schema 1 kept retries in memory
                    conn.execute(f"ALTER TABLE pending ADD COLUMN {column} NOT NULL DEFAULT 0")
            check = conn.execute("PRAGMA quick_check(1)").fetchone()
            if check is None or check[0] != "ok":
                raise SpoolError(f"the PagerDuty spool {self.path} is corrupt: {check}")
            # A real write: a read-only file or directory must fail here, not at the
            # first event.
            conn.execute(
                "INSERT INTO meta (name, value) VALUES ('schema', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (SCHEMA_VERSION,),
            )
        except sqlite3.Error as error:
            conn.close()
            raise SpoolError(f"cannot use the PagerDuty spool {self.path}: {error}") from error
        except SpoolError:
            conn.close()
            raise
        return conn

    def _db(self) -> sqlite3.Connection:
        if self._closed:
            raise SpoolError(f"the PagerDuty spool {self.path} is closed")
        conn = self._conn
        if conn is None:  # a forked child's first use
            conn = self._conn = self._connect()
        return conn

    def _after_fork(self) -> None:
        # A forked child: the parent's connection (and its claims) stay the parent's; the
        # child connects on first use, under an owner id of its own. The lock may have
        # been copied while another thread held it.
        self._lock = threading.Lock()
        if self._conn is not None:
            _inherited.append(self._conn)
        self._conn = None
        self.owner = _new_owner()

    # -- writing -----------------------------------------------------------------------

    def put(
        self,
        items: Sequence[tuple[Event | PreparedEvent, int] | tuple[PreparedEvent, int, int]],
        *,
        max_rows: int,
        now: float | None = None,
    ) -> PutResult:
        r"""Store ``(event, occurrences[, rank])`` in one transaction, in order.

        An event may come :meth:`~pd_integrations.EventsClient.prepare`\ d (its body is
        stored as it is) or plain (encoded here); ``rank`` (default: the event's own
        priority) orders sending and dropping. A trigger merges into the latest row for
        its dedup key when that row is an unclaimed trigger (the new payload wins,
        occurrences add up). When the routing key already has ``max_rows`` rows, the
        least important unclaimed row is dropped (lowest rank, then oldest), or the
        incoming event if nothing ranks lower.
        """
        result = PutResult()
        if not items:
            return result
        stamp = time.time() if now is None else now
        encoded: list[tuple[Event, int, str, int]] = []
        for entry in items:
            given, occurrences = entry[0], entry[1]
            event = given.event if isinstance(given, PreparedEvent) else given
            rank = entry[2] if len(entry) == 3 else event.priority
            try:
                if isinstance(given, PreparedEvent):
                    text = given.body.decode("utf-8")
                else:
                    body = event_body(event, self._routing_key, self._scrubber)
                    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
                encoded.append((event, occurrences, text, rank))
            except Exception as error:  # a scrubber or encoder bug must not stop the rest
                result.unencodable.append(
                    (event, PagerDutyError(f"the {event.action} event cannot be encoded: {error}"))
                )
        with self._lock:
            db = self._db()
            try:
                db.execute("BEGIN IMMEDIATE")
                (count,) = db.execute(
                    "SELECT count(*) FROM pending WHERE stream = ?", (self._stream,)
                ).fetchone()
                for event, occurrences, text, rank in encoded:
                    count += self._put_one(
                        db, event, occurrences, text, rank, stamp, count, max_rows, result
                    )
                db.execute("COMMIT")
            except sqlite3.Error as error:
                _rollback(db)
                raise SpoolError(
                    f"cannot write to the PagerDuty spool {self.path}: {error}"
                ) from error
        return result

    def _put_one(
        self,
        db: sqlite3.Connection,
        event: Event,
        occurrences: int,
        text: str,
        rank: int,
        stamp: float,
        count: int,
        max_rows: int,
        result: PutResult,
    ) -> int:
        """Store one event; returns how the row count changed."""
        key = event.dedup_key
        if isinstance(event, TriggerEvent) and key is not None:
            latest = db.execute(
                "SELECT id, action, owner, occurrences FROM pending "
                "WHERE stream = ? AND dedup_key = ? ORDER BY id DESC LIMIT 1",
                (self._stream, key),
            ).fetchone()
            if latest is not None and latest[1] == "trigger" and latest[2] is None:
                total = latest[3] + occurrences
                db.execute(
                    "UPDATE pending SET body = ?, priority = ?, occurrences = ? WHERE id = ?",
                    (text, rank, total, latest[0]),
                )
                result.coalesced.append((event, total))
                return 0
        change = 1
        if count >= max_rows:
            victim = db.execute(
                "SELECT id, action, body, priority FROM pending "
                "WHERE stream = ? AND owner IS NULL ORDER BY priority, id LIMIT 1",
                (self._stream,),
            ).fetchone()
            if victim is None or victim[3] >= rank:
                result.dropped.append(event)
                return 0
            db.execute("DELETE FROM pending WHERE id = ?", (victim[0],))
            result.dropped.append(_decode(victim[1], victim[2]))
            change = 0
        db.execute(
            "INSERT INTO pending (stream, action, dedup_key, priority, body, occurrences, "
            "enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self._stream, event.action, key, rank, text, occurrences, stamp),
        )
        return change

    # -- claiming and settling -----------------------------------------------------------

    def claim(self, now: float | None = None) -> SpooledEvent | None:
        """Claim the most important sendable row (oldest first within a rank), or ``None``.

        A row is sendable when its next attempt is due (see :meth:`retry_later`), nobody
        holds a live lease on it and no older row with the same dedup key is still
        pending: a key's events go out in order, even when several processes share the
        file, and a row waiting for its retry holds up only its own key. A row that
        cannot be decoded is moved to the ``failed`` table (reason ``"unreadable"``)
        instead of blocking the rest.
        """
        stamp = time.time() if now is None else now
        while True:
            with self._lock:
                db = self._db()
                try:
                    db.execute("BEGIN IMMEDIATE")
                    row = db.execute(
                        "SELECT id, action, body, occurrences, enqueued_at, priority, attempts "
                        "FROM pending AS p "
                        "WHERE stream = ? AND (owner IS NULL OR lease_until < ?) AND next_at <= ? "
                        "AND NOT EXISTS (SELECT 1 FROM pending AS q WHERE q.stream = p.stream "
                        "AND q.dedup_key = p.dedup_key AND q.id < p.id) "
                        "ORDER BY priority DESC, id LIMIT 1",
                        (self._stream, stamp, stamp),
                    ).fetchone()
                    if row is not None:
                        db.execute(
                            "UPDATE pending SET owner = ?, lease_until = ? WHERE id = ?",
                            (self.owner, stamp + self.lease, row[0]),
                        )
                    db.execute("COMMIT")
                except sqlite3.Error as error:
                    _rollback(db)
                    raise SpoolError(
                        f"cannot read the PagerDuty spool {self.path}: {error}"
                    ) from error
            if row is None:
                return None
            try:
                event = _decode(row[1], row[2])
            except SpoolError as error:
                _log.error("%s; moved to the failed table", error)
                self.fail(
                    SpooledEvent(row[0], ChangeEvent("unreadable"), 0, 0.0),
                    reason="unreadable",
                    error=str(error),
                )
                continue
            return SpooledEvent(
                row[0],
                event,
                int(row[3]),
                float(row[4]),
                str(row[2]).encode(),
                int(row[5]),
                int(row[6]),
            )

    def next_due(self, now: float | None = None) -> float | None:
        """Seconds until the next row's retry time comes, or another process's lease ends.

        ``None`` when no row of this routing key is waiting for time to pass.
        """
        stamp = time.time() if now is None else now
        rows = self._query(
            "SELECT min(max(next_at, CASE WHEN owner IS NULL THEN 0 ELSE lease_until END)) "
            "FROM pending WHERE stream = ? AND (next_at > ? OR (owner IS NOT NULL "
            "AND lease_until > ?))",
            (self._stream, stamp, stamp),
        )
        due = rows[0][0] if rows else None
        return None if due is None else max(0.0, float(due) - stamp)

    def retry_later(self, item: SpooledEvent, when: float) -> bool:
        """An attempt failed: give the row back, sendable again from ``when`` (wall clock).

        Any process may retry it then; until then the rest of the file goes out.
        ``False`` if the lease was lost meanwhile.
        """
        return self._change(
            "UPDATE pending SET owner = NULL, lease_until = 0, next_at = ?, "
            "attempts = attempts + 1 WHERE id = ? AND owner = ?",
            (when, item.row_id, self.owner),
        )

    def renew(self, item: SpooledEvent, now: float | None = None) -> bool:
        """Extend the lease on ``item``; ``False`` if another process has taken it over."""
        stamp = time.time() if now is None else now
        return self._change(
            "UPDATE pending SET lease_until = ? WHERE id = ? AND owner = ?",
            (stamp + self.lease, item.row_id, self.owner),
        )

    def complete(self, item: SpooledEvent) -> bool:
        """PagerDuty accepted ``item``: delete it (``False`` if the lease was lost)."""
        return self._change(
            "DELETE FROM pending WHERE id = ? AND owner = ?", (item.row_id, self.owner)
        )

    def release(self, item: SpooledEvent) -> bool:
        """Give the claim back so the row can be sent at once by anyone (shutdown)."""
        return self._change(
            "UPDATE pending SET owner = NULL, lease_until = 0 WHERE id = ? AND owner = ?",
            (item.row_id, self.owner),
        )

    def fail(self, item: SpooledEvent, *, reason: str, error: str) -> bool:
        """Move ``item`` to the ``failed`` table (bounded) and out of the pending set."""
        with self._lock:
            db = self._db()
            try:
                db.execute("BEGIN IMMEDIATE")
                row = db.execute(
                    "SELECT action, dedup_key, body FROM pending WHERE id = ? AND owner = ?",
                    (item.row_id, self.owner),
                ).fetchone()
                if row is not None:
                    db.execute("DELETE FROM pending WHERE id = ?", (item.row_id,))
                    db.execute(
                        "INSERT INTO failed (stream, failed_at, action, dedup_key, reason, "
                        "error, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (self._stream, time.time(), row[0], row[1], reason, error, row[2]),
                    )
                    db.execute(
                        "DELETE FROM failed WHERE id <= (SELECT max(id) FROM failed) - ?",
                        (self.max_failed,),
                    )
                db.execute("COMMIT")
            except sqlite3.Error as error_:
                _rollback(db)
                raise SpoolError(
                    f"cannot write to the PagerDuty spool {self.path}: {error_}"
                ) from error_
        return row is not None

    def _change(self, sql: str, params: tuple[Any, ...]) -> bool:
        with self._lock:
            db = self._db()
            try:
                return db.execute(sql, params).rowcount == 1
            except sqlite3.Error as error:
                raise SpoolError(
                    f"cannot write to the PagerDuty spool {self.path}: {error}"
                ) from error

    # -- reading -----------------------------------------------------------------------

    def pending_count(self) -> int:
        """Rows of this routing key not yet delivered (claimed ones included)."""
        return int(
            self._query("SELECT count(*) FROM pending WHERE stream = ?", (self._stream,))[0][0]
        )

    def oldest_age(self, now: float | None = None) -> float | None:
        """Seconds since the oldest pending row of this routing key was written, if any."""
        stamp = time.time() if now is None else now
        rows = self._query("SELECT min(enqueued_at) FROM pending WHERE stream = ?", (self._stream,))
        oldest = rows[0][0] if rows else None
        return None if oldest is None else max(0.0, stamp - float(oldest))

    def pending(self) -> list[Event]:
        """The pending events of this routing key, oldest first."""
        rows = self._query(
            "SELECT action, body FROM pending WHERE stream = ? ORDER BY id", (self._stream,)
        )
        return [_decode(action, body) for action, body in rows]

    def failed(self, limit: int = MAX_FAILED_RECORDS) -> list[FailedEvent]:
        """The most recent failed events of this routing key, oldest first."""
        rows = self._query(
            "SELECT failed_at, action, dedup_key, reason, error, body FROM failed "
            "WHERE stream = ? ORDER BY id DESC LIMIT ?",
            (self._stream, limit),
        )
        return [
            FailedEvent(float(at), action, key, reason, error, _json_object(body))
            for at, action, key, reason, error, body in reversed(rows)
        ]

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        with self._lock:
            db = self._db()
            try:
                return db.execute(sql, params).fetchall()
            except sqlite3.Error as error:
                raise SpoolError(f"cannot read the PagerDuty spool {self.path}: {error}") from error

    def close(self) -> None:
        """Close the connection; claims still held run out with their lease. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def closed(self) -> bool:
        return self._closed


PRIVATE_MODE: Final = 0o600
_OTHERS: Final = 0o007


def _create_private(path: Path) -> None:
    """Create the spool file readable and writable by its owner only, whatever the umask.

    An existing file (and its ``-wal``/``-shm``) keeps its owner and group bits: a group
    of processes under several users may share it on purpose. What is taken away, from
    a file this user owns, is access for every other user (a spool created by an older
    version under umask 022 was world-readable); someone else's file is only reported.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            _restrict_others(file)
        return
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, PRIVATE_MODE)  # the umask may have taken bits from os.open's mode
    finally:
        os.close(fd)


def _restrict_others(file: Path) -> None:
    try:
        info = file.stat()
    except FileNotFoundError:
        return
    mode = info.st_mode & 0o777
    if not mode & _OTHERS:
        return
    if hasattr(os, "getuid") and info.st_uid == os.getuid():
        file.chmod(mode & ~_OTHERS)
        _log.info("the PagerDuty spool file %s was open to every user: mode %o now", file, mode)
    else:
        _log.warning(
            "the PagerDuty spool file %s (not this user's) is open to every user (mode %o)",
            file,
            mode,
        )


def _new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _decode(action: str, body: str) -> Event:
    try:
        return event_from_body(action, json.loads(body))
    except (ValueError, KeyError, TypeError, PagerDutyError) as error:
        raise SpoolError(f"an unreadable event in the PagerDuty spool: {error}") from error


def _json_object(text: str) -> dict[str, Any]:
    """A stored body as a dict; an unreadable one comes back as ``{"raw": text}``."""
    try:
        value = json.loads(text)
    except ValueError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"raw": text}


def _rollback(db: sqlite3.Connection) -> None:
    try:
        if db.in_transaction:
            db.execute("ROLLBACK")
    except sqlite3.Error:
        _log.debug("rollback of a failed spool transaction failed too", exc_info=True)


def open_spool(
    path: str | os.PathLike[str],
    *,
    routing_key: str,
    scrubber: Scrubber | None,
    lease: float,
) -> Spool | None:
    """The spool at ``path``, or ``None`` after one warning when it cannot be used."""
    try:
        return Spool(path, routing_key=routing_key, scrubber=scrubber, lease=lease)
    except SpoolError as error:
        _log.warning(
            "%s; PagerDuty events are kept in memory only (they are lost if the process is killed)",
            error,
        )
        return None
