"""Service updates: newer patch builds of an engine version groups run, and rolling them out.

A service update exists when the engine catalog holds two builds of one engine's major.minor
(for example Valkey 8.1.8 from the wheel and 8.1.9 added with ``--engine-path``): the newest one
is an update for every group and standalone cluster running an older build of that major.minor.
This module owns the ``ServiceUpdate`` records (one per region and build, first seen when the
region is first looked at: that is its release date), the ``UpdateAction`` records (what happened
to the update on one resource: per node, who started it and when), DescribeServiceUpdates,
DescribeUpdateActions, BatchApplyUpdateAction and BatchStopUpdateAction.

Applying an update is the rolling replacement of an engine upgrade (an UPGRADE operation whose
``service_update`` names it); stopping one lets the node being replaced finish and goes no further.
Cachefleet cannot know what a build fixes: every engine patch update is reported with severity
``important`` and an apply-by date RECOMMENDED_WITHIN after its release.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, ClassVar

from cachefleet.domain import windows
from cachefleet.domain.base import Dependencies, UseCases
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus
from cachefleet.domain.engines import EngineRelease, version_key
from cachefleet.domain.errors import InvalidParameterCombination, InvalidParameterValue, NotFound
from cachefleet.domain.identifiers import Region
from cachefleet.domain.operations import Operation, OperationKind, UpgradeReason
from cachefleet.domain.ports import Transaction
from cachefleet.domain.replication_groups import GroupStatus, ReplicationGroup
from cachefleet.domain.resource import Kind
from cachefleet.domain.upgrades import LABELS, Upgrades, UpgradeTarget, pending_of

RECOMMENDED_WITHIN = dt.timedelta(days=30)
SEVERITY = "important"
UPDATE_TYPE = "security-update"  # the one ServiceUpdateType ElastiCache's model has
SERVICE_UPDATE_STATUSES = ("available", "cancelled", "expired")


class ActionStatus(StrEnum):
    """UpdateActionStatus / NodeUpdateStatus values, as ElastiCache writes them."""

    NOT_APPLIED = "not-applied"
    WAITING_TO_START = "waiting-to-start"
    IN_PROGRESS = "in-progress"
    STOPPING = "stopping"
    STOPPED = "stopped"
    COMPLETE = "complete"
    SCHEDULING = "scheduling"
    SCHEDULED = "scheduled"
    NOT_APPLICABLE = "not-applicable"


@dataclass(frozen=True)
class ServiceUpdate:
    """A newer patch build of an engine's major.minor, offered as an update in one region."""

    KIND: ClassVar[Kind] = Kind(
        name="ServiceUpdate", noun="Service update", not_found="ServiceUpdateNotFoundFault",
    )

    region: str
    name: str
    engine: str
    engine_version: str  # the newer build
    base_version: str  # the major.minor it updates
    release_date: dt.datetime  # when this region first saw the build
    status: str = "available"  # "expired" once the build is no longer installed
    description: str = ""

    @property
    def key(self) -> str:
        return self.name

    @property
    def recommended_apply_by(self) -> dt.datetime:
        return self.release_date + RECOMMENDED_WITHIN

    def applies_to(self, engine: str, version: str) -> bool:
        """Whether a resource running ``engine`` ``version`` gets this update."""
        return (
            engine == self.engine
            and ".".join(version.split(".")[:2]) == self.base_version
            and version_key(version) < version_key(self.engine_version)
        )


@dataclass(frozen=True)
class NodeUpdate:
    """One node's part of an update action."""

    cluster_id: str
    node_id: str
    status: ActionStatus
    node_group_id: str | None = None
    initiated_by: str | None = None
    initiated: dt.datetime | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    modified: dt.datetime | None = None


