"""Engine upgrades: which build a group or cluster may move to, and recording the move.

This module owns ElastiCache's rules for an EngineVersion (and Engine) change -- newer only,
Redis OSS to Valkey but never back, the parameter group following the new family -- and the
records an upgrade starts with: with ApplyImmediately, an UPGRADE operation (the rolling
replacement ``control/workflows/upgrades.py`` carries out); without, the change waits in every
member's PendingModifiedValues for the maintenance window (``domain/maintenance.py`` starts it).

While an upgrade runs, every member not yet on the new build keeps ``PendingModifiedValues``
EngineVersion: no node is on another build than its group's target without saying so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from cachefleet.domain import parameters as catalogue
from cachefleet.domain import windows
from cachefleet.domain.base import Dependencies, UseCases
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus, PendingModifiedValues
from cachefleet.domain.engines import EngineRelease, release_of, resolve_engine, version_key
from cachefleet.domain.errors import InvalidParameterCombination, InvalidParameterValue, InvalidState
from cachefleet.domain.identifiers import Region
from cachefleet.domain.operations import EngineUpgrade, Operation, OperationKind, UpgradeReason
from cachefleet.domain.replication_groups import GroupStatus, ReplicationGroup
from cachefleet.domain.security import tls_engines

DOWNGRADE = (
    "You can upgrade to a newer engine version, but you cannot downgrade to an earlier engine version. If you want "
    "to use an earlier engine version, you must delete the existing {noun} and create it anew with the earlier "
    "engine version."
)
LABELS = {"valkey": "Valkey", "redis": "Redis OSS"}
# ElastiCache's Redis OSS to Valkey upgrade: Valkey is a fork of Redis OSS 7.2, a drop-in replacement.
MINIMUM_VALKEY = (7, 2)


class GroupOfParameters(Protocol):
    """What an upgrade needs to know of a parameter group."""

    @property
    def name(self) -> str: ...

    @property
    def family(self) -> str: ...

    @property
    def default(self) -> bool: ...

    @property
    def cluster_enabled(self) -> bool: ...

    def effective(self) -> dict[str, str]: ...


class ParameterGroupsForUpgrades(Protocol):
    """The parameter group lookups an upgrade makes (``domain/parameter_groups.py``)."""

    def get(self, region: Region, name: str) -> GroupOfParameters: ...

    def resolve(
        self, region: Region, name: str | None, release: EngineRelease, *, cluster_mode: bool | None
    ) -> GroupOfParameters: ...


def label(release: EngineRelease) -> str:
    return f"{LABELS.get(release.engine, release.engine)} {release.version}"


def asks_for_current(current: EngineRelease, version: str) -> bool:
    """Whether EngineVersion names the version already run: its major.minor (or full version).

    Patch builds of the same major.minor are service updates, not EngineVersion changes: an
    infrastructure tool sending the major.minor it has always sent must not start one.
    """
    wanted = version.lower().removesuffix(".x")
    return wanted in (current.version, current.major_minor)


def choose_target(
    releases: Sequence[EngineRelease], current: EngineRelease, *, engine: str | None, version: str | None, noun: str
) -> EngineRelease | None:
    """The build a resource running ``current`` moves to, or None when nothing changes.

    ``noun`` is what the refusals call the resource ("replication group", "cluster").
    """
    name = (engine or current.engine).lower()
    if name == current.engine:
        if version is None or asks_for_current(current, version):
            return None
        target = resolve_engine(releases, name, version)
        if version_key(target.version) < version_key(current.version):
            raise InvalidParameterCombination(
                f"EngineVersion {version} is earlier than {label(current)}, which the {noun} runs. "
                + DOWNGRADE.format(noun=noun)
            )
        return None if target.version == current.version else target
    if current.engine == "valkey" and name == "redis":
        raise InvalidParameterCombination(
            f"Engine redis: the {noun} runs {label(current)}, and ElastiCache upgrades Redis OSS to Valkey, never "
            f"Valkey to Redis OSS. " + DOWNGRADE.format(noun=noun)
        )
    if name == "memcached" or name not in LABELS:
        resolve_engine(releases, name, version)  # the engine's own refusal (not installed, memcached...)
        raise InvalidParameterValue(f"Invalid Engine '{engine}': use valkey or redis.")
    if version is None:
        raise InvalidParameterCombination(
            f"Engine {name} needs EngineVersion: give the new engine and its major version, for example "
            "Engine valkey with EngineVersion 8.1."
        )
    target = resolve_engine(releases, name, version)
    if version_key(target.version)[:2] < MINIMUM_VALKEY:
        raise InvalidParameterCombination(
            f"A Redis OSS {noun} upgrades to Valkey {MINIMUM_VALKEY[0]}.{MINIMUM_VALKEY[1]} or later; "
            f"EngineVersion {version} is {target.version}."
        )
    return target


def static_names(family: str) -> frozenset[str]:
    """The family's static parameters (ChangeType requires-reboot)."""
    if family not in catalogue.FAMILIES:
        return frozenset()
    return frozenset(
        p.name for p in catalogue.family_parameters(family) if p.change_type is catalogue.ChangeType.REQUIRES_REBOOT
    )


