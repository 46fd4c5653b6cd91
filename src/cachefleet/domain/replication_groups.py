"""Replication groups: a primary and its replicas per node group (shard), cluster mode disabled
(one node group) or enabled (Redis Cluster, up to 500 node groups).

This module owns the records, CreateReplicationGroup (both cluster modes),
ModifyReplicationGroup, DeleteReplicationGroup, DescribeReplicationGroups,
ListAllowedNodeTypeModifications, and the membership of cache clusters in groups
(CreateCacheCluster with a ReplicationGroupId, DeleteCacheCluster of a member). Shards and
replica counts are in ``shards.py`` and ``replicas.py``; TestFailover and reboots in
``availability.py``.

Each request is parsed and checked once (``*Request.parse``) before a use case looks anything
up; the use case then decides and records the desired state, an operation record and an event
in one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, ClassVar

from cachefleet.domain import backups, errors, identifiers, nodetypes, slots, validation, windows
from cachefleet.domain.backups import Backups, NoBackups, Prepared, RestoreRequest, SnapshotDefaults
from cachefleet.domain.base import DEFAULT_PORT, MAX_NODES_PER_REGION, Dependencies, UseCases
from cachefleet.domain.cache_clusters import (
    DEFAULT_MAINTENANCE_WINDOW,
    DEFAULT_SNAPSHOT_WINDOW,
    DEFAULT_SUBNET_GROUP,
    CacheCluster,
    CacheNode,
    ClusterStatus,
    CreateCacheClusterRequest,
    EnginePlan,
    EngineUpgradePlanner,
    NodeStatus,
    ParameterGroupLookup,
    SecurityGroupLookup,
    SubnetGroup,
    SubnetGroupLookup,
    check_node_quota,
    deleting_cluster,
    security_group_ids,
    zone_in,
)
from cachefleet.domain.engines import refuse_memcached, release_of, resolve_engine
from cachefleet.domain.errors import (
    CACHE_CLUSTER_ONLY_MEMBER,
    CACHE_CLUSTER_ONLY_READ_REPLICA,
    CACHE_CLUSTER_SERVING_AS_PRIMARY,
    AlreadyExists,
    CachefleetError,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    QuotaExceeded,
)
from cachefleet.domain.events import Event, EventSourceType, event_for
from cachefleet.domain.identifiers import Region
from cachefleet.domain.logs import LogDelivery, log_deliveries
from cachefleet.domain.operations import FailoverKind, FailoverRequest, Operation, OperationKind
from cachefleet.domain.resource import Kind
from cachefleet.domain.security import (
    AccessModification,
    PendingAccess,
    Security,
    SecurityRequest,
    check_cluster_mode_transit,
    check_tls_engine,
    check_user_groups,
    plan_modification,
)
from cachefleet.domain.tags import Tag, tags
from cachefleet.domain.users import UserGroup

MAX_CLUSTERS_PER_GROUP = 6  # a primary and five replicas
MAX_REPLICAS = MAX_CLUSTERS_PER_GROUP - 1
MAX_NODE_GROUPS = 500
MAX_NODES_PER_CLUSTER = 500


class GroupStatus(StrEnum):
    """A replication group's status, as ElastiCache writes it."""

    CREATING = "creating"
    AVAILABLE = "available"
    MODIFYING = "modifying"
    DELETING = "deleting"
    CREATE_FAILED = "create-failed"
    SNAPSHOTTING = "snapshotting"
    MIGRATING = "migrating"  # its primary follows a customer's node (domain/migrations.py)


@dataclass(frozen=True)
class NodeGroup:
    """A shard: one primary and its replicas. Cluster mode disabled has exactly one, "0001"."""

    node_group_id: str
    primary_cluster_id: str
    member_cluster_ids: tuple[str, ...]
    primary_endpoint: str | None = None
    reader_endpoint: str | None = None
    slots: str = ""

    @property
    def replica_cluster_ids(self) -> tuple[str, ...]:
        return tuple(cid for cid in self.member_cluster_ids if cid != self.primary_cluster_id)


@dataclass(frozen=True)
class ReplicationGroup:
    """A replication group: its settings, node groups and endpoints (the desired state)."""

    KIND: ClassVar[Kind] = Kind(
        name="ReplicationGroup", noun="Replication group", not_found="ReplicationGroupNotFoundFault",
        arn_type="replicationgroup", event_source=EventSourceType.REPLICATION_GROUP.value,
        already_exists="ReplicationGroupAlreadyExistsFault", invalid_state="InvalidReplicationGroupStateFault",
        taggable=True,
    )

    region: Region
    group_id: str
    description: str
    status: GroupStatus
    engine: str
    engine_version: str
    node_type: str
    port: int
    subnet_group_name: str
    parameter_group_name: str
    node_groups: tuple[NodeGroup, ...]
    create_time: dt.datetime
    cluster_enabled: bool = False
    configuration_endpoint: str | None = None
    automatic_failover: str = "disabled"
    multi_az: str = "disabled"
    preferred_maintenance_window: str = DEFAULT_MAINTENANCE_WINDOW
    auto_minor_version_upgrade: bool = True
    snapshot_retention_limit: int = 0
    snapshot_window: str = DEFAULT_SNAPSHOT_WINDOW
    tags: tuple[Tag, ...] = ()
    retain_primary_cluster: bool = False
    status_reason: str = ""
    log_delivery: tuple[LogDelivery, ...] = ()
    security_group_ids: tuple[str, ...] = ()  # every member's; stored and shown, not a firewall here
    cache_security_group_names: tuple[str, ...] = ()
    security: Security = Security()
    at_rest_encryption: bool = False  # its snapshots' files and exported objects are encrypted
    kms_key_id: str | None = None  # the key they are encrypted with (None: the data dir's default key)
    snapshotting_cluster_id: str | None = None  # the member snapshots are taken from (cluster mode disabled)
    pending_access: PendingAccess | None = None  # a change of the locks waiting for the maintenance window
    # Global datastores (domain/global_datastores.py): the one it belongs to and its role there
    # ("PRIMARY" or "SECONDARY"); a secondary's primary follows the primary group's primary.
    global_replication_group_id: str | None = None
    global_role: str | None = None

    @property
    def key(self) -> str:
        return self.group_id

    @property
    def addresses(self) -> tuple[str, ...]:
        """The endpoint addresses it holds (its nodes' own addresses are their clusters')."""
        found = [a for ng in self.node_groups for a in (ng.primary_endpoint, ng.reader_endpoint) if a]
        if self.configuration_endpoint:
            found.append(self.configuration_endpoint)
        return tuple(found)

    def node_group(self, node_group_id: str) -> NodeGroup | None:
        for node_group in self.node_groups:
            if node_group.node_group_id == node_group_id:
                return node_group
        return None

    def node_group_of(self, cluster_id: str) -> NodeGroup | None:
        for node_group in self.node_groups:
            if cluster_id in node_group.member_cluster_ids:
                return node_group
        return None

    @property
    def member_cluster_ids(self) -> tuple[str, ...]:
        return tuple(sorted(cid for group in self.node_groups for cid in group.member_cluster_ids))

    @property
    def primary_cluster_ids(self) -> frozenset[str]:
        return frozenset(ng.primary_cluster_id for ng in self.node_groups)


@dataclass(frozen=True)
class MemberSettings:
    """The settings every member cluster shares with its group."""

    preferred_maintenance_window: str = DEFAULT_MAINTENANCE_WINDOW
    auto_minor_version_upgrade: bool = True
    snapshot_window: str = DEFAULT_SNAPSHOT_WINDOW

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> MemberSettings:
        return cls(
            preferred_maintenance_window=validation.maintenance_window(
                params.get("PreferredMaintenanceWindow", DEFAULT_MAINTENANCE_WINDOW)
            ),
            auto_minor_version_upgrade=bool(params.get("AutoMinorVersionUpgrade", True)),
            snapshot_window=validation.snapshot_window(params.get("SnapshotWindow", DEFAULT_SNAPSHOT_WINDOW)),
        )



# ---------------------------------------------------------------------- identifiers and rules
def node_group_id(value: Any, *, parameter: str = "NodeGroupId") -> str:
    text = str(value)
    if not text.isdigit() or not 1 <= len(text) <= 4 or int(text) == 0:
        raise InvalidParameterValue(f"Invalid {parameter} '{value}': use a shard number such as 0001 (1 to 4 digits).")
    return f"{int(text):04d}"


def sharded_member_id(group_id: str, node_group: str, number: int) -> str:
    """Cluster mode enabled members are named <group>-0001-001, as ElastiCache does."""
    return f"{group_id}-{node_group}-{number:03d}"


def wants_cluster_mode(params: Mapping[str, Any]) -> bool:
    """Whether CreateReplicationGroup asks for cluster mode enabled, by any of ElastiCache's ways."""
    mode = params.get("ClusterMode")
    if mode == "compatible":
        raise InvalidParameterCombination(
            "ClusterMode compatible is not supported by Cachefleet yet; use enabled or disabled."
        )
    signals = (
        params.get("NumNodeGroups", 1) > 1
        or bool(params.get("NodeGroupConfiguration"))
        or str(params.get("CacheParameterGroupName", "")).endswith(".cluster.on")
    )
    if mode == "disabled":
        if signals:
            raise InvalidParameterCombination(
                "ClusterMode is disabled, but NumNodeGroups, NodeGroupConfiguration or a .cluster.on parameter "
                "group asks for shards; use ClusterMode enabled."
            )
        return False
    return mode == "enabled" or signals


