"""Replica counts of a replication group's node groups (IncreaseReplicaCount, DecreaseReplicaCount).

New replicas are recorded ``creating`` (the reconciler starts them and waits for their full
sync), leaving ones ``deleting``; the group is ``modifying`` with a MODIFY operation until
every member is settled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cachefleet.domain import identifiers, validation
from cachefleet.domain.base import Dependencies
from cachefleet.domain.cache_clusters import CacheCluster, SubnetGroupLookup, deleting_cluster
from cachefleet.domain.errors import InvalidParameterCombination, InvalidParameterValue, NotFound
from cachefleet.domain.identifiers import Region
from cachefleet.domain.operations import OperationKind
from cachefleet.domain.replication_groups import (
    MAX_REPLICAS,
    GroupStatus,
    GroupUseCases,
    ReplicationGroup,
    check_node_quotas,
    new_member,
    node_group_id,
    sharded_member_id,
    subnet_zone,
)
from cachefleet.domain.shards import require_apply_immediately


@dataclass(frozen=True)
class ReplicaCountRequest:
    """IncreaseReplicaCount / DecreaseReplicaCount, checked."""

    group_id: str
    increase: bool
    new_replica_count: int | None
    configuration: tuple[tuple[str, int, tuple[str, ...]], ...]  # (node group, NewReplicaCount, zones)
    replicas_to_remove: tuple[str, ...] = ()

    @classmethod
    def parse(cls, region: Region, params: Mapping[str, Any], *, increase: bool) -> ReplicaCountRequest:
        require_apply_immediately(params)
        verb = "IncreaseReplicaCount" if increase else "DecreaseReplicaCount"
        validation.no_outposts(params.get("ReplicaConfiguration"), ("PreferredOutpostArns",), operation=verb,
                               within="ReplicaConfiguration")
        named = tuple(identifiers.cache_cluster_id(c) for c in params.get("ReplicasToRemove") or [])
        new_count = params.get("NewReplicaCount")
        configuration = tuple(
            (node_group_id(item["NodeGroupId"]), item["NewReplicaCount"],
             tuple(subnet_zone(region, z) or "" for z in item.get("PreferredAvailabilityZones") or []))
            for item in params.get("ReplicaConfiguration") or []
        )
        if named:
            if new_count is not None or configuration:
                raise InvalidParameterCombination(
                    "Give ReplicasToRemove, or NewReplicaCount / ReplicaConfiguration, not both."
                )
        elif (new_count is None) == (not configuration):
            raise InvalidParameterCombination(f"{verb}: give NewReplicaCount or ReplicaConfiguration (one of the two).")
        for count in [new_count, *(c for _, c, _ in configuration)]:
            if count is not None and not 0 <= count <= MAX_REPLICAS:
                raise InvalidParameterValue(f"Invalid NewReplicaCount {count}: use 0 to {MAX_REPLICAS} replicas.")
        for ng_id, count, zones in configuration:
            if zones and len(zones) != count + 1:
                raise InvalidParameterValue(
                    f"Node group {ng_id}: PreferredAvailabilityZones lists {len(zones)} zone(s), but NewReplicaCount "
                    f"{count} needs {count + 1}: the primary's zone first, then one zone per replica."
                )
        return cls(params["ReplicationGroupId"], increase, new_count, configuration, named)


class Replicas(GroupUseCases):
    """IncreaseReplicaCount and DecreaseReplicaCount, in both cluster modes."""

    def __init__(self, deps: Dependencies, *, subnet_groups: SubnetGroupLookup) -> None:
        super().__init__(deps)
        self._subnet_groups = subnet_groups

    def increase(self, region: Region, request: ReplicaCountRequest) -> ReplicationGroup:
        group, wanted = self._targets(region, request)
        members = {c.cluster_id: c for c in self._members(group)}
        subnet_group = self._subnet_groups.get(region, group.subnet_group_name)
        additions: list[tuple[str, str, str]] = []  # (node group, cluster id, zone)
        for node_group in group.node_groups:
            if node_group.node_group_id not in wanted:
                continue
            count, zones = wanted[node_group.node_group_id]
            have = len(node_group.replica_cluster_ids)
            used_zones = [members[c].availability_zone for c in node_group.member_cluster_ids if c in members]
            taken = set(node_group.member_cluster_ids)
            new_zones = _zones_for_new_replicas(
                [subnet_zone(region, z, subnet_group) or "" for z in zones],
                [members[c].availability_zone for c in node_group.replica_cluster_ids if c in members],
                count - have,
            )
            for index in range(count - have):
                cluster_id = self._free_member_id(group, node_group.node_group_id, taken)
                taken.add(cluster_id)
                zone = new_zones[index] if index < len(new_zones) else None
                if zone is None:
                    all_zones = subnet_group.availability_zones
                    zone = min(all_zones, key=lambda z: (used_zones.count(z), all_zones.index(z)))
                used_zones.append(zone)
                additions.append((node_group.node_group_id, cluster_id, zone))
        check_node_quotas(self._store, region, len(additions), cluster_total=len(group.member_cluster_ids) + len(additions),
                          limit=self._deps.max_nodes)
        now = self._clock.now()
        new_clusters = [
            new_member(group, cluster_id, ng_id, zone, address, now=now)
            for (ng_id, cluster_id, zone), address in zip(additions, self._allocate_in([zone for _, _, zone in additions]), strict=True)
        ]
        node_groups = tuple(
            replace(ng, member_cluster_ids=ng.member_cluster_ids + tuple(c for n, c, _ in additions if n == ng.node_group_id))
            for ng in group.node_groups
        )
        grown = replace(group, node_groups=node_groups)
        return self._start_modifying(
            grown, f"Increasing replica count of {group.group_id}: adding {', '.join(c for _, c, _ in additions)}",
            self._begin(grown, OperationKind.MODIFY), records=new_clusters,
        )

    def decrease(self, region: Region, request: ReplicaCountRequest) -> ReplicationGroup:
        if request.replicas_to_remove:
            group = self._group(region, request.group_id)
            self._require_status(group, GroupStatus.AVAILABLE, action="changed")
            removals = []
            for cluster_id in request.replicas_to_remove:
                node_group = group.node_group_of(cluster_id)
                if node_group is None:
                    raise InvalidParameterValue(f"{cluster_id} is not a member of replication group {group.group_id}.")
                if cluster_id == node_group.primary_cluster_id:
                    raise InvalidParameterValue(
                        f"{cluster_id} is the primary of node group {node_group.node_group_id}; ReplicasToRemove must "
                        "name replicas."
                    )
                removals.append(cluster_id)
        else:
            group, wanted = self._targets(region, request)
            subnet_group = self._subnet_groups.get(region, group.subnet_group_name)
            clusters = {c.cluster_id: c for c in self._members(group)}
            removals = []
            for node_group in group.node_groups:
                if node_group.node_group_id not in wanted:
                    continue
                count, zones = wanted[node_group.node_group_id]
                replicas = [clusters[c] for c in node_group.replica_cluster_ids if c in clusters]
                keep = _replicas_to_keep(replicas, [subnet_zone(region, z, subnet_group) or "" for z in zones], count)
                removals += sorted(c.cluster_id for c in replicas if c.cluster_id not in keep)
        _check_minimum_replicas(group, removals)
        members = {c.cluster_id: c for c in self._members(group)}
        return self._start_modifying(
            group, f"Decreasing replica count of {group.group_id}: removing {', '.join(removals)}",
            self._begin(group, OperationKind.MODIFY),
            records=[deleting_cluster(members[cluster_id]) for cluster_id in removals],
        )

    def _targets(self, region: Region, request: ReplicaCountRequest) -> tuple[ReplicationGroup, dict[str, tuple[int, Sequence[str]]]]:
        """The replica count wanted per node group, checked against the current counts."""
        group = self._group(region, request.group_id)
        self._require_status(group, GroupStatus.AVAILABLE, action="changed")
        wanted: dict[str, tuple[int, Sequence[str]]] = {}
        if request.new_replica_count is not None:
            for node_group in group.node_groups:
                wanted[node_group.node_group_id] = (request.new_replica_count, ())
        for ng_id, count, zones in request.configuration:
            if group.node_group(ng_id) is None:
                raise NotFound(f"Node group {ng_id} not found in replication group {group.group_id}.", resource="NodeGroup")
            wanted[ng_id] = (count, zones)
        for ng_id, (count, _) in wanted.items():
            found = group.node_group(ng_id)
            assert found is not None
            have = len(found.replica_cluster_ids)
            if request.increase and count <= have:
                raise InvalidParameterValue(
                    f"Node group {ng_id} already has {have} replica(s); IncreaseReplicaCount needs a NewReplicaCount "
                    f"above that."
                )
            if not request.increase and count >= have:
                raise InvalidParameterValue(
                    f"Node group {ng_id} has {have} replica(s); DecreaseReplicaCount needs a NewReplicaCount below that."
                )
        return group, wanted

    def _free_member_id(self, group: ReplicationGroup, node_group: str, taken: set[str]) -> str:
        number = 1
        while True:
            candidate = (
                sharded_member_id(group.group_id, node_group, number)
                if group.cluster_enabled
                else identifiers.member_cluster_id(group.group_id, number)
            )
            if candidate not in taken and self._store.get(CacheCluster, group.region, candidate) is None:
                return candidate
            number += 1


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
