"""Failover of one shard: fence the old primary, promote the best replica, recover the old node.

Patroni's rules, in this order, so that a shard never has two primaries:

1. a *planned* failover (TestFailover, a reboot, a switchover) first drains the primary:
   writes are paused and the chosen replica must reach the primary's offset, so that no
   acknowledged write is lost; a *lost* primary (exited, or not answering) cannot drain;
2. the old primary is fenced (SIGKILL) before anything is promoted;
3. the reachable, answering replica with the highest replication offset is promoted
   (a replica in another availability zone wins a tie) -- a write confirmed with
   ``WAIT 1`` is on at least one replica, hence on the one with the highest offset;
4. the endpoint moves at once (cluster mode disabled: the primary endpoint address is
   bound on the new primary; cluster mode enabled: CLUSTER FAILOVER TAKEOVER). A replica
   that cannot be promoted (an error, or no primary role within TAKEOVER_TIMEOUT) is fenced
   in its turn and the next best one is tried; when none is left, the failover is retried
   on a later pass, and nothing is recorded as the new primary before a node says it is one;
5. the lost node comes back under the same id as a fresh replica of the new primary
   (the reconciler's next pass starts it and waits for its full sync).

Every decision is recorded as an event with its reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from cachefleet.domain.base import event_for
from cachefleet.domain.model import (
    CacheCluster,
    ClusterStatus,
    FailoverKind,
    GroupStatus,
    NodeGroup,
    NodeStatus,
    ReplicationGroup,
)
from cachefleet.engine.admin import AdminClient, EngineError

if TYPE_CHECKING:
    from cachefleet.control.reconciler import Reconciler

log = logging.getLogger(__name__)

DRAIN_TIMEOUT = 5.0
TAKEOVER_TIMEOUT = 5.0
RECOVERING = "recovering"
RETRY_DELAY = 2.0


@dataclass(frozen=True)
class Trouble:
    """Why the primary of a node group must be replaced now."""

    reason: str
    planned: bool
    kind: FailoverKind | None = None
    target: str | None = None


class Failover:
    def __init__(self, ops: Reconciler) -> None:
        self.ops = ops

    def trouble(self, group: ReplicationGroup, node_group: NodeGroup, primary: CacheCluster) -> Trouble | None:
        """Whether this node group's primary must be failed over now (a pure look at what we know)."""
        from cachefleet.control.reconciler import node_key

        request = group.failover_request
        if request is not None and request.node_group_id == node_group.node_group_id:
            reasons = {
                FailoverKind.TEST: "Test Failover API called",
                FailoverKind.REBOOT: f"cache cluster {primary.cluster_id} is being rebooted",
                FailoverKind.SWITCHOVER: f"PrimaryClusterId changed to {request.target_cluster_id}",
            }
            return Trouble(reasons[request.kind], planned=True, kind=request.kind, target=request.target_cluster_id)
        if group.automatic_failover != "enabled" or primary.status in (ClusterStatus.CREATING, ClusterStatus.DELETING):
            return None
        key = node_key(primary)
        if self.ops.provider.pid(key) is None:
            return Trouble(f"the engine process of primary {primary.cluster_id} exited", planned=False)
        if not self.ops.health.healthy(key):
            silent = self.ops.health.silent_for(key)
            return Trouble(f"primary {primary.cluster_id} stopped answering ({silent:.1f} s without a PING reply)", planned=False)
        return None

    async def run(
        self, group: ReplicationGroup, node_group: NodeGroup, members: dict[str, CacheCluster], trouble: Trouble
    ) -> bool:
        """Carries out the failover; False if there is no replica to promote (nothing was changed)."""
        from cachefleet.control.reconciler import Retry, node_key

        ops = self.ops
        old = members[node_group.primary_cluster_id]
        candidates = [
            members[c]
            for c in node_group.replica_cluster_ids
            if c in members
            and members[c].status == ClusterStatus.AVAILABLE
            and ops.provider.pid(node_key(members[c])) is not None
            and ops.health.healthy(node_key(members[c]))
        ]
        if trouble.target is not None:
            candidates = [c for c in candidates if c.cluster_id == trouble.target]
        if not candidates:
            self._give_up(group, f"Cannot fail over node group {node_group.node_group_id} of {group.group_id}: "
                                 f"{trouble.reason}, and no replica is available to take over")
            return False

        old_key = node_key(old)
        if trouble.planned and ops.provider.pid(old_key) is not None:
            if not await self._drain(old, candidates):
                self._give_up(group, f"Failover of node group {node_group.node_group_id} of {group.group_id} "
                                     "called off: no replica caught up with the primary within "
                                     f"{DRAIN_TIMEOUT:.0f} s; the primary keeps serving")
                await self._resume(old)
                return False

        # Fence first: the old primary must not take another write once anything is promoted.
        await self._fence(old_key)

        chosen = await self._promote_best(group, candidates, old)
        if chosen is None:
            # Restarting the fenced primary would bring it back empty (and, in cluster mode,
            # without slots) and the replicas would sync that emptiness: the next pass tries the
            # replicas again (one that took over late is accepted then). Only when none is left
            # is the old primary restarted.
            self._give_up(group, f"Cannot fail over node group {node_group.node_group_id} of {group.group_id}: "
                                 "no replica took over; trying again")
            raise Retry(RETRY_DELAY, "no replica took over")

        # The rest of the shard follows on the reconciler's next pass; only the store changes here.
        now = ops.clock.now()
        current = ops.store.get(ReplicationGroup, group.region, group.group_id) or group
        node_groups = tuple(
            replace(ng, primary_cluster_id=chosen.cluster_id) if ng.node_group_id == node_group.node_group_id else ng
            for ng in current.node_groups
        )
        updated = replace(current, node_groups=node_groups, status=GroupStatus.MODIFYING, failover_request=None)
        recovering = replace(
            old,
            status=ClusterStatus.MODIFYING,
            status_reason=RECOVERING,
            node=replace(old.node, status=NodeStatus.CREATING),
        )
        with ops.store.transaction() as tx:
            tx.put(updated)
            tx.put(recovering)
            tx.add_event(event_for(updated, f"Failover from primary node {old.cluster_id} to replica node "
                                            f"{chosen.cluster_id} completed ({trouble.reason})", now))
            tx.add_event(event_for(recovering, f"Recovering cache nodes {old.cluster_id}", now))
        for cluster in members.values():
            ops.verified.pop(node_key(cluster), None)
        log.warning("%s: failed over %s -> %s: %s", group.group_id, old.cluster_id, chosen.cluster_id, trouble.reason)
        return True

    # ------------------------------------------------------------------ steps
    async def _drain(self, primary: CacheCluster, candidates: list[CacheCluster]) -> bool:
        """Pauses writes on the primary until a candidate has everything it acknowledged."""
        ops = self.ops
        admin = ops.admin(primary)
        try:
            await admin.execute("CLIENT", "PAUSE", str(int(DRAIN_TIMEOUT * 1000) + 1000), "WRITE")
            target = int((await admin.info("replication")).get("master_repl_offset", "0"))
        except EngineError:
            return True  # the primary is gone after all: nothing more to drain
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            for candidate in candidates:
                try:
                    if _offset(await ops.admin(candidate).info("replication")) >= target:
                        return True
                except EngineError:
                    continue
            await asyncio.sleep(0.002)
        return False

    async def _resume(self, primary: CacheCluster) -> None:
        try:
            await self.ops.admin(primary).execute("CLIENT", "UNPAUSE")
        except EngineError:
            pass

    async def _promote_best(
        self, group: ReplicationGroup, candidates: list[CacheCluster], old: CacheCluster
    ) -> CacheCluster | None:
        """Promotes the best candidate that can be; one that cannot is fenced before the next is tried
        (a late TAKEOVER must not make it a second primary). The last one is left running: the
        next failover attempt looks at it again."""
        from cachefleet.control.reconciler import node_key

        ranked = await self._ranked(candidates, old)
        for place, chosen in enumerate(ranked):
            try:
                if await self._promote(group, chosen):
                    return chosen
                problem = f"did not become a primary within {TAKEOVER_TIMEOUT:g} s of CLUSTER FAILOVER TAKEOVER"
            except EngineError as error:
                problem = f"could not be promoted ({error})"
            last = place == len(ranked) - 1
            if not last:
                await self._fence(node_key(chosen))
            message = f"Replica node {chosen.cluster_id} {problem}" + ("" if last else "; fenced it, trying the next replica")
            self.ops.record(group, message)
            log.warning("%s: %s", group.group_id, message)
        return None

    async def _ranked(self, candidates: list[CacheCluster], old: CacheCluster) -> list[CacheCluster]:
        """Candidates that answer, best first: the highest replication offset (read now, from each
        replica); another zone than the old primary wins a tie, then the replica's place in the group."""
        ops = self.ops
        offsets: list[tuple[int, bool, int, CacheCluster]] = []
        for order, candidate in enumerate(candidates):
            try:
                info = await ops.admin(candidate).info("replication")
            except EngineError:
                continue
            offsets.append((_offset(info), candidate.availability_zone != old.availability_zone, -order, candidate))
        return [item[3] for item in sorted(offsets, key=lambda item: item[:3], reverse=True)]

    async def _fence(self, key: str) -> None:
        ops = self.ops
        ops.provider.fence(key)
        await ops.provider.stop(key)
        ops.health.unwatch(key)
        await ops.drop_admin(key)
        ops.binds.pop(key, None)
        ops.verified.pop(key, None)

    async def _promote(self, group: ReplicationGroup, chosen: CacheCluster) -> bool:
        """Makes ``chosen`` the primary; False if it did not become one (cluster mode enabled)."""
        from cachefleet.control.reconciler import Retry, node_key

        ops = self.ops
        admin = ops.admin(chosen)
        if group.cluster_enabled:
            return await _take_over(admin)
        await admin.promote()
        node_group = next(ng for ng in group.node_groups if chosen.cluster_id in ng.member_cluster_ids)
        if node_group.primary_endpoint:
            # Clients of the primary endpoint reconnect to the same address: it must answer now
            # (unless the new primary is forking; then the reconciler's next pass binds it).
            # It is the primary now whatever happens here: a failed bind is retried by the
            # reconciler's next pass, never undone by restarting the old primary (empty).
            try:
                await ops.set_binds(chosen, [chosen.node.address, node_group.primary_endpoint])
            except Retry:
                pass
            except EngineError as error:
                log.warning("%s: the primary endpoint waits for the next pass: %s", chosen.cluster_id, error)
        ops.verified[node_key(chosen)] = ops.provider.pid(node_key(chosen)) or 0
        ops.synced.pop(node_key(chosen), None)  # if it ever follows again, it syncs again first
        return True

    def _give_up(self, group: ReplicationGroup, message: str) -> None:
        ops = self.ops
        current = ops.store.get(ReplicationGroup, group.region, group.group_id) or group
        with ops.store.transaction() as tx:
            if current.failover_request is not None:
                tx.put(replace(current, failover_request=None))
            tx.add_event(event_for(current, message, ops.clock.now()))
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
