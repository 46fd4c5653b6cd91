"""Level-triggered reconciliation: make the engine processes match the desired state.

The reconciler routes every change to its resource's worker (control/scheduler.py) and
composes each resource's pass from the workflows (control/workflows/): for a replication
group, deadlines first, then its failovers, its certificates, its parameters, the next step of its
engine upgrade, its topology (cluster mode disabled or enabled), its locks (TLS, ACL users:
workflows/access.py), its node type, and settling it; for a standalone cache cluster, its engine
upgrade, its one node, its parameters and its locks; for a user or user group, its status once
every node that needs it has it; for a snapshot, its files (workflows/snapshots.py). A group or
cluster created from a snapshot gets its data first (workflows/restore.py) and settles only once
it has all of it; a delete with a final snapshot waits for that snapshot before any node stops.
A parameter group's change kicks every group and cluster that uses it. Every pass can be
interrupted by a crash and simply run again: processes are found again by the provider, engines
are asked for their actual role and bound addresses, and nothing is started twice.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from cachefleet.control.health import HealthMonitor
from cachefleet.control.locks import Locks
from cachefleet.control.nodes import AddressTaken, Binaries, GroupFailed, Nodes, Provider, node_key
from cachefleet.control.scheduler import Failed, Retry, Scheduler, Target
from cachefleet.control.snapshot_files import SnapshotFiles
from cachefleet.control.warm import WarmPool
from cachefleet.control.workflows.access import AccessWorkflow
from cachefleet.control.workflows.cache_cluster import CacheClusterWorkflow
from cachefleet.control.workflows.failover import Failover
from cachefleet.control.workflows.global_datastore import GlobalDatastoreWorkflow
from cachefleet.control.workflows.migration import MigrationWorkflow
from cachefleet.control.workflows.node_type import NodeTypeWorkflow
from cachefleet.control.workflows.parameters import ParameterWorkflow
from cachefleet.control.workflows.replication_group import ReplicationGroupWorkflow
from cachefleet.control.workflows.restore import RestoreWorkflow
from cachefleet.control.workflows.serverless import ServerlessWorkflow
from cachefleet.control.workflows.sharded import ShardedTopology
from cachefleet.control.workflows.snapshots import SnapshotWorkflow
from cachefleet.control.workflows.upgrades import UpgradeWorkflow
from cachefleet.domain import global_datastores
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus
from cachefleet.domain.global_datastores import GlobalReplicationGroup
from cachefleet.domain.operations import Operation, OperationKind, overdue
from cachefleet.domain.parameter_groups import Builds, CacheParameterGroup
from cachefleet.domain.ports import Clock, StateStore
from cachefleet.domain.replication_groups import GroupStatus, ReplicationGroup
from cachefleet.domain.resource import Resource
from cachefleet.domain.serverless import ServerlessCache, SizingPolicy
from cachefleet.domain.snapshots import BUSY, Snapshot
from cachefleet.domain.users import User, UserGroup
from cachefleet.engine.admin import EngineError

log = logging.getLogger(__name__)

GROUP = ReplicationGroup.KIND.name
CLUSTER = CacheCluster.KIND.name
PARAMETER_GROUP = CacheParameterGroup.KIND.name
PARAMETER_RETRY = 0.5  # a node that did not take its parameters is tried again this soon
ASSOCIATING_RETRY = 0.05  # a secondary joining its global datastore looks at its primary's sync this often
USER = User.KIND.name
USER_GROUP = UserGroup.KIND.name
SNAPSHOT = Snapshot.KIND.name
SERVERLESS = ServerlessCache.KIND.name
GLOBAL = GlobalReplicationGroup.KIND.name


class Reconciler:
    """Routes changes to per-resource workers and runs each resource's pass."""

    def __init__(
        self,
        *,
        store: StateStore,
        provider: Provider,
        binaries: Binaries,
        clock: Clock,
        resync_interval: float = 2.0,
        warm: WarmPool | None = None,
        health: HealthMonitor | None = None,
        builds: Builds | None = None,
        locks: Locks | None = None,
        snapshot_files: SnapshotFiles | None = None,
        sizing: SizingPolicy | None = None,
    ) -> None:
        self.store = store
        self.provider = provider
        self.clock = clock
        self.health = health or HealthMonitor(on_change=self._on_health)
        self.nodes = Nodes(
            store=store, provider=provider, binaries=binaries, clock=clock, health=self.health, builds=builds,
            recheck=lambda resource, delay: self.scheduler.later(Target.of(resource), delay), locks=locks,
        )
        self.scheduler = Scheduler(
            run=self._pass, fail=self._fail, transient=(EngineError,), resync=self._targets, resync_interval=resync_interval
        )
        self.failover = Failover(self.nodes)
        self.groups = ReplicationGroupWorkflow(self.nodes)
        self.migrations = MigrationWorkflow(self.nodes)
        self.sharded = ShardedTopology(self.nodes, self.scheduler.tasks)
        self.node_type = NodeTypeWorkflow(self.nodes)
        self.clusters = CacheClusterWorkflow(self.nodes)
        self.parameters = ParameterWorkflow(self.nodes)
        self.upgrades = UpgradeWorkflow(self.nodes)
        self.access = AccessWorkflow(self.nodes)
        self.serverless = ServerlessWorkflow(self.nodes, sizing)
        self.global_datastores = GlobalDatastoreWorkflow(self.nodes, kick=lambda g: self.scheduler.kick(Target.of(g)))
        # Without snapshot files (tests of other workflows) nobody can ask for snapshots or restores.
        self.snapshots: SnapshotWorkflow | None = None
        self.restores: RestoreWorkflow | None = None
        if snapshot_files is not None:
            self.snapshots = SnapshotWorkflow(self.nodes, self.scheduler.tasks, snapshot_files, kick=self.scheduler.kick)
            self.restores = RestoreWorkflow(self.nodes, self.scheduler.tasks, snapshot_files, kick=self.scheduler.kick)
        self._warm = warm

    # ------------------------------------------------------------------ wiring
    def on_change(self, kind: type[Resource], region: str, key: str) -> None:
        """A use case changed a resource's desired state (domain's ChangeListener)."""
        name = kind.KIND.name
        if name == GROUP:
            self.scheduler.kick(Target(GROUP, region, key))
        elif name == CLUSTER:
            cluster = self.store.get(CacheCluster, region, key)
            if cluster is not None and cluster.replication_group_id is not None:
                self.scheduler.kick(Target(GROUP, region, cluster.replication_group_id))
            else:
                self.scheduler.kick(Target(CLUSTER, region, key))
        elif name == PARAMETER_GROUP:
            # Every group and standalone cluster using it, at once: their passes run in parallel.
            targets = set()
            for cluster in self.store.list(CacheCluster, region):
                if cluster.parameter_group_name == key:
                    group_id = cluster.replication_group_id
                    targets.add(Target(GROUP, region, group_id) if group_id else Target(CLUSTER, region, cluster.cluster_id))
            for target in targets:
                self.scheduler.kick(target)
        elif name in (USER, USER_GROUP):
            # The nodes that have (or are to have) the user sync it; its status settles after them.
            for target in self.access.targets_of(name, region, key):
                self.scheduler.kick(target)
            self.scheduler.kick(Target(name, region, key))
        elif name == SNAPSHOT:
            self.scheduler.kick(Target(SNAPSHOT, region, key))
        elif name == SERVERLESS:
            self.scheduler.kick(Target(SERVERLESS, region, key))
        elif name == GLOBAL:
            self.scheduler.kick(Target(GLOBAL, region, key))

    def _cluster_of_node(self, key: str) -> CacheCluster | None:
        for cluster in self.store.list(CacheCluster):
            if node_key(cluster) == key:
                return cluster
        return None

    def on_node_exit(self, key: str, status: int) -> None:
        """The provider saw a node's process exit."""
        cluster = self._cluster_of_node(key)
        if cluster is not None:
            self.nodes.exited(key)
            self.on_change(CacheCluster, cluster.region, cluster.cluster_id)

    def _on_health(self, key: str) -> None:
        cluster = self._cluster_of_node(key)
        if cluster is not None:
            self.on_change(CacheCluster, cluster.region, cluster.cluster_id)

    def _targets(self) -> Iterator[Target]:
        for group in self.store.list(ReplicationGroup):
            yield Target.of(group)
        for cluster in self.store.list(CacheCluster):
            if cluster.replication_group_id is None:
                yield Target.of(cluster)
        for user in self.store.list(User):
            if user.status != "active":
                yield Target.of(user)
        for user_group in self.store.list(UserGroup):
            if user_group.status != "active":
                yield Target.of(user_group)
        for snapshot in self.store.list(Snapshot):
            if snapshot.status in BUSY:
                yield Target.of(snapshot)
        for cache in self.store.list(ServerlessCache):
            yield Target.of(cache)
        for record in self.store.list(GlobalReplicationGroup):
            if record.failover_to is not None:
                yield Target.of(record)

    async def start(self) -> None:
        running = self.provider.adopt_all()
        known = {node_key(c) for c in self.store.list(CacheCluster)}
        if self.restores is not None:
            known |= self.restores.temporary_keys()  # a restore's temporary engines are resumed, not orphans
        if self._warm is not None:
            await self._warm.adopt({k: v for k, v in running.items() if k not in known})
            known |= self._warm.addresses()
        for key in sorted(set(running) - known):
            log.warning("stopping orphan engine %s (pid %s): no cache cluster owns it", key, running[key])
            await self.provider.stop(key)
            self.provider.remove(key)
        self.scheduler.start()
        self.health.start()
        if self._warm is not None:
            self._warm.start()

    async def stop(self) -> None:
        """Stops reconciling. Engine processes keep running; a later start adopts them."""
        await self.scheduler.stop()
        if self._warm is not None:
            await self._warm.stop()
        await self.health.stop()
        await self.nodes.close()
        self.provider.close()

    @property
    def busy(self) -> int:
        """Resources being reconciled right now."""
        return self.scheduler.busy

    async def idle(self) -> None:
        """Waits until no worker is busy (used by tests and benchmarks)."""
        await self.scheduler.idle()

    # ------------------------------------------------------------------ passes
    async def _pass(self, target: Target) -> None:
        if target.kind == GROUP:
            group = self.store.get(ReplicationGroup, target.region, target.key)
            if group is None:
                await self.scheduler.tasks.cancel(target)
                return
            self._check_deadlines(target, group)
            try:
                await self._group_pass(target, group)
            except AddressTaken as taken:
                with contextlib.suppress(GroupFailed):
                    await self.nodes.address_taken(group, str(taken))
        elif target.kind == CLUSTER:
            cluster = self.store.get(CacheCluster, target.region, target.key)
            if cluster is None:
                return
            if cluster.replication_group_id is not None:
                self.scheduler.kick(Target(GROUP, cluster.region, cluster.replication_group_id))
                return
            self._check_deadlines(target, cluster)
            await self._cluster_pass(target, cluster)
        elif target.kind == USER:
            user = self.store.get(User, target.region, target.key)
            if user is not None:
                self.access.settle_user(user)
        elif target.kind == USER_GROUP:
            user_group = self.store.get(UserGroup, target.region, target.key)
            if user_group is not None:
                self.access.settle_user_group(user_group)
        elif target.kind == SNAPSHOT and self.snapshots is not None:
            snapshot = self.store.get(Snapshot, target.region, target.key)
            if snapshot is None:
                return
            self._check_deadlines(target, snapshot)
            await self.snapshots.reconcile(snapshot)
        elif target.kind == SERVERLESS:
            cache = self.store.get(ServerlessCache, target.region, target.key)
            if cache is not None:
                await self.serverless.reconcile(cache)
        elif target.kind == GLOBAL:
            record = self.store.get(GlobalReplicationGroup, target.region, target.key)
            if record is not None:
                await self.global_datastores.reconcile(record)

    async def _cluster_pass(self, target: Target, cluster: CacheCluster) -> None:
        if cluster.status == ClusterStatus.DELETING and self.snapshots is not None and self.snapshots.final_pending(cluster):
            raise Retry(0.5, f"taking the final snapshot of {cluster.cluster_id} before its node stops")
        # Before the cluster's own workflow: a node stopped for an in-place restart must start on its
        # saved data, not empty.
        again = await self.upgrades.step_cluster(cluster)
        cluster = self.store.get(CacheCluster, target.region, target.key) or cluster
        if again is not None:
            self.scheduler.later(target, again)
        if self.restores is not None:
            if cluster.status == ClusterStatus.CREATE_FAILED:
                await self.restores.discard(cluster)
            elif not await self.restores.reconcile(cluster):
                raise Retry(0.25, f"restoring the data of {cluster.cluster_id}")  # not available before all of it is in
        await self.clusters.reconcile(cluster)
        current = self.store.get(CacheCluster, target.region, target.key)
        if current is not None and await self.parameters.apply([current]):
            self.scheduler.later(target, PARAMETER_RETRY)
        current = self.store.get(CacheCluster, target.region, target.key)
        if current is not None:
            await self.access.reconcile_cluster(current)

    def _overdue(self, resource: Resource) -> list[Operation]:
        now = self.clock.now()
        found = (self.nodes.operation(resource, kind) for kind in OperationKind)
        return [operation for operation in found if operation is not None and overdue(operation, now)]

    def _check_deadlines(self, target: Target, resource: Resource) -> None:
        late = self._overdue(resource)
        if late:
            operation = late[0]
            why = self.scheduler.last_reason(target) or f"it was at step '{operation.step}'"
            raise Failed(f"{operation.kind.value} did not finish by {operation.deadline:%Y-%m-%d %H:%M:%S} UTC ({why})")

    async def _fail(self, target: Target, reason: str) -> None:
        """An operation's deadline passed: its workflow ends it in a failed state."""
        if target.kind == GROUP:
            group = self.store.get(ReplicationGroup, target.region, target.key)
            if group is None:
                return
            for operation in self._overdue(group):
                if operation.kind in (OperationKind.CREATE, OperationKind.MODIFY):
                    await self.scheduler.tasks.cancel(target)
                    if self.restores is not None:
                        await self.restores.discard(group)
                    await self.groups.fail(group, reason)
                elif operation.kind == OperationKind.RESHARD:
                    await self.scheduler.tasks.cancel(target)
                    self.sharded.fail(group, reason)
                elif operation.kind == OperationKind.NODE_TYPE:
                    self.node_type.fail(group, reason)
                elif operation.kind == OperationKind.FAILOVER:
                    self.failover.call_off(group, f"Failover of {group.group_id} called off: {reason}")
                elif operation.kind == OperationKind.UPGRADE:
                    self.upgrades.fail(group, reason)
                elif operation.kind == OperationKind.ACCESS:
                    self.access.fail(group, reason)
                group = self.store.get(ReplicationGroup, target.region, target.key) or group
        elif target.kind == CLUSTER:
            cluster = self.store.get(CacheCluster, target.region, target.key)
            late = self._overdue(cluster) if cluster is not None else []
            if cluster is not None and any(o.kind == OperationKind.UPGRADE for o in late):
                self.upgrades.fail_cluster(cluster, reason)
            elif cluster is not None and late:
                if self.restores is not None:
                    await self.restores.discard(cluster)
                await self.clusters.fail(cluster, reason)
        elif target.kind == SNAPSHOT and self.snapshots is not None:
            snapshot = self.store.get(Snapshot, target.region, target.key)
            if snapshot is not None and self._overdue(snapshot):
                await self.scheduler.tasks.cancel(target)
                self.snapshots.fail(snapshot, reason)
        self.scheduler.kick(target)

    async def _group_pass(self, target: Target, group: ReplicationGroup) -> None:
        nodes = self.nodes
        members = nodes.members(group)
        if group.status == GroupStatus.DELETING:
            if self.snapshots is not None and self.snapshots.final_pending(group):
                raise Retry(0.5, f"taking the final snapshot of {group.group_id} before its nodes stop")
            await self.scheduler.tasks.cancel(target)
            if self.restores is not None:
                await self.restores.discard(group)
            await self.groups.delete(group)
            return
        if group.status == GroupStatus.CREATE_FAILED:
            if self.restores is not None:
                await self.restores.discard(group)
            await self.groups.stop_failed(group)
            return
        restored = True
        if self.restores is not None and group.status == GroupStatus.CREATING:
            # Seeded primaries start before the topology would start them empty; keys move once it serves.
            restored = await self.restores.reconcile(group)
            current = nodes.current(group)
            if current is None or current.status != GroupStatus.CREATING:
                return
            group = current
        requested = nodes.operation(group, OperationKind.FAILOVER) is not None
        await nodes.stop_rebooted_and_hung(group, members, failover_requested=requested)
        # A shard whose failover has to wait (Retry) does not hold up another shard's; the
        # topology (which would start a lost primary again) waits for all of them.
        deferred: Retry | None = None
        for node_group in group.node_groups:
            primary = members.get(node_group.primary_cluster_id)
            if primary is None:
                continue
            trouble = self.failover.trouble(group, node_group, primary)
            if trouble is None:
                continue
            if group.cluster_enabled:
                await self.sharded.cancel(group)  # its slots may be moving from or to the lost primary
            try:
                promoted = await self.failover.run(group, node_group, members, trouble)
            except Retry as retry:
                deferred = retry if deferred is None or retry.delay < deferred.delay else deferred
                continue
            if promoted:
                raise Retry(0.0, "")  # again at once, with the new primary
        if deferred is not None:
            raise deferred
        # Before the topology, which may wait on a replica for long: a primary left without one takes
        # writes again at once.
        await nodes.fence_writes(group)
        # Certificates first: a group waiting to converge must not let its nodes' certificates expire.
        await self.access.renew(group)
        # Before the topology (and the parameters): a replaced node's record names its new build
        # before the topology starts it, a process that predates its replacement is stopped before it
        # is told the new family's parameters, and a node stopped for an in-place restart starts on
        # its saved data, not empty.
        again = await self.upgrades.step(group)
        if again is not None:
            self.scheduler.later(target, again)
            group = nodes.current(group) or group
            members = nodes.members(group)
        # Before the topology: a change reaches every running node now, whatever else the group is doing.
        if await self.parameters.apply(members.values()):
            self.scheduler.later(target, PARAMETER_RETRY)
        try:
            if group.cluster_enabled:
                await self.sharded.reconcile(group, members)
            else:
                for node_group in group.node_groups:
                    await self.groups.reconcile_node_group(group, node_group, members)
        except GroupFailed:
            return
        await self.access.reconcile(nodes.current(group) or group)
        for cluster in nodes.members(group).values():
            nodes.watch(cluster)
        nodes.note_links(group)
        await nodes.fence_writes(nodes.current(group) or group)  # its replicas follow it now
        current = nodes.current(group)
        if current is not None and nodes.operation(current, OperationKind.NODE_TYPE) is not None:
            await self.node_type.apply(current)
        # A global datastore's secondaries follow this group's primary, which may have just changed.
        for secondary in global_datastores.secondaries_of(self.store, nodes.current(group) or group):
            self.scheduler.kick(Target.of(secondary))
        if not restored:
            raise Retry(0.25, f"restoring the data of {group.group_id}")  # not available before all of it is in
        if not group.cluster_enabled and await self.groups.associate(nodes.current(group) or group):
            self.scheduler.later(target, ASSOCIATING_RETRY)
        self.groups.settle(group)
        if not group.cluster_enabled:
            await self.migrations.reconcile(nodes.current(group) or group)
