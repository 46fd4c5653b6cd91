"""A replication group's own workflow: its cluster-mode-disabled topology (a primary, its replicas,
the primary and reader endpoints), settling it ``available``, and deleting it (either mode).

Cluster mode enabled topology is ``sharded.py``'s; failovers are ``failover.py``'s. Every step
is idempotent: a pass looks at the records and the nodes and takes the next steps.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from cachefleet.control.nodes import Nodes, node_key
from cachefleet.control.scheduler import Retry
from cachefleet.domain import global_datastores
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus
from cachefleet.domain.events import event_for
from cachefleet.domain.migrations import Migration, upstream
from cachefleet.domain.operations import OperationKind
from cachefleet.domain.replication_groups import GroupStatus, NodeGroup, ReplicationGroup
from cachefleet.providers.local import NodeStartFailed

log = logging.getLogger(__name__)

# Operations that keep a group modifying until the workflow that owns them ends them.
_OWNED_ELSEWHERE = (
    OperationKind.RESHARD, OperationKind.FAILOVER, OperationKind.NODE_TYPE, OperationKind.UPGRADE, OperationKind.ACCESS,
)


class ReplicationGroupWorkflow:
    """A group's own steps: cluster-mode-disabled topology and endpoints, settling, deleting, failing."""

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes

    # ------------------------------------------------------------------ cluster mode disabled
    async def reconcile_node_group(
        self, group: ReplicationGroup, node_group: NodeGroup, members: dict[str, CacheCluster]
    ) -> None:
        nodes = self.nodes
        primary = members.get(node_group.primary_cluster_id)
        if primary is None:
            raise Retry(1.0, f"primary {node_group.primary_cluster_id} of {group.group_id} has no record")
        async with nodes.global_roles(group.global_replication_group_id):
            # A migrating group's primary follows the customer's node (domain/migrations.py), whoever it
            # is; a global datastore's secondary's primary follows the primary region's primary. Its
            # role as stored now, under the global datastore's lock: a failover may have swapped it
            # since this pass began.
            current = nodes.current(group) or group
            leader = global_datastores.upstream(nodes.store, current)
            follows = (leader.node.address, leader.port) if leader is not None else None
            if follows is None and current.global_role == global_datastores.MemberRole.SECONDARY:
                raise Retry(0.5, f"{group.group_id} waits for the primary node of its global datastore")
            source_of_primary = follows or upstream(nodes.store.get(Migration, group.region, group.group_id))
            try:
                await nodes.ensure_running(primary, replica_of=source_of_primary)
            except NodeStartFailed as failure:
                await nodes.node_failed(group, primary, str(failure))
                return
            await nodes.follow(primary, follows)
        source = (primary.node.address, primary.port)
        replicas = [members[cid] for cid in node_group.replica_cluster_ids if cid in members]
        # A group being created holds no data its readers could miss: its reader endpoint
        # waits for a replica instead of going to the primary and straight off it again.
        creating = group.status == GroupStatus.CREATING and bool(replicas)
        reader_homeless = not creating and await self._reader_homeless(node_group, primary, replicas)
        if reader_homeless or (
            node_group.primary_endpoint and node_group.primary_endpoint not in await nodes.bound(primary)
        ):
            # Before replicas start: their full sync makes the primary fork, and a fork is no
            # time to change what it listens on (see Nodes.set_binds). The reader endpoint waits
            # on the primary while no replica holds it (a replica takes it once in sync).
            await self._place_endpoints(node_group, primary, [], [], reader=False, reader_on_primary=reader_homeless)
        live = [c for c in replicas if c.status not in (ClusterStatus.DELETING, ClusterStatus.CREATE_FAILED)]
        started = await nodes.ensure_all(group, live, replica_of=source)

        # Only a replica that finished its full sync (this process of it) may serve reads.
        synced, pending = [], []
        for cluster in started:
            key = node_key(cluster)
            pid = nodes.provider.pid(key)
            if pid is not None and nodes.observed.synced.get(key) == pid:
                synced.append(cluster)
            elif await nodes.in_sync(cluster, source):
                nodes.observed.synced[key] = pid or 0
                synced.append(cluster)
            else:
                pending.append(cluster.cluster_id)

        leaving = [c for c in replicas if c not in started and nodes.running(c)]
        await self._place_endpoints(
            node_group, primary, started, leaving, readers=synced, reader=bool(synced) or not (creating and started)
        )
        for cluster in replicas:
            if cluster.status == ClusterStatus.DELETING:
                await nodes.destroy(cluster, group=group)
        nodes.mark_available(primary)
        for cluster in synced:
            nodes.mark_available(cluster)
        nodes.note_sync(synced, None)
        if pending:
            # A sync the primary cannot serve (its disk full) is said, and looked at less often.
            waiting = [members[cid] for cid in pending]
            blocked = await nodes.sync_blocked(primary) if nodes.syncing_long(waiting) else None
            if blocked is not None:
                nodes.note_sync(waiting, blocked)
                raise Retry(1.0, blocked)
            raise Retry(0.005, "")

    async def _reader_homeless(self, node_group: NodeGroup, primary: CacheCluster, replicas: list[CacheCluster]) -> bool:
        """True when no running node of the shard listens on its reader endpoint."""
        if not node_group.reader_endpoint:
            return False
        for cluster in [primary, *replicas]:
            if self.nodes.running(cluster) and node_group.reader_endpoint in await self.nodes.bound(cluster):
                return False
        return True

    async def _place_endpoints(
        self,
        node_group: NodeGroup,
        primary: CacheCluster,
        replicas: list[CacheCluster],
        leaving: list[CacheCluster],
        *,
        reader: bool = True,
        reader_on_primary: bool = False,
        readers: list[CacheCluster] | None = None,
    ) -> None:
        """Binds the primary endpoint on the primary and the reader endpoint on a replica.

        The reader endpoint goes to one of ``readers`` (default: the replicas), preferably the
        one holding it, or to the primary while there is none. Nodes that are ``leaving`` (being
        deleted, failed) keep only their own address. With ``reader`` false, only the primary's
        addresses are looked at: it keeps whatever reader endpoint it holds, or takes it if
        ``reader_on_primary``.
        """
        nodes = self.nodes
        desired: dict[str, tuple[CacheCluster, list[str]]] = {node_key(primary): (primary, [primary.node.address])}
        for replica in [*replicas, *leaving]:
            desired[node_key(replica)] = (replica, [replica.node.address])
        if node_group.primary_endpoint:
            desired[node_key(primary)][1].append(node_group.primary_endpoint)
        if not reader:
            if node_group.reader_endpoint and (
                reader_on_primary or node_group.reader_endpoint in await nodes.bound(primary)
            ):
                desired[node_key(primary)][1].append(node_group.reader_endpoint)
        elif node_group.reader_endpoint:
            candidates = replicas if readers is None else readers
            holder = primary
            if candidates:
                current = [r for r in candidates if node_group.reader_endpoint in await nodes.bound(r)]
                holder = current[0] if current else candidates[0]
            desired[node_key(holder)][1].append(node_group.reader_endpoint)
        await nodes.place(desired)

    async def associate(self, group: ReplicationGroup) -> bool:
        """A secondary joining its global datastore is ``associating`` until its primary has the
        primary region's primary's data (it follows that node, the full sync done, the link up); then
        its membership is ``associated``, with an event. True while it still waits."""
        nodes = self.nodes
        if global_datastores.joining(nodes.store, group) is None:
            return False
        leader = global_datastores.upstream(nodes.store, group)
        primary = nodes.members(group).get(group.node_groups[0].primary_cluster_id)
        if leader is None or primary is None or not nodes.running(primary):
            return True
        if not await nodes.in_sync(primary, (leader.node.address, leader.port)):
            return True
        record = global_datastores.joining(nodes.store, group)  # again: the await let other work write it
        if record is None:
            return False
        updated = global_datastores.associated(record, group.region, group.group_id)
        with nodes.store.transaction() as tx:
            tx.put(updated)
            tx.add_event(event_for(
                group, f"Replication group {group.group_id} is associated with global replication group "
                       f"{record.global_id}: its primary {primary.cluster_id} is in sync with {leader.cluster_id} "
                       f"({leader.region})", nodes.clock.now(),
            ))
        log.info("%s/%s associated with global datastore %s", group.region, group.group_id, record.global_id)
        return False

    # ------------------------------------------------------------------ both cluster modes
    def settle(self, group: ReplicationGroup) -> None:
        """A creating or modifying group whose work is all done becomes available."""
        nodes = self.nodes
        current = nodes.current(group)
        if current is None or current.status not in (GroupStatus.CREATING, GroupStatus.MODIFYING):
            return
        if any(nodes.operation(current, kind) is not None for kind in _OWNED_ELSEWHERE):
            return  # work in progress; the pass that finishes it settles the group
        members = nodes.members(current)
        if any(c.status not in (ClusterStatus.AVAILABLE, ClusterStatus.CREATE_FAILED) for c in members.values()):
            return
        if len(members) != len(current.member_cluster_ids):
            return
        if current.status == GroupStatus.CREATING and global_datastores.joining(nodes.store, current) is not None:
            return  # a new secondary is available once it has the primary region's data (associate)
        node_group = current.node_groups[0]
        # A group whose primary follows a migration's source goes back to migrating (after a failover, say).
        migrating = upstream(nodes.store.get(Migration, current.region, current.group_id)) is not None
        updated = replace(current, status=GroupStatus.MIGRATING if migrating else GroupStatus.AVAILABLE)
        with nodes.store.transaction() as tx:
            tx.put(updated)
            for kind in (OperationKind.CREATE, OperationKind.MODIFY):
                operation = nodes.operation(current, kind)
                if operation is not None:
                    tx.delete(operation)
            if current.status == GroupStatus.CREATING and current.cluster_enabled:
                message = (
                    f"Replication group {current.group_id} created and available: {len(current.node_groups)} node "
                    f"group(s), configuration endpoint {current.configuration_endpoint}:{current.port}"
                )
            elif current.status == GroupStatus.CREATING:
                message = (
                    f"Replication group {current.group_id} created and available: primary endpoint "
                    f"{node_group.primary_endpoint}:{current.port}, reader endpoint "
                    f"{node_group.reader_endpoint}:{current.port}"
                )
            elif migrating:
                message = f"Replication group {current.group_id} modified; it is migrating again"
            else:
                message = f"Replication group {current.group_id} modified and available"
            tx.add_event(event_for(updated, message, nodes.clock.now()))

    async def stop_failed(self, group: ReplicationGroup) -> None:
        """A create-failed group's nodes stay stopped."""
        for cluster in self.nodes.members(group).values():
            await self.nodes.stop(cluster)

    async def delete(self, group: ReplicationGroup) -> None:
        nodes = self.nodes
        members = nodes.members(group)
        retained = group.node_groups[0].primary_cluster_id if group.retain_primary_cluster else None
        for cluster in members.values():
            if cluster.cluster_id != retained:
                await nodes.destroy(cluster, group=None)
        keep = members.get(retained) if retained else None
        if keep is not None and nodes.running(keep):
            await nodes.set_binds(keep, [keep.node.address])
        with nodes.store.transaction() as tx:
            if keep is not None:
                # A standalone cluster keeps its group's locks: its clients keep working.
                standalone = replace(keep, replication_group_id=None, node_group_id=None, status=ClusterStatus.AVAILABLE,
                                     security=group.security)
                tx.put(standalone)
                tx.add_event(
                    event_for(
                        standalone,
                        f"Cache cluster {keep.cluster_id} left replication group {group.group_id} and is now standalone",
                        nodes.clock.now(),
                    )
                )
            for kind in OperationKind:
                operation = nodes.operation(group, kind)
                if operation is not None:
                    tx.delete(operation)
            migration = nodes.store.get(Migration, group.region, group.group_id)
            if migration is not None:
                tx.delete(migration)  # a TestMigration under way when the group was deleted
            tx.delete(group)
            tx.add_event(event_for(group, f"Replication group {group.group_id} deleted", nodes.clock.now()))

    async def fail(self, group: ReplicationGroup, reason: str) -> None:
        """A group's work could not finish (its deadline passed): creation fails; a modification
        ends with the group available again and the members that never came up failed."""
        nodes = self.nodes
        if group.status == GroupStatus.CREATING:
            await nodes.fail_group_creation(group, f"Replication group {group.group_id} did not become available: {reason}")
            return
        members = nodes.members(group)
        stuck = [c for c in members.values() if c.status == ClusterStatus.CREATING]
        for cluster in stuck:
            await nodes.stop(cluster)
        with nodes.store.transaction() as tx:
            for cluster in stuck:
                tx.put(replace(cluster, status=ClusterStatus.CREATE_FAILED, status_reason=reason))
            operation = nodes.operation(group, OperationKind.MODIFY)
            if operation is not None:
                tx.delete(operation)
            tx.add_event(event_for(group, f"Modification of replication group {group.group_id} did not finish: {reason}",
                                   nodes.clock.now()))
