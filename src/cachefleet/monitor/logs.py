"""Slow-log and engine-log delivery to files: the local stand-in for CloudWatch Logs and Firehose.

For every node of a replication group with LogDeliveryConfigurations, once a second:

* ``slow-log``: ``SLOWLOG GET 128`` (ElastiCache's ``slowlog-max-len``), entries newer than the
  last one delivered; command arguments are replaced by ``(N more arguments)`` as ElastiCache
  does, so no key or value leaves the engine.
* ``engine-log``: the new lines of the node's ``engine.log``.

Each entry is written in the configured format (``json`` or ``text``) to:

* ``cloudwatch-logs``: ``<data-dir>/logs/cloudwatch-logs/<region>/<log group>/<stream>.log``,
  one event per line as ``<epoch milliseconds>\\t<message>``; the stream is
  ``<cache-cluster-id>-<node-id>-<log type>``. :class:`LogFiles` reads them back for the
  CloudWatch Logs API (``FilterLogEvents``, ``GetLogEvents``), which ``cachefleet logs`` uses.
* ``kinesis-firehose``: ``<data-dir>/logs/kinesis-firehose/<region>/<delivery stream>.log``,
  one record per line, as a Firehose delivery to S3 would hold them.

Where each node stopped (slow-log id, engine-log offset) is kept in ``logs/positions.json``,
so a restarted control plane neither repeats nor skips entries.

A log type enabled on a node that is already running (ModifyReplicationGroup, or a group that
had no delivery) is delivered from then on, as ElastiCache does, never replayed: the engine log
from its size at the tick that noticed the change, the slow log from the commands that started
at most :data:`ENABLE_GRACE` before that tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import re
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from cachefleet.domain.logs import LogEvent, LogStream
from cachefleet.engine.resp import RespConnection
from cachefleet.monitor.nodes import MonitoredNode

log = logging.getLogger(__name__)

SLOWLOG_FETCH = 128
MAX_READ = 1 << 20
# A configuration change is noticed at the next tick: entries this much older than that are
# still the new configuration's.
ENABLE_GRACE = 2.0
# A node first seen this young (no saved position) is delivered from its start.
FRESH_NODE_SECONDS = 10.0
_ENGINE_LINE = re.compile(r"^(\d+):([A-Z]) (\d{1,2} \w{3} \d{4} \d{2}:\d{2}:\d{2}\.\d{3}) ([.\-*#]) (.*)$")
_LEVELS = {".": "DEBUG", "-": "VERBOSE", "*": "NOTICE", "#": "WARNING"}


def slow_entry(source: MonitoredNode, entry: list[Any]) -> dict[str, Any]:
    """An ElastiCache slow-log record from one SLOWLOG GET entry (arguments masked)."""
    entry_id, stamp, duration, args = entry[0], entry[1], entry[2], entry[3]
    address = entry[4] if len(entry) > 4 else ""
    name = entry[5] if len(entry) > 5 else ""
    command = str(args[0]).upper() if args else ""
    if len(args) > 1:
        command += f" ... ({len(args) - 1} more argument{'s' if len(args) > 2 else ''})"
    return {
        "CacheClusterId": source.cluster_id,
        "CacheNodeId": source.node_id,
        "Id": int(entry_id),
        "Timestamp": int(stamp),
        "Duration (us)": int(duration),
        "Command": command,
        "ClientAddress": address,
        "ClientName": name,
    }


def engine_entry(source: MonitoredNode, line: str) -> tuple[int, dict[str, Any]] | None:
    """(epoch ms, ElastiCache engine-log record) from one engine.log line."""
    match = _ENGINE_LINE.match(line)
    if match is None:
        if not line.strip():
            return None
        return int(time.time() * 1000), {
            "CacheClusterId": source.cluster_id, "CacheNodeId": source.node_id, "LogLevel": "NOTICE",
            "Role": "", "Timestamp": "", "Message": line.strip(),
        }
    _, role, stamp, level, message = match.groups()
    try:
        when = dt.datetime.strptime(stamp, "%d %b %Y %H:%M:%S.%f").replace(tzinfo=dt.UTC)
        millis = int(when.timestamp() * 1000)
    except ValueError:
        millis = int(time.time() * 1000)
    return millis, {
        "CacheClusterId": source.cluster_id,
        "CacheNodeId": source.node_id,
        "LogLevel": _LEVELS.get(level, "NOTICE"),
        "Role": role,
        "Timestamp": stamp,
        "Message": message,
    }


def render(record: dict[str, Any], log_format: str) -> str:
    if log_format == "json":
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    return ",".join(str(value) for value in record.values())


def stream_name(source: MonitoredNode, log_type: str) -> str:
    return f"{source.cluster_id}-{source.node_id}-{log_type}"


@dataclass
class _Position:
    pid: int | None = None
    slow_id: int = -1
    inode: int = 0
    offset: int = 0


@dataclass
class _Node:
    source: MonitoredNode
    position: _Position = field(default_factory=_Position)
    connection: RespConnection | None = None
    retry_at: float = 0.0
    delivering: frozenset[str] | None = None  # the log types of the previous round; None: first seen
    slow_since: int = 0  # epoch ms: older slow-log entries are not delivered


def _process_age(pid: int | None) -> float | None:
    """Seconds since process ``pid`` started (from /proc), None if it is gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            started = int(handle.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/uptime", "rb") as handle:
            uptime = float(handle.read().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return uptime - started / os.sysconf("SC_CLK_TCK")


class LogDeliverer:
    """Delivers every node's new slow-log entries and engine-log lines to their destinations, once a second."""

    def __init__(self, root: Path, sources: Callable[[], Sequence[MonitoredNode]]) -> None:
        self.root = root
        self._sources = sources
        self._nodes: dict[str, _Node] = {}
        self._positions_path = root / "positions.json"
        self._saved: dict[str, Any] = {}
        try:
            self._saved = json.loads(self._positions_path.read_text())
        except (OSError, ValueError):
            self._saved = {}
        self._busy = False
        self.delivered = 0

    def on_tick(self, second: int) -> None:
        if self._busy:
            return  # the previous round is still reading; skip a second rather than pile up
        sources = {s.key: s for s in self._sources() if s.deliveries}
        for key in list(self._nodes):
            if key not in sources:  # gone, or all its delivery turned off
                node = self._nodes.pop(key)
                self._saved.pop(key, None)  # turned on again later, it starts from then, not from here
                if node.connection is not None:
                    node.connection.close()
        if not sources:
            return
        self._busy = True
        task = asyncio.get_running_loop().create_task(self._round(sources))
        task.add_done_callback(lambda _: setattr(self, "_busy", False))

    async def _round(self, sources: dict[str, MonitoredNode]) -> None:
        changed = False
        for key, source in sources.items():
            node = self._nodes.get(key)
            if node is None:
                node = self._nodes[key] = _Node(source, self._saved_position(key))
            node.source = source
            if node.position.pid != source.pid:
                # A restarted engine starts a new slow log (ids from 0) and a new engine.log.
                node.position = _Position(pid=source.pid)
                changed = True
            delivering = self._note_enabled(node, key)
            try:
                if "slow-log" in delivering:
                    changed |= await self._slow_log(node)
                if "engine-log" in delivering:
                    changed |= self._engine_log(node)
            except Exception:  # noqa: BLE001 - one node's trouble must not stop the others
                log.exception("log delivery for %s failed", key)
        if changed:
            self._save()

    def _note_enabled(self, node: _Node, key: str) -> frozenset[str]:
        """The node's delivered log types; those newly delivered on a running node start from now."""
        types = frozenset(d.log_type for d in node.source.deliveries)
        if node.delivering is None:
            # First seen: a restarted control plane resumes where it stopped; a new node is delivered
            # from its start; an older node without a saved position has just had delivery turned on.
            fresh = key in self._saved or (age := _process_age(node.source.pid)) is None or age <= FRESH_NODE_SECONDS
            added = frozenset() if fresh else types
        else:
            added = types - node.delivering
        if "slow-log" in added:
            node.slow_since = int((time.time() - ENABLE_GRACE) * 1000)
        if "engine-log" in added:
            with contextlib.suppress(OSError):
                stat = os.stat(node.source.engine_log)
                node.position.inode, node.position.offset = stat.st_ino, stat.st_size
        if added:
            log.info("log delivery of %s: %s from now on", key, ", ".join(sorted(added)))
        node.delivering = types
        return types

    def _saved_position(self, key: str) -> _Position:
        saved = self._saved.get(key)
        if not isinstance(saved, dict):
            return _Position()
        try:
            return _Position(**saved)
        except TypeError:  # a positions file of another version: start from the current state
            return _Position()

    async def _slow_log(self, node: _Node) -> bool:
        source = node.source
        if node.connection is None or node.connection.closed:
            if time.monotonic() < node.retry_at:
                return False
            try:
                node.connection = await source.access.resp(name="cachefleet-logs")
            except (OSError, TimeoutError, ConnectionError):
                node.retry_at = time.monotonic() + 2.0
                return False
        try:
            entries = await asyncio.wait_for(node.connection.call("SLOWLOG", "GET", SLOWLOG_FETCH), 1.0)
        except (TimeoutError, ConnectionError, Exception):  # noqa: BLE001 - retry at the next tick
            node.connection.close()
            node.connection = None
            return False
        fresh = sorted((e for e in entries if int(e[0]) > node.position.slow_id), key=lambda e: int(e[0]))
        if not fresh:
            return False
        records = [(int(e[1]) * 1000, slow_entry(source, e)) for e in fresh if int(e[1]) * 1000 >= node.slow_since]
        self._write(source, "slow-log", records)
        node.position.slow_id = int(fresh[-1][0])
        return True

    def _engine_log(self, node: _Node) -> bool:
        source = node.source
        try:
            stat = os.stat(source.engine_log)
        except OSError:
            return False
        position = node.position
        if stat.st_ino != position.inode or stat.st_size < position.offset:
            position.inode, position.offset = stat.st_ino, 0
        if stat.st_size == position.offset:
            return False
        with open(source.engine_log, "rb") as handle:
            handle.seek(position.offset)
            data = handle.read(MAX_READ)
        complete = data.rfind(b"\n") + 1
        if complete == 0:
            return False
        records = []
        for raw in data[:complete].decode(errors="replace").splitlines():
            parsed = engine_entry(source, raw)
            if parsed is not None:
                records.append(parsed)
        self._write(source, "engine-log", records)
        position.offset += complete
        return True

    def _write(self, source: MonitoredNode, log_type: str, records: list[tuple[int, dict[str, Any]]]) -> None:
        if not records:
            return
        for delivery in source.deliveries:
            if delivery.log_type != log_type:
                continue
            if delivery.destination_type == "cloudwatch-logs":
                path = self.root / "cloudwatch-logs" / source.region / quote(delivery.destination, safe="") / (
                    stream_name(source, log_type) + ".log")
                lines = [f"{millis}\t{render(record, delivery.log_format)}\n" for millis, record in records]
            else:
                path = self.root / "kinesis-firehose" / source.region / f"{delivery.destination}.log"
                lines = [render(record, delivery.log_format) + "\n" for _, record in records]
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(path, "a", encoding="utf-8") as handle:
                handle.write("".join(line.replace("\r", " ") for line in lines))
            self.delivered += len(lines)

    def _save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {key: vars(node.position) for key, node in self._nodes.items()}
        temporary = self._positions_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        os.replace(temporary, self._positions_path)

    async def stop(self) -> None:
        for node in self._nodes.values():
            if node.connection is not None:
                node.connection.close()
        if self._nodes:
            with contextlib.suppress(OSError):
                self._save()


class LogFiles:
    """Reads delivered cloudwatch-logs files back (the CloudWatch Logs API's LogReader)."""

    def __init__(self, root: Path) -> None:
        self.root = root / "cloudwatch-logs"

    def _group_dir(self, region: str, group: str) -> Path:
        return self.root / region / quote(group, safe="")

    def groups(self, region: str) -> list[tuple[str, int, int]]:
        base = self.root / region
        if not base.is_dir():
            return []
        found = []
        for directory in sorted(base.iterdir()):
            if directory.is_dir():
                stored = sum(f.stat().st_size for f in directory.glob("*.log"))
                found.append((unquote(directory.name), int(directory.stat().st_ctime * 1000), stored))
        return found

    def streams(self, region: str, group: str) -> list[LogStream] | None:
        directory = self._group_dir(region, group)
        if not directory.is_dir():
            return None
        streams = []
        for path in sorted(directory.glob("*.log")):
            first = last = None
            with open(path, "rb") as handle:
                head = handle.readline()
                if head:
                    first = int(head.split(b"\t", 1)[0])
                size = path.stat().st_size
                handle.seek(max(0, size - 65536))
                tail = handle.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
                if tail:
                    last = int(tail.split(b"\t", 1)[0])
            streams.append(LogStream(path.stem, first, last, size, int(path.stat().st_ctime * 1000)))
        return streams

    def events(
        self, region: str, group: str, streams: list[str] | None, *, start: int | None, end: int | None
    ) -> list[LogEvent]:
        directory = self._group_dir(region, group)
        events: list[LogEvent] = []
        for path in sorted(directory.glob("*.log")):
            if streams is not None and path.stem not in streams:
                continue
            tag = zlib.crc32(path.stem.encode())
            offset = 0
            with open(path, "rb") as handle:
                for raw in handle:
                    here = offset
                    offset += len(raw)
                    stamp_text, _, message = raw.rstrip(b"\n").partition(b"\t")
                    try:
                        stamp = int(stamp_text)
                    except ValueError:
                        continue
                    if (start is not None and stamp < start) or (end is not None and stamp > end):
                        continue
                    events.append(LogEvent(path.stem, stamp, message.decode(errors="replace"), stamp,
                                           f"{stamp:015d}{tag:010d}{here:012d}"))
        events.sort(key=lambda e: (e.timestamp, e.event_id))
        return events
