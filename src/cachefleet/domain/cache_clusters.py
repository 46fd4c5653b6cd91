"""Cache clusters: one node each (Valkey and Redis OSS), standalone or a member of a replication group.

This module owns the records and the standalone clusters' use cases. A cluster that joins or
leaves a replication group is the group's business: ``CreateCacheCluster`` with a
ReplicationGroupId and ``DeleteCacheCluster`` of a member go to :class:`GroupMembership`
(implemented by ``domain/replication_groups.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from cachefleet.domain import backups, identifiers, nodetypes, validation
from cachefleet.domain.backups import Backups, NoBackups, Prepared, RestoreRequest
from cachefleet.domain.base import DEFAULT_PORT, MAX_NODES_PER_REGION, Dependencies, UseCases
from cachefleet.domain.engines import parameter_group, resolve_engine
from cachefleet.domain.errors import (
    AlreadyExists,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidState,
    QuotaExceeded,
)
from cachefleet.domain.events import EventSourceType
from cachefleet.domain.identifiers import Region
from cachefleet.domain.operations import OperationKind
from cachefleet.domain.ports import StateStore
from cachefleet.domain.resource import Kind
from cachefleet.domain.tags import Tag, tags

DEFAULT_SUBNET_GROUP = "default"
DEFAULT_MAINTENANCE_WINDOW = "sun:05:00-sun:06:00"
# ElastiCache's rule: the daily snapshot window does not overlap the weekly maintenance window.
DEFAULT_SNAPSHOT_WINDOW = "06:30-07:30"


class ClusterStatus(StrEnum):
    """A cache cluster's status, as ElastiCache writes it."""

    CREATING = "creating"
    AVAILABLE = "available"
    MODIFYING = "modifying"
    DELETING = "deleting"
    CREATE_FAILED = "create-failed"
    REBOOTING = "rebooting cache cluster nodes"
    SNAPSHOTTING = "snapshotting"


class NodeStatus(StrEnum):
    """A cache node's status, as ElastiCache writes it."""

    CREATING = "creating"
    AVAILABLE = "available"
    REBOOTING = "rebooting"
    DELETING = "deleting"


@dataclass(frozen=True)
class CacheNode:
    """A cache cluster's node: where it listens and in which zone."""

    node_id: str  # "0001", as ElastiCache numbers nodes within a cluster
    address: str
    port: int
    availability_zone: str
    status: NodeStatus
    create_time: dt.datetime


@dataclass(frozen=True)
class CacheCluster:
    """A cache cluster and its one node."""

    KIND: ClassVar[Kind] = Kind(
        name="CacheCluster", noun="Cache cluster", not_found="CacheClusterNotFoundFault", arn_type="cluster",
        event_source=EventSourceType.CACHE_CLUSTER.value, already_exists="CacheClusterAlreadyExistsFault",
        invalid_state="InvalidCacheClusterStateFault", quota_exceeded="ClusterQuotaForCustomerExceededFault",
        taggable=True,
    )

    region: Region
    cluster_id: str
    status: ClusterStatus
    engine: str
    engine_version: str
    node_type: str
    port: int
    availability_zone: str
    subnet_group_name: str
    parameter_group_name: str
    node: CacheNode
    create_time: dt.datetime
    replication_group_id: str | None = None
    node_group_id: str | None = None
    preferred_maintenance_window: str = DEFAULT_MAINTENANCE_WINDOW
    auto_minor_version_upgrade: bool = True
    snapshot_retention_limit: int = 0
    snapshot_window: str = DEFAULT_SNAPSHOT_WINDOW
    tags: tuple[Tag, ...] = ()
    status_reason: str = ""
    at_rest_encryption: bool = False  # a member of a group with AtRestEncryptionEnabled
    kms_key_id: str | None = None

    @property
    def key(self) -> str:
        return self.cluster_id

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.node.address,)


