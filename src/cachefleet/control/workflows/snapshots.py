"""A snapshot's workflow: its RDB files taken from the nodes, copied, exported to a bucket, deleted;
and the timer that runs the automatic snapshot schedule.

Taking a snapshot is a tracked task of the snapshot's own worker, so the group's passes (its
failovers above all) go on meanwhile. Each shard's RDB is streamed at once from one node of the
shard: the SnapshottingClusterId, else a replica in sync with its primary (the primary does not
fork under load), else the primary; over an rdb-only diskless SYNC (engine/snapshot.py), so the
node writes no file and the snapshot file is written once, encrypted on the way when the
snapshot is. A shard file appears under its name only once whole and verified. A failure (a full
disk, a node that cannot be reached) marks the snapshot ``failed`` with an event; the group
keeps serving and is ``available`` again. A control plane killed meanwhile takes the snapshot
again from the start when it comes back (the interrupted stream's fork ends with its socket;
the partial files are removed).

Copies, exports and deletes are tracked tasks too (their blocking file and bucket I/O runs in
worker threads). Every step records its progress in the snapshot's operation record, whose
deadline ends a step that stopped making progress.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from cachefleet.control.nodes import Nodes
from cachefleet.control.scheduler import Target, Tasks
from cachefleet.control.snapshot_files import SnapshotFiles
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus
from cachefleet.domain.operations import OperationKind
from cachefleet.domain.ports import Clock, Transaction
from cachefleet.domain.replication_groups import GroupStatus, ReplicationGroup
from cachefleet.domain.resource import Resource
from cachefleet.domain.snapshots import (
    NodeSnapshot,
    Snapshot,
    SnapshotStatus,
    export_key,
    snapshot_event,
)
from cachefleet.engine.admin import EngineError
from cachefleet.engine.snapshot import SnapshotFailed, diskless, stream_rdb

log = logging.getLogger(__name__)

WORK = "snapshot"  # the snapshot's one tracked task (take, copy, export or delete)
SCHEDULE_INTERVAL = 30.0


class SnapshotWorkflow:
    """Takes, copies, exports and deletes snapshots' files, as their records say."""

    def __init__(self, nodes: Nodes, tasks: Tasks, files: SnapshotFiles, *, kick: Callable[[Target], None]) -> None:
        self.nodes = nodes
        self.tasks = tasks
        self.files = files
        self._kick = kick
        self._results: dict[Target, tuple[NodeSnapshot, ...]] = {}

    @property
    def store(self) -> Any:
        return self.nodes.store

    # ------------------------------------------------------------------ asked by the reconciler
    def final_pending(self, resource: Resource) -> bool:
        """Whether a snapshot of this group or cluster is still being taken (a delete waits for it)."""
        if isinstance(resource, ReplicationGroup):
            source: tuple[str | None, str | None] = (resource.group_id, None)
        elif isinstance(resource, CacheCluster):
            source = (None, resource.cluster_id)
        else:
            return False
        return any(
            s.status == SnapshotStatus.CREATING and s.copied_from is None
            and (s.replication_group_id, None if s.replication_group_id else s.cache_cluster_id) == source
            for s in self.store.list(Snapshot, resource.region)
        )

    # ------------------------------------------------------------------ one pass
    async def reconcile(self, snapshot: Snapshot) -> None:
        if snapshot.status not in (SnapshotStatus.CREATING, SnapshotStatus.EXPORTING, SnapshotStatus.DELETING):
            return
        target = Target.of(snapshot)
        if self.tasks.busy(target, WORK):
            return  # its end kicks the snapshot
        failure = self.tasks.take(target, WORK)
        result = self._results.pop(target, None)
        if isinstance(failure, asyncio.CancelledError):
            failure = None  # cancelled by a stop: run it again
        if failure is not None:
            log.warning("snapshot %s: %s", snapshot.name, failure)
            self.fail(snapshot, _reason(failure))
            return
        if result is not None:
            self._finished(snapshot, result)
            return
        self.tasks.start(target, WORK, self._collect(target, snapshot))

    async def _collect(self, target: Target, snapshot: Snapshot) -> None:
        if snapshot.status == SnapshotStatus.DELETING:
            result = await self._delete(snapshot)
        elif snapshot.status == SnapshotStatus.EXPORTING:
            result = await self._export(snapshot)
        elif snapshot.copied_from is not None:
            result = await self._copy(snapshot)
        else:
            result = await self._take(snapshot)
        self._results[target] = result

    # ------------------------------------------------------------------ taking
    async def _take(self, snapshot: Snapshot) -> tuple[NodeSnapshot, ...]:
        group = (
            self.store.get(ReplicationGroup, snapshot.region, snapshot.replication_group_id)
            if snapshot.replication_group_id is not None else None
        )
        members = self.nodes.members(group) if group is not None else {}
        if group is None:
            cluster = self.store.get(CacheCluster, snapshot.region, snapshot.cache_cluster_id or "")
            if cluster is None:
                raise SnapshotFailed(f"cache cluster {snapshot.cache_cluster_id} no longer exists")
            members = {cluster.cluster_id: cluster}
        elif group.status not in (GroupStatus.SNAPSHOTTING, GroupStatus.DELETING, GroupStatus.AVAILABLE):
            raise SnapshotFailed(f"replication group {group.group_id} is {group.status}")
        self.files.clean(snapshot.region, snapshot.name)
        self._progressed(snapshot, f"streaming {len(snapshot.node_snapshots)} shard(s)")
        # Every shard at once: each shard's RDB is of one moment, and the shards' as close as can be.
        plan = [(node, await self._candidates(snapshot, group, node, members)) for node in snapshot.node_snapshots]
        return tuple(await asyncio.gather(*(self._take_shard(snapshot, node, found) for node, found in plan)))

    async def _candidates(
        self, snapshot: Snapshot, group: ReplicationGroup | None, node: NodeSnapshot, members: dict[str, CacheCluster]
    ) -> list[CacheCluster]:
        """Who to take a shard from, best first: the named node (CacheClusterId, SnapshottingClusterId),
        replicas in sync with their primary, then the primary."""
        if group is None or snapshot.cache_cluster_id is not None:
            named = members.get(snapshot.cache_cluster_id or node.cache_cluster_id)
            return [named] if named is not None else []
        node_group = group.node_group(node.node_group_id)
        if node_group is None:
            return []
        found: list[CacheCluster] = []
        preferred = group.snapshotting_cluster_id
        if preferred in node_group.member_cluster_ids and preferred in members:
            found.append(members[preferred])
        for replica_id in node_group.replica_cluster_ids:
            replica = members.get(replica_id)
            if replica is None or replica in found or not self.nodes.running(replica):
                continue
            try:
                info = await self.nodes.admin(replica).info("replication")
            except EngineError:
                continue
            if info.get("role") == "slave" and info.get("master_link_status") == "up":
                found.append(replica)
        primary = members.get(node_group.primary_cluster_id)
        if primary is not None and primary not in found:
            found.append(primary)
        return found

    async def _take_shard(self, snapshot: Snapshot, node: NodeSnapshot, candidates: list[CacheCluster]) -> NodeSnapshot:
        if not candidates:
            raise SnapshotFailed(f"shard {node.node_group_id} has no node to take its snapshot from")
        problems = []
        for cluster in candidates:
            writer = self.files.writer(snapshot, node)
            access = self.nodes.access(cluster)
            admin = access.admin(name="cachefleet-snapshot")
            try:
                async with diskless(admin):
                    facts = await stream_rdb(access, writer.write)
                await asyncio.to_thread(writer.commit)
            except (SnapshotFailed, EngineError, OSError) as error:
                writer.abort()
                problems.append(f"{cluster.cluster_id}: {_reason(error)}")
                if _disk_full(error):
                    break  # our own disk: another node would not help
                log.warning("snapshot %s of shard %s from %s failed: %s", snapshot.name, node.node_group_id,
                            cluster.cluster_id, error)
                continue
            finally:
                await admin.close()
            log.info("snapshot %s: shard %s from %s, %d bytes", snapshot.name, node.node_group_id, cluster.cluster_id,
                     facts.size)
            return replace(
                node, cache_cluster_id=cluster.cluster_id, cache_node_create_time=cluster.node.create_time,
                snapshot_create_time=self.nodes.clock.now(), size=facts.size, rdb_format=facts.header.signature,
                checksum=f"{facts.checksum:016x}",
            )
        raise SnapshotFailed(f"shard {node.node_group_id}: " + "; ".join(problems))

    # ------------------------------------------------------------------ copying, exporting, deleting
    async def _copy(self, copy: Snapshot) -> tuple[NodeSnapshot, ...]:
        source = self.store.get(Snapshot, copy.region, copy.copied_from or "")
        if source is None:
            raise SnapshotFailed(f"the source snapshot {copy.copied_from} no longer exists")
        self.files.clean(copy.region, copy.name)
        self._progressed(copy, f"copying from {source.name}")
        copied = []
        for node, target_node in zip(source.node_snapshots, copy.node_snapshots, strict=True):
            facts = await asyncio.to_thread(self.files.copy_shard, source, copy, node, target_node)
            copied.append(replace(target_node, size=facts.rdb.size, checksum=f"{facts.rdb.checksum:016x}"))
        return tuple(copied)

    async def _export(self, snapshot: Snapshot) -> tuple[NodeSnapshot, ...]:
        if snapshot.export is None:
            return snapshot.node_snapshots
        bucket, target = snapshot.export.bucket, snapshot.export.target_name
        for node in snapshot.node_snapshots:
            self._progressed(snapshot, f"exporting shard {node.node_group_id} to s3://{bucket}")
            await asyncio.to_thread(self.files.export_shard, snapshot, node, bucket, export_key(target, node.node_group_id))
        return snapshot.node_snapshots

    async def _delete(self, snapshot: Snapshot) -> tuple[NodeSnapshot, ...]:
        await asyncio.to_thread(self.files.remove, snapshot.region, snapshot.name)
        return ()

    # ------------------------------------------------------------------ ending
    def _progressed(self, snapshot: Snapshot, step: str) -> None:
        operation = self.nodes.operation(snapshot, OperationKind.SNAPSHOT)
        if operation is not None:
            self.nodes.progressed(operation, step)

    def _finished(self, snapshot: Snapshot, nodes: tuple[NodeSnapshot, ...]) -> None:
        current = self.store.get(Snapshot, snapshot.region, snapshot.name)
        if current is None:
            return
        now = self.nodes.clock.now()
        operation = self.nodes.operation(current, OperationKind.SNAPSHOT)
        if current.status == SnapshotStatus.DELETING:
            with self.store.transaction() as tx:
                tx.delete(current)
                if operation is not None:
                    tx.delete(operation)
                tx.add_event(snapshot_event(current, f"Snapshot {current.name} deleted", now))
            return
        if current.status == SnapshotStatus.EXPORTING and current.export is not None:
            export = current.export
            with self.store.transaction() as tx:
                tx.put(replace(current, status=SnapshotStatus.AVAILABLE, export=None))
                if operation is not None:
                    tx.delete(operation)
                objects = ", ".join(export_key(export.target_name, n.node_group_id) for n in current.node_snapshots)
                tx.add_event(snapshot_event(
                    current, f"Snapshot {current.name} exported to S3 bucket {export.bucket}: {objects}", now))
            return
        done = replace(current, status=SnapshotStatus.AVAILABLE, node_snapshots=nodes, status_reason="")
        self.files.write_manifest(done)
        with self.store.transaction() as tx:
            tx.put(done)
            if operation is not None:
                tx.delete(operation)
            if current.copied_from is not None:
                self._release_copied(tx, current)
                tx.add_event(snapshot_event(done, f"Snapshot {current.copied_from} copied to {done.name}", now))
            else:
                self._release_source(tx, current)
                tx.add_event(snapshot_event(
                    done, f"Snapshot succeeded for snapshot with ID '{done.name}' of {done.subject}", now))
        self._kick_source(done)

    def fail(self, snapshot: Snapshot, reason: str) -> None:
        """The step could not finish (an error, or its deadline): a snapshot being taken or copied is
        ``failed`` (its files removed); an export or a delete gives up, the snapshot as it was."""
        current = self.store.get(Snapshot, snapshot.region, snapshot.name)
        if current is None:
            return
        self._results.pop(Target.of(current), None)
        now = self.nodes.clock.now()
        operation = self.nodes.operation(current, OperationKind.SNAPSHOT)
        with self.store.transaction() as tx:
            if operation is not None:
                tx.delete(operation)
            if current.status == SnapshotStatus.EXPORTING:
                tx.put(replace(current, status=SnapshotStatus.AVAILABLE, export=None))
                tx.add_event(snapshot_event(current, f"Export of snapshot {current.name} failed: {reason}", now))
                return
            if current.status == SnapshotStatus.DELETING:
                tx.put(replace(current, status=SnapshotStatus.FAILED, status_reason=reason))
                tx.add_event(snapshot_event(current, f"Deleting snapshot {current.name} failed: {reason}", now))
                return
            tx.put(replace(current, status=SnapshotStatus.FAILED, status_reason=reason))
            if current.copied_from is not None:
                self._release_copied(tx, current)
                tx.add_event(snapshot_event(current, f"Copy of snapshot {current.copied_from} to {current.name} "
                                                     f"failed: {reason}", now))
            else:
                self._release_source(tx, current)
                tx.add_event(snapshot_event(
                    current, f"Snapshot failed for snapshot with ID '{current.name}' of {current.subject}: {reason}",
                    now))
        if current.status == SnapshotStatus.CREATING:
            self.files.remove(current.region, current.name)
        self._kick_source(current)

    def _release_source(self, tx: Transaction, snapshot: Snapshot) -> None:
        """Its group (or standalone cluster) is available again once no other snapshot of it is being taken."""
        others = [
            s for s in self.store.list(Snapshot, snapshot.region)
            if s.name != snapshot.name and s.status == SnapshotStatus.CREATING and s.copied_from is None
            and (s.replication_group_id, s.cache_cluster_id) == (snapshot.replication_group_id, snapshot.cache_cluster_id)
        ]
        if others:
            return
        if snapshot.replication_group_id is not None:
            group = self.store.get(ReplicationGroup, snapshot.region, snapshot.replication_group_id)
            if group is not None and group.status == GroupStatus.SNAPSHOTTING:
                tx.put(replace(group, status=GroupStatus.AVAILABLE))
        elif snapshot.cache_cluster_id is not None:
            cluster = self.store.get(CacheCluster, snapshot.region, snapshot.cache_cluster_id)
            if cluster is not None and cluster.status == ClusterStatus.SNAPSHOTTING:
                tx.put(replace(cluster, status=ClusterStatus.AVAILABLE))

    def _release_copied(self, tx: Transaction, copy: Snapshot) -> None:
        source = self.store.get(Snapshot, copy.region, copy.copied_from or "")
        others = [
            s for s in self.store.list(Snapshot, copy.region)
            if s.name != copy.name and s.status == SnapshotStatus.CREATING and s.copied_from == copy.copied_from
        ]
        if source is not None and source.status == SnapshotStatus.COPYING and not others:
            tx.put(replace(source, status=SnapshotStatus.AVAILABLE))

    def _kick_source(self, snapshot: Snapshot) -> None:
        """A delete waiting for its final snapshot goes on."""
        if snapshot.replication_group_id is not None:
            self._kick(Target(ReplicationGroup.KIND.name, snapshot.region, snapshot.replication_group_id))
        elif snapshot.cache_cluster_id is not None:
            self._kick(Target(CacheCluster.KIND.name, snapshot.region, snapshot.cache_cluster_id))


def _disk_full(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (28, 122):  # ENOSPC, EDQUOT
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _reason(error: BaseException) -> str:
    if _disk_full(error):
        return f"no space left on the snapshot disk ({error})"
    return str(error) or type(error).__name__


class SnapshotSchedule:
    """Runs the automatic snapshot schedule (``tick``: the domain's ``Snapshots.run_schedule``)
    every ``interval`` seconds on its own clock (a fake one in tests). The schedule keeps no
    state of its own: what was taken is in the store, so it survives restarts."""

    def __init__(self, tick: Callable[[dt.datetime], list[str]], clock: Clock, *, interval: float = SCHEDULE_INTERVAL) -> None:
        self._tick = tick
        self._clock = clock
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="snapshot-schedule")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def run_once(self) -> list[str]:
        done = self._tick(self._clock.now())
        for action in done:
            log.info("snapshot schedule: %s", action)
        return done

    async def _run(self) -> None:
        while True:
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - a bug: logged, the schedule goes on
                log.exception("the snapshot schedule failed; it runs again in %.0f s", self._interval)
            await asyncio.sleep(self._interval)

