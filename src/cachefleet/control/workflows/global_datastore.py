"""A global datastore's own workflow: its planned failover (FailoverGlobalReplicationGroup).

Everything else a global datastore needs on the engines is its member groups' business: a
secondary's primary follows the primary region's primary (``replication_group.py`` with
``Nodes.follow``, looked at on every pass of the group). The failover, in the order that loses
no acknowledged write:

1. writes are paused on the old primary node (``CLIENT PAUSE WRITE``: writers wait, they do not fail);
2. the new primary region's primary must reach the old primary's replication offset (else the
   failover is called off and writes resume);
3. the roles swap in one transaction (the global record and both groups);
4. the new primary node stops following (``REPLICAOF NO ONE``), the old one follows it;
5. writes resume on the old primary node -- now a replica, a paused writer gets ``READONLY``
   and moves to the new primary region's primary endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from cachefleet.control.nodes import Nodes, node_key
from cachefleet.domain import global_datastores
from cachefleet.domain.cache_clusters import CacheCluster
from cachefleet.domain.events import event_for
from cachefleet.domain.global_datastores import GlobalMember, GlobalReplicationGroup
from cachefleet.domain.replication_groups import ReplicationGroup
from cachefleet.engine.admin import EngineError

log = logging.getLogger(__name__)

DRAIN_TIMEOUT = 5.0  # how long the new primary may take to reach the old primary's offset
PAUSE_MS = int(DRAIN_TIMEOUT * 1000) + 2000  # writes resume by themselves should the control plane die mid-way


class GlobalDatastoreWorkflow:
    """Carries out a global datastore's planned failover; see the module docstring."""

    def __init__(self, nodes: Nodes, kick: Callable[[ReplicationGroup], None]) -> None:
        self.nodes = nodes
        self.kick = kick  # a member group's pass runs again (its primary's role follows the records)

    def _primary_node(self, member: GlobalMember) -> tuple[ReplicationGroup, CacheCluster] | None:
        store = self.nodes.store
        group = store.get(ReplicationGroup, member.region, member.replication_group_id)
        if group is None:
            return None
        cluster = store.get(CacheCluster, member.region, group.node_groups[0].primary_cluster_id)
        return (group, cluster) if cluster is not None else None

    async def reconcile(self, record: GlobalReplicationGroup) -> None:
        if record.failover_to is None:
            return
        # The member groups' passes set no primary's role meanwhile (Nodes.global_roles).
        async with self.nodes.global_roles(record.global_id):
            current = self.nodes.store.get(GlobalReplicationGroup, record.region, record.global_id)
            if current is not None and current.failover_to is not None:
                await self._fail_over(current)

    async def _fail_over(self, record: GlobalReplicationGroup) -> None:
        assert record.failover_to is not None
        old = self._primary_node(record.primary)
        new = self._primary_node(record.failover_to)
        if old is None or new is None or not self.nodes.running(old[1]) or not self.nodes.running(new[1]):
            self._call_off(record, "a member's primary node is not running")
            return
        (old_group, old_primary), (new_group, new_primary) = old, new
        old_admin = self.nodes.admin(old_primary)
        try:
            await old_admin.execute("CLIENT", "PAUSE", str(PAUSE_MS), "WRITE")
            target = int((await old_admin.info("replication")).get("master_repl_offset", "0"))
            reached = await self._caught_up(new_primary, target)
            if reached is not None:
                self._call_off(record, f"{new_primary.cluster_id} did not reach offset {target} ({reached})")
                return
            updated, groups = global_datastores.failed_over(self.nodes.store, record)
            now = self.nodes.clock.now()
            with self.nodes.store.transaction() as tx:
                tx.put(updated)
                for group in groups:
                    tx.put(group)
                tx.add_event(event_for(
                    new_group, f"Replication group {new_group.group_id} is now the primary of global replication group "
                               f"{record.global_id} (was {old_group.group_id} in {old_group.region}); planned failover "
                               f"at offset {target}", now,
                ))
            await self.nodes.admin(new_primary).promote()
            self.nodes.observed.upstream.pop(node_key(new_primary), None)
            await self.nodes.follow(old_primary, (new_primary.node.address, new_primary.port))
            log.info("global datastore %s failed over to %s/%s", record.global_id, new_group.region, new_group.group_id)
        finally:
            try:
                await old_admin.execute("CLIENT", "UNPAUSE")
            except EngineError:
                pass
            self.kick(old_group)
            self.kick(new_group)

    async def _caught_up(self, replica: CacheCluster, target: int) -> str | None:
        """None once ``replica`` has reached ``target``; otherwise what it reached."""
        admin = self.nodes.admin(replica)
        deadline = time.monotonic() + DRAIN_TIMEOUT
        seen = "no answer"
        while time.monotonic() < deadline:
            try:
                info = await admin.info("replication")
            except EngineError as error:
                seen = str(error)
            else:
                offset = int(info.get("slave_repl_offset", "-1"))
                if offset >= target:
                    return None
                seen = f"offset {offset}"
            await asyncio.sleep(0.002)
        return seen

    def _call_off(self, record: GlobalReplicationGroup, reason: str) -> None:
        store = self.nodes.store
        group = store.get(ReplicationGroup, record.primary.region, record.primary.replication_group_id)
        with store.transaction() as tx:
            tx.put(global_datastores.called_off(record))
            if group is not None:
                tx.add_event(event_for(
                    group, f"Failover of global replication group {record.global_id} called off: {reason}",
                    self.nodes.clock.now(),
                ))
