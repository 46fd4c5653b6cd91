"""Vertical scaling (a NODE_TYPE operation): every node of a group gets the new node type's memory
(less the reserve its parameter group asks for), if its data fits; otherwise nothing changes and
an event says why."""

from __future__ import annotations

from dataclasses import replace

from cachefleet.control.nodes import Nodes
from cachefleet.control.scheduler import Retry
from cachefleet.domain.cache_clusters import ClusterStatus
from cachefleet.domain.events import event_for
from cachefleet.domain.operations import OperationKind
from cachefleet.domain.replication_groups import ReplicationGroup


class NodeTypeWorkflow:
    """Applies a NODE_TYPE operation to every node of a group, or refuses it when the data does not fit."""

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes

    async def apply(self, group: ReplicationGroup) -> None:
        nodes = self.nodes
        operation = nodes.operation(group, OperationKind.NODE_TYPE)
        if operation is None or operation.node_type is None:
            return
        node_type = operation.node_type
        members = [c for c in nodes.members(group).values() if c.status != ClusterStatus.CREATE_FAILED]
        if not members:
            return
        # The data memory of the new node type: what the engine's maxmemory will be.
        limit = nodes.maxmemory(replace(members[0], node_type=node_type))
        if any(c.status != ClusterStatus.AVAILABLE or not nodes.running(c) for c in members):
            # The decision needs every node's figure: one that is restarting would look empty.
            raise Retry(0.1, f"scaling {group.group_id} to {node_type} waits for every node to be available")
        used = {c.cluster_id: int((await nodes.admin(c).info("memory")).get("used_memory", "0")) for c in members}
        too_big = first_too_big(used, limit)
        if too_big is not None:
            cluster_id, holds = too_big
            with nodes.store.transaction() as tx:
                tx.delete(operation)
                tx.add_event(
                    event_for(
                        group,
                        f"Scaling replication group {group.group_id} to {node_type} failed: node of {cluster_id} "
                        f"holds {holds} bytes, more than the {limit} bytes of data memory of {node_type} (its memory "
                        f"less the reserved memory of parameter group {group.parameter_group_name}); it stays "
                        f"{group.node_type}",
                        nodes.clock.now(),
                    )
                )
            return
        for cluster in members:
            await nodes.admin(cluster).config_set("maxmemory", str(limit))
        with nodes.store.transaction() as tx:
            for cluster in nodes.members(group).values():
                tx.put(replace(cluster, node_type=node_type))
            tx.put(replace(group, node_type=node_type))
            tx.delete(operation)
            tx.add_event(event_for(group, f"Replication group {group.group_id} scaled to {node_type}", nodes.clock.now()))

    def fail(self, group: ReplicationGroup, reason: str) -> None:
        nodes = self.nodes
        operation = nodes.operation(group, OperationKind.NODE_TYPE)
        if operation is None:
            return
        with nodes.store.transaction() as tx:
            tx.delete(operation)
            tx.add_event(event_for(group, f"Scaling replication group {group.group_id} to {operation.node_type} "
                                          f"did not finish: {reason}; it stays {group.node_type}", nodes.clock.now()))


def first_too_big(used: dict[str, int], limit: int) -> tuple[str, int] | None:
    """The first node (by cluster id) whose data would not fit ``limit`` bytes, and what it holds."""
    for cluster_id in sorted(used):
        if used[cluster_id] > limit:
            return cluster_id, used[cluster_id]
    return None
