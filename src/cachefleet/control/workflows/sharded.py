"""Cluster mode enabled: converge a group's nodes into the Redis Cluster its record describes.

Each pass observes ``CLUSTER NODES`` on every node and takes the next steps, so the same
code creates a cluster, adds or removes shards and replicas, resumes a slot migration
after a crash, and re-forms a cluster whose nodes all restarted:

1. every live member's process runs (warm nodes are adopted, others started);
2. a primary that knows only itself gets its slots (a warm node swaps its placeholder
   ownership of every slot for its share in one MULTI, so it never looks orphaned);
3. nodes that do not know each other MEET (the pass comes back until they do); ids no
   member has any more are forgotten;
4. replicas REPLICATE their shard's primary;
5. slots not where the plan (a RESHARD operation, or the node groups' slots) wants them move,
   with their keys, while clients follow MOVED/ASK -- as a tracked task: passes go on meanwhile
   (a hung primary is failed over while its slots move). Between Valkey 9+ nodes one atomic slot
   migration job per source and target moves them (``_migrate_atomically``); otherwise lanes of
   key-by-key MIGRATE (engine_cluster.migrate_slots);
6. shards that are being removed, and replicas being deleted, are forgotten, drained of client
   traffic (a tracked task) and stopped;
7. once every node says ``cluster_state:ok`` and agrees on the slots, and replicas are in
   sync, the group is available and the configuration endpoint is bound on a primary.

While nodes join, ``cluster-node-timeout`` is lowered so that gossip spreads the slot map
within a tick or two (the engine pings a peer only every ``node-timeout/2``), and the
engine's rejoin delay, derived from it, shrinks to a second -- for clusters of up to 100
nodes; a larger one forms at the steady timeout (``forming_node_timeout``: at 1 s its pings
alone kept 200 nodes on 2 cores from forming). It goes back to 15 s before slots move and once
the cluster is formed: a busy machine must not look like a failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from cachefleet.control.nodes import Nodes, node_key
from cachefleet.control.scheduler import Retry, Target, Tasks
from cachefleet.domain import slots as slotmath
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus, NodeStatus
from cachefleet.domain.events import event_for
from cachefleet.domain.operations import Operation, OperationKind, Resharding, progressed
from cachefleet.domain.replication_groups import GroupStatus, ReplicationGroup
from cachefleet.engine import cluster as engine_cluster
from cachefleet.engine.admin import AdminClient, ClientConnection, EngineError, parse_info
from cachefleet.engine.cluster import ClusterView
from cachefleet.engine.config import cluster_bus_port

log = logging.getLogger(__name__)

FORMING_NODE_TIMEOUT = "1000"
STEADY_NODE_TIMEOUT = "15000"
FORMING_MAX_NODES = 100  # larger clusters form at the steady node timeout (forming_node_timeout)
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
# ... and at most DRAIN_MAX_SHARD s for the nodes of a removed shard. Atomic slot migration hands
# a shard's slots over in a fraction of a second, after which valkey-glide still learns them one
# MOVED at a time: under the scale-in test's load it kept writing to the leaving primaries for
# more than 10 s (closing them then failed a request in flight, 2 of 6 runs).
DRAIN_MAX_SHARD = 30.0
DRAIN_POLL = 0.2
ROLLING_BACK = "rolling back"
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
# MIGRATE blocks the source until the target has the keys: the lanes of one source share one
# engine_cluster.MigrateBudget, which keeps its key moves in flight to a few tens of milliseconds of
# the source's time, so that its other clients (and the health probe's PING) wait that long, not for
# all 64 lanes' batches (which made a busy source look hung for seconds).
MIGRATE = "migrate"
DRAIN = "drain"
# Atomic slot migration jobs that may fail in a row between two nodes before their keys move one by one.
ATOMIC_ATTEMPTS = 2


def forming_node_timeout(nodes: int) -> str:
    """The node timeout while a cluster of ``nodes`` forms: 1 s up to FORMING_MAX_NODES nodes, the
    steady 15 s past them. Every node pings each peer it has not heard from in half the timeout,
    N (N - 1) / (T / 2) pings a second and as many pongs, and on 2 cores the bus's own work decides
    (bench/many_shards.py, BENCHMARKS.md): 100 nodes formed in ~20 s at 1 s (~20,000 pings a second)
    and took 39 s at 9.9 s (fewer pings, slower news); 200 nodes at 1 s (~80,000 a second) did not
    form within 300 s, every engine busy with the bus, took 226 s at 4 s and 157 s at 15 s."""
    return FORMING_NODE_TIMEOUT if nodes <= FORMING_MAX_NODES else STEADY_NODE_TIMEOUT


class Again(Exception):
    """Not converged yet; the pass should run again shortly."""


class ShardedTopology:
    """Converges a cluster mode enabled group into the Redis Cluster its record and RESHARD operation describe."""

    def __init__(self, nodes: Nodes, tasks: Tasks) -> None:
        self.nodes = nodes
        self.tasks = tasks
        self._fast: set[str] = set()  # node keys whose node timeout is lowered
        self._drained: dict[Target, frozenset[str]] = {}  # leaving node keys whose drain finished
        # Node key -> pid of the process last seen in the formed cluster (step 7). A process started
        # since (a replica killed and started again: a new node id, no primary, no slots) is checked
        # and its record still `available`, but it has yet to meet the others and replicate.
        self._formed: dict[str, int] = {}
        # (group, source, target) -> atomic slot migration jobs failed in a row between them
        self._atomic_failures: dict[tuple[str, str, str], int] = {}

    async def reconcile(self, group: ReplicationGroup, members: dict[str, CacheCluster]) -> None:
        nodes = self.nodes
        live = [c for c in members.values() if c.status not in (ClusterStatus.DELETING, ClusterStatus.CREATE_FAILED)]
        reshard = nodes.operation(group, OperationKind.RESHARD)
        quiet = await self._drained_leavers(group, reshard, live)
        if quiet:
            # Drained before a control-plane crash (a leaving node stops listening just before it is
            # stopped), or gone: neither adopted nor started again; step 6 stops it.
            live = [c for c in live if c.cluster_id not in quiet]
        started = await nodes.ensure_all(group, live, replica_of=None, sharded=True)
        if (
            # A snapshot is taken from the nodes as they are: the topology is settled meanwhile.
            group.status in (GroupStatus.AVAILABLE, GroupStatus.SNAPSHOTTING)
            and reshard is None
            and all(nodes.checked(c) and c.status == ClusterStatus.AVAILABLE for c in started)
            and all(self._formed.get(node_key(c)) == nodes.provider.pid(node_key(c)) for c in started)
            and len(started) == len(live)
        ):
            await self._place_configuration_endpoint(group, started)
            return
        try:
            await self._converge(group, members, started, reshard)
        except Again as again:
            raise Retry(0.01, str(again)) from None

    async def cancel(self, group: ReplicationGroup) -> None:
        """Stops the group's slot migration and drains (a failover changes who owns what)."""
        await self.tasks.cancel(Target.of(group))

    # ------------------------------------------------------------------ one pass
    async def _converge(
        self, group: ReplicationGroup, members: dict[str, CacheCluster], live: list[CacheCluster],
        reshard: Operation | None,
    ) -> None:
        nodes = self.nodes
        target_of_task = Target.of(group)
        admins = {c.cluster_id: nodes.admin(c) for c in live}
        views = await self._views(admins, live)
        ids = {cid: view.myself.node_id for cid, view in views.items()}
        primaries = {ng.node_group_id: ng.primary_cluster_id for ng in group.node_groups}
        # Nodes of shards being removed that own no slot any more are on their way out: the staying
        # nodes forget them before they drain (step 6), and must not be made to meet them again
        # (a forgotten node cannot be met for 60 s: the passes of the drain would wait on it).
        out = leaving_shards(group, reshard.resharding if reshard is not None else None,
                             self._owners(views, {ng_id: ids[p] for ng_id, p in primaries.items() if p in ids}))
        pairs = [(a, b) for a in views for b in views if a != b and a not in out and b not in out]
        joining = any(not views[a].knows(ids[b]) for a, b in pairs) or group.status == GroupStatus.CREATING
        if joining:
            await self._node_timeout(live, forming=True)

        # 2. A primary alone gets its slots before it meets the others.
        for node_group in group.node_groups:
            primary = node_group.primary_cluster_id
            if primary in views and len(views[primary].nodes) == 1:
                await self._claim_initial_slots(admins[primary], views[primary], slotmath.parse(node_group.slots))

        # 3. Everybody knows everybody, and nobody remembers nodes that are gone.
        missing = [(a, b) for a, b in pairs if not views[a].knows(ids[b])]
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
            views = await self._views(admins, live)
            if any(not views[a].knows(ids[b]) for a, b in pairs):
                raise Again("nodes are still meeting each other")
        if await self._forget_strangers(admins, views, set(ids.values())):
            # Look again before anything else: a forgotten stranger must not be in the view a
            # later step (or the group's availability) is judged on.
            raise Again("nodes that are not members were forgotten")

        # 4. Replicas follow their shard's primary, logged in with its password (after a takeover
        # a shard's other replicas follow the new primary by themselves: their password changes
        # here) -- unless the engines made another member of the shard its primary (a stale config
        # epoch can turn a primary into a replica of its own replica): then the records follow the
        # engines, within the node group only.
        adopted = adopted_primaries(group, views, ids)
        if adopted:
            self._adopt_primaries(group, adopted)
            raise Again(f"the engines chose {', '.join(adopted.values())} as primary")
        for node_group in group.node_groups:
            primary_id = ids.get(node_group.primary_cluster_id)
            if primary_id is None:
                continue
            for replica in node_group.replica_cluster_ids:
                if replica in views and node_group.primary_cluster_id in members:
                    await nodes.authenticate_replication(members[replica], members[node_group.primary_cluster_id])
                if replica in views and views[replica].myself.master_id != primary_id:
                    log.info("%s: %s replicates %s", group.group_id, replica, node_group.primary_cluster_id)
                    await admins[replica].execute("CLUSTER", "REPLICATE", primary_id)

        # Nothing moves until every node serves the cluster.
        infos = await nodes.ask(asyncio.gather(*(admins[cid].text("CLUSTER", "INFO") for cid in admins)), live)
        if not all("cluster_state:ok" in info for info in infos):
            raise Again("waiting for cluster_state:ok on every node")

        # 5. Slots go where the plan wants them.
        plan = reshard.resharding if reshard is not None else None
        target = self._target(group, plan)
        owners = self._owners(views, {ng_id: ids[p] for ng_id, p in primaries.items() if p in ids})
        misplaced = sorted(slot for ng_id, wanted in target.items() for slot in wanted if owners.get(slot) != ng_id)
        moving = [slot for slot in misplaced if slot in owners]
        if self.tasks.busy(target_of_task, MIGRATE):
            # Slots in flight look unowned for a moment (one side finalized, the other not yet):
            # nothing is assigned from a view taken while they move.
            raise Retry(0.05, f"moving {len(moving)} slots of {group.group_id}")
        unowned = [slot for slot in misplaced if slot not in owners]
        for ng_id, wanted in target.items():
            mine = [slot for slot in unowned if slot in wanted]
            if mine and primaries.get(ng_id) in admins:
                await engine_cluster.add_slots(admins[primaries[ng_id]], mine)
        failure = self.tasks.take(target_of_task, MIGRATE)
        if failure is not None:
            log.warning("%s: slot migration stopped (%s); planning it again", group.group_id, failure)
        if moving:
            await self._node_timeout(live, forming=False)
            self.tasks.start(target_of_task, MIGRATE, self._migrate(group, ids, primaries, owners, target, moving))
            raise Retry(0.05, f"moving {len(moving)} slots of {group.group_id}")
        self._record_slots(group, owners)

        # 6. Shards being removed (now empty) and replicas being deleted leave the cluster.
        group = nodes.current(group) or group
        leaving = [c for c in members.values() if c.status == ClusterStatus.DELETING]
        for ng_id in plan.removing if plan is not None else ():
            removed = group.node_group(ng_id)
            if removed is not None and not any(owner == ng_id for owner in owners.values()):
                leaving += [members[c] for c in removed.member_cluster_ids if c in members]
        if leaving:
            limit = DRAIN_MAX_SHARD if plan is not None and plan.removing else DRAIN_MAX
            await self._remove(group, leaving, admins, ids, limit)
            return  # the record changed; the next pass looks again
        if self._drop_emptied_node_groups(group):
            # A crash between the last leaving node's deletion and its node group's: done now.
            raise Again("emptied node groups dropped")

        # 7. Healthy and agreed: available.
        views = await self._views(admins, live)
        if not self._agreed(views, ids, target, primaries):
            raise Again("waiting for every node to agree on the slot map")
        for node_group in group.node_groups:
            for replica in node_group.replica_cluster_ids:
                if replica in admins:
                    info = await admins[replica].info("replication")
                    if info.get("master_link_status") != "up":
                        await self._say_blocked_sync(members, node_group.primary_cluster_id, replica)
                        raise Again(f"waiting for {replica} to sync")
        await self._listed_by_every_node(group, admins, ids, target, live)
        await self._node_timeout(live, forming=False)
        await self._place_configuration_endpoint(group, live)
        for cluster in live:
            nodes.mark_available(cluster)
            nodes.mark_checked(cluster)
            self._formed[node_key(cluster)] = nodes.provider.pid(node_key(cluster)) or 0
        nodes.note_sync(live, None)
        if reshard is not None:
            current = nodes.current(group) or group
            with nodes.store.transaction() as tx:
                tx.delete(reshard)
                message = (
                    f"Resharding of {current.group_id} rolled back: {len(current.node_groups)} node groups"
                    if reshard.step == ROLLING_BACK
                    else f"Resharding of {current.group_id} completed: {len(current.node_groups)} node groups"
                )
                tx.add_event(event_for(current, message, nodes.clock.now()))

    async def _say_blocked_sync(self, members: dict[str, CacheCluster], primary_id: str, replica_id: str) -> None:
        """A replica's full sync its primary cannot save for (its disk full) is said once (Nodes.note_sync)."""
        nodes = self.nodes
        replica, primary = members.get(replica_id), members.get(primary_id)
        if replica is None or primary is None or not nodes.syncing_long([replica]):
            return
        blocked = await nodes.sync_blocked(primary)
        if blocked is not None:
            nodes.note_sync([replica], blocked)

    async def _drained_leavers(
        self, group: ReplicationGroup, reshard: Operation | None, live: list[CacheCluster]
    ) -> set[str]:
        """Members of node groups the reshard removes, whose slots have all moved (as recorded),
        that do not answer: drained (no listener) by a pass before a control-plane crash, whose
        memory of the drain went with it."""
        plan = reshard.resharding if reshard is not None else None
        removing: set[str] = set()
        for ng_id in plan.removing if plan is not None else ():
            node_group = group.node_group(ng_id)
            if node_group is not None and not node_group.slots:
                removing.update(node_group.member_cluster_ids)
        quiet: set[str] = set()
        for cluster in live:
            if cluster.cluster_id in removing:
                if not self.nodes.running(cluster):
                    quiet.add(cluster.cluster_id)
                    continue
                try:
                    await asyncio.wait_for(self.nodes.admin(cluster).ping(), 1.0)
                except (EngineError, TimeoutError):
                    quiet.add(cluster.cluster_id)
        return quiet

    def _adopt_primaries(self, group: ReplicationGroup, adopted: dict[str, str]) -> None:
        nodes = self.nodes
        current = nodes.current(group) or group
        node_groups = tuple(
            replace(ng, primary_cluster_id=adopted[ng.node_group_id]) if ng.node_group_id in adopted else ng
            for ng in current.node_groups
        )
        with nodes.store.transaction() as tx:
            tx.put(replace(current, node_groups=node_groups))
            for ng_id, cluster_id in sorted(adopted.items()):
                tx.add_event(event_for(current, f"Node group {ng_id} of {group.group_id}: its engines made {cluster_id} "
                                                "the primary; the records follow", nodes.clock.now()))
        nodes.unchecked(list(nodes.members(current).values()))

    # ------------------------------------------------------------------ observing
    async def _views(self, admins: dict[str, AdminClient], live: list[CacheCluster]) -> dict[str, ClusterView]:
        """What every node believes (CLUSTER NODES), asked of all at once; given up as soon as one of
        them is found hung (its failover must not wait for this pass)."""
        names = list(admins)
        results = await self.nodes.ask(asyncio.gather(*(engine_cluster.view(admins[n]) for n in names)), live)
        return dict(zip(names, results, strict=True))

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
    def _target(group: ReplicationGroup, plan: Resharding | None) -> dict[str, set[int]]:
        if plan is not None:
            return {ng_id: slotmath.parse(ranges) for ng_id, ranges in plan.target_slots}
        return {ng.node_group_id: slotmath.parse(ng.slots) for ng in group.node_groups}

    async def _listed_by_every_node(
        self, group: ReplicationGroup, admins: dict[str, AdminClient], ids: dict[str, str],
        target: dict[str, set[int]], live: list[CacheCluster],
    ) -> None:
        """Before a member is marked available: every node's CLUSTER SLOTS lists every member of a
        shard with slots, as a client connecting then sees the group. A replica that just synced (a
        new one, or one an upgrade replaced) is left out by the others until the cluster bus tells
        them it holds data, up to a few hundred ms later. Not asked at rest (nothing to mark)."""
        if all(c.status == ClusterStatus.AVAILABLE and c.node.status == NodeStatus.AVAILABLE for c in live):
            return
        wanted = {ids[c] for ng in group.node_groups if target.get(ng.node_group_id)
                  for c in ng.member_cluster_ids if c in ids and c in admins}
        names = list(admins)
        listed = await self.nodes.ask(
            asyncio.gather(*(engine_cluster.slot_map_node_ids(admins[n]) for n in names)), live)
        missing = sorted({n for n, seen in zip(names, listed, strict=True) if wanted - seen})
        if missing:
            raise Retry(0.05, f"waiting for every member of {group.group_id} in CLUSTER SLOTS of {', '.join(missing)}")

    @staticmethod
    def _agreed(views: dict[str, ClusterView], ids: dict[str, str], target: dict[str, set[int]], primaries: dict[str, str]) -> bool:
        for view in views.values():
            for ng_id, wanted in target.items():
                node = view.nodes.get(ids.get(primaries.get(ng_id, ""), ""))
                if node is None or set(node.slots) != wanted or not node.healthy:
                    return False
        return True

    # ------------------------------------------------------------------ acting
    async def _node_timeout(self, live: list[CacheCluster], *, forming: bool) -> None:
        value = forming_node_timeout(len(live)) if forming else STEADY_NODE_TIMEOUT
        lowered = value == FORMING_NODE_TIMEOUT  # a large cluster forms at the steady timeout
        for cluster in live:
            key = node_key(cluster)
            if lowered != (key in self._fast):
                await self.nodes.admin(cluster).config_set("cluster-node-timeout", value)
                if lowered:
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

    async def _forget_strangers(self, admins: dict[str, AdminClient], views: dict[str, ClusterView], ours: set[str]) -> bool:
        """Forgets, on every member, the nodes that are not members; True if any was forgotten."""
        forgot = False
        for name, node_id in strangers(views, ours):
            try:
                await admins[name].execute("CLUSTER", "FORGET", node_id)
            except EngineError as error:
                log.info("forget %s on %s: %s", node_id, name, error)
            else:
                forgot = True
        return forgot

    async def _migrate(
        self,
        group: ReplicationGroup,
        ids: dict[str, str],
        primaries: dict[str, str],
        owners: dict[int, str],
        target: dict[str, set[int]],
        moving: list[int],
    ) -> None:
        """Moves ``moving`` slots to their target shards, in batches, over several lanes at once
        (a tracked task: the group's passes go on meanwhile).

        Valkey 8+ answers CLUSTER SETSLOT only once the shard's replicas acknowledged it;
        the engine acknowledges all waiting connections together, so lanes (connections
        working in parallel) multiply the throughput where a single pipeline cannot.
        """
        nodes = self.nodes
        destination = {slot: ng_id for ng_id, wanted in target.items() for slot in wanted}
        by_pair: dict[tuple[str, str], list[int]] = {}
        for slot in moving:
            by_pair.setdefault((owners[slot], destination[slot]), []).append(slot)
        members = {c.cluster_id: c for c in nodes.members(group).values()}
        progress = dict(owners)
        # Valkey 9+ moves a pair's slots by itself (atomic slot migration); other pairs key by key.
        atomic = {
            pair: pair_slots for pair, pair_slots in by_pair.items()
            if self._atomic_pair(group, members.get(primaries[pair[0]]), members.get(primaries[pair[1]]))
        }
        if atomic:
            try:
                await self._migrate_atomically(group, ids, primaries, members, atomic, progress)
            finally:
                self._record_slots(group, progress)
        queue: asyncio.Queue[tuple[str, str, list[int]]] = asyncio.Queue()
        for (source_ng, target_ng), pair_slots in by_pair.items():
            if (source_ng, target_ng) in atomic:
                continue
            for start in range(0, len(pair_slots), SLOT_BATCH):
                queue.put_nowait((source_ng, target_ng, pair_slots[start : start + SLOT_BATCH]))
        if queue.empty():
            return
        keyed = sum(len(pair_slots) for pair, pair_slots in by_pair.items() if pair not in atomic)
        moved = [0]
        last_record = [time.monotonic()]
        lanes = min(LANES, queue.qsize())
        # Per source primary: one budget for its key moves (see MigrateBudget).
        budgets: dict[str, engine_cluster.MigrateBudget] = {}

        async def lane() -> None:
            # A lane's own connections (long read timeout: a MIGRATE pipeline can take a while).
            connections: dict[str, AdminClient] = {}
            try:
                while not queue.empty():
                    source_ng, target_ng, batch = queue.get_nowait()
                    source, dest = primaries[source_ng], primaries[target_ng]
                    for name in (source, dest):
                        if name not in connections:
                            connections[name] = nodes.access(members[name]).admin(timeout=60.0)
                    target_access = nodes.access(members[dest])
                    count = await engine_cluster.migrate_slots(
                        batch, source=connections[source], source_id=ids[source], target=connections[dest],
                        target_id=ids[dest], budget=budgets.setdefault(source, engine_cluster.MigrateBudget()),
                        target_auth=target_access.credentials,
                    )
                    moved[0] += count  # not `+= await ...`: that reads the total before the await
                    for slot in batch:
                        progress[slot] = target_ng
                    if time.monotonic() - last_record[0] > PROGRESS_INTERVAL:
                        self._record_slots(group, progress)
                        last_record[0] = time.monotonic()
            finally:
                for connection in connections.values():
                    await connection.close()

        try:
            await asyncio.gather(*(lane() for _ in range(lanes)))
        finally:
            self._record_slots(group, progress)
        log.info("%s: moved %d slots with %d keys", group.group_id, keyed, moved[0])
        for source, budget in budgets.items():
            log.info("%s: key moves out of %s: %s", group.group_id, source, budget.summary())
        current = nodes.current(group)
        if current is not None:
            nodes.record(current, f"Moved {keyed} slots with {moved[0]} keys between shards of {group.group_id}")

    def _atomic_pair(self, group: ReplicationGroup, source: CacheCluster | None, target: CacheCluster | None) -> bool:
        """Whether slots move from ``source`` to ``target`` by atomic slot migration: both builds
        have it, and it has not failed twice between them (then keys move one by one)."""
        if source is None or target is None:
            return False
        if self._atomic_failures.get((group.group_id, source.cluster_id, target.cluster_id), 0) >= ATOMIC_ATTEMPTS:
            return False
        return all(engine_cluster.atomic_slot_migration(c.engine, c.engine_version) for c in (source, target))

    async def _migrate_atomically(
        self,
        group: ReplicationGroup,
        ids: dict[str, str],
        primaries: dict[str, str],
        members: dict[str, CacheCluster],
        pairs: dict[tuple[str, str], list[int]],
        progress: dict[int, str],
    ) -> None:
        """Moves each pair's slots by atomic slot migration jobs of its source (Valkey 9+), each of
        at most engine_cluster.ATOMIC_JOB_KEYS keys (the source deletes what it handed over in its
        main thread when a job ends: a bounded job keeps that pause short of a hung node's);
        a source's jobs one after another (its ``masterauth`` is the target's password while it
        hands slots over), different sources at once. A job the engine was already running (it went
        on while the control plane restarted) is waited for and nothing else is started: the next
        pass plans again from what moved. A pair whose source refuses the command, or whose job
        failed twice, moves its keys one by one instead (``_atomic_pair``).
        """
        nodes = self.nodes
        by_source: dict[str, list[tuple[str, list[int]]]] = {}
        for (source_ng, target_ng), pair_slots in sorted(pairs.items()):
            by_source.setdefault(source_ng, []).append((target_ng, pair_slots))

        async def export(source_ng: str, jobs: list[tuple[str, list[int]]]) -> None:
            source = members[primaries[source_ng]]
            admin = nodes.access(source).admin(timeout=10.0)
            try:
                if await engine_cluster.wait_for_exports(admin):
                    raise Again(f"{source.cluster_id} finished a slot migration it had started before")
                for target_ng, pair_slots in jobs:
                    target = members[primaries[target_ng]]
                    key = (group.group_id, source.cluster_id, target.cluster_id)
                    await nodes.authenticate_slot_export(source, target)
                    started = time.monotonic()
                    chunks = await engine_cluster.atomic_jobs(admin, pair_slots)
                    for chunk in chunks:
                        try:
                            await engine_cluster.migrate_slots_atomically(chunk, source=admin, target_id=ids[target.cluster_id])
                        except engine_cluster.SlotMigrationRefused as refused:
                            log.warning("%s: %s; moving its keys one by one", group.group_id, refused)
                            self._atomic_failures[key] = ATOMIC_ATTEMPTS
                            raise Again(str(refused)) from None
                        except engine_cluster.SlotMigrationFailed as failed:
                            self._atomic_failures[key] = self._atomic_failures.get(key, 0) + 1
                            raise EngineError(str(failed)) from None
                        self._atomic_failures.pop(key, None)
                        for slot in chunk:
                            progress[slot] = target_ng
                        self._record_slots(group, progress)
                    log.info("%s: %d slots moved from %s to %s by atomic slot migration in %d job(s), %.2f s", group.group_id,
                             len(pair_slots), source.cluster_id, target.cluster_id, len(chunks), time.monotonic() - started)
            finally:
                await admin.close()

        results = await asyncio.gather(*(export(ng, jobs) for ng, jobs in by_source.items()), return_exceptions=True)
        moved = sum(len(s) for pair, s in pairs.items() if all(progress[slot] == pair[1] for slot in s))
        current = nodes.current(group)
        if moved and current is not None:
            nodes.record(current, f"Moved {moved} slots between shards of {group.group_id} by atomic slot migration")
        errors = [r for r in results if isinstance(r, BaseException)]
        for error in errors:
            if not isinstance(error, Exception):
                raise error
        if errors:
            # Again: the next pass plans from the nodes' views (a refused pair moves its keys one by one).
            raise errors[0]

    def _record_slots(self, group: ReplicationGroup, owners: dict[int, str]) -> None:
        """Stores which slots each node group owns now (Describe shows them, and the progress);
        progress moves the reshard's deadline forward."""
        store = self.nodes.store
        current = self.nodes.current(group)
        if current is None:
            return
        by_group: dict[str, set[int]] = {ng.node_group_id: set() for ng in current.node_groups}
        for slot, ng_id in owners.items():
            by_group.setdefault(ng_id, set()).add(slot)
        node_groups = tuple(replace(ng, slots=slotmath.format_ranges(by_group[ng.node_group_id])) for ng in current.node_groups)
        if node_groups != current.node_groups:
            reshard = self.nodes.operation(current, OperationKind.RESHARD)
            with store.transaction() as tx:
                tx.put(replace(current, node_groups=node_groups))
                if reshard is not None:
                    moved = sum(len(slotmath.parse(ng.slots)) for ng in node_groups)
                    tx.put(progressed(reshard, reshard.step if reshard.step == ROLLING_BACK else f"moving slots ({moved})",
                                      now=self.nodes.clock.now()))

    async def _remove(
        self, group: ReplicationGroup, leaving: list[CacheCluster], admins: dict[str, AdminClient], ids: dict[str, str],
        limit: float = DRAIN_MAX,
    ) -> None:
        """Forgets leaving nodes on every node that stays, drains them (a tracked task, at most
        ``limit`` s), then stops them and drops their records."""
        nodes = self.nodes
        task_target = Target.of(group)
        if self.tasks.busy(task_target, DRAIN):
            raise Retry(0.05, f"draining {len(leaving)} leaving node(s) of {group.group_id}")
        failure = self.tasks.take(task_target, DRAIN)
        if failure is not None:
            log.warning("%s: draining leaving nodes stopped (%s); trying again", group.group_id, failure)
        keys = frozenset(node_key(c) for c in leaving if nodes.running(c))
        if keys and not keys <= self._drained.get(task_target, frozenset()):
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
            draining = [c for c in leaving if node_key(c) in keys]
            await self._move_configuration_endpoint(group, draining)
            self.tasks.start(task_target, DRAIN, self._drain(task_target, draining, limit))
            raise Retry(0.05, f"draining {len(keys)} leaving node(s) of {group.group_id}")
        self._drained.pop(task_target, None)
        for cluster in leaving:
            await nodes.destroy(cluster, group=group)
        self._drop_emptied_node_groups(group)

    def _drop_emptied_node_groups(self, group: ReplicationGroup) -> bool:
        """Drops the node groups being removed that have no member left; whether any was."""
        nodes = self.nodes
        current = nodes.current(group)
        reshard = nodes.operation(current, OperationKind.RESHARD) if current is not None else None
        if current is None or reshard is None or reshard.resharding is None:
            return False
        gone = set(reshard.resharding.removing)
        kept = tuple(ng for ng in current.node_groups if ng.node_group_id not in gone or ng.member_cluster_ids)
        if kept == current.node_groups:
            return False
        with nodes.store.transaction() as tx:
            tx.put(replace(current, node_groups=kept))
        return True

    async def _drain(self, task_target: Target, leaving: list[CacheCluster], limit: float = DRAIN_MAX) -> None:
        """Leaving nodes keep answering (MOVED) until their clients have moved away; then their
        client connections are closed, so that stopping the process cuts no request off (a tracked task).

        A node that just gave its last slot away still gets commands from clients whose slot
        map is stale: valkey-glide learns a moved slot from each MOVED, one slot at a time, and
        refreshes its whole map only every 60 s. Killing the node while such a client has a
        request in flight fails that request (glide: ``ConnectionError(... RecvError ...)``).
        So each node is waited on until it is quiet (no client command for DRAIN_QUIET s) and
        CLIENT LIST shows no client connection used within DRAIN_IDLE s -- at most ``limit`` s.
        Then it stops listening and its client connections are closed between commands: a
        client that cannot reconnect reroutes the slot at once (measured with glide on a bare
        cluster under a busy core: SIGKILL while glide still used the node failed a request in
        3 of 5 runs; closing listener and connections first, in 0 of 20).
        """
        admins = {c.cluster_id: self.nodes.access(c).admin() for c in leaving}
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
                if not pending or time.monotonic() - started >= limit:
                    break
                await asyncio.sleep(DRAIN_POLL)
            waited = time.monotonic() - started
            if pending:
                log.warning(
                    "drain of %s gave up after %.1f s: %s still used by clients (%s)",
                    " ".join(admins[n].address for n in sorted(admins)), waited,
                    " ".join(admins[n].address for n in sorted(pending)),
                    "; ".join(f"{c.client_id}: {c.command}, idle {c.idle} s" for n in sorted(pending) for c in busy.get(n, [])),
                )
            else:
                log.info("drained %s in %.2f s", " ".join(admins[n].address for n in sorted(admins)), waited)
            for admin in admins.values():
                await self._close_clients(admin)
        finally:
            for admin in admins.values():
                await admin.close()
        self._drained[task_target] = frozenset(node_key(c) for c in leaving)

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

    async def _move_configuration_endpoint(self, group: ReplicationGroup, leaving: list[CacheCluster]) -> None:
        """Before leaving nodes drain (and stop listening), a staying primary takes over the
        configuration endpoint if a leaving one holds it: new clients keep finding the cluster."""
        endpoint = group.configuration_endpoint
        nodes = self.nodes
        holders = []
        for cluster in leaving:
            try:
                if endpoint and endpoint in await nodes.bound(cluster):
                    holders.append(cluster)
            except EngineError:
                continue  # drained before a crash: it listens on no address any more
        if not holders:
            return
        for cluster in holders:
            await nodes.set_binds(cluster, [cluster.node.address])
        names = {c.cluster_id for c in leaving}
        staying = [c for c in nodes.members(group).values() if c.cluster_id not in names and nodes.running(c)]
        await self._place_configuration_endpoint(group, staying)

    async def _place_configuration_endpoint(self, group: ReplicationGroup, live: list[CacheCluster]) -> None:
        """The configuration endpoint is one more address of a primary (its current holder if it can)."""
        endpoint = group.configuration_endpoint
        if not endpoint:
            return
        nodes = self.nodes
        running = {c.cluster_id: c for c in live if c.status != ClusterStatus.DELETING}
        candidates = [running[ng.primary_cluster_id] for ng in group.node_groups if ng.primary_cluster_id in running]
        if not candidates:
            return
        holders = [c for c in candidates if endpoint in await nodes.bound(c)]
        holder = holders[0] if holders else candidates[0]
        for cluster in running.values():
            if cluster is not holder and endpoint in await nodes.bound(cluster):
                await nodes.set_binds(cluster, [cluster.node.address])
        if endpoint not in await nodes.bound(holder):
            await nodes.set_binds(holder, [holder.node.address, endpoint])

    def fail(self, group: ReplicationGroup, reason: str) -> None:
        """A reshard that made no progress before its deadline is rolled back: slots stay where they
        are, and the node groups it added that own nothing are removed. A rollback that fails too
        ends the operation where it stands."""
        nodes = self.nodes
        reshard = nodes.operation(group, OperationKind.RESHARD)
        if reshard is None or reshard.resharding is None:
            return
        if reshard.step == ROLLING_BACK:
            with nodes.store.transaction() as tx:
                tx.delete(reshard)
                tx.add_event(event_for(group, f"Resharding of {group.group_id} could not be rolled back: {reason}; "
                                              "the slots stay where they are", nodes.clock.now()))
            return
        plan = rollback_plan(group, reshard.resharding)
        empty = plan.removing
        with nodes.store.transaction() as tx:
            tx.put(progressed(replace(reshard, resharding=plan), ROLLING_BACK, now=nodes.clock.now()))
            tx.add_event(event_for(group, f"Resharding of {group.group_id} failed: {reason}; rolling back"
                                          + (f" (removing the new node groups {', '.join(empty)})" if empty else ""),
                                   nodes.clock.now()))


