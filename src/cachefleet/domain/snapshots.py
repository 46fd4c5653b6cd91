"""Snapshots: RDB backups of replication groups and cache clusters, taken by hand, by a daily
window, or before a delete; copied, exported to S3 buckets, and restored into new groups.

This module owns the records (``Snapshot`` with its ``NodeSnapshot`` per shard, and the
``Restore`` plan of a group or cluster being created from RDB files), the typed requests of
CreateSnapshot, DescribeSnapshots, DeleteSnapshot and CopySnapshot, the schedule's rules
(automatic snapshots in their window, pruned after the retention limit) and the use cases,
which also answer what creating and deleting groups and clusters ask of backups
(``domain/backups.py``). The files and engines are the control plane's
(``control/workflows/snapshots.py`` and ``restore.py``); what a file or an S3 object holds is
asked of a :class:`SnapshotStorage`.

Statuses are ElastiCache's: a snapshot is ``creating`` until every shard's RDB is stored,
then ``available`` (or ``failed``); ``copying`` while it is the source of a copy, ``exporting``
while it is written to a bucket, ``deleting`` until its files are gone. Its group is
``snapshotting`` meanwhile. Snapshot events are recorded under the group or cluster they are
of (ElastiCache has no snapshot event source).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from cachefleet.domain import identifiers
from cachefleet.domain.backups import Prepared, RestoreRequest, SnapshotDefaults, kms_key_id, window_span
from cachefleet.domain.base import Dependencies
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus
from cachefleet.domain.errors import (
    AlreadyExists,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    QuotaExceeded,
)
from cachefleet.domain.events import Event, EventSourceType
from cachefleet.domain.identifiers import Region
from cachefleet.domain.operations import Operation, OperationKind
from cachefleet.domain.ports import Transaction
from cachefleet.domain.replication_groups import GroupStatus, GroupUseCases, ReplicationGroup
from cachefleet.domain.resource import Kind, Resource
from cachefleet.domain.serverless import ServerlessCache
from cachefleet.domain.tags import Tag, tags

MANUAL_PER_NODE_PER_DAY = 20  # ElastiCache: at most 20 manual snapshots per node in any 24 hours
MAX_SNAPSHOTS_PER_REGION = 1000
DEFAULT_KEY_ID = "default"  # the key ring's key for AtRestEncryptionEnabled without a KmsKeyId
AUTOMATIC_PREFIX = "automatic."
_NAME = re.compile(r"^[a-z][a-z0-9.-]*$")


class SnapshotStatus(StrEnum):
    """A snapshot's status, as ElastiCache writes it."""

    CREATING = "creating"
    AVAILABLE = "available"
    FAILED = "failed"
    DELETING = "deleting"
    COPYING = "copying"
    EXPORTING = "exporting"


class SnapshotSource(StrEnum):
    """Who took it: DescribeSnapshots shows ``manual``/``automated``, and filters by ``user``/``system``."""

    MANUAL = "manual"
    AUTOMATED = "automated"


# A serverless cache's snapshot is a Snapshot of its hidden group, stored under this prefix and its
# user's name: no snapshot name a user gives contains "--", so the two namespaces never collide
# (ElastiCache keeps them apart: DescribeSnapshots never lists a serverless snapshot).
SERVERLESS_PREFIX = identifiers.SERVERLESS_GROUP_PREFIX

# The kind its API speaks of (ARN type, faults); its records are Snapshot records (domain/kinds.py VIEWS).
SERVERLESS_SNAPSHOT = Kind(
    name="ServerlessCacheSnapshot", noun="Serverless cache snapshot", not_found="ServerlessCacheSnapshotNotFoundFault",
    arn_type="serverlesscachesnapshot", event_source=EventSourceType.SERVERLESS_CACHE_SNAPSHOT.value,
    already_exists="ServerlessCacheSnapshotAlreadyExistsFault",
    invalid_state="InvalidServerlessCacheSnapshotStateFault",
    quota_exceeded="ServerlessCacheSnapshotQuotaExceededFault", taggable=True,
)


def serverless_key(name: str) -> str:
    """The stored name of serverless cache snapshot ``name``."""
    return SERVERLESS_PREFIX + name


def is_serverless_key(name: str) -> bool:
    return name.startswith(SERVERLESS_PREFIX)


# Statuses in which a snapshot's files are being written or read by the control plane.
BUSY = (SnapshotStatus.CREATING, SnapshotStatus.COPYING, SnapshotStatus.EXPORTING, SnapshotStatus.DELETING)


@dataclass(frozen=True)
class NodeSnapshot:
    """One shard's RDB in a snapshot: where it came from, the slots it holds, its file."""

    node_group_id: str
    cache_cluster_id: str  # the node the RDB was (or is to be) taken from
    file: str  # the file's name in the snapshot's directory, e.g. "backup-0001.rdb"
    cache_node_create_time: dt.datetime
    cache_node_id: str = "0001"
    slots: str = ""  # the node group's slot ranges (cluster mode enabled); "" holds every key
    replica_count: int = 0
    primary_zone: str = ""
    replica_zones: tuple[str, ...] = ()
    snapshot_create_time: dt.datetime | None = None
    size: int = 0  # RDB bytes (the plain file's size)
    rdb_format: str = ""  # the RDB header's signature, e.g. REDIS0011
    checksum: str = ""  # the RDB's CRC-64 as it stores it, hex


@dataclass(frozen=True)
class SnapshotExport:
    """An export in progress: CopySnapshot with a TargetBucket."""

    bucket: str
    target_name: str


