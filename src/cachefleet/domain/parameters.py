"""The catalogue of ElastiCache cache parameters for the engine families Cachefleet runs.

Owns, per parameter group family (``redis7``, ``valkey8``, ``valkey9``): every parameter
ElastiCache documents for that family with its default, DataType, AllowedValues (written as
ElastiCache writes them: ``yes,no``, ``0-``, ``0,20-``, ``1-75``), IsModifiable, ChangeType and
MinimumEngineVersion; the node-type-specific parameters (``maxmemory`` and the replica output
buffer limits, as CacheNodeTypeSpecificParameters shows them); the ``default.<family>`` and
``default.<family>.cluster.on`` groups; value validation; and how each value takes effect:
as an engine setting (the name and value to CONFIG SET), as something Cachefleet computes
(the engine's ``maxmemory`` from ``reserved-memory-percent``), or as something Cachefleet does
itself (``cluster-enabled``, ``close-on-replica-write``).

Sources: ElastiCache's "Engine specific parameters" page (Valkey 9.x/8.x and Redis OSS 7
changes, node-type specific maxmemory tables), the AWS CLI's describe-engine-default-parameters
example (redis5.0 family: names, AllowedValues, ChangeType of the parameters carried forward)
and botocore's ElastiCache examples (node-type specific parameter shapes). Where ElastiCache
publishes no AllowedValues for a parameter, the engine's own range is used.

Everything here is pure: no I/O. Which of these settings an installed engine really has is
measured by ``engine/config_probe.py``; :func:`offered` drops what the engine lacks.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from cachefleet.domain import nodetypes
from cachefleet.domain.errors import InvalidParameterCombination, InvalidParameterValue

FAMILIES: tuple[str, ...] = ("redis7", "valkey8", "valkey9")
MAX_PARAMETERS_PER_MODIFY = 20
# ElastiCache's default quota of parameter groups per Region (Service Quotas code L-3F15A733).
PARAMETER_GROUP_QUOTA = 150


class DataType(StrEnum):
    STRING = "string"
    INTEGER = "integer"


class ChangeType(StrEnum):
    IMMEDIATE = "immediate"
    REQUIRES_REBOOT = "requires-reboot"


class Source(StrEnum):
    """Where a parameter's value comes from, as DescribeCacheParameters filters them."""

    USER = "user"
    SYSTEM = "system"
    ENGINE_DEFAULT = "engine-default"


class ApplyStatus(StrEnum):
    """A cluster's CacheParameterGroup.ParameterApplyStatus."""

    IN_SYNC = "in-sync"
    APPLYING = "applying"
    PENDING_REBOOT = "pending-reboot"


class Effect(StrEnum):
    """How a parameter's value takes effect on a node."""

    # An engine setting: CONFIG SET <engine name> <value> (the value transformed where the
    # engine spells it differently); static ones are written to the config file at start.
    ENGINE = "engine"
    # One field of the engine's client-output-buffer-limit <class> <hard> <soft> <seconds>.
    OUTPUT_BUFFER = "output-buffer"
    # Cachefleet derives the engine's maxmemory from it (node type memory minus the reserve).
    MEMORY = "memory"
    # Decides how Cachefleet starts the group's nodes (cluster mode); never CONFIG SET.
    CLUSTER_MODE = "cluster-mode"
    # Cachefleet acts on client connections itself: with close-on-replica-write yes, the
    # normal clients of a node that becomes a replica are disconnected at the role change.
    CONNECTIONS = "connections"
    # Shown as ElastiCache shows it; not modifiable, and the node keeps its own setting
    # (maxclients is bounded by the host's file limit; replicas never chain in Cachefleet).
    DESCRIBED = "described"


@dataclass(frozen=True)
class Parameter:
    """One cache parameter of a family, with its default value in that family."""

    name: str
    default: str
    data_type: DataType
    allowed_values: str
    modifiable: bool
    change_type: ChangeType
    minimum_engine_version: str
    description: str
    effect: Effect
    # The engine setting it maps to, when that is not its own name (Effect.ENGINE).
    engine_name: str = ""
    # Engine settings that must exist (and work) on the engine for the parameter to be offered.
    requires: tuple[str, ...] = ()
    # Modifiable only while no cluster uses the group (ElastiCache: "conditionally modifiable").
    only_while_unused: bool = False


