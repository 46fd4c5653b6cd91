"""High availability: automatic failover and Multi-AZ settings, TestFailover, RebootCacheCluster.

The reconciler detects lost primaries and fails over on its own; these use cases record the
settings it obeys, and the planned failovers (test, reboot, switchover) it must carry out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cachefleet.domain import identifiers
from cachefleet.domain.base import UseCases
from cachefleet.domain.errors import (
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidState,
    NotAvailable,
    NotFound,
    RateExceeded,
)
from cachefleet.domain.model import (
    CacheCluster,
    ClusterStatus,
    EventSourceType,
    FailoverKind,
    FailoverRequest,
    GroupStatus,
    NodeStatus,
    Region,
    ReplicationGroup,
)

TEST_FAILOVER_WINDOW = dt.timedelta(hours=24)
TEST_FAILOVERS_PER_WINDOW = 15  # ElastiCache: up to 15 node groups in any rolling 24 hours
TEST_FAILOVER_EVENT = "Test Failover API called for node group"


def check_failover_settings(*, automatic: bool, multi_az: bool, replicas_per_node_group: list[int]) -> None:
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


class Availability(UseCases):
    def modify_settings(self, group: ReplicationGroup, params: Mapping[str, Any]) -> dict[str, Any]:
        """Changes to AutomaticFailover / MultiAZ asked by ModifyReplicationGroup (as record fields)."""
        automatic = params.get("AutomaticFailoverEnabled", group.automatic_failover == "enabled")
        multi_az = params.get("MultiAZEnabled", group.multi_az == "enabled")
        if group.cluster_enabled and not automatic:
            raise InvalidParameterCombination(
                "A cluster mode enabled replication group always has automatic failover; it cannot be disabled."
            )
        check_failover_settings(
            automatic=automatic,
            multi_az=multi_az,
            replicas_per_node_group=[len(ng.replica_cluster_ids) for ng in group.node_groups],
        )
        return {
            "automatic_failover": "enabled" if automatic else "disabled",
            "multi_az": "enabled" if multi_az else "disabled",
        }

    def switchover(self, group: ReplicationGroup, primary_id: str) -> ReplicationGroup:
        """ModifyReplicationGroup PrimaryClusterId: make that replica the primary, losing nothing."""
        cluster_id = identifiers.cache_cluster_id(primary_id)
        node_group = next((ng for ng in group.node_groups if cluster_id in ng.member_cluster_ids), None)
        if node_group is None:
            raise InvalidParameterValue(f"{cluster_id} is not a member of replication group {group.group_id}.")
        if node_group.primary_cluster_id == cluster_id:
            return group
        self._require_group_status(group, GroupStatus.AVAILABLE, action="switched over")
        target = self._cluster(group.region, cluster_id)
        if target.status != ClusterStatus.AVAILABLE:
            raise InvalidState(f"Cache cluster {cluster_id} is {target.status}; it can become primary once available.",
                               resource="CacheCluster")
        request = FailoverRequest(node_group.node_group_id, FailoverKind.SWITCHOVER, cluster_id)
        return self._start_modifying(
            group, f"Switching the primary of replication group {group.group_id} to {cluster_id}", failover_request=request
        )

    def test_failover(self, region: Region, params: Mapping[str, Any]) -> ReplicationGroup:
        group = self._group(region, params["ReplicationGroupId"])
        node_group_id = params["NodeGroupId"]
        node_group = group.node_group(node_group_id)
        if node_group is None:
            raise NotFound(
                f"Node group {node_group_id} not found in replication group {group.group_id} "
                f"(it has {', '.join(ng.node_group_id for ng in group.node_groups)}).",
                resource="NodeGroup",
            )
        if group.automatic_failover != "enabled":
            raise InvalidState(
                f"Replication group {group.group_id} does not have automatic failover enabled; TestFailover needs it.",
                resource="ReplicationGroup",
            )
        if group.failover_request is not None or group.status == GroupStatus.MODIFYING:
            raise NotAvailable(
                f"A failover or recovery is already in progress in replication group {group.group_id}; "
                "call TestFailover again once it is available.",
                resource="TestFailover",
            )
        self._require_group_status(group, GroupStatus.AVAILABLE, action="failed over")
        members = {c.cluster_id: c for c in self._members(group)}
        ready = [c for c in node_group.replica_cluster_ids if c in members and members[c].status == ClusterStatus.AVAILABLE]
        if not ready:
            raise NotAvailable(
                f"Node group {node_group_id} has no available replica to fail over to.", resource="TestFailover"
            )
        now = self._clock.now()
        recent = [
            e
            for e in self._store.events(
                region, start=now - TEST_FAILOVER_WINDOW, end=now, source_type=EventSourceType.REPLICATION_GROUP
            )
            if e.message.startswith(TEST_FAILOVER_EVENT)
        ]
        if len(recent) >= TEST_FAILOVERS_PER_WINDOW:
            raise RateExceeded(
                f"TestFailover was called {len(recent)} times in the last 24 hours, the most allowed; try again later.",
                resource="TestFailover",
            )
        return self._start_modifying(
            group, f"{TEST_FAILOVER_EVENT} {node_group_id}", failover_request=FailoverRequest(node_group_id, FailoverKind.TEST)
        )

    def reboot_cache_cluster(self, region: Region, params: Mapping[str, Any]) -> CacheCluster:
        cluster = self._cluster(region, params["CacheClusterId"])
        nodes = list(params["CacheNodeIdsToReboot"])
        unknown = [n for n in nodes if n != cluster.node.node_id]
        if unknown or not nodes:
            raise InvalidParameterValue(
                f"Cache cluster {cluster.cluster_id} has node {cluster.node.node_id}; CacheNodeIdsToReboot "
                f"{', '.join(unknown) or '(empty)'} is not one of its nodes."
            )
        if cluster.status != ClusterStatus.AVAILABLE:
            raise InvalidState(
                f"Cache cluster {cluster.cluster_id} is {cluster.status}; it can be rebooted once it is available.",
                resource="CacheCluster",
            )
        rebooting = replace(cluster, status=ClusterStatus.REBOOTING, node=replace(cluster.node, status=NodeStatus.REBOOTING))
        group = self._store.get(ReplicationGroup, region, cluster.replication_group_id) if cluster.replication_group_id else None
        if group is not None:
            self._require_group_status(group, GroupStatus.AVAILABLE, action="rebooting one of its nodes")
        node_group = next((ng for ng in group.node_groups if cluster.cluster_id in ng.member_cluster_ids), None) if group else None
        with self._store.transaction() as tx:
            tx.put(rebooting)
            self._event(tx, cluster, f"Rebooting cache node {cluster.node.node_id} of cache cluster {cluster.cluster_id}")
            if (
                group is not None
                and node_group is not None
                and node_group.primary_cluster_id == cluster.cluster_id
                and group.automatic_failover == "enabled"
                and group.failover_request is None
            ):
                # A rebooted primary fails over first, as on ElastiCache with automatic failover.
                tx.put(
                    replace(
                        group,
                        status=GroupStatus.MODIFYING,
                        failover_request=FailoverRequest(node_group.node_group_id, FailoverKind.REBOOT),
                    )
                )
        self._changed(rebooting)
        return rebooting