@dataclass(frozen=True)
class Snapshot:
    """A snapshot: the settings of what it was taken of, and one RDB per shard."""

    KIND: ClassVar[Kind] = Kind(
        name="Snapshot", noun="Snapshot", not_found="SnapshotNotFoundFault", arn_type="snapshot",
        already_exists="SnapshotAlreadyExistsFault", invalid_state="InvalidSnapshotStateFault",
        quota_exceeded="SnapshotQuotaExceededFault", taggable=True,
    )

    region: Region
    name: str
    status: SnapshotStatus
    source: SnapshotSource
    create_time: dt.datetime
    engine: str
    engine_version: str
    node_type: str
    port: int
    parameter_group_name: str
    subnet_group_name: str
    node_snapshots: tuple[NodeSnapshot, ...]
    replication_group_id: str | None = None
    replication_group_description: str = ""
    cache_cluster_id: str | None = None  # a standalone cluster, or the one member it was taken of
    cluster_enabled: bool = False
    automatic_failover: str = "disabled"
    preferred_maintenance_window: str = ""
    snapshot_window: str = ""
    snapshot_retention_limit: int = 0
    auto_minor_version_upgrade: bool = True
    preferred_availability_zone: str = ""
    cache_cluster_create_time: dt.datetime | None = None
    encryption_key: str | None = None  # the key ring's key id its files are encrypted with (None: plain)
    tags: tuple[Tag, ...] = ()
    status_reason: str = ""
    copied_from: str | None = None  # the source snapshot while this one is created by CopySnapshot
    export: SnapshotExport | None = None
    serverless_cache_name: str | None = None  # set on a serverless cache's snapshot (named serverless--<name>)

    @property
    def key(self) -> str:
        return self.name

    @property
    def kms_key_id(self) -> str | None:
        """What ElastiCache shows as KmsKeyId: the key named by the user (not the default key)."""
        return self.encryption_key if self.encryption_key not in (None, DEFAULT_KEY_ID) else None

    @property
    def size(self) -> int:
        return sum(node.size for node in self.node_snapshots)

    @property
    def is_serverless(self) -> bool:
        return is_serverless_key(self.name)

    @property
    def user_name(self) -> str:
        """The name its user knows it by (a serverless snapshot's without the prefix)."""
        return self.name[len(SERVERLESS_PREFIX):] if self.is_serverless else self.name

    @property
    def subject(self) -> str:
        """What it is of, as its events say: "replication group g" or "cache cluster c"."""
        if self.serverless_cache_name is not None:
            return f"serverless cache '{self.serverless_cache_name}'"
        if self.replication_group_id is not None:
            return f"replication group with ID '{self.replication_group_id}'"
        return f"cache cluster with ID '{self.cache_cluster_id}'"


@dataclass(frozen=True)
class RestoreSource:
    """One RDB a restore loads: a snapshot's shard file, or an S3 object (SnapshotArns)."""

    index: int
    size: int
    rdb_format: str
    snapshot_name: str | None = None
    file: str = ""
    bucket: str = ""
    object_key: str = ""
    slots: str = ""  # "" when unknown: an RDB from anywhere may hold keys of any slot
    encryption_key: str | None = None

    @property
    def described(self) -> str:
        if self.snapshot_name is not None:
            return f"{self.file} of snapshot {self.snapshot_name}"
        return f"s3://{self.bucket}/{self.object_key}"


class RestoreStep(StrEnum):
    """How far a restore got."""

    SEEDING = "seeding"  # new primaries start from the RDBs they can load whole
    MOVING = "moving"  # the other RDBs' keys move by slot from temporary engines


@dataclass(frozen=True)
class Restore:
    """The plan of a group or cluster being created from RDB files, until its data is in place.

    ``temporary_addresses`` are held (one per source) for the temporary engines that load the
    RDBs no new primary can start from; ``run_ids`` are the engine run ids of the target
    primaries once they hold restored data (a target that restarted lost it).
    """

    KIND: ClassVar[Kind] = Kind(name="Restore", noun="Restore", not_found="InvalidParameterValue")

    region: Region
    resource_kind: str  # "ReplicationGroup" or "CacheCluster"
    resource_id: str
    sources: tuple[RestoreSource, ...]
    temporary_addresses: tuple[str, ...]
    started: dt.datetime
    snapshot_name: str | None = None
    step: RestoreStep = RestoreStep.SEEDING
    run_ids: tuple[tuple[str, str], ...] = ()  # (cache cluster id, run id)
    keys_moved: int = 0

    @property
    def key(self) -> str:
        return restore_key(self.resource_kind, self.resource_id)

    @property
    def addresses(self) -> tuple[str, ...]:
        return self.temporary_addresses

    @property
    def size(self) -> int:
        return sum(source.size for source in self.sources)


def restore_key(resource_kind: str, resource_id: str) -> str:
    return f"{resource_kind}/{resource_id}"


@dataclass(frozen=True)
class ObjectFacts:
    """What an RDB object in a bucket is, read from its head (and metadata Cachefleet wrote)."""

    size: int
    rdb_format: str
    slots: str = ""
    encryption_key: str | None = None


