"""Desired state and events in SQLite (WAL), mirrored in memory for fast reads.

Every write goes through a transaction that commits to SQLite first and only then updates
the in-memory mirror, so readers never see a change that a crash could take back. The
store is used from the control plane's single event-loop thread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cachefleet.domain import kinds
from cachefleet.domain.errors import StoreUnavailable
from cachefleet.domain.events import Event, EventSourceType
from cachefleet.domain.ports import R
from cachefleet.domain.resource import Resource
from cachefleet.store.codec import decode, encode
from cachefleet.store.crashpoints import CrashHook

log = logging.getLogger(__name__)

EVENT_RETENTION = dt.timedelta(days=14)
# How long a write waits for another process's lock on the file. Nothing else of Cachefleet writes
# it (the data dir is locked), so a lock is foreign and may last: the control plane's one event
# loop waits here, and must not wait long (the API answers reads meanwhile).
BUSY_TIMEOUT = 0.5
# FULL: every commit is on the disk before the request that made it is answered. NORMAL leaves
# WAL commits in the page cache until a checkpoint; a disk error that turns the file system
# read-only (or a power cut) then loses changes already acknowledged. Its cost per commit is in
# bench/store_commit.py (BENCHMARKS.md).
SYNCHRONOUS = "FULL"
# Why a write failed, by SQLite's error name, in the words of StoreUnavailable's message.
_WHY = {
    "SQLITE_BUSY": "is locked by another process",
    "SQLITE_LOCKED": "is locked by another process",
    "SQLITE_READONLY": "is read-only",
    "SQLITE_FULL": "is on a full disk",
    "SQLITE_IOERR": "could not be written (an I/O error)",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,
    region TEXT NOT NULL,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (kind, region, key)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    region TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source_id TEXT NOT NULL,
    date REAL NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (region, date);
CREATE INDEX IF NOT EXISTS events_by_source ON events (region, source_id, date);
"""


class _Transaction:
    def __init__(self) -> None:
        self.puts: list[Resource] = []
        self.deletes: list[Resource] = []
        self.events: list[Event] = []

    def put(self, resource: Resource) -> None:
        self.puts.append(resource)

    def delete(self, resource: Resource) -> None:
        self.deletes.append(resource)

    def add_event(self, event: Event) -> None:
        self.events.append(event)