@dataclass(frozen=True)
class NodeTypeSpecificParameter:
    """A parameter whose value depends on the node type (CacheNodeTypeSpecificParameters)."""

    name: str
    data_type: DataType
    allowed_values: str
    modifiable: bool
    change_type: ChangeType
    minimum_engine_version: str
    description: str
    values: tuple[tuple[str, str], ...]  # (CacheNodeType, Value), sorted by node type

    def value_for(self, node_type: str) -> str:
        for candidate, value in self.values:
            if candidate == node_type:
                return value
        nodetypes.check_node_type(node_type)
        raise InvalidParameterValue(f"Parameter {self.name} has no value for node type {node_type}.")


@dataclass(frozen=True)
class EngineSetting:
    """What a node's engine is told: CONFIG SET <name> <value>, or a config file line."""

    name: str
    value: str


# ---------------------------------------------------------------------------------------------
# Node types: ElastiCache's maxmemory per node type (bytes), from its "node-type specific
# parameters" tables (the Valkey and the Redis OSS tables agree on every type listed here).
# ---------------------------------------------------------------------------------------------

_NODE_MAXMEMORY: dict[str, int] = {
    "cache.t2.micro": 581959680, "cache.t2.small": 1665138688, "cache.t2.medium": 3461349376,
    "cache.t3.micro": 536870912, "cache.t3.small": 1471026299, "cache.t3.medium": 3317862236,
    "cache.t4g.micro": 536870912, "cache.t4g.small": 1471026299, "cache.t4g.medium": 3317862236,
    "cache.m4.large": 6892593152, "cache.m4.xlarge": 15328501760, "cache.m4.2xlarge": 31889126359,
    "cache.m4.4xlarge": 65257290629, "cache.m4.10xlarge": 166047614239,
    "cache.m5.large": 6854542746, "cache.m5.xlarge": 13891921715, "cache.m5.2xlarge": 27966669210,
    "cache.m5.4xlarge": 56116178125, "cache.m5.12xlarge": 168715971994, "cache.m5.24xlarge": 337500562842,
    "cache.m6g.large": 6854542746, "cache.m6g.xlarge": 13891921715, "cache.m6g.2xlarge": 27966669210,
    "cache.m6g.4xlarge": 56116178125, "cache.m6g.8xlarge": 111325552312, "cache.m6g.12xlarge": 168715971994,
    "cache.m6g.16xlarge": 225000375228,
    "cache.m7g.large": 6854542746, "cache.m7g.xlarge": 13891921715, "cache.m7g.2xlarge": 27966669210,
    "cache.m7g.4xlarge": 56116178125, "cache.m7g.8xlarge": 111325552312, "cache.m7g.12xlarge": 168715971994,
    "cache.m7g.16xlarge": 225000375228,
    "cache.r4.large": 13201781556, "cache.r4.xlarge": 26898228839, "cache.r4.2xlarge": 54197537997,
    "cache.r4.4xlarge": 108858546586, "cache.r4.8xlarge": 218255432090, "cache.r4.16xlarge": 437021573120,
    "cache.r5.large": 14037181030, "cache.r5.xlarge": 28261849702, "cache.r5.2xlarge": 56711183565,
    "cache.r5.4xlarge": 113609865216, "cache.r5.12xlarge": 341206346547, "cache.r5.24xlarge": 682485973811,
    "cache.r6g.large": 14037181030, "cache.r6g.xlarge": 28261849702, "cache.r6g.2xlarge": 56711183565,
    "cache.r6g.4xlarge": 113609865216, "cache.r6g.8xlarge": 225000375228, "cache.r6g.12xlarge": 341206346547,
    "cache.r6g.16xlarge": 450000750456,
    "cache.r7g.large": 14037181030, "cache.r7g.xlarge": 28261849702, "cache.r7g.2xlarge": 56711183565,
    "cache.r7g.4xlarge": 113609865216, "cache.r7g.8xlarge": 225000375228, "cache.r7g.12xlarge": 341206346547,
    "cache.r7g.16xlarge": 450000750456,
    "cache.c7gn.large": 3317862236, "cache.c7gn.xlarge": 6854542746, "cache.c7gn.2xlarge": 13891921715,
    "cache.c7gn.4xlarge": 27966669210, "cache.c7gn.8xlarge": 56116178125, "cache.c7gn.12xlarge": 84357985997,
    "cache.c7gn.16xlarge": 113609865216,
}


def node_maxmemory(node_type: str) -> int:
    """ElastiCache's maxmemory of a node type: the memory before the reserve is taken off."""
    nodetypes.check_node_type(node_type)
    return _NODE_MAXMEMORY[node_type]


def _replica_buffer_limit(node_type: str) -> int:
    # ElastiCache's published replica output buffer limits are a tenth of the node's maxmemory
    # (botocore's DescribeEngineDefaultParameters example: 650117120 for 6501171200, ...).
    return round(_NODE_MAXMEMORY[node_type] / 10)