class SnapshotStorage(Protocol):
    """What the use cases ask of snapshot files and buckets (control/snapshot_files.py answers).

    ``object_facts`` raises InvalidParameterValue for a missing bucket or object, or one that is
    not an RDB file.
    """

    def loadable(self, rdb_format: str, engine: str, version: str) -> str | None:
        """None if that engine version loads RDBs of that format, else why not."""
        ...

    def object_facts(self, bucket: str, key: str) -> ObjectFacts: ...

    def bucket_exists(self, bucket: str) -> bool: ...

    def object_exists(self, bucket: str, key: str) -> bool: ...


class NoStorage:
    """Storage of an installation that keeps no buckets and cannot read RDB headers (domain tests):
    any engine is assumed to load any RDB, and every bucket is missing."""

    def loadable(self, rdb_format: str, engine: str, version: str) -> str | None:
        return None

    def object_facts(self, bucket: str, key: str) -> ObjectFacts:
        raise InvalidParameterValue(f"The S3 bucket {bucket} does not exist.")

    def bucket_exists(self, bucket: str) -> bool:
        return False

    def object_exists(self, bucket: str, key: str) -> bool:
        return False


# ---------------------------------------------------------------------- names and rules
def snapshot_name(value: Any, *, parameter: str = "SnapshotName", automatic: bool = False) -> str:
    """ElastiCache's name rules (kept lower case, as its other identifiers); ``automatic.`` is
    reserved for the names of automatic snapshots."""
    text = str(value)
    lowered = text.lower()
    problem = ""
    if not lowered or len(lowered) > 255:
        problem = "must be 1 to 255 characters long"
    elif not _NAME.match(lowered):
        problem = "must begin with a letter and contain only ASCII letters, digits, hyphens and periods"
    elif lowered.endswith("-") or "--" in lowered:
        problem = "must not end with a hyphen or contain two consecutive hyphens"
    elif lowered.startswith(AUTOMATIC_PREFIX) and not automatic:
        problem = f"must not begin with '{AUTOMATIC_PREFIX}', which automatic snapshots' names use"
    if problem:
        raise InvalidParameterValue(f"Invalid {parameter} '{text[:80]}': the name {problem}.")
    return lowered


def automatic_name(resource_id: str, when: dt.datetime) -> str:
    """As ElastiCache names them: automatic.<id>-<yyyy-mm-dd-hh-mm> (UTC)."""
    return f"{AUTOMATIC_PREFIX}{resource_id}-{when.astimezone(dt.UTC):%Y-%m-%d-%H-%M}"


def shard_file(name: str, node_group_id: str, *, encrypted: bool) -> str:
    """A shard's file: ElastiCache's export layout <name>-<shard>.rdb (.enc when encrypted)."""
    return f"{name}-{node_group_id}.rdb" + (".enc" if encrypted else "")


def cache_size(size: int) -> str:
    """A node snapshot's CacheSize as ElastiCache writes it ("6 MB")."""
    return f"{math.ceil(size / 1_000_000) if size else 0} MB"