_UNSUPPORTED: dict[str, Any] = {
    "CacheSecurityGroupNames": None,
    "SecurityGroupIds": None,
    "NotificationTopicArn": None,
    "AuthToken": None,
    "OutpostMode": None,
    "PreferredOutpostArn": None,
    "PreferredOutpostArns": None,
    "LogDeliveryConfigurations": None,
    "TransitEncryptionEnabled": False,
    "NetworkType": "ipv4",
    "IpDiscovery": "ipv4",
}
# Settings a member follows from its group: CreateCacheCluster in a group may repeat them, not change them.
GROUP_SETTINGS = (
    "Engine", "CacheNodeType", "Port", "CacheSubnetGroupName", "CacheParameterGroupName", "PreferredMaintenanceWindow",
    "SnapshotWindow", "AutoMinorVersionUpgrade", "EngineVersion",
)


@dataclass(frozen=True)
class CreateCacheClusterRequest:
    """CreateCacheCluster, checked: what is wanted, before anything is looked up."""

    cluster_id: str
    replication_group_id: str | None
    engine: str | None
    engine_version: str | None
    node_type: str | None
    port: int
    subnet_group_name: str | None
    parameter_group_name: str | None
    zone: str | None
    maintenance_window: str
    auto_minor_version_upgrade: bool
    snapshot_window: str
    tags: tuple[Tag, ...]
    group_settings: tuple[tuple[str, Any], ...]  # the members of GROUP_SETTINGS given, as given
    restore: RestoreRequest | None = None
    snapshot_retention_limit: int = 0

    @classmethod
    def parse(cls, region: Region, params: Mapping[str, Any]) -> CreateCacheClusterRequest:
        validation.not_yet(params, _UNSUPPORTED, operation="CreateCacheCluster")
        restore = RestoreRequest.parse(params)
        if params.get("ReplicationGroupId") is not None:
            for member in ("SnapshotName", "SnapshotArns", "SnapshotRetentionLimit"):
                if params.get(member):
                    raise InvalidParameterCombination(
                        f"{member} does not apply to a cache cluster joining a replication group (a replica syncs "
                        "from its primary; the group's snapshot settings are its own)."
                    )
        if params.get("NumCacheNodes", 1) != 1:
            raise InvalidParameterValue(
                f"Invalid NumCacheNodes {params['NumCacheNodes']}: a Valkey or Redis OSS cache cluster has exactly "
                "one node; add replicas with a replication group instead."
            )
        if params.get("AZMode", "single-az") != "single-az":
            raise InvalidParameterValue("AZMode cross-az applies to Memcached only; omit AZMode or use single-az.")
        group_id = params.get("ReplicationGroupId")
        node_type = params.get("CacheNodeType")
        if node_type is None and group_id is None and restore is None:
            raise InvalidParameterValue(
                "The parameter CacheNodeType must be provided: choose a node type such as cache.t4g.micro."
            )
        return cls(
            cluster_id=identifiers.cache_cluster_id(params["CacheClusterId"]),
            replication_group_id=identifiers.replication_group_id(group_id) if group_id is not None else None,
            engine=params.get("Engine"),
            engine_version=params.get("EngineVersion"),
            node_type=nodetypes.check_node_type(node_type) if node_type is not None else None,
            port=validation.port(params.get("Port", DEFAULT_PORT)),
            subnet_group_name=params.get("CacheSubnetGroupName"),
            parameter_group_name=params.get("CacheParameterGroupName"),
            zone=_single_zone(region, params),
            maintenance_window=validation.maintenance_window(
                params.get("PreferredMaintenanceWindow", DEFAULT_MAINTENANCE_WINDOW)
            ),
            auto_minor_version_upgrade=bool(params.get("AutoMinorVersionUpgrade", True)),
            snapshot_window=validation.snapshot_window(params.get("SnapshotWindow", DEFAULT_SNAPSHOT_WINDOW)),
            tags=tags(params.get("Tags")),
            group_settings=tuple((name, params[name]) for name in GROUP_SETTINGS if name in params),
            restore=restore,
            snapshot_retention_limit=backups.retention_limit(params.get("SnapshotRetentionLimit", 0)),
        )