def static_differences(old: Mapping[str, str], new: Mapping[str, str], *, old_family: str, new_family: str) -> list[str]:
    """Static parameters both families have whose values differ between two groups (cluster-enabled aside)."""
    common = (static_names(old_family) & static_names(new_family)) - {"cluster-enabled"}
    return sorted(name for name in common if old.get(name) != new.get(name))


@dataclass(frozen=True)
class UpgradeTarget:
    """Where an upgrade goes: the build and the parameter group its nodes run with afterwards."""

    release: EngineRelease
    parameter_group_name: str

    def upgrade(
        self,
        *,
        reason: UpgradeReason = UpgradeReason.ENGINE_UPGRADE,
        service_update: str | None = None,
        initiated_by: str = "customer",
        maintenance: bool = False,
        restart_pending_reboot: bool = False,
    ) -> EngineUpgrade:
        return EngineUpgrade(
            engine=self.release.engine, engine_version=self.release.version,
            parameter_group_name=self.parameter_group_name, reason=reason, service_update=service_update,
            initiated_by=initiated_by, maintenance=maintenance, restart_pending_reboot=restart_pending_reboot,
        )


@dataclass(frozen=True)
class UpgradePlan:
    """What a ModifyReplicationGroup / ModifyCacheCluster engine change records, in one transaction."""

    members: tuple[CacheCluster, ...]  # with their PendingModifiedValues set (or cleared)
    operations: tuple[Operation, ...]  # the work to start now (ApplyImmediately): UPGRADE, NODE_TYPE
    message: str


def pending_of(pending: PendingModifiedValues, target: UpgradeTarget | None) -> PendingModifiedValues:
    """``pending`` with the engine change set to ``target`` (None: cleared)."""
    if target is None:
        return replace(pending, engine_version=None, engine=None, parameter_group_name=None)
    return replace(
        pending, engine_version=target.release.version, engine=target.release.engine,
        parameter_group_name=target.parameter_group_name,
    )


