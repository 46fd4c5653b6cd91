"""The node operations every workflow uses, and what the control plane has observed of the nodes.

Start (or adopt) a cluster's node with the right role, fence it, stop it, bind endpoint
addresses on it, forget it, mark it available, fail its creation, record events. Every
connection to a node goes through its ``NodeAccess``, which carries the node's control-plane
user and, for a TLS node, the CA (control/locks.py). A node starts locked: its ACL file holds
the control-plane user and its clients' users, a replica's ``masterauth`` is its primary's
password; ``sync_users`` keeps the users of a running node as its records want them.
Observed state (which process of a node was checked, what it listens on, which replica
finished its full sync, which users and TLS mode a node has) lives here and is rebuilt from
the engines after a control-plane restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, TypeVar

from cachefleet.control.health import HealthMonitor
from cachefleet.control.locks import Locks, fingerprint
from cachefleet.control.scheduler import Retry
from cachefleet.domain import parameters as catalogue
from cachefleet.domain.cache_clusters import NODE_RESTARTING, CacheCluster, ClusterStatus, NodeStatus
from cachefleet.domain.credentials import CONTROL_PLANE_USER, SLOT_IMPORT_USER, TransitEncryptionMode
from cachefleet.domain.engines import EngineRelease
from cachefleet.domain.events import event_for
from cachefleet.domain.operations import Operation, OperationKind, operation_key, progressed
from cachefleet.domain.parameter_groups import (
    Builds,
    CacheNodeParameters,
    cluster_user_parameters,
    cluster_values,
    family_name,
    node_parameters,
    node_settings,
    offered_names,
    write_fencing,
)
from cachefleet.domain.ports import Clock, StateStore
from cachefleet.domain.replication_groups import GroupStatus, ReplicationGroup
from cachefleet.domain.resource import Resource
from cachefleet.engine import acl
from cachefleet.engine.access import NodeAccess
from cachefleet.engine.admin import AdminClient, EngineError
from cachefleet.engine.config import NodeConfig, render
from cachefleet.providers.local import NodeStartFailed, Seed, address_in_use

log = logging.getLogger(__name__)
T = TypeVar("T")

START_ATTEMPTS = 2
RECOVERING = "recovering"  # status_reason of a lost primary coming back as a replica
# How long a node that stopped answering PING may stay silent before it is fenced without a
# failover. The health monitor calls a node unhealthy after ~0.5 s (fast, for failovers, which
# keep the data on a replica), but a busy node is silent that long too: under one busy core,
# 6 SETRANGEs of 100 MiB kept a primary from answering for 0.6 s, and it was restarted empty.
# Restarting a primary (or a standalone node) in place loses all its data; replacing a replica
# costs a full resync of the whole data set. Only a node silent this long is hung.
HUNG_PRIMARY_GRACE = 10.0
HUNG_REPLICA_GRACE = 5.0
FENCE_TIMEOUT = 0.3  # the write fencing's INFO and CONFIG SET on a primary (fence_writes)
REPLACING = "replacing"  # status_reason of a node restarting on another build (an engine upgrade)
SYNC_LOOK_AFTER = 1.0  # seconds a full sync runs before its primary is asked whether it can finish
SHUTDOWN_TIMEOUT = 60.0  # seconds for a node to save its data and exit (SHUTDOWN SAVE)


class Provider(Protocol):
    """Where nodes run (providers/local.py)."""

    def adopt_all(self) -> dict[str, int]: ...
    def pid(self, key: str) -> int | None: ...
    def running(self) -> dict[str, int]: ...
    def node_dir(self, key: str) -> Path: ...
    async def start(
        self, key: str, *, binary: Path, config: str, access: NodeAccess, keep_data: bool = False,
        seed: Seed | None = None, load_bytes: int = 0,
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


class AddressTaken(Exception):
    """An endpoint address a node is to listen on is held by a process that is none of our nodes."""


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
    users: dict[str, tuple[int, str]] = field(default_factory=dict)  # node key -> (pid, fingerprint of its users)
    transit: dict[str, TransitEncryptionMode | None] = field(default_factory=dict)  # node key -> TLS mode it runs
    masterauth: dict[str, tuple[int, str]] = field(default_factory=dict)  # replica key -> (pid, primary key)
    upstream: dict[str, tuple[str, int]] = field(default_factory=dict)  # global secondary primary -> node it follows
    write_fence: dict[str, tuple[int, str]] = field(default_factory=dict)  # primary key -> (pid, "to-write/max-lag" set)
    # Lost primaries the failover found no replica for: only these may be started again in place
    # while their group has automatic failover (see Nodes.ensure_running).
    may_restart: set[str] = field(default_factory=set)


def replica_lags(info: dict[str, str]) -> list[int]:
    """Seconds since each online replica's last acknowledgement, from the primary's INFO replication
    (``slaveN:ip=...,state=online,offset=...,lag=N``)."""
    lags = []
    for name, text in info.items():
        if not (name.startswith("slave") and name[5:].isdigit()):
            continue
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        if fields.get("state") == "online" and fields.get("lag", "").isdigit():
            lags.append(int(fields["lag"]))
    return lags


def _stopping(member: CacheCluster | None) -> bool:
    """Whether a member is stopped on purpose, or about to be: being removed, rebooted, or replaced
    by a rolling upgrade (``REPLACING``). A member not in the store (yet) is not."""
    if member is None:
        return False
    return member.status in (ClusterStatus.DELETING, ClusterStatus.REBOOTING) or member.status_reason == REPLACING


class Nodes:
    """The node toolkit every workflow uses, and the observed state of the nodes."""

    def __init__(
        self,
        *,
        store: StateStore,
        provider: Provider,
        binaries: Binaries,
        clock: Clock,
        health: HealthMonitor,
        builds: Builds | None = None,
        recheck: Callable[[Resource, float], None] = lambda resource, delay: None,
        locks: Locks | None = None,
    ) -> None:
        self._recheck = recheck  # runs the resource's pass again after a delay (the scheduler)
        self.store = store
        self.provider = provider
        self.clock = clock
        self.health = health
        self._binaries = binaries
        self._builds = builds
        self._offered: dict[tuple[str, str], frozenset[str]] = {}
        self.locks = locks or Locks(store=store, node_dir=provider.node_dir)
        self._admins: dict[str, tuple[NodeAccess, AdminClient]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.observed = Observed({}, {}, {}, set(), set(), set())
        self._global_roles: dict[str, asyncio.Lock] = {}
        self._taken_reported: set[tuple[str, str]] = set()  # (group id, message) of AddressTaken events recorded
        self._start_failures: dict[str, str] = {}  # node key -> why its last start failed (said in an event once)
        self._sync_blocked: set[str] = set()  # replica keys whose blocked full sync was said in an event
        self._syncing_since: dict[str, float] = {}  # replica key -> when its pending sync was seen (or looked at)

    def global_roles(self, global_id: str | None) -> contextlib.AbstractAsyncContextManager[object]:
        """Held by a planned global failover from its first step to its last, and by a member
        group's pass while it decides and sets its primary's role: the pass reads the roles once it
        holds it, so it never acts on roles read before a failover swapped them (a restarted control
        plane resumes a failover while its member groups' passes run). No global datastore: nothing."""
        if global_id is None:
            return contextlib.nullcontext()
        return self._global_roles.setdefault(global_id, asyncio.Lock())

    # ------------------------------------------------------------------ reaching nodes
    def mode(self, cluster: CacheCluster) -> TransitEncryptionMode | None:
        """The TLS mode the node runs: what was observed of it, else what its records want."""
        key = node_key(cluster)
        if key in self.observed.transit:
            return self.observed.transit[key]
        return self.locks.mode(cluster)

    def server(self, engine: str, version: str) -> Path:
        """The server executable of an installed engine build."""
        return self._binaries.binary(engine, version).server

    def access(self, cluster: CacheCluster) -> NodeAccess:
        """How to reach the node as it runs now: its control-plane user, TLS where it serves no plain text."""
        return self.locks.access(cluster, node_key(cluster), self.mode(cluster))

    def admin(self, cluster: CacheCluster) -> AdminClient:
        key = node_key(cluster)
        access = self.access(cluster)
        cached = self._admins.get(key)
        if cached is not None and cached[0] == access:
            return cached[1]
        if cached is not None:
            # Its TLS mode or password changed: the next command goes through a new connection.
            closing = asyncio.get_running_loop().create_task(cached[1].close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        admin = access.admin()
        self._admins[key] = (access, admin)
        return admin

    async def close(self) -> None:
        for _, admin in self._admins.values():
            await admin.close()
        self._admins.clear()

    async def ask(self, step: Awaitable[T], clusters: Sequence[CacheCluster]) -> T:
        """Runs ``step`` (commands to these nodes), but gives up (EngineError) as soon as one of them is
        found not answering: a pass must not sit out an admin timeout on a hung node while the
        failover that node needs waits for the pass to end."""
        alarms = [self.health.alarm(node_key(c)) for c in clusters]
        hung = [c.cluster_id for c, alarm in zip(clusters, alarms, strict=True) if alarm.is_set()]
        if hung:
            raise EngineError(f"{', '.join(hung)} stopped answering")
        task = asyncio.ensure_future(step)
        waiters = [asyncio.ensure_future(alarm.wait()) for alarm in alarms]
        try:
            done, _ = await asyncio.wait([task, *waiters], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        hung = [c.cluster_id for c, alarm in zip(clusters, alarms, strict=True) if alarm.is_set()]
        raise EngineError(f"{', '.join(hung)} stopped answering")

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
        self.observed.rebooted.discard(node_key(current))
        if current.status_reason == REPLACING:
            # A node restarted on a new build: only its node is available. The cluster stays
            # `modifying` with its pending EngineVersion until the upgrade records the new build
            # (one transaction), so no Describe shows it available with the upgrade still pending.
            if current.node.status != NodeStatus.AVAILABLE:
                with self.store.transaction() as tx:
                    tx.put(replace(current, node=replace(current.node, status=NodeStatus.AVAILABLE)))
            return
        created = current.status == ClusterStatus.CREATING
        updated = replace(
            current, status=ClusterStatus.AVAILABLE, status_reason="", node=replace(current.node, status=NodeStatus.AVAILABLE)
        )
        role = "replica" if current.replication_group_id and not self.is_primary(current) else "primary"
        with self.store.transaction() as tx:
            tx.put(updated)
            if current.status_reason == RECOVERING:
                state = "it took over as the primary" if role == "primary" else "it is a replica in sync with the primary"
                message = f"Finished recovery for cache nodes {current.cluster_id}: {state}"
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
            if self._failover_first(cluster):
                # A pass under way when the primary exited (a group converging passes every few ms)
                # must not start it again empty: its replicas would sync that emptiness. The next
                # pass fails it over, or finds no replica and lets it start (``may_restart``).
                raise Retry(0.0, f"primary {cluster.cluster_id} exited: the failover looks at it first")
            self.observed.may_restart.discard(key)
            quiet = (
                cluster.status in (ClusterStatus.CREATING, ClusterStatus.REBOOTING)
                or cluster.status_reason in (RECOVERING, REPLACING)
            )
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
        else:
            await self._learn_mode(cluster)
            await self.sync_users(cluster)
            if sharded:
                await self._adopt_sharded(cluster)
            else:
                await self._fix_role(cluster, replica_of)
        self.mark_checked(cluster)

    def _failover_first(self, cluster: CacheCluster) -> bool:
        """Whether this stopped node is an available primary of a group with automatic failover
        and replicas, which the failover has not given up on (a primary stopped on purpose -- a
        reboot, a replacement, a start that failed and is retried -- is not ``available`` meanwhile)."""
        if cluster.status != ClusterStatus.AVAILABLE or cluster.replication_group_id is None:
            return False
        if node_key(cluster) in self.observed.may_restart:
            return False
        group = self.store.get(ReplicationGroup, cluster.region, cluster.replication_group_id)
        if group is None or group.automatic_failover != "enabled":
            return False
        node_group = group.node_group_of(cluster.cluster_id)
        return (node_group is not None and node_group.primary_cluster_id == cluster.cluster_id
                and bool(node_group.replica_cluster_ids))

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

    # ------------------------------------------------------------------ parameters
    def parameter_values(self, cluster: CacheCluster) -> dict[str, str]:
        """The parameter values the cluster's node is to run with (its parameter group's)."""
        return cluster_values(self.store, cluster)

    def family(self, cluster: CacheCluster) -> str:
        return family_name(cluster.engine, cluster.engine_version)

    def offered(self, cluster: CacheCluster) -> frozenset[str]:
        """The parameters the node's engine build can honour. Kept per build: the builds are
        measured once at start-up, and every pass asks it of each primary (fence_writes) -- at 300
        groups at rest, working it out each time was 44 % of the control plane's CPU."""
        key = (cluster.engine, cluster.engine_version)
        names = self._offered.get(key)
        if names is None:
            family = self.family(cluster)
            names = offered_names(family, EngineRelease(cluster.engine, cluster.engine_version, family, ""), self._builds)
            self._offered[key] = names
        return names

    def maxmemory(self, cluster: CacheCluster, values: dict[str, str] | None = None) -> int:
        """The engine's maxmemory: the node type's memory less the reserve its parameter group asks for."""
        return catalogue.data_maxmemory(cluster.node_type, values if values is not None else self.parameter_values(cluster))

    def config(
        self, cluster: CacheCluster, replica_of: tuple[str, int] | None, *, sharded: bool,
        values: dict[str, str] | None = None, mode: TransitEncryptionMode | None | str = "wanted", starting: bool = True,
    ) -> str:
        """The node's engine.conf: what it is and does (Cachefleet's own settings, then its parameter
        group's), and where its locks are (its ACL file, TLS files, a replica's masterauth include:
        no secret in the file itself). ``mode`` is the TLS mode to render ("wanted": the one its
        records want)."""
        key = node_key(cluster)
        if not isinstance(mode, TransitEncryptionMode) and mode is not None:
            mode = self.locks.mode(cluster)
        values = values if values is not None else self.parameter_values(cluster)
        settings = node_settings(self.family(cluster), values, node_type=cluster.node_type, offered=self.offered(cluster))
        fencing = self._write_fencing(cluster)
        if "min-replicas-to-write" in fencing:
            # A node starts without a replica online (its replicas, if any, sync from it first): it
            # takes writes until fence_writes sees one online and raises the count.
            fencing["min-replicas-to-write"] = "0"
        settings.update(fencing)
        maxmemory = int(settings.pop("maxmemory"))
        return render(
            NodeConfig(
                address=cluster.node.address,
                port=cluster.port,
                directory=self.provider.node_dir(key),
                maxmemory=maxmemory,
                replica_of=replica_of,
                cluster=sharded,
                label=f"node {cluster.node.node_id} of cache cluster {cluster.cluster_id} ({cluster.region}), "
                f"parameter group {cluster.parameter_group_name}",
                extra={
                    **settings,
                    **self.locks.engine_settings(
                        cluster, key, sharded=sharded, replica_of=replica_of, now=self.clock.now(), mode=mode,
                        starting=starting,
                    ),
                },
            )
        )

    def _write_fencing(self, cluster: CacheCluster) -> dict[str, str]:
        """min-replicas-to-write / -max-lag for a node of a shard with replicas (see ``write_fencing``)."""
        group = self.store.get(ReplicationGroup, cluster.region, cluster.replication_group_id or "")
        node_group = group.node_group_of(cluster.cluster_id) if group is not None else None
        if group is None or node_group is None or "min-replicas-to-write" not in self.offered(cluster):
            return {}
        # A replica stopped on purpose does not count (being removed, rebooted, or replaced by an
        # upgrade): its shard's primary must not refuse writes while it is gone.
        members = self.members(group)
        staying = [c for c in node_group.member_cluster_ids if c != cluster.cluster_id and not _stopping(members.get(c))]
        return write_fencing(cluster_user_parameters(self.store, cluster), replicas=len(staying))

    async def fence_writes(self, group: ReplicationGroup) -> None:
        """min-replicas-to-write on each shard's primary where Cachefleet sets it (``write_fencing``):
        its value while a replica of the shard follows the primary, 0 while none does. A primary the
        control plane reaches keeps taking writes when its replicas are gone (a replica lost, or the
        only one promoted); one cut off from the control plane as well cannot be told so, and stops
        taking writes once no replica has acknowledged for min-replicas-max-lag seconds. A shard left
        without replicas (DecreaseReplicaCount to 0) gets its parameter group's values back. A
        parameter group that sets min-replicas-to-write is left to the parameters workflow."""
        members = self.members(group)
        for node_group in group.node_groups:
            primary = members.get(node_group.primary_cluster_id)
            if primary is None:
                continue
            key = node_key(primary)
            pid = self.provider.pid(key)
            if pid is None or not self.health.healthy(key) or "min-replicas-to-write" not in self.offered(primary):
                continue
            if "min-replicas-to-write" in cluster_user_parameters(self.store, primary):
                continue  # its parameter group decides (and the parameters workflow applies it)
            fencing = self._write_fencing(primary)
            values = self.parameter_values(primary)
            # No replica in the shard (any more): the parameter group's values, as at a start without one.
            wanted = fencing.get("min-replicas-to-write", values.get("min-replicas-to-write", "0"))
            lag_setting = fencing.get("min-replicas-max-lag", values.get("min-replicas-max-lag", "10"))
            max_lag = int(lag_setting)
            lags: list[int] = []
            if fencing:
                try:
                    # Bounded: a primary cut off a moment ago still counts as healthy, and the pass
                    # (which holds the group's failover) must not wait on it for the client's timeout.
                    lags = replica_lags(await asyncio.wait_for(self.admin(primary).info("replication"), FENCE_TIMEOUT))
                except (EngineError, TimeoutError):
                    continue
            value = wanted if not fencing or any(lag <= max_lag for lag in lags) else "0"
            behind = [max_lag - lag for lag in lags if 2 <= lag <= max_lag]
            if fencing and behind:
                # A replica has not acknowledged for a while (hung, or cut off): look again by the time
                # the primary would stop counting it, so that a reachable primary does not refuse writes.
                self.recheck(group, min(behind) + 0.5)
            if self.observed.write_fence.get(key) == (pid, f"{value}/{lag_setting}"):
                continue
            try:
                # Both: a primary that started without replicas runs with the parameter group's lag.
                await asyncio.wait_for(self.admin(primary).execute(
                    "CONFIG", "SET", "min-replicas-to-write", value, "min-replicas-max-lag", lag_setting,
                ), FENCE_TIMEOUT)
            except (EngineError, TimeoutError) as error:
                log.info("%s: min-replicas-to-write %s waits for the next pass: %s", primary.cluster_id, value, error)
                continue
            if fencing and value == "0":
                log.warning("%s: no replica follows primary %s: it takes writes without one (min-replicas-to-write 0)",
                            group.group_id, primary.cluster_id)
            self.observed.write_fence[key] = (pid, f"{value}/{lag_setting}")

    async def _adopt_sharded(self, cluster: CacheCluster) -> None:
        """A running cluster-mode node (adopted after a restart, or a warm node just given to a
        cluster): give it its data memory and the config file it would be started with (its other
        parameters are the parameter workflow's)."""
        admin = self.admin(cluster)
        await admin.config_set("maxmemory", str(self.maxmemory(cluster)))
        self.provider.write_config(
            node_key(cluster), self.config(cluster, None, sharded=True, mode=self.mode(cluster), starting=False)
        )
        self.observed.binds[node_key(cluster)] = await admin.bound_addresses()

    # ------------------------------------------------------------------ locks
    async def _learn_mode(self, cluster: CacheCluster) -> None:
        """Which TLS mode a running node that was not started by this control plane serves: the one
        its records want, unless it only answers in another (a change that was under way)."""
        key = node_key(cluster)
        if key in self.observed.transit:
            return
        wanted = self.locks.mode(cluster)
        tls_first = wanted is TransitEncryptionMode.REQUIRED
        for mode in ((TransitEncryptionMode.REQUIRED, None) if tls_first else (None, TransitEncryptionMode.REQUIRED)):
            probe = self.locks.access(cluster, key, mode).admin(timeout=1.0)
            try:
                if mode is None:
                    # Plain text answers in preferred mode too: its TLS port tells them apart.
                    tls_port = await probe.config_get("tls-port")
                    if tls_port not in ("", "0"):
                        mode = TransitEncryptionMode.PREFERRED
                else:
                    await probe.ping()
            except (EngineError, ssl.SSLError, OSError):
                continue
            finally:
                await probe.close()
            self.observed.transit[key] = mode
            return

    async def sync_users(self, cluster: CacheCluster) -> bool:
        """Brings the node's ACL users to what its records want (and its ACL file, for its next
        start); True if anything changed. A node whose last sync wanted the same is left alone."""
        key = node_key(cluster)
        pid = self.provider.pid(key)
        unlocked = self.locks.password(key) is None  # a node started before nodes had a control-plane user
        users = self.locks.users(cluster, key)
        wanted = fingerprint(users)
        if pid is not None and self.observed.users.get(key) == (pid, wanted):
            return False
        self.locks.write_aclfile(key, users)
        if unlocked:
            legacy = replace(self.access(cluster), username=None, password=None).admin()
            try:
                steps = await acl.sync(legacy, users)
            finally:
                await legacy.close()
        else:
            steps = await acl.sync(self.admin(cluster), users)
        self.observed.users[key] = (pid or 0, wanted)
        if not steps.empty:
            log.info(
                "node %s: users %s set, %s deleted", key, ", ".join(u.name for u, _ in steps.setusers) or "none",
                ", ".join(steps.delusers) or "none",
            )
        return not steps.empty

    def users_synced(self, cluster: CacheCluster) -> bool:
        """Whether the running node has the users its records want now."""
        key = node_key(cluster)
        pid = self.provider.pid(key)
        return pid is not None and self.observed.users.get(key) == (pid, fingerprint(self.locks.users(cluster, key)))

    async def authenticate_replication(self, replica: CacheCluster, primary: CacheCluster) -> None:
        """The replica logs in to its primary as the control-plane user, with the primary's password
        (set before it follows the primary; again after a failover gave its shard another one)."""
        await self._replication_password(replica, node_key(primary))

    async def authenticate_slot_export(self, source: CacheCluster, target: CacheCluster) -> None:
        """The source of an atomic slot migration logs in to its target as the slot-import user,
        with the target's password (``masteruser``/``masterauth``: a primary uses them for nothing
        else). Forgotten as a replica's setting, so that the source's next primary sets them again."""
        password = self.locks.password(node_key(target))
        if password is None:
            raise EngineError(f"no control-plane password for {target.cluster_id}")
        await self.admin(source).execute("CONFIG", "SET", "masteruser", SLOT_IMPORT_USER, "masterauth", password)
        self.observed.masterauth.pop(node_key(source), None)

    async def _start(
        self, cluster: CacheCluster, replica_of: tuple[str, int] | None, *, sharded: bool, keep_data: bool = False,
        seed: Seed | None = None, load_bytes: int = 0,
    ) -> None:
        key = node_key(cluster)
        try:
            binary = self._binaries.binary(cluster.engine, cluster.engine_version)
        except LookupError:
            # Its build was removed (an --engine-path directory gone, a package uninstalled) while
            # the node did not run: no attempt can start it until the build is back.
            raise NodeStartFailed(
                f"its engine build {cluster.engine} {cluster.engine_version} is not installed on this machine "
                "any more; install it again (or give its --engine-path) and restart Cachefleet, or delete the "
                "cluster"
            ) from None
        # Locked from its first instant: the ACL file holds the control-plane user and its clients' users.
        users = self.locks.users(cluster, key)
        self.locks.write_aclfile(key, users)
        mode = self.locks.mode(cluster)
        values = self.parameter_values(cluster)
        config = self.config(cluster, replica_of, sharded=sharded, values=values, mode=mode)
        access = self.locks.access(cluster, key, mode)
        # Recorded before the start: whichever way the start ends, this process (if any) runs with
        # these values, and a crash right after the start cannot leave an older record behind.
        with self.store.transaction() as tx:
            tx.put(node_parameters(cluster, values))
        last: NodeStartFailed | None = None
        for _ in range(START_ATTEMPTS):
            try:
                pid = await self.provider.start(
                    key, binary=binary.server, config=config, access=access, keep_data=keep_data, seed=seed,
                    load_bytes=load_bytes,
                )
            except NodeStartFailed as failure:
                last = failure
                continue
            self._start_failures.pop(key, None)
            self.observed.binds[key] = [cluster.node.address]
            self.observed.transit[key] = mode
            self.observed.users[key] = (pid, fingerprint(users))
            if replica_of is not None:
                self.observed.masterauth[key] = (pid, replica_of[0])
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
            await self._replication_password(cluster, replica_of[0])
            await admin.replicate(*replica_of)
        self.observed.binds[node_key(cluster)] = await admin.bound_addresses()

    async def follow(self, cluster: CacheCluster, source: tuple[str, int] | None) -> None:
        """A global datastore member's primary follows ``source`` (another region's primary node), or
        is a primary itself (None) once it no longer follows one. Looked at on every pass, not once
        per process: the node it follows changes under it (a failover in the other region, a global
        failover, a disassociation)."""
        key = node_key(cluster)
        if self.provider.pid(key) is None or (source is None and key not in self.observed.upstream):
            return
        await self._fix_role(cluster, source)
        if source is None:
            self.observed.upstream.pop(key, None)
        elif self.observed.upstream.get(key) != source:
            # A former primary paused for a planned global failover by a control plane that died
            # before it unpaused stays paused until the pause ends (seconds): once it follows, its
            # writers should get READONLY at once, not hang.
            with contextlib.suppress(EngineError):
                await self.admin(cluster).execute("CLIENT", "UNPAUSE")
            self.observed.upstream[key] = source

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
        key = node_key(cluster)
        current = self.store.get(CacheCluster, cluster.region, cluster.cluster_id) or cluster
        if self._start_failures.get(key) != reason or current.status == ClusterStatus.AVAILABLE:
            # Said once (not every 5 s), and seen in its status: the cluster is not available while its
            # node does not run; it is again once the node starts (mark_available).
            self._start_failures[key] = reason
            with self.store.transaction() as tx:
                if current.status == ClusterStatus.AVAILABLE:
                    tx.put(replace(current, status=ClusterStatus.MODIFYING, status_reason=NODE_RESTARTING,
                                   node=replace(current.node, status=NodeStatus.CREATING)))
                tx.add_event(event_for(current, message + "; trying again every 5 s", self.clock.now()))
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
        self.observed.transit.pop(key, None)
        self.observed.users.pop(key, None)
        self.observed.masterauth.pop(key, None)

    def exited(self, key: str) -> None:
        """The provider saw the node's process exit."""
        self.observed.verified.pop(key, None)
        self.observed.binds.pop(key, None)
        self.observed.transit.pop(key, None)

    async def _drop_admin(self, key: str) -> None:
        cached = self._admins.pop(key, None)
        if cached is not None:
            await cached[1].close()

    async def _replication_password(self, replica: CacheCluster, primary_key: str) -> None:
        """Sets masterauth to the password of the node at ``primary_key`` (the replica's new primary)."""
        key = node_key(replica)
        pid = self.provider.pid(key) or 0
        if self.observed.masterauth.get(key) == (pid, primary_key):
            return
        password = self.locks.password(primary_key)
        if password is not None:
            await self.admin(replica).execute("CONFIG", "SET", "masteruser", CONTROL_PLANE_USER, "masterauth", password)
        else:
            # Not a node of ours (a migration's source, which has no AUTH): a stale masterauth would fail its handshake.
            await self.admin(replica).execute("CONFIG", "SET", "masteruser", "", "masterauth", "")
        self.observed.masterauth[key] = (pid, primary_key)

    async def destroy(self, cluster: CacheCluster, *, group: ReplicationGroup | None) -> None:
        """Stops the node, removes its files, then its record (and its place in ``group``)."""
        key = node_key(cluster)
        await self.stop(cluster)
        self.provider.remove(key)
        self.locks.forget(key)
        self.observed.links_down.discard(key)
        self.observed.synced.pop(key, None)
        self.observed.may_restart.discard(key)
        with self.store.transaction() as tx:
            tx.delete(cluster)
            parameters = self.store.get(CacheNodeParameters, cluster.region, cluster.cluster_id)
            if parameters is not None:
                tx.delete(parameters)
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

    def recheck(self, resource: Resource, delay: float) -> None:
        """The resource's pass runs again after ``delay`` seconds (whatever else happens meanwhile)."""
        self._recheck(resource, delay)

    def silent_long_enough(self, resource: Resource, cluster: CacheCluster, grace: float) -> bool:
        """Whether an unhealthy node has been silent for ``grace`` seconds; if not yet, the
        resource's pass runs again when it will have been (unless the node answers before)."""
        silent = self.health.silent_for(node_key(cluster))
        if silent >= grace:
            return True
        self._recheck(resource, grace - silent)
        return False

    async def fence_hung(self, cluster: CacheCluster, then: str) -> None:
        key = node_key(cluster)
        message = (
            f"Cache node {cluster.node.node_id} of cache cluster {cluster.cluster_id} stopped answering "
            f"({self.health.silent_for(key):.1f} s); fencing it and {then}"
        )
        log.warning("%s", message)
        self.record(cluster, message)
        self.observed.fenced_hung.add(key)
        await self.fence(key)

    async def shut_down_saving(self, cluster: CacheCluster) -> None:
        """Makes the node save its data and exit (SHUTDOWN SAVE): every write it acknowledged is in the
        file its next process loads (``start_keeping_data``). The engine processes commands in order,
        so nothing it answered can come after the save."""
        key = node_key(cluster)
        if self.provider.pid(key) is None:
            return
        try:
            await self.admin(cluster).execute("SHUTDOWN", "SAVE")
        except EngineError as error:
            if error.__cause__ is None:
                raise  # an error reply: the engine refused (it could not save) and keeps running
        # The connection drops as the engine exits: wait until the process is gone.
        await self.provider.stop(key, graceful=True, timeout=SHUTDOWN_TIMEOUT)
        await self.forget(key)

    async def start_keeping_data(self, cluster: CacheCluster, *, replica_of: tuple[str, int] | None, sharded: bool) -> None:
        """Starts the node's engine (its record's build) on the data its last process saved."""
        await self._start(cluster, replica_of, sharded=sharded, keep_data=True)
        self.mark_checked(cluster)

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
                if not primary:
                    await self.fence_writes(group)  # its primary takes writes without it meanwhile
                await self.reboot(cluster)
            elif (
                not self.health.healthy(key)
                and (not primary or not (automatic or failover_requested))
                and self.silent_long_enough(group, cluster, HUNG_PRIMARY_GRACE if primary else HUNG_REPLICA_GRACE)
            ):
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
            self._foreign_holder(cluster, addresses)
            raise
        self.observed.binds[key] = list(addresses)
        log.info("node %s listens on %s", key, " ".join(addresses))

    def _foreign_holder(self, cluster: CacheCluster, addresses: list[str]) -> None:
        """Raises AddressTaken if one of ``addresses`` is held by a process that is none of our nodes
        (a rebind that fails for that reason fails again however often it is tried)."""
        ours = {address for binds in self.observed.binds.values() for address in binds}
        for address in addresses:
            if address == cluster.node.address or address in ours:
                continue
            if address_in_use(address, cluster.port):
                raise AddressTaken(
                    f"Cache node {cluster.node.node_id} of cache cluster {cluster.cluster_id} cannot listen on the "
                    f"endpoint address {address}:{cluster.port}: another process (not a Cachefleet node) listens there. "
                    "Stop that process, or start Cachefleet with a --node-network no other process uses"
                )

    async def address_taken(self, group: ReplicationGroup, message: str) -> None:
        """An endpoint of the group cannot be bound (AddressTaken): a group being created fails
        (GroupFailed); another one says so once in an event and tries again in 5 s (Retry)."""
        log.warning("%s", message)
        current = self.current(group) or group
        if current.status == GroupStatus.CREATING:
            await self.fail_group_creation(current, message)
            raise GroupFailed(message)
        if (current.group_id, message) not in self._taken_reported:
            self._taken_reported.add((current.group_id, message))
            self.record(current, message + "; trying again every 5 s")
        raise Retry(5.0, message)

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

    async def sync_blocked(self, primary: CacheCluster) -> str | None:
        """Why a full sync from ``primary`` cannot finish, if the primary tells: its last save of the
        data a sync sends failed (a disk-based sync: engine/config.py), its data disk full, say."""
        info = await self.admin(primary).info("persistence")
        # Whatever save runs now (the engine tries the sync again every second), the last one failed.
        if info.get("rdb_last_bgsave_status") != "err":
            return None
        try:
            free = f"{shutil.disk_usage(self.provider.node_dir(node_key(primary))).free} bytes are free on its data disk"
        except OSError as error:
            free = f"its data disk cannot be looked at: {error}"
        return f"its primary {primary.cluster_id} could not save the data a full sync sends (its last save failed; {free})"

    def syncing_long(self, replicas: Sequence[CacheCluster], seconds: float = SYNC_LOOK_AFTER) -> bool:
        """Whether to ask the primary if the pending full syncs of ``replicas`` can finish: once one has
        run ``seconds``, and then every ``seconds`` (a sync's passes come every 5 ms)."""
        now = time.monotonic()
        due = False
        for replica in replicas:
            key = node_key(replica)
            since = self._syncing_since.setdefault(key, now)
            if now - since >= seconds:
                self._syncing_since[key] = now  # the next look, a period later
                due = True
        return due

    def note_sync(self, replicas: Sequence[CacheCluster], blocked: str | None) -> None:
        """Says once (an event per replica) that the full syncs of ``replicas`` are blocked, and why;
        a replica whose sync is done (``blocked`` None) is said again if it is blocked later."""
        for replica in replicas:
            key = node_key(replica)
            if blocked is None:
                self._sync_blocked.discard(key)
                self._syncing_since.pop(key, None)
            elif key not in self._sync_blocked:
                self._sync_blocked.add(key)
                self.record(
                    replica, f"Cache cluster {replica.cluster_id} cannot finish its full sync: {blocked}; it is tried again"
                )

    async def in_sync(self, replica: CacheCluster, source: tuple[str, int]) -> bool:
        """Whether the replica follows ``source`` with its link up (its full sync is done)."""
        info = await self.admin(replica).info("replication")
        return (
            info.get("role") == "slave"
            and info.get("master_host") == source[0]
            and info.get("master_port") == str(source[1])
            and info.get("master_link_status") == "up"
        )
