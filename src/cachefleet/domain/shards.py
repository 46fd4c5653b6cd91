"""Resharding a cluster mode enabled group online (ModifyReplicationGroupShardConfiguration).

The use case records the desired shape: new node groups (their members ``creating``), a slot
plan in a RESHARD operation (where every slot must end up, which node groups leave) and the
group ``modifying``; the reconciler moves slots with their keys while clients keep working,
then stops the node groups that own nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cachefleet.domain import slots
from cachefleet.domain.base import DEFAULT_PORT, Dependencies
from cachefleet.domain.cache_clusters import CacheCluster, ParameterGroupLookup, SubnetGroupLookup
from cachefleet.domain.errors import (
    AlreadyExists,
    InvalidParameterCombination,
    InvalidParameterValue,
    NotFound,
    QuotaExceeded,
)
from cachefleet.domain.identifiers import Region
from cachefleet.domain.operations import OperationKind, Resharding
from cachefleet.domain.replication_groups import (
    MAX_NODE_GROUPS,
    GroupStatus,
    GroupUseCases,
    NodeGroup,
    ReplicationGroup,
    check_node_quotas,
    new_member,
    node_group_id,
    sharded_member_id,
    subnet_zone,
)


def require_apply_immediately(params: Mapping[str, Any]) -> None:
    if params.get("ApplyImmediately") is not True:
        raise InvalidParameterValue("ApplyImmediately must be true: shard and replica changes are applied online, at once.")


@dataclass(frozen=True)
class ShardConfigurationRequest:
    """ModifyReplicationGroupShardConfiguration, checked."""

    group_id: str
    node_group_count: int
    to_remove: tuple[str, ...]
    to_retain: tuple[str, ...]
    named_new: tuple[str, ...]  # NodeGroupIds that ReshardingConfiguration names
    zones: tuple[tuple[str, tuple[str, ...]], ...]  # node group -> PreferredAvailabilityZones
    configurations: int  # how many ReshardingConfiguration items were given

    @classmethod
    def parse(cls, region: Region, params: Mapping[str, Any]) -> ShardConfigurationRequest:
        require_apply_immediately(params)
        count = params["NodeGroupCount"]
        if not 1 <= count:
            raise InvalidParameterValue(f"Invalid NodeGroupCount {count}: a cluster keeps at least one node group.")
        if count > MAX_NODE_GROUPS:
            raise QuotaExceeded(f"A cluster can have at most {MAX_NODE_GROUPS} node groups.", resource="NodeGroup")
        resharding = [dict(item) for item in params.get("ReshardingConfiguration") or []]
        for index, item in enumerate(resharding, 1):
            # Zones are matched to node groups by NodeGroupId: without it they could only be dropped.
            if item.get("PreferredAvailabilityZones") and not item.get("NodeGroupId"):
                raise InvalidParameterCombination(
                    f"ReshardingConfiguration.member.{index} gives PreferredAvailabilityZones without a NodeGroupId; "
                    "name the node group the zones are for."
                )
        named = tuple(node_group_id(r["NodeGroupId"]) for r in resharding if r.get("NodeGroupId"))
        zones = tuple(
            (node_group_id(r["NodeGroupId"]),
             tuple(subnet_zone(region, z) or "" for z in r.get("PreferredAvailabilityZones") or []))
            for r in resharding if r.get("NodeGroupId")
        )
        return cls(
            group_id=params["ReplicationGroupId"],
            node_group_count=count,
            to_remove=tuple(node_group_id(n, parameter="node group id") for n in params.get("NodeGroupsToRemove") or []),
            to_retain=tuple(node_group_id(n, parameter="node group id") for n in params.get("NodeGroupsToRetain") or []),
            named_new=named,
            zones=zones,
            configurations=len(resharding),
        )


class Shards(GroupUseCases):
    """ModifyReplicationGroupShardConfiguration: node groups added or removed, slots rebalanced."""

    def __init__(
        self, deps: Dependencies, *, subnet_groups: SubnetGroupLookup, parameter_groups: ParameterGroupLookup
    ) -> None:
        super().__init__(deps)
        self._subnet_groups = subnet_groups
        self._parameter_groups = parameter_groups

    def modify_shard_configuration(self, region: Region, request: ShardConfigurationRequest) -> ReplicationGroup:
        group = self._group(region, request.group_id)
        if not group.cluster_enabled:
            raise InvalidParameterCombination(
                f"Replication group {group.group_id} has cluster mode disabled; only cluster mode enabled groups "
                "have shards to add or remove."
            )
        self._require_status(group, GroupStatus.AVAILABLE, action="resharded")
        count = request.node_group_count
        current = [ng.node_group_id for ng in group.node_groups]
        remove = self._node_groups_to_remove(group, request)
        if request.configurations and request.configurations != count:
            raise InvalidParameterCombination(
                f"ReshardingConfiguration lists {request.configurations} node groups but NodeGroupCount is {count}; "
                "describe every node group of the resulting cluster, or omit it."
            )
        new_ids: list[str] = []
        if count > len(current):
            new_ids = [n for n in request.named_new if n not in current]
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
        subnet_group = self._subnet_groups.get(region, group.subnet_group_name)
        zones_for = {ng: [subnet_zone(region, z, subnet_group) or "" for z in zs] for ng, zs in request.zones}
        replicas = len(group.node_groups[0].replica_cluster_ids)
        for new_id in new_ids:
            wanted = zones_for.get(new_id, [])
            if wanted and len(wanted) != 1 + replicas:
                raise InvalidParameterValue(
                    f"ReshardingConfiguration of new node group {new_id} lists {len(wanted)} zone(s), but "
                    f"its nodes are a primary and {replicas} replica(s): give {1 + replicas} zones, the primary's first."
                )
        added = len(new_ids) * (1 + replicas)
        check_node_quotas(self._store, region, added, cluster_total=len(group.member_cluster_ids) + added,
                          limit=self._deps.max_nodes)
        now = self._clock.now()
        new_clusters: list[CacheCluster] = []
        new_groups: list[NodeGroup] = []
        # A warm node runs without parameters: it can serve a group whose static parameters are the defaults.
        warmable = group.port == DEFAULT_PORT and self._parameter_groups.static_defaults(region, group.parameter_group_name)
        warm = self._warm.take(group.engine, group.engine_version, len(new_ids)) if warmable else []
        try:
            fresh = iter(self._allocate(added - len(warm), also_used=warm))
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
                    new_clusters.append(new_member(group, cluster_id, new_id, zones[number - 1], address, now=now))
                    members.append(cluster_id)
                new_groups.append(NodeGroup(new_id, members[0], tuple(members), slots=""))
            plan = Resharding(
                target_slots=tuple((name, slots.format_ranges(target[name])) for name in final),
                total_slots=to_move,
                removing=tuple(remove),
                adding=tuple(new_ids),
            )
            change = (
                f"{len(current)} -> {count} node groups"
                + (f", adding {', '.join(new_ids)}" if new_ids else "")
                + (f", removing {', '.join(remove)}" if remove else "")
            )
            grown = replace(group, node_groups=group.node_groups + tuple(new_groups))
            updated = self._start_modifying(
                grown, f"Resharding replication group {group.group_id}: {change}; {to_move} slots to move",
                self._begin(grown, OperationKind.RESHARD, resharding=plan),
                records=new_clusters,
            )
        except BaseException:
            self._warm.give_back(warm)
            raise
        return updated

    @staticmethod
    def _node_groups_to_remove(group: ReplicationGroup, request: ShardConfigurationRequest) -> list[str]:
        current = [ng.node_group_id for ng in group.node_groups]
        count = request.node_group_count
        if count >= len(current):
            if request.to_remove or request.to_retain:
                raise InvalidParameterCombination(
                    "NodeGroupsToRemove and NodeGroupsToRetain apply only when NodeGroupCount is lower than the "
                    f"current {len(current)} node groups."
                )
            return []
        if bool(request.to_remove) == bool(request.to_retain):
            raise InvalidParameterValue(
                f"Going from {len(current)} to {count} node groups: name the node groups to remove with "
                "NodeGroupsToRemove, or those to keep with NodeGroupsToRetain (one of the two)."
            )
        named: Sequence[str] = request.to_remove or request.to_retain
        unknown = [n for n in named if n not in current]
        if unknown:
            raise NotFound(
                f"Node group(s) {', '.join(unknown)} not found in replication group {group.group_id} "
                f"(it has {', '.join(current)}).",
                resource="NodeGroup",
            )
        remove = list(named) if request.to_remove else [n for n in current if n not in named]
        if len(current) - len(remove) != count:
            raise InvalidParameterCombination(
                f"Removing {len(remove)} of {len(current)} node groups leaves {len(current) - len(remove)}, "
                f"not NodeGroupCount {count}."
            )
        if len(remove) >= len(current):
            raise InvalidParameterValue("A cluster keeps at least one node group; do not remove all of them.")
        return remove