def window_containing(window: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """The instance of a daily ``hh:mm-hh:mm`` UTC window that ``now`` is in, if any."""
    start_minute, length = window_span(window)
    moment = now.astimezone(dt.UTC)
    for days_back in (0, 1):  # yesterday's window may run past midnight
        day = (moment - dt.timedelta(days=days_back)).replace(hour=0, minute=0, second=0, microsecond=0)
        start = day + dt.timedelta(minutes=start_minute)
        end = start + dt.timedelta(minutes=length)
        if start <= moment < end:
            return start, end
    return None


def automatic_due(window: str, retention_limit: int, now: dt.datetime, taken: Iterable[dt.datetime]) -> bool:
    """Whether an automatic snapshot is to be taken now: retention on, ``now`` in the window, and
    none taken in this instance of the window yet (one a day)."""
    if retention_limit <= 0:
        return False
    instance = window_containing(window, now)
    if instance is None:
        return False
    return not any(instance[0] <= when < instance[1] for when in taken)


def daily_window(daily_snapshot_time: str) -> str:
    """A serverless cache's DailySnapshotTime ``hh:mm`` as the hour-long daily window the schedule
    takes its automatic snapshot in."""
    start, _ = window_span(f"{daily_snapshot_time}-{daily_snapshot_time}")
    end = (start + 60) % 1440
    return f"{daily_snapshot_time}-{end // 60:02d}:{end % 60:02d}"


def expired(retention_limit: int, created: dt.datetime, now: dt.datetime) -> bool:
    """An automatic snapshot is kept ``retention_limit`` days (0: retention off, kept)."""
    return retention_limit > 0 and created + dt.timedelta(days=retention_limit) <= now


# ---------------------------------------------------------------------- requests
def _tags(params: Mapping[str, Any]) -> tuple[Tag, ...]:
    return tags(params.get("Tags"))


@dataclass(frozen=True)
class CreateSnapshotRequest:
    """CreateSnapshot, checked."""

    name: str
    replication_group_id: str | None
    cache_cluster_id: str | None
    kms_key_id: str | None
    tags: tuple[Tag, ...]

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> CreateSnapshotRequest:
        group_id, cluster_id = params.get("ReplicationGroupId"), params.get("CacheClusterId")
        if (group_id is None) == (cluster_id is None):
            raise InvalidParameterCombination(
                "Give ReplicationGroupId (a replication group) or CacheClusterId (a cache cluster), one of the two."
            )
        return cls(
            name=snapshot_name(params["SnapshotName"]),
            replication_group_id=str(group_id).lower() if group_id is not None else None,
            cache_cluster_id=str(cluster_id).lower() if cluster_id is not None else None,
            kms_key_id=kms_key_id(params["KmsKeyId"]) if params.get("KmsKeyId") is not None else None,
            tags=_tags(params),
        )


@dataclass(frozen=True)
class DescribeSnapshotsRequest:
    """DescribeSnapshots' filters."""

    replication_group_id: str | None = None
    cache_cluster_id: str | None = None
    snapshot_name: str | None = None
    source: SnapshotSource | None = None
    show_node_group_config: bool = False

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> DescribeSnapshotsRequest:
        source = params.get("SnapshotSource")
        sources = {"user": SnapshotSource.MANUAL, "system": SnapshotSource.AUTOMATED}
        if source is not None and source not in sources:
            raise InvalidParameterValue(f"Invalid SnapshotSource '{source}': use user (manual) or system (automatic).")
        return cls(
            replication_group_id=str(params["ReplicationGroupId"]).lower() if params.get("ReplicationGroupId") else None,
            cache_cluster_id=str(params["CacheClusterId"]).lower() if params.get("CacheClusterId") else None,
            snapshot_name=str(params["SnapshotName"]).lower() if params.get("SnapshotName") else None,
            source=sources[source] if source is not None else None,
            show_node_group_config=bool(params.get("ShowNodeGroupConfig", False)),
        )


@dataclass(frozen=True)
class CopySnapshotRequest:
    """CopySnapshot: a copy under another name, or (TargetBucket) an export of its RDB files."""

    source_name: str
    target_name: str
    target_bucket: str | None
    kms_key_id: str | None
    tags: tuple[Tag, ...]

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> CopySnapshotRequest:
        bucket = params.get("TargetBucket") or None
        if bucket is not None and not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", bucket):
            raise InvalidParameterValue(
                f"Invalid TargetBucket '{bucket[:70]}': an S3 bucket name has 3 to 63 lower-case letters, digits, "
                "dots and hyphens."
            )
        if bucket is not None and (params.get("KmsKeyId") or params.get("Tags")):
            raise InvalidParameterCombination(
                "KmsKeyId and Tags apply to a copy kept by Cachefleet, not to an export to TargetBucket."
            )
        return cls(
            source_name=str(params["SourceSnapshotName"]).lower(),
            # An export's objects are named after it; automatic snapshots' names may be reused there.
            target_name=snapshot_name(params["TargetSnapshotName"], parameter="TargetSnapshotName",
                                      automatic=bucket is not None),
            target_bucket=bucket,
            kms_key_id=kms_key_id(params["KmsKeyId"]) if params.get("KmsKeyId") else None,
            tags=_tags(params),
        )


# ---------------------------------------------------------------------- events
def snapshot_event(snapshot: Snapshot, message: str, when: dt.datetime) -> Event:
    """An event about a snapshot, under the group or cluster it is of; a serverless cache
    snapshot's under its own name and source type, as ElastiCache records them."""
    if snapshot.is_serverless:
        return Event(snapshot.region, EventSourceType.SERVERLESS_CACHE_SNAPSHOT, snapshot.user_name,
                     message.replace(SERVERLESS_PREFIX, ""), when)
    if snapshot.replication_group_id is not None:
        return Event(snapshot.region, EventSourceType.REPLICATION_GROUP, snapshot.replication_group_id, message, when)
    return Event(snapshot.region, EventSourceType.CACHE_CLUSTER, snapshot.cache_cluster_id or "", message, when)


# ---------------------------------------------------------------------- use cases
class Snapshots(GroupUseCases):
    """CreateSnapshot, DescribeSnapshots, DeleteSnapshot, CopySnapshot, the automatic schedule, and
    what restores and final snapshots need (the ``Backups`` protocol of domain/backups.py)."""

    def __init__(self, deps: Dependencies, *, storage: SnapshotStorage) -> None:
        super().__init__(deps)
        self._storage = storage

    # ------------------------------------------------------------------ create
    def create(self, region: Region, request: CreateSnapshotRequest) -> Snapshot:
        self._check_new_name(region, request.name)
        group, cluster = self._source(region, request.replication_group_id, request.cache_cluster_id)
        self._check_manual_quota(region, group, cluster)
        now = self._clock.now()
        snapshot = self._new_snapshot(
            region, request.name, group=group, cluster=cluster, source=SnapshotSource.MANUAL, now=now,
            encryption_key=request.kms_key_id, snapshot_tags=request.tags,
        )
        with self._store.transaction() as tx:
            self._start_taking(tx, snapshot, group, cluster, message=f"Creating snapshot {snapshot.name} of {snapshot.subject}")
        self._changed(snapshot)
        return snapshot

    def _source(
        self, region: Region, group_id: str | None, cluster_id: str | None
    ) -> tuple[ReplicationGroup | None, CacheCluster | None]:
        """What CreateSnapshot names, checked: an available group, or an available standalone cluster,
        or a member of a cluster mode disabled group (that node's data)."""
        if group_id is not None:
            group = self._group(region, group_id)
            self._require_status(group, GroupStatus.AVAILABLE, action="snapshotted")
            return group, None
        assert cluster_id is not None
        cluster = self._get(CacheCluster, region, cluster_id)
        if cluster.replication_group_id is not None:
            group = self._group(region, cluster.replication_group_id)
            if group.cluster_enabled:
                raise InvalidParameterCombination(
                    f"Cache cluster {cluster.cluster_id} is a node of cluster mode enabled replication group "
                    f"{group.group_id}: snapshot the replication group (ReplicationGroupId) instead."
                )
            self._require_status(group, GroupStatus.AVAILABLE, action="snapshotted")
            return group, cluster
        if cluster.status != ClusterStatus.AVAILABLE:
            raise InvalidState(
                f"Cache cluster {cluster.cluster_id} is {cluster.status}; it can be snapshotted once it is available.",
                resource="CacheCluster",
            )
        return None, cluster

    def _check_new_name(self, region: Region, name: str) -> None:
        if self._store.get(Snapshot, region, name) is not None:
            raise AlreadyExists(f"Snapshot {name} already exists.", resource="Snapshot")
        if len(self._store.list(Snapshot, region)) >= MAX_SNAPSHOTS_PER_REGION:
            raise QuotaExceeded(
                f"This region holds {MAX_SNAPSHOTS_PER_REGION} snapshots, the most it can; delete some first.",
                resource="Snapshot",
            )

    def _check_manual_quota(self, region: Region, group: ReplicationGroup | None, cluster: CacheCluster | None) -> None:
        nodes = len(group.member_cluster_ids) if group is not None and cluster is None else 1
        since = self._clock.now() - dt.timedelta(hours=24)
        recent = [
            s for s in self._store.list(Snapshot, region)
            if s.source == SnapshotSource.MANUAL and s.copied_from is None and s.create_time > since
            and (s.replication_group_id, s.cache_cluster_id)
            == (group.group_id if group else None, cluster.cluster_id if cluster else None)
        ]
        limit = MANUAL_PER_NODE_PER_DAY * nodes
        if len(recent) >= limit:
            what = f"replication group {group.group_id}" if group is not None and cluster is None else (
                f"cache cluster {cluster.cluster_id}" if cluster is not None else "")
            raise QuotaExceeded(
                f"{len(recent)} manual snapshots of {what} were taken in the last 24 hours, the most its {nodes} "
                f"node(s) allow ({MANUAL_PER_NODE_PER_DAY} per node); try again later.",
                resource="Snapshot",
            )

    def _new_snapshot(
        self,
        region: Region,
        name: str,
        *,
        group: ReplicationGroup | None,
        cluster: CacheCluster | None,
        source: SnapshotSource,
        now: dt.datetime,
        encryption_key: str | None,
        snapshot_tags: tuple[Tag, ...],
    ) -> Snapshot:
        """A snapshot record to be taken: the settings of its group or cluster, one NodeSnapshot per shard."""
        if group is not None:
            key = encryption_key or (group.kms_key_id or DEFAULT_KEY_ID if group.at_rest_encryption else None)
            members = {c.cluster_id: c for c in self._members(group)}
            node_groups = group.node_groups if cluster is None else tuple(
                ng for ng in group.node_groups if cluster.cluster_id in ng.member_cluster_ids
            )
            node_snapshots = []
            for node_group in node_groups:
                chosen = cluster.cluster_id if cluster is not None else node_group.primary_cluster_id
                primary = members.get(node_group.primary_cluster_id)
                node_snapshots.append(
                    NodeSnapshot(
                        node_group_id=node_group.node_group_id,
                        cache_cluster_id=chosen,
                        file=shard_file(name, node_group.node_group_id, encrypted=key is not None),
                        cache_node_create_time=members[chosen].node.create_time if chosen in members else group.create_time,
                        slots=node_group.slots if group.cluster_enabled else "",
                        replica_count=len(node_group.replica_cluster_ids),
                        primary_zone=primary.availability_zone if primary is not None else "",
                        replica_zones=tuple(
                            members[c].availability_zone for c in node_group.replica_cluster_ids if c in members
                        ),
                    )
                )
            return Snapshot(
                region=region, name=name, status=SnapshotStatus.CREATING, source=source, create_time=now,
                engine=group.engine, engine_version=group.engine_version, node_type=group.node_type, port=group.port,
                parameter_group_name=group.parameter_group_name, subnet_group_name=group.subnet_group_name,
                node_snapshots=tuple(node_snapshots), replication_group_id=group.group_id,
                replication_group_description=group.description,
                cache_cluster_id=cluster.cluster_id if cluster is not None else None,
                cluster_enabled=group.cluster_enabled, automatic_failover=group.automatic_failover,
                preferred_maintenance_window=group.preferred_maintenance_window,
                snapshot_window=group.snapshot_window, snapshot_retention_limit=group.snapshot_retention_limit,
                auto_minor_version_upgrade=group.auto_minor_version_upgrade,
                preferred_availability_zone=cluster.availability_zone if cluster is not None else "",
                cache_cluster_create_time=cluster.create_time if cluster is not None else None,
                encryption_key=key, tags=snapshot_tags,
                serverless_cache_name=(
                    group.group_id[len(identifiers.SERVERLESS_GROUP_PREFIX):]
                    if identifiers.is_serverless_group(group.group_id) else None
                ),
            )
        assert cluster is not None
        key = encryption_key or (cluster.kms_key_id or DEFAULT_KEY_ID if cluster.at_rest_encryption else None)
        return Snapshot(
            region=region, name=name, status=SnapshotStatus.CREATING, source=source, create_time=now,
            engine=cluster.engine, engine_version=cluster.engine_version, node_type=cluster.node_type, port=cluster.port,
            parameter_group_name=cluster.parameter_group_name, subnet_group_name=cluster.subnet_group_name,
            node_snapshots=(
                NodeSnapshot(
                    node_group_id="0001", cache_cluster_id=cluster.cluster_id,
                    file=shard_file(name, "0001", encrypted=key is not None),
                    cache_node_create_time=cluster.node.create_time, primary_zone=cluster.availability_zone,
                ),
            ),
            cache_cluster_id=cluster.cluster_id,
            preferred_maintenance_window=cluster.preferred_maintenance_window,
            snapshot_window=cluster.snapshot_window, snapshot_retention_limit=cluster.snapshot_retention_limit,
            auto_minor_version_upgrade=cluster.auto_minor_version_upgrade,
            preferred_availability_zone=cluster.availability_zone, cache_cluster_create_time=cluster.create_time,
            encryption_key=key, tags=snapshot_tags,
        )

    def _start_taking(
        self, tx: Transaction, snapshot: Snapshot, group: ReplicationGroup | None, cluster: CacheCluster | None,
        *, message: str,
    ) -> None:
        """Records the snapshot ``creating`` with its operation, and its group (or standalone
        cluster) ``snapshotting``."""
        tx.put(snapshot)
        tx.put(self._begin(snapshot, OperationKind.SNAPSHOT))
        if group is not None:
            tx.put(replace(group, status=GroupStatus.SNAPSHOTTING))
        elif cluster is not None:
            tx.put(replace(cluster, status=ClusterStatus.SNAPSHOTTING))
        tx.add_event(snapshot_event(snapshot, message, self._clock.now()))

    # ------------------------------------------------------------------ describe, delete
    def describe(self, region: Region, request: DescribeSnapshotsRequest) -> list[Snapshot]:
        if request.snapshot_name is not None:
            found = [self._snapshot(region, request.snapshot_name)]
        else:
            found = sorted(
                (s for s in self._store.list(Snapshot, region) if self.serves_serverless or not s.is_serverless),
                key=lambda s: s.name,
            )
        if request.replication_group_id is not None:
            found = [s for s in found if s.replication_group_id == request.replication_group_id]
        if request.cache_cluster_id is not None:
            matching = [s for s in found if request.cache_cluster_id in (
                s.cache_cluster_id, *(n.cache_cluster_id for n in s.node_snapshots))]
            if not matching and self._store.get(CacheCluster, region, request.cache_cluster_id) is None:
                self._get(CacheCluster, region, request.cache_cluster_id)  # CacheClusterNotFound
            found = matching
        if request.source is not None:
            found = [s for s in found if s.source == request.source]
        return found

    def _snapshot(self, region: Region, name: str) -> Snapshot:
        """A snapshot by name; a serverless cache's is only found by the serverless family's instance."""
        if is_serverless_key(name.lower()) and not self.serves_serverless:
            raise NotFound(f"Snapshot {name} not found.", resource="Snapshot")
        return self._get(Snapshot, region, name)

    def delete(self, region: Region, name: str) -> Snapshot:
        snapshot = self._snapshot(region, name)
        if snapshot.status not in (SnapshotStatus.AVAILABLE, SnapshotStatus.FAILED):
            raise InvalidState(
                f"Snapshot {snapshot.name} is {snapshot.status}; it can be deleted once it is available (or failed).",
                resource="Snapshot",
            )
        for restore in self._store.list(Restore, region):
            if restore.snapshot_name == snapshot.name:
                raise InvalidState(
                    f"Snapshot {snapshot.name} is being restored into {restore.resource_id}; delete it once that is done.",
                    resource="Snapshot",
                )
        with self._store.transaction() as tx:
            deleting = self._start_deleting(tx, snapshot)
        self._changed(deleting)
        return deleting

    def _start_deleting(self, tx: Transaction, snapshot: Snapshot) -> Snapshot:
        deleting = replace(snapshot, status=SnapshotStatus.DELETING)
        tx.put(deleting)
        tx.put(self._begin(deleting, OperationKind.SNAPSHOT))
        tx.add_event(snapshot_event(deleting, f"Deleting snapshot {snapshot.name}", self._clock.now()))
        return deleting

    # ------------------------------------------------------------------ copy, export
    def copy(self, region: Region, request: CopySnapshotRequest) -> Snapshot:
        source = self._snapshot(region, request.source_name)
        if source.status != SnapshotStatus.AVAILABLE:
            raise InvalidState(
                f"Snapshot {source.name} is {source.status}; it can be copied once it is available.", resource="Snapshot"
            )
        if request.target_bucket is not None:
            return self._export(source, request.target_bucket, request.target_name)
        self._check_new_name(region, request.target_name)
        key = request.kms_key_id or source.encryption_key
        now = self._clock.now()
        copy = replace(
            source, name=request.target_name, status=SnapshotStatus.CREATING, source=SnapshotSource.MANUAL,
            create_time=now, copied_from=source.name, encryption_key=key, tags=request.tags, status_reason="",
            export=None,
            node_snapshots=tuple(
                replace(n, file=shard_file(request.target_name, n.node_group_id, encrypted=key is not None))
                for n in source.node_snapshots
            ),
        )
        copying = replace(source, status=SnapshotStatus.COPYING)
        with self._store.transaction() as tx:
            tx.put(copy)
            tx.put(copying)
            tx.put(self._begin(copy, OperationKind.SNAPSHOT))
            tx.add_event(snapshot_event(copy, f"Copying snapshot {source.name} to {copy.name}", now))
        self._changed(copy)
        return copy

    def _export(self, source: Snapshot, bucket: str, target: str) -> Snapshot:
        """CopySnapshot with a TargetBucket: <target>-<shard>.rdb objects, as ElastiCache writes them."""
        if not self._storage.bucket_exists(bucket):
            raise InvalidParameterValue(f"The S3 bucket {bucket} does not exist.")
        for node in source.node_snapshots:
            key = export_key(target, node.node_group_id)
            if self._storage.object_exists(bucket, key):
                raise InvalidParameterValue(
                    f"The S3 bucket {bucket} already contains an object with key {key}; give TargetSnapshotName a "
                    "new value."
                )
        exporting = replace(source, status=SnapshotStatus.EXPORTING, export=SnapshotExport(bucket, target))
        with self._store.transaction() as tx:
            tx.put(exporting)
            tx.put(self._begin(exporting, OperationKind.SNAPSHOT))
            tx.add_event(snapshot_event(exporting, f"Exporting snapshot {source.name} to s3://{bucket}/{target}-*.rdb",
                                        self._clock.now()))
        self._changed(exporting)
        return exporting

    # ------------------------------------------------------------------ the schedule
    def run_schedule(self, now: dt.datetime) -> list[str]:
        """One look at every group and standalone cluster with SnapshotRetentionLimit: takes the
        automatic snapshot due in its window, deletes the automatic snapshots past their limit
        (and those whose group or cluster is gone). Returns what it did, in words."""
        done: list[str] = []
        automatic: dict[tuple[str, str | None, str | None], list[Snapshot]] = {}
        for snapshot in self._store.list(Snapshot):
            if snapshot.source == SnapshotSource.AUTOMATED:
                automatic.setdefault(
                    (snapshot.region, snapshot.replication_group_id, snapshot.cache_cluster_id), []
                ).append(snapshot)
        for group in self._store.list(ReplicationGroup):
            taken = [s.create_time for s in automatic.get((group.region, group.group_id, None), [])]
            window, limit = self._schedule_of(group)
            if group.status == GroupStatus.AVAILABLE and automatic_due(window, limit, now, taken):
                done.append(self._take_automatic(group.region, group, None, now))
        for cluster in self._store.list(CacheCluster):
            if cluster.replication_group_id is not None:
                continue
            taken = [s.create_time for s in automatic.get((cluster.region, None, cluster.cluster_id), [])]
            if cluster.status == ClusterStatus.AVAILABLE and automatic_due(
                cluster.snapshot_window, cluster.snapshot_retention_limit, now, taken
            ):
                done.append(self._take_automatic(cluster.region, None, cluster, now))
        for (region, group_id, cluster_id), found in automatic.items():
            owner: ReplicationGroup | CacheCluster | None = (
                self._store.get(ReplicationGroup, region, group_id) if group_id is not None
                else self._store.get(CacheCluster, region, cluster_id or "")
            )
            for snapshot in found:
                if snapshot.status not in (SnapshotStatus.AVAILABLE, SnapshotStatus.FAILED):
                    continue
                if owner is None:
                    why = f"{snapshot.subject} no longer exists"
                else:
                    limit = self._schedule_of(owner)[1] if isinstance(owner, ReplicationGroup) else (
                        owner.snapshot_retention_limit)
                    if not expired(limit, snapshot.create_time, now):
                        continue
                    why = f"it is older than the retention limit of {limit} day(s)"
                with self._store.transaction() as tx:
                    deleting = self._start_deleting(tx, snapshot)
                    tx.add_event(snapshot_event(deleting, f"Automatic snapshot {snapshot.name} deleted: {why}",
                                                self._clock.now()))
                self._changed(deleting)
                done.append(f"deleting {snapshot.name}: {why}")
        return done

    def _serverless_cache_of(self, group: ReplicationGroup) -> ServerlessCache | None:
        if not identifiers.is_serverless_group(group.group_id):
            return None
        found: ServerlessCache | None = self._store.get(
            ServerlessCache, group.region, group.group_id[len(identifiers.SERVERLESS_GROUP_PREFIX):]
        )
        return found

    def _schedule_of(self, group: ReplicationGroup) -> tuple[str, int]:
        """The daily window and retention limit of a group's automatic snapshots: a serverless
        cache's are its DailySnapshotTime and SnapshotRetentionLimit (its group keeps none)."""
        if not identifiers.is_serverless_group(group.group_id):
            return group.snapshot_window, group.snapshot_retention_limit
        cache = self._serverless_cache_of(group)
        if cache is None or cache.deleting:
            return group.snapshot_window, 0
        return daily_window(cache.daily_snapshot_time), cache.snapshot_retention_limit

    def _take_automatic(
        self, region: Region, group: ReplicationGroup | None, cluster: CacheCluster | None, now: dt.datetime
    ) -> str:
        resource_id = group.group_id if group is not None else (cluster.cluster_id if cluster else "")
        cache = self._serverless_cache_of(group) if group is not None else None
        # A serverless cache's: automatic.<cache>-<yyyy-mm-dd-hh-mm>, a serverless cache snapshot.
        name = serverless_key(automatic_name(cache.name, now)) if cache is not None else automatic_name(resource_id, now)
        if self._store.get(Snapshot, region, name) is not None:
            return f"{name} exists already"
        snapshot = self._new_snapshot(
            region, name, group=group, cluster=cluster, source=SnapshotSource.AUTOMATED, now=now,
            encryption_key=cache.kms_key_id if cache is not None else None,
            snapshot_tags=group.tags if group is not None else (cluster.tags if cluster else ()),
        )
        if cache is not None:
            snapshot = replace(snapshot, snapshot_retention_limit=cache.snapshot_retention_limit, tags=cache.tags)
        with self._store.transaction() as tx:
            self._start_taking(tx, snapshot, group, cluster,
                               message=f"Creating automatic snapshot {name} of {snapshot.subject}")
        self._changed(snapshot)
        return f"taking {name}"

    # ------------------------------------------------------------------ restores and final snapshots (Backups)
    def restore_defaults(self, region: Region, request: RestoreRequest) -> SnapshotDefaults:
        if request.snapshot_name is not None:
            snapshot = self._restorable(region, request.snapshot_name)
            first = snapshot.node_snapshots[0] if snapshot.node_snapshots else None
            return SnapshotDefaults(
                engine=snapshot.engine, engine_version=snapshot.engine_version, node_type=snapshot.node_type,
                port=snapshot.port, cluster_enabled=snapshot.cluster_enabled,
                num_node_groups=max(1, len(snapshot.node_snapshots)),
                replicas_per_node_group=first.replica_count if first is not None else 0,
                at_rest_encryption=snapshot.encryption_key is not None,
            )
        for bucket, key in request.objects:
            self._storage.object_facts(bucket, key)  # a missing object is refused before anything else
        return SnapshotDefaults(num_node_groups=len(request.objects))

    def _restorable(self, region: Region, name: str) -> Snapshot:
        snapshot = self._get(Snapshot, region, name)
        if snapshot.status not in (SnapshotStatus.AVAILABLE, SnapshotStatus.COPYING, SnapshotStatus.EXPORTING):
            raise InvalidState(
                f"Snapshot {snapshot.name} is {snapshot.status}; a group can be restored from it once it is available.",
                resource="Snapshot",
            )
        return snapshot

    def prepare_restore(
        self,
        region: Region,
        request: RestoreRequest,
        *,
        target: Resource,
        engine: str,
        version: str,
        used: Iterable[str],
    ) -> Prepared:
        sources: list[RestoreSource] = []
        if request.snapshot_name is not None:
            snapshot = self._restorable(region, request.snapshot_name)
            for index, node in enumerate(snapshot.node_snapshots):
                sources.append(RestoreSource(
                    index=index, size=node.size, rdb_format=node.rdb_format, snapshot_name=snapshot.name,
                    file=node.file, slots=node.slots,
                    encryption_key=snapshot.encryption_key,
                ))
            what = f"snapshot {snapshot.name}"
        else:
            for index, (bucket, key) in enumerate(request.objects):
                facts = self._storage.object_facts(bucket, key)
                sources.append(RestoreSource(
                    index=index, size=facts.size, rdb_format=facts.rdb_format, bucket=bucket, object_key=key,
                    slots=facts.slots, encryption_key=facts.encryption_key,
                ))
            what = f"{len(sources)} RDB object(s)"
        label = "Valkey" if engine == "valkey" else "Redis OSS"
        for source in sources:
            reason = self._storage.loadable(source.rdb_format, engine, version)
            if reason is not None:
                raise InvalidParameterCombination(
                    f"Cannot restore {source.described} (RDB format {source.rdb_format}) into {label} {version}: {reason}."
                )
        addresses = self._allocate(len(sources), also_used=used)
        restore = Restore(
            region=region, resource_kind=target.KIND.name, resource_id=target.key, sources=tuple(sources),
            temporary_addresses=tuple(addresses), started=self._clock.now(), snapshot_name=request.snapshot_name,
        )
        size = sum(s.size for s in sources)
        message = (f"Restoring {what} into {target.KIND.noun.lower()} {target.key}: {len(sources)} RDB file(s), "
                   f"{cache_size(size)}")
        source_type = EventSourceType(target.KIND.event_source or EventSourceType.REPLICATION_GROUP.value)
        return Prepared(records=(restore,), events=(Event(region, source_type, target.key, message, self._clock.now()),))

    def prepare_final_snapshot(self, region: Region, name: str, *, source: Resource) -> Prepared:
        group = source if isinstance(source, ReplicationGroup) else None
        if group is not None and identifiers.is_serverless_group(group.group_id):
            # DeleteServerlessCache's FinalSnapshotName: a serverless cache snapshot.
            final = serverless_key(snapshot_name(name, parameter="FinalSnapshotName"))
            if self._store.get(Snapshot, region, final) is not None:
                raise AlreadyExists(f"Serverless cache snapshot {name} already exists.",
                                    resource="ServerlessCacheSnapshot")
        else:
            final = snapshot_name(name, parameter="FinalSnapshotIdentifier")
        self._check_new_name(region, final)
        cluster = source if isinstance(source, CacheCluster) else None
        snapshot = self._new_snapshot(
            region, final, group=group, cluster=cluster, source=SnapshotSource.MANUAL, now=self._clock.now(),
            encryption_key=None, snapshot_tags=(),
        )
        operation: Operation = self._begin(snapshot, OperationKind.SNAPSHOT)
        return Prepared(
            records=(snapshot, operation),
            events=(snapshot_event(snapshot, f"Creating final snapshot {final} of {snapshot.subject} before it is "
                                             "deleted", self._clock.now()),),
        )

    def restore_of(self, resource: Resource) -> Restore | None:
        """The restore in progress into a group or cluster (Describe shows it), if any."""
        found: Restore | None = self._store.get(Restore, resource.region, restore_key(resource.KIND.name, resource.key))
        return found


def export_key(target_name: str, node_group_id: str) -> str:
    """The object an export writes for one shard: ElastiCache's <name>-<shard>.rdb."""
    return f"{target_name}-{node_group_id}.rdb"
