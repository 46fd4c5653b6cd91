"""Samples every node once a second: INFO over a persistent connection, /proc for the process.

One tick sends ``INFO clients memory stats replication persistence cpu commandstats
keyspace`` to every node at once (pipelined, one lean connection per node), reads the node's
``/proc/<pid>/stat`` (CPU time and resident memory), turns raw counters into per-second values under
ElastiCache's metric names (:func:`derive`, pure) and writes one row per node. The tick is
aligned to the wall-clock second; a slow node costs its own sample, never the others'.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cachefleet.engine import traffic
from cachefleet.engine.resp import RespConnection
from cachefleet.monitor import catalog
from cachefleet.monitor.nodes import MonitoredNode, NodeDirectory
from cachefleet.monitor.serverless import CacheMetrics, NodeUsage, processing_units
from cachefleet.monitor.timeseries import TimeSeriesStore

log = logging.getLogger(__name__)

INFO_COMMAND = ("INFO", "clients", "memory", "stats", "replication", "persistence", "cpu", "commandstats", "keyspace")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CORES = os.cpu_count() or 1
NAN = math.nan
FIELDS = (
    "connected_clients", "used_memory", "maxmemory", "mem_fragmentation_ratio", "total_connections_received",
    "total_net_input_bytes", "total_net_output_bytes", "total_net_repl_output_bytes", "total_net_repl_input_bytes", "evicted_keys", "expired_keys",
    "keyspace_hits", "keyspace_misses", "active_defrag_hits", "acl_access_denied_auth", "acl_access_denied_cmd",
    "acl_access_denied_key", "acl_access_denied_channel", "role", "connected_slaves", "master_link_status",
    "master_repl_offset", "slave_repl_offset", "master_host", "rdb_bgsave_in_progress", "aof_rewrite_in_progress", "used_cpu_sys", "used_cpu_user",
    "used_cpu_sys_main_thread", "used_cpu_user_main_thread", "mem_replication_backlog", "mem_clients_slaves",
    "mem_clients_normal",
)
YIELD_EVERY = 10  # nodes processed between two returns to the event loop
ROLL_UP_SLICE = 0.01  # seconds of the minute's roll-up between two returns to the event loop
_FIELDS = re.compile(r"\n(" + "|".join(sorted(FIELDS, key=len, reverse=True)) + r"):([^\r\n]*)")
_CMDSTAT = re.compile(r"cmdstat_([^:]+):calls=(\d+),usec=(\d+)")
_KEYSPACE = re.compile(r"\ndb(\d+):keys=(\d+),expires=(\d+),avg_ttl=(\d+)")
_SLAVE = re.compile(r"\nslave\d+:ip=([^,]+),port=\d+,state=([a-z_]+),offset=\d+,lag=(\d+)")





@dataclass
class Raw:
    """What one tick read from one node."""

    at: float  # monotonic seconds
    info: dict[str, str]
    commands: dict[str, tuple[int, int]]  # command -> (calls, usec)
    keyspace: tuple[int, int, int]  # keys, expires, db0 avg_ttl
    replicas: dict[str, int]  # replica address -> lag (seconds), on a primary
    cpu_ticks: int | None
    rss: int | None
    pid: int | None
    age: float | None = None  # seconds since the engine process started
    # The control plane's own bytes (sent, received) to the node so far, read when this tick's INFO
    # was sent (engine/traffic.py): serverless caches leave them out.
    control: tuple[int, int] = (0, 0)
    synthetic: bool = False  # a zero baseline at the engine's start (from_start), not a reading


def parse_info(text: str) -> tuple[dict[str, str], dict[str, tuple[int, int]], tuple[int, int, int], dict[str, int]]:
    """INFO's fields, commandstats (calls, usec), keyspace totals and online replicas' lag.

    Runs once per node per second, so only the fields the metrics use are picked out, by one
    regular expression (a third of the cost of splitting every line).
    """
    info = dict(_FIELDS.findall(text))
    commands = {name: (int(calls), int(usec)) for name, calls, usec in _CMDSTAT.findall(text)}
    keys = expires = ttl0 = 0
    for db, k, e, ttl in _KEYSPACE.findall(text):
        keys += int(k)
        expires += int(e)
        if db == "0":
            ttl0 = int(ttl)
    replicas: dict[str, int] = {}
    if info.get("connected_slaves", "0") != "0":
        for ip, state, lag in _SLAVE.findall(text):
            if state == "online":
                replicas[ip] = int(lag)
    return info, commands, (keys, expires, ttl0), replicas


def read_process(pid: int | None) -> tuple[int | None, int | None, int | None]:
    """(utime + stime, start time) in clock ticks and resident bytes of a process, from
    /proc/<pid>/stat; Nones if it is gone."""
    if pid is None:
        return None, None, None
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12]), int(fields[21]) * PAGE_SIZE, int(fields[19])
    except (OSError, IndexError, ValueError):
        return None, None, None


def system_uptime() -> float:
    with open("/proc/uptime", "rb") as handle:
        return float(handle.read().split()[0])


def _number(info: dict[str, str], key: str, default: float = NAN) -> float:
    value = info.get(key)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        return default


def counts_from_start(*, engine_age: float | None, member_age: float | None, monitor_age: float) -> bool:
    """Whether a node's first reading in this run of the monitor is counted from its engine's start.

    Yes when no earlier run can have metered what its counters hold: its engine started while this
    monitor runs (a new node, or one restarted), or it became the member it is while this monitor
    runs (a warm node a new cache or shard took: its counters since its start are the warm pool's
    set-up, which is upkeep, and the clients' first commands). No for a node adopted after a
    control-plane restart: the earlier run metered its counters up to its last sample (what came
    between that sample and this one is lost, not metered twice). Ages in seconds, at this reading.
    """
    if engine_age is None:
        return False  # the process is gone
    if engine_age <= monitor_age:
        return True
    return member_age is not None and member_age <= monitor_age


def from_start(raw: Raw) -> Raw:
    """A zero baseline at the engine's start: the first period of a node is its whole life so far."""
    uptime = raw.age if raw.age is not None else 0.0
    zero = {key: "0" for key, value in raw.info.items() if _number(raw.info, key) == _number(raw.info, key)}
    return Raw(raw.at - max(uptime, 1.0), zero, {}, (0, 0, 0), {}, None, None, raw.pid, synthetic=True)


OFFSET_HISTORY = 120  # samples of each primary's replication offset kept for ReplicationLag


def replication_lag(
    info: dict[str, str],
    history: dict[str, collections.deque[tuple[float, int]]],
    at: float,
    *,
    fallback: float,
) -> float:
    """How far behind its primary a replica is, in seconds, from the replication offsets.

    0 when the replica holds the primary's whole stream (its offset, read in the same tick,
    is the primary's); otherwise the time since the primary's offset was where the replica's
    is now (from the primary's recent offsets, one a tick). ``fallback`` (the primary's view:
    seconds since the replica's last acknowledgement) when the primary was not sampled.
    """
    primary = history.get(info.get("master_host", ""))
    mine = _number(info, "slave_repl_offset")
    if not primary or mine != mine:
        return fallback
    current = primary[-1][1]
    if mine >= current:
        return 0.0
    for when, offset in primary:
        if offset >= mine:
            return max(0.0, at - when)
    return max(0.0, at - primary[0][0])


def _delta(now: float, before: float) -> float:
    if now != now or before != before:
        return NAN
    # A counter that went down was reset (the engine restarted): count from zero.
    return now - before if now >= before else now


def derive(
    previous: Raw,
    current: Raw,
    *,
    families: dict[str, tuple[int, ...]],
    memory_bytes: int,
    host_available: int,
    replica_lag: float,
) -> list[float]:
    """One row of metric values (in catalog order) for the period between two samples."""
    row = [NAN] * catalog.WIDTH
    index = catalog.INDEX
    info, before = current.info, previous.info
    elapsed = max(current.at - previous.at, 1e-3)

    def counter(key: str) -> float:
        return _delta(_number(info, key), _number(before, key))

    # Host-level, from the process.
    if current.cpu_ticks is not None and previous.cpu_ticks is not None and current.pid == previous.pid:
        used = (current.cpu_ticks - previous.cpu_ticks) / TICKS_PER_SECOND
        row[index["CPUUtilization"]] = max(0.0, used / elapsed / CORES * 100)
    if current.rss is not None:
        row[index["FreeableMemory"]] = float(max(0, min(memory_bytes - current.rss, host_available)))
    row[index["NetworkBytesIn"]] = counter("total_net_input_bytes")
    row[index["NetworkBytesOut"]] = counter("total_net_output_bytes")

    main = _number(info, "used_cpu_sys_main_thread") + _number(info, "used_cpu_user_main_thread")
    main_before = _number(before, "used_cpu_sys_main_thread") + _number(before, "used_cpu_user_main_thread")
    if main != main:  # engines without per-thread figures
        main = _number(info, "used_cpu_sys") + _number(info, "used_cpu_user")
        main_before = _number(before, "used_cpu_sys") + _number(before, "used_cpu_user")
    row[index["EngineCPUUtilization"]] = max(0.0, _delta(main, main_before) / elapsed * 100)

    used_memory = _number(info, "used_memory")
    maxmemory = _number(info, "maxmemory", 0.0)
    row[index["BytesUsedForCache"]] = used_memory
    if maxmemory > 0:
        row[index["DatabaseMemoryUsagePercentage"]] = used_memory / maxmemory * 100
    row[index["MemoryFragmentationRatio"]] = _number(info, "mem_fragmentation_ratio")
    row[index["CurrConnections"]] = _number(info, "connected_clients")
    row[index["NewConnections"]] = counter("total_connections_received")
    keys, expires, ttl0 = current.keyspace
    row[index["CurrItems"]] = float(keys)
    row[index["CurrVolatileItems"]] = float(expires)
    row[index["DB0AverageTTL"]] = float(ttl0)
    row[index["Evictions"]] = counter("evicted_keys")
    row[index["Reclaimed"]] = counter("expired_keys")
    hits, misses = counter("keyspace_hits"), counter("keyspace_misses")
    row[index["CacheHits"]], row[index["CacheMisses"]] = hits, misses
    if hits + misses > 0:
        row[index["CacheHitRate"]] = hits / (hits + misses) * 100
    primary = info.get("role") == "master"
    row[index["IsMaster"]] = 1.0 if primary else 0.0
    if primary:
        if int(_number(info, "connected_slaves", 0)) > 0:
            sent = counter("total_net_repl_output_bytes")
            row[index["ReplicationBytes"]] = sent if sent == sent else counter("master_repl_offset")
    else:
        row[index["MasterLinkHealthStatus"]] = 1.0 if info.get("master_link_status") == "up" else 0.0
        row[index["ReplicationLag"]] = replica_lag
    saving = _number(info, "rdb_bgsave_in_progress", 0) + _number(info, "aof_rewrite_in_progress", 0)
    row[index["SaveInProgress"]] = 1.0 if saving > 0 else 0.0
    row[index["AuthenticationFailures"]] = counter("acl_access_denied_auth")
    row[index["CommandAuthorizationFailures"]] = counter("acl_access_denied_cmd")
    row[index["KeyAuthorizationFailures"]] = counter("acl_access_denied_key")
    row[index["ChannelAuthorizationFailures"]] = counter("acl_access_denied_channel")
    row[index["ActiveDefragHits"]] = counter("active_defrag_hits")

    calls = [0.0] * len(catalog.FAMILIES)
    usec = [0.0] * len(catalog.FAMILIES)
    old = previous.commands
    for name, (now_calls, now_usec) in current.commands.items():
        then_calls, then_usec = old.get(name, (0, 0))
        d_calls = now_calls - then_calls if now_calls >= then_calls else now_calls
        if not d_calls:
            continue
        d_usec = now_usec - then_usec if now_usec >= then_usec else now_usec
        for position in families.get(name.partition("|")[0], ()):
            calls[position] += d_calls
            usec[position] += d_usec
    for position, column in enumerate(catalog.FAMILY_COLUMNS):
        row[column] = calls[position]
        if calls[position]:
            row[catalog.LATENCY_COLUMNS[position]] = usec[position] / calls[position]
    return row


def serverless_usage(
    previous: Raw, current: Raw, families: dict[str, tuple[int, ...]], *, table_bytes: int = 0
) -> NodeUsage | None:
    """A serverless cache node's period of clients' work only: without the control plane's own
    traffic (what it sent and read between the two readings of the node's traffic meter, each read
    as the tick's INFO was sent: the engine counts the INFO request that reads its figures and,
    out, the reply to the previous one, written after them), without replication (the totals
    include it; Valkey 8 and Redis 7 count it apart too), without the command table a client library reads when it starts (``COMMAND``:
    ``table_bytes`` each, ~100 KB, upkeep) and, on a replica, without the write commands it applies
    from its primary (a client's write to a replica is redirected before it runs). A first period
    (``previous`` a zero baseline at the engine's start) counts its metered commands, not its bytes."""
    commands = current.commands
    if current.info.get("role") != "master":
        writes = catalog.FAMILY_NAMES.index("SetTypeCmds")
        commands = {name: v for name, v in commands.items() if writes not in families.get(name.partition("|")[0], ())}
    if previous.synthetic:
        # The period since the engine started: its metered commands are clients' (set-up is upkeep),
        # its bytes are not (the set-up's replies, the warm pool's and the control plane's INFO, keys
        # moved in by RESTORE-ASKING): each command counts by its engine time, at least 1, not its KiB.
        ecpu, metered = processing_units({}, commands, bytes_in=0.0, bytes_out=0.0)
        return NodeUsage(ecpu, metered, 0.0, 0.0, first=True)

    def counter(key: str) -> float:
        value = _delta(_number(current.info, key), _number(previous.info, key))
        return 0.0 if value != value and "_repl_" in key else value

    sent, received = (now - before for now, before in zip(current.control, previous.control, strict=True))
    bytes_in = counter("total_net_input_bytes") - counter("total_net_repl_input_bytes") - sent
    bytes_out = counter("total_net_output_bytes") - counter("total_net_repl_output_bytes") - received
    tables = current.commands.get("command", (0, 0))[0] - previous.commands.get("command", (0, 0))[0]
    bytes_out -= max(0, tables) * table_bytes
    if bytes_in != bytes_in or bytes_out != bytes_out:
        return None
    ecpu, metered = processing_units(previous.commands, commands, bytes_in=bytes_in, bytes_out=bytes_out)
    return NodeUsage(ecpu, metered, max(0.0, bytes_in), max(0.0, bytes_out))


def data_memory(info: dict[str, str]) -> float:
    """used_memory without the buffers that come and go with traffic: the replication backlog (the
    engine keeps what it sent for a PSYNC, often well past repl-backlog-size until new writes
    trim it) and clients' buffers. What a serverless cache sizes itself by: a shard whose slots
    just left, or whose keys were deleted, holds less data at once though used_memory stays up."""
    buffers = sum(_number(info, key, 0.0) for key in ("mem_replication_backlog", "mem_clients_slaves", "mem_clients_normal"))
    used = _number(info, "used_memory")
    return max(0.0, used - buffers) if used == used else NAN


def host_available_memory() -> int:
    try:
        with open("/proc/meminfo", "rb") as handle:
            for line in handle:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


@dataclass
class _Probe:
    """The sampler's connection to one node and what it last read."""

    node: MonitoredNode
    connection: RespConnection | None = None
    connecting: asyncio.Task[None] | None = None
    families: dict[str, tuple[int, ...]] = field(default_factory=dict)
    table_bytes: int = 0  # the size of the engine's COMMAND reply (a client library's start-up reads it)
    last: Raw | None = None
    retry_at: float = 0.0


class Sampler:
    """Samples every node once a second and writes its metrics to the time series."""

    def __init__(self, *, directory: NodeDirectory, store: TimeSeriesStore, interval: float = 1.0,
                 on_tick: Callable[[int], None] | None = None) -> None:
        self._directory = directory
        self._store = store
        self._caches = CacheMetrics(store)
        self._interval = interval
        self._probes: dict[str, _Probe] = {}
        self._families: dict[str, dict[str, tuple[int, ...]]] = {}  # engine build -> command families
        self._table_bytes: dict[str, int] = {}  # engine build -> bytes of its COMMAND reply
        self._loading: dict[str, asyncio.Future[dict[str, tuple[int, ...]] | None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._on_tick = on_tick
        self.latest: dict[str, tuple[MonitoredNode, int, list[float]]] = {}  # node key -> (node, second, row)
        self.data_memory: dict[str, float] = {}  # node key -> its latest data_memory (serverless sizing)
        self.ticks = 0
        self.cpu_seconds = 0.0  # CPU time of all ticks
        self._last_minute: int | None = None
        # When this run of the monitor started, by the wall clock (records) and the boot clock (/proc).
        self._started = (time.time(), system_uptime())
        self._counted: dict[str, int] = {}  # node key -> pid of the engine counted from its start in this run
        # primary address -> its (monotonic time, replication offset) at the last ticks
        self._offsets: dict[str, collections.deque[tuple[float, int]]] = {}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="metric-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for probe in self._probes.values():
            self._close(probe)
        self._probes.clear()

    async def _run(self) -> None:
        while True:
            now = time.time()
            await asyncio.sleep(self._interval - (now % self._interval) + 0.002)
            second = int(time.time())
            try:
                await self.tick(second)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("metric sampling failed at %s", second)
            self.ticks += 1

    async def tick(self, second: int) -> None:
        started = time.process_time()
        nodes = {node.key: node for node in self._directory()}
        addresses: set[str] | None = None  # the nodes' addresses, once a probe is dropped
        for key in list(self._probes):
            if key not in nodes:
                gone = self._probes.pop(key)
                self._close(gone)
                if addresses is None:
                    addresses = {node.access.address for node in nodes.values()}
                if gone.node.access.address not in addresses:
                    traffic.forget(gone.node.access.address)
                self.latest.pop(key, None)
                self.data_memory.pop(key, None)
        pending: list[tuple[_Probe, asyncio.Future[Any], tuple[int, int]]] = []
        loop_time = time.monotonic()
        for key, node in nodes.items():
            probe = self._probes.get(key)
            if probe is None:
                probe = self._probes[key] = _Probe(node)
            elif probe.node != node:
                if (probe.node.access, probe.node.pid) != (node.access, node.pid):
                    self._close(probe)
                    probe.last = None
                probe.node = node
            connection = probe.connection
            if connection is None or connection.closed:
                probe.connection = None
                if probe.connecting is None and loop_time >= probe.retry_at:
                    probe.connecting = asyncio.create_task(self._connect(probe))
                continue
            pending.append((probe, connection.send(*INFO_COMMAND), traffic.reading(node.access.address)))
        spent = time.process_time() - started
        if pending:
            await asyncio.wait([future for _, future, _ in pending], timeout=0.8 * self._interval)
        started = time.process_time()
        at = time.monotonic()
        available = host_available_memory()
        booted = system_uptime()
        fresh: list[tuple[_Probe, Raw]] = []
        for count, (probe, future, control) in enumerate(pending, start=1):
            if count % YIELD_EVERY == 0:
                # Let API requests in: a hundred nodes parsed in one go would stall them ~10 ms.
                spent += time.process_time() - started
                await asyncio.sleep(0)
                started = time.process_time()
            if not future.done():
                future.cancel()
                self._close(probe)  # a reply that is late would be read as the next one's
                continue
            if future.exception() is not None:
                self._close(probe)
                continue
            text = future.result()
            info, commands, keyspace, replicas = parse_info(text)
            ticks, rss, started_at = read_process(probe.node.pid)
            age = booted - started_at / TICKS_PER_SECOND if started_at is not None else None
            fresh.append((probe, Raw(at, info, commands, keyspace, replicas, ticks, rss, probe.node.pid, age, control)))
        lags: dict[str, int] = {}
        offsets: dict[str, int] = {}  # primary address -> its replication offset now
        regions = {node.address: node.region for node in nodes.values()}
        for probe, raw in fresh:
            lags.update(raw.replicas)
            if raw.info.get("role") == "master":
                offset = int(_number(raw.info, "master_repl_offset", -1))
                offsets[probe.node.address] = offset
                self._offsets.setdefault(probe.node.address, collections.deque(maxlen=OFFSET_HISTORY)).append((at, offset))
        for address in [a for a in self._offsets if a not in offsets]:
            del self._offsets[address]
        for count, (probe, raw) in enumerate(fresh, start=1):
            if count % YIELD_EVERY == 0:
                spent += time.process_time() - started
                await asyncio.sleep(0)
                started = time.process_time()
            previous, probe.last = probe.last, raw
            if previous is None:
                if not self._first_counted(probe.node, raw, booted):
                    continue
                previous = from_start(raw)
            lag = replication_lag(raw.info, self._offsets, at, fallback=float(lags.get(probe.node.address, NAN)))
            row = derive(previous, raw, families=probe.families, memory_bytes=probe.node.memory_bytes,
                         host_available=available, replica_lag=lag)
            # A node following a node of another region is a global datastore secondary's primary.
            upstream = regions.get(raw.info.get("master_host", "")) if raw.info.get("role") == "slave" else None
            if upstream is not None and upstream != probe.node.region:
                row[catalog.INDEX["GlobalDatastoreReplicationLag"]] = lag
            self._store.write(probe.node.series_key, second, row)
            self.latest[probe.node.key] = (probe.node, second, row)
            if CacheMetrics.cache_of(probe.node) is not None:
                self.data_memory[probe.node.key] = data_memory(raw.info)
                self._caches.add(probe.node, row, serverless_usage(previous, raw, probe.families, table_bytes=probe.table_bytes))
        self._caches.flush(second)
        minute = second // 60 * 60
        if self._last_minute is not None and minute != self._last_minute:
            # Done before the tick's listeners run (an alarm of a 60 s period reads the minute), but a
            # slice at a time: the API and the health monitor go on meanwhile.
            sliced = time.monotonic()
            for _ in self._store.roll_up_steps(self._last_minute):
                if time.monotonic() - sliced >= ROLL_UP_SLICE:
                    spent += time.process_time() - started
                    await asyncio.sleep(0)
                    started, sliced = time.process_time(), time.monotonic()
        self._last_minute = minute
        spent += time.process_time() - started
        self.cpu_seconds += spent
        if self._on_tick is not None:
            self._on_tick(second)

    def _first_counted(self, node: MonitoredNode, raw: Raw, booted: float) -> bool:
        """Whether a node's first reading is counted from its engine's start (counts_from_start),
        once per engine: a reading lost later (a new connection) never counts its life again."""
        if self._counted.get(node.key) == raw.pid:
            return False
        member_age = time.time() - node.member_since if node.member_since is not None else None
        if not counts_from_start(engine_age=raw.age, member_age=member_age, monitor_age=booted - self._started[1]):
            return False
        if raw.pid is not None:
            self._counted[node.key] = raw.pid
        return True

    async def _connect(self, probe: _Probe) -> None:
        node = probe.node
        try:
            connection = await node.access.resp()
            build = node.engine or f"{node.address}:{node.access.port}"
            probe.families = await self._command_families(build, connection)
            probe.table_bytes = self._table_bytes.get(build, 0)
            probe.connection = connection
            probe.retry_at = 0.0
        except (OSError, TimeoutError, ConnectionError, Exception) as error:  # noqa: BLE001 - any failure: retry later
            log.debug("cannot sample %s at %s:%s: %s", node.key, node.address, node.access.port, error)
            probe.retry_at = time.monotonic() + 2.0
        finally:
            probe.connecting = None

    async def _command_families(self, build: str, connection: RespConnection) -> dict[str, tuple[int, ...]]:
        """The command families of an engine build, read from one of its nodes, once.

        The command table is large (~1 MB of reply objects): a hundred nodes connecting at once
        must not each read it, or the control plane's memory balloons.
        """
        found = self._families.get(build)
        if found is not None:
            return found
        pending = self._loading.get(build)
        if pending is not None:
            result = await asyncio.shield(pending)
            if result is None:
                raise ConnectionError(f"the command table of {build} could not be read")
            return result
        pending = self._loading[build] = asyncio.get_running_loop().create_future()
        try:
            before = connection.received
            found = catalog.classify_command_reply(await asyncio.wait_for(connection.call("COMMAND"), 2.0))
            self._table_bytes[build] = connection.received - before
            self._families[build] = found
            return found
        finally:
            pending.set_result(found)
            del self._loading[build]

    @staticmethod
    def _close(probe: _Probe) -> None:
        if probe.connection is not None:
            probe.connection.close()
            probe.connection = None
        if probe.connecting is not None:
            probe.connecting.cancel()
            probe.connecting = None
