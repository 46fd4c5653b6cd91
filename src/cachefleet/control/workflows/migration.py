"""Online migration: probing the customer's node, following it, reporting progress, completing.

The topology (workflows/replication_group.py) makes the group's primary a replica of the source
while its ``Migration`` follows (``migrations.upstream``), so every restart, adoption or failover
repoints the primary at the source rather than making it a primary again. This pass only reads
the source (PING, INFO: never a write) and the primary, moves the record's phase and writes
events: the source checked (TestMigration, and before StartMigration follows), the full sync,
in sync with both offsets, and CompleteMigration (REPLICAOF NO ONE, the group ``available``).

A failover while migrating promotes a replica as ever; the topology then points the new
primary at the source (a full sync from it), and this pass says so. ElastiCache replaces a
failed node of a migrating group and carries on; so does Cachefleet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from cachefleet.control.nodes import Nodes, node_key
from cachefleet.control.scheduler import Retry
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus
from cachefleet.domain.events import event_for
from cachefleet.domain.migrations import (
    START_ATTEMPTS,
    Migration,
    MigrationPhase,
    engine_name,
    version_problem,
)
from cachefleet.domain.replication_groups import GroupStatus, ReplicationGroup
from cachefleet.engine.access import NodeAccess
from cachefleet.engine.admin import EngineError

log = logging.getLogger(__name__)

WATCH_INTERVAL = 1.0  # how often an in-sync migration looks at its link again
PROBE_TIMEOUT = 2.0


@dataclass(frozen=True)
class SourceReport:
    """What a probe of the customer's node found: a problem in ElastiCache's words, or its facts."""

    problem: str | None
    engine: str = ""
    version: str = ""
    offset: int = 0
    keys: int = 0


def _engine_of(info: dict[str, str]) -> tuple[str, str]:
    if "valkey_version" in info:
        return "valkey", info["valkey_version"]
    return "redis", info.get("redis_version", "")


def _keys(info: dict[str, str]) -> int:
    total = 0
    for name, value in info.items():
        if name.startswith("db") and "keys=" in value:
            total += int(value.split("keys=")[1].split(",")[0])
    return total


async def probe_source(address: str, port: int, group: ReplicationGroup) -> SourceReport:
    """Reads the source without writing to it: reachable, no AUTH, a version the group can load, not a cluster."""
    admin = NodeAccess(address, port).admin(timeout=PROBE_TIMEOUT, name="cachefleet-migration")
    try:
        try:
            info = await admin.info("everything")
        except EngineError as error:
            text = str(error).removeprefix(f"{address}:{port}: ")
            if "NOAUTH" in text or "authent" in text.lower():  # NOAUTH, or HELLO "must be ... authenticated"
                return SourceReport(f"the source {address}:{port} requires authentication (AUTH); online migration "
                                    "needs a source without AUTH")
            if "WRONGPASS" in text or "NOPERM" in text or "ERR" in text:
                return SourceReport(f"the source {address}:{port} refused INFO: {text}")
            return SourceReport(f"the source {address}:{port} is not reachable: {text}")
        engine, version = _engine_of(info)
        problem = version_problem(source_engine=engine, source_version=version, target_engine=group.engine,
                                  target_version=group.engine_version)
        if problem is None and info.get("cluster_enabled") == "1":
            problem = f"the source {address}:{port} has cluster mode enabled; the target has it disabled"
        offset = int(info.get("master_repl_offset", "0") or 0)
        return SourceReport(problem, engine, version, offset, _keys(info))
    finally:
        await admin.close()


class MigrationWorkflow:
    """One group's migration steps; called by the group's pass while it has a ``Migration``."""

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes

    def _record(self, group: ReplicationGroup, migration: Migration | None, message: str, *,
                status: GroupStatus | None = None) -> None:
        """Writes the migration (None: it ends), the group's status and an event in one transaction."""
        nodes = self.nodes
        current = nodes.current(group) or group
        with nodes.store.transaction() as tx:
            stored = nodes.store.get(Migration, group.region, group.group_id)
            if migration is None:
                if stored is not None:
                    tx.delete(stored)
            else:
                tx.put(migration)
            if status is not None and current.status != status:
                current = replace(current, status=status)
                tx.put(current)
            tx.add_event(event_for(current, message, nodes.clock.now()))
        log.info("%s", message)

    async def reconcile(self, group: ReplicationGroup) -> None:
        nodes = self.nodes
        migration = nodes.store.get(Migration, group.region, group.group_id)
        if migration is None or group.status == GroupStatus.DELETING:
            return
        if migration.phase in (MigrationPhase.TESTING, MigrationPhase.STARTING):
            await self._check_source(group, migration)
            return
        node_group = group.node_groups[0]
        primary = nodes.members(group).get(node_group.primary_cluster_id)
        if primary is None or not nodes.running(primary):
            raise Retry(0.5, f"the primary of {group.group_id} is not running")
        if migration.primary_cluster_id != primary.cluster_id:
            migration = replace(migration, primary_cluster_id=primary.cluster_id, phase=MigrationPhase.SYNCING
                                if migration.phase == MigrationPhase.IN_SYNC else migration.phase)
            self._record(group, migration, f"Migration of replication group {group.group_id}: after a failover, "
                         f"primary {primary.cluster_id} follows the source {migration.source} (full sync)")
        info = await nodes.admin(primary).info("replication")
        following = info.get("role") == "slave" and (info.get("master_host"), info.get("master_port")) == (
            migration.address, str(migration.port))
        if not following:
            raise Retry(0.25, f"the primary of {group.group_id} does not follow {migration.source} yet")
        link_up = info.get("master_link_status") == "up" and info.get("master_sync_in_progress", "0") == "0"
        # The source is read only while the link is up (an unreachable one would hold up this pass, and
        # with it a failover), and before the primary's offset: under writes the two are then comparable.
        source = await probe_source(migration.address, migration.port, group) if link_up else None
        offset = int((await nodes.admin(primary).info("replication")).get("slave_repl_offset", "0") or 0)
        # The group's replicas get the source's data through the primary: each one's own full sync
        # from it follows the primary's (a replica can be seconds behind, or stopped).
        syncing = await self._replicas_syncing(group, primary) if source is not None else []
        if migration.phase == MigrationPhase.COMPLETING:
            await self._complete(group, migration, primary_key=node_key(primary), source=source, offset=offset,
                                 syncing=syncing)
            return
        # In sync: the primary holds the source's stream up to the offset the source had written,
        # and every running replica of the group has finished its sync from the primary.
        in_sync = source is not None and source.problem is None and offset >= source.offset and not syncing
        if migration.phase == MigrationPhase.SYNCING and in_sync and source is not None:
            self._record(group, replace(migration, phase=MigrationPhase.IN_SYNC),
                         f"Migration of replication group {group.group_id} is in sync with the source "
                         f"{migration.source}: replication offset {offset} (source {source.offset}), "
                         f"{source.keys} keys")
        elif migration.phase == MigrationPhase.IN_SYNC and not link_up:
            self._record(group, replace(migration, phase=MigrationPhase.SYNCING),
                         f"Migration of replication group {group.group_id}: the replication link to the source "
                         f"{migration.source} is down; resyncing")
        raise Retry(WATCH_INTERVAL if in_sync or not link_up else 0.25, f"migrating {group.group_id} from {migration.source}")

    async def _replicas_syncing(self, group: ReplicationGroup, primary: CacheCluster) -> list[str]:
        """The group's running replicas whose link to the primary is not up (a full sync in progress)."""
        nodes = self.nodes
        members = nodes.members(group)
        syncing = []
        for cluster_id in group.node_groups[0].replica_cluster_ids:
            replica = members.get(cluster_id)
            if replica is None or replica.status in (ClusterStatus.DELETING, ClusterStatus.CREATE_FAILED) or \
                    not nodes.running(replica):
                continue
            try:
                if await nodes.in_sync(replica, (primary.node.address, primary.port)):
                    continue
            except EngineError:
                pass
            syncing.append(cluster_id)
        return syncing

    async def _check_source(self, group: ReplicationGroup, migration: Migration) -> None:
        report = await probe_source(migration.address, migration.port, group)
        gid = group.group_id
        if migration.phase == MigrationPhase.TESTING:
            if report.problem is None:
                message = (f"Test Migration successful for {gid}: the source {migration.source} "
                           f"({engine_name(report.engine)} {report.version}, {report.keys} keys) can be migrated")
            else:
                message = f"Test Migration failed for {gid}: {report.problem}"
            self._record(group, None, message)
            return
        if report.problem is not None:
            attempts = migration.attempts + 1
            if attempts < START_ATTEMPTS:
                self._record(group, replace(migration, attempts=attempts),
                             f"Start Migration for {gid}: attempt {attempts} of {START_ATTEMPTS} failed: {report.problem}")
                raise Retry(1.0, report.problem)
            # ElastiCache gives up after a few tries and the group is available again, its primary a primary.
            self._record(group, None, f"Start Migration failed for {gid}: {report.problem}",
                         status=GroupStatus.AVAILABLE)
            return
        primary_id = group.node_groups[0].primary_cluster_id
        self._record(group, replace(migration, phase=MigrationPhase.SYNCING, primary_cluster_id=primary_id),
                     f"Migration of replication group {gid} started: primary {primary_id} replicates from the source "
                     f"{migration.source} ({engine_name(report.engine)} {report.version}, {report.keys} keys)")
        self.nodes.unchecked(list(self.nodes.members(group).values()))
        raise Retry(0.0, "")  # the topology points the primary at the source now

    async def _complete(self, group: ReplicationGroup, migration: Migration, *, primary_key: str,
                        source: SourceReport | None, offset: int, syncing: list[str]) -> None:
        gid = group.group_id
        if not migration.force:
            if source is None or source.problem is not None or offset < source.offset or syncing:
                if source is None:
                    behind = "link down"
                elif syncing and source.problem is None and offset >= source.offset:
                    behind = f"replica {', '.join(syncing)} still syncing from the primary"
                else:
                    behind = f"replication offset {offset} of the source's {source.offset}"
                self._record(group, replace(migration, phase=migration.resume or MigrationPhase.SYNCING, resume=None),
                             f"Complete Migration failed for {gid}: the data is not in sync with the source "
                             f"{migration.source} ({behind}); try again once in sync, or use Force")
                return
        primary = next(c for c in self.nodes.members(group).values() if node_key(c) == primary_key)
        await self.nodes.admin(primary).promote()  # REPLICAOF NO ONE: the group's replicas go on from it
        self.nodes.unchecked([primary])
        self._record(group, None, f"Complete Migration successful for {gid}", status=GroupStatus.AVAILABLE)
