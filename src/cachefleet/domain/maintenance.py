"""Maintenance windows that run: what waits for a resource's PreferredMaintenanceWindow, and starting it there.

Waiting work, per replication group or standalone cluster: a node type change and an engine upgrade
asked for with ApplyImmediately false (every member's PendingModifiedValues), static parameters
waiting for a reboot (ParameterApplyStatus pending-reboot), a change of a group's AUTH token, user
groups or in-transit encryption (``ReplicationGroup.pending_access``), and, with
AutoMinorVersionUpgrade, a service update for the build it runs. ``next_wake`` says when the control
plane's maintenance scheduler must look next (the earliest window start of a resource with waiting
work); ``run`` starts, in every window open at that instant, what waits there: the node type change
and the engine upgrade first, then the change of the locks, then the restart of nodes waiting for a
reboot, then the service update (one at a time: what cannot start yet because other work is in
progress starts at a later look within the window). Events record each start; the use cases that
left work waiting announced it, with the window's next start.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from cachefleet.domain.base import Dependencies, UseCases
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus
from cachefleet.domain.operations import Operation, OperationKind, UpgradeReason
from cachefleet.domain.parameters import ApplyStatus
from cachefleet.domain.replication_groups import GroupStatus, ReplicationGroup
from cachefleet.domain.service_updates import ActionStatus, ServiceUpdates, UpdateAction, action_key
from cachefleet.domain.upgrades import Upgrades, UpgradeTarget
from cachefleet.domain.windows import Window, describe

# While a window is open and work waits behind other work, look again this often.
RECHECK = dt.timedelta(seconds=30)


class PendingAccessStarter(Protocol):
    """Starts a group's waiting change of its locks (``ReplicationGroups.start_pending_access``)."""

    def start_pending_access(self, group: ReplicationGroup) -> str | None: ...


class ParameterStatus(Protocol):
    """A node's ParameterApplyStatus (``domain/parameter_groups.py``)."""

    def status_of(self, cluster: CacheCluster) -> tuple[ApplyStatus, tuple[str, ...]]: ...


@dataclass(frozen=True)
class Waiting:
    """What waits for a resource's maintenance window."""

    node_type: str | None = None
    engine_version: str | None = None
    reboot: tuple[str, ...] = ()  # cluster ids whose static parameters wait for a reboot
    service_update: str | None = None
    access: str | None = None  # a change of the group's locks (AUTH token, user groups, TLS), as asked

    @property
    def empty(self) -> bool:
        return (self.node_type is None and self.engine_version is None and not self.reboot
                and self.service_update is None and self.access is None)

    def describe(self) -> str:
        parts = []
        if self.node_type:
            parts.append(f"node type {self.node_type}")
        if self.engine_version:
            parts.append(f"engine version {self.engine_version}")
        if self.reboot:
            parts.append(f"static parameters of {', '.join(self.reboot)}")
        if self.service_update:
            parts.append(f"service update {self.service_update}")
        if self.access:
            parts.append(self.access)
        return ", ".join(parts)


Resource = ReplicationGroup | CacheCluster