@dataclass(frozen=True)
class UpdateAction:
    """What happened to a service update on one replication group or standalone cluster."""

    KIND: ClassVar[Kind] = Kind(name="UpdateAction", noun="Update action", not_found="InvalidParameterValue")

    region: str
    service_update: str
    resource_kind: str  # "ReplicationGroup" or "CacheCluster"
    resource_id: str
    status: ActionStatus
    modified: dt.datetime
    nodes: tuple[NodeUpdate, ...] = ()

    @property
    def key(self) -> str:
        return action_key(self.service_update, self.resource_kind, self.resource_id)


def action_key(service_update: str, resource_kind: str, resource_id: str) -> str:
    return f"{service_update}/{resource_kind}/{resource_id}"


def update_name(engine: str, version: str) -> str:
    """The service update's name: ``valkey-8-1-9-engine-update``."""
    return f"{engine}-{version.replace('.', '-')}-engine-update"


def updates_in(releases: Sequence[EngineRelease]) -> list[EngineRelease]:
    """The builds that are updates: the newest of each engine's major.minor that has more than one build."""
    by_line: dict[tuple[str, str], list[EngineRelease]] = {}
    for release in releases:
        by_line.setdefault((release.engine, release.major_minor), []).append(release)
    newest = []
    for builds in by_line.values():
        if len(builds) > 1:
            newest.append(max(builds, key=lambda r: version_key(r.version)))
    return sorted(newest, key=lambda r: (r.engine, version_key(r.version)))


# ---------------------------------------------------------------------- records the workflow keeps
def node_started(
    action: UpdateAction, cluster: CacheCluster, *, now: dt.datetime, initiated_by: str, initiated: dt.datetime
) -> UpdateAction:
    """The action with ``cluster``'s node in progress."""
    node = NodeUpdate(
        cluster.cluster_id, cluster.node.node_id, ActionStatus.IN_PROGRESS, node_group_id=cluster.node_group_id,
        initiated_by=initiated_by, initiated=initiated, start=now, modified=now,
    )
    nodes = tuple(n for n in action.nodes if n.cluster_id != cluster.cluster_id) + (node,)
    return replace(action, nodes=tuple(sorted(nodes, key=lambda n: n.cluster_id)), modified=now)


def node_done(action: UpdateAction, cluster_id: str, *, now: dt.datetime) -> UpdateAction:
    nodes = tuple(
        replace(n, status=ActionStatus.COMPLETE, end=now, modified=now) if n.cluster_id == cluster_id else n
        for n in action.nodes
    )
    return replace(action, nodes=nodes, modified=now)


def action_ended(action: UpdateAction, status: ActionStatus, *, now: dt.datetime) -> UpdateAction:
    """The action finished (complete) or stopped; nodes still in progress are stopped with it."""
    nodes = tuple(
        replace(n, status=ActionStatus.STOPPED, modified=now) if n.status == ActionStatus.IN_PROGRESS else n
        for n in action.nodes
    )
    return replace(action, status=status, nodes=nodes, modified=now)


def new_action(region: str, name: str, resource: ReplicationGroup | CacheCluster, *, now: dt.datetime) -> UpdateAction:
    return UpdateAction(region, name, resource.KIND.name, resource.key, ActionStatus.IN_PROGRESS, now)


# ---------------------------------------------------------------------- views for Describe
@dataclass(frozen=True)
class ActionView:
    """An update action as DescribeUpdateActions shows it (the record, or what it would be)."""

    update: ServiceUpdate
    resource: ReplicationGroup | CacheCluster
    status: ActionStatus
    modified: dt.datetime | None
    nodes: tuple[NodeUpdate, ...]
    members: tuple[CacheCluster, ...]
    now: dt.datetime

    @property
    def nodes_updated(self) -> str:
        done = sum(1 for m in self.members if not self.update.applies_to(m.engine, m.engine_version))
        return f"{done}/{len(self.members)}"

    @property
    def sla_met(self) -> str:
        created = self.resource.create_time
        if created > self.update.recommended_apply_by:
            return "n/a"
        if self.status == ActionStatus.COMPLETE:
            finished = self.modified or self.update.recommended_apply_by
            return "yes" if finished <= self.update.recommended_apply_by else "no"
        return "no" if self.update.recommended_apply_by < self.now else "n/a"


