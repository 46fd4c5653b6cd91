"""Serverless caches: one endpoint, no node types or shard counts; Cachefleet sizes the cache itself.

A serverless cache IS a cluster mode enabled replication group that Cachefleet owns: one shard or
more, each a primary and one replica in another availability zone, automatic failover and
Multi-AZ on. Its group is named ``serverless--<name>`` (``identifiers.serverless_group_id``), which
no user identifier can be, and is hidden from DescribeReplicationGroups, DescribeCacheClusters and
every replication group operation by id; only this family's own use case instances name it. Every
engine-side step is the replication group machinery's: create, online resharding
(``Shards.modify_shard_configuration``), failover, locks (``UserGroupId`` is the group's user group).

This module owns the record (``ServerlessCache``: what the user asked for; its status is the
group's, mapped by ``status_of``), CreateServerlessCache / DescribeServerlessCaches /
ModifyServerlessCache / DeleteServerlessCache, the capacity rules (``SizingPolicy``,
``ShardRange``, ``shard_maxmemory``) and the sizing decision (``decide``: pure, fed by the
1-second samples of each shard).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, ClassVar

from cachefleet.domain import backups, credentials, identifiers, slots, validation
from cachefleet.domain.backups import Backups, NoBackups, Prepared, RestoreRequest
from cachefleet.domain.base import DEFAULT_PORT, Dependencies, UseCases
from cachefleet.domain.cache_clusters import DEFAULT_SNAPSHOT_WINDOW, ParameterGroupLookup, SubnetGroupLookup
from cachefleet.domain.credentials import TransitEncryptionMode
from cachefleet.domain.engines import EngineRelease, refuse_memcached, resolve_engine
from cachefleet.domain.errors import (
    AlreadyExists,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidState,
    NotFound,
)
from cachefleet.domain.events import EventSourceType, event_for
from cachefleet.domain.identifiers import Region
from cachefleet.domain.operations import OperationKind
from cachefleet.domain.replication_groups import (
    CreateReplicationGroupRequest,
    GroupStatus,
    MemberSettings,
    ModifyReplicationGroupRequest,
    ReplicationGroup,
    ReplicationGroups,
    ShardSpec,
)
from cachefleet.domain.resource import Kind
from cachefleet.domain.security import AccessModification, SecurityRequest, tls_engines
from cachefleet.domain.shards import ShardConfigurationRequest, Shards
from cachefleet.domain.tags import Tag, tags
from cachefleet.domain.users import UserGroup

READER_PORT = 6380  # ElastiCache's read-from-replica port; not served here (see README: Serverless caches)
NODE_TYPE = "cache.r7g.large"  # what the group's nodes are recorded as; their maxmemory is the cache's (shard_maxmemory)
MAX_DATA_STORAGE_GB = 5000  # ElastiCache's bounds of CacheUsageLimits
MIN_ECPU, MAX_ECPU = 1000, 15_000_000
MAX_DESCRIPTION = 255


class ServerlessCacheStatus(StrEnum):
    """A serverless cache's status, as ElastiCache writes it."""

    CREATING = "creating"
    AVAILABLE = "available"
    MODIFYING = "modifying"
    DELETING = "deleting"
    CREATE_FAILED = "create-failed"


@dataclass(frozen=True)
class CacheUsageLimits:
    """CacheUsageLimits: DataStorage in GB and ECPUPerSecond, each bound optional (None: not set)."""

    data_storage_minimum: int | None = None
    data_storage_maximum: int | None = None
    ecpu_minimum: int | None = None
    ecpu_maximum: int | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None, *, existing: CacheUsageLimits | None = None) -> CacheUsageLimits:
        """ElastiCache's rules: Unit GB, each bound within ElastiCache's range, the minimum not above
        the maximum; a Modify that gives DataStorage or ECPUPerSecond replaces that one whole, and a
        bound of 0 there removes it (ElastiCache's way to remove limits, as Terraform sends it)."""
        limits = existing or cls()
        if not raw:
            return limits
        if existing is not None:
            raw = {
                part: {k: (None if k in ("Minimum", "Maximum") and v == 0 else v) for k, v in dict(given).items()}
                if isinstance(given, Mapping) else given
                for part, given in raw.items()
            }
        storage = raw.get("DataStorage")
        if storage is not None:
            if storage.get("Unit") != "GB":
                raise InvalidParameterValue(
                    "CacheUsageLimits.DataStorage.Unit must be GB: give Unit=GB with Maximum and/or Minimum."
                )
            low, high = storage.get("Minimum"), storage.get("Maximum")
            if low is None and high is None and existing is None:
                raise InvalidParameterValue("CacheUsageLimits.DataStorage needs a Maximum or a Minimum (in GB).")
            for name, value in (("Minimum", low), ("Maximum", high)):
                if value is not None and not 1 <= value <= MAX_DATA_STORAGE_GB:
                    raise InvalidParameterValue(
                        f"Invalid CacheUsageLimits.DataStorage.{name} {value}: use 1 to {MAX_DATA_STORAGE_GB} GB."
                    )
            if low is not None and high is not None and low > high:
                raise InvalidParameterCombination(
                    f"CacheUsageLimits.DataStorage.Minimum {low} GB is above its Maximum {high} GB; lower the Minimum "
                    "or raise the Maximum."
                )
            limits = replace(limits, data_storage_minimum=low, data_storage_maximum=high)
        ecpu = raw.get("ECPUPerSecond")
        if ecpu is not None:
            low, high = ecpu.get("Minimum"), ecpu.get("Maximum")
            if low is None and high is None and existing is None:
                raise InvalidParameterValue("CacheUsageLimits.ECPUPerSecond needs a Maximum or a Minimum.")
            for name, value in (("Minimum", low), ("Maximum", high)):
                if value is not None and not MIN_ECPU <= value <= MAX_ECPU:
                    raise InvalidParameterValue(
                        f"Invalid CacheUsageLimits.ECPUPerSecond.{name} {value}: use {MIN_ECPU} to {MAX_ECPU}."
                    )
            if low is not None and high is not None and low > high:
                raise InvalidParameterCombination(
                    f"CacheUsageLimits.ECPUPerSecond.Minimum {low} is above its Maximum {high}; lower the Minimum or "
                    "raise the Maximum."
                )
            limits = replace(limits, ecpu_minimum=low, ecpu_maximum=high)
        return limits


