"""Cluster mode enabled: converge a group's nodes into the Redis Cluster its record describes.

Each pass observes ``CLUSTER NODES`` on every node and takes the next steps, so the same
code creates a cluster, adds or removes shards and replicas, resumes a slot migration
after a crash, and re-forms a cluster whose nodes all restarted:

1. every live member's process runs (warm nodes are adopted, others started);
2. a primary that knows only itself gets its slots (a warm node swaps its placeholder
   ownership of every slot for its share in one MULTI, so it never looks orphaned);
3. nodes that do not know each other MEET; ids no member has any more are forgotten;
4. replicas REPLICATE their shard's primary;
5. slots not where the plan wants them move, with their keys (MIGRATE), while clients
   follow MOVED/ASK;
6. shards that are being removed, and replicas being deleted, are forgotten and stopped;
7. once every node says ``cluster_state:ok`` and agrees on the slots, and replicas are in
   sync, the group is available and the configuration endpoint is bound on a primary.

While nodes join, ``cluster-node-timeout`` is lowered so that gossip spreads the slot map
within a tick or two (the engine pings a peer only every ``node-timeout/2``), and the
engine's rejoin delay, derived from it, shrinks to a second. It goes back to 15 s before
slots move and once the cluster is formed: a busy machine must not look like a failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from cachefleet.domain import slots as slotmath
from cachefleet.domain.base import event_for
from cachefleet.domain.model import CacheCluster, ClusterStatus, GroupStatus, NodeGroup, ReplicationGroup
from cachefleet.engine import cluster as engine_cluster
from cachefleet.engine.admin import AdminClient, ClientConnection, EngineError, parse_info
from cachefleet.engine.cluster import ClusterView
from cachefleet.engine.config import cluster_bus_port
from cachefleet.providers.local import NodeStartFailed

if TYPE_CHECKING:
    from cachefleet.control.reconciler import Reconciler

log = logging.getLogger(__name__)

FORMING_NODE_TIMEOUT = "1000"
STEADY_NODE_TIMEOUT = "15000"
JOIN_TIMEOUT = 10.0
PROGRESS_INTERVAL = 0.25
SLOT_BATCH = 16
# A leaving node is drained once no client command reached it for DRAIN_QUIET s and every client
# connection has been idle DRAIN_IDLE s (CLIENT LIST counts whole seconds); at most DRAIN_MAX s:
# readers of a replica being removed never leave by themselves (nothing tells them to), and the
# callers of a removal wait on it (measured: glide under the scale-in test's load went idle on
# its own 12-15 s after the last slot moved; closing its connections earlier is clean too).
DRAIN_QUIET = 1.0
DRAIN_IDLE = 2
DRAIN_MAX = 10.0
DRAIN_POLL = 0.2
# Commands that are not a client's reads and writes: health probes (PING, INFO), metric samples
# (INFO), log delivery (SLOWLOG), replication (REPLCONF, PING), topology and connection set-up.
UPKEEP_COMMANDS = frozenset(
    {"ping", "info", "slowlog", "config", "cluster", "client", "command", "replconf", "hello", "readonly", "select", "auth"}
)
# Slots move in batches of SLOT_BATCH over LANES connections pairs at once. Valkey 8+ answers
# every CLUSTER SETSLOT only once the shard's replicas acknowledged it, so a lane mostly waits:
# measured moving 5461 slots to a new shard with one replica each, 8 lanes of 32 took 14.8 s,
# 64 lanes of 16 5.9 s; 1,000,000 keys without replicas 10.1 s -> 8.1 s.
LANES = 64


class Again(Exception):
    """Not converged yet; the pass should run again shortly."""


class ShardedTopology:
    def __init__(self, ops: Reconciler) -> None:
        self.ops = ops
        self._fast: set[str] = set()  # node keys whose node timeout is lowered

    async def reconcile(self, group: ReplicationGroup, members: dict[str, CacheCluster]) -> None:
        from cachefleet.control.reconciler import Retry, node_key

        ops = self.ops
        for node_group in group.node_groups:
            primary = members.get(node_group.primary_cluster_id)
            if primary is None:
                continue
            trouble = ops.failover.trouble(group, node_group, primary)
            if trouble is not None and await ops.failover.run(group, node_group, members, trouble):
                raise Retry(0.0, "")  # again at once, with the new primary
        live = [c for c in members.values() if c.status not in (ClusterStatus.DELETING, ClusterStatus.CREATE_FAILED)]
        outcomes = await asyncio.gather(
            *(ops.ensure_running(c, replica_of=None, sharded=True) for c in live), return_exceptions=True
        )
        started: list[CacheCluster] = []
        for cluster, outcome in zip(live, outcomes, strict=True):
            if isinstance(outcome, NodeStartFailed):
                await ops.node_failed(group, cluster, str(outcome))
                current = ops.store.get(ReplicationGroup, group.region, group.group_id)
                if current is None or current.status == GroupStatus.CREATE_FAILED:
                    return
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                started.append(cluster)
        if (
            group.status == GroupStatus.AVAILABLE
            and group.resharding is None
            and all(ops.verified.get(node_key(c)) == ops.provider.pid(node_key(c)) and c.status == ClusterStatus.AVAILABLE for c in started)
            and len(started) == len(live)
        ):
            await self._place_configuration_endpoint(group, started, members)
            return
        try:
            await self._converge(group, members, started)
        except Again as again:
            raise Retry(0.02, str(again)) from None

    # ------------------------------------------------------------------ one pass
    async def _converge(self, group: ReplicationGroup, members: dict[str, CacheCluster], live: list[CacheCluster]) -> None:
        from cachefleet.control.reconciler import node_key

        ops = self.ops
        admins = {c.cluster_id: ops.admin(c) for c in live}
        views = await self._views(admins)
        ids = {cid: view.myself.node_id for cid, view in views.items()}
        primaries = {ng.node_group_id: ng.primary_cluster_id for ng in group.node_groups}
        joining = any(not views[a].knows(ids[b]) for a in views for b in views if a != b) or group.status == GroupStatus.CREATING
        if joining:
            await self._node_timeout(live, FORMING_NODE_TIMEOUT)

        # 2. A primary alone gets its slots before it meets the others.
        for node_group in group.node_groups:
            primary = node_group.primary_cluster_id
            if primary in views and len(views[primary].nodes) == 1:
                await self._claim_initial_slots(admins[primary], views[primary], slotmath.parse(node_group.slots))

        # 3. Everybody knows everybody, and nobody remembers nodes that are gone.
        missing = [(a, b) for a in views for b in views if a != b and not views[a].knows(ids[b])]
        if missing:
            await asyncio.gather(
                *(
                    admins[a].execute(
                        "CLUSTER", "MEET", members[b].node.address, str(members[b].port), str(cluster_bus_port(members[b].port))
                    )
                    for a, b in missing
                ),
                return_exceptions=True,
            )
            views = await self._wait_joined(admins, ids)
        await self._forget_strangers(admins, views, set(ids.values()))

        # 4. Replicas follow their shard's primary.
        for node_group in group.node_groups:
            primary_id = ids.get(node_group.primary_cluster_id)
            if primary_id is None:
                continue
            for replica in node_group.replica_cluster_ids:
                if replica in views and views[replica].myself.master_id != primary_id:
                    log.info("%s: %s replicates %s", group.group_id, replica, node_group.primary_cluster_id)
                    await admins[replica].execute("CLUSTER", "REPLICATE", primary_id)

        # Nothing moves until every node serves the cluster.
        infos = await asyncio.gather(*(admins[cid].text("CLUSTER", "INFO") for cid in admins))
        if not all("cluster_state:ok" in info for info in infos):
            raise Again("waiting for cluster_state:ok on every node")

        # 5. Slots go where the plan wants them.
        target = self._target(group)
        owners = self._owners(views, {ng_id: ids[p] for ng_id, p in primaries.items() if p in ids})
        misplaced = sorted(slot for ng_id, wanted in target.items() for slot in wanted if owners.get(slot) != ng_id)
        unowned = [slot for slot in misplaced if slot not in owners]
        for ng_id, wanted in target.items():
            mine = [slot for slot in unowned if slot in wanted]
            if mine and primaries[ng_id] in admins:
                await engine_cluster.add_slots(admins[primaries[ng_id]], mine)
        moving = [slot for slot in misplaced if slot in owners]
        if moving:
            await self._node_timeout(live, STEADY_NODE_TIMEOUT)
            await self._migrate(group, admins, ids, primaries, owners, target, moving)
            views = await self._views(admins)
            owners = self._owners(views, {ng_id: ids[p] for ng_id, p in primaries.items() if p in ids})
        self._record_slots(group, owners)

        # 6. Shards being removed (now empty) and replicas being deleted leave the cluster.
        group = ops.store.get(ReplicationGroup, group.region, group.group_id) or group
        leaving = [c for c in members.values() if c.status == ClusterStatus.DELETING]
        removed_groups = set(group.resharding.removing) if group.resharding else set()
        for ng_id in removed_groups:
            removed = group.node_group(ng_id)
            if removed is not None and not any(owner == ng_id for owner in owners.values()):
                leaving += [members[c] for c in removed.member_cluster_ids if c in members]
        if leaving:
            await self._remove(group, leaving, admins, ids)
            return  # the record changed; the next pass looks again

        # 7. Healthy and agreed: available.
        views = await self._views(admins)
        if not self._agreed(views, ids, target, primaries):
            raise Again("waiting for every node to agree on the slot map")
        for node_group in group.node_groups:
            for replica in node_group.replica_cluster_ids:
                if replica in admins:
                    info = await admins[replica].info("replication")
                    if info.get("master_link_status") != "up":
                        raise Again(f"waiting for {replica} to sync")
        await self._node_timeout(live, STEADY_NODE_TIMEOUT)
        await self._place_configuration_endpoint(group, live, members)
        for cluster in live:
            ops.mark_available(cluster)
            ops.verified[node_key(cluster)] = ops.provider.pid(node_key(cluster)) or 0
        current = ops.store.get(ReplicationGroup, group.region, group.group_id)
        if current is not None and current.resharding is not None:
            with ops.store.transaction() as tx:
                tx.put(replace(current, resharding=None))
                tx.add_event(
                    event_for(current, f"Resharding of {current.group_id} completed: {len(current.node_groups)} node groups",
                              ops.clock.now())
                )

    # ------------------------------------------------------------------ observing
    @staticmethod
    async def _views(admins: dict[str, AdminClient]) -> dict[str, ClusterView]:
        names = list(admins)
        results = await asyncio.gather(*(engine_cluster.view(admins[n]) for n in names))
        return dict(zip(names, results, strict=True))

    async def _wait_joined(self, admins: dict[str, AdminClient], ids: dict[str, str]) -> dict[str, ClusterView]:
        deadline = time.monotonic() + JOIN_TIMEOUT
        while True:
            views = await self._views(admins)
            if all(views[a].knows(ids[b]) for a in views for b in views if a != b):
                return views
            if time.monotonic() > deadline:
                raise Again("nodes are still meeting each other")
            await asyncio.sleep(0.005)

    @staticmethod
    def _owners(views: dict[str, ClusterView], primary_ids: dict[str, str]) -> dict[int, str]:
        """Slot -> node group, from what each primary says it owns (highest epoch wins a dispute)."""
        by_id = {node_id: ng_id for ng_id, node_id in primary_ids.items()}
        claims: dict[int, tuple[int, str]] = {}
        for view in views.values():
            me = view.myself
            ng_id = by_id.get(me.node_id)
            if ng_id is None:
                continue
            for slot in me.slots:
                if slot not in claims or claims[slot][0] < me.config_epoch:
                    claims[slot] = (me.config_epoch, ng_id)
        return {slot: ng_id for slot, (_, ng_id) in claims.items()}

    @staticmethod
    def _target(group: ReplicationGroup) -> dict[str, set[int]]:
        if group.resharding is not None:
            return {ng_id: slotmath.parse(ranges) for ng_id, ranges in group.resharding.target_slots}
        return {ng.node_group_id: slotmath.parse(ng.slots) for ng in group.node_groups}

    @staticmethod
    def _agreed(views: dict[str, ClusterView], ids: dict[str, str], target: dict[str, set[int]], primaries: dict[str, str]) -> bool:
        for view in views.values():
            for ng_id, wanted in target.items():
                node = view.nodes.get(ids.get(primaries.get(ng_id, ""), ""))
                if node is None or set(node.slots) != wanted or not node.healthy:
                    return False
        return True

    # ------------------------------------------------------------------ acting
    async def _node_timeout(self, live: list[CacheCluster], value: str) -> None:
        from cachefleet.control.reconciler import node_key

        for cluster in live:
            key = node_key(cluster)
            lowered = key in self._fast
            if (value == FORMING_NODE_TIMEOUT) != lowered:
                await self.ops.admin(cluster).config_set("cluster-node-timeout", value)
                if value == FORMING_NODE_TIMEOUT:
                    self._fast.add(key)
                else:
                    self._fast.discard(key)

    @staticmethod
    async def _claim_initial_slots(admin: AdminClient, view: ClusterView, wanted: set[int]) -> None:
        owned = set(view.myself.slots)
        if owned == wanted:
            return
        commands: list[tuple[str, ...]] = []
        for low, high in slotmath.ranges_of(owned - wanted):
            commands.append(("CLUSTER", "DELSLOTSRANGE", str(low), str(high)))
        for low, high in slotmath.ranges_of(wanted - owned):
            commands.append(("CLUSTER", "ADDSLOTSRANGE", str(low), str(high)))
        # One transaction: the node never owns nothing, so it never counts itself orphaned.
        await admin.transaction(commands)

    async def _forget_strangers(self, admins: dict[str, AdminClient], views: dict[str, ClusterView], ours: set[str]) -> None:
        for name, view in views.items():
            for node_id, node in view.nodes.items():
                if node.flags & {"handshake", "noaddr"}:
                    continue  # a handshake in progress has a temporary id, not a stranger's
                if node_id not in ours and node_id != view.myself.node_id and node_id != view.myself.master_id:
                    try:
                        await admins[name].execute("CLUSTER", "FORGET", node_id)
                    except EngineError as error:
                        log.info("forget %s on %s: %s", node_id, name, error)

    async def _migrate(
        self,
        group: ReplicationGroup,
        admins: dict[str, AdminClient],
        ids: dict[str, str],
        primaries: dict[str, str],
        owners: dict[int, str],
        target: dict[str, set[int]],
        moving: list[int],
    ) -> None:
        """Moves ``moving`` slots to their target shards, in batches, over several lanes at once.

        Valkey 8+ answers CLUSTER SETSLOT only once the shard's replicas acknowledged it;
        the engine acknowledges all waiting connections together, so lanes (connections
        working in parallel) multiply the throughput where a single pipeline cannot.
        """
        ops = self.ops
        destination = {slot: ng_id for ng_id, wanted in target.items() for slot in wanted}
        batches: list[tuple[str, str, list[int]]] = []
        by_pair: dict[tuple[str, str], list[int]] = {}
        for slot in moving:
            by_pair.setdefault((owners[slot], destination[slot]), []).append(slot)
        for (source_ng, target_ng), pair_slots in by_pair.items():
            for start in range(0, len(pair_slots), SLOT_BATCH):
                batches.append((source_ng, target_ng, pair_slots[start : start + SLOT_BATCH]))
        members = {c.cluster_id: c for c in ops.members(group).values()}
        queue: asyncio.Queue[tuple[str, str, list[int]]] = asyncio.Queue()
        for batch in batches:
            queue.put_nowait(batch)
        progress = dict(owners)
        moved = [0]
        last_record = [time.monotonic()]

        async def lane() -> None:
            # A lane's own connections (long read timeout: a MIGRATE pipeline can take a while).
            connections: dict[str, AdminClient] = {}
            try:
                while not queue.empty():
                    source_ng, target_ng, slots = queue.get_nowait()
                    source, dest = primaries[source_ng], primaries[target_ng]
                    for name in (source, dest):
                        if name not in connections:
                            connections[name] = AdminClient(members[name].node.address, members[name].port, timeout=60.0)
                    count = await engine_cluster.migrate_slots(
                        slots, source=connections[source], source_id=ids[source], target=connections[dest],
                        target_id=ids[dest],
                    )
                    moved[0] += count  # not `+= await ...`: that reads the total before the await
                    for slot in slots:
                        progress[slot] = target_ng
                    if time.monotonic() - last_record[0] > PROGRESS_INTERVAL:
                        self._record_slots(group, progress)
                        last_record[0] = time.monotonic()
            finally:
                for connection in connections.values():
                    await connection.close()

        try:
            await asyncio.gather(*(lane() for _ in range(min(LANES, len(batches)))))
        finally:
            self._record_slots(group, progress)
        log.info("%s: moved %d slots with %d keys", group.group_id, len(moving), moved[0])
        current = ops.store.get(ReplicationGroup, group.region, group.group_id)
        if current is not None:
            ops.record(current, f"Moved {len(moving)} slots with {moved[0]} keys between shards of {group.group_id}")

    def _record_slots(self, group: ReplicationGroup, owners: dict[int, str]) -> None:
        """Stores which slots each node group owns now (Describe shows them, and the progress)."""
        store = self.ops.store
        current = store.get(ReplicationGroup, group.region, group.group_id)
        if current is None:
            return
        by_group: dict[str, set[int]] = {ng.node_group_id: set() for ng in current.node_groups}
        for slot, ng_id in owners.items():
            by_group.setdefault(ng_id, set()).add(slot)
        node_groups = tuple(replace(ng, slots=slotmath.format_ranges(by_group[ng.node_group_id])) for ng in current.node_groups)
        if node_groups != current.node_groups:
            with store.transaction() as tx:
                tx.put(replace(current, node_groups=node_groups))

    async def _remove(
        self, group: ReplicationGroup, leaving: list[CacheCluster], admins: dict[str, AdminClient], ids: dict[str, str]
    ) -> None:
        """Forgets leaving nodes on every node that stays, then stops them and drops their records."""
        from cachefleet.control.reconciler import node_key

        ops = self.ops
        names = {c.cluster_id for c in leaving}
        staying = [name for name in admins if name not in names]
        for cluster in leaving:
            node_id = ids.get(cluster.cluster_id)
            if node_id is None:
                continue
            for name in staying:
                try:
                    await admins[name].execute("CLUSTER", "FORGET", node_id)
                except EngineError as error:
                    log.info("forget %s on %s: %s", cluster.cluster_id, name, error)
        running = [c for c in leaving if ops.provider.pid(node_key(c)) is not None]
        await self._move_configuration_endpoint(group, running, members={c.cluster_id: c for c in ops.members(group).values()})
        await self._drain(running)
        for cluster in leaving:
            await ops.destroy_cluster(cluster, group=group)
        current = ops.store.get(ReplicationGroup, group.region, group.group_id)
        if current is not None and current.resharding is not None:
            gone = set(current.resharding.removing)
            kept = tuple(ng for ng in current.node_groups if ng.node_group_id not in gone or ng.member_cluster_ids)
            if kept != current.node_groups:
                with ops.store.transaction() as tx:
                    tx.put(replace(current, node_groups=kept))

    async def _drain(self, leaving: list[CacheCluster]) -> None:
        """Leaving nodes keep answering (MOVED) until their clients have moved away; then their
        client connections are closed, so that stopping the process cuts no request off.

        A node that just gave its last slot away still gets commands from clients whose slot
        map is stale: valkey-glide learns a moved slot from each MOVED, one slot at a time, and
        refreshes its whole map only every 60 s. Killing the node while such a client has a
        request in flight fails that request (glide: ``ConnectionError(... RecvError ...)``).
        So each node is waited on until it is quiet (no client command for DRAIN_QUIET s) and
        CLIENT LIST shows no client connection used within DRAIN_IDLE s -- at most DRAIN_MAX s.
        Then it stops listening and its client connections are closed between commands: a
        client that cannot reconnect reroutes the slot at once (measured with glide on a bare
        cluster under a busy core: SIGKILL while glide still used the node failed a request in
        3 of 5 runs; closing listener and connections first, in 0 of 20).
        """
        if not leaving:
            return
        admins = {c.cluster_id: AdminClient(c.node.address, c.port) for c in leaving}
        started = time.monotonic()
        last: dict[str, int] = {}
        quiet_since: dict[str, float] = {}
        busy: dict[str, list[ClientConnection]] = {}
        pending = set(admins)
        try:
            while pending:
                for name in sorted(pending):
                    try:
                        info = parse_info(await admins[name].text("INFO", "commandstats", "replication"))
                        connections = await admins[name].clients()
                    except EngineError:
                        pending.discard(name)  # gone already: nothing to drain
                        continue
                    # A replica executes its primary's stream as commands too: there, only CLIENT LIST tells.
                    commands = client_commands(info) if info.get("role") == "master" else 0
                    now = time.monotonic()
                    if last.get(name) != commands:
                        last[name], quiet_since[name] = commands, now
                    busy[name] = busy_clients(connections)
                    if now - quiet_since[name] >= DRAIN_QUIET and not busy[name]:
                        pending.discard(name)
                if not pending or time.monotonic() - started >= DRAIN_MAX:
                    break
                await asyncio.sleep(DRAIN_POLL)
            waited = time.monotonic() - started
            if pending:
                log.warning(
                    "drain of %s gave up after %.1f s: %s still used by clients (%s)",
                    " ".join(admins[n].address for n in sorted(admins)), waited, " ".join(admins[n].address for n in sorted(pending)),
                    "; ".join(f"{c.client_id}: {c.command}, idle {c.idle} s" for n in sorted(pending) for c in busy.get(n, [])),
                )
            else:
                log.info("drained %s in %.2f s", " ".join(admins[n].address for n in sorted(admins)), waited)
            for admin in admins.values():
                await self._close_clients(admin)
        finally:
            for admin in admins.values():
                await admin.close()

    @staticmethod
    async def _close_clients(admin: AdminClient) -> None:
        """Stops the node listening (its open connections stay) and closes its clients' connections.

        Best effort: the node is stopped right after, whatever happens here.
        """
        try:
            await admin.config_set("port", "0")
            for connection in await admin.clients():
                if connection.is_client:
                    await admin.execute("CLIENT", "KILL", "ID", str(connection.client_id))
        except EngineError as error:
            log.info("closing the client connections of %s: %s", admin.address, error)

    async def _move_configuration_endpoint(
        self, group: ReplicationGroup, leaving: list[CacheCluster], *, members: dict[str, CacheCluster]
    ) -> None:
        """Before leaving nodes drain (and stop listening), a staying primary takes over the
        configuration endpoint if a leaving one holds it: new clients keep finding the cluster."""
        from cachefleet.control.reconciler import node_key

        endpoint = group.configuration_endpoint
        ops = self.ops
        holders = [c for c in leaving if endpoint and endpoint in ops.binds.get(node_key(c), [])]
        if not holders:
            return
        for cluster in holders:
            await ops.set_binds(cluster, [cluster.node.address])
        names = {c.cluster_id for c in leaving}
        staying = [c for c in members.values() if c.cluster_id not in names and ops.provider.pid(node_key(c)) is not None]
        await self._place_configuration_endpoint(group, staying, members)

    async def _place_configuration_endpoint(
        self, group: ReplicationGroup, live: list[CacheCluster], members: dict[str, CacheCluster]
    ) -> None:
        """The configuration endpoint is one more address of a primary (its current holder if it can)."""
        from cachefleet.control.reconciler import node_key

        endpoint = group.configuration_endpoint
        if not endpoint:
            return
        running = {c.cluster_id: c for c in live if c.status != ClusterStatus.DELETING}
        candidates = [running[ng.primary_cluster_id] for ng in group.node_groups if ng.primary_cluster_id in running]
        if not candidates:
            return
        ops = self.ops
        for cluster in running.values():
            if node_key(cluster) not in ops.binds:
                ops.binds[node_key(cluster)] = await ops.admin(cluster).bound_addresses()
        holders = [c for c in candidates if endpoint in ops.binds.get(node_key(c), [])]
        holder = holders[0] if holders else candidates[0]
        for cluster in running.values():
            if cluster is not holder and endpoint in ops.binds.get(node_key(cluster), []):
                await ops.set_binds(cluster, [cluster.node.address])
        if endpoint not in ops.binds.get(node_key(holder), []):
            await ops.set_binds(holder, [holder.node.address, endpoint])


def member_node_groups(group: ReplicationGroup) -> dict[str, NodeGroup]:
    return {cid: ng for ng in group.node_groups for cid in ng.member_cluster_ids}


def busy_clients(connections: list[ClientConnection]) -> list[ClientConnection]:
    """Clients' connections (not the control plane's, nor replication links) used within DRAIN_IDLE s."""
    return [c for c in connections if c.is_client and c.idle < DRAIN_IDLE]


def client_commands(commandstats: dict[str, str]) -> int:
    """Commands of every kind but UPKEEP_COMMANDS that reached the node, from INFO commandstats
    (``cmdstat_get:calls=3,...,rejected_calls=1``): executed or rejected, since a command sent
    to a node that no longer owns its slot is rejected with MOVED."""
    total = 0
    for name, value in commandstats.items():
        if not name.startswith("cmdstat_") or name[8:].split("|")[0] in UPKEEP_COMMANDS:
            continue
        for field in value.split(","):
            counter, _, number = field.partition("=")
            if counter in ("calls", "rejected_calls") and number.isdigit():
                total += int(number)
    return total
