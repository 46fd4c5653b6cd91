"""Shards and replicas: cluster mode enabled groups, resharding, replica counts, node types.

Every use case records the desired shape (new members ``creating``, leaving members
``deleting``, a slot plan in ``ReplicationGroup.resharding``) and returns; the reconciler
moves slots and starts or stops nodes while clients keep working.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cachefleet.domain import identifiers, nodetypes, slots, validation
from cachefleet.domain.availability import check_failover_settings
from cachefleet.domain.base import (
    DEFAULT_PORT,
    MAX_NODE_GROUPS,
    MAX_NODES_PER_CLUSTER,
    MAX_NODES_PER_REGION,
    MAX_REPLICAS,
    UseCases,
)
from cachefleet.domain.errors import (
    AlreadyExists,
    InvalidParameterCombination,
    InvalidParameterValue,
    NotFound,
    QuotaExceeded,
)
from cachefleet.domain.model import (
    CacheCluster,
    CacheNode,
    CacheSubnetGroup,
    ClusterStatus,
    EngineRelease,
    GroupStatus,
    NodeGroup,
    NodeStatus,
    Region,
    ReplicationGroup,
    Resharding,
    Tag,
)


@dataclass(frozen=True)
class ShardSpec:
    node_group_id: str
    replicas: int
    slots: frozenset[int]
    primary_zone: str
    replica_zones: tuple[str, ...]


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


class Scaling(UseCases):
    # ------------------------------------------------------------------ cluster mode enabled: create
    def create_sharded_group(
        self,
        region: Region,
        params: Mapping[str, Any],
        *,
        group_id: str,
        release: EngineRelease,
        node_type: str,
        port: int,
        subnet_group: CacheSubnetGroup,
        common: Mapping[str, Any],
        tags: tuple[Tag, ...],
    ) -> ReplicationGroup:
        if params.get("AutomaticFailoverEnabled") is False:
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
        parameter_group = validation.parameter_group(params.get("CacheParameterGroupName"), release, cluster_mode=True)
        specs = self._shard_specs(region, params, subnet_group)
        multi_az = bool(params.get("MultiAZEnabled", False))
        check_failover_settings(
            automatic=True, multi_az=multi_az, replicas_per_node_group=[s.replicas for s in specs] if multi_az else []
        )
        total = sum(1 + spec.replicas for spec in specs)
        self._check_node_quotas(total, cluster_total=total)
        now = self._clock.now()
        clusters: list[CacheCluster] = []
        node_groups: list[NodeGroup] = []
        primaries = len(specs)
        warm = self._warm.take(release.engine, release.version, primaries) if port == DEFAULT_PORT else []
        try:
            fresh = validation.allocate_addresses(self._network, self._used_addresses() | set(warm), total - len(warm) + 1)
            configuration_endpoint = fresh.pop()
            addresses = iter(fresh)
            warm_left = list(warm)
            for spec in specs:
                members = []
                for number, zone in enumerate((spec.primary_zone, *spec.replica_zones), start=1):
                    cluster_id = sharded_member_id(group_id, spec.node_group_id, number)
                    if self._store.get(CacheCluster, region, cluster_id) is not None:
                        raise AlreadyExists(
                            f"Cache cluster {cluster_id} already exists; replication group {group_id} needs that name.",
                            resource="CacheCluster",
                        )
                    address = warm_left.pop(0) if number == 1 and warm_left else next(addresses)
                    clusters.append(
                        self._new_member(
                            region, cluster_id, group_id, spec.node_group_id, release, node_type, port, zone, address,
                            subnet_group.name, parameter_group, common, tags,
                        )
                    )
                    members.append(cluster_id)
                node_groups.append(
                    NodeGroup(
                        node_group_id=spec.node_group_id,
                        primary_cluster_id=members[0],
                        member_cluster_ids=tuple(members),
                        slots=slots.format_ranges(spec.slots),
                    )
                )
            group = ReplicationGroup(
                region=region,
                group_id=group_id,
                description=params["ReplicationGroupDescription"],
                status=GroupStatus.CREATING,
                engine=release.engine,
                engine_version=release.version,
                node_type=node_type,
                port=port,
                subnet_group_name=subnet_group.name,
                parameter_group_name=parameter_group,
                node_groups=tuple(node_groups),
                create_time=now,
                cluster_enabled=True,
                configuration_endpoint=configuration_endpoint,
                automatic_failover="enabled",
                multi_az="enabled" if multi_az else "disabled",
                tags=tags,
                **common,
            )
            with self._store.transaction() as tx:
                tx.put(group)
                for cluster in clusters:
                    tx.put(cluster)
                self._event(
                    tx,
                    group,
                    f"Creating replication group {group_id} with cluster mode enabled: {len(specs)} shard(s), "
                    f"{total} node(s) of {node_type}, {release.engine} {release.version}",
                )
        except BaseException:
            self._warm.give_back(warm)
            raise
        self._changed(group)
        return group

    def _shard_specs(self, region: Region, params: Mapping[str, Any], subnet_group: CacheSubnetGroup) -> list[ShardSpec]:
        configs: list[Mapping[str, Any]] = list(params.get("NodeGroupConfiguration") or [])
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
        ids = [node_group_id(c["NodeGroupId"]) if c.get("NodeGroupId") else f"{i + 1:04d}" for i, c in enumerate(configs or [{}] * count)]
        if len(set(ids)) != len(ids):
            raise InvalidParameterValue("Every NodeGroupId in NodeGroupConfiguration must be different.")
        if all(given_slots) and configs:
            shares = [slots.parse(str(s), parameter=f"Slots of node group {ng}") for s, ng in zip(given_slots, ids, strict=True)]
            slots.check_partition(shares, names=ids)
        else:
            shares = slots.even(count)
        zones = subnet_group.availability_zones
        specs = []
        for index, node_group in enumerate(ids):
            config = configs[index] if configs else {}
            replicas = config.get("ReplicaCount", default_replicas)
            if not 0 <= replicas <= MAX_REPLICAS:
                raise InvalidParameterValue(
                    f"Invalid replica count {replicas} for node group {node_group}: use 0 to {MAX_REPLICAS} replicas."
                )
            primary_zone = self._zone(region, config.get("PrimaryAvailabilityZone"), subnet_group) or zones[index % len(zones)]
            replica_zones = [self._zone(region, z, subnet_group) or "" for z in config.get("ReplicaAvailabilityZones", [])]
            if replica_zones and len(replica_zones) != replicas:
                raise InvalidParameterCombination(
                    f"Node group {node_group} has {replicas} replica(s) but {len(replica_zones)} ReplicaAvailabilityZones; "
                    "give one zone per replica."
                )
            if not replica_zones:
                start = zones.index(primary_zone)
                replica_zones = [zones[(start + 1 + j) % len(zones)] for j in range(replicas)]
            specs.append(ShardSpec(node_group, replicas, frozenset(shares[index]), primary_zone, tuple(replica_zones)))
        return specs

    @staticmethod
    def _zone(region: Region, zone: str | None, subnet_group: CacheSubnetGroup) -> str | None:
        if zone is None:
            return None
        identifiers.check_availability_zone(region, zone, parameter="availability zone")
        if zone not in subnet_group.availability_zones:
            raise InvalidParameterValue(
                f"Availability zone {zone} is not in cache subnet group {subnet_group.name} "
                f"({', '.join(subnet_group.availability_zones)})."
            )
        return zone

    def _check_node_quotas(self, new_nodes: int, *, cluster_total: int) -> None:
        if cluster_total > MAX_NODES_PER_CLUSTER:
            raise QuotaExceeded(
                f"A cluster can have at most {MAX_NODES_PER_CLUSTER} nodes; this asks for {cluster_total}.",
                resource="NodeGroup",
            )
        if len(self._all_clusters()) + new_nodes > MAX_NODES_PER_REGION:
            raise QuotaExceeded(
                f"{new_nodes} more node(s) would exceed the quota of {MAX_NODES_PER_REGION} nodes per region.",
                resource="CacheNode",
            )

    def _new_member(
        self,
        region: Region,
        cluster_id: str,
        group_id: str,
        node_group: str,
        release: EngineRelease,
        node_type: str,
        port: int,
        zone: str,
        address: str,
        subnet_group: str,
        parameter_group: str,
        common: Mapping[str, Any],
        tags: tuple[Tag, ...],
    ) -> CacheCluster:
        now = self._clock.now()
        return CacheCluster(
            region=region,
            cluster_id=cluster_id,
            status=ClusterStatus.CREATING,
            engine=release.engine,
            engine_version=release.version,
            node_type=node_type,
            port=port,
            availability_zone=zone,
            subnet_group_name=subnet_group,
            parameter_group_name=parameter_group,
            node=CacheNode("0001", address, port, zone, NodeStatus.CREATING, now),
            create_time=now,
            replication_group_id=group_id,
            node_group_id=node_group,
            tags=tags,
            **common,
        )

    def _member_of(self, group: ReplicationGroup, template: CacheCluster, cluster_id: str, node_group: str, zone: str, address: str) -> CacheCluster:
        release = EngineRelease(group.engine, group.engine_version, "", "")
        common = {
            "preferred_maintenance_window": group.preferred_maintenance_window,
            "auto_minor_version_upgrade": group.auto_minor_version_upgrade,
            "snapshot_window": group.snapshot_window,
        }
        return self._new_member(
            group.region, cluster_id, group.group_id, node_group, release, group.node_type, group.port, zone, address,
            group.subnet_group_name, group.parameter_group_name, common, template.tags,
        )

    # ------------------------------------------------------------------ resharding
    def modify_shard_configuration(self, region: Region, params: Mapping[str, Any]) -> ReplicationGroup:
        group = self._group(region, params["ReplicationGroupId"])
        if not group.cluster_enabled:
            raise InvalidParameterCombination(
                f"Replication group {group.group_id} has cluster mode disabled; only cluster mode enabled groups "
                "have shards to add or remove."
            )
        self._require_group_status(group, GroupStatus.AVAILABLE, action="resharded")
        self._require_apply_immediately(params)
        count = params["NodeGroupCount"]
        current = [ng.node_group_id for ng in group.node_groups]
        if not 1 <= count:
            raise InvalidParameterValue(f"Invalid NodeGroupCount {count}: a cluster keeps at least one node group.")
        if count > MAX_NODE_GROUPS:
            raise QuotaExceeded(f"A cluster can have at most {MAX_NODE_GROUPS} node groups.", resource="NodeGroup")
        remove = self._node_groups_to_remove(group, params, count)
        resharding = [dict(item) for item in params.get("ReshardingConfiguration") or []]
        if resharding and len(resharding) != count:
            raise InvalidParameterCombination(
                f"ReshardingConfiguration lists {len(resharding)} node groups but NodeGroupCount is {count}; "
                "describe every node group of the resulting cluster, or omit it."
            )
        new_ids: list[str] = []
        if count > len(current):
            named = [node_group_id(r["NodeGroupId"]) for r in resharding if r.get("NodeGroupId")]
            new_ids = [n for n in named if n not in current]
            number = max(int(n) for n in current)
            while len(current) + len(new_ids) < count:
                number += 1
                candidate = f"{number:04d}"
                if candidate not in current and candidate not in new_ids:
                    new_ids.append(candidate)
            if len(current) + len(new_ids) != count:
                raise InvalidParameterCombination(
                    f"ReshardingConfiguration names {len(new_ids)} new node group(s), but going from {len(current)} "
                    f"to {count} node groups adds {count - len(current)}."
                )
        final = [n for n in current if n not in remove] + new_ids
        owned = {ng.node_group_id: slots.parse(ng.slots) for ng in group.node_groups}
        target = slots.rebalance(owned, final)
        to_move = slots.moves(owned, target)
        subnet_group = self._subnet_group(region, group.subnet_group_name)
        zones_for = {node_group_id(r["NodeGroupId"]): list(r.get("PreferredAvailabilityZones") or []) for r in resharding if r.get("NodeGroupId")}
        replicas = len(group.node_groups[0].replica_cluster_ids)
        for new_id in new_ids:
            zones_for[new_id] = [self._zone(region, z, subnet_group) or "" for z in zones_for.get(new_id, [])]
            if zones_for[new_id] and len(zones_for[new_id]) != 1 + replicas:
                raise InvalidParameterValue(
                    f"ReshardingConfiguration of new node group {new_id} lists {len(zones_for[new_id])} zone(s), but "
                    f"its nodes are a primary and {replicas} replica(s): give {1 + replicas} zones, the primary's first."
                )
        self._check_node_quotas(len(new_ids) * (1 + replicas), cluster_total=len(group.member_cluster_ids) + len(new_ids) * (1 + replicas))
        template = self._members(group)[0]
        new_clusters: list[CacheCluster] = []
        new_groups: list[NodeGroup] = []
        warm = self._warm.take(group.engine, group.engine_version, len(new_ids)) if group.port == DEFAULT_PORT else []
        try:
            fresh = iter(validation.allocate_addresses(
                self._network, self._used_addresses() | set(warm), len(new_ids) * (1 + replicas) - len(warm)
            ))
            warm_left = list(warm)
            all_zones = subnet_group.availability_zones
            for index, new_id in enumerate(new_ids):
                wanted = zones_for.get(new_id, [])
                start = (len(current) + index) % len(all_zones)
                zones = wanted + [all_zones[(start + j) % len(all_zones)] for j in range(len(wanted), 1 + replicas)]
                members = []
                for number in range(1, 2 + replicas):
                    cluster_id = sharded_member_id(group.group_id, new_id, number)
                    if self._store.get(CacheCluster, region, cluster_id) is not None:
                        raise AlreadyExists(f"Cache cluster {cluster_id} already exists.", resource="CacheCluster")
                    address = warm_left.pop(0) if number == 1 and warm_left else next(fresh)
                    new_clusters.append(self._member_of(group, template, cluster_id, new_id, zones[number - 1], address))
                    members.append(cluster_id)
                new_groups.append(NodeGroup(new_id, members[0], tuple(members), slots=""))
            updated = replace(
                group,
                status=GroupStatus.MODIFYING,
                node_groups=group.node_groups + tuple(new_groups),
                resharding=Resharding(
                    target_slots=tuple((name, slots.format_ranges(target[name])) for name in final),
                    total_slots=to_move,
                    removing=tuple(remove),
                ),
            )
            with self._store.transaction() as tx:
                tx.put(updated)
                for cluster in new_clusters:
                    tx.put(cluster)
                change = (
                    f"{len(current)} -> {count} node groups"
                    + (f", adding {', '.join(new_ids)}" if new_ids else "")
                    + (f", removing {', '.join(remove)}" if remove else "")
                )
                self._event(tx, updated, f"Resharding replication group {group.group_id}: {change}; {to_move} slots to move")
        except BaseException:
            self._warm.give_back(warm)
            raise
        self._changed(updated)
        return updated

    @staticmethod
    def _node_groups_to_remove(group: ReplicationGroup, params: Mapping[str, Any], count: int) -> list[str]:
        current = [ng.node_group_id for ng in group.node_groups]
        to_remove = params.get("NodeGroupsToRemove")
        to_retain = params.get("NodeGroupsToRetain")
        if count >= len(current):
            if to_remove or to_retain:
                raise InvalidParameterCombination(
                    "NodeGroupsToRemove and NodeGroupsToRetain apply only when NodeGroupCount is lower than the "
                    f"current {len(current)} node groups."
                )
            return []
        if bool(to_remove) == bool(to_retain):
            raise InvalidParameterValue(
                f"Going from {len(current)} to {count} node groups: name the node groups to remove with "
                "NodeGroupsToRemove, or those to keep with NodeGroupsToRetain (one of the two)."
            )
        named = [node_group_id(n, parameter="node group id") for n in (to_remove or to_retain or [])]
        unknown = [n for n in named if n not in current]
        if unknown:
            raise NotFound(
                f"Node group(s) {', '.join(unknown)} not found in replication group {group.group_id} "
                f"(it has {', '.join(current)}).",
                resource="NodeGroup",
            )
        remove = named if to_remove else [n for n in current if n not in named]
        if len(current) - len(remove) != count:
            raise InvalidParameterCombination(
                f"Removing {len(remove)} of {len(current)} node groups leaves {len(current) - len(remove)}, "
                f"not NodeGroupCount {count}."
            )
        if len(remove) >= len(current):
            raise InvalidParameterValue("A cluster keeps at least one node group; do not remove all of them.")
        return remove

    @staticmethod
    def _require_apply_immediately(params: Mapping[str, Any]) -> None:
        if params.get("ApplyImmediately") is not True:
            raise InvalidParameterValue(
                "ApplyImmediately must be true: shard and replica changes are applied online, at once."
            )

    # ------------------------------------------------------------------ replica counts
    def increase_replica_count(self, region: Region, params: Mapping[str, Any]) -> ReplicationGroup:
        group, wanted = self._replica_targets(region, params, increase=True)
        now_members = {c.cluster_id: c for c in self._members(group)}
        subnet_group = self._subnet_group(region, group.subnet_group_name)
        additions: list[tuple[str, str, str]] = []  # (node group, cluster id, zone)
        for node_group in group.node_groups:
            count, zones = wanted.get(node_group.node_group_id, (None, []))
            if count is None:
                continue
            have = len(node_group.replica_cluster_ids)
            used_zones = [now_members[c].availability_zone for c in node_group.member_cluster_ids if c in now_members]
            taken = set(node_group.member_cluster_ids)
            new_zones = self._zones_for_new_replicas(
                [self._zone(region, z, subnet_group) or "" for z in zones],
                [now_members[c].availability_zone for c in node_group.replica_cluster_ids if c in now_members],
                count - have,
            )
            number = 1
            for index in range(count - have):
                cluster_id = self._free_member_id(group, node_group.node_group_id, taken, start=number)
                taken.add(cluster_id)
                zone = new_zones[index] if index < len(new_zones) else None
                if zone is None:
                    all_zones = subnet_group.availability_zones
                    zone = min(all_zones, key=lambda z: (used_zones.count(z), all_zones.index(z)))
                used_zones.append(zone)
                additions.append((node_group.node_group_id, cluster_id, zone or ""))
        self._check_node_quotas(len(additions), cluster_total=len(group.member_cluster_ids) + len(additions))
        addresses = validation.allocate_addresses(self._network, self._used_addresses(), len(additions))
        template = next(iter(now_members.values()))
        new_clusters = [
            self._member_of(group, template, cluster_id, ng_id, zone, address)
            for (ng_id, cluster_id, zone), address in zip(additions, addresses, strict=True)
        ]
        node_groups = tuple(
            replace(ng, member_cluster_ids=ng.member_cluster_ids + tuple(c for n, c, _ in additions if n == ng.node_group_id))
            for ng in group.node_groups
        )
        updated = replace(group, status=GroupStatus.MODIFYING, node_groups=node_groups)
        with self._store.transaction() as tx:
            tx.put(updated)
            for cluster in new_clusters:
                tx.put(cluster)
            self._event(
                tx, updated, f"Increasing replica count of {group.group_id}: adding {', '.join(c for _, c, _ in additions)}"
            )
        self._changed(updated)
        return updated

    @staticmethod
    def _zones_for_new_replicas(wanted: Sequence[str], existing: Sequence[str], count: int) -> list[str]:
        """The zones of ``count`` new replicas, from a ConfigureShard zone list.

        The list describes the whole shard after the change, primary first (ElastiCache asks
        for NewReplicaCount + 1 zones). The nodes already there keep their zones, so the new
        replicas get the replica zones that the existing replicas do not already fill.
        """
        if not wanted:
            return []
        left = list(wanted[1:])
        for zone in existing:
            if zone in left:
                left.remove(zone)
        return left[:count]

    @staticmethod
    def _replicas_to_keep(replicas: Sequence[CacheCluster], wanted: Sequence[str], count: int) -> list[str]:
        """Which ``count`` replicas stay on DecreaseReplicaCount: those in the wanted zones
        (primary's zone first in ``wanted``, as for IncreaseReplicaCount), then by name."""
        ordered = sorted(replicas, key=lambda c: c.cluster_id)
        keep: list[str] = []
        left = list(wanted[1:])
        for cluster in ordered:
            if len(keep) < count and cluster.availability_zone in left:
                left.remove(cluster.availability_zone)
                keep.append(cluster.cluster_id)
        for cluster in ordered:
            if len(keep) < count and cluster.cluster_id not in keep:
                keep.append(cluster.cluster_id)
        return keep

    def _free_member_id(self, group: ReplicationGroup, node_group: str, taken: set[str], *, start: int) -> str:
        number = start
        while True:
            candidate = (
                sharded_member_id(group.group_id, node_group, number)
                if group.cluster_enabled
                else identifiers.member_cluster_id(group.group_id, number)
            )
            if candidate not in taken and self._store.get(CacheCluster, group.region, candidate) is None:
                return candidate
            number += 1

    def decrease_replica_count(self, region: Region, params: Mapping[str, Any]) -> ReplicationGroup:
        named = [identifiers.cache_cluster_id(c) for c in params.get("ReplicasToRemove") or []]
        if named and (params.get("NewReplicaCount") is not None or params.get("ReplicaConfiguration")):
            raise InvalidParameterCombination(
                "Give ReplicasToRemove, or NewReplicaCount / ReplicaConfiguration, not both."
            )
        if named:
            group = self._group(region, params["ReplicationGroupId"])
            self._require_group_status(group, GroupStatus.AVAILABLE, action="changed")
            self._require_apply_immediately(params)
            removals = []
            for cluster_id in named:
                node_group = next((ng for ng in group.node_groups if cluster_id in ng.member_cluster_ids), None)
                if node_group is None:
                    raise InvalidParameterValue(f"{cluster_id} is not a member of replication group {group.group_id}.")
                if cluster_id == node_group.primary_cluster_id:
                    raise InvalidParameterValue(
                        f"{cluster_id} is the primary of node group {node_group.node_group_id}; ReplicasToRemove must "
                        "name replicas."
                    )
                removals.append(cluster_id)
        else:
            group, wanted = self._replica_targets(region, params, increase=False)
            subnet_group = self._subnet_group(region, group.subnet_group_name)
            clusters = {c.cluster_id: c for c in self._members(group)}
            removals = []
            for node_group in group.node_groups:
                count, zones = wanted.get(node_group.node_group_id, (None, []))
                if count is None:
                    continue
                replicas = [clusters[c] for c in node_group.replica_cluster_ids if c in clusters]
                keep = self._replicas_to_keep(replicas, [self._zone(region, z, subnet_group) or "" for z in zones], count)
                removals += sorted(c.cluster_id for c in replicas if c.cluster_id not in keep)
        self._check_minimum_replicas(group, removals)
        members = {c.cluster_id: c for c in self._members(group)}
        updated = replace(group, status=GroupStatus.MODIFYING)
        with self._store.transaction() as tx:
            tx.put(updated)
            for cluster_id in removals:
                cluster = members[cluster_id]
                tx.put(replace(cluster, status=ClusterStatus.DELETING, node=replace(cluster.node, status=NodeStatus.DELETING)))
            self._event(tx, updated, f"Decreasing replica count of {group.group_id}: removing {', '.join(removals)}")
        self._changed(updated)
        return updated

    @staticmethod
    def _check_minimum_replicas(group: ReplicationGroup, removals: Sequence[str]) -> None:
        """Automatic failover (cluster mode disabled) and Multi-AZ need a replica in every node group."""
        needs_replica = group.multi_az == "enabled" or (group.automatic_failover == "enabled" and not group.cluster_enabled)
        if not needs_replica:
            return
        for node_group in group.node_groups:
            left = [c for c in node_group.replica_cluster_ids if c not in removals]
            if not left:
                raise InvalidParameterValue(
                    f"Node group {node_group.node_group_id} would have no replica, but automatic failover needs one; "
                    "disable automatic failover first or keep a replica."
                )

    def _replica_targets(
        self, region: Region, params: Mapping[str, Any], *, increase: bool
    ) -> tuple[ReplicationGroup, dict[str, tuple[int, list[str]]]]:
        """The replica count wanted per node group, checked against the current counts."""
        group = self._group(region, params["ReplicationGroupId"])
        self._require_group_status(group, GroupStatus.AVAILABLE, action="changed")
        self._require_apply_immediately(params)
        verb = "IncreaseReplicaCount" if increase else "DecreaseReplicaCount"
        new_count = params.get("NewReplicaCount")
        configuration = params.get("ReplicaConfiguration") or []
        if (new_count is None) == (not configuration):
            raise InvalidParameterCombination(f"{verb}: give NewReplicaCount or ReplicaConfiguration (one of the two).")
        wanted: dict[str, tuple[int, list[str]]] = {}
        if new_count is not None:
            for node_group in group.node_groups:
                wanted[node_group.node_group_id] = (new_count, [])
        for item in configuration:
            ng_id = node_group_id(item["NodeGroupId"])
            if group.node_group(ng_id) is None:
                raise NotFound(f"Node group {ng_id} not found in replication group {group.group_id}.", resource="NodeGroup")
            wanted[ng_id] = (item["NewReplicaCount"], list(item.get("PreferredAvailabilityZones") or []))
        for ng_id, (count, zones) in wanted.items():
            found = group.node_group(ng_id)
            assert found is not None
            have = len(found.replica_cluster_ids)
            if not 0 <= count <= MAX_REPLICAS:
                raise InvalidParameterValue(f"Invalid NewReplicaCount {count}: use 0 to {MAX_REPLICAS} replicas.")
            if zones and len(zones) != count + 1:
                raise InvalidParameterValue(
                    f"Node group {ng_id}: PreferredAvailabilityZones lists {len(zones)} zone(s), but NewReplicaCount "
                    f"{count} needs {count + 1}: the primary's zone first, then one zone per replica."
                )
            if increase and count <= have:
                raise InvalidParameterValue(
                    f"Node group {ng_id} already has {have} replica(s); IncreaseReplicaCount needs a NewReplicaCount "
                    f"above that."
                )
            if not increase and count >= have:
                raise InvalidParameterValue(
                    f"Node group {ng_id} has {have} replica(s); DecreaseReplicaCount needs a NewReplicaCount below that."
                )
        return group, wanted

    # ------------------------------------------------------------------ node types
    def change_node_type(self, group: ReplicationGroup, node_type: str) -> ReplicationGroup:
        nodetypes.check_node_type(node_type)
        if node_type == group.node_type:
            raise InvalidParameterCombination(f"Replication group {group.group_id} already uses {node_type}.")
        return self._start_modifying(
            group, f"Scaling replication group {group.group_id} from {group.node_type} to {node_type}",
            pending_node_type=node_type,
        )

    def allowed_node_type_modifications(self, region: Region, params: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        group_id, cluster_id = params.get("ReplicationGroupId"), params.get("CacheClusterId")
        if (group_id is None) == (cluster_id is None):
            raise InvalidParameterCombination("Give ReplicationGroupId or CacheClusterId (one of the two).")
        node_type = self._group(region, group_id).node_type if group_id else self._cluster(region, str(cluster_id)).node_type
        memory = nodetypes.maxmemory_bytes(node_type)
        up = sorted((t for t in nodetypes.NODE_TYPES if nodetypes.maxmemory_bytes(t) > memory), key=nodetypes.maxmemory_bytes)
        down = sorted((t for t in nodetypes.NODE_TYPES if nodetypes.maxmemory_bytes(t) < memory), key=nodetypes.maxmemory_bytes)
        return up, down
