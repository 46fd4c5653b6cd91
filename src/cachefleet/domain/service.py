"""Use cases: validate a request, record desired state and an event in one transaction, return.

Nothing here waits for an engine. Each mutation leaves resources in a transitional status
(``creating``, ``modifying``, ``deleting``) and tells the reconciler through ``on_change``;
the reconciler does the work and records the outcome.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from cachefleet.domain import identifiers, nodetypes, validation
from cachefleet.domain.availability import Availability, check_failover_settings
from cachefleet.domain.base import (
    DEFAULT_PORT,
    DEFAULT_SUBNET_GROUP,
    DEFAULT_VPC,
    MAX_CLUSTERS_PER_GROUP,
    MAX_NODES_PER_REGION,
    ChangeListener,
    UseCases,
)
from cachefleet.domain.errors import (
    AlreadyExists,
    InUse,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    QuotaExceeded,
    TagNotFound,
)
from cachefleet.domain.model import (
    CacheCluster,
    CacheNode,
    CacheSubnetGroup,
    ClusterStatus,
    EngineRelease,
    Event,
    EventSourceType,
    GroupStatus,
    NodeGroup,
    NodeStatus,
    Region,
    ReplicationGroup,
    Subnet,
    Tag,
)
from cachefleet.domain.ports import Clock, EngineCatalog, Resource, StateStore, WarmNodes
from cachefleet.domain.scaling import Scaling, wants_cluster_mode

MAX_SUBNET_GROUPS = 50
MAX_SUBNETS_PER_GROUP = 20
MAX_EVENT_DURATION = dt.timedelta(days=14)


_GROUP_UNSUPPORTED: dict[str, Any] = {
    "GlobalReplicationGroupId": None,
    "CacheSecurityGroupNames": None,
    "SecurityGroupIds": None,
    "SnapshotArns": None,
    "SnapshotName": None,
    "NotificationTopicArn": None,
    "SnapshotRetentionLimit": 0,
    "AuthToken": None,
    "TransitEncryptionEnabled": False,
    "AtRestEncryptionEnabled": False,
    "KmsKeyId": None,
    "UserGroupIds": None,
    "DataTieringEnabled": False,
    "NetworkType": "ipv4",
    "IpDiscovery": "ipv4",
    "TransitEncryptionMode": None,
    "ServerlessCacheSnapshotName": None,
}

# Cluster mode enabled: shards are supported; automatic failover is part of cluster mode.
_SHARDED_GROUP_UNSUPPORTED: dict[str, Any] = dict(_GROUP_UNSUPPORTED)
_GROUP_UNSUPPORTED.update({"NumNodeGroups": 1, "NodeGroupConfiguration": None, "ClusterMode": "disabled"})

_CLUSTER_UNSUPPORTED: dict[str, Any] = {
    "CacheSecurityGroupNames": None,
    "SecurityGroupIds": None,
    "SnapshotArns": None,
    "SnapshotName": None,
    "NotificationTopicArn": None,
    "SnapshotRetentionLimit": 0,
    "AuthToken": None,
    "OutpostMode": None,
    "PreferredOutpostArn": None,
    "PreferredOutpostArns": None,
    "LogDeliveryConfigurations": None,
    "TransitEncryptionEnabled": False,
    "NetworkType": "ipv4",
    "IpDiscovery": "ipv4",
}

_MODIFY_GROUP_UNSUPPORTED: dict[str, Any] = {
    "SnapshottingClusterId": None,
    "NodeGroupId": None,
    "CacheSecurityGroupNames": None,
    "SecurityGroupIds": None,
    "NotificationTopicArn": None,
    "CacheParameterGroupName": None,
    "NotificationTopicStatus": None,
    "EngineVersion": None,
    "Engine": None,
    "SnapshotRetentionLimit": 0,
    "AuthToken": None,
    "AuthTokenUpdateStrategy": None,
    "UserGroupIdsToAdd": None,
    "UserGroupIdsToRemove": None,
    "RemoveUserGroups": None,
    "IpDiscovery": None,
    "TransitEncryptionEnabled": None,
    "TransitEncryptionMode": None,
    "ClusterMode": None,
}


class ElastiCache(UseCases):
    """The ElastiCache use cases of one Cachefleet installation (all regions)."""

    def __init__(
        self,
        *,
        store: StateStore,
        catalog: EngineCatalog,
        clock: Clock,
        node_network: ipaddress.IPv4Network,
        on_change: ChangeListener | None = None,
        warm: WarmNodes | None = None,
    ) -> None:
        super().__init__(
            store=store, catalog=catalog, clock=clock, node_network=node_network, on_change=on_change, warm=warm
        )
        self.scaling = Scaling(
            store=store, catalog=catalog, clock=clock, node_network=node_network, on_change=on_change, warm=warm
        )
        self.availability = Availability(
            store=store, catalog=catalog, clock=clock, node_network=node_network, on_change=on_change, warm=warm
        )

    # ------------------------------------------------------------------ engines
    def engine_releases(
        self,
        *,
        engine: str | None = None,
        engine_version: str | None = None,
        family: str | None = None,
        default_only: bool = False,
    ) -> list[EngineRelease]:
        releases = list(self._catalog.releases())
        if engine is not None:
            releases = [r for r in releases if r.engine == engine.lower()]
        if engine_version is not None:
            releases = [r for r in releases if engine_version in (r.version, r.major_minor)]
        if family is not None:
            releases = [r for r in releases if r.family == family]
        if default_only:
            newest: dict[str, EngineRelease] = {}
            for release in releases:
                current = newest.get(release.engine)
                if current is None or _version_key(release.version) > _version_key(current.version):
                    newest[release.engine] = release
            releases = list(newest.values())
        return sorted(releases, key=lambda r: (r.engine, _version_key(r.version)))

    # ------------------------------------------------------------------ replication groups
    def create_replication_group(self, region: Region, params: Mapping[str, Any]) -> ReplicationGroup:
        sharded = wants_cluster_mode(params)
        validation.not_yet(
            params, _SHARDED_GROUP_UNSUPPORTED if sharded else _GROUP_UNSUPPORTED, operation="CreateReplicationGroup"
        )
        validation.durability(params, operation="CreateReplicationGroup")
        group_id = identifiers.replication_group_id(params["ReplicationGroupId"])
        description = params["ReplicationGroupDescription"]
        if self._store.get(ReplicationGroup, region, group_id) is not None:
            raise AlreadyExists(f"Replication group {group_id} already exists.", resource="ReplicationGroup")
        if sharded:
            release = validation.resolve_engine(self._catalog.releases(), params.get("Engine"), params.get("EngineVersion"))
            return self.scaling.create_sharded_group(
                region,
                params,
                group_id=group_id,
                release=release,
                node_type=self._node_type(params),
                port=validation.port(params.get("Port", DEFAULT_PORT)),
                subnet_group=self._subnet_group(region, params.get("CacheSubnetGroupName", DEFAULT_SUBNET_GROUP)),
                common=self._common(params),
                tags=validation.tags(params.get("Tags")),
            )

        seed = None
        if "PrimaryClusterId" in params:
            seed = self._seed_cluster(region, params)
            release = self._release_of(seed)
            node_type = seed.node_type
            port = seed.port
            subnet_group = self._subnet_group(region, params.get("CacheSubnetGroupName", seed.subnet_group_name))
        else:
            release = validation.resolve_engine(self._catalog.releases(), params.get("Engine"), params.get("EngineVersion"))
            node_type = self._node_type(params)
            port = validation.port(params.get("Port", DEFAULT_PORT))
            subnet_group = self._subnet_group(region, params.get("CacheSubnetGroupName", DEFAULT_SUBNET_GROUP))
        parameter_group = validation.parameter_group(params.get("CacheParameterGroupName"), release)

        count = self._initial_cluster_count(params, seeded=seed is not None)
        automatic = bool(params.get("AutomaticFailoverEnabled", False))
        multi_az = bool(params.get("MultiAZEnabled", False))
        check_failover_settings(automatic=automatic, multi_az=multi_az, replicas_per_node_group=[count - 1])
        if multi_az and len(subnet_group.availability_zones) < 2:
            raise InvalidParameterCombination(
                f"Multi-AZ needs subnets in two availability zones or more; cache subnet group {subnet_group.name} "
                f"has only {', '.join(subnet_group.availability_zones)}."
            )
        zones = self._zones_for(region, params.get("PreferredCacheClusterAZs"), count, subnet_group, seed)
        new_count = count - (1 if seed else 0)
        if len(self._all_clusters()) + new_count > MAX_NODES_PER_REGION:
            raise QuotaExceeded(
                f"Creating {new_count} more nodes would exceed the quota of {MAX_NODES_PER_REGION} nodes.",
                resource="CacheNode",
            )
        member_ids = [seed.cluster_id] if seed else []
        number = 1 if not seed else 2
        while len(member_ids) < count:
            candidate = identifiers.member_cluster_id(group_id, number)
            number += 1
            if self._store.get(CacheCluster, region, candidate) is not None:
                raise AlreadyExists(
                    f"Cache cluster {candidate} already exists; replication group {group_id} needs that name for "
                    "one of its members. Choose another ReplicationGroupId.",
                    resource="CacheCluster",
                )
            member_ids.append(candidate)
        addresses = validation.allocate_addresses(self._network, self._used_addresses(), new_count + 2)
        endpoint_addresses = addresses[new_count:]
        now = self._clock.now()
        common = self._common(params)
        tags = validation.tags(params.get("Tags"))
        log_delivery = validation.log_deliveries(
            params.get("LogDeliveryConfigurations"), operation="CreateReplicationGroup"
        )
        clusters = []
        for index, cluster_id in enumerate(member_ids):
            if seed is not None and cluster_id == seed.cluster_id:
                clusters.append(
                    replace(seed, replication_group_id=group_id, node_group_id="0001", status=ClusterStatus.MODIFYING)
                )
                continue
            clusters.append(
                CacheCluster(
                    region=region,
                    cluster_id=cluster_id,
                    status=ClusterStatus.CREATING,
                    engine=release.engine,
                    engine_version=release.version,
                    node_type=node_type,
                    port=port,
                    availability_zone=zones[index],
                    subnet_group_name=subnet_group.name,
                    parameter_group_name=parameter_group,
                    node=CacheNode(
                        node_id="0001",
                        address=addresses[index - (1 if seed else 0)],
                        port=port,
                        availability_zone=zones[index],
                        status=NodeStatus.CREATING,
                        create_time=now,
                    ),
                    create_time=now,
                    replication_group_id=group_id,
                    node_group_id="0001",
                    tags=tags,
                    **common,
                )
            )
        group = ReplicationGroup(
            region=region,
            group_id=group_id,
            description=description,
            status=GroupStatus.CREATING,
            engine=release.engine,
            engine_version=release.version,
            node_type=node_type,
            port=port,
            subnet_group_name=subnet_group.name,
            parameter_group_name=parameter_group,
            node_groups=(
                NodeGroup(
                    node_group_id="0001",
                    primary_cluster_id=member_ids[0],
                    member_cluster_ids=tuple(member_ids),
                    primary_endpoint=endpoint_addresses[0],
                    reader_endpoint=endpoint_addresses[1],
                ),
            ),
            create_time=now,
            tags=tags,
            automatic_failover="enabled" if automatic else "disabled",
            multi_az="enabled" if multi_az else "disabled",
            log_delivery=log_delivery,
            **common,
        )
        with self._store.transaction() as tx:
            tx.put(group)
            for cluster in clusters:
                tx.put(cluster)
            self._event(
                tx,
                group,
                f"Creating replication group {group_id}: {count} cache cluster(s) of {node_type}, "
                f"{release.engine} {release.version}, primary {member_ids[0]}",
            )
        self._changed(group)
        return group

    @staticmethod
    def _node_type(params: Mapping[str, Any]) -> str:
        if "CacheNodeType" not in params:
            raise InvalidParameterValue(
                "The parameter CacheNodeType must be provided: choose a node type such as cache.t4g.micro."
            )
        return nodetypes.check_node_type(params["CacheNodeType"])

    @staticmethod
    def _common(params: Mapping[str, Any]) -> dict[str, Any]:
        """Settings every member cluster shares with its group."""
        return {
            "preferred_maintenance_window": validation.maintenance_window(
                params.get("PreferredMaintenanceWindow", "sun:05:00-sun:06:00")
            ),
            "auto_minor_version_upgrade": params.get("AutoMinorVersionUpgrade", True),
            "snapshot_window": validation.snapshot_window(params.get("SnapshotWindow", "05:00-06:00")),
        }

    def _seed_cluster(self, region: Region, params: Mapping[str, Any]) -> CacheCluster:
        seed_id = identifiers.cache_cluster_id(params["PrimaryClusterId"])
        seed = self._store.get(CacheCluster, region, seed_id)
        if seed is None:
            raise NotFound(f"Cache cluster {seed_id} not found.", resource="CacheCluster")
        if seed.replication_group_id is not None:
            raise InvalidState(
                f"Cache cluster {seed_id} already belongs to replication group {seed.replication_group_id}; "
                "PrimaryClusterId must name a standalone cluster.",
                resource="CacheCluster",
            )
        if seed.status != ClusterStatus.AVAILABLE:
            raise InvalidState(
                f"Cache cluster {seed_id} is {seed.status}; PrimaryClusterId must name an available cluster.",
                resource="CacheCluster",
            )
        for member, value in (("Engine", seed.engine), ("CacheNodeType", seed.node_type), ("Port", seed.port)):
            if member in params and str(params[member]).lower() != str(value):
                raise InvalidParameterCombination(
                    f"{member} {params[member]} differs from the primary cluster {seed_id} ({value}); omit {member}."
                )
        return seed

    def _release_of(self, cluster: CacheCluster) -> EngineRelease:
        for release in self._catalog.releases():
            if release.engine == cluster.engine and release.version == cluster.engine_version:
                return release
        raise InvalidParameterValue(
            f"Engine {cluster.engine} {cluster.engine_version} of cluster {cluster.cluster_id} is no longer installed."
        )

    @staticmethod
    def _initial_cluster_count(params: Mapping[str, Any], *, seeded: bool) -> int:
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
            if not 0 <= int(replicas) <= MAX_CLUSTERS_PER_GROUP - 1:
                raise InvalidParameterValue(
                    f"Invalid ReplicasPerNodeGroup {replicas}: use 0 to {MAX_CLUSTERS_PER_GROUP - 1} replicas."
                )
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

    def _zones_for(
        self,
        region: Region,
        preferred: Sequence[str] | None,
        count: int,
        subnet_group: CacheSubnetGroup,
        seed: CacheCluster | None,
    ) -> list[str]:
        allowed = subnet_group.availability_zones
        if preferred:
            zones = [identifiers.check_availability_zone(region, z, parameter="PreferredCacheClusterAZs") for z in preferred]
            for zone in zones:
                if zone not in allowed:
                    raise InvalidParameterValue(
                        f"Availability zone {zone} is not in cache subnet group {subnet_group.name} "
                        f"({', '.join(allowed)}); add a subnet in {zone} or choose another zone."
                    )
            if seed is not None and zones[0] != seed.availability_zone:
                raise InvalidParameterCombination(
                    f"The first zone of PreferredCacheClusterAZs must be the primary's zone {seed.availability_zone}."
                )
            return zones
        start = allowed.index(seed.availability_zone) if seed and seed.availability_zone in allowed else 0
        return [allowed[(start + i) % len(allowed)] for i in range(count)]

    def modify_replication_group(self, region: Region, params: Mapping[str, Any]) -> ReplicationGroup:
        group = self._group(region, params["ReplicationGroupId"])
        validation.not_yet(params, _MODIFY_GROUP_UNSUPPORTED, operation="ModifyReplicationGroup")
        validation.durability(params, operation="ModifyReplicationGroup")
        self._require_group_status(group, GroupStatus.AVAILABLE, action="modified")
        if "PrimaryClusterId" in params:
            others = set(params) - {"ReplicationGroupId", "PrimaryClusterId", "ApplyImmediately"}
            if others:
                raise InvalidParameterCombination(
                    f"Change PrimaryClusterId on its own; send {', '.join(sorted(others))} in another ModifyReplicationGroup."
                )
            if group.cluster_enabled:
                raise InvalidParameterCombination(
                    "PrimaryClusterId applies to cluster mode disabled groups; use TestFailover on a node group instead."
                )
            return self.availability.switchover(group, params["PrimaryClusterId"])
        if "CacheNodeType" in params:
            others = set(params) - {"ReplicationGroupId", "CacheNodeType", "ApplyImmediately"}
            if others:
                raise InvalidParameterCombination(
                    f"Change CacheNodeType on its own; send {', '.join(sorted(others))} in another ModifyReplicationGroup."
                )
            return self.scaling.change_node_type(group, params["CacheNodeType"])
        changes: dict[str, Any] = {}
        if "ReplicationGroupDescription" in params:
            changes["description"] = params["ReplicationGroupDescription"]
        if "PreferredMaintenanceWindow" in params:
            changes["preferred_maintenance_window"] = validation.maintenance_window(params["PreferredMaintenanceWindow"])
        if "AutoMinorVersionUpgrade" in params:
            changes["auto_minor_version_upgrade"] = params["AutoMinorVersionUpgrade"]
        if "SnapshotWindow" in params:
            changes["snapshot_window"] = validation.snapshot_window(params["SnapshotWindow"])
        if "AutomaticFailoverEnabled" in params or "MultiAZEnabled" in params:
            changes.update(self.availability.modify_settings(group, params))
        if "LogDeliveryConfigurations" in params:
            changes["log_delivery"] = validation.log_deliveries(
                params["LogDeliveryConfigurations"], existing=group.log_delivery, operation="ModifyReplicationGroup"
            )
        changed = {k: v for k, v in changes.items() if getattr(group, k) != v}
        if not changed:
            return group
        updated = replace(group, **changed)
        with self._store.transaction() as tx:
            tx.put(updated)
            for cluster in self._members(updated):
                cluster_changes = {
                    k: v for k, v in changed.items() if k in ("preferred_maintenance_window", "auto_minor_version_upgrade", "snapshot_window")
                }
                if cluster_changes:
                    tx.put(replace(cluster, **cluster_changes))
            self._event(tx, updated, f"Replication group {group.group_id} modified: {', '.join(sorted(changed))}")
        return updated

    def delete_replication_group(self, region: Region, params: Mapping[str, Any]) -> ReplicationGroup:
        group = self._group(region, params["ReplicationGroupId"])
        validation.not_yet(params, {"FinalSnapshotIdentifier": None}, operation="DeleteReplicationGroup")
        if group.status not in (GroupStatus.AVAILABLE, GroupStatus.CREATE_FAILED):
            raise InvalidState(
                f"Replication group {group.group_id} is {group.status}; it can be deleted once it is available "
                "(or create-failed).",
                resource="ReplicationGroup",
            )
        retain = bool(params.get("RetainPrimaryCluster", False))
        if retain and group.status != GroupStatus.AVAILABLE:
            raise InvalidParameterCombination(
                f"RetainPrimaryCluster needs an available replication group; {group.group_id} is {group.status}."
            )
        updated = replace(group, status=GroupStatus.DELETING, retain_primary_cluster=retain)
        primary_id = group.node_groups[0].primary_cluster_id
        with self._store.transaction() as tx:
            tx.put(updated)
            for cluster in self._members(group):
                if retain and cluster.cluster_id == primary_id:
                    tx.put(replace(cluster, status=ClusterStatus.MODIFYING))
                else:
                    tx.put(replace(cluster, status=ClusterStatus.DELETING, node=replace(cluster.node, status=NodeStatus.DELETING)))
            self._event(
                tx,
                updated,
                f"Deleting replication group {group.group_id}"
                + (f", keeping its primary {primary_id} as a standalone cluster" if retain else ""),
            )
        self._changed(updated)
        return updated

    def describe_replication_groups(self, region: Region, group_id: str | None = None) -> list[ReplicationGroup]:
        if group_id is not None:
            return [self._group(region, group_id)]
        return sorted(self._store.list(ReplicationGroup, region), key=lambda g: g.group_id)

    # ------------------------------------------------------------------ cache clusters
    def create_cache_cluster(self, region: Region, params: Mapping[str, Any]) -> CacheCluster:
        validation.not_yet(params, _CLUSTER_UNSUPPORTED, operation="CreateCacheCluster")
        cluster_id = identifiers.cache_cluster_id(params["CacheClusterId"])
        if self._store.get(CacheCluster, region, cluster_id) is not None:
            raise AlreadyExists(f"Cache cluster {cluster_id} already exists.", resource="CacheCluster")
        if params.get("NumCacheNodes", 1) != 1:
            raise InvalidParameterValue(
                f"Invalid NumCacheNodes {params['NumCacheNodes']}: a Valkey or Redis OSS cache cluster has exactly "
                "one node; add replicas with a replication group instead."
            )
        if params.get("AZMode", "single-az") != "single-az":
            raise InvalidParameterValue("AZMode cross-az applies to Memcached only; omit AZMode or use single-az.")
        if len(self._all_clusters()) + 1 > MAX_NODES_PER_REGION:
            raise QuotaExceeded(f"The quota of {MAX_NODES_PER_REGION} nodes is reached.", resource="CacheNode")
        group_id = params.get("ReplicationGroupId")
        if group_id is not None:
            return self._add_replica(region, cluster_id, self._group(region, group_id), params)
        release = validation.resolve_engine(self._catalog.releases(), params.get("Engine"), params.get("EngineVersion"))
        if "CacheNodeType" not in params:
            raise InvalidParameterValue(
                "The parameter CacheNodeType must be provided: choose a node type such as cache.t4g.micro."
            )
        node_type = nodetypes.check_node_type(params["CacheNodeType"])
        port = validation.port(params.get("Port", DEFAULT_PORT))
        subnet_group = self._subnet_group(region, params.get("CacheSubnetGroupName", DEFAULT_SUBNET_GROUP))
        zone = self._single_zone(region, params, subnet_group, default=subnet_group.availability_zones[0])
        now = self._clock.now()
        (address,) = validation.allocate_addresses(self._network, self._used_addresses(), 1)
        cluster = CacheCluster(
            region=region,
            cluster_id=cluster_id,
            status=ClusterStatus.CREATING,
            engine=release.engine,
            engine_version=release.version,
            node_type=node_type,
            port=port,
            availability_zone=zone,
            subnet_group_name=subnet_group.name,
            parameter_group_name=validation.parameter_group(params.get("CacheParameterGroupName"), release),
            node=CacheNode("0001", address, port, zone, NodeStatus.CREATING, now),
            create_time=now,
            preferred_maintenance_window=validation.maintenance_window(
                params.get("PreferredMaintenanceWindow", "sun:05:00-sun:06:00")
            ),
            auto_minor_version_upgrade=params.get("AutoMinorVersionUpgrade", True),
            snapshot_window=validation.snapshot_window(params.get("SnapshotWindow", "05:00-06:00")),
            tags=validation.tags(params.get("Tags")),
        )
        with self._store.transaction() as tx:
            tx.put(cluster)
            self._event(tx, cluster, f"Creating cache cluster {cluster_id} ({release.engine} {release.version}, {node_type})")
        self._changed(cluster)
        return cluster

    def _single_zone(
        self, region: Region, params: Mapping[str, Any], subnet_group: CacheSubnetGroup, *, default: str
    ) -> str:
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
            return default
        zone = str(zone)
        identifiers.check_availability_zone(region, zone, parameter="PreferredAvailabilityZone")
        if zone not in subnet_group.availability_zones:
            raise InvalidParameterValue(
                f"Availability zone {zone} is not in cache subnet group {subnet_group.name} "
                f"({', '.join(subnet_group.availability_zones)})."
            )
        return zone

    def _add_replica(
        self, region: Region, cluster_id: str, group: ReplicationGroup, params: Mapping[str, Any]
    ) -> CacheCluster:
        if group.cluster_enabled:
            raise InvalidParameterCombination(
                f"Replication group {group.group_id} has cluster mode enabled; add replicas with "
                "IncreaseReplicaCount instead of CreateCacheCluster."
            )
        self._require_group_status(group, GroupStatus.AVAILABLE, action="given a new replica")
        node_group = group.node_groups[0]
        if len(node_group.member_cluster_ids) >= MAX_CLUSTERS_PER_GROUP:
            raise InvalidParameterValue(
                f"Replication group {group.group_id} already has {MAX_CLUSTERS_PER_GROUP} cache clusters "
                "(a primary and 5 replicas), the most it can have."
            )
        for member, value in (
            ("Engine", group.engine),
            ("CacheNodeType", group.node_type),
            ("Port", group.port),
            ("CacheSubnetGroupName", group.subnet_group_name),
            ("CacheParameterGroupName", group.parameter_group_name),
            ("PreferredMaintenanceWindow", group.preferred_maintenance_window),
            ("SnapshotWindow", group.snapshot_window),
            ("AutoMinorVersionUpgrade", group.auto_minor_version_upgrade),
        ):
            if member in params and str(params[member]).lower() != str(value).lower():
                raise InvalidParameterCombination(
                    f"{member} {params[member]} differs from replication group {group.group_id} ({value}); "
                    f"omit {member} when joining a replication group (a member follows its group's setting)."
                )
        if "EngineVersion" in params:
            release = validation.resolve_engine(self._catalog.releases(), group.engine, params["EngineVersion"])
            if release.version != group.engine_version:
                raise InvalidParameterCombination(
                    f"EngineVersion {params['EngineVersion']} differs from replication group {group.group_id} "
                    f"({group.engine_version}); omit EngineVersion."
                )
        subnet_group = self._subnet_group(region, group.subnet_group_name)
        members = self._members(group)
        used_zones = [c.availability_zone for c in members]
        least_used = min(subnet_group.availability_zones, key=lambda z: (used_zones.count(z), subnet_group.availability_zones.index(z)))
        zone = self._single_zone(region, params, subnet_group, default=least_used)
        now = self._clock.now()
        (address,) = validation.allocate_addresses(self._network, self._used_addresses(), 1)
        cluster = CacheCluster(
            region=region,
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
            node_group_id=node_group.node_group_id,
            preferred_maintenance_window=group.preferred_maintenance_window,
            auto_minor_version_upgrade=group.auto_minor_version_upgrade,
            snapshot_window=group.snapshot_window,
            tags=validation.tags(params.get("Tags")),
        )
        updated = replace(
            group,
            status=GroupStatus.MODIFYING,
            node_groups=(replace(node_group, member_cluster_ids=node_group.member_cluster_ids + (cluster_id,)),),
        )
        with self._store.transaction() as tx:
            tx.put(cluster)
            tx.put(updated)
            self._event(tx, cluster, f"Creating cache cluster {cluster_id} as a replica in replication group {group.group_id}")
            self._event(tx, updated, f"Adding replica {cluster_id} to replication group {group.group_id}")
        self._changed(updated)
        return cluster

    def delete_cache_cluster(self, region: Region, params: Mapping[str, Any]) -> CacheCluster:
        cluster = self._cluster(region, params["CacheClusterId"])
        validation.not_yet(params, {"FinalSnapshotIdentifier": None}, operation="DeleteCacheCluster")
        if cluster.status not in (ClusterStatus.AVAILABLE, ClusterStatus.CREATE_FAILED):
            raise InvalidState(
                f"Cache cluster {cluster.cluster_id} is {cluster.status}; it can be deleted once it is available.",
                resource="CacheCluster",
            )
        deleting = replace(cluster, status=ClusterStatus.DELETING, node=replace(cluster.node, status=NodeStatus.DELETING))
        if cluster.replication_group_id is None:
            with self._store.transaction() as tx:
                tx.put(deleting)
                self._event(tx, cluster, f"Deleting cache cluster {cluster.cluster_id}")
            self._changed(deleting)
            return deleting
        group = self._group(region, cluster.replication_group_id)
        primaries = {ng.primary_cluster_id for ng in group.node_groups}
        if cluster.cluster_id in primaries:
            raise InvalidState(
                f"Cache cluster {cluster.cluster_id} is the primary of replication group {group.group_id}; delete "
                "the replication group instead (RetainPrimaryCluster keeps the primary as a standalone cluster).",
                resource="CacheCluster",
            )
        self._require_group_status(group, GroupStatus.AVAILABLE, action="changed")
        node_group = next(ng for ng in group.node_groups if cluster.cluster_id in ng.member_cluster_ids)
        if group.automatic_failover == "enabled" and len(node_group.replica_cluster_ids) <= 1:
            raise InvalidState(
                f"Cache cluster {cluster.cluster_id} is the last replica of replication group {group.group_id}, which "
                "has automatic failover enabled; disable automatic failover first, or add another replica.",
                resource="ReplicationGroup",
            )
        updated = replace(group, status=GroupStatus.MODIFYING)
        with self._store.transaction() as tx:
            tx.put(deleting)
            tx.put(updated)
            self._event(tx, cluster, f"Deleting cache cluster {cluster.cluster_id}")
            self._event(tx, updated, f"Removing replica {cluster.cluster_id} from replication group {group.group_id}")
        self._changed(updated)
        return deleting

    def describe_cache_clusters(
        self, region: Region, cluster_id: str | None = None, *, not_in_replication_groups: bool = False
    ) -> list[CacheCluster]:
        if cluster_id is not None:
            return [self._cluster(region, cluster_id)]
        clusters = sorted(self._store.list(CacheCluster, region), key=lambda c: c.cluster_id)
        if not_in_replication_groups:
            clusters = [c for c in clusters if c.replication_group_id is None]
        return clusters

    # ------------------------------------------------------------------ subnet groups
    def create_cache_subnet_group(self, region: Region, params: Mapping[str, Any]) -> CacheSubnetGroup:
        name = identifiers.subnet_group_name(params["CacheSubnetGroupName"])
        if name == DEFAULT_SUBNET_GROUP or self._store.get(CacheSubnetGroup, region, name) is not None:
            raise AlreadyExists(f"Cache subnet group {name} already exists.", resource="CacheSubnetGroup")
        if len(self._store.list(CacheSubnetGroup, region)) >= MAX_SUBNET_GROUPS:
            raise QuotaExceeded(
                f"The quota of {MAX_SUBNET_GROUPS} cache subnet groups per region is reached.", resource="CacheSubnetGroup"
            )
        group = CacheSubnetGroup(
            region=region,
            name=name,
            description=params["CacheSubnetGroupDescription"],
            subnets=self._subnets(region, params["SubnetIds"]),
            vpc_id=DEFAULT_VPC,
            tags=validation.tags(params.get("Tags")),
        )
        with self._store.transaction() as tx:
            tx.put(group)
            self._event(tx, group, f"Cache subnet group {name} created with zones {', '.join(group.availability_zones)}")
        return group

    def _subnets(self, region: Region, subnet_ids: Sequence[str]) -> tuple[Subnet, ...]:
        if not subnet_ids:
            raise InvalidParameterValue("SubnetIds must list at least one subnet, such as subnet-" + region + "a.")
        unique = list(dict.fromkeys(subnet_ids))
        if len(unique) > MAX_SUBNETS_PER_GROUP:
            raise QuotaExceeded(
                f"A cache subnet group can have at most {MAX_SUBNETS_PER_GROUP} subnets; this request lists {len(unique)}.",
                resource="Subnet",
            )
        return tuple(Subnet(subnet_id, identifiers.subnet_zone(region, subnet_id)) for subnet_id in unique)

    def modify_cache_subnet_group(self, region: Region, params: Mapping[str, Any]) -> CacheSubnetGroup:
        group = self._subnet_group(region, params["CacheSubnetGroupName"])
        if group.name == DEFAULT_SUBNET_GROUP:
            raise InvalidParameterValue("The default cache subnet group cannot be modified; create your own instead.")
        changes: dict[str, Any] = {}
        if "CacheSubnetGroupDescription" in params:
            changes["description"] = params["CacheSubnetGroupDescription"]
        if "SubnetIds" in params:
            subnets = self._subnets(region, params["SubnetIds"])
            zones = {s.availability_zone for s in subnets}
            for cluster in self._store.list(CacheCluster, region):
                if cluster.subnet_group_name == group.name and cluster.availability_zone not in zones:
                    raise InUse(
                        f"The subnets of zone {cluster.availability_zone} are in use by cache cluster "
                        f"{cluster.cluster_id}; keep a subnet in that zone.",
                        resource="Subnet",
                    )
            changes["subnets"] = subnets
        updated = replace(group, **changes)
        with self._store.transaction() as tx:
            tx.put(updated)
            self._event(tx, updated, f"Cache subnet group {group.name} modified")
        return updated

    def delete_cache_subnet_group(self, region: Region, name: str) -> None:
        group = self._subnet_group(region, name)
        if group.name == DEFAULT_SUBNET_GROUP:
            raise InvalidParameterValue("The default cache subnet group cannot be deleted.")
        users = [c.cluster_id for c in self._store.list(CacheCluster, region) if c.subnet_group_name == group.name]
        if users:
            raise InUse(
                f"Cache subnet group {group.name} is in use by {', '.join(sorted(users)[:5])}; delete those first.",
                resource="CacheSubnetGroup",
            )
        with self._store.transaction() as tx:
            tx.delete(group)
            self._event(tx, group, f"Cache subnet group {group.name} deleted")

    def describe_cache_subnet_groups(self, region: Region, name: str | None = None) -> list[CacheSubnetGroup]:
        if name is not None:
            return [self._subnet_group(region, name)]
        groups = [self.default_subnet_group(region)] + self._store.list(CacheSubnetGroup, region)
        return sorted(groups, key=lambda g: g.name)

    # ------------------------------------------------------------------ tags
    def tags_of(self, region: Region, resource_arn: str) -> tuple[Tag, ...]:
        return self._tagged(region, resource_arn).tags

    def add_tags(self, region: Region, resource_arn: str, raw_tags: Sequence[Mapping[str, Any]]) -> tuple[Tag, ...]:
        resource = self._tagged(region, resource_arn)
        updated = replace(resource, tags=validation.tags(raw_tags, existing=resource.tags))
        with self._store.transaction() as tx:
            tx.put(updated)
        return updated.tags

    def remove_tags(self, region: Region, resource_arn: str, keys: Sequence[str]) -> tuple[Tag, ...]:
        resource = self._tagged(region, resource_arn)
        present = {tag.key for tag in resource.tags}
        missing = [key for key in keys if key not in present]
        if missing:
            raise TagNotFound(
                f"Tag(s) {', '.join(missing)} not found on {resource_arn}.", resource="Tag"
            )
        updated = replace(resource, tags=tuple(tag for tag in resource.tags if tag.key not in set(keys)))
        with self._store.transaction() as tx:
            tx.put(updated)
        return updated.tags

    def _tagged(self, region: Region, resource_arn: str) -> Resource:
        parsed = identifiers.parse_arn(resource_arn, region=region)
        kind = identifiers.ARN_TYPES[parsed.resource_type]
        if parsed.resource_type == "replicationgroup":
            return self._group(region, parsed.resource_id)
        if parsed.resource_type == "cluster":
            return self._cluster(region, parsed.resource_id)
        if parsed.resource_type == "subnetgroup":
            group = self._subnet_group(region, parsed.resource_id)
            if group.name == DEFAULT_SUBNET_GROUP:
                raise InvalidParameterValue("The default cache subnet group cannot be tagged.")
            return group
        raise NotFound(f"{kind} {parsed.resource_id} not found.", resource=kind)

    # ------------------------------------------------------------------ events
    def describe_events(self, region: Region, params: Mapping[str, Any]) -> list[Event]:
        now = self._clock.now()
        start = params.get("StartTime")
        end = params.get("EndTime", now)
        if "Duration" in params:
            duration = int(params["Duration"])
            if not 0 <= duration <= 20160:
                raise InvalidParameterValue(f"Invalid Duration {duration}: use 0 to 20160 minutes (14 days).")
            if start is None:
                start = _shifted(end, -dt.timedelta(minutes=duration))
            elif "EndTime" not in params:
                end = _shifted(start, dt.timedelta(minutes=duration))
        if start is None:
            start = _shifted(end, -dt.timedelta(hours=1))
        if start > end:
            raise InvalidParameterCombination("StartTime must be earlier than EndTime.")
        if now - start > MAX_EVENT_DURATION:
            start = now - MAX_EVENT_DURATION
        source_type = EventSourceType(params["SourceType"]) if "SourceType" in params else None
        source_id = params.get("SourceIdentifier")
        return list(
            self._store.events(
                region,
                start=start,
                end=end,
                source_type=source_type,
                source_id=source_id.lower() if source_id else None,
            )
        )

def _shifted(moment: dt.datetime, delta: dt.timedelta) -> dt.datetime:
    """``moment + delta``, held at the first or last representable instant instead of overflowing
    (a window that starts on 9999-12-31 simply has no events)."""
    try:
        return moment + delta
    except OverflowError:
        edge = dt.datetime.max if delta > dt.timedelta(0) else dt.datetime.min
        return edge.replace(tzinfo=dt.UTC)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())