class Upgrades(UseCases):
    """The rules of an engine change, and the records that start it or leave it pending."""

    def __init__(self, deps: Dependencies, *, parameter_groups: ParameterGroupsForUpgrades) -> None:
        super().__init__(deps)
        self._parameter_groups = parameter_groups

    # ------------------------------------------------------------------ rules
    def target(
        self,
        region: Region,
        *,
        current: EngineRelease,
        parameter_group_name: str,
        cluster_mode: bool,
        engine: str | None,
        version: str | None,
        new_parameter_group: str | None,
        noun: str,
    ) -> UpgradeTarget | None:
        """The build and parameter group an engine change moves to (None: no change); refusals as ElastiCache's."""
        release = choose_target(self._catalog.releases(), current, engine=engine, version=version, noun=noun)
        if release is None:
            return None
        if new_parameter_group is not None:
            chosen = self._parameter_groups.resolve(region, new_parameter_group, release, cluster_mode=cluster_mode)
        elif release.family == current.family:
            chosen = self._parameter_groups.get(region, parameter_group_name)
        else:
            present = self._parameter_groups.get(region, parameter_group_name)
            if not present.default:
                raise InvalidParameterCombination(
                    f"Expected a parameter group of family {release.family} but found one of family {present.family}: "
                    f"{present.name}. Upgrading to {label(release)} (EngineVersion {version}) with the custom parameter "
                    f"group {present.name} needs CacheParameterGroupName: a parameter group of family "
                    f"{release.family} in the same request."
                )
            chosen = self._parameter_groups.resolve(region, None, release, cluster_mode=cluster_mode)
        if release.engine != current.engine:
            present = self._parameter_groups.get(region, parameter_group_name)
            if not present.default:
                differ = static_differences(
                    present.effective(), chosen.effective(), old_family=present.family, new_family=chosen.family
                )
                if differ:
                    raise InvalidParameterCombination(
                        f"Cache parameter group {chosen.name} must have the same static parameter values as "
                        f"{present.name} for an upgrade from Redis OSS to Valkey; they differ in {', '.join(differ)}."
                    )
        return UpgradeTarget(release, chosen.name)

    def current_release(self, engine: str, version: str) -> EngineRelease:
        return release_of(self._catalog.releases(), engine, version)

    # ------------------------------------------------------------------ replication groups
    def plan_group(
        self,
        group: ReplicationGroup,
        members: Sequence[CacheCluster],
        *,
        engine: str | None,
        version: str | None,
        parameter_group_name: str | None,
        immediately: bool,
    ) -> UpgradePlan | None:
        """ModifyReplicationGroup's Engine / EngineVersion: the plan to record (None: nothing changes)."""
        current = self.current_release(group.engine, group.engine_version)
        target = self.target(
            group.region, current=current, parameter_group_name=group.parameter_group_name,
            cluster_mode=group.cluster_enabled, engine=engine, version=version,
            new_parameter_group=parameter_group_name, noun="replication group",
        )
        if target is not None:
            self._check_tls(group.security.transit_encryption, target.release, f"Replication group {group.group_id}")
        waiting = any(m.pending.engine_version is not None for m in members)
        if target is None:
            if not waiting or version is None:
                return None
            cleared = tuple(replace(m, pending=pending_of(m.pending, None)) for m in members)
            return UpgradePlan(cleared, (), f"Pending engine upgrade of replication group {group.group_id} cancelled")
        if immediately:
            self.check_can_start(group)
        pending = tuple(replace(m, pending=pending_of(m.pending, target)) for m in members)
        if not immediately:
            return UpgradePlan(pending, (), self.waiting_message(group, current, target))
        operation = self._begin(group, OperationKind.UPGRADE, upgrade=target.upgrade())
        return UpgradePlan(pending, (operation,), self.starting_message(group, current, target))

    def _check_tls(self, encrypted: bool, release: EngineRelease, noun: str) -> None:
        """Nodes of a resource with in-transit encryption start with TLS: a build without it would not start."""
        if encrypted and not release.tls:
            raise InvalidParameterCombination(
                f"EngineVersion: {noun} has in-transit encryption enabled, and {label(release)} here is built without "
                f"TLS, so its nodes could not start on it. Engines with TLS on this host: "
                f"{tls_engines(self._catalog.releases())}."
            )

    def check_can_start(self, group: ReplicationGroup) -> None:
        if group.status != GroupStatus.AVAILABLE:
            raise InvalidState(
                f"Replication group {group.group_id} is {group.status}; its engine can be upgraded once it is available.",
                resource="ReplicationGroup",
            )
        busy = [kind.value for kind in OperationKind if self._operation(group, kind) is not None]
        if busy:
            raise InvalidState(
                f"Replication group {group.group_id} has work in progress ({', '.join(busy)}); upgrade its engine "
                "once it is done.",
                resource="ReplicationGroup",
            )

    def waiting_message(self, resource: ReplicationGroup | CacheCluster, current: EngineRelease, target: UpgradeTarget) -> str:
        window = resource.preferred_maintenance_window
        opens = windows.Window.parse(window).opens_at_or_after(self._clock.now())
        noun = "Replication group" if isinstance(resource, ReplicationGroup) else "Cache cluster"
        return (
            f"{noun} {resource.key}: engine upgrade from {label(current)} to {label(target.release)} is pending; it "
            f"waits for the maintenance window {window} (next at {windows.describe(opens)})"
        )

    @staticmethod
    def starting_message(group: ReplicationGroup, current: EngineRelease, target: UpgradeTarget) -> str:
        alone = not any(ng.replica_cluster_ids for ng in group.node_groups)
        if alone:
            how = "each node saves its data and restarts on the new build (no replica to fail over to)"
        elif group.cluster_enabled:
            how = "shard by shard: in each, the replicas first, then a planned failover, then the old primary"
        else:
            how = "the replicas first, then a planned failover, then the old primary"
        return (
            f"Upgrading replication group {group.group_id} from {label(current)} to {label(target.release)}: {how}"
            + (f"; parameter group {target.parameter_group_name}" if target.parameter_group_name != group.parameter_group_name else "")
        )

    # ------------------------------------------------------------------ standalone cache clusters
    def plan_cluster(
        self,
        cluster: CacheCluster,
        *,
        engine: str | None,
        version: str | None,
        parameter_group_name: str | None,
        immediately: bool,
    ) -> UpgradePlan | None:
        """ModifyCacheCluster's EngineVersion of a standalone cluster (a group's members change with their group)."""
        current = self.current_release(cluster.engine, cluster.engine_version)
        if engine is not None and engine.lower() != current.engine:
            choose_target(self._catalog.releases(), current, engine=engine, version=version, noun="cluster")
            raise InvalidParameterCombination(
                f"Cache cluster {cluster.cluster_id} is a single-node {LABELS[current.engine]} cluster: to upgrade it "
                f"to {LABELS.get(engine.lower(), engine)}, first create a replication group using the existing "
                f"cluster (CreateReplicationGroup with PrimaryClusterId {cluster.cluster_id}), then upgrade the "
                "replication group's engine."
            )
        target = self.target(
            cluster.region, current=current, parameter_group_name=cluster.parameter_group_name, cluster_mode=False,
            engine=None, version=version, new_parameter_group=parameter_group_name, noun="cluster",
        )
        if target is not None:
            self._check_tls(cluster.security.transit_encryption, target.release, f"Cache cluster {cluster.cluster_id}")
        if target is None:
            if cluster.pending.engine_version is None or version is None:
                return None
            return UpgradePlan(
                (replace(cluster, pending=pending_of(cluster.pending, None)),), (),
                f"Pending engine upgrade of cache cluster {cluster.cluster_id} cancelled",
            )
        pending = replace(cluster, pending=pending_of(cluster.pending, target))
        if not immediately:
            return UpgradePlan((pending,), (), self.waiting_message(cluster, current, target))
        self.check_cluster_can_start(cluster)
        operation = self._begin(cluster, OperationKind.UPGRADE, upgrade=target.upgrade())
        return UpgradePlan(
            (replace(pending, status=ClusterStatus.MODIFYING),), (operation,),
            self.cluster_starting_message(cluster, current, target),
        )

    def check_cluster_can_start(self, cluster: CacheCluster) -> None:
        busy = [kind.value for kind in OperationKind if self._operation(cluster, kind) is not None]
        if busy:
            raise InvalidState(
                f"Cache cluster {cluster.cluster_id} has work in progress ({', '.join(busy)}); upgrade its engine once "
                "it is done.",
                resource="CacheCluster",
            )

    @staticmethod
    def cluster_starting_message(cluster: CacheCluster, current: EngineRelease, target: UpgradeTarget) -> str:
        return (
            f"Upgrading cache cluster {cluster.cluster_id} from {label(current)} to {label(target.release)}: its node "
            "saves its data, restarts on the new build and loads it"
        )

    # ------------------------------------------------------------------ pending upgrades started now
    def pending_target(self, members: Sequence[CacheCluster]) -> UpgradeTarget | None:
        """The engine change waiting in the members' PendingModifiedValues, if any."""
        for member in members:
            pending = member.pending
            if pending.engine_version is not None and pending.engine is not None and pending.parameter_group_name:
                release = release_of(self._catalog.releases(), pending.engine, pending.engine_version)
                return UpgradeTarget(release, pending.parameter_group_name)
        return None

    def start_pending(
        self, resource: ReplicationGroup | CacheCluster, members: Sequence[CacheCluster], *, maintenance: bool = False
    ) -> UpgradePlan | None:
        """What waits in the members' PendingModifiedValues, started now (ApplyImmediately alone, or the
        maintenance window): a node type change and an engine upgrade (None: nothing waits, or it cannot
        start yet because other work is in progress)."""
        target = self.pending_target(members)
        node_type = next((m.pending.node_type for m in members if m.pending.node_type is not None), None)
        if target is None and node_type is None:
            return None
        if any(self._operation(resource, kind) is not None for kind in OperationKind):
            return None
        if isinstance(resource, ReplicationGroup) and resource.status != GroupStatus.AVAILABLE:
            return None
        if isinstance(resource, CacheCluster) and resource.status != ClusterStatus.AVAILABLE:
            return None
        operations: list[Operation] = []
        messages: list[str] = []
        updated = list(members)
        when = " in its maintenance window" if maintenance else ""
        if node_type is not None and node_type != resource.node_type:
            operations.append(self._begin(resource, OperationKind.NODE_TYPE, node_type=node_type))
            messages.append(f"scaling from {resource.node_type} to {node_type}")
        updated = [replace(m, pending=replace(m.pending, node_type=None)) for m in updated]
        if target is not None:
            current = self.current_release(resource.engine, resource.engine_version)
            if target.release.version != current.version or target.release.engine != current.engine:
                upgrade = target.upgrade(maintenance=maintenance)
                operations.append(self._begin(resource, OperationKind.UPGRADE, upgrade=upgrade))
                messages.append(f"upgrading from {label(current)} to {label(target.release)}")
            else:
                updated = [replace(m, pending=pending_of(m.pending, None)) for m in updated]
        if isinstance(resource, CacheCluster) and operations:
            updated = [replace(m, status=ClusterStatus.MODIFYING) for m in updated]
        noun = "Replication group" if isinstance(resource, ReplicationGroup) else "Cache cluster"
        message = f"{noun} {resource.key}{when}: " + ("; ".join(messages) or "nothing left to apply")
        return UpgradePlan(tuple(updated), tuple(operations), message)

    def begin(self, resource: ReplicationGroup | CacheCluster, upgrade: EngineUpgrade) -> Operation:
        """A new UPGRADE operation on ``resource`` (recorded by the caller, with the resource's status)."""
        return self._begin(resource, OperationKind.UPGRADE, upgrade=upgrade)
