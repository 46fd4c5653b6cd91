"""Planned failovers and reboots: TestFailover and RebootCacheCluster.

The reconciler detects lost primaries and fails over on its own (the group's AutomaticFailover
setting, see ``replication_groups.py``); these use cases record the planned failovers it must
carry out, as FAILOVER operations.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace

from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus, NodeStatus
from cachefleet.domain.errors import InvalidParameterValue, InvalidState, NotAvailable, NotFound, RateExceeded
from cachefleet.domain.events import EventSourceType
from cachefleet.domain.identifiers import Region
from cachefleet.domain.operations import FailoverKind, FailoverRequest, OperationKind
from cachefleet.domain.replication_groups import GroupStatus, GroupUseCases, ReplicationGroup

TEST_FAILOVER_WINDOW = dt.timedelta(hours=24)
TEST_FAILOVERS_PER_WINDOW = 15  # ElastiCache: up to 15 node groups in any rolling 24 hours
TEST_FAILOVER_EVENT = "Test Failover API called for node group"


class Availability(GroupUseCases):
    """TestFailover and RebootCacheCluster."""

    def test_failover(self, region: Region, group_id: str, node_group_id: str) -> ReplicationGroup:
        group = self._group(region, group_id)
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
        if self._operation(group, OperationKind.FAILOVER) is not None or group.status == GroupStatus.MODIFYING:
            raise NotAvailable(
                f"A failover or recovery is already in progress in replication group {group.group_id}; "
                "call TestFailover again once it is available.",
                resource="TestFailover",
            )
        self._require_status(group, GroupStatus.AVAILABLE, action="failed over")
        members = {c.cluster_id: c for c in self._members(group)}
        ready = [c for c in node_group.replica_cluster_ids if c in members and members[c].status == ClusterStatus.AVAILABLE]
        if not ready:
            raise NotAvailable(f"Node group {node_group_id} has no available replica to fail over to.", resource="TestFailover")
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
            group, f"{TEST_FAILOVER_EVENT} {node_group_id}",
            self._begin(group, OperationKind.FAILOVER, failover=FailoverRequest(node_group_id, FailoverKind.TEST)),
        )

    def reboot_cache_cluster(self, region: Region, cluster_id: str, node_ids: Sequence[str]) -> CacheCluster:
        cluster = self._get(CacheCluster, region, cluster_id)
        unknown = [n for n in node_ids if n != cluster.node.node_id]
        if unknown or not node_ids:
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
            self._require_status(group, GroupStatus.AVAILABLE, action="rebooting one of its nodes")
        node_group = group.node_group_of(cluster.cluster_id) if group is not None else None
        with self._store.transaction() as tx:
            tx.put(rebooting)
            self._event(tx, cluster, f"Rebooting cache node {cluster.node.node_id} of cache cluster {cluster.cluster_id}")
            if (
                group is not None
                and node_group is not None
                and node_group.primary_cluster_id == cluster.cluster_id
                and group.automatic_failover == "enabled"
                and self._operation(group, OperationKind.FAILOVER) is None
            ):
                # A rebooted primary fails over first, as on ElastiCache with automatic failover.
                request = FailoverRequest(node_group.node_group_id, FailoverKind.REBOOT)
                tx.put(replace(group, status=GroupStatus.MODIFYING))
                tx.put(self._begin(group, OperationKind.FAILOVER, failover=request))
        self._changed(rebooting)
        return rebooting
