"""Level-triggered reconciliation: make the engine processes match the desired state.

One worker per resource (a replication group with all its member clusters, or a standalone
cluster) takes one idempotent pass at a time: it looks at the stored desired state and at
the processes, and takes the next steps. Every pass can be interrupted by a crash and
simply run again: processes are found again by the provider, engines are asked for their
actual role and bound addresses, and nothing is started twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

from cachefleet.control.failover import RECOVERING, Failover
from cachefleet.control.health import HealthMonitor
from cachefleet.control.sharded import ShardedTopology
from cachefleet.control.warm import WarmPool
from cachefleet.domain import nodetypes
from cachefleet.domain.base import event_for
from cachefleet.domain.model import (
    CacheCluster,
    ClusterStatus,
    GroupStatus,
    NodeGroup,
    NodeStatus,
    ReplicationGroup,
)
from cachefleet.domain.ports import Clock, Resource, StateStore
from cachefleet.engine.admin import AdminClient, EngineError
from cachefleet.engine.config import NodeConfig, render
from cachefleet.providers.local import NodeStartFailed

log = logging.getLogger(__name__)

START_ATTEMPTS = 2
# How long a node that stopped answering PING may stay silent before it is fenced without a
# failover. The health monitor calls a node unhealthy after ~0.5 s (fast, for failovers, which
# keep the data on a replica), but a busy node is silent that long too: under one busy core,
# 6 SETRANGEs of 100 MiB kept a primary from answering for 0.6 s, and it was restarted empty.
# Restarting a primary (or a standalone node) in place loses all its data; replacing a replica
# costs a full resync of the whole data set. Only a node silent this long is hung.
HUNG_PRIMARY_GRACE = 10.0
HUNG_REPLICA_GRACE = 5.0


class Provider(Protocol):
    def adopt_all(self) -> dict[str, int]: ...
    def pid(self, key: str) -> int | None: ...
    def node_dir(self, key: str) -> Path: ...
    async def start(self, key: str, *, binary: Path, config: str, address: str, port: int) -> int: ...
    async def stop(self, key: str, *, graceful: bool = False, timeout: float = 5.0) -> None: ...
    def remove(self, key: str) -> None: ...
    def close(self) -> None: ...
    def write_config(self, key: str, config: str) -> Path: ...
    def fence(self, key: str) -> None: ...


class Binaries(Protocol):
    def binary(self, engine: str, version: str) -> _Binary: ...


class _Binary(Protocol):
    @property
    def server(self) -> Path: ...


@dataclass(frozen=True)
class Target:
    kind: Literal["group", "cluster"]
    region: str
    key: str


class Retry(Exception):
    """The pass made what progress it could; run it again after ``delay`` seconds."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason)
        self.delay = delay


def node_key(cluster: CacheCluster) -> str:
    """A node is known by its address: unique in the node network, and stable for the node's life.

    (A warm node becomes a cluster's node by being given its address; see control/warm.py.)
    """
    return cluster.node.address