def check_failover_settings(*, automatic: bool, multi_az: bool, replicas_per_node_group: Sequence[int]) -> None:
    """ElastiCache's rules: Multi-AZ needs automatic failover, and both need a replica."""
    if multi_az and not automatic:
        raise InvalidParameterCombination(
            "MultiAZEnabled needs AutomaticFailoverEnabled: enable automatic failover too, or leave Multi-AZ off."
        )
    if automatic and any(count < 1 for count in replicas_per_node_group):
        raise InvalidParameterCombination(
            "Automatic failover needs at least one replica: use NumCacheClusters of 2 or more "
            "(or ReplicasPerNodeGroup of 1 or more)."
        )


def subnet_zone(region: Region, zone: str | None, subnet_group: SubnetGroup | None = None) -> str | None:
    """``zone`` checked against the region's zones (and the subnet group's, when given)."""
    if zone is None:
        return None
    identifiers.check_availability_zone(region, zone, parameter="availability zone")
    if subnet_group is not None:
        zone_in(subnet_group, zone, default=zone)
    return zone


def check_node_quotas(
    store: Any, region: Region, new_nodes: int, *, cluster_total: int, limit: int = MAX_NODES_PER_REGION
) -> None:
    # ElastiCache's per-cluster limit counts nodes, primaries and replicas alike (500: 500 shards
    # without replicas, 83 with 5), and has its own fault; the shard count alone is checked where
    # NumNodeGroups/NodeGroupCount is read (NodeGroupsPerReplicationGroupQuotaExceeded).
    if cluster_total > MAX_NODES_PER_CLUSTER:
        raise QuotaExceeded(
            f"A cluster can have at most {MAX_NODES_PER_CLUSTER} nodes (primaries and replicas); this asks for "
            f"{cluster_total}: use fewer node groups or fewer replicas per node group.",
            resource="NodeInCluster",
        )
    check_node_quota(store, region, new_nodes, limit=limit)


def new_member(
    group: ReplicationGroup, cluster_id: str, node_group: str, zone: str, address: str, *, now: dt.datetime,
    tags_of_member: tuple[Tag, ...] | None = None,
) -> CacheCluster:
    """A new member cluster of ``group``, with the group's engine, node type and settings."""
    return CacheCluster(
        region=group.region,
        cluster_id=cluster_id,
        status=ClusterStatus.CREATING,
        engine=group.engine,
        engine_version=group.engine_version,
        node_type=group.node_type,
        port=group.port,
        availability_zone=zone,
        subnet_group_name=group.subnet_group_name,
        parameter_group_name=group.parameter_group_name,
        node=CacheNode("0001", address, group.port, zone, NodeStatus.CREATING, now),
        create_time=now,
        replication_group_id=group.group_id,
        node_group_id=node_group,
        preferred_maintenance_window=group.preferred_maintenance_window,
        auto_minor_version_upgrade=group.auto_minor_version_upgrade,
        snapshot_window=group.snapshot_window,
        tags=group.tags if tags_of_member is None else tags_of_member,
        security_group_ids=group.security_group_ids,
        cache_security_group_names=group.cache_security_group_names,
        at_rest_encryption=group.at_rest_encryption,
        kms_key_id=group.kms_key_id,
    )


# ---------------------------------------------------------------------- CreateReplicationGroup
_UNSUPPORTED: dict[str, Any] = {
    "NotificationTopicArn": None,
    "DataTieringEnabled": False,
    "NetworkType": "ipv4",
    "IpDiscovery": "ipv4",
    "ServerlessCacheSnapshotName": None,
}
# Cluster mode disabled has one node group, named 0001.
_UNSUPPORTED_WITHOUT_SHARDS: dict[str, Any] = {
    **_UNSUPPORTED, "NumNodeGroups": 1, "NodeGroupConfiguration": None, "ClusterMode": "disabled",
}


@dataclass(frozen=True)
class ShardSpec:
    """One node group of a new cluster mode enabled group; zones None are chosen from the subnet group."""

    node_group_id: str
    replicas: int
    slots: frozenset[int]
    primary_zone: str | None
    replica_zones: tuple[str, ...]


@dataclass(frozen=True)
class CreateReplicationGroupRequest:
    """CreateReplicationGroup, checked: what is wanted, before anything is looked up."""

    group_id: str
    description: str
    cluster_mode: bool
    engine: str | None
    engine_version: str | None
    node_type: str | None  # None only with PrimaryClusterId (the primary's node type)
    port: int | None
    subnet_group_name: str | None
    parameter_group_name: str | None
    primary_cluster_id: str | None
    seed_settings: tuple[tuple[str, Any], ...]  # Engine / CacheNodeType / Port given beside PrimaryClusterId
    cluster_count: int  # cluster mode disabled: the primary and its replicas
    preferred_zones: tuple[str, ...]  # cluster mode disabled: PreferredCacheClusterAZs
    automatic_failover: bool | None  # None: not asked
    multi_az: bool
    shards: tuple[ShardSpec, ...]  # cluster mode enabled
    settings: MemberSettings
    tags: tuple[Tag, ...]
    log_delivery: tuple[LogDelivery, ...]
    security_group_ids: tuple[str, ...] = ()
    cache_security_group_names: tuple[str, ...] | None = None
    # Members only cluster mode disabled has, as given (a parameter group with cluster-enabled yes
    # makes the group cluster mode enabled unless one of these asks otherwise).
    disabled_members: tuple[str, ...] = ()
    security: SecurityRequest = SecurityRequest()
    restore: RestoreRequest | None = None  # SnapshotName / SnapshotArns
    shape_given: bool = True  # the request says which cluster mode and how many shards (else: the snapshot's)
    replicas_per_node_group: int | None = None
    snapshot_retention_limit: int = 0
    at_rest_encryption: bool = False
    kms_key_id: str | None = None
    # A secondary of this global datastore (GlobalDatastores.create_secondary fills in the rest).
    global_replication_group_id: str | None = None

    @classmethod
    def parse(cls, region: Region, params: Mapping[str, Any]) -> CreateReplicationGroupRequest:
        operation = "CreateReplicationGroup"
        refuse_memcached(params, operation=operation)
        sharded = wants_cluster_mode(params)
        validation.not_yet(params, _UNSUPPORTED if sharded else _UNSUPPORTED_WITHOUT_SHARDS, operation=operation)
        validation.durability(params, operation=operation)
        restore = RestoreRequest.parse(params)
        seed = params.get("PrimaryClusterId")
        if restore is not None and seed is not None:
            raise InvalidParameterCombination(
                "PrimaryClusterId seeds a group with a running cluster's data; SnapshotName and SnapshotArns with a "
                "snapshot's. Give one of them."
            )
        node_type = params.get("CacheNodeType")
        if node_type is None and seed is None and restore is None and not params.get("GlobalReplicationGroupId"):
            raise InvalidParameterValue(
                f"{errors.CACHE_NODE_TYPE_REQUIRED.text()} Choose a node type such as cache.t4g.micro."
            )
        at_rest = bool(params.get("AtRestEncryptionEnabled", False))
        if params.get("KmsKeyId") is not None and not at_rest:
            raise InvalidParameterCombination("KmsKeyId needs AtRestEncryptionEnabled: set it to true, or omit KmsKeyId.")
        automatic = params.get("AutomaticFailoverEnabled")
        if sharded:
            if automatic is False:
                raise InvalidParameterCombination(
                    "Automatic failover must be enabled for a cluster mode enabled replication group; "
                    "set AutomaticFailoverEnabled to true or omit it."
                )
            for member in ("NumCacheClusters", "PrimaryClusterId", "PreferredCacheClusterAZs"):
                if member in params:
                    raise InvalidParameterCombination(
                        f"{member} is for cluster mode disabled groups; with shards use NumNodeGroups, "
                        "ReplicasPerNodeGroup and NodeGroupConfiguration."
                    )
        preferred = tuple(
            identifiers.check_availability_zone(region, z, parameter="PreferredCacheClusterAZs")
            for z in params.get("PreferredCacheClusterAZs") or ()
        )
        security = SecurityRequest.parse(params, transit_inherited=bool(params.get("GlobalReplicationGroupId")))
        check_cluster_mode_transit(cluster_mode=sharded, mode=security.transit_encryption_mode, member=operation)
        if seed is not None and {"AuthToken", "UserGroupIds"} & set(security.given):
            raise InvalidParameterCombination(
                "AuthToken and UserGroupIds cannot be given with PrimaryClusterId: the group takes the primary "
                "cluster's AUTH token; add a user group with ModifyReplicationGroup once it is available."
            )
        return cls(
            group_id=identifiers.replication_group_id(params["ReplicationGroupId"]),
            description=params["ReplicationGroupDescription"],
            cluster_mode=sharded,
            engine=params.get("Engine"),
            engine_version=params.get("EngineVersion"),
            node_type=nodetypes.check_node_type(node_type) if node_type is not None else None,
            port=validation.port(params["Port"]) if "Port" in params else None,
            subnet_group_name=params.get("CacheSubnetGroupName"),
            parameter_group_name=params.get("CacheParameterGroupName"),
            primary_cluster_id=identifiers.cache_cluster_id(seed) if seed is not None else None,
            seed_settings=tuple((m, params[m]) for m in ("Engine", "CacheNodeType", "Port") if m in params),
            cluster_count=0 if sharded else _cluster_count(params),
            preferred_zones=preferred,
            automatic_failover=True if sharded else (bool(automatic) if automatic is not None else None),
            multi_az=bool(params.get("MultiAZEnabled", False)),
            # One shard of ReplicasPerNodeGroup replicas, in case the parameter group has cluster-enabled yes.
            shards=_shard_specs(region, params),
            settings=MemberSettings.parse(params),
            tags=tags(params.get("Tags")),
            log_delivery=log_deliveries(params.get("LogDeliveryConfigurations"), operation=operation),
            security_group_ids=security_group_ids(params.get("SecurityGroupIds"), operation=operation) or (),
            cache_security_group_names=params.get("CacheSecurityGroupNames"),
            disabled_members=tuple(
                m for m in ("NumCacheClusters", "PrimaryClusterId", "PreferredCacheClusterAZs", "ClusterMode")
                if m in params
            ) + (("AutomaticFailoverEnabled",) if automatic is False else ()),
            security=security,
            restore=restore,
            shape_given=any(
                member in params
                for member in ("ClusterMode", "NumNodeGroups", "NodeGroupConfiguration", "NumCacheClusters")
            ) or str(params.get("CacheParameterGroupName", "")).endswith(".cluster.on"),
            replicas_per_node_group=params.get("ReplicasPerNodeGroup"),
            snapshot_retention_limit=backups.retention_limit(params.get("SnapshotRetentionLimit", 0)),
            at_rest_encryption=at_rest,
            kms_key_id=backups.kms_key_id(params["KmsKeyId"]) if params.get("KmsKeyId") is not None else None,
            global_replication_group_id=(
                str(params["GlobalReplicationGroupId"]).lower() if params.get("GlobalReplicationGroupId") else None
            ),
        )

    def with_snapshot_defaults(self, region: Region, defaults: SnapshotDefaults) -> CreateReplicationGroupRequest:
        """The request with what its snapshot says where the request is silent: engine, node type,
        port, and (unless the request gives a shape) the snapshot's cluster mode and shard count."""
        changes: dict[str, Any] = {}
        if self.engine is None and defaults.engine is not None:
            changes["engine"] = defaults.engine
            if self.engine_version is None:
                changes["engine_version"] = defaults.engine_version
        elif self.engine is not None and self.engine.lower() == defaults.engine and self.engine_version is None:
            changes["engine_version"] = defaults.engine_version
        if self.node_type is None:
            if defaults.node_type is None:
                raise InvalidParameterValue(
                    f"{errors.CACHE_NODE_TYPE_REQUIRED.text()} RDB objects do not say which node type they "
                    "come from."
                )
            changes["node_type"] = defaults.node_type
        if self.port is None and defaults.port is not None:
            changes["port"] = defaults.port
        if defaults.at_rest_encryption and not self.at_rest_encryption:
            changes["at_rest_encryption"] = True  # an encrypted snapshot's data stays encrypted at rest
        if not self.shape_given and defaults.cluster_enabled and not self.cluster_mode:
            replicas = self.replicas_per_node_group
            if replicas is None:
                replicas = defaults.replicas_per_node_group
            shares = slots.even(defaults.num_node_groups)
            changes.update(
                cluster_mode=True, automatic_failover=True, cluster_count=0, preferred_zones=(),
                shards=tuple(
                    ShardSpec(f"{i + 1:04d}", replicas, frozenset(share), None, ())
                    for i, share in enumerate(shares)
                ),
            )
        return replace(self, **changes)


