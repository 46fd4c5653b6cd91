"""A serverless cache's metrics as a whole: its hidden group's nodes summed into one row a second.

ElastiCache Serverless publishes a cache's metrics under the dimension ``clusterId`` (the cache
name) only, never per node. The sampler hands each second's node rows of a serverless group here
(``CacheMetrics.add``); ``flush`` writes one row per cache (catalog ``SERVERLESS_METRICS``) to its
own series. ``processing_units`` (pure) is the ECPU formula; ``cache_row`` (pure) how node rows
add up. What the control plane itself sends and reads (the monitor's INFO, health probes, the
workflows' admin commands: engine/traffic.py) is left out of every figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cachefleet.domain import identifiers
from cachefleet.monitor import catalog
from cachefleet.monitor.nodes import MonitoredNode
from cachefleet.monitor.timeseries import TimeSeriesStore

NAN = math.nan
KILOBYTE = 1024  # ECPUs count data transferred in KiB
# RESP framing of one request and its reply (array and bulk headers, CRLFs, the command name, a
# status reply): protocol, not data. A GET of an 8-byte key is 27 bytes in and 9 of header out; a
# SET of one 28 bytes in beside its value and 5 out (+OK).
FRAMING_BYTES = 32
# Engine time of a simple read or write of up to 1 KB, in µs: a command averaging more than this
# per call counts proportionally more ECPUs (ElastiCache: commands that take more vCPU time than
# a simple GET/SET consume more). Measured here: SET/GET of 1 KB ~1 µs (Redis 7.0), so plain
# reads and writes stay at their data count even on a loaded machine.
BASELINE_USEC = 5.0
# Commands that are the service's or the client library's upkeep, not work on the data:
# ElastiCache does not meter them (connection set-up, topology, monitoring, replication).
UPKEEP_COMMANDS = frozenset({
    "auth", "hello", "ping", "echo", "select", "quit", "reset", "client", "cluster", "command", "config", "info",
    "readonly", "readwrite", "asking", "replconf", "psync", "sync", "slowlog", "latency", "memory", "acl", "role",
    "multi", "exec", "discard", "watch", "unwatch", "migrate", "restore-asking", "wait", "waitaof", "debug",
    "monitor", "failover", "bgsave", "bgrewriteaof", "save", "lastsave", "shutdown", "module", "lolwut", "time",
})


def processing_units(
    before: Mapping[str, tuple[int, int]], now: Mapping[str, tuple[int, int]], *, bytes_in: float, bytes_out: float,
) -> tuple[float, float]:
    """(ECPUs, metered commands) of one node's period, from two readings of INFO commandstats
    (command -> (calls, usec)) and the period's client bytes (the control plane's own taken out).

    ECPU = max(Σ_c calls_c × max(1, usec_c / calls_c / BASELINE_USEC),
               (bytes_in + bytes_out − FRAMING_BYTES × Σ_c calls_c) / 1024)
    over the metered commands c: each command costs at least 1, a command slower than a simple
    read or write costs its engine time in baselines (vCPU dimension), and the period costs at
    least one per KiB of data transferred, RESP framing left out (data dimension); the larger of
    the two, as ElastiCache takes
    the larger per request. Per request ElastiCache adds max(1, KiB) up; the period's bytes are
    not split by command, so the sum is exact when requests are all up to 1 KiB or all larger,
    and below it when small and large requests mix. A period without a metered command costs 0
    (its bytes are upkeep: topology and health checks)."""
    vcpu = calls_total = 0.0
    for name, (calls, usec) in now.items():
        if name.partition("|")[0] in UPKEEP_COMMANDS:
            continue
        then_calls, then_usec = before.get(name, (0, 0))
        calls_delta = calls - then_calls if calls >= then_calls else calls  # a reset counter counts from 0
        if calls_delta <= 0:
            continue
        usec_delta = usec - then_usec if usec >= then_usec else usec
        calls_total += calls_delta
        vcpu += calls_delta * max(1.0, usec_delta / calls_delta / BASELINE_USEC)
    if not calls_total:
        return 0.0, 0.0
    data = max(0.0, bytes_in) + max(0.0, bytes_out) - FRAMING_BYTES * calls_total
    return max(vcpu, data / KILOBYTE), calls_total


@dataclass(frozen=True)
class NodeUsage:
    """One node's period as a serverless cache counts it (None figures: the period is unknown)."""

    ecpu: float
    commands: float
    bytes_in: float
    bytes_out: float
    first: bool = False  # the node's first period, since its engine started: its bytes are unknown


