"""Parameter groups applied for real: each running node is told its parameter group's dynamic
values (CONFIG SET, every node of a pass at once); static ones wait for the node's next start.

What each node runs with is recorded (``CacheNodeParameters``), so the difference between a
group's values and a node's record is the pending state Describe shows, and what a pass after
a control-plane crash still applies. Nodes start with their group's values in their config file
(control/nodes.py records them then); a node without a record (a warm node handed over, a node
started before records existed) is told every dynamic setting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    MasterDownError,
    NoPermissionError,
    ResponseError,
    TryAgainError,
)

from cachefleet.control.nodes import Nodes
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus
from cachefleet.domain.events import event_for
from cachefleet.domain.parameter_groups import CacheNodeParameters, ParameterPlan, plan
from cachefleet.engine.admin import EngineError

log = logging.getLogger(__name__)

# Engine refusals that go away by themselves (permissions being changed, a node still loading or
# busy with a script): tried again on a later pass. Any other refusal is the engine rejecting the
# value: it is recorded, reported once and not sent again until the group's value changes.
# (redis-py answers NOPERM, LOADING... as these classes, without the code in the message.)
_PASSING = (NoPermissionError, AuthenticationError, BusyLoadingError, TryAgainError, MasterDownError)


@dataclass(frozen=True)
class Outcome:
    """How one node took its changes: settings it refused (with the engine's reason) and settings to try again."""

    refused: dict[str, str]
    again: frozenset[str]


class ParameterWorkflow:
    """Brings running nodes to their parameter group's values (see the module docstring)."""

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes

    async def apply(self, clusters: Iterable[CacheCluster]) -> bool:
        """Applies what changed on every running node of ``clusters`` at once; True if a node must
        be tried again (it did not answer, or refused for a passing reason)."""
        nodes = self.nodes
        work: list[tuple[CacheCluster, CacheNodeParameters | None, ParameterPlan]] = []
        for cluster in clusters:
            if cluster.status in (ClusterStatus.DELETING, ClusterStatus.CREATE_FAILED) or not nodes.running(cluster):
                continue
            record = nodes.store.get(CacheNodeParameters, cluster.region, cluster.cluster_id)
            desired = nodes.parameter_values(cluster)
            if (
                record is not None
                and record.group_name == cluster.parameter_group_name
                and dict(record.values) == desired
            ):
                continue  # the node runs with its group's values (most passes)
            found = plan(nodes.family(cluster), desired, record, node_type=cluster.node_type, offered=nodes.offered(cluster))
            if (
                record is not None
                and not found.changed
                and found.applied == dict(record.values)
                and found.pending_reboot == record.waiting
                and record.group_name == cluster.parameter_group_name
            ):
                continue
            work.append((cluster, record, found))
        if not work:
            return False
        outcomes = await asyncio.gather(*(self._send(cluster, found) for cluster, _, found in work), return_exceptions=True)
        again = False
        with nodes.store.transaction() as tx:
            for (cluster, record, found), outcome in zip(work, outcomes, strict=True):
                if isinstance(outcome, EngineError):
                    log.info("%s: parameters wait for the node to answer: %s", cluster.cluster_id, outcome)
                    again = True
                    continue
                if isinstance(outcome, BaseException):
                    raise outcome
                again = again or bool(outcome.again)
                updated = self._record(cluster, record, found, outcome, desired=nodes.parameter_values(cluster))
                tx.put(updated)
                for message in self._news(cluster, record, updated, outcome):
                    tx.add_event(event_for(cluster, message, nodes.clock.now()))
        return again

    async def _send(self, cluster: CacheCluster, found: ParameterPlan) -> Outcome:
        if not found.changes:
            return Outcome({}, frozenset())
        replies = await self.nodes.admin(cluster).pipeline(
            [("CONFIG", "SET", change.name, change.value) for change in found.changes]
        )
        refused: dict[str, str] = {}
        again: set[str] = set()
        for change, reply in zip(found.changes, replies, strict=True):
            if not isinstance(reply, ResponseError):
                continue
            text = str(reply)
            if isinstance(reply, _PASSING) or text.startswith("BUSY"):
                again.add(change.name)
            else:
                refused[change.name] = text
        return Outcome(refused, frozenset(again))

    @staticmethod
    def _record(
        cluster: CacheCluster, record: CacheNodeParameters | None, found: ParameterPlan, outcome: Outcome,
        *, desired: dict[str, str],
    ) -> CacheNodeParameters:
        """The node's values now: the plan's, except those of settings it did not take."""
        before = dict(record.values) if record is not None else {}
        values = dict(found.applied)
        refused = dict(record.refused) if record is not None else {}
        for change in found.changes:
            if change.name in outcome.again or change.name in outcome.refused:
                for name in change.parameters:
                    if name in before:
                        values[name] = before[name]
                    else:
                        values.pop(name, None)
                    if change.name in outcome.refused:
                        refused[name] = desired.get(name, "")
        # A refusal is remembered only while the group still asks for that value.
        refused = {n: v for n, v in refused.items() if desired.get(n) == v}
        return CacheNodeParameters(
            cluster.region, cluster.cluster_id, cluster.parameter_group_name, tuple(sorted(values.items())),
            tuple(sorted(refused.items())), waiting=found.pending_reboot,
        )

    @staticmethod
    def _news(
        cluster: CacheCluster, before: CacheNodeParameters | None, after: CacheNodeParameters, outcome: Outcome
    ) -> list[str]:
        """Events worth recording: refusals, and static parameters that start waiting for a reboot."""
        messages = [
            f"Cache node {cluster.node.node_id} of cache cluster {cluster.cluster_id} refused {name}: {reason}"
            for name, reason in sorted(outcome.refused.items())
        ]
        announced = set(before.waiting) if before is not None else set()
        if set(after.waiting) - announced:
            messages.append(
                f"Cache cluster {cluster.cluster_id}: {', '.join(after.waiting)} of parameter group "
                f"{cluster.parameter_group_name} take effect when node {cluster.node.node_id} is rebooted (pending-reboot)"
            )
        return messages