def _cluster_count(params: Mapping[str, Any]) -> int:
    num_clusters = params.get("NumCacheClusters")
    replicas = params.get("ReplicasPerNodeGroup")
    zones = params.get("PreferredCacheClusterAZs")
    if num_clusters is not None and replicas is not None and num_clusters != replicas + 1:
        raise InvalidParameterCombination(
            f"NumCacheClusters {num_clusters} and ReplicasPerNodeGroup {replicas} disagree; give only one of them."
        )
    if num_clusters is not None:
        count = int(num_clusters)
        if not 1 <= count <= MAX_CLUSTERS_PER_GROUP:
            raise InvalidParameterValue(
                f"Invalid NumCacheClusters {count}: a replication group (cluster mode disabled) has 1 to "
                f"{MAX_CLUSTERS_PER_GROUP} cache clusters (a primary and up to 5 replicas)."
            )
    elif replicas is not None:
        if not 0 <= int(replicas) <= MAX_REPLICAS:
            raise InvalidParameterValue(f"Invalid ReplicasPerNodeGroup {replicas}: use 0 to {MAX_REPLICAS} replicas.")
        count = int(replicas) + 1
    elif zones:
        count = len(zones)
    else:
        count = 1
    if zones is not None and len(zones) != count:
        raise InvalidParameterCombination(
            f"PreferredCacheClusterAZs lists {len(zones)} zones but the group has {count} cache clusters; "
            "give one zone per cluster."
        )
    if not 1 <= count <= MAX_CLUSTERS_PER_GROUP:
        raise InvalidParameterValue(
            f"A replication group (cluster mode disabled) has 1 to {MAX_CLUSTERS_PER_GROUP} cache clusters; "
            f"this request asks for {count}."
        )
    return count


def _shard_specs(region: Region, params: Mapping[str, Any]) -> tuple[ShardSpec, ...]:
    configs: list[Mapping[str, Any]] = list(params.get("NodeGroupConfiguration") or [])
    validation.no_outposts(configs, ("PrimaryOutpostArn", "ReplicaOutpostArns"), operation="CreateReplicationGroup",
                           within="NodeGroupConfiguration")
    count = params.get("NumNodeGroups", len(configs) or 1)
    if not 1 <= count:
        raise InvalidParameterValue(f"Invalid NumNodeGroups {count}: a cluster has at least one node group.")
    if count > MAX_NODE_GROUPS:
        raise QuotaExceeded(
            f"NumNodeGroups {count} is more than the {MAX_NODE_GROUPS} node groups a cluster can have.",
            resource="NodeGroup",
        )
    if configs and len(configs) != count:
        raise InvalidParameterCombination(
            f"NodeGroupConfiguration describes {len(configs)} node groups but NumNodeGroups is {count}; "
            "give one configuration per node group."
        )
    default_replicas = params.get("ReplicasPerNodeGroup", 0)
    given_slots = [c.get("Slots") for c in configs]
    if any(given_slots) and not all(given_slots):
        raise InvalidParameterValue("Give Slots for every node group in NodeGroupConfiguration, or for none.")
    ids = [
        node_group_id(c["NodeGroupId"]) if c.get("NodeGroupId") else f"{i + 1:04d}"
        for i, c in enumerate(configs or [{}] * count)
    ]
    if len(set(ids)) != len(ids):
        raise InvalidParameterValue("Every NodeGroupId in NodeGroupConfiguration must be different.")
    if all(given_slots) and configs:
        shares = [slots.parse(str(s), parameter=f"Slots of node group {ng}") for s, ng in zip(given_slots, ids, strict=True)]
        slots.check_partition(shares, names=ids)
    else:
        shares = slots.even(count)
    specs = []
    for index, node_group in enumerate(ids):
        config = configs[index] if configs else {}
        replicas = config.get("ReplicaCount", default_replicas)
        if not 0 <= replicas <= MAX_REPLICAS:
            raise InvalidParameterValue(
                f"Invalid replica count {replicas} for node group {node_group}: use 0 to {MAX_REPLICAS} replicas."
            )
        replica_zones = tuple(subnet_zone(region, z) or "" for z in config.get("ReplicaAvailabilityZones", []))
        if replica_zones and len(replica_zones) != replicas:
            raise InvalidParameterCombination(
                f"Node group {node_group} has {replicas} replica(s) but {len(replica_zones)} ReplicaAvailabilityZones; "
                "give one zone per replica."
            )
        specs.append(
            ShardSpec(node_group, replicas, frozenset(shares[index]),
                      subnet_zone(region, config.get("PrimaryAvailabilityZone")), replica_zones)
        )
    return tuple(specs)


# ---------------------------------------------------------------------- ModifyReplicationGroup
_MODIFY_UNSUPPORTED: dict[str, Any] = {
    "NodeGroupId": None,
    "NotificationTopicArn": None,
    "NotificationTopicStatus": None,
    "IpDiscovery": None,
    "ClusterMode": None,
}


