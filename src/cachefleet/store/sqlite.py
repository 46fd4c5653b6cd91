"""Desired state and events in SQLite (WAL), mirrored in memory for fast reads.

Every write goes through a transaction that commits to SQLite first and only then updates
the in-memory mirror, so readers never see a change that a crash could take back. The
store is used from the control plane's single event-loop thread.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cachefleet.domain.alarms import MetricAlarm
from cachefleet.domain.model import CacheCluster, CacheSubnetGroup, Event, EventSourceType, ReplicationGroup
from cachefleet.domain.ports import R, Resource
from cachefleet.store.codec import decode, encode

log = logging.getLogger(__name__)

KINDS: dict[str, type] = {cls.__name__: cls for cls in (ReplicationGroup, CacheCluster, CacheSubnetGroup, MetricAlarm)}
EVENT_RETENTION = dt.timedelta(days=14)

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
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._mirror: dict[tuple[str, str, str], Any] = {}
        for kind, region, key, doc in self._db.execute("SELECT kind, region, key, doc FROM resources"):
            cls = KINDS.get(kind)
            if cls is None:
                log.warning("ignoring stored %s %s/%s: unknown kind", kind, region, key)
                continue
            self._mirror[(kind, region, key)] = decode(cls, json.loads(doc))
        self._writes_since_prune = 0

    def close(self) -> None:
        self._db.close()

    def get(self, kind: type[R], region: str, key: str) -> R | None:
        found: R | None = self._mirror.get((kind.__name__, region, key))
        return found

    def list(self, kind: type[R], region: str | None = None) -> list[R]:
        name = kind.__name__
        return [
            value for (k, reg, _), value in self._mirror.items() if k == name and (region is None or reg == region)
        ]

    @contextmanager
    def transaction(self) -> Iterator[_Transaction]:
        tx = _Transaction()
        yield tx
        if not (tx.puts or tx.deletes or tx.events):
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for resource in tx.puts:
                self._db.execute(
                    "INSERT OR REPLACE INTO resources (kind, region, key, doc) VALUES (?, ?, ?, ?)",
                    (type(resource).__name__, resource.region, resource.key, json.dumps(encode(resource))),
                )
            for resource in tx.deletes:
                self._db.execute(
                    "DELETE FROM resources WHERE kind = ? AND region = ? AND key = ?",
                    (type(resource).__name__, resource.region, resource.key),
                )
            for event in tx.events:
                self._db.execute(
                    "INSERT INTO events (region, source_type, source_id, date, message) VALUES (?, ?, ?, ?, ?)",
                    (event.region, event.source_type.value, event.source_id, event.date.timestamp(), event.message),
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        for resource in tx.puts:
            self._mirror[(type(resource).__name__, resource.region, resource.key)] = resource
        for resource in tx.deletes:
            self._mirror.pop((type(resource).__name__, resource.region, resource.key), None)
        self._writes_since_prune += len(tx.events)
        if self._writes_since_prune > 1000:
            self._prune_events()

    def _prune_events(self) -> None:
        self._writes_since_prune = 0
        cutoff = (dt.datetime.now(dt.UTC) - EVENT_RETENTION).timestamp()
        self._db.execute("DELETE FROM events WHERE date < ?", (cutoff,))

    def events(
        self,
        region: str,
        *,
        start: dt.datetime,
        end: dt.datetime,
        source_type: EventSourceType | None = None,
        source_id: str | None = None,
    ) -> Iterator[Event]:
        sql = "SELECT source_type, source_id, date, message, id FROM events WHERE region = ? AND date >= ? AND date <= ?"
        args: list[Any] = [region, start.timestamp(), end.timestamp()]
        if source_type is not None:
            sql += " AND source_type = ?"
            args.append(source_type.value)
        if source_id is not None:
            sql += " AND source_id = ?"
            args.append(source_id)
        sql += " ORDER BY date, id"
        for kind, source, date, message, sequence in self._db.execute(sql, args).fetchall():
            yield Event(
                region=region,  # type: ignore[arg-type]
                source_type=EventSourceType(kind),
                source_id=source,
                message=message,
                date=dt.datetime.fromtimestamp(date, dt.UTC),
                sequence=sequence,
            )
