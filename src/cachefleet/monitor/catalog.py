"""The AWS/ElastiCache metrics Cachefleet publishes per node: names, units, and how each is derived.

The order of :data:`METRICS` is the column order of the time-series files; appending is safe,
reordering is not (the files carry a fingerprint of this list and are recreated on mismatch).
Command families follow ElastiCache's definitions, derived from each command's flags and ACL
categories as the engine reports them (``COMMAND``), so Valkey and Redis OSS both classify
their own commands.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

NAMESPACE = "AWS/ElastiCache"


@dataclass(frozen=True)
class MetricDefinition:
    """A metric ElastiCache publishes: its name, unit and what it measures."""

    name: str
    unit: str
    help: str


# Command families: (metric name, what ElastiCache sums into it).
FAMILIES: tuple[tuple[str, str], ...] = (
    ("GetTypeCmds", "read-only commands"),
    ("SetTypeCmds", "write commands"),
    ("KeyBasedCmds", "generic key commands (@keyspace: del, expire, rename ...)"),
    ("NonKeyTypeCmds", "commands that take no key"),
    ("StringBasedCmds", "string commands"),
    ("HashBasedCmds", "hash commands"),
    ("ListBasedCmds", "list commands"),
    ("SetBasedCmds", "set commands"),
    ("SortedSetBasedCmds", "sorted set commands"),
    ("HyperLogLogBasedCmds", "HyperLogLog commands"),
    ("GeoSpatialBasedCmds", "geospatial commands"),
    ("StreamBasedCmds", "stream commands"),
    ("PubSubBasedCmds", "pub/sub commands"),
    ("EvalBasedCmds", "scripting commands (EVAL, FCALL ...)"),
    ("ClusterBasedCmds", "cluster commands"),
)
FAMILY_NAMES = tuple(name for name, _ in FAMILIES)
_CATEGORY_FAMILY = {
    "@keyspace": "KeyBasedCmds",
    "@string": "StringBasedCmds",
    "@hash": "HashBasedCmds",
    "@list": "ListBasedCmds",
    "@set": "SetBasedCmds",
    "@sortedset": "SortedSetBasedCmds",
    "@hyperloglog": "HyperLogLogBasedCmds",
    "@geo": "GeoSpatialBasedCmds",
    "@stream": "StreamBasedCmds",
    "@pubsub": "PubSubBasedCmds",
    "@scripting": "EvalBasedCmds",
}
_CLUSTER_COMMANDS = {"cluster", "readonly", "readwrite", "asking"}

METRICS: tuple[MetricDefinition, ...] = (
    # Host-level metrics, measured on the node's own process.
    MetricDefinition("CPUUtilization", "Percent", "CPU used by the node's process, as a share of all the host's cores"),
    MetricDefinition("FreeableMemory", "Bytes", "memory of the node type not used by the process (capped by the host's)"),
    MetricDefinition("NetworkBytesIn", "Bytes", "bytes the engine read from the network in the period"),
    MetricDefinition("NetworkBytesOut", "Bytes", "bytes the engine wrote to the network in the period"),
    # Engine metrics.
    MetricDefinition("EngineCPUUtilization", "Percent", "CPU used by the engine's main thread, as a share of one core"),
    MetricDefinition("BytesUsedForCache", "Bytes", "used_memory"),
    MetricDefinition("DatabaseMemoryUsagePercentage", "Percent", "used_memory / maxmemory"),
    MetricDefinition("MemoryFragmentationRatio", "None", "mem_fragmentation_ratio"),
    MetricDefinition("CurrConnections", "Count", "client connections (connected_clients)"),
    MetricDefinition("NewConnections", "Count", "connections accepted in the period"),
    MetricDefinition("CurrItems", "Count", "keys in all databases"),
    MetricDefinition("CurrVolatileItems", "Count", "keys with a TTL in all databases"),
    MetricDefinition("Evictions", "Count", "keys evicted in the period (maxmemory policy)"),
    MetricDefinition("Reclaimed", "Count", "keys expired in the period"),
    MetricDefinition("CacheHits", "Count", "successful key lookups in the period"),
    MetricDefinition("CacheMisses", "Count", "unsuccessful key lookups in the period"),
    MetricDefinition("CacheHitRate", "Percent", "hits / (hits + misses) in the period"),
    MetricDefinition("ReplicationLag", "Seconds", "replica only: how far behind its primary's stream it is, in seconds (0: caught up)"),
    MetricDefinition("ReplicationBytes", "Bytes", "primary only: bytes sent to its replicas in the period"),
    MetricDefinition("IsMaster", "Count", "1 on a primary, 0 on a replica"),
    MetricDefinition("MasterLinkHealthStatus", "Count", "replica only: 1 when the link to the primary is up"),
    MetricDefinition("SaveInProgress", "Count", "1 while a background save (or AOF rewrite) runs"),
    MetricDefinition("AuthenticationFailures", "Count", "failed AUTH attempts in the period"),
    MetricDefinition("CommandAuthorizationFailures", "Count", "commands denied by ACL in the period"),
    MetricDefinition("KeyAuthorizationFailures", "Count", "key accesses denied by ACL in the period"),
    MetricDefinition("ChannelAuthorizationFailures", "Count", "channel accesses denied by ACL in the period"),
    MetricDefinition("DB0AverageTTL", "Milliseconds", "average TTL of the keys of db0 that have one"),
    MetricDefinition("ActiveDefragHits", "Count", "value reallocations by active defragmentation in the period"),
    *(MetricDefinition(name, "Count", f"{what} in the period") for name, what in FAMILIES),
    *(MetricDefinition(name + "Latency", "Microseconds", f"average latency of {what}") for name, what in FAMILIES),
    MetricDefinition("GlobalDatastoreReplicationLag", "Seconds",
                     "a global datastore secondary's primary only: how far behind the primary region's primary it is"),
)
NAMES = tuple(m.name for m in METRICS)
INDEX = {name: i for i, name in enumerate(NAMES)}
UNITS = {m.name: m.unit for m in METRICS}
WIDTH = len(METRICS)
FINGERPRINT = zlib.crc32(",".join(NAMES).encode())
FAMILY_COLUMNS = tuple(INDEX[name] for name in FAMILY_NAMES)
LATENCY_COLUMNS = tuple(INDEX[name + "Latency"] for name in FAMILY_NAMES)
_FAMILY_POSITION = {name: i for i, name in enumerate(FAMILY_NAMES)}


def classify(name: str, flags: list[str], categories: list[str], has_keys: bool) -> tuple[int, ...]:
    """The positions (in FAMILIES) of the families a command counts in."""
    families = set()
    if "readonly" in flags:
        families.add("GetTypeCmds")
    if "write" in flags:
        families.add("SetTypeCmds")
    if not has_keys:
        families.add("NonKeyTypeCmds")
    for category in categories:
        family = _CATEGORY_FAMILY.get(category)
        if family is not None:
            families.add(family)
    if name in _CLUSTER_COMMANDS:
        families.add("ClusterBasedCmds")
    return tuple(sorted(_FAMILY_POSITION[f] for f in families))


def classify_command_reply(reply: list[object]) -> dict[str, tuple[int, ...]]:
    """Families of every command of a ``COMMAND`` / ``COMMAND INFO`` reply (RESP2 arrays)."""
    found: dict[str, tuple[int, ...]] = {}
    for entry in reply:
        if not isinstance(entry, list) or len(entry) < 7:
            continue
        name = str(entry[0]).lower()
        flags = [str(f) for f in entry[2]] if isinstance(entry[2], list) else []
        categories = [str(c) for c in entry[6]] if isinstance(entry[6], list) else []
        key_specs = entry[8] if len(entry) > 8 and isinstance(entry[8], list) else []
        first_key = entry[3] if isinstance(entry[3], int) else 0
        found[name] = classify(name, flags, categories, bool(first_key) or bool(key_specs))
    return found


# ---------------------------------------------------------------------- serverless caches
# What ElastiCache Serverless publishes for a cache as a whole (dimension ``clusterId``, the cache
# name), summed or averaged over the nodes of its hidden group every second (monitor/serverless.py).
# Their own column order (the cache series files carry this list's fingerprint).
SERVERLESS_DIMENSION = "clusterId"
SERVERLESS_METRICS: tuple[MetricDefinition, ...] = (
    MetricDefinition("BytesUsedForCache", "Bytes", "used_memory of the shard primaries, summed"),
    MetricDefinition("ElastiCacheProcessingUnits", "Count",
                     "ECPUs of the commands in the period (see README: Serverless caches, metrics)"),
    MetricDefinition("SuccessfulReadRequestLatency", "Microseconds",
                     "engine time per read command (GetTypeCmds' usec / calls of commandstats)"),
    MetricDefinition("SuccessfulWriteRequestLatency", "Microseconds",
                     "engine time per write command (SetTypeCmds' usec / calls of commandstats)"),
    MetricDefinition("TotalCmdsCount", "Count", "commands of clients in the period (upkeep commands left out)"),
    MetricDefinition("CacheHits", "Count", "successful key lookups in the period"),
    MetricDefinition("CacheMisses", "Count", "unsuccessful key lookups in the period"),
    MetricDefinition("CacheHitRate", "Percent", "hits / (hits + misses) in the period"),
    MetricDefinition("CurrConnections", "Count", "client connections (the monitor's own left out)"),
    MetricDefinition("NewConnections", "Count", "connections accepted in the period"),
    MetricDefinition("CurrItems", "Count", "keys of the shard primaries"),
    MetricDefinition("CurrVolatileItems", "Count", "keys with a TTL of the shard primaries"),
    MetricDefinition("NetworkBytesIn", "Bytes", "bytes read from clients in the period (the monitor's own left out)"),
    MetricDefinition("NetworkBytesOut", "Bytes", "bytes written to clients in the period (the monitor's own left out)"),
    MetricDefinition("Evictions", "Count", "keys evicted in the period (none: the cache never evicts)"),
    MetricDefinition("Reclaimed", "Count", "keys expired in the period"),
    *(MetricDefinition(name, "Count", f"{what} in the period") for name, what in FAMILIES),
)
SERVERLESS_NAMES = tuple(m.name for m in SERVERLESS_METRICS)
SERVERLESS_INDEX = {name: i for i, name in enumerate(SERVERLESS_NAMES)}
SERVERLESS_UNITS = {m.name: m.unit for m in SERVERLESS_METRICS}
SERVERLESS_WIDTH = len(SERVERLESS_METRICS)
SERVERLESS_FINGERPRINT = zlib.crc32(("serverless:" + ",".join(SERVERLESS_NAMES)).encode())