# ---------------------------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------------------------

_YES_NO = "yes,no"
_POLICIES = "volatile-lru,allkeys-lru,volatile-lfu,allkeys-lfu,volatile-random,allkeys-random,volatile-ttl,noeviction"
# Event classes the engines accept in notify-keyspace-events (ElastiCache documents K E g $ l s
# h z x e A; Redis OSS 7 and Valkey add t (stream), m (key miss), d (module) and n (new key)).
_KEYSPACE_EVENT_CHARACTERS = "KEg$lshzxeAtmdn"
_DEFRAG = ("activedefrag",)

_I = DataType.INTEGER
_S = DataType.STRING
_NOW = ChangeType.IMMEDIATE
_REBOOT = ChangeType.REQUIRES_REBOOT


def _p(
    name: str,
    default: str,
    data_type: DataType,
    allowed: str,
    description: str,
    *,
    modifiable: bool = True,
    change: ChangeType = _NOW,
    effect: Effect = Effect.ENGINE,
    engine_name: str = "",
    requires: tuple[str, ...] = (),
    only_while_unused: bool = False,
    since: str = "",
) -> Parameter:
    if effect is Effect.ENGINE and not requires:
        requires = (engine_name or name,)
    # minimum_engine_version "" is filled in with the family's first version by _family().
    return Parameter(
        name=name, default=default, data_type=data_type, allowed_values=allowed, modifiable=modifiable,
        change_type=change, minimum_engine_version=since, description=description, effect=effect,
        engine_name=engine_name, requires=requires, only_while_unused=only_while_unused,
    )


def _buffer(name: str, default: str, description: str, *, modifiable: bool = True) -> Parameter:
    return _p(name, default, _I, "0-", description, modifiable=modifiable, effect=Effect.OUTPUT_BUFFER,
              requires=("client-output-buffer-limit",))