class Reconciler:
    """Schedules reconcile passes and owns the node operations.

    The public members (``store``, ``provider``, ``health``, ``admin()``, ``ensure_running()``,
    ``set_binds()``, ``destroy_cluster()``...) are the toolkit of the two collaborators that
    act on a shard: ``ShardedTopology`` (cluster mode enabled) and ``Failover``.
    """

    def __init__(
        self,
        *,
        store: StateStore,
        provider: Provider,
        binaries: Binaries,
        clock: Clock,
        resync_interval: float = 2.0,
        warm: WarmPool | None = None,
    ) -> None:
        self.store = store
        self.provider = provider
        self._binaries = binaries
        self.clock = clock
        self._resync_interval = resync_interval
        self._dirty: set[Target] = set()
        self._workers: dict[Target, asyncio.Task[None]] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._admins: dict[str, AdminClient] = {}
        # Observed state, rebuilt from the engines after a restart of the control plane.
        self.verified: dict[str, int] = {}  # node key -> pid whose role and binds were checked
        self.binds: dict[str, list[str]] = {}  # node key -> addresses it listens on
        self.synced: dict[str, int] = {}  # replica's node key -> pid that finished its full sync
        self._resync_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._warm = warm
        self._sharded = ShardedTopology(self)
        self.health = HealthMonitor(on_change=self._on_health)
        self.failover = Failover(self)
        self._rebooted: set[str] = set()  # node keys stopped for a reboot, not yet available again
        self._fenced_hung: set[str] = set()  # node keys killed for not answering, not restarted yet
        self._links_down: set[str] = set()  # replicas whose lost replication link was recorded

    # ------------------------------------------------------------------ wiring
    def on_change(self, kind: type[Resource], region: str, key: str) -> None:
        if kind is ReplicationGroup:
            self._kick(Target("group", region, key))
        elif kind is CacheCluster:
            cluster = self.store.get(CacheCluster, region, key)
            if cluster is not None and cluster.replication_group_id is not None:
                self._kick(Target("group", region, cluster.replication_group_id))
            else:
                self._kick(Target("cluster", region, key))

    def on_node_exit(self, key: str, status: int) -> None:
        for cluster in self.store.list(CacheCluster):
            if node_key(cluster) == key:
                self.verified.pop(key, None)
                self.binds.pop(key, None)
                self.on_change(CacheCluster, cluster.region, cluster.cluster_id)
                return

    def _on_health(self, key: str) -> None:
        for cluster in self.store.list(CacheCluster):
            if node_key(cluster) == key:
                self.on_change(CacheCluster, cluster.region, cluster.cluster_id)
                return

    async def start(self) -> None:
        running = self.provider.adopt_all()
        known = {node_key(c) for c in self.store.list(CacheCluster)}
        if self._warm is not None:
            await self._warm.adopt({k: v for k, v in running.items() if k not in known})
            known |= self._warm.addresses()
        for key in sorted(set(running) - known):
            log.warning("stopping orphan engine %s (pid %s): no cache cluster owns it", key, running[key])
            await self.provider.stop(key)
            self.provider.remove(key)
        self._resync()
        self._resync_task = asyncio.create_task(self._resync_loop(), name="reconciler-resync")
        self.health.start()
        if self._warm is not None:
            self._warm.start()

    async def stop(self) -> None:
        """Stops reconciling. Engine processes keep running; a later start adopts them."""
        self._stopping = True
        for timer in self._timers:
            timer.cancel()
        tasks = list(self._workers.values())
        if self._resync_task is not None:
            tasks.append(self._resync_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._warm is not None:
            await self._warm.stop()
        await self.health.stop()
        for admin in self._admins.values():
            await admin.close()
        self._admins.clear()
        self.provider.close()

    @property
    def busy(self) -> int:
        """Resources being reconciled right now."""
        return len(self._workers)

    async def idle(self) -> None:
        """Waits until no worker is busy (used by tests and benchmarks)."""
        while self._workers:
            await asyncio.gather(*self._workers.values(), return_exceptions=True)

    # ------------------------------------------------------------------ scheduling
    def _resync(self) -> None:
        for group in self.store.list(ReplicationGroup):
            self._kick(Target("group", group.region, group.group_id))
        for cluster in self.store.list(CacheCluster):
            if cluster.replication_group_id is None:
                self._kick(Target("cluster", cluster.region, cluster.cluster_id))

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self._resync_interval)
            self._resync()

    def _kick(self, target: Target) -> None:
        if self._stopping:
            return
        self._dirty.add(target)
        if target not in self._workers:
            self._workers[target] = asyncio.create_task(self._work(target), name=f"reconcile {target.key}")

    def _later(self, target: Target, delay: float) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            self._kick(target)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    async def _work(self, target: Target) -> None:
        try:
            while target in self._dirty:
                self._dirty.discard(target)
                try:
                    if target.kind == "group":
                        await self._reconcile_group(target)
                    else:
                        await self._reconcile_cluster(target)
                except Retry as retry:
                    if retry.args and retry.args[0]:
                        log.info("%s: %s; again in %.3f s", target.key, retry.args[0], retry.delay)
                    self._later(target, retry.delay)
                except EngineError as error:
                    log.warning("%s: %s; again in 0.5 s", target.key, error)
                    self._later(target, 0.5)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("reconciling %s failed; again in 2 s", target.key)
                    self._later(target, 2.0)
        finally:
            self._workers.pop(target, None)

    # ------------------------------------------------------------------ replication groups
    async def _reconcile_group(self, target: Target) -> None:
        group = self.store.get(ReplicationGroup, target.region, target.key)
        if group is None:
            return
        members = self.members(group)
        if group.status == GroupStatus.DELETING:
            await self._delete_group(group, members)
            return
        if group.status == GroupStatus.CREATE_FAILED:
            for cluster in members.values():
                await self.provider.stop(node_key(cluster))
            return
        await self._stop_rebooted_and_hung(group, members)
        if group.cluster_enabled:
            await self._sharded.reconcile(group, members)
        else:
            for node_group in group.node_groups:
                await self._reconcile_node_group(group, node_group, members)
        self._watch(group)
        self._note_links(group)
        current = self.store.get(ReplicationGroup, group.region, group.group_id)
        if current is not None and current.pending_node_type is not None:
            await self._apply_node_type(current)
        await self._settle_group(group)

    async def _reconcile_node_group(
        self, group: ReplicationGroup, node_group: NodeGroup, members: dict[str, CacheCluster]
    ) -> None:
        primary = members.get(node_group.primary_cluster_id)
        if primary is None:
            raise Retry(1.0, f"primary {node_group.primary_cluster_id} of {group.group_id} has no record")
        trouble = self.failover.trouble(group, node_group, primary)
        if trouble is not None and await self.failover.run(group, node_group, members, trouble):
            raise Retry(0.0, "")  # again at once, with the new primary
        try:
            await self.ensure_running(primary, replica_of=None)
        except NodeStartFailed as failure:
            await self.node_failed(group, primary, str(failure))
            return
        source = (primary.node.address, primary.port)
        replicas = [members[cid] for cid in node_group.replica_cluster_ids if cid in members]
        # A group being created holds no data its readers could miss: its reader endpoint
        # waits for a replica instead of going to the primary and straight off it again.
        creating = group.status == GroupStatus.CREATING and bool(replicas)
        reader_homeless = not creating and await self._reader_homeless(node_group, primary, replicas)
        if reader_homeless or (
            node_group.primary_endpoint and node_group.primary_endpoint not in self.binds.get(node_key(primary), [])
        ):
            # Before replicas start: their full sync makes the primary fork, and a fork is no
            # time to change what it listens on (see set_binds). The reader endpoint waits on
            # the primary while no replica holds it (a replica takes it once in sync).
            await self._place_endpoints(node_group, primary, [], [], reader=False, reader_on_primary=reader_homeless)
        live = [c for c in replicas if c.status not in (ClusterStatus.DELETING, ClusterStatus.CREATE_FAILED)]
        outcomes = await asyncio.gather(
            *(self.ensure_running(c, replica_of=source) for c in live), return_exceptions=True
        )
        started = []
        for cluster, outcome in zip(live, outcomes, strict=True):
            if isinstance(outcome, NodeStartFailed):
                await self.node_failed(group, cluster, str(outcome))
                current = self.store.get(ReplicationGroup, group.region, group.group_id)
                if current is None or current.status == GroupStatus.CREATE_FAILED:
                    return
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                started.append(cluster)

        # Only a replica that finished its full sync (this process of it) may serve reads.
        synced, pending = [], []
        for cluster in started:
            key = node_key(cluster)
            pid = self.provider.pid(key)
            if pid is not None and self.synced.get(key) == pid:
                synced.append(cluster)
            elif await self._in_sync(cluster, source):
                self.synced[key] = pid or 0
                synced.append(cluster)
            else:
                pending.append(cluster.cluster_id)

        leaving = [c for c in replicas if c not in started and self.provider.pid(node_key(c)) is not None]
        await self._place_endpoints(
            node_group, primary, started, leaving, readers=synced, reader=bool(synced) or not (creating and started)
        )

        for cluster in replicas:
            if cluster.status == ClusterStatus.DELETING:
                await self.destroy_cluster(cluster, group=group)

        self.mark_available(primary)
        for cluster in synced:
            self.mark_available(cluster)
        if pending:
            raise Retry(0.005, "")

    def _watch(self, group: ReplicationGroup) -> None:
        """Every running node is probed, so that a hang is noticed and its replication tracked."""
        for cluster in self.members(group).values():
            self._watch_node(cluster)

    def _watch_node(self, cluster: CacheCluster) -> None:
        key = node_key(cluster)
        if self.provider.pid(key) is not None and cluster.status != ClusterStatus.DELETING:
            self.health.watch(key, cluster.node.address, cluster.port)
        elif self.health.watching(key):
            self.health.unwatch(key)

    def _note_links(self, group: ReplicationGroup) -> None:
        """Records a replica whose replication link stays down, and its recovery."""
        current = self.store.get(ReplicationGroup, group.region, group.group_id) or group
        primaries = {ng.primary_cluster_id for ng in current.node_groups}
        for cluster in self.members(current).values():
            key = node_key(cluster)
            if cluster.cluster_id in primaries or cluster.status != ClusterStatus.AVAILABLE:
                continue
            state = self.health.replication(key)
            offset = f" at offset {state.offset}" if state is not None else ""
            if self.health.link_lost(key) and key not in self._links_down:
                self._links_down.add(key)
                self.record(
                    cluster,
                    f"Replication link of cache cluster {cluster.cluster_id} to its primary is down "
                    f"({self.health.link_down_for(key):.1f} s){offset}; its data is falling behind",
                )
            elif key in self._links_down and state is not None and state.link_up:
                self._links_down.discard(key)
                self.record(
                    cluster, f"Replication link of cache cluster {cluster.cluster_id} to its primary is up again{offset}"
                )

    async def _stop_rebooted_and_hung(self, group: ReplicationGroup, members: dict[str, CacheCluster]) -> None:
        """Rebooted nodes and hung ones are stopped here; the rest of the pass starts them again.

        A hung replica is fenced and replaced by a fresh one that resyncs. A hung primary is
        the failover's business with automatic failover; without it, the primary is fenced
        and restarted in place, and its data is lost (as on ElastiCache without persistence).
        A rebooting primary with a failover request is the failover's business too.
        """
        primaries = {ng.primary_cluster_id for ng in group.node_groups}
        requested = group.failover_request is not None
        automatic = group.automatic_failover == "enabled"
        for cluster in members.values():
            key = node_key(cluster)
            if self.provider.pid(key) is None:
                continue
            primary = cluster.cluster_id in primaries
            rebooting = cluster.status == ClusterStatus.REBOOTING and key not in self._rebooted and not (primary and requested)
            hung = not self.health.healthy(key) and (not primary or not (automatic or requested))
            if rebooting:
                self._rebooted.add(key)
                await self._stop_node(key)
            elif hung and self._silent_long_enough(
                Target("group", group.region, group.group_id), key, HUNG_PRIMARY_GRACE if primary else HUNG_REPLICA_GRACE
            ):
                await self._fence_hung(cluster, "restarting it in place; automatic failover is off" if primary else "replacing it")

    def _silent_long_enough(self, target: Target, key: str, grace: float) -> bool:
        """Whether an unhealthy node has been silent for ``grace`` seconds; if not yet, the
        target's pass runs again when it will have been (unless the node answers before)."""
        silent = self.health.silent_for(key)
        if silent >= grace:
            return True
        self._later(target, grace - silent)
        return False

    async def _fence_hung(self, cluster: CacheCluster, then: str) -> None:
        key = node_key(cluster)
        message = (
            f"Cache node {cluster.node.node_id} of cache cluster {cluster.cluster_id} stopped answering "
            f"({self.health.silent_for(key):.1f} s); fencing it and {then}"
        )
        log.warning("%s", message)
        self.record(cluster, message)
        self._fenced_hung.add(key)
        self.provider.fence(key)
        await self._stop_node(key)

    async def _stop_node(self, key: str) -> None:
        await self.provider.stop(key)
        self.health.unwatch(key)
        self.verified.pop(key, None)
        self.binds.pop(key, None)
        await self.drop_admin(key)

    async def _settle_group(self, group: ReplicationGroup) -> None:
        current = self.store.get(ReplicationGroup, group.region, group.group_id)
        if current is None or current.status not in (GroupStatus.CREATING, GroupStatus.MODIFYING):
            return
        if current.resharding is not None or current.failover_request is not None or current.pending_node_type is not None:
            return  # work in progress; the pass that finishes it settles the group
        members = self.members(current)
        if any(c.status not in (ClusterStatus.AVAILABLE, ClusterStatus.CREATE_FAILED) for c in members.values()):
            return
        if len(members) != len(current.member_cluster_ids):
            return
        node_group = current.node_groups[0]
        updated = replace(current, status=GroupStatus.AVAILABLE)
        with self.store.transaction() as tx:
            tx.put(updated)
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
            else:
                message = f"Replication group {current.group_id} modified and available"
            tx.add_event(event_for(updated, message, self.clock.now()))

    async def _apply_node_type(self, group: ReplicationGroup) -> None:
        """Vertical scaling: every node gets the new node type's maxmemory, if its data fits.

        The data is measured on every member, never on some: a node that is restarting, being
        replaced or still loading its full sync may be the one that holds more than the new
        node type has, so the change waits until each member is available, running and (for a
        replica) in sync with its primary.
        """
        node_type = group.pending_node_type
        assert node_type is not None
        limit = nodetypes.maxmemory_bytes(node_type)
        members = self.members(group)
        primaries = {ng.primary_cluster_id for ng in group.node_groups}
        used: dict[str, int] = {}
        waiting: list[str] = [c for c in group.member_cluster_ids if c not in members]
        for cluster in members.values():
            if cluster.status != ClusterStatus.AVAILABLE or self.provider.pid(node_key(cluster)) is None:
                waiting.append(cluster.cluster_id)
                continue
            admin = self.admin(cluster)
            if cluster.cluster_id not in primaries:
                replication = await admin.info("replication")
                if replication.get("master_link_status") != "up" or replication.get("master_sync_in_progress", "0") != "0":
                    waiting.append(cluster.cluster_id)
                    continue
            used[cluster.cluster_id] = int((await admin.info("memory")).get("used_memory", "0"))
        verdict, cluster_id = node_type_verdict(limit, used=used, waiting=waiting)
        if verdict is NodeTypeVerdict.WAIT:
            raise Retry(0.5, f"scaling {group.group_id} to {node_type} waits for {', '.join(sorted(waiting))} to be measured")
        if verdict is NodeTypeVerdict.REFUSE:
            size = used[cluster_id]
            with self.store.transaction() as tx:
                tx.put(replace(group, pending_node_type=None))
                tx.add_event(
                    event_for(
                        group,
                        f"Scaling replication group {group.group_id} to {node_type} failed: node of {cluster_id} "
                        f"holds {size} bytes, more than {node_type}'s {limit} bytes of memory; it stays {group.node_type}",
                        self.clock.now(),
                    )
                )
            return
        for cluster in members.values():
            await self.admin(cluster).config_set("maxmemory", str(limit))
        with self.store.transaction() as tx:
            for cluster in self.members(group).values():
                tx.put(replace(cluster, node_type=node_type))
            tx.put(replace(group, node_type=node_type, pending_node_type=None))
            tx.add_event(
                event_for(group, f"Replication group {group.group_id} scaled to {node_type}", self.clock.now())
            )

    async def _in_sync(self, replica: CacheCluster, source: tuple[str, int]) -> bool:
        info = await self.admin(replica).info("replication")
        return (
            info.get("role") == "slave"
            and info.get("master_host") == source[0]
            and info.get("master_port") == str(source[1])
            and info.get("master_link_status") == "up"
        )

    async def _reader_homeless(self, node_group: NodeGroup, primary: CacheCluster, replicas: list[CacheCluster]) -> bool:
        """True when no running node of the shard listens on its reader endpoint."""
        if not node_group.reader_endpoint:
            return False
        for cluster in [primary, *replicas]:
            key = node_key(cluster)
            if self.provider.pid(key) is None:
                continue
            if key not in self.binds:
                self.binds[key] = await self.admin(cluster).bound_addresses()
            if node_group.reader_endpoint in self.binds[key]:
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
        desired: dict[str, list[str]] = {node_key(primary): [primary.node.address]}
        for replica in [*replicas, *leaving]:
            desired[node_key(replica)] = [replica.node.address]
        if node_group.primary_endpoint:
            desired[node_key(primary)].append(node_group.primary_endpoint)
        if not reader:
            if node_group.reader_endpoint and (
                reader_on_primary or node_group.reader_endpoint in self.binds.get(node_key(primary), [])
            ):
                desired[node_key(primary)].append(node_group.reader_endpoint)
        elif node_group.reader_endpoint:
            candidates = replicas if readers is None else readers
            holder = primary
            if candidates:
                current = [r for r in candidates if node_group.reader_endpoint in self.binds.get(node_key(r), [])]
                holder = current[0] if current else candidates[0]
            desired[node_key(holder)].append(node_group.reader_endpoint)
        clusters = {node_key(c): c for c in [primary, *replicas, *leaving]}
        for key in desired:
            if key not in self.binds:
                self.binds[key] = await self.admin(clusters[key]).bound_addresses()
        # Release addresses first: an address can be bound by one process only.
        for key, wanted in desired.items():
            if set(self.binds[key]) - set(wanted):
                await self.set_binds(clusters[key], wanted)
        for key, wanted in desired.items():
            if set(wanted) - set(self.binds[key]):
                await self.set_binds(clusters[key], wanted)

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
                    self.binds[key] = [cluster.node.address]
                    break
                except EngineError:
                    await asyncio.sleep(0.05)
            raise
        self.binds[key] = list(addresses)
        log.info("node %s listens on %s", key, " ".join(addresses))

    async def _delete_group(self, group: ReplicationGroup, members: dict[str, CacheCluster]) -> None:
        retained = group.node_groups[0].primary_cluster_id if group.retain_primary_cluster else None
        for cluster in members.values():
            if cluster.cluster_id != retained:
                await self.destroy_cluster(cluster, group=None)
        keep = members.get(retained) if retained else None
        if keep is not None and self.provider.pid(node_key(keep)) is not None:
            await self.set_binds(keep, [keep.node.address])
        with self.store.transaction() as tx:
            if keep is not None:
                standalone = replace(
                    keep,
                    replication_group_id=None,
                    node_group_id=None,
                    status=ClusterStatus.AVAILABLE,
                )
                tx.put(standalone)
                tx.add_event(
                    event_for(
                        standalone,
                        f"Cache cluster {keep.cluster_id} left replication group {group.group_id} and is now standalone",
                        self.clock.now(),
                    )
                )
            tx.delete(group)
            tx.add_event(event_for(group, f"Replication group {group.group_id} deleted", self.clock.now()))

    # ------------------------------------------------------------------ standalone clusters
    async def _reconcile_cluster(self, target: Target) -> None:
        cluster = self.store.get(CacheCluster, target.region, target.key)
        if cluster is None:
            return
        if cluster.replication_group_id is not None:
            self._kick(Target("group", cluster.region, cluster.replication_group_id))
            return
        if cluster.status == ClusterStatus.DELETING:
            await self.destroy_cluster(cluster, group=None)
            return
        if cluster.status == ClusterStatus.CREATE_FAILED:
            await self.provider.stop(node_key(cluster))
            return
        if (
            cluster.status == ClusterStatus.REBOOTING
            and node_key(cluster) not in self._rebooted
            and self.provider.pid(node_key(cluster)) is not None
        ):
            self._rebooted.add(node_key(cluster))
            await self.provider.stop(node_key(cluster), graceful=True)
            self.health.unwatch(node_key(cluster))
            self.verified.pop(node_key(cluster), None)
            await self.drop_admin(node_key(cluster))
        if (
            self.provider.pid(node_key(cluster)) is not None
            and not self.health.healthy(node_key(cluster))
            and self._silent_long_enough(target, node_key(cluster), HUNG_PRIMARY_GRACE)
        ):
            await self._fence_hung(cluster, "restarting it")
        try:
            await self.ensure_running(cluster, replica_of=None)
        except NodeStartFailed as failure:
            await self.node_failed(None, cluster, str(failure))
            return
        self.mark_available(cluster)
        self._watch_node(cluster)

    # ------------------------------------------------------------------ nodes
    async def ensure_running(
        self, cluster: CacheCluster, *, replica_of: tuple[str, int] | None, sharded: bool = False
    ) -> None:
        """Starts the cluster's node if needed; makes its role match ``replica_of`` (cluster mode
        disabled) or its settings match its node type (cluster mode enabled: roles are the
        topology's business)."""
        key = node_key(cluster)
        pid = self.provider.pid(key)
        if pid is not None and self.verified.get(key) == pid:
            return
        if pid is None:
            quiet = cluster.status in (ClusterStatus.CREATING, ClusterStatus.REBOOTING) or cluster.status_reason == RECOVERING
            await self._start_node(cluster, replica_of, sharded=sharded)
            cause = "it had stopped answering" if key in self._fenced_hung else "its engine process had stopped"
            # Cluster mode enabled starts every node without replica_of: the record says which it was.
            was_primary = replica_of is None and (not sharded or self._is_primary(cluster))
            self._fenced_hung.discard(key)
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
        self.verified[key] = self.provider.pid(key) or 0

    def _config(self, cluster: CacheCluster, replica_of: tuple[str, int] | None, *, sharded: bool) -> str:
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
        self.provider.write_config(node_key(cluster), self._config(cluster, None, sharded=True))
        self.binds[node_key(cluster)] = await admin.bound_addresses()

    async def _start_node(self, cluster: CacheCluster, replica_of: tuple[str, int] | None, *, sharded: bool = False) -> None:
        key = node_key(cluster)
        binary = self._binaries.binary(cluster.engine, cluster.engine_version)
        config = self._config(cluster, replica_of, sharded=sharded)
        last: NodeStartFailed | None = None
        for _ in range(START_ATTEMPTS):
            try:
                await self.provider.start(
                    key, binary=binary.server, config=config, address=cluster.node.address, port=cluster.port
                )
            except NodeStartFailed as failure:
                last = failure
                continue
            self.binds[key] = [cluster.node.address]
            await self.drop_admin(key)
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
        self.binds[node_key(cluster)] = await admin.bound_addresses()

    async def node_failed(self, group: ReplicationGroup | None, cluster: CacheCluster, reason: str) -> None:
        """A node would not start: fail the create, or retry a node that used to run."""
        message = f"Cache node {cluster.node.node_id} of cache cluster {cluster.cluster_id} would not start: {reason}"
        log.warning("%s", message)
        if group is not None and group.status == GroupStatus.CREATING:
            members = self.members(group)
            for member in members.values():
                await self.provider.stop(node_key(member))
            with self.store.transaction() as tx:
                for member in members.values():
                    tx.put(replace(member, status=ClusterStatus.CREATE_FAILED, status_reason=reason))
                failed = replace(group, status=GroupStatus.CREATE_FAILED, status_reason=message)
                tx.put(failed)
                tx.add_event(event_for(cluster, message, self.clock.now()))
                tx.add_event(
                    event_for(failed, f"Replication group {group.group_id} create-failed: {message}", self.clock.now())
                )
            return
        if cluster.status == ClusterStatus.CREATING:
            await self.provider.stop(node_key(cluster))
            with self.store.transaction() as tx:
                tx.put(replace(cluster, status=ClusterStatus.CREATE_FAILED, status_reason=reason))
                tx.add_event(event_for(cluster, f"Cache cluster {cluster.cluster_id} create-failed: {message}", self.clock.now()))
            return
        self.record(cluster, message + "; trying again in 5 s")
        raise Retry(5.0, message)

    async def destroy_cluster(self, cluster: CacheCluster, *, group: ReplicationGroup | None) -> None:
        """Stops the node, removes its files, then its record (and its place in ``group``)."""
        key = node_key(cluster)
        await self.provider.stop(key)
        if self.health.watching(key):
            self.health.unwatch(key)
        await self.drop_admin(key)
        self.verified.pop(key, None)
        self.binds.pop(key, None)
        self.provider.remove(key)
        self._links_down.discard(key)
        with self.store.transaction() as tx:
            tx.delete(cluster)
            tx.add_event(event_for(cluster, f"Cache cluster {cluster.cluster_id} deleted", self.clock.now()))
            if group is not None:
                current = self.store.get(ReplicationGroup, group.region, group.group_id)
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

    def mark_available(self, cluster: CacheCluster) -> None:
        current = self.store.get(CacheCluster, cluster.region, cluster.cluster_id)
        if current is None or current.status not in (ClusterStatus.CREATING, ClusterStatus.MODIFYING, ClusterStatus.REBOOTING):
            return
        created = current.status == ClusterStatus.CREATING
        updated = replace(
            current, status=ClusterStatus.AVAILABLE, status_reason="", node=replace(current.node, status=NodeStatus.AVAILABLE)
        )
        self._rebooted.discard(node_key(current))
        role = "replica" if current.replication_group_id and not self._is_primary(current) else "primary"
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

    def _is_primary(self, cluster: CacheCluster) -> bool:
        if cluster.replication_group_id is None:
            return True
        group = self.store.get(ReplicationGroup, cluster.region, cluster.replication_group_id)
        return group is not None and any(ng.primary_cluster_id == cluster.cluster_id for ng in group.node_groups)

    def record(self, resource: Resource, message: str) -> None:
        with self.store.transaction() as tx:
            tx.add_event(event_for(resource, message, self.clock.now()))

    def members(self, group: ReplicationGroup) -> dict[str, CacheCluster]:
        found = {}
        for cluster_id in group.member_cluster_ids:
            cluster = self.store.get(CacheCluster, group.region, cluster_id)
            if cluster is not None:
                found[cluster_id] = cluster
        return found

    def admin(self, cluster: CacheCluster) -> AdminClient:
        key = node_key(cluster)
        admin = self._admins.get(key)
        if admin is None:
            admin = AdminClient(cluster.node.address, cluster.port)
            self._admins[key] = admin
        return admin

    async def drop_admin(self, key: str) -> None:
        admin = self._admins.pop(key, None)
        if admin is not None:
            await admin.close()


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


def node_keys(clusters: Iterable[CacheCluster]) -> set[str]:
    return {node_key(c) for c in clusters}