@dataclass(frozen=True)
class ModifyReplicationGroupRequest:
    """ModifyReplicationGroup, checked. A switchover and a node type change come alone."""

    group_id: str
    primary_cluster_id: str | None = None
    node_type: str | None = None
    description: str | None = None
    preferred_maintenance_window: str | None = None
    auto_minor_version_upgrade: bool | None = None
    snapshot_window: str | None = None
    automatic_failover: bool | None = None
    multi_az: bool | None = None
    log_delivery_configurations: tuple[Mapping[str, Any], ...] | None = None
    parameter_group_name: str | None = None
    security_group_ids: tuple[str, ...] | None = None
    cache_security_group_names: tuple[str, ...] | None = None
    engine: str | None = None
    engine_version: str | None = None
    apply_immediately: bool = False
    access: AccessModification | None = None
    snapshot_retention_limit: int | None = None
    snapshotting_cluster_id: str | None = None

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ModifyReplicationGroupRequest:
        operation = "ModifyReplicationGroup"
        refuse_memcached(params, operation=operation)
        validation.not_yet(params, _MODIFY_UNSUPPORTED, operation=operation)
        validation.durability(params, operation=operation)
        for alone in ("PrimaryClusterId", "CacheNodeType"):
            if alone in params:
                others = set(params) - {"ReplicationGroupId", alone, "ApplyImmediately"}
                if others:
                    raise InvalidParameterCombination(
                        f"Change {alone} on its own; send {', '.join(sorted(others))} in another ModifyReplicationGroup."
                    )
        window = params.get("PreferredMaintenanceWindow")
        snapshot_window = params.get("SnapshotWindow")
        logs = params.get("LogDeliveryConfigurations")
        return cls(
            group_id=params["ReplicationGroupId"],
            primary_cluster_id=(
                identifiers.cache_cluster_id(params["PrimaryClusterId"]) if "PrimaryClusterId" in params else None
            ),
            node_type=nodetypes.check_node_type(params["CacheNodeType"]) if "CacheNodeType" in params else None,
            description=params.get("ReplicationGroupDescription"),
            preferred_maintenance_window=validation.maintenance_window(window) if window is not None else None,
            auto_minor_version_upgrade=params.get("AutoMinorVersionUpgrade"),
            snapshot_window=validation.snapshot_window(snapshot_window) if snapshot_window is not None else None,
            automatic_failover=params.get("AutomaticFailoverEnabled"),
            multi_az=params.get("MultiAZEnabled"),
            log_delivery_configurations=tuple(logs) if logs is not None else None,
            parameter_group_name=params.get("CacheParameterGroupName"),
            security_group_ids=security_group_ids(params.get("SecurityGroupIds"), operation=operation),
            cache_security_group_names=(
                tuple(params["CacheSecurityGroupNames"]) if params.get("CacheSecurityGroupNames") is not None else None
            ),
            engine=str(params["Engine"]).lower() if "Engine" in params else None,
            engine_version=str(params["EngineVersion"]) if "EngineVersion" in params else None,
            apply_immediately=bool(params.get("ApplyImmediately", False)),
            access=AccessModification.parse(params),
            snapshot_retention_limit=(
                backups.retention_limit(params["SnapshotRetentionLimit"]) if "SnapshotRetentionLimit" in params else None
            ),
            snapshotting_cluster_id=(
                identifiers.cache_cluster_id(params["SnapshottingClusterId"]) if params.get("SnapshottingClusterId")
                else None
            ),
        )


# Settings ModifyReplicationGroup takes as given; members follow them with the rest of _MEMBER_SETTINGS.
_AS_GIVEN = ("preferred_maintenance_window", "auto_minor_version_upgrade", "snapshot_window", "security_group_ids")
_MEMBER_SETTINGS = (*_AS_GIVEN, "parameter_group_name", "cache_security_group_names")


@dataclass(frozen=True)
class GroupChange:
    """A ModifyReplicationGroup decided and not yet written: every check has passed, nothing is stored.

    ``group`` is the group as it becomes (what the call answers); ``records`` what the transaction
    puts (none when nothing changes), ``events`` what it records, ``kick`` whether the reconciler is told.
    Several changes can be written in one transaction (``ReplicationGroups.apply``): a global
    datastore's Modify decides every member's before it writes any."""

    group: ReplicationGroup
    records: tuple[Any, ...] = ()
    events: tuple[Event, ...] = ()
    kick: bool = False


# ---------------------------------------------------------------------- use cases
class GroupUseCases(UseCases):
    """Base of the use cases that act on replication groups: lookups, status rules, starting work."""

    # Only the serverless family's own instances may name the replication group of a serverless cache
    # (domain/serverless.py): to everyone else it does not exist, as on ElastiCache.
    serves_serverless = False

    def _group(self, region: Region, group_id: str) -> ReplicationGroup:
        if identifiers.is_serverless_group(group_id.lower()) and not self.serves_serverless:
            raise NotFound(errors.REPLICATION_GROUP_NOT_FOUND.text(id=group_id), resource="ReplicationGroup")
        return self._get(ReplicationGroup, region, group_id)

    def _members(self, group: ReplicationGroup) -> list[CacheCluster]:
        found = []
        for cluster_id in group.member_cluster_ids:
            cluster = self._store.get(CacheCluster, group.region, cluster_id)
            if cluster is not None:
                found.append(cluster)
        return found

    @staticmethod
    def _require_status(group: ReplicationGroup, status: GroupStatus, *, action: str) -> None:
        if group.status != status:
            # Terraform retries on this sentence (errors.REPLICATION_GROUP_NOT_AVAILABLE).
            known = errors.REPLICATION_GROUP_NOT_AVAILABLE.text(id=group.group_id) + " " if status == "available" else ""
            raise InvalidState(
                f"{known}Replication group {group.group_id} is {group.status}; it can be {action} once it is {status}.",
                resource="ReplicationGroup",
            )

    def _start_modifying(
        self, group: ReplicationGroup, message: str, operation: Operation, *, records: Sequence[Any] = ()
    ) -> ReplicationGroup:
        """Records the group as ``modifying``, with the operation (the work the reconciler is to do),
        other changed ``records`` and an event saying what starts; the reconciler is told."""
        change = self._modifying(group, message, operation, records=records)
        self._write([change])
        return change.group

    def _modifying(
        self, group: ReplicationGroup, message: str, operation: Operation, *, records: Sequence[Any] = ()
    ) -> GroupChange:
        """``_start_modifying`` decided, not written."""
        updated = replace(group, status=GroupStatus.MODIFYING)
        return GroupChange(
            updated, records=(updated, operation, *records), events=(self._event_of(updated, message),), kick=True
        )

    def _event_of(self, resource: Any, message: str) -> Event:
        return event_for(resource, message, self._clock.now())

    def _write(self, changes: Sequence[GroupChange], *, records: Sequence[Any] = ()) -> None:
        """Writes decided changes (and other ``records``) in one transaction and tells the reconciler."""
        if not records and not any(change.records or change.events for change in changes):
            return
        with self._store.transaction() as tx:
            for record in records:
                tx.put(record)
            for change in changes:
                for record in change.records:
                    tx.put(record)
                for event in change.events:
                    tx.add_event(event)
        for change in changes:
            if change.kick:
                self._changed(change.group)