_REDIS7: tuple[Parameter, ...] = (
    _p("acl-pubsub-default", "allchannels", _S, "resetchannels,allchannels",
       "Default pub/sub channel permissions of ACL users; existing users keep theirs until they are "
       "updated or the cluster is rebooted."),
    _p("acllog-max-len", "128", _I, "0-", "Maximum number of entries in the ACL log."),
    _p("active-defrag-cycle-max", "75", _I, "1-75", "Maximal effort for defrag in CPU percentage.",
       requires=("active-defrag-cycle-max", *_DEFRAG)),
    _p("active-defrag-cycle-min", "5", _I, "1-75", "Minimal effort for defrag in CPU percentage.",
       requires=("active-defrag-cycle-min", *_DEFRAG)),
    _p("active-defrag-ignore-bytes", "104857600", _I, "1048576-",
       "Minimum amount of fragmentation waste to start active defrag.",
       requires=("active-defrag-ignore-bytes", *_DEFRAG)),
    _p("active-defrag-max-scan-fields", "1000", _I, "1-1000000",
       "Maximum number of set/hash/zset/list fields processed from the main dictionary scan.",
       requires=("active-defrag-max-scan-fields", *_DEFRAG)),
    _p("active-defrag-threshold-lower", "10", _I, "1-100",
       "Minimum percentage of fragmentation to start active defrag.",
       requires=("active-defrag-threshold-lower", *_DEFRAG)),
    _p("active-defrag-threshold-upper", "100", _I, "1-100",
       "Maximum percentage of fragmentation at which maximum effort is used.",
       requires=("active-defrag-threshold-upper", *_DEFRAG)),
    _p("active-expire-effort", "1", _I, "1-10",
       "Effort spent by the periodic job that expires keys past their time to live."),
    _p("activedefrag", "no", _S, _YES_NO, "Enables active memory defragmentation."),
    _p("appendfsync", "everysec", _S, "always,everysec,no", "The fsync policy for AOF persistence.", modifiable=False),
    _p("appendonly", "no", _S, _YES_NO, "Enables AOF persistence.", modifiable=False),
    _buffer("client-output-buffer-limit-normal-hard-limit", "0", "Normal client output buffer hard limit in bytes."),
    _buffer("client-output-buffer-limit-normal-soft-limit", "0", "Normal client output buffer soft limit in bytes."),
    _buffer("client-output-buffer-limit-normal-soft-seconds", "0",
            "Normal client output buffer soft limit in seconds."),
    _buffer("client-output-buffer-limit-pubsub-hard-limit", "33554432",
            "Pubsub client output buffer hard limit in bytes."),
    _buffer("client-output-buffer-limit-pubsub-soft-limit", "8388608",
            "Pubsub client output buffer soft limit in bytes."),
    _buffer("client-output-buffer-limit-pubsub-soft-seconds", "60",
            "Pubsub client output buffer soft limit in seconds."),
    _buffer("client-output-buffer-limit-replica-soft-seconds", "60",
            "Replica client output buffer soft limit in seconds.", modifiable=False),
    _p("client-query-buffer-limit", "1073741824", _I, "1048576-1073741824", "Max size of a single client query buffer."),
    _p("close-on-replica-write", "yes", _S, _YES_NO,
       "If enabled, clients who attempt to write to a read-only replica will be disconnected.",
       effect=Effect.CONNECTIONS),
    _p("cluster-allow-pubsubshard-when-down", "yes", _S, _YES_NO,
       "Allows nodes to serve shard pub/sub traffic while the cluster is down, as long as they own the slots."),
    _p("cluster-allow-reads-when-down", "no", _S, _YES_NO,
       "Lets a cluster mode enabled node serve reads while it cannot reach a quorum of primaries."),
    _p("cluster-enabled", "no", _S, _YES_NO, "Enable cluster mode.", change=_REBOOT,
       effect=Effect.CLUSTER_MODE, requires=("cluster-enabled",), only_while_unused=True),
    _p("cluster-preferred-endpoint-type", "tls-dynamic", _S, "ip,tls-dynamic",
       "Endpoint type given in MOVED/ASK replies and CLUSTER SLOTS/SHARDS: ip, or a hostname when "
       "encryption in transit is enabled (tls-dynamic)."),
    _p("cluster-require-full-coverage", "no", _S, _YES_NO,
       "Whether cluster becomes unavailable if one or more slots are not covered."),
    _p("databases", "16", _I, "1-1200000", "Set the number of databases.", change=_REBOOT, only_while_unused=True),
    _p("hash-max-listpack-entries", "512", _I, "0-",
       "The maximum number of hash entries in order for the dataset to be compressed."),
    _p("hash-max-listpack-value", "64", _I, "0-",
       "The threshold of biggest hash entries in order for the dataset to be compressed."),
    _p("hll-sparse-max-bytes", "3000", _I, "1-16000", "HyperLogLog sparse representation bytes limit."),
    _p("latency-tracking", "no", _S, _YES_NO,
       "Tracks per-command latencies for INFO latencystats and the LATENCY command."),
    _p("lazyfree-lazy-eviction", "no", _S, _YES_NO, "Perform an asynchronous delete on evictions."),
    _p("lazyfree-lazy-expire", "no", _S, _YES_NO, "Perform an asynchronous delete on expired keys."),
    _p("lazyfree-lazy-server-del", "no", _S, _YES_NO, "Perform an asynchronous delete on key updates."),
    _p("lazyfree-lazy-user-del", "no", _S, _YES_NO, "When yes, DEL acts the same as UNLINK."),
    _p("lfu-decay-time", "1", _I, "0-",
       "The amount of time in minutes to decrement the key counter for LFU eviction policy."),
    _p("lfu-log-factor", "10", _I, "1-", "The log factor for incrementing key counter for LFU eviction policy."),
    _p("list-compress-depth", "0", _I, "0-",
       "Number of quicklist nodes from each side of the list to exclude from compression."),
    _p("lua-time-limit", "5000", _I, "5000",
       "Max execution time of a Lua script in milliseconds.", modifiable=False),
    _p("maxclients", "65000", _I, "1-65000", "The maximum number of clients.", modifiable=False,
       change=_REBOOT, effect=Effect.DESCRIBED),
    _p("maxmemory-policy", "volatile-lru", _S, _POLICIES, "Max memory policy."),
    _p("maxmemory-samples", "3", _I, "1-", "Max memory samples."),
    _p("min-replicas-max-lag", "10", _I, "0-",
       "The maximum replica lag in seconds beyond which the primary stops taking writes."),
    _p("min-replicas-to-write", "0", _I, "0-",
       "The minimum number of replicas within min-replicas-max-lag for the primary to take writes."),
    _p("notify-keyspace-events", "", _S, "",
       "The keyspace events for the engine to notify Pub/Sub clients about. By default all "
       "notifications are disabled."),
    _p("proto-max-bulk-len", "536870912", _I, "1048576-536870912", "Max size of a single element request."),
    _p("repl-backlog-size", "1048576", _I, "16384-", "The replication backlog size in bytes for PSYNC."),
    _p("repl-backlog-ttl", "3600", _I, "0-",
       "Seconds after the last replica disconnects before the primary frees the backlog; 0 never frees it."),
    _p("replica-allow-chaining", "no", _S, _YES_NO, "Configures if chaining of replicas is allowed.",
       modifiable=False, effect=Effect.DESCRIBED),
    _p("replica-ignore-maxmemory", "yes", _S, _YES_NO,
       "Determines if replica ignores maxmemory setting by not evicting items independent from the primary.",
       modifiable=False),
    _p("replica-lazy-flush", "no", _S, _YES_NO, "Perform an asynchronous flushDB during replica sync.",
       modifiable=False),
    _p("reserved-memory-percent", "25", _I, "0-100",
       "The percent of memory reserved for non-cache memory usage.", effect=Effect.MEMORY, requires=("maxmemory",)),
    _p("set-max-intset-entries", "512", _I, "0-",
       "The limit in the size of the set in order for the dataset to be compressed."),
    _p("slowlog-log-slower-than", "10000", _I, "-",
       "The execution time, in microseconds, to exceed in order for the command to get logged."),
    _p("slowlog-max-len", "128", _I, "0-", "The length of the slow log."),
    _p("stream-node-max-bytes", "4096", _I, "0-", "The maximum size of a single node in a stream in bytes."),
    _p("stream-node-max-entries", "100", _I, "0-", "The maximum number of items a single node in a stream can contain."),
    _p("tcp-keepalive", "300", _I, "0-", "If non-zero, send ACKs every given number of seconds."),
    _p("timeout", "0", _I, "0,20-",
       "Close connection if client is idle for a given number of seconds, or never if 0."),
    _p("tracking-table-max-keys", "1000000", _I, "0-",
       "The maximum number of keys in the client-side caching tracking table."),
    _p("zset-max-listpack-entries", "128", _I, "0-",
       "The maximum number of sorted set entries in order for the dataset to be compressed."),
    _p("zset-max-listpack-value", "64", _I, "0-",
       "The threshold of biggest sorted set entries in order for the dataset to be compressed."),
)