def derived_status(
    update: ServiceUpdate, resource: ReplicationGroup | CacheCluster, members: Sequence[CacheCluster],
    record: UpdateAction | None, operation: Operation | None,
) -> ActionStatus:
    """An update action's status: its record's while the update runs or ran; otherwise what is due."""
    running = operation is not None and operation.upgrade is not None and operation.upgrade.service_update == update.name
    if running:
        assert operation is not None and operation.upgrade is not None
        return ActionStatus.STOPPING if operation.upgrade.stopping else ActionStatus.IN_PROGRESS
    if not any(update.applies_to(m.engine, m.engine_version) for m in members):
        return ActionStatus.COMPLETE if record is not None or members else ActionStatus.NOT_APPLICABLE
    if record is not None and record.status in (ActionStatus.STOPPED, ActionStatus.STOPPING, ActionStatus.IN_PROGRESS):
        return ActionStatus.STOPPED
    return ActionStatus.SCHEDULED if resource.auto_minor_version_upgrade else ActionStatus.NOT_APPLIED


@dataclass(frozen=True)
class BatchResult:
    """BatchApply/StopUpdateAction's answer: what was done, and what was not (with why)."""

    processed: tuple[tuple[str, str, ActionStatus], ...]  # (kind, id, status)
    unprocessed: tuple[tuple[str, str, str, str], ...]  # (kind, id, error type, message)