def leaving_shards(group: ReplicationGroup, plan: Resharding | None, owners: dict[int, str]) -> set[str]:
    """The members of the node groups a reshard removes that own no slot any more (cluster ids)."""
    owning = set(owners.values())
    out: set[str] = set()
    for ng_id in plan.removing if plan is not None else ():
        node_group = group.node_group(ng_id)
        if node_group is not None and ng_id not in owning:
            out.update(node_group.member_cluster_ids)
    return out


def strangers(views: dict[str, ClusterView], ours: set[str]) -> list[tuple[str, str]]:
    """(member, node id) for each node a member knows that is not a member of the group.

    A node flagged ``noaddr`` is a stranger too: an engine marks a node so when its address
    answers with another id (a replaced node's address given to a new node), and it would stay
    in CLUSTER SHARDS for ever. Only a handshake in progress (a temporary id) is left alone, and
    a node never forgets itself or its own primary.
    """
    return [
        (name, node_id)
        for name, view in views.items()
        for node_id, node in view.nodes.items()
        if "handshake" not in node.flags
        and node_id not in ours
        and node_id not in (view.myself.node_id, view.myself.master_id)
    ]


def adopted_primaries(group: ReplicationGroup, views: dict[str, ClusterView], ids: dict[str, str]) -> dict[str, str]:
    """Node groups whose recorded primary the engines made a replica of another member of the same
    node group that is a primary: node group -> the member the engines chose."""
    found = {}
    for node_group in group.node_groups:
        view = views.get(node_group.primary_cluster_id)
        if view is None or view.myself.master_id is None:
            continue
        for replica in node_group.replica_cluster_ids:
            if ids.get(replica) == view.myself.master_id and replica in views and views[replica].myself.master_id is None:
                found[node_group.node_group_id] = replica
    return found


def rollback_plan(group: ReplicationGroup, plan: Resharding) -> Resharding:
    """What a reshard that cannot finish falls back to: every slot stays where it is now, and the
    node groups it added that own nothing are removed."""
    owned = {ng.node_group_id: ng.slots for ng in group.node_groups}
    empty = tuple(ng for ng in plan.adding if not owned.get(ng))
    return Resharding(
        target_slots=tuple((ng_id, slots) for ng_id, slots in owned.items() if ng_id not in empty),
        total_slots=0,
        removing=empty,
    )


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
