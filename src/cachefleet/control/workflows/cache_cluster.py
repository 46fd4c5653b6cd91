"""A standalone cache cluster's workflow: its one node runs, restarts when it dies or hangs,
reboots when asked, changes node type (ModifyCacheCluster), and is deleted."""

from __future__ import annotations

from dataclasses import replace

from cachefleet.control.nodes import HUNG_PRIMARY_GRACE, Nodes, node_key
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus
from cachefleet.domain.events import event_for
from cachefleet.domain.operations import Operation, OperationKind
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
        if (
            nodes.running(cluster)
            and not nodes.health.healthy(node_key(cluster))
            and nodes.silent_long_enough(cluster, cluster, HUNG_PRIMARY_GRACE)
        ):
            await nodes.fence_hung(cluster, "restarting it")
        try:
            await nodes.ensure_running(cluster, replica_of=None)
        except NodeStartFailed as failure:
            await nodes.node_failed(None, cluster, str(failure))
            return
        scaling = nodes.operation(cluster, OperationKind.NODE_TYPE)
        if scaling is not None and cluster.status == ClusterStatus.MODIFYING:
            await self._scale(cluster, scaling)
        else:
            nodes.mark_available(cluster)
        operation = nodes.operation(cluster, OperationKind.CREATE)
        if operation is not None:
            with nodes.store.transaction() as tx:
                tx.delete(operation)
        nodes.watch(cluster)

    async def _scale(self, cluster: CacheCluster, operation: Operation) -> None:
        """The node gets the new node type's data memory if what it holds fits; otherwise it stays as it is."""
        nodes = self.nodes
        assert operation.node_type is not None
        limit = nodes.maxmemory(replace(cluster, node_type=operation.node_type))
        used = int((await nodes.admin(cluster).info("memory")).get("used_memory", "0"))
        if used > limit:
            updated = replace(cluster, status=ClusterStatus.AVAILABLE)
            message = (
                f"Scaling cache cluster {cluster.cluster_id} to {operation.node_type} failed: its node holds {used} "
                f"bytes, more than the {limit} bytes of data memory of {operation.node_type}; it stays {cluster.node_type}"
            )
        else:
            await nodes.admin(cluster).config_set("maxmemory", str(limit))
            updated = replace(cluster, status=ClusterStatus.AVAILABLE, node_type=operation.node_type)
            message = f"Cache cluster {cluster.cluster_id} scaled to {operation.node_type}"
        with nodes.store.transaction() as tx:
            tx.put(updated)
            tx.delete(operation)
            tx.add_event(event_for(updated, message, nodes.clock.now()))

    async def fail(self, cluster: CacheCluster, reason: str) -> None:
        nodes = self.nodes
        scaling = nodes.operation(cluster, OperationKind.NODE_TYPE)
        if scaling is not None and nodes.operation(cluster, OperationKind.CREATE) is None:
            with nodes.store.transaction() as tx:
                tx.delete(scaling)
                tx.put(replace(cluster, status=ClusterStatus.AVAILABLE))
                tx.add_event(event_for(cluster, f"Scaling cache cluster {cluster.cluster_id} to {scaling.node_type} did "
                                                f"not finish: {reason}; it stays {cluster.node_type}", nodes.clock.now()))
            return
        await nodes.stop(cluster)
        with nodes.store.transaction() as tx:
            tx.put(replace(cluster, status=ClusterStatus.CREATE_FAILED, status_reason=reason))
            operation = nodes.operation(cluster, OperationKind.CREATE)
            if operation is not None:
                tx.delete(operation)
            tx.add_event(event_for(cluster, f"Cache cluster {cluster.cluster_id} create-failed: {reason}", nodes.clock.now()))