# ModifyCacheCluster members this module honours for a standalone Valkey/Redis OSS cluster; the
# others are refused (InvalidParameterCombination) rather than accepted and ignored.
_MODIFY_HONOURED = (
    "CacheClusterId", "ApplyImmediately", "SnapshotRetentionLimit", "SnapshotWindow", "PreferredMaintenanceWindow",
    "AutoMinorVersionUpgrade",
)


@dataclass(frozen=True)
class ModifyCacheClusterRequest:
    """ModifyCacheCluster, checked."""

    cluster_id: str
    snapshot_retention_limit: int | None = None
    snapshot_window: str | None = None
    preferred_maintenance_window: str | None = None
    auto_minor_version_upgrade: bool | None = None

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ModifyCacheClusterRequest:
        for member in sorted(set(params) - set(_MODIFY_HONOURED)):
            value = params[member]
            if value in (None, [], ""):
                continue
            raise InvalidParameterCombination(
                f"ModifyCacheCluster: {member} is not supported by Cachefleet yet; omit {member}."
            )
        window = params.get("SnapshotWindow")
        maintenance = params.get("PreferredMaintenanceWindow")
        return cls(
            cluster_id=str(params["CacheClusterId"]),
            snapshot_retention_limit=(
                backups.retention_limit(params["SnapshotRetentionLimit"]) if "SnapshotRetentionLimit" in params else None
            ),
            snapshot_window=validation.snapshot_window(window) if window is not None else None,
            preferred_maintenance_window=validation.maintenance_window(maintenance) if maintenance is not None else None,
            auto_minor_version_upgrade=params.get("AutoMinorVersionUpgrade"),
        )


def _single_zone(region: Region, params: Mapping[str, Any]) -> str | None:
    zone = params.get("PreferredAvailabilityZone")
    zones = params.get("PreferredAvailabilityZones")
    if zones:
        if len(zones) != 1:
            raise InvalidParameterValue(
                "PreferredAvailabilityZones must list exactly one zone for a Valkey or Redis OSS cluster (one node)."
            )
        if zone is not None and zone != zones[0]:
            raise InvalidParameterCombination("PreferredAvailabilityZone and PreferredAvailabilityZones disagree.")
        zone = zones[0]
    if zone is None:
        return None
    return identifiers.check_availability_zone(region, str(zone), parameter="PreferredAvailabilityZone")


class SubnetGroup(Protocol):
    """What placing a node needs to know of a cache subnet group."""

    @property
    def name(self) -> str: ...

    @property
    def availability_zones(self) -> tuple[str, ...]: ...


class SubnetGroupLookup(Protocol):
    """Finds cache subnet groups (``domain/subnet_groups.py``), the ``default`` one included."""

    def get(self, region: Region, name: str) -> SubnetGroup: ...


def zone_in(subnet_group: SubnetGroup, zone: str | None, *, default: str) -> str:
    """``zone`` if the subnet group has a subnet there (``default`` when no zone was asked for)."""
    if zone is None:
        return default
    if zone not in subnet_group.availability_zones:
        raise InvalidParameterValue(
            f"Availability zone {zone} is not in cache subnet group {subnet_group.name} "
            f"({', '.join(subnet_group.availability_zones)})."
        )
    return zone


class GroupMembership(Protocol):
    """Clusters joining and leaving replication groups (``domain/replication_groups.py``)."""

    def add_cache_cluster(self, region: Region, request: CreateCacheClusterRequest) -> CacheCluster: ...

    def remove_cache_cluster(self, cluster: CacheCluster) -> CacheCluster: ...


