"""Vertical scaling (a NODE_TYPE operation): every node of a group gets the new node type's memory
(less the reserve its parameter group asks for), if its data fits; otherwise nothing changes and
an event says why."""

from __future__ import annotations

import enum
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
        # Measured on every member, never on some: a node that is restarting, being replaced or
        # still loading its full sync may be the one that holds more than the new node type has.
        used: dict[str, int] = {}
        waiting = [c for c in group.member_cluster_ids if c not in {m.cluster_id for m in members}]
        for cluster in members:
            if cluster.status != ClusterStatus.AVAILABLE or not nodes.running(cluster):
                waiting.append(cluster.cluster_id)
                continue
            admin = nodes.admin(cluster)
            if cluster.cluster_id not in group.primary_cluster_ids:
                replication = await admin.info("replication")
                if replication.get("master_link_status") != "up" or replication.get("master_sync_in_progress", "0") != "0":
                    waiting.append(cluster.cluster_id)
                    continue
            used[cluster.cluster_id] = int((await admin.info("memory")).get("used_memory", "0"))
        verdict, cluster_id = node_type_verdict(limit, used=used, waiting=waiting)
        if verdict is NodeTypeVerdict.WAIT:
            raise Retry(0.5, f"scaling {group.group_id} to {node_type} waits for {', '.join(sorted(waiting))} to be measured")
        if verdict is NodeTypeVerdict.REFUSE:
            holds = used[cluster_id]
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


class NodeTypeVerdict(enum.Enum):
    """What a pending node-type change does now."""

    WAIT = "wait"  # some member could not be measured yet
    REFUSE = "refuse"  # some member holds more than the new node type's memory
    APPLY = "apply"


def node_type_verdict(limit: int, *, used: dict[str, int], waiting: list[str]) -> tuple[NodeTypeVerdict, str]:
    """Whether the data of every member fits ``limit`` bytes (and which member does not).

    A member not measured (restarting, resyncing, replaced) may be the one that does not fit,
    so a partial view never lets the change through.
    """
    if waiting:
        return NodeTypeVerdict.WAIT, sorted(waiting)[0]
    for cluster_id, size in sorted(used.items()):
        if size > limit:
            return NodeTypeVerdict.REFUSE, cluster_id
    return NodeTypeVerdict.APPLY, ""