# Not listed in a family's parameters: a group uses reserved-memory-percent or reserved-memory,
# never both, and new groups use reserved-memory-percent. Setting one switches the group over.
_RESERVED_MEMORY = _p("reserved-memory", "0", _I, "0-", "The amount of memory reserved for non-cache memory usage, in bytes.",
                      effect=Effect.MEMORY, requires=("maxmemory",))

# Valkey 8.0: removed from the family's parameters (the engine keeps its own settings).
_REMOVED_IN_VALKEY8 = frozenset({
    "lazyfree-lazy-eviction", "lazyfree-lazy-expire", "lazyfree-lazy-server-del", "lazyfree-lazy-user-del",
    "replica-lazy-flush",
})


def _changed_in_valkey8(parameter: Parameter) -> Parameter:
    if parameter.name == "repl-backlog-size":
        return replace(parameter, default="10485760")
    if parameter.name == "maxmemory-samples":
        return replace(parameter, allowed_values="1-64")
    return parameter


_ADDED_IN_VALKEY8: tuple[Parameter, ...] = (
    _p("extended-redis-compatibility", "yes", _S, _YES_NO,
       "Makes Valkey present itself as Redis OSS 7.2 (HELLO, INFO) for tools and clients that need it."),
    _p("commandlog-request-larger-than", "1048576", _I, "0-",
       "The size, in bytes, above which requests are logged by the command log.", since="8.1.0"),
    _p("commandlog-large-request-max-len", "128", _I, "0-1024",
       "The maximum length of the command log for large requests.", since="8.1.0"),
    _p("commandlog-reply-larger-than", "1048576", _I, "0-",
       "The size, in bytes, above which replies are logged by the command log.", since="8.1.0"),
    _p("commandlog-large-reply-max-len", "128", _I, "0-1024",
       "The maximum length of the command log for large replies.", since="8.1.0"),
)
_ADDED_IN_VALKEY9: tuple[Parameter, ...] = (
    # ElastiCache's table says default 0, range 1 to 10,000; the engine refuses 0 (minimum 1).
    _p("cluster-databases", "1", _I, "1-10000", "Number of databases available in cluster mode, set at creation.",
       modifiable=False, change=_REBOOT),
)

_FIRST_VERSION = {"redis7": "7.0.0", "valkey8": "8.0.0", "valkey9": "9.0.0"}


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"[0-9]+", version)[:3])


def _with_version(parameters: tuple[Parameter, ...], family: str) -> tuple[Parameter, ...]:
    first = _FIRST_VERSION[family]
    return tuple(
        replace(p, minimum_engine_version=max(p.minimum_engine_version or first, first, key=_version_key))
        for p in parameters
    )


