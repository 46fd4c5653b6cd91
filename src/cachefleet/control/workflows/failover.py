"""Failover of one shard: fence the old primary, promote the best replica, recover the old node.

Patroni's rules, in this order, so that a shard never has two primaries:

1. a *planned* failover (TestFailover, a reboot, a switchover: a FAILOVER operation) first
   drains the primary: writes are paused and the chosen replica must reach the primary's
   offset, so that no acknowledged write is lost; a *lost* primary (exited, or not
   answering) cannot drain;
2. the old primary is fenced (SIGKILL) before anything is promoted;
3. the reachable, answering replica with the highest replication offset is promoted
   (a replica in another availability zone wins a tie) -- a write confirmed with
   ``WAIT 1`` is on at least one replica, hence on the one with the highest offset;
4. the endpoint moves at once (cluster mode disabled: the primary endpoint address is
   bound on the new primary; cluster mode enabled: CLUSTER FAILOVER TAKEOVER, once the replica
   no longer credits its old primary with slots another shard's primary serves now: see
   ``stale_claims``). A replica
   that cannot be promoted (an error, or no primary role within TAKEOVER_TIMEOUT) is fenced
   in its turn and the next best one is tried; when none is left, the failover is retried
   on a later pass, and nothing is recorded as the new primary before a node says it is one;
5. the lost node comes back under the same id as a fresh replica of the new primary
   (the next pass starts it and waits for its full sync).

A lost primary is never started again empty while a replica may hold its data: a replica that
is not ``available`` yet but holds the shard's data (its sync done a moment before the primary
was lost) is a candidate (``_holders``), and a pass already under way when the primary exited
leaves it to the failover (``Nodes.ensure_running`` raises Retry until the failover has found
no replica and said so in ``observed.may_restart``).

Every decision is recorded as an event with its reason. ``decide`` is pure; ``run`` acts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace

from cachefleet.control.nodes import RECOVERING, Nodes, node_key
from cachefleet.control.scheduler import Retry
from cachefleet.domain import global_datastores
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus, NodeStatus
from cachefleet.domain.events import event_for
from cachefleet.domain.operations import FailoverKind, FailoverRequest, OperationKind
from cachefleet.domain.replication_groups import GroupStatus, NodeGroup, ReplicationGroup
from cachefleet.engine import cluster as engine_cluster
from cachefleet.engine.admin import AdminClient, EngineError
from cachefleet.engine.cluster import ClusterView

log = logging.getLogger(__name__)

DRAIN_TIMEOUT = 5.0
TAKEOVER_TIMEOUT = 5.0
RETRY_DELAY = 2.0
# How often a shard whose primary is gone looks again for a replica that answers.
WAIT_FOR_REPLICA = 0.2
# How long a replica whose view of the slots is behind (see stale_claims) may take to catch up
# from the other nodes' gossip before its takeover waits for a later pass.
STALE_VIEW_WAIT = 3.0


def stale_claims(candidate: ClusterView, primaries: list[ClusterView]) -> set[int]:
    """Slots the candidate replica still credits to its primary that another primary says it
    serves itself. CLUSTER FAILOVER TAKEOVER claims, with a config epoch newer than any, every slot
    the replica believes its primary owns: a slot that moved to another shard a moment before
    (a reshard finalized on the target while the source's replica had not heard of it yet) would
    move back to the new primary, which has none of its keys -- and the shard that holds them
    deletes them on losing the slot."""
    master = candidate.nodes.get(candidate.myself.master_id or "")
    if master is None:
        return set()
    credited = set(master.slots)
    stale: set[int] = set()
    for view in primaries:
        if view.myself.node_id not in (candidate.myself.node_id, master.node_id):
            stale |= credited & set(view.myself.slots)
    return stale


@dataclass(frozen=True)
class Trouble:
    """Why the primary of a node group must be replaced now."""

    reason: str
    planned: bool
    kind: FailoverKind | None = None
    target: str | None = None


@dataclass(frozen=True)
class PrimaryState:
    """What is known of a primary when deciding (a snapshot: no I/O in ``decide``)."""

    running: bool
    healthy: bool
    silent_for: float


def decide(
    group: ReplicationGroup, node_group: NodeGroup, primary: CacheCluster, request: FailoverRequest | None,
    state: PrimaryState,
) -> Trouble | None:
    """Whether this node group's primary must be failed over now, and why."""
    if request is not None and request.node_group_id == node_group.node_group_id:
        reasons = {
            FailoverKind.TEST: "Test Failover API called",
            FailoverKind.REBOOT: f"cache cluster {primary.cluster_id} is being rebooted",
            FailoverKind.SWITCHOVER: f"PrimaryClusterId changed to {request.target_cluster_id}",
            FailoverKind.UPGRADE: "engine upgrade: every replica runs the new build",
        }
        return Trouble(reasons[request.kind], planned=True, kind=request.kind, target=request.target_cluster_id)
    if group.automatic_failover != "enabled" or primary.status in (ClusterStatus.CREATING, ClusterStatus.DELETING):
        return None
    if not state.running:
        return Trouble(f"the engine process of primary {primary.cluster_id} exited", planned=False)
    if not state.healthy:
        return Trouble(
            f"primary {primary.cluster_id} stopped answering ({state.silent_for:.1f} s without a PING reply)", planned=False
        )
    return None


class Failover:
    """Carries out a shard's failover (planned or not), in Patroni's order; see the module docstring."""

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes
        self._waiting: set[tuple[str, str, str]] = set()  # shards waiting for a silent replica

    def trouble(self, group: ReplicationGroup, node_group: NodeGroup, primary: CacheCluster) -> Trouble | None:
        nodes = self.nodes
        key = node_key(primary)
        operation = nodes.operation(group, OperationKind.FAILOVER)
        state = PrimaryState(
            running=nodes.provider.pid(key) is not None, healthy=nodes.health.healthy(key),
            silent_for=nodes.health.silent_for(key),
        )
        return decide(group, node_group, primary, operation.failover if operation else None, state)

    async def run(
        self, group: ReplicationGroup, node_group: NodeGroup, members: dict[str, CacheCluster], trouble: Trouble
    ) -> bool:
        """Carries out the failover; False if there is no replica to promote (nothing was changed)."""
        nodes = self.nodes
        old = members[node_group.primary_cluster_id]
        candidates = [
            members[c]
            for c in node_group.replica_cluster_ids
            if c in members
            and members[c].status == ClusterStatus.AVAILABLE
            and nodes.running(members[c])
            and nodes.health.healthy(node_key(members[c]))
        ]
        if trouble.target is not None:
            candidates = [c for c in candidates if c.cluster_id == trouble.target]
        silent = [
            members[c] for c in node_group.replica_cluster_ids
            if c in members and members[c].status == ClusterStatus.AVAILABLE and nodes.running(members[c])
        ]
        if not candidates and silent and not nodes.running(old):
            # The primary is gone and its data lives on in replicas that do not answer right now
            # (a node under heavy load can be silent for seconds). Restarting the primary in place
            # would give it its slots back empty and the replicas would sync that emptiness when
            # they answer again: the pass waits for them instead (a replica silent for good is
            # fenced as hung, and only then is the primary restarted).
            waiting = (group.region, group.group_id, node_group.node_group_id)
            if waiting not in self._waiting:  # said once per wait, not on every look
                self._waiting.add(waiting)
                self.call_off(group, f"Failover of node group {node_group.node_group_id} of {group.group_id} waits: "
                                     f"{trouble.reason}, and its replica(s) "
                                     f"{', '.join(c.cluster_id for c in silent)} do not answer now; the primary is not "
                                     "restarted empty meanwhile", keep_request=True)
            raise Retry(WAIT_FOR_REPLICA, "the replicas of a lost primary do not answer")
        self._waiting.discard((group.region, group.group_id, node_group.node_group_id))
        if not candidates and not silent and not trouble.planned:
            candidates = await self._holders(node_group, members)
        if not candidates:
            self.call_off(group, f"Cannot fail over node group {node_group.node_group_id} of {group.group_id}: "
                                 f"{trouble.reason}, and no replica is available to take over")
            if not nodes.running(old):
                nodes.observed.may_restart.add(node_key(old))  # the topology starts it again in place
            return False

        if trouble.planned and nodes.running(old):
            if not await self._drain(old, candidates):
                self.call_off(group, f"Failover of node group {node_group.node_group_id} of {group.group_id} "
                                     "called off: no replica caught up with the primary within "
                                     f"{DRAIN_TIMEOUT:.0f} s; the primary keeps serving")
                await self._resume(old)
                return False

        # Fence first: the old primary must not take another write once anything is promoted.
        await nodes.fence(node_key(old))

        chosen = await self._promote_best(group, candidates, old)
        if chosen is None:
            # Restarting the fenced primary would bring it back empty (and, in cluster mode,
            # without slots) and the replicas would sync that emptiness: the next pass tries the
            # replicas again (one that took over late is accepted then). Only when none is left
            # is the old primary restarted.
            self.call_off(group, f"Cannot fail over node group {node_group.node_group_id} of {group.group_id}: "
                                 "no replica took over; trying again", keep_request=True)
            raise Retry(RETRY_DELAY, "no replica took over")

        # The rest of the shard follows on the next pass; only the store changes here.
        now = nodes.clock.now()
        current = nodes.current(group) or group
        node_groups = tuple(
            replace(ng, primary_cluster_id=chosen.cluster_id) if ng.node_group_id == node_group.node_group_id else ng
            for ng in current.node_groups
        )
        updated = replace(current, node_groups=node_groups, status=GroupStatus.MODIFYING)
        recovering = replace(
            old, status=ClusterStatus.MODIFYING, status_reason=RECOVERING, node=replace(old.node, status=NodeStatus.CREATING)
        )
        operation = nodes.operation(current, OperationKind.FAILOVER)
        with nodes.store.transaction() as tx:
            tx.put(updated)
            tx.put(recovering)
            if operation is not None and operation.failover is not None and operation.failover.node_group_id == node_group.node_group_id:
                tx.delete(operation)
            late = "" if chosen.status == ClusterStatus.AVAILABLE else (
                f"; {chosen.cluster_id} held the shard's data though it was not marked available yet")
            tx.add_event(event_for(updated, f"Failover from primary node {old.cluster_id} to replica node "
                                            f"{chosen.cluster_id} completed ({trouble.reason}){late}", now))
            tx.add_event(event_for(recovering, f"Recovering cache nodes {old.cluster_id}", now))
        nodes.unchecked(list(members.values()))
        log.warning("%s: failed over %s -> %s: %s", group.group_id, old.cluster_id, chosen.cluster_id, trouble.reason)
        return True

    # ------------------------------------------------------------------ steps
    async def _holders(self, node_group: NodeGroup, members: dict[str, CacheCluster]) -> list[CacheCluster]:
        """Replicas not marked available that hold the shard's data all the same: a node whose full
        sync finished a moment before the primary was lost, before a pass marked it (a failed-over
        primary coming back as a replica, a replica being added or replaced). Without one of them the
        lost primary would be started again empty and they would sync that emptiness. A node holds
        data once it has a replication backlog (``master_repl_offset`` > 0: a fresh replica shows 0
        until its sync is done); one that does not answer within a second is left out."""
        nodes = self.nodes
        found = []
        for cluster_id in node_group.replica_cluster_ids:
            cluster = members.get(cluster_id)
            if cluster is None or cluster.status in (ClusterStatus.AVAILABLE, ClusterStatus.DELETING,
                                                     ClusterStatus.CREATE_FAILED) or not nodes.running(cluster):
                continue
            try:
                info = await asyncio.wait_for(nodes.admin(cluster).info("replication"), 1.0)
            except (EngineError, TimeoutError):
                continue
            offset = info.get("master_repl_offset", "0")
            if offset.isdigit() and int(offset) > 0:
                found.append(cluster)
        return found

    async def _drain(self, primary: CacheCluster, candidates: list[CacheCluster]) -> bool:
        """Pauses writes on the primary until a candidate has everything it acknowledged."""
        nodes = self.nodes
        admin = nodes.admin(primary)
        try:
            await admin.execute("CLIENT", "PAUSE", str(int(DRAIN_TIMEOUT * 1000) + 1000), "WRITE")
            target = int((await admin.info("replication")).get("master_repl_offset", "0"))
        except EngineError:
            return True  # the primary is gone after all: nothing more to drain
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            for candidate in candidates:
                try:
                    if _offset(await nodes.admin(candidate).info("replication")) >= target:
                        return True
                except EngineError:
                    continue
            await asyncio.sleep(0.002)
        return False

    async def _resume(self, primary: CacheCluster) -> None:
        try:
            await self.nodes.admin(primary).execute("CLIENT", "UNPAUSE")
        except EngineError:
            pass

    async def _promote_best(
        self, group: ReplicationGroup, candidates: list[CacheCluster], old: CacheCluster
    ) -> CacheCluster | None:
        """Promotes the best candidate that can be; one that cannot is fenced before the next is tried
        (a late TAKEOVER must not make it a second primary). The last one is left running: the
        next failover attempt looks at it again."""
        ranked = await self._ranked(candidates, old)
        if group.cluster_enabled and ranked:
            await self._wait_for_current_slots(group, ranked[0], old)
        for place, chosen in enumerate(ranked):
            try:
                if await self._promote(group, chosen):
                    return chosen
                problem = f"did not become a primary within {TAKEOVER_TIMEOUT:g} s of CLUSTER FAILOVER TAKEOVER"
            except EngineError as error:
                problem = f"could not be promoted ({error})"
            last = place == len(ranked) - 1
            if not last:
                await self.nodes.fence(node_key(chosen))
            message = f"Replica node {chosen.cluster_id} {problem}" + ("" if last else "; fenced it, trying the next replica")
            self.nodes.record(group, message)
            log.warning("%s: %s", group.group_id, message)
        return None

    async def _wait_for_current_slots(self, group: ReplicationGroup, chosen: CacheCluster, old: CacheCluster) -> None:
        """Until ``chosen`` no longer credits its old primary with slots another shard serves now
        (``stale_claims``): its TAKEOVER would take them back, and their keys would be lost. Gossip
        corrects its view within a moment; if it has not within STALE_VIEW_WAIT, the failover waits
        for a later pass (the slots in question are served meanwhile by the shard that has them)."""
        members = self.nodes.members(group)
        others = [members[ng.primary_cluster_id] for ng in group.node_groups
                  if ng.primary_cluster_id in members and ng.primary_cluster_id != old.cluster_id]
        deadline = time.monotonic() + STALE_VIEW_WAIT
        while True:
            try:
                candidate = await asyncio.wait_for(engine_cluster.view(self.nodes.admin(chosen)), 1.0)
            except (EngineError, TimeoutError, ValueError):
                return  # it does not answer: promoting it fails on its own below
            # Asked of every other primary at once (a 1 s bound each): a slow one does not add up.
            answers = await asyncio.gather(
                *(asyncio.wait_for(engine_cluster.view(self.nodes.admin(primary)), 1.0) for primary in others),
                return_exceptions=True,
            )
            views = [answer for answer in answers if isinstance(answer, ClusterView)]
            for answer in answers:
                if isinstance(answer, BaseException) and not isinstance(answer, (EngineError, TimeoutError, ValueError)):
                    raise answer
            stale = stale_claims(candidate, views)
            if not stale:
                return
            if time.monotonic() >= deadline:
                node_group = group.node_group_of(chosen.cluster_id)
                shard = node_group.node_group_id if node_group is not None else "?"
                message = (f"Failover of node group {shard} of {group.group_id} waits: replica node "
                           f"{chosen.cluster_id} still credits its old primary "
                           f"with {len(stale)} slot(s) another shard serves now (from {min(stale)}); a takeover would "
                           "take them back without their keys")
                self.call_off(group, message, keep_request=True)
                raise Retry(RETRY_DELAY, "the replica's view of the slots is behind")
            await asyncio.sleep(0.02)

    async def _ranked(self, candidates: list[CacheCluster], old: CacheCluster) -> list[CacheCluster]:
        """Candidates that answer, best first: the highest replication offset (read now, from each
        replica); another zone than the old primary wins a tie, then the replica's place in the group."""
        offsets: list[tuple[int, bool, int, CacheCluster]] = []
        for order, candidate in enumerate(candidates):
            try:
                info = await self.nodes.admin(candidate).info("replication")
            except EngineError:
                continue
            offsets.append((_offset(info), candidate.availability_zone != old.availability_zone, -order, candidate))
        return [item[3] for item in sorted(offsets, key=lambda item: item[:3], reverse=True)]

    async def _promote(self, group: ReplicationGroup, chosen: CacheCluster) -> bool:
        """Makes ``chosen`` the primary; False if it did not become one (cluster mode enabled)."""
        nodes = self.nodes
        admin = nodes.admin(chosen)
        if group.cluster_enabled:
            if not await _take_over(admin):
                return False
            await self._keep_configuration_endpoint(group, chosen)
            return True
        secondary = group.global_role == global_datastores.MemberRole.SECONDARY
        leader = global_datastores.upstream(nodes.store, group) if secondary else None
        if leader is not None:
            # A global datastore's secondary: its new primary follows the primary region's primary;
            # it never takes writes of its own.
            await nodes.follow(chosen, (leader.node.address, leader.port))
        else:
            await admin.promote()
        node_group = group.node_group_of(chosen.cluster_id)
        if node_group is not None and node_group.primary_endpoint:
            # Clients of the primary endpoint reconnect to the same address: it must answer now
            # (unless the new primary is forking; then the next pass binds it). It is the
            # primary now whatever happens here: a failed bind is retried by the next pass,
            # never undone by restarting the old primary (empty).
            try:
                await nodes.set_binds(chosen, [chosen.node.address, node_group.primary_endpoint])
            except Retry:
                pass
            except EngineError as error:
                log.warning("%s: the primary endpoint waits for the next pass: %s", chosen.cluster_id, error)
        nodes.mark_checked(chosen)
        nodes.observed.synced.pop(node_key(chosen), None)  # if it ever follows again, it syncs again first
        return True

    async def _keep_configuration_endpoint(self, group: ReplicationGroup, chosen: CacheCluster) -> None:
        """The configuration endpoint answers again at once when the fenced primary held it: the new
        primary takes it now, not on the group's next pass. It is the one address a cluster client
        was given (valkey-glide reconnects to it when it has lost its connections; measured once, the
        next pass came ~0.75 s later, glide failing every call meanwhile with 'Connection in
        recovery': tests/acceptance/test_serverless_upgrade.py). When a
        live node still holds it (as far as is known), it stays there."""
        endpoint = group.configuration_endpoint
        nodes = self.nodes
        if not endpoint or any(endpoint in binds for binds in nodes.observed.binds.values()):
            return
        try:
            await nodes.set_binds(chosen, [chosen.node.address, endpoint])
        except Retry:
            pass  # forking: the group's next pass places it
        except EngineError as error:
            log.warning("%s: the configuration endpoint waits for the next pass: %s", chosen.cluster_id, error)

    def call_off(self, group: ReplicationGroup, message: str, *, keep_request: bool = False) -> None:
        """Records why the failover did not happen; a planned one is called off (unless ``keep_request``)."""
        nodes = self.nodes
        current = nodes.current(group) or group
        operation = nodes.operation(current, OperationKind.FAILOVER)
        with nodes.store.transaction() as tx:
            if operation is not None and not keep_request:
                tx.delete(operation)
            tx.add_event(event_for(current, message, nodes.clock.now()))
        log.warning("%s", message)


async def _take_over(admin: AdminClient) -> bool:
    """CLUSTER FAILOVER TAKEOVER (the slots at once, without asking the other primaries to vote),
    then True once the node says it is a primary; False if it does not within TAKEOVER_TIMEOUT."""
    if (await admin.info("replication")).get("role") == "master":
        return True  # a takeover asked for on an earlier attempt went through late
    await admin.execute("CLUSTER", "FAILOVER", "TAKEOVER")
    deadline = time.monotonic() + TAKEOVER_TIMEOUT
    while (await admin.info("replication")).get("role") != "master":
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.002)
    return True


def _offset(info: dict[str, str]) -> int:
    """How much of the replication stream this node holds."""
    for field_name in ("slave_repl_offset", "master_repl_offset"):
        value = info.get(field_name)
        if value is not None and value.lstrip("-").isdigit():
            return int(value)
    return -1

