"""Cache clusters: one node each (Valkey and Redis OSS), standalone or a member of a replication group.

This module owns the records and the standalone clusters' use cases. A cluster that joins or
leaves a replication group is the group's business: ``CreateCacheCluster`` with a
ReplicationGroupId and ``DeleteCacheCluster`` of a member go to :class:`GroupMembership`
(implemented by ``domain/replication_groups.py``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from cachefleet.domain import backups, errors, identifiers, nodetypes, validation, windows
from cachefleet.domain.backups import Backups, NoBackups, Prepared, RestoreRequest
from cachefleet.domain.base import DEFAULT_PORT, MAX_NODES_PER_REGION, Dependencies, UseCases
from cachefleet.domain.engines import EngineRelease, refuse_memcached, release_of, resolve_engine
from cachefleet.domain.errors import (
    AlreadyExists,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    QuotaExceeded,
)
from cachefleet.domain.events import EventSourceType
from cachefleet.domain.identifiers import Region
from cachefleet.domain.operations import Operation, OperationKind
from cachefleet.domain.ports import StateStore
from cachefleet.domain.resource import Kind
from cachefleet.domain.security import Security, SecurityRequest, check_tls_engine
from cachefleet.domain.tags import Tag, tags

DEFAULT_SUBNET_GROUP = "default"
DEFAULT_MAINTENANCE_WINDOW = "sun:05:00-sun:06:00"
# ElastiCache's rule: the daily snapshot window does not overlap the weekly maintenance window.
DEFAULT_SNAPSHOT_WINDOW = "06:30-07:30"
NOTIFICATION_STATUSES = ("active", "inactive")
MAX_SECURITY_GROUP_IDS = 5  # VPC security groups per cluster
_SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8}([0-9a-f]{9})?$")
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$")


class ClusterStatus(StrEnum):
    """A cache cluster's status, as ElastiCache writes it."""

    CREATING = "creating"
    AVAILABLE = "available"
    MODIFYING = "modifying"
    DELETING = "deleting"
    CREATE_FAILED = "create-failed"
    REBOOTING = "rebooting cache cluster nodes"
    SNAPSHOTTING = "snapshotting"


# status_reason of a cluster (modifying, its node creating) whose node used to run and would not start
# again: the control plane keeps trying, and the cluster can be deleted meanwhile.
NODE_RESTARTING = "restarting"


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
class PendingModifiedValues:
    """Changes asked for with ApplyImmediately false: they wait for the cluster's maintenance window
    (domain/maintenance.py starts them; Describe shows them as PendingModifiedValues).

    An engine change also carries the engine (Redis OSS to Valkey) and the parameter group the node
    runs with on the new build; Describe shows its EngineVersion only, as ElastiCache does. A member
    of a group being upgraded keeps its pending EngineVersion until its node runs the new build.
    """

    node_type: str | None = None
    engine_version: str | None = None
    engine: str | None = None
    parameter_group_name: str | None = None

    @property
    def empty(self) -> bool:
        return self.node_type is None and self.engine_version is None


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
    security_group_ids: tuple[str, ...] = ()  # VPC security groups: stored and shown, not a firewall here
    cache_security_group_names: tuple[str, ...] = ()  # EC2-Classic cache security groups, likewise
    notification_topic_arn: str | None = None  # stored and shown; Cachefleet publishes nothing to SNS
    notification_topic_status: str = "active"
    pending: PendingModifiedValues = PendingModifiedValues()
    security: Security = Security()  # a standalone cluster's own; a member follows its group's
    at_rest_encryption: bool = False  # a member of a group with AtRestEncryptionEnabled
    kms_key_id: str | None = None

    @property
    def key(self) -> str:
        return self.cluster_id

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.node.address,)