def _valkey8_base() -> tuple[Parameter, ...]:
    kept = []
    for parameter in _REDIS7:
        if parameter.name in _REMOVED_IN_VALKEY8:
            continue
        kept.append(_changed_in_valkey8(parameter))
    return tuple(kept) + _ADDED_IN_VALKEY8


def _sorted(parameters: tuple[Parameter, ...]) -> tuple[Parameter, ...]:
    # ElastiCache lists parameters by name.
    return tuple(sorted(parameters, key=lambda p: p.name))


_CATALOGUE: dict[str, tuple[Parameter, ...]] = {
    "redis7": _sorted(_with_version(_REDIS7, "redis7")),
    "valkey8": _sorted(_with_version(_valkey8_base(), "valkey8")),
    "valkey9": _sorted(_with_version(_valkey8_base() + _ADDED_IN_VALKEY9, "valkey9")),
}
_HIDDEN: dict[str, tuple[Parameter, ...]] = {
    family: _with_version((_RESERVED_MEMORY,), family) for family in FAMILIES
}


def _node_type_specific(family: str) -> tuple[NodeTypeSpecificParameter, ...]:
    first = _FIRST_VERSION[family]
    types = sorted(nodetypes.NODE_TYPES)
    buffer = tuple((t, str(_replica_buffer_limit(t))) for t in types)
    return (
        NodeTypeSpecificParameter(
            "client-output-buffer-limit-replica-hard-limit", _I, "0-", False, _NOW, first,
            "Replica client output buffer hard limit in bytes.", buffer,
        ),
        NodeTypeSpecificParameter(
            "client-output-buffer-limit-replica-soft-limit", _I, "0-", False, _NOW, first,
            "Replica client output buffer soft limit in bytes.", buffer,
        ),
        NodeTypeSpecificParameter(
            "maxmemory", _I, "0-", False, _NOW, first,
            "The maximum configurable amount of memory to use to store items, in bytes.",
            tuple((t, str(_NODE_MAXMEMORY[t])) for t in types),
        ),
    )


_NODE_TYPE_SPECIFIC = {family: _node_type_specific(family) for family in FAMILIES}


# ---------------------------------------------------------------------------------------------
# Lookups
# ---------------------------------------------------------------------------------------------


def check_family(family: str) -> str:
    if family not in _CATALOGUE:
        raise InvalidParameterValue(
            f"Invalid CacheParameterGroupFamily '{family}': this Cachefleet runs {', '.join(FAMILIES)}."
        )
    return family


def family_of(engine: str, version: str) -> str:
    """The parameter group family of an engine version: redis 7.x -> redis7, valkey 8.x -> valkey8."""
    family = f"{engine}{version.split('.')[0]}"
    return check_family(family)


def family_parameters(family: str, cluster_on: bool = False) -> tuple[Parameter, ...]:
    """The parameters of the family's default group, by name (``.cluster.on`` when cluster_on)."""
    parameters = _CATALOGUE[check_family(family)]
    if not cluster_on:
        return parameters
    return tuple(replace(p, default="yes") if p.name == "cluster-enabled" else p for p in parameters)


def node_type_specific_parameters(family: str) -> tuple[NodeTypeSpecificParameter, ...]:
    return _NODE_TYPE_SPECIFIC[check_family(family)]


def parameter(family: str, name: str) -> Parameter:
    """A parameter of the family by name (reserved-memory included); InvalidParameterValue if none."""
    for candidate in _CATALOGUE[check_family(family)] + _HIDDEN[family]:
        if candidate.name == name:
            return candidate
    known = [p.name for p in _CATALOGUE[family]] + [p.name for p in _NODE_TYPE_SPECIFIC[family]]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    raise InvalidParameterValue(f"Parameter {name} doesn't exist.{hint}")


def _node_type_parameter(family: str, name: str) -> NodeTypeSpecificParameter | None:
    for candidate in _NODE_TYPE_SPECIFIC[check_family(family)]:
        if candidate.name == name:
            return candidate
    return None


def default_values(family: str, cluster_on: bool = False) -> dict[str, str]:
    return {p.name: p.default for p in family_parameters(family, cluster_on)}


def default_group_name(family: str, cluster_on: bool = False) -> str:
    return f"default.{check_family(family)}" + (".cluster.on" if cluster_on else "")


def default_group_description(family: str, cluster_on: bool = False) -> str:
    # As ElastiCache describes its default groups.
    if cluster_on:
        return f"Customized default parameter group for {family} with cluster mode on"
    return f"Default parameter group for {family}"