class SqliteStore:
    """The StateStore in SQLite (WAL), with every record mirrored in memory."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db = self._connect()
        # SQLite opens a file it cannot write read-only: its schema and journal mode are the ones
        # it was given when it was writable, and writes answer StoreUnavailable until it is again.
        self.writable = os.access(path, os.W_OK)
        if self.writable:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        self._reopen = False  # a write found the file read-only: the next one opens it again
        # kind name -> (region, key) -> record: reads never touch SQLite.
        self._mirror: dict[str, dict[tuple[str, str], Any]] = {name: {} for name in kinds.STORED_BY_NAME}
        for kind, region, key, doc in self._db.execute("SELECT kind, region, key, doc FROM resources"):
            cls = kinds.STORED_BY_NAME.get(kind)
            if cls is None:
                # Kept in the file (a newer Cachefleet may know it), but not served.
                log.warning("stored %s %s/%s is of a kind this Cachefleet does not know; leaving it alone", kind, region, key)
                continue
            self._mirror[kind][(region, key)] = decode(cls, json.loads(doc))
        self._writes_since_prune = 0
        # Test-only crash injection (store/crashpoints.py): None unless its variables are set.
        self._crash_hook = CrashHook.from_environment()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None, timeout=BUSY_TIMEOUT)
        db.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
        return db

    def close(self) -> None:
        self._db.close()

    def get(self, kind: type[R], region: str, key: str) -> R | None:
        found: R | None = self._records(kind).get((region, key))
        return found

    def list(self, kind: type[R], region: str | None = None) -> list[R]:
        records = self._records(kind)
        if region is None:
            return list(records.values())
        return [value for (reg, _), value in records.items() if reg == region]

    def _records(self, kind: type[Resource]) -> dict[tuple[str, str], Any]:
        try:
            return self._mirror[kind.KIND.name]
        except KeyError:
            raise LookupError(f"{kind.KIND.name} is not a stored kind; add it to domain/kinds.py STORED") from None

    @contextmanager
    def transaction(self) -> Iterator[_Transaction]:
        tx = _Transaction()
        yield tx
        if not (tx.puts or tx.deletes or tx.events):
            return
        for resource in (*tx.puts, *tx.deletes):
            self._records(type(resource))  # an unknown kind fails before anything is written
        if self._reopen:
            # A connection SQLite opened read-only stays so: the file may be writable again now.
            self._db.close()
            self._db = self._connect()
            self._reopen = False
        try:
            self._write(tx)
        except sqlite3.OperationalError as error:
            raise self._unavailable(error) from error
        if self._crash_hook is not None:
            self._crash_hook.committed(tx.puts, tx.deletes, tx.events)
        for resource in tx.puts:
            self._records(type(resource))[(resource.region, resource.key)] = resource
        for resource in tx.deletes:
            self._records(type(resource)).pop((resource.region, resource.key), None)
        self._writes_since_prune += len(tx.events)
        if self._writes_since_prune > 1000:
            self._prune_events()

    def _write(self, tx: _Transaction) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for resource in tx.puts:
                self._db.execute(
                    "INSERT OR REPLACE INTO resources (kind, region, key, doc) VALUES (?, ?, ?, ?)",
                    (resource.KIND.name, resource.region, resource.key, json.dumps(encode(resource))),
                )
            for resource in tx.deletes:
                self._db.execute(
                    "DELETE FROM resources WHERE kind = ? AND region = ? AND key = ?",
                    (resource.KIND.name, resource.region, resource.key),
                )
            for event in tx.events:
                self._db.execute(
                    "INSERT INTO events (region, source_type, source_id, date, message) VALUES (?, ?, ?, ?, ?)",
                    (event.region, event.source_type.value, event.source_id, event.date.timestamp(), event.message),
                )
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # SQLite may have rolled back already (a full disk at COMMIT)
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

    def _unavailable(self, error: sqlite3.OperationalError) -> StoreUnavailable:
        name = getattr(error, "sqlite_errorname", "")
        why = _WHY.get("_".join(name.split("_")[:2]), "cannot be written")  # SQLITE_IOERR_WRITE: SQLITE_IOERR
        if not name.startswith("SQLITE_BUSY") and self._on_read_only_file_system():
            # SQLite says "disk I/O error" (EROFS) when the file system turned read-only under an open file.
            why = "is on a file system that is read-only now (a disk error makes ext4 turn read-only; see the system log)"
        self._reopen = name.startswith("SQLITE_READONLY")
        log.warning("the state store %s %s: %s (%s)", self._path, why, error, name)
        return StoreUnavailable(
            f"Cachefleet cannot record changes now: its state store ({self._path.name} in its data directory) {why} "
            f"({error}). Nothing was changed; the request can be made again once the store is writable."
        )

    def _on_read_only_file_system(self) -> bool:
        """Whether the store's directory refuses a new file with EROFS. Asked, not read from statvfs:
        an ext4 turned read-only by an error keeps its mount flags (``rw,emergency_ro``)."""
        probe = self._path.parent / ".write-probe"
        try:
            os.close(os.open(probe, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as error:
            return error.errno == errno.EROFS
        with contextlib.suppress(OSError):
            os.unlink(probe)
        return False

    def _prune_events(self) -> None:
        self._writes_since_prune = 0
        cutoff = (dt.datetime.now(dt.UTC) - EVENT_RETENTION).timestamp()
        try:
            self._db.execute("DELETE FROM events WHERE date < ?", (cutoff,))
        except sqlite3.OperationalError as error:  # pruned at a later write
            log.warning("old events not pruned: %s", error)

    def events(
        self,
        region: str,
        *,
        start: dt.datetime,
        end: dt.datetime,
        source_type: EventSourceType | None = None,
        source_id: str | None = None,
        hidden_prefix: str | None = None,
        after: tuple[float, int] | None = None,
        limit: int | None = None,
    ) -> Iterator[Event]:
        sql = "SELECT source_type, source_id, date, message, id FROM events WHERE region = ? AND date >= ? AND date <= ?"
        args: list[Any] = [region, start.timestamp(), end.timestamp()]
        if source_type is not None:
            sql += " AND source_type = ?"
            args.append(source_type.value)
        if source_id is not None:
            sql += " AND source_id = ?"
            args.append(source_id)
        if hidden_prefix:
            sql += " AND substr(source_id, 1, ?) != ?"  # not LIKE: an id's '_' would be a wildcard
            args += [len(hidden_prefix), hidden_prefix]
        if after is not None:
            sql += " AND (date > ? OR (date = ? AND id >= ?))"
            args += [after[0], after[0], after[1]]
        sql += " ORDER BY date, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        try:
            rows = self._db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as error:
            raise self._unavailable(error) from error
        for kind, source, date, message, sequence in rows:
            yield Event(
                region=region,
                source_type=EventSourceType(kind),
                source_id=source,
                message=message,
                date=dt.datetime.fromtimestamp(date, dt.UTC),
                sequence=sequence,
            )