_UNSUPPORTED: dict[str, Any] = {
    "OutpostMode": None,
    "PreferredOutpostArn": None,
    "PreferredOutpostArns": None,
    "LogDeliveryConfigurations": None,
    "NetworkType": "ipv4",
    "IpDiscovery": "ipv4",
}
# Settings a member follows from its group: CreateCacheCluster in a group may repeat them, not change them.
GROUP_SETTINGS = (
    "Engine", "CacheNodeType", "Port", "CacheSubnetGroupName", "CacheParameterGroupName", "PreferredMaintenanceWindow",
    "SnapshotWindow", "AutoMinorVersionUpgrade", "EngineVersion", "SecurityGroupIds", "CacheSecurityGroupNames",
)


def notification_topic_arn(value: str) -> str:
    if not _TOPIC_ARN.match(value):
        raise InvalidParameterValue(
            f"Invalid NotificationTopicArn '{value}': use an SNS topic ARN such as "
            "arn:aws:sns:us-east-1:123456789012:my-topic."
        )
    return value


def security_group_ids(values: Sequence[str] | None, *, operation: str) -> tuple[str, ...] | None:
    """SecurityGroupIds checked: sg- and 8 or 17 hexadecimal digits, each once, at most 5."""
    if values is None:
        return None
    unique = tuple(dict.fromkeys(str(v) for v in values))
    for value in unique:
        if not _SECURITY_GROUP_ID.match(value):
            raise InvalidParameterValue(
                f"{operation}: invalid security group id '{value}': use sg- and 8 or 17 hexadecimal digits, "
                "such as sg-0123abcd."
            )
    if len(unique) > MAX_SECURITY_GROUP_IDS:
        raise InvalidParameterValue(
            f"{operation}: a cluster has at most {MAX_SECURITY_GROUP_IDS} SecurityGroupIds; this request gives {len(unique)}."
        )
    return unique



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
    security_group_ids: tuple[str, ...] = ()
    cache_security_group_names: tuple[str, ...] | None = None
    notification_topic_arn: str | None = None
    security: SecurityRequest = SecurityRequest()
    restore: RestoreRequest | None = None
    snapshot_retention_limit: int = 0

    @classmethod
    def parse(cls, region: Region, params: Mapping[str, Any]) -> CreateCacheClusterRequest:
        operation = "CreateCacheCluster"
        refuse_memcached(params, operation=operation)
        validation.not_yet(params, _UNSUPPORTED, operation=operation)
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
                f"{errors.CACHE_NODE_TYPE_REQUIRED.text()} Choose a node type such as cache.t4g.micro."
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
            security_group_ids=security_group_ids(params.get("SecurityGroupIds"), operation=operation) or (),
            cache_security_group_names=params.get("CacheSecurityGroupNames"),
            notification_topic_arn=(
                notification_topic_arn(params["NotificationTopicArn"]) if "NotificationTopicArn" in params else None
            ),
            security=SecurityRequest.parse(params),
            restore=restore,
            snapshot_retention_limit=backups.retention_limit(params.get("SnapshotRetentionLimit", 0)),
        )


# ModifyCacheCluster members Cachefleet does not honour (yet), with the value that means "not asked for".
_MODIFY_UNSUPPORTED: dict[str, Any] = {
    "CacheNodeIdsToRemove": None,
    "AZMode": "single-az",
    "NewAvailabilityZones": None,
    "AuthToken": None,
    "AuthTokenUpdateStrategy": None,
    "LogDeliveryConfigurations": None,
    "IpDiscovery": "ipv4",
    "ScaleConfig": None,
}
# What a member of a replication group shares with its group: ModifyReplicationGroup changes them.
_GROUP_WIDE = ("CacheNodeType", "CacheParameterGroupName", "EngineVersion", "Engine")


