"""A standalone cache cluster's workflow: its one node runs, restarts when it dies or hangs,
reboots when asked, and is deleted."""

from __future__ import annotations

from dataclasses import replace

from cachefleet.control.nodes import Nodes, node_key
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus
from cachefleet.domain.events import event_for
from cachefleet.domain.operations import OperationKind
from cachefleet.providers.local import NodeStartFailed


class CacheClusterWorkflow:
    """Keeps a standalone cache cluster's one node running, rebooted and deleted as its record says."""

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes

    async def reconcile(self, cluster: CacheCluster) -> None:
        nodes = self.nodes
        if cluster.status == ClusterStatus.DELETING:
            await nodes.destroy(cluster, group=None)
            return
        if cluster.status == ClusterStatus.CREATE_FAILED:
            await nodes.stop(cluster)
            return
        if cluster.status == ClusterStatus.REBOOTING:
            await nodes.reboot(cluster)
        if nodes.running(cluster) and not nodes.health.healthy(node_key(cluster)):
            await nodes.fence_hung(cluster, "restarting it")
        try:
            await nodes.ensure_running(cluster, replica_of=None)
        except NodeStartFailed as failure:
            await nodes.node_failed(None, cluster, str(failure))
            return
        nodes.mark_available(cluster)
        operation = nodes.operation(cluster, OperationKind.CREATE)
        if operation is not None:
            with nodes.store.transaction() as tx:
                tx.delete(operation)
        nodes.watch(cluster)

    async def fail(self, cluster: CacheCluster, reason: str) -> None:
        nodes = self.nodes
        await nodes.stop(cluster)
        with nodes.store.transaction() as tx:
            tx.put(replace(cluster, status=ClusterStatus.CREATE_FAILED, status_reason=reason))
            operation = nodes.operation(cluster, OperationKind.CREATE)
            if operation is not None:
                tx.delete(operation)
            tx.add_event(event_for(cluster, f"Cache cluster {cluster.cluster_id} create-failed: {reason}", nodes.clock.now()))
