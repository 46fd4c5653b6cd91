"""A serverless cache's own steps: its data limit on the engines, its sizing, and forgetting it.

Its replication group does the rest (control/reconciler.py runs the group's pass as any other):
this pass only (1) holds every running node of the group at the cache's ``maxmemory`` share with
``maxmemory-policy noeviction`` (domain/serverless.py ``shard_maxmemory``; re-applied when the
shard count changes, or when a node was replaced and started with its node type's values),
(2) feeds the sizing decision (``decide``) with each shard primary's latest 1-second sample and
starts the step it asks for with the online resharding (``resize``), and (3) removes the record
once a deleted cache's group is gone. A control-plane restart resumes a step in progress: the
reshard is an operation of the group; this pass only waits for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cachefleet.control.nodes import Nodes, node_key
from cachefleet.control.scheduler import Retry
from cachefleet.domain import slots
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus
from cachefleet.domain.errors import CachefleetError
from cachefleet.domain.events import event_for
from cachefleet.domain.operations import OperationKind
from cachefleet.domain.replication_groups import GroupStatus, ReplicationGroup
from cachefleet.domain.serverless import (
    Decision,
    Scale,
    ServerlessCache,
    ShardSample,
    SizingPolicy,
    decide,
    is_quiet,
    shard_maxmemory,
    shard_range,
)

log = logging.getLogger(__name__)

LOOK_AGAIN = 1.0  # seconds: the samples are 1-second ones
POLICY = "noeviction"

Samples = Callable[[ServerlessCache, ReplicationGroup], list[ShardSample]]
Resize = Callable[[ServerlessCache, Decision], object]


def _no_samples(cache: ServerlessCache, group: ReplicationGroup) -> list[ShardSample]:
    return []


def _no_resize(cache: ServerlessCache, decision: Decision) -> object:
    return None


@dataclass
class _Watch:
    """What the pass remembers of one cache between passes (lost on restart: it only delays a scale-in)."""

    quiet_since: float | None = None
    last_step: float = 0.0
    last_reason: str = ""
    # node key -> (its process id, the maxmemory set): a node is asked again only when either changes
    # (a node replaced after a failover is a new process, started with its node type's values).
    applied: dict[str, tuple[int, int]] = field(default_factory=dict)


class ServerlessWorkflow:
    """Limits, sizing and clean-up of serverless caches (see the module docstring)."""

    def __init__(self, nodes: Nodes, policy: SizingPolicy | None = None) -> None:
        self.nodes = nodes
        self.policy = policy or SizingPolicy()
        self.samples: Samples = _no_samples
        self.resize: Resize = _no_resize
        self._watches: dict[tuple[str, str], _Watch] = {}

    def connect(self, *, samples: Samples, resize: Resize) -> None:
        """Wired at start-up (app.py): the sampler's latest rows, and the domain's scaling step."""
        self.samples = samples
        self.resize = resize

    async def reconcile(self, cache: ServerlessCache) -> None:
        store = self.nodes.store
        group = store.get(ReplicationGroup, cache.region, cache.group_id)
        watch = self._watches.setdefault((cache.region, cache.name), _Watch())
        if cache.deleting or group is None:
            if group is not None:
                raise Retry(0.25, f"waiting for the nodes of serverless cache {cache.name} to stop")
            with store.transaction() as tx:
                tx.delete(cache)
                tx.add_event(event_for(cache, f"Serverless cache {cache.name} deleted", self.nodes.clock.now()))
            self._watches.pop((cache.region, cache.name), None)
            return
        if group.status in (GroupStatus.CREATING, GroupStatus.CREATE_FAILED, GroupStatus.DELETING):
            if group.status == GroupStatus.CREATING:
                await self._hold_limits(cache, group, watch)
                raise Retry(0.25, f"serverless cache {cache.name} is being created")
            return
        await self._hold_limits(cache, group, watch)
        self._size(cache, group, watch)
        raise Retry(LOOK_AGAIN, "")

    # ------------------------------------------------------------------ limits
    def limit_shards(self, group: ReplicationGroup) -> int:
        """The shard count the data limit is shared by: while slots move, the fewer of before and after
        the step (the more room per shard: a scale-out's old shard still holds its data), so that no
        write fails only because a step is in progress. For that while, the cache may hold more than
        its maximum (at most the maximum per shard of the smaller count)."""
        operation = self.nodes.operation(group, OperationKind.RESHARD)
        if operation is not None and operation.resharding is not None:
            plan = operation.resharding
            before = len(group.node_groups) - len(plan.adding)
            after = sum(1 for _, ranges in plan.target_slots if slots.parse(ranges))
            return max(1, min(before, after))
        return max(1, len(group.node_groups))

    async def _hold_limits(self, cache: ServerlessCache, group: ReplicationGroup, watch: _Watch) -> None:
        """Every running node at the cache's share: a node replaced after a failover starts with its
        node type's values (a new process), and this sets the cache's again within a second."""
        limit = shard_maxmemory(cache.limits, self.policy, self.limit_shards(group))
        nodes = self.nodes
        for cluster in nodes.members(group).values():
            if cluster.status in (ClusterStatus.DELETING, ClusterStatus.CREATE_FAILED) or not nodes.running(cluster):
                continue
            key = node_key(cluster)
            seen = (nodes.provider.pid(key) or 0, limit)
            if watch.applied.get(key) == seen:
                continue
            await self._apply(cluster, limit)
            watch.applied[key] = seen

    async def _apply(self, cluster: CacheCluster, limit: int) -> None:
        admin = self.nodes.admin(cluster)
        if await admin.config_get("maxmemory-policy") != POLICY:
            await admin.config_set("maxmemory-policy", POLICY)
        if await admin.config_get("maxmemory") != str(limit):
            await admin.config_set("maxmemory", str(limit))
            log.info("serverless node %s: maxmemory %s, %s", cluster.cluster_id, limit, POLICY)

    # ------------------------------------------------------------------ sizing
    def _size(self, cache: ServerlessCache, group: ReplicationGroup, watch: _Watch) -> None:
        if group.status != GroupStatus.AVAILABLE or self.nodes.operation(group, OperationKind.RESHARD) is not None:
            watch.quiet_since = None
            return
        now = time.monotonic()
        if now - watch.last_step < self.policy.cooldown:
            return
        samples = self.samples(cache, group)
        if len(samples) < len(group.node_groups):
            return  # a shard without a sample yet (just created, or its primary just replaced)
        if is_quiet(samples, self.policy):
            watch.quiet_since = watch.quiet_since if watch.quiet_since is not None else now
        else:
            watch.quiet_since = None
        decision = decide(
            shards=len(group.node_groups), samples=samples, allowed=shard_range(cache.limits, self.policy),
            policy=self.policy, quiet_for=now - watch.quiet_since if watch.quiet_since is not None else 0.0,
        )
        if decision.action == Scale.HOLD:
            if decision.reason != watch.last_reason:
                log.debug("serverless cache %s holds: %s", cache.name, decision.reason)
                watch.last_reason = decision.reason
            return
        log.info("serverless cache %s: %s to %d shard(s): %s", cache.name, decision.action.value, decision.shards,
                 decision.reason)
        try:
            self.resize(cache, decision)
        except CachefleetError as refused:  # the group changed under us (a failover, a delete): decide again later
            log.info("serverless cache %s: scaling step refused: %s", cache.name, refused.message)
        watch.last_step = now
        watch.quiet_since = None