class ReplicationGroups(GroupUseCases):
    """Create/Modify/Delete/DescribeReplicationGroups and the membership of cache clusters in groups."""

    def __init__(
        self,
        deps: Dependencies,
        *,
        subnet_groups: SubnetGroupLookup,
        parameter_groups: ParameterGroupLookup,
        security_groups: SecurityGroupLookup,
        upgrades: EngineUpgradePlanner | None = None,
        backups: Backups | None = None,
    ) -> None:
        super().__init__(deps)
        self._subnet_groups = subnet_groups
        self._parameter_groups = parameter_groups
        self._security_groups = security_groups
        self._upgrades = upgrades
        self._backups: Backups = backups or NoBackups()

    # ------------------------------------------------------------------ create
    def create(
        self, region: Region, request: CreateReplicationGroupRequest, *, extra: Prepared | None = None
    ) -> ReplicationGroup:
        """``extra``: records and events written in the group's own transaction (a serverless cache's)."""
        if self._store.get(ReplicationGroup, region, request.group_id) is not None:
            raise AlreadyExists(f"Replication group {request.group_id} already exists.", resource="ReplicationGroup")
        names = self._security_groups.check_names(region, request.cache_security_group_names)
        if names is not None:
            request = replace(request, cache_security_group_names=names)
        if request.restore is not None:
            request = request.with_snapshot_defaults(region, self._backups.restore_defaults(region, request.restore))
        backups.check_windows(request.settings.snapshot_window, request.settings.preferred_maintenance_window)
        if request.cluster_mode:
            return self._create_sharded(region, request, extra=extra)
        if request.parameter_group_name is not None and request.primary_cluster_id is None:
            release = resolve_engine(self._catalog.releases(), request.engine, request.engine_version)
            named = self._parameter_groups.resolve(region, request.parameter_group_name, release, cluster_mode=None)
            if named.cluster_enabled:
                return self._create_sharded(region, self._sharded_by_parameter_group(request, named.name))
        seed = self._seed_cluster(region, request) if request.primary_cluster_id is not None else None
        if seed is not None:
            release = release_of(self._catalog.releases(), seed.engine, seed.engine_version)
            node_type, port = seed.node_type, seed.port
            subnet_group = self._subnet_groups.get(region, request.subnet_group_name or seed.subnet_group_name)
        else:
            release = resolve_engine(self._catalog.releases(), request.engine, request.engine_version)
            assert request.node_type is not None  # parse() requires it without PrimaryClusterId
            node_type, port = request.node_type, request.port or DEFAULT_PORT
            subnet_group = self._subnet_groups.get(region, request.subnet_group_name or DEFAULT_SUBNET_GROUP)
        group_parameters = self._parameter_groups.resolve(
            region, request.parameter_group_name, release, cluster_mode=False
        ).name
        security = self._security(region, request, release, seed=seed)
        count = request.cluster_count
        automatic = bool(request.automatic_failover)
        check_failover_settings(automatic=automatic, multi_az=request.multi_az, replicas_per_node_group=[count - 1])
        if request.multi_az and len(subnet_group.availability_zones) < 2:
            raise InvalidParameterCombination(
                f"Multi-AZ needs subnets in two availability zones or more; cache subnet group {subnet_group.name} "
                f"has only {', '.join(subnet_group.availability_zones)}."
            )
        zones = self._zones_for(request.preferred_zones, count, subnet_group, seed)
        new_count = count - (1 if seed else 0)
        check_node_quota(self._store, region, new_count, limit=self._deps.max_nodes)
        member_ids = [seed.cluster_id] if seed else []
        number = 1 if not seed else 2
        while len(member_ids) < count:
            candidate = identifiers.member_cluster_id(request.group_id, number)
            number += 1
            if self._store.get(CacheCluster, region, candidate) is not None:
                raise AlreadyExists(
                    f"Cache cluster {candidate} already exists; replication group {request.group_id} needs that name "
                    "for one of its members. Choose another ReplicationGroupId.",
                    resource="CacheCluster",
                )
            member_ids.append(candidate)
        new_zones = [zone for cluster_id, zone in zip(member_ids, zones, strict=True) if seed is None or cluster_id != seed.cluster_id]
        node_addresses = self._allocate_in(new_zones)
        primary_endpoint, reader_endpoint = self._allocate(2, also_used=node_addresses)
        now = self._clock.now()
        group = ReplicationGroup(
            region=region,
            group_id=request.group_id,
            description=request.description,
            status=GroupStatus.CREATING,
            engine=release.engine,
            engine_version=release.version,
            node_type=node_type,
            port=port,
            subnet_group_name=subnet_group.name,
            parameter_group_name=group_parameters,
            node_groups=(
                NodeGroup(
                    node_group_id="0001",
                    primary_cluster_id=member_ids[0],
                    member_cluster_ids=tuple(member_ids),
                    primary_endpoint=primary_endpoint,
                    reader_endpoint=reader_endpoint,
                ),
            ),
            create_time=now,
            tags=request.tags,
            automatic_failover="enabled" if automatic else "disabled",
            multi_az="enabled" if request.multi_az else "disabled",
            log_delivery=request.log_delivery,
            preferred_maintenance_window=request.settings.preferred_maintenance_window,
            auto_minor_version_upgrade=request.settings.auto_minor_version_upgrade,
            snapshot_window=request.settings.snapshot_window,
            security_group_ids=request.security_group_ids,
            cache_security_group_names=request.cache_security_group_names or (),
            security=security,
            snapshot_retention_limit=request.snapshot_retention_limit,
            at_rest_encryption=request.at_rest_encryption,
            kms_key_id=request.kms_key_id,
            global_replication_group_id=request.global_replication_group_id,
            global_role="SECONDARY" if request.global_replication_group_id else None,
        )
        fresh = iter(node_addresses)
        clusters = [
            replace(seed, replication_group_id=group.group_id, node_group_id="0001", status=ClusterStatus.MODIFYING,
                    security=Security())
            if seed is not None and cluster_id == seed.cluster_id
            else new_member(group, cluster_id, "0001", zones[index], next(fresh), now=now)
            for index, cluster_id in enumerate(member_ids)
        ]
        self._record_new_group(
            group, clusters,
            f"Creating replication group {group.group_id}: {count} cache cluster(s) of {node_type}, "
            f"{release.engine} {release.version}, primary {member_ids[0]}",
            restore=request.restore, extra=extra,
        )
        return group

    @staticmethod
    def _sharded_by_parameter_group(request: CreateReplicationGroupRequest, name: str) -> CreateReplicationGroupRequest:
        """A request that names a parameter group with cluster-enabled yes asks for cluster mode enabled
        (one shard unless NumNodeGroups says more), as on ElastiCache."""
        if request.disabled_members:
            raise InvalidParameterCombination(
                f"Cache parameter group {name} has cluster-enabled yes (cluster mode enabled), but "
                f"{', '.join(request.disabled_members)} asks for cluster mode disabled; use NumNodeGroups and "
                "ReplicasPerNodeGroup, or a parameter group with cluster-enabled no."
            )
        return replace(request, cluster_mode=True, automatic_failover=True)

    def _security(
        self, region: Region, request: CreateReplicationGroupRequest, release: Any, *, seed: CacheCluster | None
    ) -> Security:
        """The new group's locks: the request's, checked against the engine and the user groups; with
        PrimaryClusterId, the primary cluster's (its clients keep working)."""
        wanted = request.security
        if seed is not None:
            inherited = seed.security
            if "TransitEncryptionEnabled" in wanted.given and wanted.transit_encryption_mode != inherited.transit_encryption_mode:
                have = inherited.transit_encryption_mode.value if inherited.transit_encryption_mode else "disabled"
                raise InvalidParameterCombination(
                    f"TransitEncryptionEnabled differs from the primary cluster {seed.cluster_id} (in-transit encryption "
                    f"{have}); omit it: the group takes the primary cluster's."
                )
            return inherited
        if wanted.transit_encryption_mode is not None:
            check_tls_engine(release, self._catalog.releases(), member="TransitEncryptionEnabled")
        check_user_groups([self._get(UserGroup, region, g) for g in wanted.user_group_ids], engine=release.engine)
        return wanted.security(now=self._clock.now())

    def _record_new_group(
        self, group: ReplicationGroup, clusters: Sequence[CacheCluster], message: str, *,
        restore: RestoreRequest | None = None, extra: Prepared | None = None,
    ) -> None:
        prepared = Prepared()
        if restore is not None:
            used = set(group.addresses) | {c.node.address for c in clusters}
            prepared = self._backups.prepare_restore(
                group.region, restore, target=group, engine=group.engine, version=group.engine_version, used=used
            )
        with self._store.transaction() as tx:
            tx.put(group)
            for cluster in clusters:
                tx.put(cluster)
            tx.put(self._begin(group, OperationKind.CREATE))
            self._event(tx, group, message)
            for record in prepared.records:
                tx.put(record)
            for event in prepared.events:
                tx.add_event(event)
            if extra is not None:
                for record in extra.records:
                    tx.put(record)
                for event in extra.events:
                    tx.add_event(event)
        self._changed(group)

    def _seed_cluster(self, region: Region, request: CreateReplicationGroupRequest) -> CacheCluster:
        assert request.primary_cluster_id is not None
        seed = self._get(CacheCluster, region, request.primary_cluster_id)
        if seed.replication_group_id is not None:
            raise InvalidState(
                f"Cache cluster {seed.cluster_id} already belongs to replication group {seed.replication_group_id}; "
                "PrimaryClusterId must name a standalone cluster.",
                resource="CacheCluster",
            )
        if seed.status != ClusterStatus.AVAILABLE:
            raise InvalidState(
                f"Cache cluster {seed.cluster_id} is {seed.status}; PrimaryClusterId must name an available cluster.",
                resource="CacheCluster",
            )
        for member, value in request.seed_settings:
            expected = {"Engine": seed.engine, "CacheNodeType": seed.node_type, "Port": seed.port}[member]
            if str(value).lower() != str(expected):
                raise InvalidParameterCombination(
                    f"{member} {value} differs from the primary cluster {seed.cluster_id} ({expected}); omit {member}."
                )
        return seed

    @staticmethod
    def _zones_for(
        preferred: Sequence[str], count: int, subnet_group: SubnetGroup, seed: CacheCluster | None
    ) -> list[str]:
        allowed = subnet_group.availability_zones
        if preferred:
            zones = [zone_in(subnet_group, z, default=z) for z in preferred]
            if seed is not None and zones[0] != seed.availability_zone:
                raise InvalidParameterCombination(
                    f"The first zone of PreferredCacheClusterAZs must be the primary's zone {seed.availability_zone}."
                )
            return zones
        start = allowed.index(seed.availability_zone) if seed and seed.availability_zone in allowed else 0
        return [allowed[(start + i) % len(allowed)] for i in range(count)]

    def _create_sharded(
        self, region: Region, request: CreateReplicationGroupRequest, *, extra: Prepared | None = None
    ) -> ReplicationGroup:
        release = resolve_engine(self._catalog.releases(), request.engine, request.engine_version)
        assert request.node_type is not None
        port = request.port or DEFAULT_PORT
        subnet_group = self._subnet_groups.get(region, request.subnet_group_name or DEFAULT_SUBNET_GROUP)
        group_parameters = self._parameter_groups.resolve(
            region, request.parameter_group_name, release, cluster_mode=True
        ).name
        specs = [self._placed(spec, index, subnet_group) for index, spec in enumerate(request.shards)]
        check_failover_settings(
            automatic=True, multi_az=request.multi_az,
            replicas_per_node_group=[s.replicas for s in specs] if request.multi_az else [],
        )
        total = sum(1 + spec.replicas for spec in specs)
        check_node_quotas(self._store, region, total, cluster_total=total, limit=self._deps.max_nodes)
        security = self._security(region, request, release, seed=None)
        now = self._clock.now()
        # A warm node runs without parameters: it can serve a group whose static parameters are the
        # defaults. Warm nodes run without TLS: a TLS group starts its own. A restored shard's primary
        # starts from its RDB: a warm node has started already.
        warmable = port == DEFAULT_PORT and self._parameter_groups.static_defaults(region, group_parameters)
        plain = security.transit_encryption_mode is None
        warm = (
            self._warm.take(release.engine, release.version, len(specs))
            if warmable and plain and request.restore is None else []
        )
        try:
            # Addresses in the order the loop below takes them (a shard's primary may be a warm node).
            fresh_zones = [
                zone
                for index, spec in enumerate(specs)
                for number, zone in enumerate((spec.primary_zone or "", *spec.replica_zones), start=1)
                if not (number == 1 and index < len(warm))
            ]
            fresh = self._allocate_in(fresh_zones, also_used=warm)
            (configuration_endpoint,) = self._allocate(1, also_used=[*warm, *fresh])
            addresses = iter(fresh)
            warm_left = list(warm)
            group = ReplicationGroup(
                region=region,
                group_id=request.group_id,
                description=request.description,
                status=GroupStatus.CREATING,
                engine=release.engine,
                engine_version=release.version,
                node_type=request.node_type,
                port=port,
                subnet_group_name=subnet_group.name,
                parameter_group_name=group_parameters,
                node_groups=(),
                create_time=now,
                cluster_enabled=True,
                configuration_endpoint=configuration_endpoint,
                automatic_failover="enabled",
                multi_az="enabled" if request.multi_az else "disabled",
                tags=request.tags,
                log_delivery=request.log_delivery,
                preferred_maintenance_window=request.settings.preferred_maintenance_window,
                auto_minor_version_upgrade=request.settings.auto_minor_version_upgrade,
                snapshot_window=request.settings.snapshot_window,
                security_group_ids=request.security_group_ids,
                cache_security_group_names=request.cache_security_group_names or (),
                security=security,
                snapshot_retention_limit=request.snapshot_retention_limit,
                at_rest_encryption=request.at_rest_encryption,
                kms_key_id=request.kms_key_id,
            )
            clusters: list[CacheCluster] = []
            node_groups: list[NodeGroup] = []
            for spec in specs:
                members = []
                assert spec.primary_zone is not None
                for number, zone in enumerate((spec.primary_zone, *spec.replica_zones), start=1):
                    cluster_id = sharded_member_id(group.group_id, spec.node_group_id, number)
                    if self._store.get(CacheCluster, region, cluster_id) is not None:
                        raise AlreadyExists(
                            f"Cache cluster {cluster_id} already exists; replication group {group.group_id} needs that name.",
                            resource="CacheCluster",
                        )
                    address = warm_left.pop(0) if number == 1 and warm_left else next(addresses)
                    clusters.append(new_member(group, cluster_id, spec.node_group_id, zone, address, now=now))
                    members.append(cluster_id)
                node_groups.append(
                    NodeGroup(spec.node_group_id, members[0], tuple(members), slots=slots.format_ranges(spec.slots))
                )
            group = replace(group, node_groups=tuple(node_groups))
            self._record_new_group(
                group, clusters,
                f"Creating replication group {group.group_id} with cluster mode enabled: {len(specs)} shard(s), "
                f"{total} node(s) of {request.node_type}, {release.engine} {release.version}",
                restore=request.restore, extra=extra,
            )
        except BaseException:
            self._warm.give_back(warm)
            raise
        return group

    @staticmethod
    def _placed(spec: ShardSpec, index: int, subnet_group: SubnetGroup) -> ShardSpec:
        """The shard with its zones chosen: the primary's in turn over the subnet group's zones, its
        replicas' in the zones after it."""
        zones = subnet_group.availability_zones
        primary = zone_in(subnet_group, spec.primary_zone, default=zones[index % len(zones)])
        replicas = tuple(zone_in(subnet_group, z, default=z) for z in spec.replica_zones)
        if not replicas:
            start = zones.index(primary)
            replicas = tuple(zones[(start + 1 + j) % len(zones)] for j in range(spec.replicas))
        return replace(spec, primary_zone=primary, replica_zones=replicas)

    # ------------------------------------------------------------------ modify
    def modify(self, region: Region, request: ModifyReplicationGroupRequest) -> ReplicationGroup:
        change = self.plan_modify(region, request)
        self._write([change])
        return change.group

    def apply(self, changes: Sequence[GroupChange], *, records: Sequence[Any] = ()) -> None:
        """Writes changes from ``plan_modify`` (of any regions), and other ``records``, in one transaction."""
        self._write(changes, records=records)

    def plan_modify(self, region: Region, request: ModifyReplicationGroupRequest) -> GroupChange:
        """ModifyReplicationGroup decided against the stored state, every refusal raised, nothing written."""
        group = self._group(region, request.group_id)
        self._require_status(group, GroupStatus.AVAILABLE, action="modified")
        if request.primary_cluster_id is not None:
            return self._switchover(group, request.primary_cluster_id)
        if request.node_type is not None:
            return self._change_node_type(group, request.node_type, immediately=request.apply_immediately)
        upgrading = request.engine is not None or request.engine_version is not None
        plan = self._engine_change(group, request) if upgrading else None
        # With an engine upgrade, a parameter group named is the new family's: nodes take it with the new build.
        group_goes_with_engine = plan is not None and any(m.pending.parameter_group_name for m in plan.members)
        changes: dict[str, Any] = {}
        if request.description is not None:
            changes["description"] = request.description
        for name in _AS_GIVEN:
            value = getattr(request, name)
            if value is not None:
                changes[name] = value
        if request.automatic_failover is not None or request.multi_az is not None:
            changes.update(self._failover_settings(group, request))
        if request.log_delivery_configurations is not None:
            changes["log_delivery"] = log_deliveries(
                request.log_delivery_configurations, existing=group.log_delivery, operation="ModifyReplicationGroup"
            )
        if request.parameter_group_name is not None and not group_goes_with_engine:
            # Applied as soon as possible (dynamic parameters at once, static ones at each node's reboot):
            # ElastiCache has no PendingModifiedValues member for it.
            release = release_of(self._catalog.releases(), group.engine, group.engine_version)
            changes["parameter_group_name"] = self._parameter_groups.resolve(
                region, request.parameter_group_name, release, cluster_mode=group.cluster_enabled
            ).name
        if request.cache_security_group_names is not None:
            changes["cache_security_group_names"] = self._security_groups.check_names(
                region, request.cache_security_group_names
            )
        if request.snapshot_retention_limit is not None:
            changes["snapshot_retention_limit"] = request.snapshot_retention_limit
        if request.snapshotting_cluster_id is not None:
            if group.cluster_enabled:
                raise InvalidParameterCombination(
                    "SnapshottingClusterId applies to cluster mode disabled groups; a cluster mode enabled group's "
                    "snapshots are taken from an in-sync replica of each shard."
                )
            if request.snapshotting_cluster_id not in group.member_cluster_ids:
                raise InvalidParameterValue(
                    f"SnapshottingClusterId {request.snapshotting_cluster_id} is not a member of replication group "
                    f"{group.group_id} ({', '.join(group.member_cluster_ids)})."
                )
            changes["snapshotting_cluster_id"] = request.snapshotting_cluster_id
        changed = {k: v for k, v in changes.items() if getattr(group, k) != v}
        if plan is None and request.apply_immediately and not upgrading:
            plan = self._pending_now(group)
        access = self._access_plan(group, request.access) if request.access is not None else None
        engine_work = plan is not None and bool(plan.operations)
        deferred: PendingAccess | None = None
        replaced = group.pending_access if request.access is not None else None  # a newer change replaces it
        if access is not None and request.access is not None and not request.apply_immediately:
            deferred, access = PendingAccess(request.access, access.change, access.asked), None
        elif request.access is None and request.apply_immediately and group.pending_access is not None and not engine_work:
            # ApplyImmediately without a change of its own: the waiting change of the locks starts now.
            replaced = group.pending_access
            access = self._access_plan(group, group.pending_access.modification)
        if access is not None and engine_work:
            raise InvalidParameterCombination(
                "ModifyReplicationGroup: an engine upgrade and an AUTH token, user group or in-transit encryption "
                "change cannot be made in one call; make them one after the other."
            )
        if not changed and plan is None and access is None and deferred is None and replaced is None:
            return GroupChange(group)
        updated = replace(group, **changed)
        if deferred is not None or replaced is not None:
            updated = replace(updated, pending_access=deferred)
        if plan is not None and plan.operations:
            updated = replace(updated, status=GroupStatus.MODIFYING)
        backups.check_windows(updated.snapshot_window, updated.preferred_maintenance_window)
        member_changes = {k: v for k, v in changed.items() if k in _MEMBER_SETTINGS}
        members = {c.cluster_id: c for c in self._members(updated)}
        if plan is not None:
            members.update({c.cluster_id: c for c in plan.members})
        if access is not None:
            updated = replace(updated, security=access.security, status=GroupStatus.MODIFYING)
        records: list[Any] = [updated]
        messages: list[str] = []
        if member_changes or plan is not None:
            records.extend(replace(cluster, **member_changes) for cluster in members.values())
        if changed:
            messages.append(f"Replication group {group.group_id} modified: {', '.join(sorted(changed))}")
        if plan is not None:
            records.extend(plan.operations)
            messages.append(plan.message)
        if access is not None:
            records.append(self._begin(updated, OperationKind.ACCESS, access=access.change))
            messages.append(access.message)
        if deferred is not None:
            messages.append(self._waits_for_window(updated, deferred.asked, replaced))
        elif replaced is not None and access is None:
            messages.append(f"Pending change of replication group {group.group_id} cancelled: {replaced.asked}")
        kick = "parameter_group_name" in changed or plan is not None or access is not None or bool(deferred or replaced)
        return GroupChange(
            updated, records=tuple(records), events=tuple(self._event_of(updated, m) for m in messages), kick=kick
        )

    def _waits_for_window(self, group: ReplicationGroup, asked: str, replaced: PendingAccess | None) -> str:
        opens = windows.Window.parse(group.preferred_maintenance_window).opens_at_or_after(self._clock.now())
        instead = f" (instead of the pending {replaced.asked})" if replaced is not None else ""
        return (
            f"Replication group {group.group_id}: {asked} is pending{instead}; it waits for the maintenance window "
            f"{group.preferred_maintenance_window} (next at {windows.describe(opens)})"
        )

    def start_pending_access(self, group: ReplicationGroup) -> str | None:
        """The maintenance window of ``group`` is open: its waiting change of the locks starts, planned
        again against its locks of now. The event's message; None when it cannot start yet."""
        pending = group.pending_access
        if pending is None or group.status != GroupStatus.AVAILABLE or any(
            self._operation(group, kind) is not None for kind in OperationKind
        ):
            return None
        try:
            access = self._access_plan(group, pending.modification)
        except CachefleetError as error:
            with self._store.transaction() as tx:
                dropped = replace(group, pending_access=None)
                tx.put(dropped)
                self._event(tx, dropped, f"Replication group {group.group_id}: the pending {pending.asked} cannot be "
                                         f"applied in its maintenance window and is dropped: {error}")
            return f"{group.group_id}: pending {pending.asked} dropped"
        updated = replace(group, pending_access=None)
        if access is not None:
            updated = replace(updated, security=access.security, status=GroupStatus.MODIFYING)
        with self._store.transaction() as tx:
            tx.put(updated)
            if access is not None:
                tx.put(self._begin(updated, OperationKind.ACCESS, access=access.change))
                self._event(tx, updated, access.message + " in its maintenance window")
        self._changed(updated)
        return (access.message if access is not None else f"{group.group_id}: pending {pending.asked} changes nothing now")

    def _engine_change(self, group: ReplicationGroup, request: ModifyReplicationGroupRequest) -> EnginePlan | None:
        if self._upgrades is None:
            raise InvalidParameterCombination("ModifyReplicationGroup: engine upgrades are not available here.")
        return self._upgrades.plan_group(
            group, self._members(group), engine=request.engine, version=request.engine_version,
            parameter_group_name=request.parameter_group_name, immediately=request.apply_immediately,
        )

    def _pending_now(self, group: ReplicationGroup) -> EnginePlan | None:
        """ApplyImmediately without a change of its own: what waits for the window starts now."""
        if self._upgrades is None:
            return None
        return self._upgrades.start_pending(group, self._members(group))

    def _access_plan(self, group: ReplicationGroup, modification: AccessModification) -> Any:
        """The new locks of ``group`` (security.plan_modification), with its user groups and engine looked up."""
        if self._operation(group, OperationKind.ACCESS) is not None:
            raise InvalidState(
                f"Replication group {group.group_id} is still applying its previous AUTH token, user group or "
                "in-transit encryption change.",
                resource="ReplicationGroup",
            )
        if group.global_replication_group_id is not None and (
            modification.transit_encryption is not None or modification.transit_encryption_mode is not None
        ):
            raise InvalidParameterCombination(
                f"Replication group {group.group_id} is a member of global replication group "
                f"{group.global_replication_group_id}: its members share one in-transit encryption (a secondary "
                "replicates from the primary over it), so it cannot change here; disassociate the group first."
            )
        user_groups = {g: self._get(UserGroup, group.region, g) for g in modification.user_groups_to_add}
        plan = plan_modification(
            group.security, modification, group_id=group.group_id, cluster_mode=group.cluster_enabled,
            user_groups=user_groups, engine=group.engine, now=self._clock.now(),
        )
        if plan is not None and plan.security.transit_encryption and not group.security.transit_encryption:
            release = release_of(self._catalog.releases(), group.engine, group.engine_version)
            check_tls_engine(release, self._catalog.releases(), member="TransitEncryptionEnabled")
        return plan

    # ------------------------------------------------------------------ user groups (UserGroupUsage)
    def replication_groups_using(self, region: Region, user_group_id: str) -> list[str]:
        return sorted(g.group_id for g in self._store.list(ReplicationGroup, region)
                      if user_group_id in g.security.user_group_ids)

    def check_engine(self, region: Region, user_group_id: str, engine: str) -> None:
        for group_id in self.replication_groups_using(region, user_group_id):
            group = self._group(region, group_id)
            if engine == "valkey" and group.engine != "valkey":
                raise InvalidParameterCombination(
                    f"User group {user_group_id} is used by {group.engine} replication group {group_id}; a user "
                    "group with engine valkey can serve valkey replication groups only."
                )

    @staticmethod
    def _failover_settings(group: ReplicationGroup, request: ModifyReplicationGroupRequest) -> dict[str, Any]:
        automatic = group.automatic_failover == "enabled" if request.automatic_failover is None else request.automatic_failover
        multi_az = group.multi_az == "enabled" if request.multi_az is None else request.multi_az
        if group.cluster_enabled and not automatic:
            raise InvalidParameterCombination(
                "A cluster mode enabled replication group always has automatic failover; it cannot be disabled."
            )
        check_failover_settings(
            automatic=automatic,
            multi_az=multi_az,
            replicas_per_node_group=[len(ng.replica_cluster_ids) for ng in group.node_groups],
        )
        return {"automatic_failover": "enabled" if automatic else "disabled", "multi_az": "enabled" if multi_az else "disabled"}

    def _switchover(self, group: ReplicationGroup, cluster_id: str) -> GroupChange:
        """PrimaryClusterId: make that replica the primary, losing nothing (a planned failover)."""
        if group.cluster_enabled:
            raise InvalidParameterCombination(
                "PrimaryClusterId applies to cluster mode disabled groups; use TestFailover on a node group instead."
            )
        node_group = group.node_group_of(cluster_id)
        if node_group is None:
            raise InvalidParameterValue(f"{cluster_id} is not a member of replication group {group.group_id}.")
        if node_group.primary_cluster_id == cluster_id:
            return GroupChange(group)
        target = self._get(CacheCluster, group.region, cluster_id)
        if target.status != ClusterStatus.AVAILABLE:
            raise InvalidState(
                f"Cache cluster {cluster_id} is {target.status}; it can become primary once available.",
                resource="CacheCluster",
            )
        request = FailoverRequest(node_group.node_group_id, FailoverKind.SWITCHOVER, cluster_id)
        return self._modifying(
            group, f"Switching the primary of replication group {group.group_id} to {cluster_id}",
            self._begin(group, OperationKind.FAILOVER, failover=request),
        )

    def _change_node_type(self, group: ReplicationGroup, node_type: str, *, immediately: bool) -> GroupChange:
        """Now with ApplyImmediately; otherwise every member's PendingModifiedValues holds it until the
        maintenance window (asking for the current node type cancels a pending change)."""
        members = self._members(group)
        waiting = [m for m in members if m.pending.node_type is not None]
        if node_type == group.node_type:
            if waiting and not immediately:
                return GroupChange(
                    group, records=tuple(replace(m, pending=replace(m.pending, node_type=None)) for m in waiting),
                    events=(self._event_of(group, f"Pending node type change of replication group {group.group_id} "
                                                  "cancelled"),),
                    kick=True,
                )
            raise InvalidParameterCombination(f"Replication group {group.group_id} already uses {node_type}.")
        if not immediately:
            opens = windows.Window.parse(group.preferred_maintenance_window).opens_at_or_after(self._clock.now())
            message = (
                f"Replication group {group.group_id}: node type change from {group.node_type} to {node_type} is "
                f"pending; it waits for the maintenance window {group.preferred_maintenance_window} (next at "
                f"{windows.describe(opens)})"
            )
            return GroupChange(
                group, records=tuple(replace(m, pending=replace(m.pending, node_type=node_type)) for m in members),
                events=(self._event_of(group, message),), kick=True,
            )
        cleared = [replace(m, pending=replace(m.pending, node_type=None)) for m in waiting]
        return self._modifying(
            group, f"Scaling replication group {group.group_id} from {group.node_type} to {node_type}",
            self._begin(group, OperationKind.NODE_TYPE, node_type=node_type), records=cleared,
        )

    # ------------------------------------------------------------------ delete, describe
    def delete(
        self, region: Region, group_id: str, *, retain_primary_cluster: bool = False, final_snapshot: str | None = None
    ) -> ReplicationGroup:
        group = self._group(region, group_id)
        if group.status not in (GroupStatus.AVAILABLE, GroupStatus.CREATE_FAILED):
            raise InvalidState(
                f"Replication group {group.group_id} is {group.status}; it can be deleted once it is available "
                "(or create-failed).",
                resource="ReplicationGroup",
            )
        if group.global_replication_group_id is not None:
            raise InvalidState(
                f"Replication group {group.group_id} is a member of global replication group "
                f"{group.global_replication_group_id}; disassociate it (or delete the global datastore) first.",
                resource="ReplicationGroup",
            )
        if retain_primary_cluster and group.status != GroupStatus.AVAILABLE:
            raise InvalidParameterCombination(
                f"RetainPrimaryCluster needs an available replication group; {group.group_id} is {group.status}."
            )
        prepared = Prepared()
        if final_snapshot is not None:
            if group.status != GroupStatus.AVAILABLE:
                raise InvalidParameterCombination(
                    f"Replication group {group.group_id} is {group.status} and holds no data to snapshot; delete it "
                    "without FinalSnapshotIdentifier."
                )
            # Taken before any node stops: the delete waits for it (control/reconciler.py).
            prepared = self._backups.prepare_final_snapshot(region, final_snapshot, source=group)
        updated = replace(group, status=GroupStatus.DELETING, retain_primary_cluster=retain_primary_cluster)
        primary_id = group.node_groups[0].primary_cluster_id
        with self._store.transaction() as tx:
            for record in prepared.records:
                tx.put(record)
            for event in prepared.events:
                tx.add_event(event)
            tx.put(updated)
            for cluster in self._members(group):
                if retain_primary_cluster and cluster.cluster_id == primary_id:
                    tx.put(replace(cluster, status=ClusterStatus.MODIFYING))
                else:
                    tx.put(deleting_cluster(cluster))
            for kind in OperationKind:
                operation = self._operation(group, kind)
                if operation is not None:
                    tx.delete(operation)
            self._event(
                tx, updated,
                f"Deleting replication group {group.group_id}"
                + (f", keeping its primary {primary_id} as a standalone cluster" if retain_primary_cluster else ""),
            )
        self._changed(updated)
        return updated

    def describe(self, region: Region, group_id: str | None = None) -> list[ReplicationGroup]:
        if group_id is not None:
            return [self._group(region, group_id)]
        # A serverless cache's group is DescribeServerlessCaches', not listed here (as on ElastiCache).
        listed = [g for g in self._store.list(ReplicationGroup, region) if not identifiers.is_serverless_group(g.group_id)]
        return sorted(listed, key=lambda g: g.group_id)

    def operations(self, group: ReplicationGroup) -> dict[OperationKind, Operation]:
        """The work in progress on the group (Describe shows it as PendingModifiedValues)."""
        found = {}
        for kind in OperationKind:
            operation = self._operation(group, kind)
            if operation is not None:
                found[kind] = operation
        return found

    def allowed_node_type_modifications(
        self, region: Region, *, group_id: str | None, cluster_id: str | None
    ) -> tuple[list[str], list[str]]:
        """Node types with more memory, and with less (ListAllowedNodeTypeModifications)."""
        if (group_id is None) == (cluster_id is None):
            raise InvalidParameterCombination("Give ReplicationGroupId or CacheClusterId (one of the two).")
        if group_id is not None:
            node_type = self._group(region, group_id).node_type
        else:
            node_type = self._get(CacheCluster, region, str(cluster_id)).node_type
        memory = nodetypes.maxmemory_bytes(node_type)
        by_memory = sorted(nodetypes.NODE_TYPES, key=nodetypes.maxmemory_bytes)
        return (
            [t for t in by_memory if nodetypes.maxmemory_bytes(t) > memory],
            [t for t in by_memory if nodetypes.maxmemory_bytes(t) < memory],
        )

    # ------------------------------------------------------------------ membership (GroupMembership)
    def add_cache_cluster(self, region: Region, request: CreateCacheClusterRequest) -> CacheCluster:
        """CreateCacheCluster with ReplicationGroupId: a new replica of a cluster mode disabled group."""
        assert request.replication_group_id is not None
        group = self._group(region, request.replication_group_id)
        if group.cluster_enabled:
            raise InvalidParameterCombination(
                f"Replication group {group.group_id} has cluster mode enabled; add replicas with "
                "IncreaseReplicaCount instead of CreateCacheCluster."
            )
        self._require_status(group, GroupStatus.AVAILABLE, action="given a new replica")
        node_group = group.node_groups[0]
        if len(node_group.member_cluster_ids) >= MAX_CLUSTERS_PER_GROUP:
            raise InvalidParameterValue(
                f"Replication group {group.group_id} already has {MAX_CLUSTERS_PER_GROUP} cache clusters "
                "(a primary and 5 replicas), the most it can have."
            )
        current: dict[str, Any] = {
            "Engine": group.engine, "CacheNodeType": group.node_type, "Port": group.port,
            "CacheSubnetGroupName": group.subnet_group_name, "CacheParameterGroupName": group.parameter_group_name,
            "PreferredMaintenanceWindow": group.preferred_maintenance_window, "SnapshotWindow": group.snapshot_window,
            "AutoMinorVersionUpgrade": group.auto_minor_version_upgrade,
            "SecurityGroupIds": group.security_group_ids, "CacheSecurityGroupNames": group.cache_security_group_names,
        }
        locks = request.security
        if "AuthToken" in locks.given:
            raise InvalidParameterCombination(
                f"AuthToken cannot be given when joining replication group {group.group_id}: a member follows its "
                "group's AUTH token (ModifyReplicationGroup changes it)."
            )
        if "TransitEncryptionEnabled" in locks.given and locks.transit_encryption_mode is not None \
                and not group.security.transit_encryption:
            raise InvalidParameterCombination(
                f"TransitEncryptionEnabled differs from replication group {group.group_id} (in-transit encryption "
                "disabled); omit it: a member follows its group's."
            )
        for member, value in request.group_settings:
            if isinstance(value, list | tuple):
                given = tuple(dict.fromkeys(str(v).lower() for v in value))
                if given != tuple(str(v).lower() for v in current[member]):
                    raise InvalidParameterCombination(
                        f"{member} {', '.join(given) or '(none)'} differs from replication group {group.group_id} "
                        f"({', '.join(current[member]) or 'none'}); omit {member} when joining a replication group "
                        "(a member follows its group's setting)."
                    )
            elif member == "EngineVersion":
                release = resolve_engine(self._catalog.releases(), group.engine, str(value))
                if release.version != group.engine_version:
                    raise InvalidParameterCombination(
                        f"EngineVersion {value} differs from replication group {group.group_id} "
                        f"({group.engine_version}); omit EngineVersion."
                    )
            elif str(value).lower() != str(current[member]).lower():
                raise InvalidParameterCombination(
                    f"{member} {value} differs from replication group {group.group_id} ({current[member]}); "
                    f"omit {member} when joining a replication group (a member follows its group's setting)."
                )
        subnet_group = self._subnet_groups.get(region, group.subnet_group_name)
        used_zones = [c.availability_zone for c in self._members(group)]
        least_used = min(
            subnet_group.availability_zones,
            key=lambda z: (used_zones.count(z), subnet_group.availability_zones.index(z)),
        )
        zone = zone_in(subnet_group, request.zone, default=least_used)
        (address,) = self._allocate_in([zone])
        cluster = new_member(
            group, request.cluster_id, node_group.node_group_id, zone, address, now=self._clock.now(),
            tags_of_member=request.tags,
        )
        updated = replace(
            group,
            status=GroupStatus.MODIFYING,
            node_groups=(replace(node_group, member_cluster_ids=node_group.member_cluster_ids + (cluster.cluster_id,)),),
        )
        with self._store.transaction() as tx:
            tx.put(cluster)
            tx.put(updated)
            tx.put(self._begin(updated, OperationKind.MODIFY))
            self._event(tx, cluster, f"Creating cache cluster {cluster.cluster_id} as a replica in replication group {group.group_id}")
            self._event(tx, updated, f"Adding replica {cluster.cluster_id} to replication group {group.group_id}")
        self._changed(updated)
        return cluster

    def remove_cache_cluster(self, cluster: CacheCluster) -> CacheCluster:
        """DeleteCacheCluster of a group member: a replica leaves its group."""
        assert cluster.replication_group_id is not None
        group = self._group(cluster.region, cluster.replication_group_id)
        if cluster.cluster_id in group.primary_cluster_ids:
            # ElastiCache's sentences first (Terraform's sweepers and cloud-nuke match on them).
            said = (CACHE_CLUSTER_ONLY_MEMBER.text() if len(group.member_cluster_ids) == 1
                    else CACHE_CLUSTER_SERVING_AS_PRIMARY.text(id=cluster.cluster_id, group=group.group_id))
            raise InvalidState(
                f"{said} Delete the replication group instead (RetainPrimaryCluster keeps the primary as a "
                "standalone cluster).",
                resource="CacheCluster",
            )
        self._require_status(group, GroupStatus.AVAILABLE, action="changed")
        node_group = group.node_group_of(cluster.cluster_id)
        if node_group is None:
            raise NotFound(f"Cache cluster {cluster.cluster_id} not found in {group.group_id}.", resource="CacheCluster")
        if group.automatic_failover == "enabled" and len(node_group.replica_cluster_ids) <= 1:
            raise InvalidState(
                f"{CACHE_CLUSTER_ONLY_READ_REPLICA.text(group=group.group_id)} Disable automatic failover first, or "
                "add another replica; to delete the whole replication group, use DeleteReplicationGroup.",
                resource="CacheCluster",
            )
        deleting = deleting_cluster(cluster)
        updated = replace(group, status=GroupStatus.MODIFYING)
        with self._store.transaction() as tx:
            tx.put(deleting)
            tx.put(updated)
            tx.put(self._begin(updated, OperationKind.MODIFY))
            self._event(tx, cluster, f"Deleting cache cluster {cluster.cluster_id}")
            self._event(tx, updated, f"Removing replica {cluster.cluster_id} from replication group {group.group_id}")
        self._changed(updated)
        return deleting

