"""The node operations every workflow uses, and what the control plane has observed of the nodes.

Start (or adopt) a cluster's node with the right role, fence it, stop it, bind endpoint
addresses on it, forget it, mark it available, fail its creation, record events. Every
connection to a node goes through its ``NodeAccess``. Observed state (which process of a node
was checked, what it listens on, which replica finished its full sync) lives here and is
rebuilt from the engines after a control-plane restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from cachefleet.control.health import HealthMonitor
from cachefleet.control.scheduler import Retry
from cachefleet.domain import nodetypes
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus, NodeStatus
from cachefleet.domain.events import event_for
from cachefleet.domain.operations import Operation, OperationKind, operation_key, progressed
from cachefleet.domain.ports import Clock, StateStore
from cachefleet.domain.replication_groups import GroupStatus, ReplicationGroup
from cachefleet.domain.resource import Resource
from cachefleet.engine.access import NodeAccess
from cachefleet.engine.admin import AdminClient, EngineError
from cachefleet.engine.config import NodeConfig, render
from cachefleet.providers.local import NodeStartFailed, Seed

log = logging.getLogger(__name__)

START_ATTEMPTS = 2
RECOVERING = "recovering"  # status_reason of a lost primary coming back as a replica


class Provider(Protocol):
    """Where nodes run (providers/local.py)."""

    def adopt_all(self) -> dict[str, int]: ...
    def pid(self, key: str) -> int | None: ...
    def running(self) -> dict[str, int]: ...
    def node_dir(self, key: str) -> Path: ...
    async def start(
        self, key: str, *, binary: Path, config: str, access: NodeAccess, seed: Seed | None = None,
        load_bytes: int = 0,
    ) -> int: ...
    async def stop(self, key: str, *, graceful: bool = False, timeout: float = 5.0) -> None: ...
    def remove(self, key: str) -> None: ...
    def close(self) -> None: ...
    def write_config(self, key: str, config: str) -> Path: ...
    def fence(self, key: str) -> None: ...


class Binary(Protocol):
    """An engine build's server executable."""

    @property
    def server(self) -> Path: ...


class Binaries(Protocol):
    """Finds the executable of an installed engine build (engine/catalog.py)."""

    def binary(self, engine: str, version: str) -> Binary: ...


class GroupFailed(Exception):
    """A node of a group being created would not start: the group is create-failed now."""


def node_key(cluster: CacheCluster) -> str:
    """A node is known by its address: unique in the node network, and stable for the node's life.

    (A warm node becomes a cluster's node by being given its address; see control/warm.py.)
    """
    return cluster.node.address


@dataclass
class Observed:
    """What the control plane knows of the running nodes, by node key (rebuilt after a restart)."""

    verified: dict[str, int]  # node key -> pid whose role and settings were checked
    binds: dict[str, list[str]]  # node key -> addresses it listens on
    synced: dict[str, int]  # replica's node key -> pid that finished its full sync
    rebooted: set[str]  # stopped for a reboot, not available again yet
    fenced_hung: set[str]  # killed for not answering, not restarted yet
    links_down: set[str]  # replicas whose lost replication link was recorded