class CacheClusters(UseCases):
    """CreateCacheCluster, DeleteCacheCluster, DescribeCacheClusters."""

    def __init__(
        self, deps: Dependencies, *, subnet_groups: SubnetGroupLookup, membership: GroupMembership,
        backups: Backups | None = None,
    ) -> None:
        super().__init__(deps)
        self._subnet_groups = subnet_groups
        self._membership = membership
        self._backups: Backups = backups or NoBackups()

    def create(self, region: Region, request: CreateCacheClusterRequest) -> CacheCluster:
        if self._store.get(CacheCluster, region, request.cluster_id) is not None:
            raise AlreadyExists(f"Cache cluster {request.cluster_id} already exists.", resource="CacheCluster")
        check_node_quota(self._store, region, 1)
        if request.replication_group_id is not None:
            return self._membership.add_cache_cluster(region, request)
        engine, version, node_type, port = request.engine, request.engine_version, request.node_type, request.port
        if request.restore is not None:
            defaults = self._backups.restore_defaults(region, request.restore)
            if engine is None or (defaults.engine is not None and engine.lower() == defaults.engine):
                engine = engine or defaults.engine
                version = version or defaults.engine_version
            node_type = node_type or defaults.node_type
            if "Port" not in dict(request.group_settings) and defaults.port is not None:
                port = defaults.port
            if node_type is None:
                raise InvalidParameterValue(
                    "The parameter CacheNodeType must be provided: RDB objects do not say which node type they come from."
                )
        backups.check_windows(request.snapshot_window, request.maintenance_window)
        release = resolve_engine(self._catalog.releases(), engine, version)
        assert node_type is not None  # parse() requires it for a standalone cluster not restored
        subnet_group = self._subnet_groups.get(region, request.subnet_group_name or DEFAULT_SUBNET_GROUP)
        zone = zone_in(subnet_group, request.zone, default=subnet_group.availability_zones[0])
        now = self._clock.now()
        (address,) = self._allocate(1)
        cluster = CacheCluster(
            region=region,
            cluster_id=request.cluster_id,
            status=ClusterStatus.CREATING,
            engine=release.engine,
            engine_version=release.version,
            node_type=node_type,
            port=port,
            availability_zone=zone,
            subnet_group_name=subnet_group.name,
            parameter_group_name=parameter_group(request.parameter_group_name, release),
            node=CacheNode("0001", address, port, zone, NodeStatus.CREATING, now),
            create_time=now,
            preferred_maintenance_window=request.maintenance_window,
            auto_minor_version_upgrade=request.auto_minor_version_upgrade,
            snapshot_window=request.snapshot_window,
            snapshot_retention_limit=request.snapshot_retention_limit,
            tags=request.tags,
        )
        prepared = Prepared()
        if request.restore is not None:
            prepared = self._backups.prepare_restore(
                region, request.restore, target=cluster, engine=release.engine, version=release.version,
                used=[address],
            )
        with self._store.transaction() as tx:
            tx.put(cluster)
            tx.put(self._begin(cluster, OperationKind.CREATE))
            self._event(
                tx, cluster,
                f"Creating cache cluster {cluster.cluster_id} ({release.engine} {release.version}, {node_type})",
            )
            for record in prepared.records:
                tx.put(record)
            for event in prepared.events:
                tx.add_event(event)
        self._changed(cluster)
        return cluster

    def delete(self, region: Region, cluster_id: str, *, final_snapshot: str | None = None) -> CacheCluster:
        cluster = self._get(CacheCluster, region, cluster_id)
        if cluster.status not in (ClusterStatus.AVAILABLE, ClusterStatus.CREATE_FAILED):
            raise InvalidState(
                f"Cache cluster {cluster.cluster_id} is {cluster.status}; it can be deleted once it is available.",
                resource="CacheCluster",
            )
        if cluster.replication_group_id is not None:
            if final_snapshot is not None:
                raise InvalidParameterCombination(
                    f"Cache cluster {cluster.cluster_id} is a member of replication group {cluster.replication_group_id}; "
                    "a final snapshot is taken of the group (DeleteReplicationGroup FinalSnapshotIdentifier)."
                )
            return self._membership.remove_cache_cluster(cluster)
        prepared = Prepared()
        if final_snapshot is not None:
            if cluster.status != ClusterStatus.AVAILABLE:
                raise InvalidParameterCombination(
                    f"Cache cluster {cluster.cluster_id} is {cluster.status} and holds no data to snapshot; delete it "
                    "without FinalSnapshotIdentifier."
                )
            # Taken before the node stops: the delete waits for it (control/reconciler.py).
            prepared = self._backups.prepare_final_snapshot(region, final_snapshot, source=cluster)
        deleting = deleting_cluster(cluster)
        with self._store.transaction() as tx:
            for record in prepared.records:
                tx.put(record)
            for event in prepared.events:
                tx.add_event(event)
            tx.put(deleting)
            self._event(tx, cluster, f"Deleting cache cluster {cluster.cluster_id}")
        self._changed(deleting)
        return deleting

    def modify(self, region: Region, request: ModifyCacheClusterRequest) -> CacheCluster:
        """ModifyCacheCluster of a standalone cluster's settings (its snapshots' schedule, its windows)."""
        cluster = self._get(CacheCluster, region, request.cluster_id)
        if cluster.status != ClusterStatus.AVAILABLE:
            raise InvalidState(
                f"Cache cluster {cluster.cluster_id} is {cluster.status}; it can be modified once it is available.",
                resource="CacheCluster",
            )
        if cluster.replication_group_id is not None:
            raise InvalidParameterCombination(
                f"Cache cluster {cluster.cluster_id} is a member of replication group {cluster.replication_group_id}; "
                "change its settings with ModifyReplicationGroup."
            )
        changes = {
            name: value for name in ("snapshot_retention_limit", "snapshot_window", "preferred_maintenance_window",
                                     "auto_minor_version_upgrade")
            if (value := getattr(request, name)) is not None and getattr(cluster, name) != value
        }
        if not changes:
            return cluster
        updated = replace(cluster, **changes)
        backups.check_windows(updated.snapshot_window, updated.preferred_maintenance_window)
        with self._store.transaction() as tx:
            tx.put(updated)
            self._event(tx, updated, f"Cache cluster {cluster.cluster_id} modified: {', '.join(sorted(changes))}")
        return updated

    def describe(
        self, region: Region, cluster_id: str | None = None, *, not_in_replication_groups: bool = False
    ) -> list[CacheCluster]:
        if cluster_id is not None:
            return [self._get(CacheCluster, region, cluster_id)]
        clusters = sorted(self._store.list(CacheCluster, region), key=lambda c: c.cluster_id)
        if not_in_replication_groups:
            clusters = [c for c in clusters if c.replication_group_id is None]
        return clusters

    def of(self, region: Region, cluster_ids: Sequence[str]) -> dict[str, CacheCluster]:
        """The clusters of those ids that exist."""
        found = {}
        for cluster_id in cluster_ids:
            cluster = self._store.get(CacheCluster, region, cluster_id)
            if cluster is not None:
                found[cluster_id] = cluster
        return found


def check_node_quota(store: StateStore, region: Region, new_nodes: int) -> None:
    if len(store.list(CacheCluster, region)) + new_nodes > MAX_NODES_PER_REGION:
        raise QuotaExceeded(
            f"{new_nodes} more node(s) would exceed the quota of {MAX_NODES_PER_REGION} nodes per region.",
            resource="CacheNode",
        )


def deleting_cluster(cluster: CacheCluster) -> CacheCluster:
    return replace(cluster, status=ClusterStatus.DELETING, node=replace(cluster.node, status=NodeStatus.DELETING))