class ServiceUpdates(UseCases):
    """DescribeServiceUpdates, DescribeUpdateActions, BatchApply/StopUpdateAction."""

    def __init__(self, deps: Dependencies, *, upgrades: Upgrades) -> None:
        super().__init__(deps)
        self._upgrades = upgrades

    # ------------------------------------------------------------------ records
    def refresh(self, region: Region) -> list[ServiceUpdate]:
        """The region's service updates, recording those of builds seen for the first time (and
        expiring those whose build is gone)."""
        releases = self._catalog.releases()
        offered = {update_name(r.engine, r.version): r for r in updates_in(releases)}
        stored = {u.name: u for u in self._store.list(ServiceUpdate, region)}
        now = self._clock.now()
        changed: list[ServiceUpdate] = []
        for name, release in offered.items():
            found = stored.get(name)
            if found is None:
                older = sorted(r.version for r in releases if r.engine == release.engine
                               and r.major_minor == release.major_minor and r.version != release.version)
                changed.append(ServiceUpdate(
                    region=region, name=name, engine=release.engine, engine_version=release.version,
                    base_version=release.major_minor, release_date=now,
                    description=(
                        f"{LABELS.get(release.engine, release.engine)} {release.version}: a newer patch build of "
                        f"{release.major_minor} than {', '.join(older)}, installed on this Cachefleet host "
                        f"({release.description})"
                    ),
                ))
            elif found.status != "available":
                changed.append(replace(found, status="available"))
        for name, found in stored.items():
            if name not in offered and found.status == "available":
                changed.append(replace(found, status="expired"))
        if changed:
            with self._store.transaction() as tx:
                for update in changed:
                    tx.put(update)
                    if update.name not in stored:
                        self._announce(tx, update)
        return sorted(self._store.list(ServiceUpdate, region), key=lambda u: u.name)

    def _announce(self, tx: Transaction, update: ServiceUpdate) -> None:
        """A new update is announced to every resource it applies to; with AutoMinorVersionUpgrade, with
        the maintenance window that will apply it."""
        resources: list[ReplicationGroup | CacheCluster] = [*self._store.list(ReplicationGroup, update.region)]
        resources += [c for c in self._store.list(CacheCluster, update.region) if c.replication_group_id is None]
        for resource in resources:
            if not update.applies_to(resource.engine, resource.engine_version):
                continue
            window = resource.preferred_maintenance_window
            when = (
                f"it is applied in the maintenance window {window} (next at "
                f"{windows.describe(windows.Window.parse(window).opens_at_or_after(self._clock.now()))}), "
                "AutoMinorVersionUpgrade being on"
                if resource.auto_minor_version_upgrade
                else "apply it with BatchApplyUpdateAction"
            )
            self._event(tx, resource, f"Service update {update.name} is available for {resource.key} "
                                      f"({resource.engine} {resource.engine_version} to {update.engine_version}): {when}")

    def get(self, region: Region, name: str) -> ServiceUpdate:
        for update in self.refresh(region):
            if update.name == name:
                return update
        raise NotFound(f"Service update {name} not found.", resource="ServiceUpdate")

    def available_for(self, resource: ReplicationGroup | CacheCluster) -> ServiceUpdate | None:
        """The available update the resource's build gets, if any."""
        for update in self.refresh(resource.region):
            if update.status == "available" and update.applies_to(resource.engine, resource.engine_version):
                return update
        return None

    # ------------------------------------------------------------------ describe
    def describe_service_updates(
        self, region: Region, *, name: str | None = None, statuses: Sequence[str] | None = None
    ) -> list[ServiceUpdate]:
        for status in statuses or ():
            if status not in SERVICE_UPDATE_STATUSES:
                raise InvalidParameterValue(
                    f"Invalid ServiceUpdateStatus '{status}': use {', '.join(SERVICE_UPDATE_STATUSES)}."
                )
        updates = self.refresh(region)
        if name is not None:
            updates = [u for u in updates if u.name == name]
            if not updates:
                raise NotFound(f"Service update {name} not found.", resource="ServiceUpdate")
        if statuses:
            updates = [u for u in updates if u.status in statuses]
        return updates

    def describe_update_actions(
        self,
        region: Region,
        *,
        name: str | None = None,
        group_ids: Sequence[str] | None = None,
        cluster_ids: Sequence[str] | None = None,
        engine: str | None = None,
        update_statuses: Sequence[str] | None = None,
        action_statuses: Sequence[str] | None = None,
        time_range: Mapping[str, Any] | None = None,
    ) -> list[ActionView]:
        for status in action_statuses or ():
            if status not in {s.value for s in ActionStatus}:
                raise InvalidParameterValue(
                    f"Invalid UpdateActionStatus '{status}': use {', '.join(s.value for s in ActionStatus)}."
                )
        updates = self.describe_service_updates(region, statuses=update_statuses)
        if name is not None:
            updates = [u for u in updates if u.name == name]
        if engine is not None:
            updates = [u for u in updates if u.engine == engine.lower()]
        if time_range:
            start, end = time_range.get("StartTime"), time_range.get("EndTime")
            updates = [u for u in updates if (start is None or u.release_date >= start) and (end is None or u.release_date <= end)]
        resources: list[ReplicationGroup | CacheCluster] = []
        if group_ids is not None or cluster_ids is None:
            groups = self._store.list(ReplicationGroup, region)
            resources += [g for g in groups if group_ids is None or g.group_id in {i.lower() for i in group_ids}]
        if cluster_ids is not None or group_ids is None:
            clusters = [c for c in self._store.list(CacheCluster, region) if c.replication_group_id is None]
            resources += [c for c in clusters if cluster_ids is None or c.cluster_id in {i.lower() for i in cluster_ids}]
        views = []
        for update in updates:
            for resource in sorted(resources, key=lambda r: (r.KIND.name, r.key)):
                view = self._view(update, resource)
                if view is None:
                    continue
                if action_statuses and view.status.value not in action_statuses:
                    continue
                views.append(view)
        return views

    def _members(self, resource: ReplicationGroup | CacheCluster) -> tuple[CacheCluster, ...]:
        if isinstance(resource, CacheCluster):
            return (resource,)
        found = (self._store.get(CacheCluster, resource.region, cid) for cid in resource.member_cluster_ids)
        return tuple(c for c in found if c is not None)

    def _record(self, update: ServiceUpdate, resource: ReplicationGroup | CacheCluster) -> UpdateAction | None:
        return self._store.get(UpdateAction, resource.region, action_key(update.name, resource.KIND.name, resource.key))

    def _view(self, update: ServiceUpdate, resource: ReplicationGroup | CacheCluster) -> ActionView | None:
        members = self._members(resource)
        record = self._record(update, resource)
        applicable = any(update.applies_to(m.engine, m.engine_version) for m in members)
        if record is None and not applicable:
            return None
        status = derived_status(update, resource, members, record, self._operation(resource, OperationKind.UPGRADE))
        return ActionView(
            update, resource, status, record.modified if record is not None else None,
            record.nodes if record is not None else (), members, self._clock.now(),
        )

    # ------------------------------------------------------------------ apply, stop
    def _targets(
        self, region: Region, group_ids: Sequence[str] | None, cluster_ids: Sequence[str] | None
    ) -> Iterable[tuple[str, str, ReplicationGroup | CacheCluster | None, str]]:
        """(kind, id, resource or None, why not) for every id asked for."""
        if not group_ids and not cluster_ids:
            raise InvalidParameterCombination("Give ReplicationGroupIds or CacheClusterIds (or both).")
        for group_id in group_ids or ():
            found = self._store.get(ReplicationGroup, region, group_id.lower())
            yield "ReplicationGroup", group_id, found, "" if found else "ReplicationGroupNotFoundFault"
        for cluster_id in cluster_ids or ():
            cluster = self._store.get(CacheCluster, region, cluster_id.lower())
            if cluster is None:
                yield "CacheCluster", cluster_id, None, "CacheClusterNotFound"
            elif cluster.replication_group_id is not None:
                yield "CacheCluster", cluster_id, None, f"member of replication group {cluster.replication_group_id}"
            else:
                yield "CacheCluster", cluster_id, cluster, ""

    def batch_apply(
        self, region: Region, name: str, *, group_ids: Sequence[str] | None, cluster_ids: Sequence[str] | None,
        initiated_by: str = "customer", maintenance: bool = False,
    ) -> BatchResult:
        update = self.get(region, name)
        processed: list[tuple[str, str, ActionStatus]] = []
        unprocessed: list[tuple[str, str, str, str]] = []
        for kind, resource_id, resource, why in self._targets(region, group_ids, cluster_ids):
            if resource is None:
                code = why if why.endswith(("Fault", "NotFound")) else "InvalidParameterValue"
                message = f"{resource_id} not found" if code != "InvalidParameterValue" else (
                    f"Cache cluster {resource_id} is a {why}: apply the update to the replication group")
                unprocessed.append((kind, resource_id, code, message))
                continue
            problem = self._cannot_start(update, resource)
            if problem is not None:
                if problem[0] == "in-progress":
                    processed.append((kind, resource_id, ActionStatus.IN_PROGRESS))
                else:
                    unprocessed.append((kind, resource_id, *problem))
                continue
            self._start(update, resource, initiated_by=initiated_by, maintenance=maintenance)
            processed.append((kind, resource_id, ActionStatus.IN_PROGRESS))
        return BatchResult(tuple(processed), tuple(unprocessed))

    def _cannot_start(self, update: ServiceUpdate, resource: ReplicationGroup | CacheCluster) -> tuple[str, str] | None:
        operation = self._operation(resource, OperationKind.UPGRADE)
        if operation is not None and operation.upgrade is not None and operation.upgrade.service_update == update.name:
            return ("in-progress", "")
        if update.status != "available":
            return ("InvalidParameterValue", f"Service update {update.name} is {update.status}.")
        if not any(update.applies_to(m.engine, m.engine_version) for m in self._members(resource)):
            return ("InvalidParameterValue",
                    f"Service update {update.name} does not apply to {resource.key}, which runs "
                    f"{resource.engine} {resource.engine_version}.")
        available = GroupStatus.AVAILABLE if isinstance(resource, ReplicationGroup) else ClusterStatus.AVAILABLE
        busy = [kind.value for kind in OperationKind if self._operation(resource, kind) is not None]
        if resource.status != available or busy:
            fault = resource.KIND.invalid_state or "InvalidParameterValue"
            return (fault, f"{resource.key} is {resource.status}" + (f" ({', '.join(busy)} in progress)" if busy else "")
                    + "; apply the update once it is available.")
        return None

    def _start(
        self, update: ServiceUpdate, resource: ReplicationGroup | CacheCluster, *, initiated_by: str, maintenance: bool
    ) -> None:
        target = UpgradeTarget(
            self._upgrades.current_release(update.engine, update.engine_version), resource.parameter_group_name
        )
        upgrade = target.upgrade(
            reason=UpgradeReason.SERVICE_UPDATE, service_update=update.name, initiated_by=initiated_by,
            maintenance=maintenance, restart_pending_reboot=True,
        )
        operation = self._upgrades.begin(resource, upgrade)
        now = self._clock.now()
        members = [replace(m, pending=pending_of(m.pending, target)) for m in self._members(resource)]
        if isinstance(resource, ReplicationGroup):
            updated: ReplicationGroup | CacheCluster = replace(resource, status=GroupStatus.MODIFYING)
        else:
            updated = replace(resource, status=ClusterStatus.MODIFYING, pending=members[0].pending)
            members = []
        record = self._record(update, resource)
        action = replace(record, status=ActionStatus.IN_PROGRESS, modified=now) if record else new_action(
            resource.region, update.name, resource, now=now)
        with self._store.transaction() as tx:
            tx.put(updated)
            for member in members:
                tx.put(member)
            tx.put(operation)
            tx.put(action)
            who = "in its maintenance window" if maintenance else f"(initiated by {initiated_by})"
            self._event(
                tx, updated,
                f"Applying service update {update.name} to {resource.key} {who}: {resource.engine} "
                f"{resource.engine_version} to {update.engine_version}, one node at a time",
            )
        self._changed(updated)

    def batch_stop(
        self, region: Region, name: str, *, group_ids: Sequence[str] | None, cluster_ids: Sequence[str] | None
    ) -> BatchResult:
        update = self.get(region, name)
        processed: list[tuple[str, str, ActionStatus]] = []
        unprocessed: list[tuple[str, str, str, str]] = []
        for kind, resource_id, resource, why in self._targets(region, group_ids, cluster_ids):
            if resource is None:
                code = why if why.endswith(("Fault", "NotFound")) else "InvalidParameterValue"
                unprocessed.append((kind, resource_id, code, f"{resource_id}: {why}"))
                continue
            operation = self._operation(resource, OperationKind.UPGRADE)
            running = operation is not None and operation.upgrade is not None and operation.upgrade.service_update == name
            if not running:
                view = self._view(update, resource)
                status = view.status if view is not None else ActionStatus.NOT_APPLICABLE
                if status in (ActionStatus.STOPPED, ActionStatus.COMPLETE):
                    processed.append((kind, resource_id, status))
                else:
                    unprocessed.append((kind, resource_id, "InvalidParameterValue",
                                        f"Service update {name} is {status.value} on {resource_id}: nothing to stop."))
                continue
            assert operation is not None and operation.upgrade is not None
            if not operation.upgrade.stopping:
                record = self._record(update, resource)
                now = self._clock.now()
                with self._store.transaction() as tx:
                    tx.put(replace(operation, upgrade=replace(operation.upgrade, stopping=True)))
                    if record is not None:
                        tx.put(replace(record, status=ActionStatus.STOPPING, modified=now))
                    self._event(tx, resource, f"Stopping service update {name} on {resource.key}: the node being "
                                              "updated finishes, no other node starts")
                self._changed(resource)
            processed.append((kind, resource_id, ActionStatus.STOPPING))
        return BatchResult(tuple(processed), tuple(unprocessed))
