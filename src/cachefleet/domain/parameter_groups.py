"""Cache parameter groups: a family's parameters, the user's values over its defaults, and what
each cache cluster's node runs with.

This module owns the ``CacheParameterGroup`` record (custom groups are stored; the
``default.<family>`` and ``default.<family>.cluster.on`` groups of every installed engine family
exist without being stored and cannot be changed), Create / Modify / Reset / Delete
CacheParameterGroup, DescribeCacheParameterGroups, DescribeCacheParameters,
DescribeEngineDefaultParameters, and the rules the other families ask about when a cluster
names a group (the family must match the engine; cluster mode must match the group's
``cluster-enabled``).

It also owns ``CacheNodeParameters``: the parameter values a cluster's node really runs with
(those its engine was started with, and the dynamic ones set since). The reconciler writes it;
the difference between it and the group's values *is* the pending state Describe shows
(``ParameterApplyStatus`` applying / pending-reboot, ``CacheNodeIdsToReboot``), so a change that
a control-plane crash interrupted is still visible, and resumed, at the next start. The pure
:func:`plan` says what a node is to be told (CONFIG SET now) and what waits for its reboot.

A parameter the installed engine builds lack is not offered (``BuildSettings``, measured once
at start-up with ``engine/config_probe.py``): it is not listed and cannot be set.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from cachefleet.domain import parameters as catalogue
from cachefleet.domain.base import Dependencies, UseCases
from cachefleet.domain.cache_clusters import CacheCluster
from cachefleet.domain.engines import EngineRelease, refuse_memcached
from cachefleet.domain.errors import (
    AlreadyExists,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    QuotaExceeded,
)
from cachefleet.domain.events import EventSourceType
from cachefleet.domain.identifiers import Region
from cachefleet.domain.parameters import (
    ApplyStatus,
    ChangeType,
    Effect,
    NodeTypeSpecificParameter,
    Parameter,
    Source,
)
from cachefleet.domain.ports import StateStore
from cachefleet.domain.resource import Kind
from cachefleet.domain.tags import Tag, tags

RESERVED_MEMORY = "reserved-memory"
RESERVED_MEMORY_PERCENT = "reserved-memory-percent"
CLUSTER_ENABLED = "cluster-enabled"
# A node type for engine settings that do not depend on it (comparing with the engine's defaults).
_ANY_NODE_TYPE = "cache.t4g.micro"


@dataclass(frozen=True)
class BuildSettings:
    """What one installed engine build has: its settings with the engine's own defaults (CONFIG GET *
    of a fresh engine) and those it refuses to enable (engine/config_probe.py measures both)."""

    settings: Mapping[str, str]
    refused: frozenset[str] = frozenset()

    def available(self) -> frozenset[str]:
        return frozenset(self.settings) - self.refused


# (engine, version) -> what that installed build has; wired once at start-up.
Builds = Mapping[tuple[str, str], BuildSettings]


@dataclass(frozen=True)
class CacheParameterGroup:
    """A parameter group: its family and the values the user set (every other one is the family's default)."""

    KIND: ClassVar[Kind] = Kind(
        name="CacheParameterGroup", noun="Cache parameter group", not_found="CacheParameterGroupNotFoundFault",
        arn_type="parametergroup", event_source=EventSourceType.CACHE_PARAMETER_GROUP.value,
        already_exists="CacheParameterGroupAlreadyExistsFault", invalid_state="InvalidCacheParameterGroupStateFault",
        quota_exceeded="CacheParameterGroupQuotaExceededFault", taggable=True,
    )

    region: Region
    name: str
    family: str
    description: str
    values: tuple[tuple[str, str], ...] = ()  # Source user: (name, value), by name
    tags: tuple[Tag, ...] = ()
    create_time: dt.datetime | None = None
    default: bool = False  # default.<family>[.cluster.on]: never stored, never changed
    cluster_on: bool = False  # default.<family>.cluster.on

    @property
    def key(self) -> str:
        return self.name

    @property
    def user_values(self) -> dict[str, str]:
        return dict(self.values)

    def effective(self) -> dict[str, str]:
        """Every parameter's value: the family's defaults overlaid with the user's."""
        return effective_values(self.family, self.user_values, cluster_on=self.cluster_on)

    @property
    def cluster_enabled(self) -> bool:
        return self.effective().get(CLUSTER_ENABLED) == "yes"


def family_name(engine: str, version: str) -> str:
    """The parameter group family of an engine build: valkey 8.1.8 -> valkey8 (catalogued or not)."""
    return f"{engine}{version.split('.')[0]}"


def catalogued(family: str) -> bool:
    """Whether the catalogue knows the family's parameters. A build of another family (added with
    --engine-path) runs with none: its nodes get Cachefleet's own settings and the data memory only."""
    return family in catalogue.FAMILIES


def effective_values(family: str, user: Mapping[str, str], *, cluster_on: bool = False) -> dict[str, str]:
    """The family's defaults overlaid with ``user``; a group holding reserved-memory has no
    reserved-memory-percent (ElastiCache's two reserve parameters exclude each other)."""
    if not catalogued(family):
        return dict(user)
    values = catalogue.default_values(family, cluster_on)
    if RESERVED_MEMORY in user:
        values.pop(RESERVED_MEMORY_PERCENT, None)
    values.update(user)
    return values


def default_group(region: Region, family: str, *, cluster_on: bool = False) -> CacheParameterGroup:
    return CacheParameterGroup(
        region=region,
        name=f"default.{family}" + (".cluster.on" if cluster_on else ""),
        family=family,
        description=catalogue.default_group_description(family, cluster_on),
        default=True,
        cluster_on=cluster_on,
    )


@dataclass(frozen=True)
class CacheNodeParameters:
    """The parameter values a cache cluster's node runs with: those its engine was started with
    (static ones change only then) and the dynamic ones set since; values the engine refused are
    remembered so that they are not sent again."""

    KIND: ClassVar[Kind] = Kind(name="CacheNodeParameters", noun="Cache node parameters", not_found="CacheClusterNotFoundFault")

    region: str
    cluster_id: str
    group_name: str
    values: tuple[tuple[str, str], ...]
    refused: tuple[tuple[str, str], ...] = ()  # (name, value the engine refused)
    waiting: tuple[str, ...] = ()  # static parameters waiting for a reboot, as last announced in an event

    @property
    def key(self) -> str:
        return self.cluster_id


def cluster_values(store: StateStore, cluster: CacheCluster) -> dict[str, str]:
    """The parameter values a cluster's node is to run with: its group's (a default group is not stored)."""
    family = family_name(cluster.engine, cluster.engine_version)
    stored = store.get(CacheParameterGroup, cluster.region, cluster.parameter_group_name)
    if stored is not None:
        return stored.effective()
    return effective_values(family, {}, cluster_on=cluster.parameter_group_name.endswith(".cluster.on"))


# Cachefleet's own values of these two on the nodes of a shard with replicas, where the node's parameter
# group does not set them (README: Zone partitions). A primary cut off from every replica of its
# shard stops taking writes once no replica has acknowledged the stream for MIN_REPLICAS_MAX_LAG
# seconds (replicas acknowledge every second): the writes a partitioned primary acknowledges, and
# that the failover to a reachable replica then loses, are bounded by about that. 5 s, half of
# ElastiCache's default of the lag parameter: well past the control plane's failover (~0.5 s) and
# replica stalls of a few seconds (a fork, a slow command), short enough to bound the loss.
MIN_REPLICAS_TO_WRITE = "1"
MIN_REPLICAS_MAX_LAG = "5"


def write_fencing(user_set: Collection[str], *, replicas: int) -> dict[str, str]:
    """The min-replicas-* settings Cachefleet gives a node of a shard with ``replicas`` replicas:
    none without replicas; with them, its own values of those its parameter group leaves at the default."""
    if replicas < 1:
        return {}
    fencing = {"min-replicas-to-write": MIN_REPLICAS_TO_WRITE, "min-replicas-max-lag": MIN_REPLICAS_MAX_LAG}
    if "min-replicas-to-write" in user_set:
        return {}  # the parameter group decides whether writes wait for replicas at all
    return {name: value for name, value in fencing.items() if name not in user_set}


def cluster_user_parameters(store: StateStore, cluster: CacheCluster) -> frozenset[str]:
    """Names of the parameters the cluster's parameter group sets (Source ``user``); none for a default group."""
    stored = store.get(CacheParameterGroup, cluster.region, cluster.parameter_group_name)
    return frozenset(stored.user_values) if stored is not None else frozenset()


def node_parameters(cluster: CacheCluster, values: Mapping[str, str]) -> CacheNodeParameters:
    """The record of a node (re)started with ``values``."""
    return CacheNodeParameters(cluster.region, cluster.cluster_id, cluster.parameter_group_name, tuple(sorted(values.items())))


# ---------------------------------------------------------------------------------------------
# What a node is told
# ---------------------------------------------------------------------------------------------


def offered_names(family: str, release: EngineRelease, builds: Builds | None) -> frozenset[str]:
    """Names of the family's parameters the build can honour (all of them when not measured)."""
    if not catalogued(family):
        return frozenset()
    parameters = catalogue.family_parameters(family)
    build = builds.get((release.engine, release.version)) if builds is not None else None
    if build is not None:
        parameters = catalogue.offered(parameters, engine_version=release.version, available=build.available())
    names = {p.name for p in parameters}
    if RESERVED_MEMORY_PERCENT in names:
        names.add(RESERVED_MEMORY)
    return frozenset(names)


def node_settings(family: str, values: Mapping[str, str], *, node_type: str, offered: Collection[str]) -> dict[str, str]:
    """The engine settings a node of ``node_type`` starts with (its config file), for the offered parameters."""
    settings: dict[str, str] = {}
    buffers = False
    for found in catalogue.family_parameters(family) if catalogued(family) else ():
        if found.name not in offered:
            continue
        if found.effect is Effect.OUTPUT_BUFFER:
            buffers = True
        elif found.effect in (Effect.ENGINE, Effect.MEMORY):
            setting = catalogue.engine_setting(family, found.name, values, node_type=node_type)
            if setting is not None:
                settings[setting.name] = setting.value
    if buffers:
        settings["client-output-buffer-limit"] = catalogue.engine_settings(family, values, node_type=node_type)[
            "client-output-buffer-limit"
        ]
    settings["maxmemory"] = str(catalogue.data_maxmemory(node_type, values))
    return settings


@functools.cache
def _by_name(family: str) -> dict[str, Parameter]:
    if not catalogued(family):
        return {}
    found = {p.name: p for p in catalogue.family_parameters(family)}
    found[RESERVED_MEMORY] = catalogue.parameter(family, RESERVED_MEMORY)
    return found


def _parameter(family: str, name: str) -> Parameter | None:
    """The family's parameter of that name; None for a name a newer or older catalogue had."""
    return _by_name(family).get(name)


def _static_defaults(family: str) -> dict[str, str]:
    return {p.name: p.default for p in _by_name(family).values() if p.change_type is ChangeType.REQUIRES_REBOOT}


@dataclass(frozen=True)
class SettingChange:
    """One CONFIG SET, and the parameters whose values it carries."""

    name: str
    value: str
    parameters: tuple[str, ...]


@dataclass(frozen=True)
class ParameterPlan:
    """What a node is told now, what it runs with once told, and what waits for its reboot."""

    changes: tuple[SettingChange, ...]
    applied: dict[str, str]  # the node's values once every change is made
    pending_reboot: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def plan(
    family: str,
    desired: Mapping[str, str],
    node: CacheNodeParameters | None,
    *,
    node_type: str,
    offered: Collection[str],
) -> ParameterPlan:
    """What a node running with ``node``'s values is told so that it runs with ``desired``.

    Dynamic parameters are set now (their engine settings, when the build offers them); static
    ones wait for the node's next start. A node without a record (a warm node handed over, or
    one started before records existed) is told every dynamic setting, and is taken to run
    with the family's static defaults (what a node started without parameters has).
    """
    known = node is not None
    have = dict(node.values) if node is not None else _static_defaults(family)
    refused = dict(node.refused) if node is not None else {}
    applied = dict(have)
    changes: dict[str, tuple[str, list[str]]] = {}
    reboot: list[str] = []
    for name in sorted(set(desired) | set(have)):
        want = desired.get(name)
        found = _parameter(family, name)
        if found is None:
            applied.pop(name, None)
            continue
        if found.effect is Effect.CLUSTER_MODE:
            # A node always runs in its group's cluster mode (a switch of mode is refused).
            if want is not None:
                applied[name] = want
            continue
        if found.change_type is ChangeType.REQUIRES_REBOOT:
            if want != have.get(name):
                reboot.append(name)
            continue
        if known and want == have.get(name):
            continue
        if want is not None and refused.get(name) == want:
            continue  # the engine refused this very value: it is not sent again
        if want is None:
            applied.pop(name, None)
        else:
            applied[name] = want
        if name not in offered:
            continue  # the build lacks it: nothing to tell the engine
        setting = catalogue.engine_setting(family, name, desired, node_type=node_type)
        if setting is None:
            continue  # Cachefleet carries it out itself (or it is only described)
        _, names = changes.setdefault(setting.name, (setting.value, []))
        names.append(name)
    return ParameterPlan(
        changes=tuple(SettingChange(n, v, tuple(p)) for n, (v, p) in changes.items()),
        applied=applied,
        pending_reboot=tuple(reboot),
    )


def apply_status(family: str, desired: Mapping[str, str], node: CacheNodeParameters | None) -> tuple[ApplyStatus, tuple[str, ...]]:
    """A node's ParameterApplyStatus, and the static parameters waiting for its reboot.

    A node without a record has not started yet: it will start with the group's values.
    """
    if node is None:
        return ApplyStatus.IN_SYNC, ()
    applied, refused = dict(node.values), dict(node.refused)
    applying = False
    reboot: list[str] = []
    for name in sorted(set(desired) | set(applied)):
        want = desired.get(name)
        if want == applied.get(name) or (want is not None and refused.get(name) == want):
            continue
        found = _parameter(family, name)
        if found is None or found.effect is Effect.CLUSTER_MODE:
            continue
        if found.change_type is ChangeType.REQUIRES_REBOOT:
            reboot.append(name)
        else:
            applying = True
    if applying:
        return ApplyStatus.APPLYING, tuple(reboot)
    return (ApplyStatus.PENDING_REBOOT if reboot else ApplyStatus.IN_SYNC), tuple(reboot)


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


def _group_name_of(params: Mapping[str, Any]) -> str:
    return str(params["CacheParameterGroupName"]).lower()


@dataclass(frozen=True)
class CreateCacheParameterGroupRequest:
    """CreateCacheParameterGroup, checked."""

    name: str
    family: str
    description: str
    tags: tuple[Tag, ...]

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> CreateCacheParameterGroupRequest:
        refuse_memcached(params, operation="CreateCacheParameterGroup")
        return cls(
            name=catalogue.group_name(str(params["CacheParameterGroupName"])),
            family=str(params["CacheParameterGroupFamily"]).lower(),
            description=str(params["Description"]),
            tags=tags(params.get("Tags")),
        )


def _name_values(params: Mapping[str, Any], *, operation: str, values: bool) -> tuple[tuple[str, str], ...]:
    pairs: dict[str, str] = {}
    for index, item in enumerate(params.get("ParameterNameValues") or (), 1):
        name = item.get("ParameterName")
        if not name:
            raise InvalidParameterValue(
                f"{operation}: ParameterNameValues.member.{index} has no ParameterName; name the parameter."
            )
        value = item.get("ParameterValue")
        if values and value is None:
            raise InvalidParameterValue(f"{operation}: parameter {name} has no ParameterValue; give its new value.")
        if name in pairs:
            raise InvalidParameterCombination(f"{operation}: parameter {name} is given twice; give each parameter once.")
        pairs[str(name)] = "" if value is None else str(value)
    return tuple(pairs.items())


@dataclass(frozen=True)
class ModifyCacheParameterGroupRequest:
    """ModifyCacheParameterGroup, checked: 1 to 20 (name, value) pairs."""

    name: str
    values: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ModifyCacheParameterGroupRequest:
        catalogue.check_modify_count(len(params.get("ParameterNameValues") or ()))
        values = _name_values(params, operation="ModifyCacheParameterGroup", values=True)
        names = {n for n, _ in values}
        if {RESERVED_MEMORY, RESERVED_MEMORY_PERCENT} <= names:
            raise InvalidParameterCombination(
                "reserved-memory and reserved-memory-percent exclude each other; set one of them."
            )
        return cls(name=_group_name_of(params), values=values)


@dataclass(frozen=True)
class ResetCacheParameterGroupRequest:
    """ResetCacheParameterGroup, checked: every parameter, or the named ones."""

    name: str
    reset_all: bool
    names: tuple[str, ...]

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ResetCacheParameterGroupRequest:
        names = tuple(n for n, _ in _name_values(params, operation="ResetCacheParameterGroup", values=False))
        reset_all = bool(params.get("ResetAllParameters", False))
        if reset_all and names:
            raise InvalidParameterCombination(
                "ResetCacheParameterGroup: give ResetAllParameters or ParameterNameValues, not both."
            )
        if not reset_all:
            if not names:
                raise InvalidParameterValue(
                    "ResetCacheParameterGroup: give ResetAllParameters true, or name the parameters to reset in "
                    "ParameterNameValues."
                )
            catalogue.check_modify_count(len(names))
        return cls(name=_group_name_of(params), reset_all=reset_all, names=names)


SOURCES = tuple(s.value for s in Source)


def source_filter(value: str | None) -> Source | None:
    if value is None:
        return None
    if value not in SOURCES:
        raise InvalidParameterValue(f"Invalid Source '{value}': use one of {', '.join(SOURCES)}.")
    return Source(value)


@dataclass(frozen=True)
class ParameterValue:
    """A parameter of a group as DescribeCacheParameters shows it: its definition, value and source."""

    parameter: Parameter
    value: str
    source: Source


@dataclass(frozen=True)
class GroupParameters:
    """A group's (or a family's default) parameters, as DescribeCacheParameters and
    DescribeEngineDefaultParameters list them."""

    family: str
    parameters: tuple[ParameterValue, ...]
    node_type_specific: tuple[NodeTypeSpecificParameter, ...] = field(default=())


# ---------------------------------------------------------------------------------------------
# Use cases
# ---------------------------------------------------------------------------------------------


class ParameterGroups(UseCases):
    """The parameter group family's use cases, and the lookups other families make when a cluster names a group."""

    def __init__(self, deps: Dependencies, *, builds: Builds | None = None) -> None:
        super().__init__(deps)
        self._builds = builds

    # ------------------------------------------------------------------ families and offers
    def families(self) -> tuple[str, ...]:
        """The families of the installed engines (catalogue order)."""
        installed = {r.family for r in self._catalog.releases()}
        return tuple(f for f in catalogue.FAMILIES if f in installed)

    def _check_family(self, family: str) -> str:
        if family not in self.families():
            raise InvalidParameterValue(
                f"Invalid CacheParameterGroupFamily '{family}': this Cachefleet runs the families of its installed "
                f"engines, {', '.join(self.families()) or 'none'}."
            )
        return family

    def _releases(self, family: str) -> list[EngineRelease]:
        return [r for r in self._catalog.releases() if r.family == family]

    def offered(self, family: str) -> frozenset[str]:
        """Names of the family's parameters that an installed build of it can honour."""
        names: set[str] = set()
        for release in self._releases(family):
            names |= offered_names(family, release, self._builds)
        return frozenset(names)

    def offered_for(self, release: EngineRelease) -> frozenset[str]:
        return offered_names(release.family, release, self._builds)

    # ------------------------------------------------------------------ lookups
    def get(self, region: Region, name: str) -> CacheParameterGroup:
        lowered = name.lower()
        for family in {r.family for r in self._catalog.releases()}:
            for cluster_on in (False, True):
                candidate = default_group(region, family, cluster_on=cluster_on)
                if lowered == candidate.name:
                    return candidate
        found = self._store.get(CacheParameterGroup, region, lowered)
        if found is None:
            raise NotFound(f"CacheParameterGroup not found: {name}", resource="CacheParameterGroup")
        return found

    def users(self, group: CacheParameterGroup) -> list[CacheCluster]:
        return sorted(
            (c for c in self._store.list(CacheCluster, group.region) if c.parameter_group_name == group.name),
            key=lambda c: c.cluster_id,
        )

    def resolve(
        self, region: Region, name: str | None, release: EngineRelease, *, cluster_mode: bool | None
    ) -> CacheParameterGroup:
        """The group a cluster of ``release`` is to use (the family's default when ``name`` is None).

        ``cluster_mode`` is what the request asks for (None: whatever the group says); a group
        of another family, or whose cluster-enabled disagrees, is refused.
        """
        if name is None:
            return default_group(region, release.family, cluster_on=bool(cluster_mode))
        group = self.get(region, name)
        if group.family != release.family:
            raise InvalidParameterCombination(
                f"Expected a parameter group of family {release.family} ({release.engine} {release.version}) but "
                f"found one of family {group.family}: {group.name}. Give a CacheParameterGroupName of family "
                f"{release.family}, or the EngineVersion that family {group.family} runs."
            )
        if cluster_mode is not None and group.cluster_enabled != cluster_mode:
            want = "enabled" if cluster_mode else "disabled"
            has = "yes" if group.cluster_enabled else "no"
            raise InvalidParameterCombination(
                f"Cache parameter group {group.name} has cluster-enabled {has}, but cluster mode {want} is asked for; "
                f"use a parameter group with cluster-enabled {'yes' if cluster_mode else 'no'}, such as "
                f"{default_group(region, release.family, cluster_on=cluster_mode).name}."
            )
        return group

    def static_defaults(self, region: Region, name: str) -> bool:
        """Whether the group leaves every static parameter at its default (a node started without
        parameters, such as a warm node, can then serve it at once)."""
        group = self.get(region, name)
        values = group.effective()
        defaults = effective_values(group.family, {}, cluster_on=group.cluster_on)
        return all(values.get(n) == defaults.get(n) for n in _static_defaults(group.family) if n != CLUSTER_ENABLED)

    def values_of(self, cluster: CacheCluster) -> dict[str, str]:
        """The parameter values a cluster's node is to run with (its group's)."""
        return cluster_values(self._store, cluster)

    def status_of(self, cluster: CacheCluster) -> tuple[ApplyStatus, tuple[str, ...]]:
        """ParameterApplyStatus of the cluster's node, and the static parameters waiting for its reboot."""
        node = self._store.get(CacheNodeParameters, cluster.region, cluster.cluster_id)
        family = family_name(cluster.engine, cluster.engine_version)
        return apply_status(family, self.values_of(cluster), node)

    # ------------------------------------------------------------------ create, modify, reset, delete
    def create(self, region: Region, request: CreateCacheParameterGroupRequest) -> CacheParameterGroup:
        self._check_family(request.family)
        if catalogue.is_default_group(request.name) or self._store.get(CacheParameterGroup, region, request.name):
            raise AlreadyExists(f"Parameter group {request.name} already exists.", resource="CacheParameterGroup")
        if len(self._store.list(CacheParameterGroup, region)) >= catalogue.PARAMETER_GROUP_QUOTA:
            raise QuotaExceeded(
                f"The quota of {catalogue.PARAMETER_GROUP_QUOTA} cache parameter groups per region is reached; "
                "delete unused ones first.",
                resource="CacheParameterGroup",
            )
        group = CacheParameterGroup(
            region=region, name=request.name, family=request.family, description=request.description,
            tags=request.tags, create_time=self._clock.now(),
        )
        with self._store.transaction() as tx:
            tx.put(group)
            self._event(tx, group, f"Cache parameter group {group.name} created (family {group.family})")
        return group

    def _custom(self, region: Region, name: str, *, action: str) -> CacheParameterGroup:
        group = self.get(region, name)
        if group.default:
            raise InvalidParameterValue(f"Cannot {action} a default parameter group ({group.name}); create your own instead.")
        return group

    def modify(self, region: Region, request: ModifyCacheParameterGroupRequest) -> CacheParameterGroup:
        group = self._custom(region, request.name, action="modify")
        in_use = bool(self.users(group))
        offered = self.offered(group.family)
        values = group.user_values
        for name, value in request.values:
            self._check_settable(group, name, value, offered, in_use=in_use)
            values[name] = catalogue.validate(group.family, name, value)
            other = catalogue.memory_switch(name)
            if other is not None:
                values.pop(other, None)
        updated = replace(group, values=tuple(sorted(values.items())))
        changes = ", ".join(f"{n}={v!r}" if v == "" else f"{n}={v}" for n, v in request.values)
        self._record_change(updated, f"Cache parameter group {group.name} modified: {changes}")
        return updated

    @staticmethod
    def _check_settable(group: CacheParameterGroup, name: str, value: str, offered: frozenset[str], *, in_use: bool) -> None:
        found = catalogue.check_modifiable(group.family, name, group_in_use=in_use)
        if name not in offered:
            raise InvalidParameterValue(
                f"Parameter {name} is not available on the installed {group.family} engine build(s): the engine "
                "lacks it or refuses to enable it, so Cachefleet does not offer it."
            )
        if found.effect is Effect.CONNECTIONS and value == "no":
            # A node that becomes a replica is always restarted as one here (the old primary is
            # fenced first), so its clients are always disconnected: "no" cannot be honoured.
            raise InvalidParameterCombination(
                f"Parameter {name} no cannot be honoured: a Cachefleet node that becomes a replica restarts, "
                "which disconnects its clients; keep close-on-replica-write yes."
            )

    def reset(self, region: Region, request: ResetCacheParameterGroupRequest) -> CacheParameterGroup:
        group = self._custom(region, request.name, action="reset")
        values = group.user_values
        in_use = bool(self.users(group))
        kept: list[str] = []
        if request.reset_all:
            # What can change only while no cluster uses the group (cluster-enabled, databases) stays.
            kept = sorted(n for n in values if in_use and catalogue.parameter(group.family, n).only_while_unused)
            values = {n: values[n] for n in kept}
        else:
            for name in request.names:
                if name == RESERVED_MEMORY and RESERVED_MEMORY not in values:
                    # ElastiCache's answer (the AWS provider for Terraform relies on it).
                    raise InvalidParameterValue(f"Parameter {name} doesn't exist.")
                found = catalogue.check_modifiable(group.family, name, group_in_use=in_use)
                values.pop(found.name, None)
        updated = replace(group, values=tuple(sorted(values.items())))
        what = "every parameter" if request.reset_all else ", ".join(request.names)
        if kept:
            what += f" but {', '.join(kept)} (modifiable only while no cluster uses the group)"
        self._record_change(updated, f"Cache parameter group {group.name} reset: {what}")
        return updated

    def _record_change(self, updated: CacheParameterGroup, message: str) -> None:
        with self._store.transaction() as tx:
            tx.put(updated)
            self._event(tx, updated, message)
        self._changed(updated)

    def delete(self, region: Region, name: str) -> None:
        group = self._custom(region, name, action="delete")
        users = [c.cluster_id for c in self.users(group)]
        if users:
            shown = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
            raise InvalidState(
                f"Cache parameter group {group.name} is in use by cache cluster(s) {shown}; move them to another "
                "parameter group or delete them first.",
                resource="CacheParameterGroup",
            )
        with self._store.transaction() as tx:
            tx.delete(group)
            self._event(tx, group, f"Cache parameter group {group.name} deleted")

    # ------------------------------------------------------------------ describe
    def describe(self, region: Region, name: str | None = None) -> list[CacheParameterGroup]:
        if name is not None:
            return [self.get(region, name)]
        groups = [default_group(region, f, cluster_on=on) for f in self.families() for on in (False, True)]
        groups += self._store.list(CacheParameterGroup, region)
        return sorted(groups, key=lambda g: g.name)

    def parameters(self, region: Region, name: str, source: Source | None = None) -> GroupParameters:
        """DescribeCacheParameters: the group's offered parameters with their values and sources."""
        group = self.get(region, name)
        return self._listed(group.family, group.user_values, cluster_on=group.cluster_on, source=source)

    def engine_defaults(self, family: str) -> GroupParameters:
        """DescribeEngineDefaultParameters of an installed family."""
        refuse_memcached({"CacheParameterGroupFamily": family}, operation="DescribeEngineDefaultParameters")
        return self._listed(self._check_family(family.lower()), {}, cluster_on=False, source=None)

    def _listed(self, family: str, user: Mapping[str, str], *, cluster_on: bool, source: Source | None) -> GroupParameters:
        offered = self.offered(family)
        values = effective_values(family, user, cluster_on=cluster_on)
        listed: list[ParameterValue] = []
        for found in catalogue.family_parameters(family, cluster_on):
            if found.name not in offered:
                continue
            if found.name == RESERVED_MEMORY_PERCENT and RESERVED_MEMORY in user:
                found = catalogue.parameter(family, RESERVED_MEMORY)
            origin = Source.USER if found.name in user else self._source(family, found, values)
            listed.append(ParameterValue(found, values[found.name], origin))
        listed.sort(key=lambda item: item.parameter.name)
        if source is not None:
            listed = [item for item in listed if item.source is source]
        specific = catalogue.node_type_specific_parameters(family) if source in (None, Source.SYSTEM) else ()
        return GroupParameters(family, tuple(listed), tuple(specific))

    def _source(self, family: str, found: Parameter, values: Mapping[str, str]) -> Source:
        """``engine-default`` when the value is the engine's own default (as the installed build
        reports it), ``system`` when ElastiCache sets another one."""
        if found.effect is not Effect.ENGINE or self._builds is None:
            return Source.SYSTEM
        setting = catalogue.engine_setting(family, found.name, values, node_type=_ANY_NODE_TYPE)
        if setting is None:
            return Source.SYSTEM
        for release in self._releases(family):
            build = self._builds.get((release.engine, release.version))
            if build is not None and build.settings.get(setting.name) == setting.value:
                return Source.ENGINE_DEFAULT
        return Source.SYSTEM