class Nodes:
    """The node toolkit every workflow uses, and the observed state of the nodes."""

    def __init__(
        self, *, store: StateStore, provider: Provider, binaries: Binaries, clock: Clock, health: HealthMonitor
    ) -> None:
        self.store = store
        self.provider = provider
        self.clock = clock
        self.health = health
        self._binaries = binaries
        self._admins: dict[str, AdminClient] = {}
        self.observed = Observed({}, {}, {}, set(), set(), set())

    # ------------------------------------------------------------------ reaching nodes
    def server(self, engine: str, version: str) -> Path:
        """The server executable of an installed engine build."""
        return self._binaries.binary(engine, version).server

    def access(self, cluster: CacheCluster) -> NodeAccess:
        return NodeAccess(cluster.node.address, cluster.port)

    def admin(self, cluster: CacheCluster) -> AdminClient:
        key = node_key(cluster)
        admin = self._admins.get(key)
        if admin is None:
            admin = self.access(cluster).admin()
            self._admins[key] = admin
        return admin

    async def close(self) -> None:
        for admin in self._admins.values():
            await admin.close()
        self._admins.clear()

    def running(self, cluster: CacheCluster) -> bool:
        return self.provider.pid(node_key(cluster)) is not None

    def checked(self, cluster: CacheCluster) -> bool:
        """Whether this process of the node had its role and settings checked."""
        key = node_key(cluster)
        pid = self.provider.pid(key)
        return pid is not None and self.observed.verified.get(key) == pid

    def mark_checked(self, cluster: CacheCluster) -> None:
        self.observed.verified[node_key(cluster)] = self.provider.pid(node_key(cluster)) or 0

    def unchecked(self, clusters: Sequence[CacheCluster]) -> None:
        """Their roles must be looked at again (after a failover, say)."""
        for cluster in clusters:
            self.observed.verified.pop(node_key(cluster), None)

    # ------------------------------------------------------------------ records and events
    def members(self, group: ReplicationGroup) -> dict[str, CacheCluster]:
        found = {}
        for cluster_id in group.member_cluster_ids:
            cluster = self.store.get(CacheCluster, group.region, cluster_id)
            if cluster is not None:
                found[cluster_id] = cluster
        return found

    def current(self, group: ReplicationGroup) -> ReplicationGroup | None:
        return self.store.get(ReplicationGroup, group.region, group.group_id)

    def record(self, resource: Resource, message: str) -> None:
        with self.store.transaction() as tx:
            tx.add_event(event_for(resource, message, self.clock.now()))

    def operation(self, resource: Resource, kind: OperationKind) -> Operation | None:
        return self.store.get(Operation, resource.region, operation_key(resource.KIND.name, resource.key, kind))

    def progressed(self, operation: Operation, step: str) -> None:
        """Records that ``operation`` reached ``step`` (its deadline moves forward)."""
        if operation.step != step:
            with self.store.transaction() as tx:
                tx.put(progressed(operation, step, now=self.clock.now()))

    def is_primary(self, cluster: CacheCluster) -> bool:
        if cluster.replication_group_id is None:
            return True
        group = self.store.get(ReplicationGroup, cluster.region, cluster.replication_group_id)
        return group is not None and cluster.cluster_id in group.primary_cluster_ids

    def mark_available(self, cluster: CacheCluster) -> None:
        current = self.store.get(CacheCluster, cluster.region, cluster.cluster_id)
        if current is None or current.status not in (ClusterStatus.CREATING, ClusterStatus.MODIFYING, ClusterStatus.REBOOTING):
            return
        created = current.status == ClusterStatus.CREATING
        updated = replace(
            current, status=ClusterStatus.AVAILABLE, status_reason="", node=replace(current.node, status=NodeStatus.AVAILABLE)
        )
        self.observed.rebooted.discard(node_key(current))
        role = "replica" if current.replication_group_id and not self.is_primary(current) else "primary"
        with self.store.transaction() as tx:
            tx.put(updated)
            if current.status_reason == RECOVERING:
                message = f"Finished recovery for cache nodes {current.cluster_id}: it is a replica in sync with the primary"
            elif current.status == ClusterStatus.REBOOTING:
                message = f"Cache node {current.node.node_id} of cache cluster {current.cluster_id} rebooted"
            elif created:
                message = (
                    f"Cache cluster {current.cluster_id} created: added cache node {current.node.node_id} "
                    f"({role}) at {current.node.address}:{current.port} in availability zone {current.availability_zone}"
                )
            else:
                message = f"Cache cluster {current.cluster_id} is available"
            tx.add_event(event_for(updated, message, self.clock.now()))

    # ------------------------------------------------------------------ starting and adopting
    async def ensure_running(
        self, cluster: CacheCluster, *, replica_of: tuple[str, int] | None, sharded: bool = False,
        seed: Seed | None = None, load_bytes: int = 0,
    ) -> None:
        """Starts the cluster's node if needed; makes its role match ``replica_of`` (cluster mode
        disabled) or its settings match its node type (cluster mode enabled: roles are the
        topology's business). A node started with ``seed`` loads the RDB (``load_bytes``) it
        puts in its data dir before it answers (a restore's primaries)."""
        if self.checked(cluster):
            return
        key = node_key(cluster)
        if self.provider.pid(key) is None:
            quiet = cluster.status in (ClusterStatus.CREATING, ClusterStatus.REBOOTING) or cluster.status_reason == RECOVERING
            await self._start(cluster, replica_of, sharded=sharded, seed=seed, load_bytes=load_bytes)
            cause = "it had stopped answering" if key in self.observed.fenced_hung else "its engine process had stopped"
            # Cluster mode enabled starts every node without replica_of: the record says which it was.
            was_primary = replica_of is None and (not sharded or self.is_primary(cluster))
            self.observed.fenced_hung.discard(key)
            if not quiet:
                self.record(
                    cluster,
                    f"Cache node {cluster.node.node_id} of cache cluster {cluster.cluster_id} restarted: {cause}"
                    + ("; the node was a primary, so its data was lost" if was_primary else "; it resyncs from the primary"),
                )
        elif sharded:
            await self._adopt_sharded(cluster)
        else:
            await self._fix_role(cluster, replica_of)
        self.mark_checked(cluster)

    async def ensure_all(
        self,
        group: ReplicationGroup,
        clusters: Sequence[CacheCluster],
        *,
        replica_of: tuple[str, int] | None,
        sharded: bool = False,
    ) -> list[CacheCluster]:
        """Runs every one of ``clusters`` at once; those that started. A node that would not start
        fails the group's creation (GroupFailed), or is retried later."""
        outcomes = await asyncio.gather(
            *(self.ensure_running(c, replica_of=replica_of, sharded=sharded) for c in clusters), return_exceptions=True
        )
        started = []
        for cluster, outcome in zip(clusters, outcomes, strict=True):
            if isinstance(outcome, NodeStartFailed):
                await self.node_failed(group, cluster, str(outcome))
                current = self.current(group)
                if current is None or current.status == GroupStatus.CREATE_FAILED:
                    raise GroupFailed(str(outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                started.append(cluster)
        return started

    def config(self, cluster: CacheCluster, replica_of: tuple[str, int] | None, *, sharded: bool) -> str:
        return render(
            NodeConfig(
                address=cluster.node.address,
                port=cluster.port,
                directory=self.provider.node_dir(node_key(cluster)),
                maxmemory=nodetypes.maxmemory_bytes(cluster.node_type),
                replica_of=replica_of,
                cluster=sharded,
                label=f"node {cluster.node.node_id} of cache cluster {cluster.cluster_id} ({cluster.region})",
            )
        )

    async def _adopt_sharded(self, cluster: CacheCluster) -> None:
        """A running cluster-mode node (adopted after a restart, or a warm node just given to a
        cluster): give it its node type's memory and the config file it would be started with."""
        admin = self.admin(cluster)
        await admin.config_set("maxmemory", str(nodetypes.maxmemory_bytes(cluster.node_type)))
        self.provider.write_config(node_key(cluster), self.config(cluster, None, sharded=True))
        self.observed.binds[node_key(cluster)] = await admin.bound_addresses()

    async def _start(
        self, cluster: CacheCluster, replica_of: tuple[str, int] | None, *, sharded: bool, seed: Seed | None = None,
        load_bytes: int = 0,
    ) -> None:
        key = node_key(cluster)
        binary = self._binaries.binary(cluster.engine, cluster.engine_version)
        config = self.config(cluster, replica_of, sharded=sharded)
        last: NodeStartFailed | None = None
        for _ in range(START_ATTEMPTS):
            try:
                await self.provider.start(
                    key, binary=binary.server, config=config, access=self.access(cluster), seed=seed,
                    load_bytes=load_bytes,
                )
            except NodeStartFailed as failure:
                last = failure
                continue
            self.observed.binds[key] = [cluster.node.address]
            await self._drop_admin(key)
            return
        assert last is not None
        raise last

    async def _fix_role(self, cluster: CacheCluster, replica_of: tuple[str, int] | None) -> None:
        admin = self.admin(cluster)
        info = await admin.info("replication")
        if replica_of is None:
            if info.get("role") != "master":
                log.info("promoting %s to primary", cluster.cluster_id)
                await admin.promote()
        elif info.get("role") != "slave" or (info.get("master_host"), info.get("master_port")) != (
            replica_of[0],
            str(replica_of[1]),
        ):
            log.info("pointing %s at %s:%s", cluster.cluster_id, *replica_of)
            await admin.replicate(*replica_of)
        self.observed.binds[node_key(cluster)] = await admin.bound_addresses()

    async def node_failed(self, group: ReplicationGroup | None, cluster: CacheCluster, reason: str) -> None:
        """A node would not start: fail the create, or retry a node that used to run."""
        message = f"Cache node {cluster.node.node_id} of cache cluster {cluster.cluster_id} would not start: {reason}"
        log.warning("%s", message)
        if group is not None and group.status == GroupStatus.CREATING:
            await self.fail_group_creation(group, message, cause=cluster)
            return
        if cluster.status == ClusterStatus.CREATING:
            await self.provider.stop(node_key(cluster))
            with self.store.transaction() as tx:
                tx.put(replace(cluster, status=ClusterStatus.CREATE_FAILED, status_reason=reason))
                create = self.operation(cluster, OperationKind.CREATE)
                if create is not None:
                    tx.delete(create)
                tx.add_event(event_for(cluster, f"Cache cluster {cluster.cluster_id} create-failed: {message}", self.clock.now()))
            return
        self.record(cluster, message + "; trying again in 5 s")
        raise Retry(5.0, message)

    async def fail_group_creation(self, group: ReplicationGroup, message: str, *, cause: CacheCluster | None = None) -> None:
        """The group will not come up: its nodes stop, it and its members are create-failed."""
        members = self.members(group)
        for member in members.values():
            await self.provider.stop(node_key(member))
        current = self.current(group) or group
        with self.store.transaction() as tx:
            for member in members.values():
                tx.put(replace(member, status=ClusterStatus.CREATE_FAILED, status_reason=message))
            failed = replace(current, status=GroupStatus.CREATE_FAILED, status_reason=message)
            tx.put(failed)
            for kind in OperationKind:
                operation = self.operation(current, kind)
                if operation is not None:
                    tx.delete(operation)
            if cause is not None:
                tx.add_event(event_for(cause, message, self.clock.now()))
            tx.add_event(event_for(failed, f"Replication group {group.group_id} create-failed: {message}", self.clock.now()))

    # ------------------------------------------------------------------ stopping and forgetting
    async def stop(self, cluster: CacheCluster) -> None:
        """Stops the node's process and forgets what was observed of it."""
        key = node_key(cluster)
        await self.provider.stop(key)
        await self.forget(key)

    async def fence(self, key: str) -> None:
        """Kills the node at once (it must not take another write), then forgets it."""
        self.provider.fence(key)
        await self.provider.stop(key)
        await self.forget(key)

    async def forget(self, key: str) -> None:
        """Drops what was observed of a node whose process is gone (or about to be)."""
        if self.health.watching(key):
            self.health.unwatch(key)
        await self._drop_admin(key)
        self.observed.verified.pop(key, None)
        self.observed.binds.pop(key, None)

    def exited(self, key: str) -> None:
        """The provider saw the node's process exit."""
        self.observed.verified.pop(key, None)
        self.observed.binds.pop(key, None)

    async def _drop_admin(self, key: str) -> None:
        admin = self._admins.pop(key, None)
        if admin is not None:
            await admin.close()

    async def destroy(self, cluster: CacheCluster, *, group: ReplicationGroup | None) -> None:
        """Stops the node, removes its files, then its record (and its place in ``group``)."""
        key = node_key(cluster)
        await self.stop(cluster)
        self.provider.remove(key)
        self.observed.links_down.discard(key)
        self.observed.synced.pop(key, None)
        with self.store.transaction() as tx:
            tx.delete(cluster)
            tx.add_event(event_for(cluster, f"Cache cluster {cluster.cluster_id} deleted", self.clock.now()))
            if group is not None:
                current = self.current(group)
                if current is not None:
                    tx.put(
                        replace(
                            current,
                            node_groups=tuple(
                                replace(ng, member_cluster_ids=tuple(c for c in ng.member_cluster_ids if c != cluster.cluster_id))
                                for ng in current.node_groups
                            ),
                        )
                    )

    async def fence_hung(self, cluster: CacheCluster, then: str) -> None:
        key = node_key(cluster)
        self.record(
            cluster,
            f"Cache node {cluster.node.node_id} of cache cluster {cluster.cluster_id} stopped answering "
            f"({self.health.silent_for(key):.1f} s); fencing it and {then}",
        )
        self.observed.fenced_hung.add(key)
        await self.fence(key)

    async def reboot(self, cluster: CacheCluster) -> bool:
        """Stops a rebooting node once (the next pass starts it again); False if it already was."""
        key = node_key(cluster)
        if key in self.observed.rebooted or self.provider.pid(key) is None:
            return False
        self.observed.rebooted.add(key)
        await self.provider.stop(key, graceful=True)
        await self.forget(key)
        return True

    async def stop_rebooted_and_hung(
        self, group: ReplicationGroup, members: dict[str, CacheCluster], *, failover_requested: bool
    ) -> None:
        """Rebooted nodes and hung ones are stopped here; the rest of the pass starts them again.

        A hung replica is fenced and replaced by a fresh one that resyncs. A hung primary is
        the failover's business with automatic failover; without it, the primary is fenced
        and restarted in place, and its data is lost (as on ElastiCache without persistence).
        A rebooting primary with a failover request is the failover's business too.
        """
        automatic = group.automatic_failover == "enabled"
        for cluster in members.values():
            key = node_key(cluster)
            if self.provider.pid(key) is None:
                continue
            primary = cluster.cluster_id in group.primary_cluster_ids
            rebooting = cluster.status == ClusterStatus.REBOOTING and key not in self.observed.rebooted
            if rebooting and not (primary and failover_requested):
                await self.reboot(cluster)
            elif not self.health.healthy(key) and (not primary or not (automatic or failover_requested)):
                await self.fence_hung(cluster, "restarting it in place; automatic failover is off" if primary else "replacing it")

    # ------------------------------------------------------------------ addresses
    async def bound(self, cluster: CacheCluster) -> list[str]:
        """The addresses the node listens on (asked of the engine once per process)."""
        key = node_key(cluster)
        if key not in self.observed.binds:
            self.observed.binds[key] = await self.admin(cluster).bound_addresses()
        return self.observed.binds[key]

    async def set_binds(self, cluster: CacheCluster, addresses: list[str]) -> None:
        """Makes the node listen on exactly these addresses (its own first, then endpoints).

        Never while the engine has a child process: right after a fork the child still holds
        the listening sockets, a rebind then fails, and the engine's own rollback can leave it
        listening nowhere. If a rebind fails anyway, the node's own address is restored over
        the admin connection, which stays open whatever the engine listens on.
        """
        key = node_key(cluster)
        admin = self.admin(cluster)
        if await admin.forking():
            raise Retry(0.05, f"{cluster.cluster_id} is saving in the background; its addresses change after")
        try:
            await admin.bind(addresses)
        except EngineError:
            for _ in range(40):
                try:
                    await admin.bind([cluster.node.address])
                    self.observed.binds[key] = [cluster.node.address]
                    break
                except EngineError:
                    await asyncio.sleep(0.05)
            raise
        self.observed.binds[key] = list(addresses)
        log.info("node %s listens on %s", key, " ".join(addresses))

    async def place(self, desired: dict[str, tuple[CacheCluster, list[str]]]) -> None:
        """Binds each node's wanted addresses: releases first (an address can be bound by one
        process only), then takes."""
        for cluster, _ in desired.values():
            await self.bound(cluster)
        for key, (cluster, wanted) in desired.items():
            if set(self.observed.binds[key]) - set(wanted):
                await self.set_binds(cluster, wanted)
        for key, (cluster, wanted) in desired.items():
            if set(wanted) - set(self.observed.binds[key]):
                await self.set_binds(cluster, wanted)

    # ------------------------------------------------------------------ watching
    def watch(self, cluster: CacheCluster) -> None:
        """A running node is probed, so that a hang is noticed and its replication tracked."""
        key = node_key(cluster)
        if self.provider.pid(key) is not None and cluster.status != ClusterStatus.DELETING:
            self.health.watch(key, self.access(cluster))
        elif self.health.watching(key):
            self.health.unwatch(key)

    def note_links(self, group: ReplicationGroup) -> None:
        """Records a replica whose replication link stays down, and its recovery."""
        current = self.current(group) or group
        for cluster in self.members(current).values():
            key = node_key(cluster)
            if cluster.cluster_id in current.primary_cluster_ids or cluster.status != ClusterStatus.AVAILABLE:
                continue
            state = self.health.replication(key)
            offset = f" at offset {state.offset}" if state is not None else ""
            if self.health.link_lost(key) and key not in self.observed.links_down:
                self.observed.links_down.add(key)
                self.record(
                    cluster,
                    f"Replication link of cache cluster {cluster.cluster_id} to its primary is down "
                    f"({self.health.link_down_for(key):.1f} s){offset}; its data is falling behind",
                )
            elif key in self.observed.links_down and state is not None and state.link_up:
                self.observed.links_down.discard(key)
                self.record(cluster, f"Replication link of cache cluster {cluster.cluster_id} to its primary is up again{offset}")

    async def in_sync(self, replica: CacheCluster, source: tuple[str, int]) -> bool:
        """Whether the replica follows ``source`` with its link up (its full sync is done)."""
        info = await self.admin(replica).info("replication")
        return (
            info.get("role") == "slave"
            and info.get("master_host") == source[0]
            and info.get("master_port") == str(source[1])
            and info.get("master_link_status") == "up"
        )