@dataclass(frozen=True)
class SizingPolicy:
    """How Cachefleet sizes serverless caches (``cachefleet up --serverless-sizing``; see README).

    A shard holds up to ``shard_capacity_bytes`` of data. The cache scales out when a shard's
    used memory passes ``scale_out_at`` of that capacity, or its engine CPU passes
    ``cpu_out_at`` (a fraction of one core); it scales in when every shard has stayed below
    ``scale_in_below`` of its capacity and ``cpu_in_below`` for ``scale_in_after`` seconds and
    the data fits in one shard fewer at half of ``scale_out_at``. ``gigabyte_bytes`` is how many bytes
    one GB of CacheUsageLimits.DataStorage is (10^9, as ElastiCache bills; smaller in tests)."""

    shard_capacity_bytes: int = 1 << 30
    gigabyte_bytes: int = 10**9
    scale_out_at: float = 0.75
    scale_in_below: float = 0.30
    cpu_out_at: float = 0.80
    cpu_in_below: float = 0.30
    scale_in_after: float = 300.0
    max_shards: int = 16  # without a DataStorage maximum
    cooldown: float = 5.0  # seconds after a scaling step before the next decision

    @classmethod
    def parse(cls, text: str) -> SizingPolicy:
        """``key=value,key=value`` with the field names (for example ``shard_capacity_bytes=4194304``)."""
        policy = cls()
        if not text.strip():
            return policy
        fields = {name: type(getattr(policy, name)) for name in cls.__dataclass_fields__}
        changes: dict[str, Any] = {}
        for item in text.split(","):
            name, _, value = item.partition("=")
            name = name.strip()
            if name not in fields or not value.strip():
                raise ValueError(f"'{item}': use NAME=VALUE with NAME one of {', '.join(sorted(fields))}")
            changes[name] = fields[name](float(value)) if fields[name] is int else fields[name](value)
        policy = replace(policy, **changes)
        if policy.shard_capacity_bytes < 1 << 20 or policy.gigabyte_bytes < 1 << 20:
            raise ValueError("shard_capacity_bytes and gigabyte_bytes must be at least 1 MiB")
        if not 0 < policy.scale_in_below < policy.scale_out_at <= 1:
            raise ValueError("use 0 < scale_in_below < scale_out_at <= 1")
        return policy


@dataclass(frozen=True)
class ShardRange:
    """How many shards a cache may have under its CacheUsageLimits."""

    minimum: int
    maximum: int


def shard_range(limits: CacheUsageLimits, policy: SizingPolicy) -> ShardRange:
    """A DataStorage minimum keeps enough shards ready to hold it; a maximum allows the shards that
    hold it (each shard's maxmemory is then its share: ``shard_maxmemory``)."""
    capacity = policy.shard_capacity_bytes
    low = 1
    if limits.data_storage_minimum is not None:
        low = max(1, math.ceil(limits.data_storage_minimum * policy.gigabyte_bytes / capacity))
    high = policy.max_shards
    if limits.data_storage_maximum is not None:
        high = min(high, max(1, math.ceil(limits.data_storage_maximum * policy.gigabyte_bytes / capacity)))
    return ShardRange(min(low, high), high)


def check_limits(limits: CacheUsageLimits, policy: SizingPolicy) -> None:
    """A DataStorage minimum this host cannot keep ready (more shards than ``max_shards``) is refused."""
    if limits.data_storage_minimum is None:
        return
    needed = math.ceil(limits.data_storage_minimum * policy.gigabyte_bytes / policy.shard_capacity_bytes)
    if needed > policy.max_shards:
        most = policy.max_shards * policy.shard_capacity_bytes // policy.gigabyte_bytes
        raise InvalidParameterCombination(
            f"CacheUsageLimits.DataStorage.Minimum {limits.data_storage_minimum} GB needs {needed} shards; a serverless "
            f"cache here has at most {policy.max_shards} shards of {policy.shard_capacity_bytes >> 20} MiB "
            f"({most} GB): lower the Minimum to {max(most, 1)} GB or less."
        )


