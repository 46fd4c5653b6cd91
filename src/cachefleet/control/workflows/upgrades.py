"""Rolling replacement of a group's nodes (an UPGRADE operation): engine upgrades, service updates,
and restarts for static parameters in the maintenance window.

The order is built on what the engines accept (measured, see tests/acceptance/test_upgrades.py):
a replica of a newer build syncs from an older primary (Valkey 8.1 and 9.1 from Redis OSS 7.0,
Valkey 9.1 from 8.1), but an older replica cannot full-sync from a newer primary (Redis OSS 7.0
loads neither Valkey's REDIS0011 nor VALKEY080; Valkey 8.1 fails on a 9.1 primary holding hash
fields with TTLs). So, one shard at a time:

1. each replica still on the old build is replaced in turn: its record takes the new build (and
   the new family's parameter group), its process is stopped, the topology starts the new build
   as a fresh replica that full-syncs from the old primary, and the next replica goes only once
   it is available again (in sync);
2. once every replica runs the new build, a planned failover (FAILOVER operation, kind upgrade:
   writes drained to a replica, the old primary fenced, the endpoint moved) makes one of them the
   primary;
3. the old primary, now a replica, is replaced like the others: it syncs from the new primary.

A shard without replicas cannot fail over: its primary saves its data and exits (SHUTDOWN SAVE,
so every acknowledged write is in the file), and the new build starts on that data (every build
loads the RDB formats of the older ones; cluster mode keeps its nodes.conf, hence its id and slots).

Progress is derived from the records (a member's engine version) and the operation (the node
being replaced, with the pid its old process had): after a control-plane crash, an adopted
process that predates its replacement is recognised and replaced again; a node stopped for an
in-place restart starts on its saved data before the topology could start it empty. A stop
(BatchStopUpdateAction) ends the operation once the node in progress is done; an operation that
makes no progress fails at its deadline, and the members not yet replaced keep their pending
EngineVersion for the next maintenance window. ``next_move`` is pure; ``UpgradeWorkflow`` acts.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from cachefleet.control.nodes import REPLACING, Nodes, node_key
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus, NodeStatus
from cachefleet.domain.engines import version_key
from cachefleet.domain.events import event_for
from cachefleet.domain.operations import (
    EngineUpgrade,
    FailoverKind,
    FailoverRequest,
    Operation,
    OperationKind,
    UpgradeReason,
    begin,
    progressed,
)
from cachefleet.domain.parameter_groups import CacheNodeParameters, apply_status
from cachefleet.domain.parameters import ApplyStatus
from cachefleet.domain.replication_groups import ReplicationGroup
from cachefleet.domain.resource import Resource
from cachefleet.domain.service_updates import (
    ActionStatus,
    UpdateAction,
    action_ended,
    action_key,
    new_action,
    node_done,
    node_started,
)
from cachefleet.domain.upgrades import pending_of

log = logging.getLogger(__name__)

WAIT = 0.02  # seconds between looks while a replaced node syncs
LABELS = {"valkey": "Valkey", "redis": "Redis OSS"}


class Move(StrEnum):
    """What a rolling replacement does next."""

    REPLACE = "replace"  # stop a replica; the topology starts it on the new build, it full-syncs
    FAILOVER = "failover"  # every replica of the shard is new: a planned failover to one of them
    RESTART_IN_PLACE = "restart-in-place"  # a shard without replicas: save, restart on the new build
    WAIT = "wait"  # a node is not available (in sync) yet
    STOP = "stop"  # BatchStopUpdateAction: go no further
    DONE = "done"


@dataclass(frozen=True)
class Decision:
    move: Move
    cluster_id: str | None = None
    node_group_id: str | None = None
    reason: str = ""


def needs_replacing(member: CacheCluster, upgrade: EngineUpgrade, *, pending_reboot: bool) -> bool:
    """Whether a member is still to be replaced: not on the target build, or (restarts for static
    parameters) waiting for a reboot."""
    if (member.engine, member.engine_version) != (upgrade.engine, upgrade.engine_version):
        return True
    return upgrade.restart_pending_reboot and pending_reboot


def next_move(
    group: ReplicationGroup,
    members: Mapping[str, CacheCluster],
    upgrade: EngineUpgrade,
    *,
    needing: Collection[str],
    ready: Collection[str],
) -> Decision:
    """The next step of a group's rolling replacement.

    ``needing``: members still to be replaced; ``ready``: members available and running (a replica:
    in sync). Shards go in order; in each, replicas first (one at a time), then the failover, then
    the old primary (a replica by then).
    """
    live = {cid for cid, m in members.items() if m.status not in (ClusterStatus.DELETING, ClusterStatus.CREATE_FAILED)}
    waiting = sorted(cid for cid in live if cid not in needing and cid not in ready)
    if waiting:
        return Decision(Move.WAIT, reason=f"waiting for {', '.join(waiting)} to be available")
    if upgrade.stopping:
        return Decision(Move.STOP)
    for node_group in group.node_groups:
        replicas = [cid for cid in node_group.replica_cluster_ids if cid in live]
        for replica in replicas:
            if replica in needing:
                if node_group.primary_cluster_id not in ready:
                    return Decision(Move.WAIT, reason=f"waiting for primary {node_group.primary_cluster_id}")
                return Decision(Move.REPLACE, cluster_id=replica, node_group_id=node_group.node_group_id)
        primary = node_group.primary_cluster_id
        if primary in needing and primary in live:
            if replicas:
                return Decision(Move.FAILOVER, cluster_id=primary, node_group_id=node_group.node_group_id)
            return Decision(Move.RESTART_IN_PLACE, cluster_id=primary, node_group_id=node_group.node_group_id)
    return Decision(Move.DONE)


def newest(members: Collection[CacheCluster]) -> CacheCluster | None:
    """The member on the newest build (Valkey counts as newer than Redis OSS)."""
    return max(members, key=lambda m: (m.engine == "valkey", version_key(m.engine_version)), default=None)


class UpgradeWorkflow:
    """Carries out UPGRADE operations of groups and standalone clusters (see the module docstring)."""

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes

    # ------------------------------------------------------------------ observing
    def _pending_reboot(self, cluster: CacheCluster) -> bool:
        nodes = self.nodes
        record = nodes.store.get(CacheNodeParameters, cluster.region, cluster.cluster_id)
        return apply_status(nodes.family(cluster), nodes.parameter_values(cluster), record)[0] == ApplyStatus.PENDING_REBOOT

    def _ready(self, cluster: CacheCluster) -> bool:
        """The replaced node answers on its new build (`mark_available` saw it up and in sync)."""
        if cluster.status_reason == REPLACING:
            return cluster.node.status == NodeStatus.AVAILABLE and self.nodes.running(cluster)
        return cluster.status == ClusterStatus.AVAILABLE and self.nodes.running(cluster)

    # ------------------------------------------------------------------ replication groups
    async def step(self, group: ReplicationGroup) -> float | None:
        """One step of the group's UPGRADE (before the topology, in the group's pass); the delay after
        which the pass should look again (None: no upgrade, or nothing to look at soon)."""
        nodes = self.nodes
        operation = nodes.operation(group, OperationKind.UPGRADE)
        if operation is None or operation.upgrade is None:
            return None
        upgrade = operation.upgrade
        current = nodes.current(group) or group
        members = nodes.members(current)
        if upgrade.replacing is not None:
            if not await self._replacement_done(current, operation, members.get(upgrade.replacing), sharded=current.cluster_enabled):
                return WAIT
            operation = nodes.operation(group, OperationKind.UPGRADE) or operation
            assert operation.upgrade is not None
            upgrade = operation.upgrade
            members = nodes.members(current)
        needing = {cid for cid, m in members.items() if needs_replacing(m, upgrade, pending_reboot=self._pending_reboot(m))}
        ready = {cid for cid, m in members.items() if self._ready(m)}
        decision = next_move(current, members, upgrade, needing=needing, ready=ready)
        if decision.move == Move.WAIT:
            nodes.progressed(operation, operation.step if operation.step.startswith("replacing") else "waiting")
            return WAIT
        if decision.move == Move.DONE:
            self._finish(current, operation, members)
            return None
        if decision.move == Move.STOP:
            self._stop(current, operation, members)
            return None
        assert decision.cluster_id is not None
        cluster = members[decision.cluster_id]
        if decision.move == Move.FAILOVER:
            self._request_failover(current, operation, decision)
            return WAIT
        if decision.move == Move.RESTART_IN_PLACE:
            await self._restart_in_place(current, operation, cluster, sharded=current.cluster_enabled)
            return WAIT
        await self._replace(current, operation, cluster)
        return WAIT

    async def _replacement_done(
        self, resource: Resource, operation: Operation, cluster: CacheCluster | None, *, sharded: bool
    ) -> bool:
        """Whether the node being replaced is back on the new build; acts when a crash interrupted it."""
        nodes = self.nodes
        upgrade = operation.upgrade
        assert upgrade is not None
        if cluster is None:
            self._progress(operation, replace(upgrade, replacing=None, replacing_pid=None, in_place=False), "next")
            return True
        pid = nodes.provider.pid(node_key(cluster))
        if pid is not None and pid == upgrade.replacing_pid:
            # The process that ran before the replacement is still there (the control plane stopped
            # between recording the replacement and stopping it): stop it now.
            log.info("%s: the process of %s predates its replacement; stopping it", resource.key, cluster.cluster_id)
            if upgrade.in_place:
                await nodes.shut_down_saving(cluster)
            else:
                await nodes.stop(cluster)
        if upgrade.in_place and nodes.provider.pid(node_key(cluster)) is None:
            # Stopped for an in-place restart: it starts on its saved data (never empty).
            replica_of = None
            await nodes.start_keeping_data(cluster, replica_of=replica_of, sharded=sharded)
            return False
        if not self._ready(cluster) or pid is None:
            return False
        now = nodes.clock.now()
        with nodes.store.transaction() as tx:
            done = replace(cluster, status=ClusterStatus.AVAILABLE, status_reason="",
                           pending=pending_of(cluster.pending, None))
            tx.put(done)
            tx.put(progressed(replace(operation, upgrade=replace(upgrade, replacing=None, replacing_pid=None,
                                                                in_place=False)),
                              f"replaced {cluster.cluster_id}", now=now))
            action = self._action(resource, operation)
            if action is not None:
                tx.put(node_done(action, cluster.cluster_id, now=now))
            tx.add_event(event_for(
                cluster,
                f"Cache node {cluster.node.node_id} of cache cluster {cluster.cluster_id} runs "
                f"{LABELS.get(cluster.engine, cluster.engine)} {cluster.engine_version} now"
                + (" (restarted on its saved data)" if upgrade.in_place else " (in sync with its primary)"),
                now,
            ))
        return True

    def _progress(self, operation: Operation, upgrade: EngineUpgrade, step: str) -> None:
        with self.nodes.store.transaction() as tx:
            tx.put(progressed(replace(operation, upgrade=upgrade), step, now=self.nodes.clock.now()))

    def _action(self, resource: Resource, operation: Operation) -> UpdateAction | None:
        upgrade = operation.upgrade
        if upgrade is None or upgrade.service_update is None:
            return None
        key = action_key(upgrade.service_update, resource.KIND.name, resource.key)
        found = self.nodes.store.get(UpdateAction, resource.region, key)
        if found is None:
            assert isinstance(resource, ReplicationGroup | CacheCluster)
            found = new_action(resource.region, upgrade.service_update, resource, now=operation.started)
        return found

    def _moved(self, cluster: CacheCluster, upgrade: EngineUpgrade, *, in_place: bool) -> CacheCluster:
        """The member's record on the new build (what its next process starts as)."""
        return replace(
            cluster,
            engine=upgrade.engine,
            engine_version=upgrade.engine_version,
            parameter_group_name=upgrade.parameter_group_name,
            status=ClusterStatus.MODIFYING,
            status_reason=REPLACING,
            node=replace(cluster.node, status=NodeStatus.REBOOTING if in_place else NodeStatus.CREATING),
        )

    def _record_replacement(
        self, resource: Resource, operation: Operation, cluster: CacheCluster, *, in_place: bool, message: str
    ) -> None:
        nodes = self.nodes
        upgrade = operation.upgrade
        assert upgrade is not None
        now = nodes.clock.now()
        pid = nodes.provider.pid(node_key(cluster))
        with nodes.store.transaction() as tx:
            tx.put(self._moved(cluster, upgrade, in_place=in_place))
            tx.put(progressed(
                replace(operation, upgrade=replace(upgrade, replacing=cluster.cluster_id, replacing_pid=pid, in_place=in_place)),
                f"replacing {cluster.cluster_id}", now=now,
            ))
            action = self._action(resource, operation)
            if action is not None:
                tx.put(replace(node_started(action, cluster, now=now, initiated_by=upgrade.initiated_by,
                                            initiated=operation.started), status=ActionStatus.IN_PROGRESS))
            tx.add_event(event_for(cluster, message, now))

    async def _replace(self, group: ReplicationGroup, operation: Operation, cluster: CacheCluster) -> None:
        upgrade = operation.upgrade
        assert upgrade is not None
        self._record_replacement(
            group, operation, cluster, in_place=False,
            message=f"Replacing cache node {cluster.node.node_id} of cache cluster {cluster.cluster_id} "
                    f"({cluster.engine} {cluster.engine_version}) with {LABELS.get(upgrade.engine, upgrade.engine)} "
                    f"{upgrade.engine_version}: it syncs from its primary",
        )
        # Its primary takes writes without it while it is replaced (a shard's only replica included).
        await self.nodes.fence_writes(self.nodes.current(group) or group)
        await self.nodes.stop(cluster)

    async def _restart_in_place(self, resource: Resource, operation: Operation, cluster: CacheCluster, *, sharded: bool) -> None:
        upgrade = operation.upgrade
        assert upgrade is not None
        self._record_replacement(
            resource, operation, cluster, in_place=True,
            message=f"Restarting cache node {cluster.node.node_id} of cache cluster {cluster.cluster_id} on "
                    f"{LABELS.get(upgrade.engine, upgrade.engine)} {upgrade.engine_version}: it has no replica to "
                    "fail over to, so it saves its data and the new build loads it",
        )
        moved = self.nodes.store.get(CacheCluster, cluster.region, cluster.cluster_id) or cluster
        await self.nodes.shut_down_saving(moved)
        await self.nodes.start_keeping_data(moved, replica_of=None, sharded=sharded)

    def _request_failover(self, group: ReplicationGroup, operation: Operation, decision: Decision) -> None:
        nodes = self.nodes
        assert decision.node_group_id is not None
        if nodes.operation(group, OperationKind.FAILOVER) is not None:
            return  # under way (the failover runs before this step in the group's pass)
        now = nodes.clock.now()
        request = FailoverRequest(decision.node_group_id, FailoverKind.UPGRADE)
        step = f"failing over {decision.node_group_id}"
        with nodes.store.transaction() as tx:
            tx.put(begin(group, OperationKind.FAILOVER, now=now, failover=request))
            if operation.step != step:
                # Only the first request is progress: a failover called off again and again (no replica
                # catches up) must still end at the upgrade's deadline.
                tx.put(progressed(operation, step, now=now))
            tx.add_event(event_for(
                group, f"Every replica of node group {decision.node_group_id} of {group.group_id} runs the new build: "
                       f"planned failover away from {decision.cluster_id}, which is replaced next", now,
            ))

    def _finish(self, group: ReplicationGroup, operation: Operation, members: Mapping[str, CacheCluster]) -> None:
        nodes = self.nodes
        upgrade = operation.upgrade
        assert upgrade is not None
        now = nodes.clock.now()
        updated = replace(
            group, engine=upgrade.engine, engine_version=upgrade.engine_version,
            parameter_group_name=upgrade.parameter_group_name,
        )
        with nodes.store.transaction() as tx:
            tx.put(updated)
            for member in members.values():
                if not member.pending.empty or member.pending.engine is not None:
                    tx.put(replace(member, pending=pending_of(member.pending, None)))
            tx.delete(operation)
            action = self._action(group, operation)
            if action is not None:
                tx.put(action_ended(action, ActionStatus.COMPLETE, now=now))
            tx.add_event(event_for(updated, self._finished_message(group, upgrade, len(members)), now))

    @staticmethod
    def _finished_message(resource: Resource, upgrade: EngineUpgrade, count: int) -> str:
        build = f"{LABELS.get(upgrade.engine, upgrade.engine)} {upgrade.engine_version}"
        where = " in its maintenance window" if upgrade.maintenance else ""
        if upgrade.reason == UpgradeReason.SERVICE_UPDATE:
            return f"Service update {upgrade.service_update} applied to {resource.key}{where}: every node runs {build}"
        if upgrade.reason == UpgradeReason.STATIC_PARAMETERS:
            return f"Nodes of {resource.key} restarted{where}: their static parameters took effect"
        return f"Engine upgrade of {resource.key} to {build} completed{where} ({count} node(s))"

    def _stop(self, group: ReplicationGroup, operation: Operation, members: Mapping[str, CacheCluster]) -> None:
        """BatchStopUpdateAction: the operation ends; members not replaced drop their pending version."""
        self._end(group, operation, members, keep_pending=False,
                  message=f"Service update {operation.upgrade.service_update if operation.upgrade else ''} stopped on "
                          f"{group.group_id}", status=ActionStatus.STOPPED)

    def _end(
        self, group: ReplicationGroup, operation: Operation, members: Mapping[str, CacheCluster], *, keep_pending: bool,
        message: str, status: ActionStatus,
    ) -> None:
        """Ends an unfinished replacement. New members get the newest build a member runs (a newer
        replica can follow any older primary, not the reverse)."""
        nodes = self.nodes
        upgrade = operation.upgrade
        assert upgrade is not None
        now = nodes.clock.now()
        moved = [m for m in members.values() if (m.engine, m.engine_version) == (upgrade.engine, upgrade.engine_version)]
        updated = group
        if moved and (group.engine, group.engine_version) != (upgrade.engine, upgrade.engine_version):
            updated = replace(group, engine=upgrade.engine, engine_version=upgrade.engine_version,
                              parameter_group_name=upgrade.parameter_group_name)
        with nodes.store.transaction() as tx:
            tx.put(updated)
            if not keep_pending:
                for member in members.values():
                    if member.pending.engine_version is not None:
                        tx.put(replace(member, pending=pending_of(member.pending, None)))
            tx.delete(operation)
            action = self._action(group, operation)
            if action is not None:
                tx.put(action_ended(action, status, now=now))
            tx.add_event(event_for(
                updated,
                f"{message}: {len(moved)} of {len(members)} node(s) run {upgrade.engine} {upgrade.engine_version}"
                + (f"; the others wait for the maintenance window {group.preferred_maintenance_window}"
                   if keep_pending and len(moved) < len(members) else ""),
                now,
            ))

    def fail(self, group: ReplicationGroup, reason: str) -> None:
        """The operation's deadline passed: it ends; the members not replaced keep their pending EngineVersion."""
        operation = self.nodes.operation(group, OperationKind.UPGRADE)
        if operation is None or operation.upgrade is None:
            return
        self._end(group, operation, self.nodes.members(group), keep_pending=True,
                  message=f"Engine upgrade of {group.group_id} did not finish ({reason})", status=ActionStatus.STOPPED)

    # ------------------------------------------------------------------ standalone cache clusters
    async def step_cluster(self, cluster: CacheCluster) -> float | None:
        """A standalone cluster's UPGRADE: its one node restarts in place on the new build (before the
        cluster's own workflow, which would start a stopped node empty)."""
        nodes = self.nodes
        operation = nodes.operation(cluster, OperationKind.UPGRADE)
        if operation is None or operation.upgrade is None or cluster.status == ClusterStatus.DELETING:
            return None
        upgrade = operation.upgrade
        if upgrade.replacing is not None:
            if not await self._replacement_done(cluster, operation, cluster, sharded=False):
                return WAIT
            current = nodes.store.get(CacheCluster, cluster.region, cluster.cluster_id)
            if current is None:
                return None
            cluster = current
            operation = nodes.operation(cluster, OperationKind.UPGRADE) or operation
            assert operation.upgrade is not None
            upgrade = operation.upgrade
        if upgrade.stopping:
            self._end_cluster(cluster, operation, status=ActionStatus.STOPPED,
                              message=f"Service update {upgrade.service_update} stopped on {cluster.cluster_id}")
            return None
        if needs_replacing(cluster, upgrade, pending_reboot=self._pending_reboot(cluster)):
            if not nodes.running(cluster):
                return WAIT  # the cluster's own workflow starts it first
            await self._restart_in_place(cluster, operation, cluster, sharded=False)
            return WAIT
        self._end_cluster(cluster, operation, status=ActionStatus.COMPLETE,
                          message=self._finished_message(cluster, upgrade, 1))
        return None

    def _end_cluster(self, cluster: CacheCluster, operation: Operation, *, status: ActionStatus, message: str) -> None:
        nodes = self.nodes
        now = nodes.clock.now()
        with nodes.store.transaction() as tx:
            tx.put(replace(cluster, status=ClusterStatus.AVAILABLE, status_reason="",
                           pending=pending_of(cluster.pending, None),
                           node=replace(cluster.node, status=NodeStatus.AVAILABLE)))
            tx.delete(operation)
            action = self._action(cluster, operation)
            if action is not None:
                tx.put(action_ended(action, status, now=now))
            tx.add_event(event_for(cluster, message, now))

    def fail_cluster(self, cluster: CacheCluster, reason: str) -> None:
        operation = self.nodes.operation(cluster, OperationKind.UPGRADE)
        if operation is None or operation.upgrade is None:
            return
        nodes = self.nodes
        now = nodes.clock.now()
        with nodes.store.transaction() as tx:
            tx.put(replace(cluster, status=ClusterStatus.AVAILABLE, status_reason=""))
            tx.delete(operation)
            action = self._action(cluster, operation)
            if action is not None:
                tx.put(action_ended(action, ActionStatus.STOPPED, now=now))
            tx.add_event(event_for(cluster, f"Engine upgrade of {cluster.cluster_id} did not finish ({reason}); it "
                                            f"runs {cluster.engine} {cluster.engine_version}", now))