def default_groups() -> tuple[tuple[str, str, bool], ...]:
    """(group name, family, cluster_on) of every default group Cachefleet has."""
    return tuple((default_group_name(f, on), f, on) for f in FAMILIES for on in (False, True))


def is_default_group(name: str) -> bool:
    return name.startswith("default.")


_GROUP_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def group_name(value: str) -> str:
    """A CacheParameterGroupName as ElastiCache stores it (lower case).

    ElastiCache's names begin with a letter and hold letters, digits and hyphens (no periods:
    names with periods are the default groups'); they do not end with a hyphen or hold two in
    a row; at most 255 characters.
    """
    lowered = value.lower()
    problem = ""
    if not lowered:
        problem = "must not be blank"
    elif len(lowered) > 255:
        problem = "must be at most 255 characters long"
    elif not _GROUP_NAME.match(lowered):
        problem = "must begin with a letter and contain only ASCII letters, digits and hyphens"
    elif lowered.endswith("-") or "--" in lowered:
        problem = "must not end with a hyphen or contain two consecutive hyphens"
    if problem:
        raise InvalidParameterValue(f"Invalid cache parameter group name '{value}': the CacheParameterGroupName {problem}.")
    return lowered


def check_modify_count(count: int) -> None:
    if count < 1:
        raise InvalidParameterValue("ParameterNameValues must name at least one parameter.")
    if count > MAX_PARAMETERS_PER_MODIFY:
        # ElastiCache's wording (and error code) for a 21st parameter.
        raise InvalidParameterCombination(
            f"Cannot modify more than {MAX_PARAMETERS_PER_MODIFY} parameters in a single request"
        )


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

_INTEGER = re.compile(r"^-?[0-9]+$")
_RANGE = re.compile(r"^(?P<low>-?[0-9]+)?-(?P<high>-?[0-9]+)?$")


def _integer_allowed(value: int, allowed: str) -> bool:
    if not allowed:
        return True
    for item in allowed.split(","):
        if _INTEGER.match(item):
            if value == int(item):
                return True
            continue
        match = _RANGE.match(item)
        if match is None:
            continue
        low, high = match.group("low"), match.group("high")
        if (low is None or value >= int(low)) and (high is None or value <= int(high)):
            return True
    return False


def _describe_allowed(parameter: Parameter | NodeTypeSpecificParameter) -> str:
    if parameter.name == "notify-keyspace-events":
        return f"any combination of the characters {_KEYSPACE_EVENT_CHARACTERS}, or an empty string"
    if parameter.data_type is DataType.INTEGER and parameter.allowed_values in ("", "-"):
        return "any integer"
    return parameter.allowed_values


def _allowed(parameter: Parameter | NodeTypeSpecificParameter, value: str) -> bool:
    if parameter.data_type is DataType.INTEGER:
        return bool(_INTEGER.match(value)) and _integer_allowed(int(value), parameter.allowed_values)
    if parameter.name == "notify-keyspace-events":
        return all(character in _KEYSPACE_EVENT_CHARACTERS for character in value)
    if not parameter.allowed_values:
        return True
    return value in parameter.allowed_values.split(",")


def validate(family: str, name: str, value: str) -> str:
    """The value, if the parameter takes it; InvalidParameterValue naming the allowed values if not."""
    found: Parameter | NodeTypeSpecificParameter | None = _node_type_parameter(family, name)
    if found is None:
        found = parameter(family, name)
    if not _allowed(found, value):
        raise InvalidParameterValue(
            f"Invalid value '{value}' for parameter {name}: allowed values are {_describe_allowed(found)}."
        )
    return value


def check_modifiable(family: str, name: str, *, group_in_use: bool = False) -> Parameter:
    """The parameter, if a ModifyCacheParameterGroup may change it now."""
    if _node_type_parameter(family, name) is not None:
        raise InvalidParameterValue(f"Parameter {name} is not modifiable: its value depends on the node type.")
    found = parameter(family, name)
    if not found.modifiable:
        raise InvalidParameterValue(f"Parameter {name} is not modifiable.")
    if found.only_while_unused and group_in_use:
        raise InvalidParameterValue(
            f"Parameter {name} can be modified only in a parameter group that no cluster uses."
        )
    return found


def memory_switch(name: str) -> str | None:
    """The parameter a group drops when this one is set: reserved-memory and -percent exclude each other."""
    return {"reserved-memory": "reserved-memory-percent", "reserved-memory-percent": "reserved-memory"}.get(name)