class Maintenance(UseCases):
    """Finds the work waiting for maintenance windows and starts it when a window opens."""

    def __init__(
        self, deps: Dependencies, *, upgrades: Upgrades, service_updates: ServiceUpdates, parameters: ParameterStatus,
        access: PendingAccessStarter,
    ) -> None:
        super().__init__(deps)
        self._access = access
        self._upgrades = upgrades
        self._service_updates = service_updates
        self._parameters = parameters

    # ------------------------------------------------------------------ what waits
    def resources(self) -> list[Resource]:
        groups: list[Resource] = [g for g in self._store.list(ReplicationGroup) if g.status != GroupStatus.DELETING]
        clusters: list[Resource] = [
            c for c in self._store.list(CacheCluster)
            if c.replication_group_id is None and c.status not in (ClusterStatus.DELETING, ClusterStatus.CREATE_FAILED)
        ]
        return groups + clusters

    def members(self, resource: Resource) -> list[CacheCluster]:
        if isinstance(resource, CacheCluster):
            return [resource]
        found = (self._store.get(CacheCluster, resource.region, cid) for cid in resource.member_cluster_ids)
        return [c for c in found if c is not None]

    def waiting(self, resource: Resource) -> Waiting:
        members = self.members(resource)
        node_type = next((m.pending.node_type for m in members if m.pending.node_type is not None), None)
        version = next((m.pending.engine_version for m in members if m.pending.engine_version is not None), None)
        reboot = tuple(
            m.cluster_id for m in members
            if m.status == ClusterStatus.AVAILABLE and self._parameters.status_of(m)[0] == ApplyStatus.PENDING_REBOOT
        )
        update = None
        if resource.auto_minor_version_upgrade and version is None:
            found = self._service_updates.available_for(resource)
            if found is not None and not self._stopped(resource, found.name):
                update = found.name
        access = resource.pending_access.asked if isinstance(resource, ReplicationGroup) and resource.pending_access else None
        return Waiting(node_type=node_type, engine_version=version, reboot=reboot, service_update=update, access=access)

    def _stopped(self, resource: Resource, name: str) -> bool:
        """A service update stopped on purpose (BatchStopUpdateAction) is not applied again by the window."""
        record = self._store.get(UpdateAction, resource.region, action_key(name, resource.KIND.name, resource.key))
        return record is not None and record.status in (ActionStatus.STOPPED, ActionStatus.STOPPING)

    # ------------------------------------------------------------------ when
    def next_wake(self, now: dt.datetime) -> dt.datetime | None:
        """When the scheduler must look next: the earliest window start of a resource with waiting work
        (or a recheck soon, for one whose window is open now)."""
        soonest: dt.datetime | None = None
        for resource in self.resources():
            if self.waiting(resource).empty:
                continue
            window = Window.parse(resource.preferred_maintenance_window)
            when = now + RECHECK if window.is_open(now) else window.opens_at_or_after(now)
            if soonest is None or when < soonest:
                soonest = when
        return soonest

    # ------------------------------------------------------------------ starting
    def run(self, now: dt.datetime) -> list[str]:
        """Starts what waits in every window open at ``now``; the messages of what started."""
        started = []
        for resource in self.resources():
            window = Window.parse(resource.preferred_maintenance_window)
            opened = window.open_since(now)
            if opened is None:
                continue
            waiting = self.waiting(resource)
            if waiting.empty:
                continue
            message = self._start(resource, waiting, opened=opened, closes=window.closes(opened))
            if message:
                started.append(message)
        return started

    def _start(self, resource: Resource, waiting: Waiting, *, opened: dt.datetime, closes: dt.datetime) -> str | None:
        noun = "Replication group" if isinstance(resource, ReplicationGroup) else "Cache cluster"
        opening = (
            f"{noun} {resource.key}: maintenance window {resource.preferred_maintenance_window} open "
            f"({describe(opened)} to {describe(closes)}); applying {waiting.describe()}"
        )
        members = self.members(resource)
        if waiting.node_type is not None or waiting.engine_version is not None:
            plan = self._upgrades.start_pending(resource, members, maintenance=True)
            if plan is None or not plan.operations:
                return None  # other work first: looked at again within the window
            self._record(resource, plan.members, plan.operations, [opening, plan.message])
            return plan.message
        if waiting.access is not None and isinstance(resource, ReplicationGroup):
            if not self._free(resource):
                return None
            with self._store.transaction() as tx:
                self._event(tx, resource, opening)
            return self._access.start_pending_access(resource)
        if waiting.reboot:
            if not self._free(resource):
                return None
            current = self._upgrades.current_release(resource.engine, resource.engine_version)
            upgrade = UpgradeTarget(current, resource.parameter_group_name).upgrade(
                reason=UpgradeReason.STATIC_PARAMETERS, restart_pending_reboot=True, maintenance=True,
            )
            message = (
                f"{noun} {resource.key}: restarting {', '.join(waiting.reboot)} one at a time in its maintenance window "
                "so that static parameters take effect"
            )
            self._record(resource, [], (self._upgrades.begin(resource, upgrade),), [opening, message])
            return message
        if waiting.service_update is not None:
            kind = "group" if isinstance(resource, ReplicationGroup) else "cluster"
            result = self._service_updates.batch_apply(
                resource.region, waiting.service_update,
                group_ids=[resource.key] if kind == "group" else None,
                cluster_ids=[resource.key] if kind == "cluster" else None,
                initiated_by="system", maintenance=True,
            )
            if result.processed:
                return f"{noun} {resource.key}: service update {waiting.service_update} started in its maintenance window"
        return None

    def _free(self, resource: Resource) -> bool:
        available = GroupStatus.AVAILABLE if isinstance(resource, ReplicationGroup) else ClusterStatus.AVAILABLE
        return resource.status == available and all(self._operation(resource, k) is None for k in OperationKind)

    def _record(
        self, resource: Resource, members: Sequence[CacheCluster], operations: Sequence[Operation], messages: list[str]
    ) -> None:
        if isinstance(resource, ReplicationGroup):
            updated: Resource = replace(resource, status=GroupStatus.MODIFYING)
            others = list(members)
        else:
            base = members[0] if members else resource
            updated = replace(base, status=ClusterStatus.MODIFYING)
            others = []
        with self._store.transaction() as tx:
            tx.put(updated)
            for member in others:
                tx.put(member)
            for operation in operations:
                tx.put(operation)
            for message in messages:
                self._event(tx, updated, message)
        self._changed(updated)