@dataclass(frozen=True)
class NodePeriod:
    """One node's row of the second, its role and its usage (None: its counts are unknown)."""

    primary: bool
    row: Sequence[float]
    usage: NodeUsage | None


def _sum(values: Sequence[float]) -> float:
    present = [v for v in values if v == v]
    return math.fsum(present) if present else NAN


def cache_row(periods: Sequence[NodePeriod]) -> list[float]:
    """One serverless row (catalog order) from the nodes' rows of one second: gauges of data
    (bytes, items) from the primaries, everything else over every node; counts only of the nodes
    whose period is known (a node's first period, since its engine started, counts its commands but
    not its new connections: those are its set-up's). Command
    families of replicas: GetTypeCmds only (reads through the ReaderEndpoint); their other
    commands are their primary's writes applied again."""
    index, out = catalog.INDEX, catalog.SERVERLESS_INDEX
    row = [NAN] * catalog.SERVERLESS_WIDTH
    primaries = [p.row for p in periods if p.primary]
    counted = [p for p in periods if p.usage is not None]
    for name in ("BytesUsedForCache", "CurrItems", "CurrVolatileItems"):
        row[out[name]] = _sum([r[index[name]] for r in primaries])
    # The monitor's own connection to each node is not the cache's.
    row[out["CurrConnections"]] = _sum([max(0.0, p.row[index["CurrConnections"]] - 1) for p in periods])
    for name in ("CacheHits", "CacheMisses", "Evictions", "Reclaimed", "GetTypeCmds"):
        row[out[name]] = _sum([p.row[index[name]] for p in counted])
    # A first period's connections since the engine started are the control plane's set-up.
    row[out["NewConnections"]] = _sum([p.row[index["NewConnections"]] for p in counted if p.usage and not p.usage.first])
    for name in catalog.FAMILY_NAMES[1:]:
        row[out[name]] = _sum([p.row[index[name]] for p in counted if p.primary])
    hits, misses = row[out["CacheHits"]], row[out["CacheMisses"]]
    if hits == hits and misses == misses and hits + misses > 0:
        row[out["CacheHitRate"]] = hits / (hits + misses) * 100
    for family, metric in (("GetTypeCmds", "SuccessfulReadRequestLatency"), ("SetTypeCmds", "SuccessfulWriteRequestLatency")):
        calls = usec = 0.0
        for p in counted if family == "GetTypeCmds" else [p for p in counted if p.primary]:
            n, latency = p.row[index[family]], p.row[index[family + "Latency"]]
            if n == n and n > 0 and latency == latency:
                calls += n
                usec += n * latency
        if calls:
            row[out[metric]] = usec / calls
    if counted:
        usages = [p.usage for p in counted if p.usage is not None]
        row[out["ElastiCacheProcessingUnits"]] = math.fsum(u.ecpu for u in usages)
        row[out["TotalCmdsCount"]] = math.fsum(u.commands for u in usages)
        row[out["NetworkBytesIn"]] = math.fsum(max(0.0, u.bytes_in) for u in usages)
        row[out["NetworkBytesOut"]] = math.fsum(max(0.0, u.bytes_out) for u in usages)
    return row


class CacheMetrics:
    """Collects the node periods of serverless groups during a tick and writes one row per cache."""

    def __init__(self, store: TimeSeriesStore) -> None:
        self._store = store
        self._pending: dict[tuple[str, str], list[NodePeriod]] = {}

    @staticmethod
    def cache_of(node: MonitoredNode) -> str | None:
        """The serverless cache a node serves (None: a node of a group or cluster of its own)."""
        if not identifiers.is_serverless_group(node.group_id):
            return None
        return node.group_id[len(identifiers.SERVERLESS_GROUP_PREFIX):]

    def add(self, node: MonitoredNode, row: Sequence[float], usage: NodeUsage | None) -> None:
        name = self.cache_of(node)
        if name is not None:
            primary = row[catalog.INDEX["IsMaster"]] == 1.0
            self._pending.setdefault((node.region, name), []).append(NodePeriod(primary, row, usage))

    def flush(self, second: int) -> None:
        pending, self._pending = self._pending, {}
        for (region, name), periods in pending.items():
            self._store.write_cache(region, name, second, cache_row(periods))