def shard_maxmemory(limits: CacheUsageLimits, policy: SizingPolicy, shards: int) -> int:
    """Each primary's maxmemory: its share of the DataStorage maximum (0: no limit). Writes past it
    fail with the engine's OOM error; nothing is evicted (maxmemory-policy noeviction)."""
    if limits.data_storage_maximum is None:
        return 0
    return max(1 << 20, limits.data_storage_maximum * policy.gigabyte_bytes // max(shards, 1))


# ---------------------------------------------------------------------- the sizing decision
class Scale(StrEnum):
    OUT = "scale-out"
    IN = "scale-in"
    HOLD = "hold"


@dataclass(frozen=True)
class ShardSample:
    """One shard's latest 1-second sample: its primary's used memory and engine CPU (fraction of a core)."""

    node_group_id: str
    used_memory: int
    cpu: float


@dataclass(frozen=True)
class Decision:
    action: Scale
    shards: int  # the shard count wanted (the current one for HOLD)
    reason: str


def decide(
    *, shards: int, samples: Sequence[ShardSample], allowed: ShardRange, policy: SizingPolicy, quiet_for: float
) -> Decision:
    """What the cache should do now (pure). ``quiet_for``: seconds every shard has been below the
    scale-in thresholds (0 when one is not)."""
    capacity = policy.shard_capacity_bytes
    if shards < allowed.minimum:
        return Decision(Scale.OUT, allowed.minimum,
                        f"{shards} shard(s) is below the {allowed.minimum} the DataStorage minimum keeps ready")
    if not samples:
        return Decision(Scale.HOLD, shards, "no samples yet")
    total = sum(s.used_memory for s in samples)
    hottest = max(samples, key=lambda s: s.used_memory)
    busiest = max(samples, key=lambda s: s.cpu)
    mib = 1 << 20
    out_bytes = capacity * policy.scale_out_at
    if hottest.used_memory >= out_bytes or busiest.cpu >= policy.cpu_out_at:
        if hottest.used_memory >= out_bytes:
            cause = (f"shard {hottest.node_group_id} uses {hottest.used_memory / mib:.1f} MiB, at or above "
                     f"{policy.scale_out_at:.0%} of its {capacity / mib:.0f} MiB capacity")
            wanted = max(shards + 1, math.ceil(total / out_bytes))
        else:
            cause = f"shard {busiest.node_group_id} uses {busiest.cpu:.0%} engine CPU (threshold {policy.cpu_out_at:.0%})"
            wanted = shards + 1
        wanted = min(wanted, allowed.maximum)
        if wanted <= shards:
            return Decision(Scale.HOLD, shards, f"{cause}, but {shards} shard(s) is the most the limits allow")
        return Decision(Scale.OUT, wanted, f"{cause}; {total / mib:.1f} MiB in {shards} shard(s) -> {wanted}")
    if shards > allowed.maximum:
        fits = math.ceil(total / out_bytes) <= allowed.maximum
        if fits:
            return Decision(Scale.IN, allowed.maximum,
                            f"{shards} shard(s) is above the {allowed.maximum} the DataStorage maximum allows")
    quiet = hottest.used_memory < capacity * policy.scale_in_below and busiest.cpu < policy.cpu_in_below
    if quiet and shards > allowed.minimum:
        fewer = shards - 1
        # Hysteresis: in only when the data fits in one shard fewer at half the scale-out threshold.
        if quiet_for >= policy.scale_in_after and total <= fewer * out_bytes / 2:
            return Decision(
                Scale.IN, fewer,
                f"every shard below {policy.scale_in_below:.0%} of capacity and {policy.cpu_in_below:.0%} CPU for "
                f"{quiet_for:.0f} s; {total / mib:.1f} MiB in {shards} shard(s) -> {fewer}",
            )
        return Decision(Scale.HOLD, shards, f"quiet for {quiet_for:.0f} s of {policy.scale_in_after:.0f} s")
    return Decision(Scale.HOLD, shards, f"{total / mib:.1f} MiB in {shards} shard(s), within thresholds")


def is_quiet(samples: Sequence[ShardSample], policy: SizingPolicy) -> bool:
    """Every shard below the scale-in thresholds (the caller counts for how long)."""
    return bool(samples) and all(
        s.used_memory < policy.shard_capacity_bytes * policy.scale_in_below and s.cpu < policy.cpu_in_below
        for s in samples
    )


# ---------------------------------------------------------------------- the record
@dataclass(frozen=True)
class ServerlessCache:
    """A serverless cache: what its user asked for. Its engine side is its replication group."""

    KIND: ClassVar[Kind] = Kind(
        name="ServerlessCache", noun="Serverless cache", not_found="ServerlessCacheNotFoundFault",
        arn_type="serverlesscache", event_source=EventSourceType.SERVERLESS_CACHE.value,
        already_exists="ServerlessCacheAlreadyExistsFault", invalid_state="InvalidServerlessCacheStateFault",
        quota_exceeded="ServerlessCacheQuotaForCustomerExceededFault", taggable=True,
    )

    region: Region
    name: str
    description: str
    engine: str
    major_engine_version: str
    full_engine_version: str
    create_time: dt.datetime
    limits: CacheUsageLimits = CacheUsageLimits()
    deleting: bool = False  # DeleteServerlessCache was called; the record goes once its group is gone
    user_group_id: str | None = None
    security_group_ids: tuple[str, ...] = ()
    subnet_ids: tuple[str, ...] = ()
    kms_key_id: str | None = None
    snapshot_retention_limit: int = 0
    daily_snapshot_time: str = DEFAULT_SNAPSHOT_WINDOW.split("-")[0]
    tags: tuple[Tag, ...] = ()
    transit_encryption: bool = False  # only where the engine build has TLS (see README)

    @property
    def key(self) -> str:
        return self.name

    @property
    def group_id(self) -> str:
        return identifiers.serverless_group_id(self.name)


_FROM_GROUP = {
    GroupStatus.CREATING: ServerlessCacheStatus.CREATING,
    GroupStatus.AVAILABLE: ServerlessCacheStatus.AVAILABLE,
    GroupStatus.SNAPSHOTTING: ServerlessCacheStatus.AVAILABLE,
    GroupStatus.MODIFYING: ServerlessCacheStatus.MODIFYING,
    GroupStatus.DELETING: ServerlessCacheStatus.DELETING,
    GroupStatus.CREATE_FAILED: ServerlessCacheStatus.CREATE_FAILED,
}


def status_of(cache: ServerlessCache, group: ReplicationGroup | None) -> ServerlessCacheStatus:
    """The cache's status is its group's (a cache whose group is gone is being deleted)."""
    if cache.deleting or group is None:
        return ServerlessCacheStatus.DELETING
    return _FROM_GROUP[group.status]


def _daily_snapshot_time(value: Any) -> str:
    text = str(value)
    parts = text.split(":")
    if len(parts) != 2 or not all(p.isdigit() and len(p) == 2 for p in parts) or int(parts[0]) > 23 or int(parts[1]) > 59:
        raise InvalidParameterValue(f"Invalid DailySnapshotTime '{value}': use hh24:mi in UTC, for example 04:00.")
    return text


def _description(value: Any) -> str:
    text = str(value)
    if len(text) > MAX_DESCRIPTION:
        raise InvalidParameterValue(f"Description is {len(text)} characters long; use at most {MAX_DESCRIPTION}.")
    return text


def _subnet_ids(region: Region, raw: Sequence[str] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The subnets and the zones they are in; ElastiCache asks for two zones or more (Multi-AZ)."""
    if not raw:
        return (), ()
    subnets = tuple(dict.fromkeys(str(s) for s in raw))
    zones = tuple(dict.fromkeys(identifiers.subnet_zone(region, s) for s in subnets))
    if len(zones) < 2:
        raise InvalidParameterValue(
            f"SubnetIds are all in {zones[0]}: a serverless cache keeps a replica in a second availability zone; "
            "give subnets in two availability zones or more."
        )
    return subnets, zones


# ---------------------------------------------------------------------- requests
_CREATE_UNSUPPORTED: dict[str, Any] = {"NetworkType": "ipv4", "ConnectionType": None, "Integrations": None}


@dataclass(frozen=True)
class CreateServerlessCacheRequest:
    """CreateServerlessCache, checked before anything is looked up."""

    name: str
    engine: str
    major_engine_version: str | None
    description: str = ""
    limits: CacheUsageLimits = CacheUsageLimits()
    user_group_id: str | None = None
    security_group_ids: tuple[str, ...] = ()
    subnet_ids: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    kms_key_id: str | None = None
    snapshot_retention_limit: int = 0
    daily_snapshot_time: str | None = None
    tags: tuple[Tag, ...] = ()
    restore: RestoreRequest | None = None  # SnapshotArnsToRestore

    @classmethod
    def parse(cls, region: Region, params: Mapping[str, Any]) -> CreateServerlessCacheRequest:
        refuse_memcached(params, operation="CreateServerlessCache")
        validation.not_yet(params, _CREATE_UNSUPPORTED, operation="CreateServerlessCache")
        engine = str(params["Engine"]).lower()
        if engine not in ("valkey", "redis"):
            raise InvalidParameterValue(f"Invalid Engine '{params['Engine']}': use valkey or redis.")
        major = params.get("MajorEngineVersion")
        if major is not None and not str(major).isdigit():
            raise InvalidParameterValue(
                f"Invalid MajorEngineVersion '{major}': give the major version only, for example 8."
            )
        subnets, zones = _subnet_ids(region, params.get("SubnetIds"))
        user_group = params.get("UserGroupId")
        return cls(
            name=identifiers.serverless_cache_name(params["ServerlessCacheName"]),
            engine=engine,
            major_engine_version=str(major) if major is not None else None,
            description=_description(params.get("Description", "")),
            limits=CacheUsageLimits.parse(params.get("CacheUsageLimits")),
            user_group_id=credentials.user_group_id(user_group) if user_group else None,
            security_group_ids=tuple(params.get("SecurityGroupIds") or ()),
            subnet_ids=subnets,
            zones=zones,
            kms_key_id=backups.kms_key_id(params["KmsKeyId"]) if params.get("KmsKeyId") else None,
            snapshot_retention_limit=backups.retention_limit(params.get("SnapshotRetentionLimit", 0)),
            daily_snapshot_time=(
                _daily_snapshot_time(params["DailySnapshotTime"]) if params.get("DailySnapshotTime") else None
            ),
            tags=tags(params.get("Tags")),
            restore=restore_request(region, params.get("SnapshotArnsToRestore")),
        )


SERVERLESS_SNAPSHOT_PREFIX = identifiers.SERVERLESS_GROUP_PREFIX  # = domain/snapshots.py serverless_key's


def restore_request(region: Region, arns: Sequence[str] | None) -> RestoreRequest | None:
    """SnapshotArnsToRestore: one serverless cache snapshot (``serverlesscachesnapshot``), one
    snapshot of a node-based group or cluster (``snapshot``), or RDB objects in S3 (``arn:aws:s3:::``,
    one per shard: ElastiCache's way to bring a node-based backup into a serverless cache)."""
    if not arns:
        return None
    given = [str(arn) for arn in arns]
    if all(arn.startswith("arn:aws") and ":s3:::" in arn for arn in given):
        return RestoreRequest.parse({"SnapshotArns": given})
    if len(given) != 1:
        raise InvalidParameterValue(
            f"SnapshotArnsToRestore lists {len(given)} ARNs: give one snapshot's ARN, or the ARNs of RDB objects "
            "in S3 (one per shard)."
        )
    arn = identifiers.parse_arn(given[0], region=region)
    if arn.foreign:
        # Another account's snapshot is not visible from this one.
        elsewhere = f"its ARN names account {arn.account}; this account is {identifiers.account_id()}"
        if arn.resource_type == "serverlesscachesnapshot":
            raise NotFound(f"Serverless cache snapshot {arn.resource_id} not found ({elsewhere}).",
                           resource="ServerlessCacheSnapshot")
        raise NotFound(f"Snapshot {arn.resource_id} not found ({elsewhere}).", resource="Snapshot")
    if arn.resource_type == "serverlesscachesnapshot":
        return RestoreRequest(snapshot_name=SERVERLESS_SNAPSHOT_PREFIX + arn.resource_id.lower())
    if arn.resource_type == "snapshot":
        return RestoreRequest(snapshot_name=arn.resource_id.lower())
    raise InvalidParameterValue(
        f"Invalid SnapshotArnsToRestore member '{given[0][:100]}': give the ARN of a serverless cache snapshot, of a "
        "snapshot, or of an RDB object in S3."
    )


@dataclass(frozen=True)
class ModifyServerlessCacheRequest:
    """ModifyServerlessCache, checked. A user group change and an engine change come alone."""

    name: str
    description: str | None = None
    limits: Mapping[str, Any] | None = None
    user_group_id: str | None = None
    remove_user_group: bool = False
    security_group_ids: tuple[str, ...] | None = None
    snapshot_retention_limit: int | None = None
    daily_snapshot_time: str | None = None
    engine: str | None = None
    major_engine_version: str | None = None

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ModifyServerlessCacheRequest:
        remove = bool(params.get("RemoveUserGroup", False))
        user_group = params.get("UserGroupId")
        if remove and user_group:
            raise InvalidParameterCombination(
                "RemoveUserGroup and UserGroupId cannot be given together: remove the user group, or name the new one."
            )
        engine_keys = {"Engine", "MajorEngineVersion"}
        if engine_keys & set(params):
            if "MajorEngineVersion" not in params:
                raise InvalidParameterCombination(
                    "ModifyServerlessCache: give MajorEngineVersion with Engine (the major version to upgrade to)."
                )
            others = sorted(set(params) - engine_keys - {"ServerlessCacheName"})
            if others:
                # The upgrade is the group's rolling upgrade, an operation of its own.
                raise InvalidParameterCombination(
                    f"Upgrade the engine on its own; send {', '.join(others)} in another ModifyServerlessCache."
                )
        if (user_group or remove) and len(set(params) - {"ServerlessCacheName", "UserGroupId", "RemoveUserGroup"}):
            others = sorted(set(params) - {"ServerlessCacheName", "UserGroupId", "RemoveUserGroup"})
            raise InvalidParameterCombination(
                f"Change the user group on its own; send {', '.join(others)} in another ModifyServerlessCache."
            )
        return cls(
            name=identifiers.serverless_cache_name(params["ServerlessCacheName"]),
            description=_description(params["Description"]) if "Description" in params else None,
            limits=params.get("CacheUsageLimits"),
            user_group_id=credentials.user_group_id(user_group) if user_group else None,
            remove_user_group=remove,
            security_group_ids=tuple(params["SecurityGroupIds"]) if "SecurityGroupIds" in params else None,
            snapshot_retention_limit=(
                backups.retention_limit(params["SnapshotRetentionLimit"]) if "SnapshotRetentionLimit" in params
                else None
            ),
            daily_snapshot_time=(
                _daily_snapshot_time(params["DailySnapshotTime"]) if "DailySnapshotTime" in params else None
            ),
            engine=str(params["Engine"]).lower() if "Engine" in params else None,
            major_engine_version=str(params["MajorEngineVersion"]) if "MajorEngineVersion" in params else None,
        )


@contextmanager
def _restore_faults(restore: RestoreRequest | None) -> Iterator[None]:
    """A missing or unavailable serverless snapshot named by SnapshotArnsToRestore is told with its
    own faults (the snapshots family speaks of Snapshot records)."""
    try:
        yield
    except (NotFound, InvalidState) as error:
        name = restore.snapshot_name if restore is not None else None
        if error.resource != "Snapshot" or name is None or not name.startswith(SERVERLESS_SNAPSHOT_PREFIX):
            raise
        raise type(error)(error.message.replace(SERVERLESS_SNAPSHOT_PREFIX, "").replace("Snapshot", "Serverless "
                          "cache snapshot", 1), resource="ServerlessCacheSnapshot") from error


# ---------------------------------------------------------------------- use cases
class ServerlessCaches(UseCases):
    """Create/Describe/Modify/DeleteServerlessCache and the sizing steps (``resize``)."""

    def __init__(
        self, deps: Dependencies, *, subnet_groups: SubnetGroupLookup, parameter_groups: ParameterGroupLookup,
        groups: ReplicationGroups, policy: SizingPolicy | None = None, backups: Backups | None = None,
    ) -> None:
        """``groups``: this family's own ReplicationGroups instance (it may name serverless groups);
        ``backups``: the snapshots family (what a restore's snapshot holds), as ``groups`` has it."""
        super().__init__(deps)
        self._backups: Backups = backups or NoBackups()
        self._groups = groups
        self._groups.serves_serverless = True
        self._shards = Shards(deps, subnet_groups=subnet_groups, parameter_groups=parameter_groups)
        self._shards.serves_serverless = True
        self.policy = policy or SizingPolicy()

    def _cache(self, region: Region, name: str) -> ServerlessCache:
        return self._get(ServerlessCache, region, name)

    def group_of(self, cache: ServerlessCache) -> ReplicationGroup | None:
        return self._store.get(ReplicationGroup, cache.region, cache.group_id)

    def _require_available(self, cache: ServerlessCache, *, action: str) -> ReplicationGroup:
        group = self.group_of(cache)
        status = status_of(cache, group)
        if status != ServerlessCacheStatus.AVAILABLE or group is None:
            raise InvalidState(
                f"Serverless cache {cache.name} is {status}; it can be {action} once it is available.",
                resource="ServerlessCache",
            )
        return group

    # ------------------------------------------------------------------ create
    def create(self, region: Region, request: CreateServerlessCacheRequest) -> ServerlessCache:
        if self._store.get(ServerlessCache, region, request.name) is not None:
            raise AlreadyExists(f"Serverless cache {request.name} already exists.", resource="ServerlessCache")
        group_id = identifiers.serverless_group_id(request.name)
        if self._store.get(ReplicationGroup, region, group_id) is not None:
            raise InvalidState(
                f"Serverless cache {request.name} is still being deleted; create it again once it is gone.",
                resource="ServerlessCache",
            )
        release = self._release(request.engine, request.major_engine_version)
        if request.user_group_id is not None:
            user_group = self._get(UserGroup, region, request.user_group_id)
            if request.engine == "redis" and user_group.engine == "valkey":
                raise InvalidParameterCombination(
                    f"User group {user_group.user_group_id} has engine valkey; a redis serverless cache can use user "
                    "groups with engine redis only."
                )
        check_limits(request.limits, self.policy)
        allowed = shard_range(request.limits, self.policy)
        shard_count = allowed.minimum
        if request.restore is not None:
            # As many shards as the snapshot had (its data needed them), within the limits; the
            # restore moves keys by slot wherever a shard's RDB does not fit a new shard whole.
            defaults = self._restore_defaults(region, request.restore)
            shard_count = min(max(allowed.minimum, defaults.num_node_groups), allowed.maximum)
        zones = request.zones or identifiers.default_availability_zones(region)
        shares = slots.even(shard_count)
        specs = tuple(
            ShardSpec(f"{i + 1:04d}", 1, frozenset(share), zones[i % len(zones)], (zones[(i + 1) % len(zones)],))
            for i, share in enumerate(shares)
        )
        now = self._clock.now()
        cache = ServerlessCache(
            region=region, name=request.name, description=request.description, engine=release.engine,
            major_engine_version=release.version.split(".")[0], full_engine_version=release.version, create_time=now,
            limits=request.limits, user_group_id=request.user_group_id, security_group_ids=request.security_group_ids,
            subnet_ids=request.subnet_ids, kms_key_id=request.kms_key_id,
            snapshot_retention_limit=request.snapshot_retention_limit,
            daily_snapshot_time=request.daily_snapshot_time or ServerlessCache.daily_snapshot_time,
            tags=request.tags, transit_encryption=release.tls,
        )
        group_request = CreateReplicationGroupRequest(
            group_id=group_id, description=f"Serverless cache {request.name}", cluster_mode=True,
            engine=release.engine, engine_version=release.version, node_type=NODE_TYPE, port=DEFAULT_PORT,
            subnet_group_name=None, parameter_group_name=None, primary_cluster_id=None, seed_settings=(),
            cluster_count=0, preferred_zones=(), automatic_failover=True, multi_az=True, shards=specs,
            settings=MemberSettings(), tags=(), log_delivery=(),
            security=SecurityRequest(
                # ElastiCache Serverless always has TLS; here only where the engine build has it.
                transit_encryption_mode=TransitEncryptionMode.REQUIRED if release.tls else None,
                user_group_ids=(request.user_group_id,) if request.user_group_id else (),
            ),
            at_rest_encryption=False, restore=request.restore,
        )
        message = (
            f"Creating serverless cache {cache.name}: {release.engine} {release.version}, {shard_count} shard(s) of "
            f"a primary and a replica ({', '.join(sorted(set(zones[: shard_count + 1])))})"
        )
        with _restore_faults(request.restore):
            self._groups.create(
                region, group_request, extra=Prepared(records=(cache,), events=(event_for(cache, message, now),))
            )
        self._changed(cache)
        return cache

    def _restore_defaults(self, region: Region, restore: RestoreRequest) -> backups.SnapshotDefaults:
        with _restore_faults(restore):
            return self._backups.restore_defaults(region, restore)

    def _release(self, engine: str, major: str | None) -> EngineRelease:
        release = resolve_engine(self._catalog.releases(), engine, major)
        if major is not None and release.version.split(".")[0] != major:
            raise InvalidParameterValue(f"MajorEngineVersion {major} of {engine} is not installed on this host.")
        return release

    # ------------------------------------------------------------------ describe
    def describe(self, region: Region, name: str | None = None) -> list[tuple[ServerlessCache, ReplicationGroup | None]]:
        if name is not None:
            found = [self._cache(region, name.lower())]
        else:
            found = sorted(self._store.list(ServerlessCache, region), key=lambda c: c.name)
        return [(cache, self.group_of(cache)) for cache in found]

    # ------------------------------------------------------------------ modify
    def modify(self, region: Region, request: ModifyServerlessCacheRequest) -> ServerlessCache:
        cache = self._cache(region, request.name)
        group = self._require_available(cache, action="modified")
        if request.major_engine_version is not None:
            return self._upgrade(cache, group, request.engine or cache.engine, request.major_engine_version)
        changes: dict[str, Any] = {}
        if request.description is not None:
            changes["description"] = request.description
        if request.limits is not None:
            limits = CacheUsageLimits.parse(request.limits, existing=cache.limits)
            check_limits(limits, self.policy)
            changes["limits"] = limits
        if request.security_group_ids is not None:
            changes["security_group_ids"] = request.security_group_ids
        if request.snapshot_retention_limit is not None:
            changes["snapshot_retention_limit"] = request.snapshot_retention_limit
        if request.daily_snapshot_time is not None:
            changes["daily_snapshot_time"] = request.daily_snapshot_time
        access = None
        if request.user_group_id is not None or request.remove_user_group:
            current = group.security.user_group_ids
            if request.remove_user_group and not current:
                raise InvalidParameterCombination(
                    f"Serverless cache {cache.name} has no user group to remove; omit RemoveUserGroup."
                )
            if request.user_group_id is not None and request.user_group_id in current:
                raise InvalidParameterCombination(
                    f"Serverless cache {cache.name} already uses user group {request.user_group_id}; omit UserGroupId "
                    "or name another user group."
                )
            access = AccessModification(
                user_groups_to_add=(request.user_group_id,) if request.user_group_id else (),
                user_groups_to_remove=current,
            )
            changes["user_group_id"] = request.user_group_id
        changed = {k: v for k, v in changes.items() if getattr(cache, k) != v}
        if not changed and access is None:
            return cache
        updated = replace(cache, **changed)
        if access is not None:
            # The group's locks change through ModifyReplicationGroup's own path (workflows/access.py).
            self._groups.modify(region, ModifyReplicationGroupRequest(group_id=group.group_id, access=access))
        with self._store.transaction() as tx:
            tx.put(updated)
            self._event(tx, updated, f"Serverless cache {cache.name} modified: {', '.join(sorted(changed))}")
        self._changed(updated)
        return updated

    def _upgrade(self, cache: ServerlessCache, group: ReplicationGroup, engine: str, major: str) -> ServerlessCache:
        """A major version upgrade (or Redis OSS to Valkey, as ElastiCache allows): the group's rolling
        upgrade (workflows/upgrade.py: replicas first, then a failover per shard), started at once."""
        if engine not in ("redis", "valkey"):
            raise InvalidParameterValue(f"Invalid Engine {engine}: use redis or valkey.")
        if engine == "redis" and cache.engine == "valkey":
            raise InvalidParameterCombination(
                f"Serverless cache {cache.name} runs valkey; it cannot go back to redis."
            )
        if not major.isdigit():
            raise InvalidParameterValue(f"Invalid MajorEngineVersion {major}: give a major version such as 8.")
        if engine == cache.engine and int(major) < int(cache.major_engine_version):
            raise InvalidParameterCombination(
                f"Serverless cache {cache.name} runs {cache.engine} {cache.major_engine_version}; MajorEngineVersion "
                f"{major} would be a downgrade."
            )
        if engine == cache.engine and major == cache.major_engine_version:
            raise InvalidParameterCombination(
                f"Serverless cache {cache.name} already runs {cache.engine} {cache.major_engine_version} "
                f"({cache.full_engine_version})."
            )
        release = self._release(engine, major)
        if group.security.transit_encryption and not release.tls:
            raise InvalidParameterCombination(
                f"MajorEngineVersion: serverless cache {cache.name} serves TLS, and {release.engine} {release.version} "
                f"here is built without it, so its nodes could not start on it. Engines with TLS on this host: "
                f"{tls_engines(self._catalog.releases())}."
            )
        self._groups.modify(cache.region, ModifyReplicationGroupRequest(
            group_id=group.group_id, engine=release.engine if release.engine != cache.engine else None,
            engine_version=release.version, apply_immediately=True,
        ))
        updated = replace(cache, engine=release.engine, major_engine_version=major, full_engine_version=release.version)
        with self._store.transaction() as tx:
            tx.put(updated)
            self._event(tx, updated, f"Upgrading serverless cache {cache.name} from {cache.engine} "
                        f"{cache.full_engine_version} to {release.engine} {release.version}")
        self._changed(updated)
        return updated

    # ------------------------------------------------------------------ delete
    def delete(self, region: Region, name: str, *, final_snapshot: str | None = None) -> ServerlessCache:
        cache = self._cache(region, name.lower())
        group = self.group_of(cache)
        status = status_of(cache, group)
        if status not in (ServerlessCacheStatus.AVAILABLE, ServerlessCacheStatus.CREATE_FAILED) or group is None:
            raise InvalidState(
                f"Serverless cache {cache.name} is {status}; it can be deleted once it is available (or create-failed).",
                resource="ServerlessCache",
            )
        if self._operation(group, OperationKind.RESHARD) is not None:
            raise InvalidState(f"Serverless cache {cache.name} is scaling; delete it once it is available.",
                               resource="ServerlessCache")
        if group.status == GroupStatus.SNAPSHOTTING:
            raise InvalidState(f"Serverless cache {cache.name} is being snapshotted; delete it once that is done.",
                               resource="ServerlessCache")
        # The group first: what it refuses (a final snapshot's name taken) leaves the cache as it was.
        # FinalSnapshotName is taken before any node stops, as a group's FinalSnapshotIdentifier is
        # (domain/snapshots.py prepare_final_snapshot names it a serverless cache snapshot).
        self._groups.delete(region, group.group_id, final_snapshot=final_snapshot)
        updated = replace(cache, deleting=True)
        with self._store.transaction() as tx:
            tx.put(updated)
            self._event(tx, updated, f"Deleting serverless cache {cache.name}"
                        + (f" after final snapshot {final_snapshot}" if final_snapshot else ""))
        self._changed(updated)
        return updated

    # ------------------------------------------------------------------ sizing
    def resize(self, cache: ServerlessCache, decision: Decision) -> ReplicationGroup | None:
        """Starts a scaling step with the online resharding; None when the cache cannot take it now."""
        group = self.group_of(cache)
        if group is None or cache.deleting or group.status != GroupStatus.AVAILABLE:
            return None
        current = [ng.node_group_id for ng in group.node_groups]
        if decision.shards == len(current) or decision.action == Scale.HOLD:
            return None
        # Scaling in removes the newest shards: their slots go back to the older ones.
        retain = tuple(sorted(current)[: decision.shards]) if decision.shards < len(current) else ()
        request = ShardConfigurationRequest(
            group_id=group.group_id, node_group_count=decision.shards, to_remove=(), to_retain=retain,
            named_new=(), zones=(), configurations=0,
        )
        updated = self._shards.modify_shard_configuration(cache.region, request)
        with self._store.transaction() as tx:
            self._event(
                tx, cache,
                f"Serverless cache {cache.name}: {decision.action.value} {len(current)} -> {decision.shards} shard(s): "
                f"{decision.reason}",
            )
        return updated
