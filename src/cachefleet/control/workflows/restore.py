"""A restore's workflow: a group or cluster being created from RDB files gets their keys before it
is ``available``.

1. **Seeding.** Each new shard whose slots hold all of a source RDB's slots starts its primary
   from that RDB (``engine.restore.plan_seeds``: at most one per shard, the biggest): a plain
   snapshot file is hard-linked into the node's data dir, an encrypted one or an S3 object is
   streamed into the starting engine (a FIFO), which loads it before it answers. In cluster
   mode a node that loaded keys claims their slots, so the topology adds only the rest of its
   range. Replicas start empty and sync from their primary. An RDB the engine cannot load
   (corrupt, cut short) makes it exit: the group is ``create-failed`` with the engine's reason.
2. **Moving.** Every other RDB is loaded by a temporary engine of the target's build (a
   provider node on an address the restore holds, so a restarted control plane adopts it) and
   its keys move by hash slot to the primaries owning them (``engine.restore.move_all``:
   MIGRATE, or DUMP/RESTORE ABSTTL to TLS targets), once the new cluster serves every slot. A
   tracked task: a restart resumes it (what is left on a temporary engine is what is left to
   move; one that is gone is loaded again and moved again, REPLACE making that harmless).
   Every target primary's engine run id is recorded once it holds restored data: one that
   restarted has lost it, and the restore fails rather than report a half-loaded group.
3. **Done.** The temporary engines stop and their directories go; the restore record goes; the
   group settles ``available`` as any new group does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from cachefleet.control.nodes import Nodes
from cachefleet.control.scheduler import Target, Tasks
from cachefleet.control.snapshot_files import SnapshotFiles
from cachefleet.domain import slots as slotmath
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus
from cachefleet.domain.events import event_for
from cachefleet.domain.operations import OperationKind
from cachefleet.domain.replication_groups import GroupStatus, ReplicationGroup
from cachefleet.domain.resource import Resource
from cachefleet.domain.snapshots import Restore, RestoreSource, RestoreStep, cache_size, restore_key
from cachefleet.engine.access import NodeAccess
from cachefleet.engine.admin import EngineError
from cachefleet.engine.config import NodeConfig, render
from cachefleet.engine.restore import ALL_SLOTS, RestoreFailed, RestoreTarget, move_all, plan_seeds
from cachefleet.providers.local import NodeStartFailed

log = logging.getLogger(__name__)

MOVE = "restore"
PROGRESS_INTERVAL = 1.0


class RestoreWorkflow:
    """Puts a snapshot's keys into a group or cluster being created from it."""

    def __init__(self, nodes: Nodes, tasks: Tasks, files: SnapshotFiles, *, kick: Callable[[Target], None]) -> None:
        self.nodes = nodes
        self.tasks = tasks
        self.files = files
        self._kick = kick
        self._moved: dict[Target, int] = {}

    @property
    def store(self) -> Any:
        return self.nodes.store

    def pending(self, resource: Resource) -> Restore | None:
        found: Restore | None = self.store.get(Restore, resource.region, restore_key(resource.KIND.name, resource.key))
        return found

    def temporary_keys(self) -> set[str]:
        """Node keys of every restore's temporary engines (a restarted control plane adopts them)."""
        return {address for restore in self.store.list(Restore) for address in restore.temporary_addresses}

    # ------------------------------------------------------------------ a group's or cluster's pass
    async def reconcile(self, resource: ReplicationGroup | CacheCluster) -> bool:
        """Takes the restore's next steps; True once there is none left (the resource may settle)."""
        restore = self.pending(resource)
        if restore is None:
            return True
        creating = resource.status == (GroupStatus.CREATING if isinstance(resource, ReplicationGroup)
                                       else ClusterStatus.CREATING)
        if not creating:
            await self.discard(resource)
            return True
        targets = self._targets(resource)
        sources = [self._slots(source) for source in restore.sources]
        plan = plan_seeds(sources, [owned for _, owned in targets], sizes=[s.size for s in restore.sources])
        if restore.step == RestoreStep.SEEDING:
            restore = await self._seed(resource, restore, targets, plan)
            if restore is None:
                return False  # failed: the resource is create-failed now
        unseeded = [source for source in restore.sources if source.index not in plan.values()]
        if not unseeded:
            self._done(resource, restore)
            return True
        return await self._move(resource, restore, targets, unseeded)

    def _targets(self, resource: ReplicationGroup | CacheCluster) -> list[tuple[CacheCluster, frozenset[int]]]:
        """The new primaries and the slots each owns (every slot when cluster mode is disabled)."""
        if isinstance(resource, CacheCluster):
            return [(resource, ALL_SLOTS)]
        members = self.nodes.members(resource)
        found = []
        for node_group in resource.node_groups:
            primary = members.get(node_group.primary_cluster_id)
            if primary is not None:
                owned = frozenset(slotmath.parse(node_group.slots)) if resource.cluster_enabled else ALL_SLOTS
                found.append((primary, owned))
        return found

    @staticmethod
    def _slots(source: RestoreSource) -> frozenset[int]:
        return frozenset(slotmath.parse(source.slots)) if source.slots else ALL_SLOTS

    # ------------------------------------------------------------------ seeding
    async def _seed(
        self, resource: ReplicationGroup | CacheCluster, restore: Restore,
        targets: list[tuple[CacheCluster, frozenset[int]]], plan: dict[int, int],
    ) -> Restore | None:
        sharded = isinstance(resource, ReplicationGroup) and resource.cluster_enabled
        seeded = [(targets[t][0], restore.sources[s]) for t, s in plan.items()]
        for source in restore.sources:
            problem = self.files.unreadable(resource.region, source)
            if problem:
                await self._fail(resource, problem)
                return None

        async def start(cluster: CacheCluster, source: RestoreSource) -> None:
            await self.nodes.ensure_running(
                cluster, replica_of=None, sharded=sharded, seed=self.files.seed(resource.region, source),
                load_bytes=source.size,
            )

        outcomes = await asyncio.gather(*(start(c, s) for c, s in seeded), return_exceptions=True)
        for (cluster, source), outcome in zip(seeded, outcomes, strict=True):
            if isinstance(outcome, NodeStartFailed):
                await self._fail(resource, f"{source.described} could not be loaded by {cluster.cluster_id}: {outcome}",
                                 cause=cluster)
                return None
            if isinstance(outcome, BaseException):
                raise outcome
        run_ids = dict(restore.run_ids)
        keys = 0
        for cluster, _ in seeded:
            info = await self.nodes.admin(cluster).info("server")
            run_ids[cluster.cluster_id] = info.get("run_id", "")
            # INFO, not DBSIZE: the control plane's ACL user on a locked node has INFO.
            keys += _key_count(await self.nodes.admin(cluster).info("keyspace"))
        updated = replace(restore, step=RestoreStep.MOVING, run_ids=tuple(sorted(run_ids.items())))
        with self.store.transaction() as tx:
            tx.put(updated)
            if seeded:
                tx.add_event(event_for(
                    resource,
                    f"Restore into {resource.key}: {len(seeded)} primary node(s) started from their RDB files "
                    f"({keys} keys)", self.nodes.clock.now()))
        return updated

    # ------------------------------------------------------------------ moving
    async def _move(
        self, resource: ReplicationGroup | CacheCluster, restore: Restore,
        targets: list[tuple[CacheCluster, frozenset[int]]], unseeded: list[RestoreSource],
    ) -> bool:
        target = Target.of(resource)
        if self.tasks.busy(target, MOVE):
            lost = await self._restarted(restore, targets)
            if lost:
                await self._fail(resource, lost)
            return False
        failure = self.tasks.take(target, MOVE)
        moved = self._moved.pop(target, None)
        if isinstance(failure, asyncio.CancelledError):
            failure = None  # cancelled (a failover cancels a group's tasks): resumed below
        if failure is not None:
            await self._fail(resource, f"the keys of the snapshot could not be moved: {failure}")
            return False
        if moved is not None:
            self._done(resource, restore, moved=moved)
            return True
        if not await self._ready(resource, targets):
            return False  # the new cluster does not serve every slot yet: the topology's pass goes on
        lost = await self._restarted(restore, targets)
        if lost:
            await self._fail(resource, lost)
            return False
        restore = await self._record_run_ids(restore, targets)
        self.tasks.start(target, MOVE, self._move_task(target, resource, restore, targets, unseeded))
        return False

    async def _ready(self, resource: ReplicationGroup | CacheCluster, targets: list[tuple[CacheCluster, frozenset[int]]]) -> bool:
        for cluster, owned in targets:
            if not self.nodes.running(cluster):
                return False
            if isinstance(resource, ReplicationGroup) and not resource.cluster_enabled and not self.nodes.checked(cluster):
                return False  # its role is the topology's to check first
            if isinstance(resource, ReplicationGroup) and resource.cluster_enabled:
                try:
                    info = await self.nodes.admin(cluster).text("CLUSTER", "INFO")
                    mine = await self.nodes.admin(cluster).text("CLUSTER", "NODES")
                except EngineError:
                    return False
                myself = next((line for line in mine.splitlines() if "myself" in line), "")
                claimed: set[int] = set()
                for part in myself.split()[8:]:
                    if part.startswith("["):
                        continue
                    low, _, high = part.partition("-")
                    claimed.update(range(int(low), int(high or low) + 1))
                if "cluster_state:ok" not in info or claimed != owned:
                    return False
        return True

    async def _restarted(self, restore: Restore, targets: list[tuple[CacheCluster, frozenset[int]]]) -> str:
        """Why the restore cannot go on, if a target primary that held restored keys restarted since."""
        known = dict(restore.run_ids)
        for cluster, _ in targets:
            expected = known.get(cluster.cluster_id)
            if expected is None or not self.nodes.running(cluster):
                continue
            try:
                run_id = (await self.nodes.admin(cluster).info("server")).get("run_id", "")
            except EngineError:
                continue
            if run_id and run_id != expected:
                return (f"primary {cluster.cluster_id} restarted during the restore and lost the keys restored into it")
        return ""

    async def _record_run_ids(self, restore: Restore, targets: list[tuple[CacheCluster, frozenset[int]]]) -> Restore:
        run_ids = dict(restore.run_ids)
        for cluster, _ in targets:
            if cluster.cluster_id not in run_ids:
                run_ids[cluster.cluster_id] = (await self.nodes.admin(cluster).info("server")).get("run_id", "")
        updated = replace(restore, run_ids=tuple(sorted(run_ids.items())))
        if updated != restore:
            with self.store.transaction() as tx:
                tx.put(updated)
        return updated

    async def _move_task(
        self, target: Target, resource: ReplicationGroup | CacheCluster, restore: Restore,
        targets: list[tuple[CacheCluster, frozenset[int]]], unseeded: list[RestoreSource],
    ) -> None:
        engines = await asyncio.gather(*(self._temporary(resource, restore, source) for source in unseeded))
        for access, source in zip(engines, unseeded, strict=True):
            keyspace = await self._keyspace(access)
            others = [db for db in keyspace if db != "db0"]
            if others:
                raise RestoreFailed(
                    f"{source.described} holds keys in {', '.join(others)}; a restore moves database 0 only "
                    "(cluster mode has no other). Restore it into a cluster mode disabled group with one shard."
                )
        restore_targets = [RestoreTarget.of(self.nodes.access(cluster), owned) for cluster, owned in targets]
        moved = [restore.keys_moved]
        last = [time.monotonic()]

        def progress(count: int) -> None:
            moved[0] += count
            if time.monotonic() - last[0] >= PROGRESS_INTERVAL:
                last[0] = time.monotonic()
                self._progressed(resource, moved[0])

        results = await move_all(list(engines), restore_targets, progress=progress)
        total = sum(result.keys for result in results)
        self._progressed(resource, moved[0])
        for source in unseeded:
            key = restore.temporary_addresses[source.index]
            await self.nodes.provider.stop(key)
            self.nodes.provider.remove(key)
        self._moved[target] = total

    async def _temporary(self, resource: ReplicationGroup | CacheCluster, restore: Restore, source: RestoreSource) -> NodeAccess:
        """A running temporary engine holding ``source`` (adopted as it is, or started and loaded)."""
        address = restore.temporary_addresses[source.index]
        port = resource.port
        access = NodeAccess(address, port)
        if self.nodes.provider.pid(address) is not None:
            return access
        config = render(NodeConfig(
            address=address, port=port, directory=self.nodes.provider.node_dir(address), maxmemory=0,
            label=f"temporary engine restoring {source.described} into {resource.key}",
        ))
        try:
            await self.nodes.provider.start(
                address, binary=self.nodes.server(resource.engine, resource.engine_version), config=config,
                access=access, seed=self.files.seed(resource.region, source), load_bytes=source.size,
            )
        except NodeStartFailed as failure:
            raise RestoreFailed(f"{source.described} could not be loaded: {failure}") from failure
        return access

    @staticmethod
    async def _keyspace(access: NodeAccess) -> list[str]:
        admin = access.admin()
        try:
            info = await admin.info("keyspace")
        finally:
            await admin.close()
        return [name for name, value in info.items() if name.startswith("db") and not value.startswith("keys=0,")]

    def _progressed(self, resource: Resource, moved: int) -> None:
        restore = self.pending(resource)
        if restore is not None and restore.keys_moved != moved:
            with self.store.transaction() as tx:
                tx.put(replace(restore, keys_moved=moved))
        operation = self.nodes.operation(resource, OperationKind.CREATE)
        if operation is not None:
            self.nodes.progressed(operation, f"restoring: {moved} keys moved")

    # ------------------------------------------------------------------ ending
    def _done(self, resource: ReplicationGroup | CacheCluster, restore: Restore, *, moved: int = 0) -> None:
        with self.store.transaction() as tx:
            tx.delete(restore)
            tx.add_event(event_for(
                resource,
                f"Restore into {resource.key} finished: {len(restore.sources)} RDB file(s), {cache_size(restore.size)}"
                + (f", {moved} keys moved by slot" if moved else ""),
                self.nodes.clock.now()))
        self._kick(Target.of(resource))

    async def _fail(self, resource: ReplicationGroup | CacheCluster, reason: str, *, cause: CacheCluster | None = None) -> None:
        """The restore cannot finish: the resource is create-failed (never available half-loaded)."""
        log.warning("restore into %s failed: %s", resource.key, reason)
        await self.discard(resource)
        message = f"Restore failed: {reason}"
        current = self.store.get(type(resource), resource.region, resource.key) or resource
        if isinstance(current, ReplicationGroup):
            await self.nodes.fail_group_creation(current, message, cause=cause)
        else:
            await self.nodes.node_failed(None, current, message)

    async def discard(self, resource: Resource) -> None:
        """Stops the restore's move and temporary engines and drops its record (its resource is failed or deleted)."""
        restore = self.pending(resource)
        await self.tasks.cancel(Target.of(resource), MOVE)
        self._moved.pop(Target.of(resource), None)
        if restore is None:
            return
        for address in restore.temporary_addresses:
            await self.nodes.provider.stop(address)
            self.nodes.provider.remove(address)
        with self.store.transaction() as tx:
            tx.delete(restore)


def _key_count(keyspace: dict[str, str]) -> int:
    """Keys of every database, from INFO keyspace (``db0:keys=3,expires=1,avg_ttl=0``)."""
    total = 0
    for name, value in keyspace.items():
        if name.startswith("db"):
            fields = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
            total += int(fields.get("keys", "0"))
    return total