# ---------------------------------------------------------------------------------------------
# Effects on a node
# ---------------------------------------------------------------------------------------------


def data_maxmemory(node_type: str, values: Mapping[str, str]) -> int:
    """The engine's maxmemory: the node type's memory less the reserve the group asks for.

    A group holding reserved-memory reserves that many bytes; otherwise reserved-memory-percent
    (25 unless set) of the node type's maxmemory is reserved.
    """
    total = node_maxmemory(node_type)
    if "reserved-memory" in values:
        reserve = int(values["reserved-memory"])
    else:
        reserve = round(total * int(values.get("reserved-memory-percent", "25")) / 100)
    return max(total - reserve, 0)


_BUFFER_CLASSES = ("normal", "replica", "pubsub")
_BUFFER_FIELD = re.compile(r"^client-output-buffer-limit-(?P<cls>normal|replica|pubsub)-(?P<field>hard-limit|soft-limit|soft-seconds)$")


def _buffer_class(family: str, cls: str, values: Mapping[str, str], node_type: str) -> str:
    fields = []
    for field in ("hard-limit", "soft-limit", "soft-seconds"):
        name = f"client-output-buffer-limit-{cls}-{field}"
        specific = _node_type_parameter(family, name)
        if specific is not None:
            fields.append(specific.value_for(node_type))
        else:
            fields.append(values.get(name, parameter(family, name).default))
    return f"{cls} {' '.join(fields)}"


def engine_setting(family: str, name: str, values: Mapping[str, str], *, node_type: str) -> EngineSetting | None:
    """What the engine is told for one parameter, given the group's values; None if nothing.

    ``values`` holds the group's effective values (defaults overlaid with the user's); the
    engine setting may depend on more than the one parameter (an output buffer class, the
    reserve and the node type).
    """
    found = parameter(family, name)
    value = values.get(name, found.default)
    if found.effect is Effect.ENGINE:
        if name == "cluster-preferred-endpoint-type" and value == "tls-dynamic":
            # Nodes have addresses, not hostnames: the engine would announce an IP either way.
            value = "ip"
        return EngineSetting(found.engine_name or found.name, value)
    if found.effect is Effect.OUTPUT_BUFFER:
        match = _BUFFER_FIELD.match(name)
        assert match is not None, name
        return EngineSetting("client-output-buffer-limit", _buffer_class(family, match.group("cls"), values, node_type))
    if found.effect is Effect.MEMORY:
        return EngineSetting("maxmemory", str(data_maxmemory(node_type, values)))
    return None


def engine_settings(family: str, values: Mapping[str, str], *, node_type: str) -> dict[str, str]:
    """Every engine setting of a group's values for a node of node_type (config file or CONFIG SET)."""
    settings: dict[str, str] = {}
    for found in family_parameters(family):
        if found.effect in (Effect.ENGINE, Effect.MEMORY):
            setting = engine_setting(family, found.name, values, node_type=node_type)
            assert setting is not None
            settings[setting.name] = setting.value
    settings["client-output-buffer-limit"] = " ".join(
        _buffer_class(family, cls, values, node_type) for cls in _BUFFER_CLASSES
    )
    return settings


def changed_settings(
    family: str, before: Mapping[str, str], after: Mapping[str, str], *, node_type: str
) -> tuple[dict[str, str], tuple[str, ...]]:
    """What a change of a group's values does to its nodes.

    Returns the engine settings to CONFIG SET now (the changed immediate parameters') and the
    names of changed parameters that wait for a reboot (ParameterApplyStatus pending-reboot).
    """
    names = sorted(n for n in {*before, *after} if before.get(n) != after.get(n))
    now: dict[str, str] = {}
    reboot: list[str] = []
    for name in names:
        found = parameter(family, name)
        if found.change_type is ChangeType.REQUIRES_REBOOT:
            reboot.append(name)
            continue
        setting = engine_setting(family, name, after, node_type=node_type)
        if setting is not None:
            now[setting.name] = setting.value
    return now, tuple(reboot)


def offered(
    parameters: tuple[Parameter, ...], *, engine_version: str, available: Collection[str]
) -> tuple[Parameter, ...]:
    """The parameters an installed engine can honour: a parameter the engine lacks is not offered.

    ``available`` names the engine settings the engine has and can use (CONFIG GET *, less what
    it refuses to enable, such as activedefrag on a build without jemalloc's defrag support).
    A parameter newer than the engine version is not offered either.
    """
    version = _version_key(engine_version)
    return tuple(
        p for p in parameters
        if _version_key(p.minimum_engine_version) <= version and all(r in available for r in p.requires)
    )