@dataclass(frozen=True)
class ModifyCacheClusterRequest:
    """ModifyCacheCluster, checked; None: not asked for."""

    cluster_id: str
    apply_immediately: bool = False
    node_type: str | None = None
    parameter_group_name: str | None = None
    engine: str | None = None
    engine_version: str | None = None
    maintenance_window: str | None = None
    auto_minor_version_upgrade: bool | None = None
    snapshot_window: str | None = None
    snapshot_retention_limit: int | None = None
    notification_topic_arn: str | None = None
    notification_topic_status: str | None = None
    security_group_ids: tuple[str, ...] | None = None
    cache_security_group_names: tuple[str, ...] | None = None
    given: tuple[str, ...] = ()  # the members given, by name

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ModifyCacheClusterRequest:
        operation = "ModifyCacheCluster"
        refuse_memcached(params, operation=operation)
        validation.not_yet(params, _MODIFY_UNSUPPORTED, operation=operation)
        if params.get("NumCacheNodes", 1) != 1:
            raise InvalidParameterValue(
                f"Invalid NumCacheNodes {params['NumCacheNodes']}: a Valkey or Redis OSS cache cluster has exactly "
                "one node; add replicas with a replication group instead."
            )
        status = params.get("NotificationTopicStatus")
        if status is not None and status not in NOTIFICATION_STATUSES:
            raise InvalidParameterValue(
                f"Invalid NotificationTopicStatus '{status}': use {' or '.join(NOTIFICATION_STATUSES)}."
            )
        window = params.get("PreferredMaintenanceWindow")
        snapshot_window = params.get("SnapshotWindow")
        retention = params.get("SnapshotRetentionLimit")
        names = params.get("CacheSecurityGroupNames")
        return cls(
            cluster_id=identifiers.cache_cluster_id(params["CacheClusterId"]),
            apply_immediately=bool(params.get("ApplyImmediately", False)),
            node_type=nodetypes.check_node_type(params["CacheNodeType"]) if "CacheNodeType" in params else None,
            parameter_group_name=params.get("CacheParameterGroupName"),
            engine=str(params["Engine"]).lower() if "Engine" in params else None,
            engine_version=str(params["EngineVersion"]) if "EngineVersion" in params else None,
            maintenance_window=validation.maintenance_window(window) if window is not None else None,
            auto_minor_version_upgrade=params.get("AutoMinorVersionUpgrade"),
            snapshot_window=validation.snapshot_window(snapshot_window) if snapshot_window is not None else None,
            snapshot_retention_limit=backups.retention_limit(retention) if retention is not None else None,
            notification_topic_arn=(
                notification_topic_arn(params["NotificationTopicArn"]) if "NotificationTopicArn" in params else None
            ),
            notification_topic_status=status,
            security_group_ids=security_group_ids(params.get("SecurityGroupIds"), operation=operation),
            cache_security_group_names=tuple(names) if names is not None else None,
            given=tuple(sorted(params)),
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


class ParameterGroup(Protocol):
    """What a cluster needs to know of the parameter group it names."""

    @property
    def name(self) -> str: ...

    @property
    def family(self) -> str: ...

    @property
    def cluster_enabled(self) -> bool: ...


class ParameterGroupLookup(Protocol):
    """Finds the parameter group a cluster is to use, checking it fits (``domain/parameter_groups.py``)."""

    def resolve(
        self, region: Region, name: str | None, release: EngineRelease, *, cluster_mode: bool | None
    ) -> ParameterGroup: ...

    def static_defaults(self, region: Region, name: str) -> bool: ...


class SecurityGroupLookup(Protocol):
    """Checks the cache security groups a cluster names (``domain/security_groups.py``)."""

    def check_names(self, region: Region, names: Sequence[str] | None) -> tuple[str, ...] | None: ...


class EnginePlan(Protocol):
    """What an engine change (or pending work started now) records: the members, the work, an event."""

    @property
    def members(self) -> tuple[CacheCluster, ...]: ...

    @property
    def operations(self) -> tuple[Operation, ...]: ...

    @property
    def message(self) -> str: ...


class EngineUpgradePlanner(Protocol):
    """Engine upgrades' rules and records (``domain/upgrades.py``); ``group`` is a ReplicationGroup."""

    def plan_group(
        self, group: Any, members: Sequence[CacheCluster], *, engine: str | None, version: str | None,
        parameter_group_name: str | None, immediately: bool,
    ) -> EnginePlan | None: ...

    def plan_cluster(
        self, cluster: CacheCluster, *, engine: str | None, version: str | None, parameter_group_name: str | None,
        immediately: bool,
    ) -> EnginePlan | None: ...

    def start_pending(self, resource: Any, members: Sequence[CacheCluster]) -> EnginePlan | None: ...


class GroupMembership(Protocol):
    """Clusters joining and leaving replication groups (``domain/replication_groups.py``)."""

    def add_cache_cluster(self, region: Region, request: CreateCacheClusterRequest) -> CacheCluster: ...

    def remove_cache_cluster(self, cluster: CacheCluster) -> CacheCluster: ...


class CacheClusters(UseCases):
    """CreateCacheCluster, ModifyCacheCluster, DeleteCacheCluster, DescribeCacheClusters."""

    def __init__(
        self,
        deps: Dependencies,
        *,
        subnet_groups: SubnetGroupLookup,
        membership: GroupMembership,
        parameter_groups: ParameterGroupLookup,
        security_groups: SecurityGroupLookup,
        upgrades: EngineUpgradePlanner | None = None,
        backups: Backups | None = None,
    ) -> None:
        super().__init__(deps)
        self._subnet_groups = subnet_groups
        self._membership = membership
        self._parameter_groups = parameter_groups
        self._security_groups = security_groups
        self._upgrades = upgrades
        self._backups: Backups = backups or NoBackups()

    def create(self, region: Region, request: CreateCacheClusterRequest) -> CacheCluster:
        if self._store.get(CacheCluster, region, request.cluster_id) is not None:
            raise AlreadyExists(f"Cache cluster {request.cluster_id} already exists.", resource="CacheCluster")
        check_node_quota(self._store, region, 1, limit=self._deps.max_nodes)
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
                    f"{errors.CACHE_NODE_TYPE_REQUIRED.text()} RDB objects do not say which node type they come from."
                )
        backups.check_windows(request.snapshot_window, request.maintenance_window)
        release = resolve_engine(self._catalog.releases(), engine, version)
        assert node_type is not None  # parse() requires it for a standalone cluster not restored
        subnet_group = self._subnet_groups.get(region, request.subnet_group_name or DEFAULT_SUBNET_GROUP)
        zone = zone_in(subnet_group, request.zone, default=subnet_group.availability_zones[0])
        # A standalone cluster is one node: cluster mode disabled.
        parameter_group = self._parameter_groups.resolve(region, request.parameter_group_name, release, cluster_mode=False)
        names = self._security_groups.check_names(region, request.cache_security_group_names) or ()
        if request.security.transit_encryption_mode is not None:
            check_tls_engine(release, self._catalog.releases(), member="TransitEncryptionEnabled")
        now = self._clock.now()
        (address,) = self._allocate_in([zone])
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
            parameter_group_name=parameter_group.name,
            node=CacheNode("0001", address, port, zone, NodeStatus.CREATING, now),
            create_time=now,
            preferred_maintenance_window=request.maintenance_window,
            auto_minor_version_upgrade=request.auto_minor_version_upgrade,
            snapshot_window=request.snapshot_window,
            snapshot_retention_limit=request.snapshot_retention_limit,
            tags=request.tags,
            security_group_ids=request.security_group_ids,
            cache_security_group_names=names,
            notification_topic_arn=request.notification_topic_arn,
            security=request.security.security(now=now),
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

    def modify(self, region: Region, request: ModifyCacheClusterRequest) -> CacheCluster:
        """ModifyCacheCluster: settings are stored at once; a node type change starts now with
        ApplyImmediately, or waits in PendingModifiedValues for the maintenance window."""
        cluster = self._get(CacheCluster, region, request.cluster_id)
        if cluster.status != ClusterStatus.AVAILABLE:
            raise InvalidState(
                f"Cache cluster {cluster.cluster_id} is {cluster.status}; it can be modified once it is available.",
                resource="CacheCluster",
            )
        if cluster.replication_group_id is not None:
            shared = [m for m in _GROUP_WIDE if m in request.given and (m != "Engine" or request.engine != cluster.engine)]
            if shared:
                raise InvalidParameterCombination(
                    f"Cache cluster {cluster.cluster_id} is a member of replication group {cluster.replication_group_id}, "
                    f"whose members share {', '.join(shared)}: change {'it' if len(shared) == 1 else 'them'} with "
                    "ModifyReplicationGroup, which changes every member."
                )
        changes: dict[str, Any] = {}
        for name in ("maintenance_window", "auto_minor_version_upgrade", "snapshot_window", "snapshot_retention_limit",
                     "notification_topic_arn", "notification_topic_status", "security_group_ids"):
            value = getattr(request, name)
            if value is not None:
                changes["preferred_maintenance_window" if name == "maintenance_window" else name] = value
        if request.cache_security_group_names is not None:
            changes["cache_security_group_names"] = self._security_groups.check_names(
                region, request.cache_security_group_names
            )
        plan: EnginePlan | None = None
        if request.engine_version is not None or (request.engine is not None and request.engine != cluster.engine):
            if self._upgrades is None:
                raise InvalidParameterCombination("ModifyCacheCluster: engine upgrades are not available here.")
            plan = self._upgrades.plan_cluster(
                cluster, engine=request.engine, version=request.engine_version,
                parameter_group_name=request.parameter_group_name, immediately=request.apply_immediately,
            )
        # With an engine upgrade, a parameter group named is the new family's: the node takes it with the new build.
        group_goes_with_engine = plan is not None and any(m.pending.parameter_group_name for m in plan.members)
        if request.parameter_group_name is not None and not group_goes_with_engine:
            release = release_of(self._catalog.releases(), cluster.engine, cluster.engine_version)
            changes["parameter_group_name"] = self._parameter_groups.resolve(
                region, request.parameter_group_name, release, cluster_mode=False
            ).name
        base = plan.members[0] if plan is not None else cluster
        operation: Operation | None = None
        if request.node_type is not None:
            pending, operation = self._node_type_change(base, request.node_type, immediately=request.apply_immediately)
            changes["pending"] = pending
        elif plan is None and request.apply_immediately and cluster.replication_group_id is None and self._upgrades:
            plan = self._upgrades.start_pending(cluster, [cluster])
            base = plan.members[0] if plan is not None else cluster
        changed = sorted(k for k, v in changes.items() if getattr(cluster, k) != v)
        if not changed and operation is None and plan is None:
            return cluster
        updated = replace(base, **changes)
        backups.check_windows(updated.snapshot_window, updated.preferred_maintenance_window)
        operations = (*(plan.operations if plan is not None else ()), *((operation,) if operation is not None else ()))
        if operations:
            updated = replace(updated, status=ClusterStatus.MODIFYING)
        with self._store.transaction() as tx:
            tx.put(updated)
            for started in operations:
                tx.put(started)
            messages = []
            if operation is not None:
                messages.append(f"Scaling cache cluster {cluster.cluster_id} from {cluster.node_type} to {operation.node_type}")
            others = [c for c in changed if c != "pending"]
            if others:
                messages.append(f"Cache cluster {cluster.cluster_id} modified: {', '.join(others)}")
            if operation is None and updated.pending.node_type != cluster.pending.node_type:
                if updated.pending.node_type is not None:
                    opens = windows.Window.parse(updated.preferred_maintenance_window).opens_at_or_after(self._clock.now())
                    messages.append(
                        f"Cache cluster {cluster.cluster_id}: node type change from {cluster.node_type} to "
                        f"{updated.pending.node_type} is pending; it waits for the maintenance window "
                        f"{updated.preferred_maintenance_window} (next at {windows.describe(opens)})"
                    )
                elif plan is None:
                    messages.append(f"Pending node type change of cache cluster {cluster.cluster_id} cancelled")
            if plan is not None:
                messages.append(plan.message)
            for message in messages:
                self._event(tx, updated, message)
        self._changed(updated)
        return updated

    def _node_type_change(
        self, cluster: CacheCluster, node_type: str, *, immediately: bool
    ) -> tuple[PendingModifiedValues, Operation | None]:
        """The cluster's pending values after asking for ``node_type``, and the operation to start now (if any)."""
        if self._operation(cluster, OperationKind.NODE_TYPE) is not None:
            raise InvalidState(
                f"Cache cluster {cluster.cluster_id} is already changing its node type.", resource="CacheCluster"
            )
        if node_type == cluster.node_type:
            if cluster.pending.node_type is not None:
                return replace(cluster.pending, node_type=None), None  # asking for the current type cancels the pending one
            raise InvalidParameterCombination(f"Cache cluster {cluster.cluster_id} already uses {node_type}.")
        if not immediately:
            return replace(cluster.pending, node_type=node_type), None
        return replace(cluster.pending, node_type=None), self._begin(cluster, OperationKind.NODE_TYPE, node_type=node_type)

    def delete(self, region: Region, cluster_id: str, *, final_snapshot: str | None = None) -> CacheCluster:
        cluster = self._get(CacheCluster, region, cluster_id)
        # A cluster whose node would not start again (its build is gone, say) may not become available
        # before it is deleted.
        stuck = cluster.status == ClusterStatus.MODIFYING and cluster.status_reason == NODE_RESTARTING
        if cluster.status not in (ClusterStatus.AVAILABLE, ClusterStatus.CREATE_FAILED) and not stuck:
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

    def describe(
        self, region: Region, cluster_id: str | None = None, *, not_in_replication_groups: bool = False
    ) -> list[CacheCluster]:
        # The nodes of a serverless cache are not cache clusters to its users (as on ElastiCache).
        if cluster_id is not None:
            found = self._get(CacheCluster, region, cluster_id)
            if identifiers.is_serverless_group(found.replication_group_id):
                raise NotFound(f"Cache cluster {cluster_id} not found.", resource="CacheCluster")
            return [found]
        clusters = sorted(
            (c for c in self._store.list(CacheCluster, region) if not identifiers.is_serverless_group(c.replication_group_id)),
            key=lambda c: c.cluster_id,
        )
        if not_in_replication_groups:
            clusters = [c for c in clusters if c.replication_group_id is None]
        return clusters

    def operation(self, cluster: CacheCluster, kind: OperationKind) -> Operation | None:
        """The cluster's work in progress of that kind (Describe shows a node type change as pending)."""
        return self._operation(cluster, kind)

    def of(self, region: Region, cluster_ids: Sequence[str]) -> dict[str, CacheCluster]:
        """The clusters of those ids that exist."""
        found = {}
        for cluster_id in cluster_ids:
            cluster = self._store.get(CacheCluster, region, cluster_id)
            if cluster is not None:
                found[cluster_id] = cluster
        return found


def check_node_quota(store: StateStore, region: Region, new_nodes: int, *, limit: int = MAX_NODES_PER_REGION) -> None:
    """The node quota of a region (ElastiCache's default 300; `cachefleet up --max-nodes` sets it here)."""
    used = len(store.list(CacheCluster, region))
    if used + new_nodes > limit:
        raise QuotaExceeded(
            f"Customer node quota exceeded. You can have at most {limit} nodes in this region. {used} are in use "
            f"and this asks for {new_nodes} more: delete nodes, or start Cachefleet with a larger --max-nodes.",
            resource="CacheNode",
        )


def deleting_cluster(cluster: CacheCluster) -> CacheCluster:
    return replace(cluster, status=ClusterStatus.DELETING, node=replace(cluster.node, status=NodeStatus.DELETING))
