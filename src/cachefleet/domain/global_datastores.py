"""Global Datastores: one replication group's data served in other regions of the same Cachefleet.

This module owns the ``GlobalReplicationGroup`` record (a primary member and up to two secondary
members, each a cluster mode disabled replication group of another region), its identifier
rules (ElastiCache's per-region prefix), ElastiCache's rules (node types, engine versions, one
member per region), and the use cases Create/Describe/Modify/Failover/Disassociate/
DeleteGlobalReplicationGroup, CreateReplicationGroup with GlobalReplicationGroupId (a secondary),
and Increase/Decrease/RebalanceSlots...InGlobalReplicationGroup (refused: cluster mode enabled
global datastores are not built).

A global datastore spans regions, so its record is stored under the pseudo region ``global``.
Each member group carries ``global_replication_group_id`` and ``global_role``, written in the same
transaction as the record, so that the group's own workflow knows whom its primary follows
(``upstream``) without another lookup.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, ClassVar

from cachefleet.domain import identifiers
from cachefleet.domain.backups import Prepared
from cachefleet.domain.cache_clusters import CacheCluster
from cachefleet.domain.engines import resolve_engine
from cachefleet.domain.errors import (
    AlreadyExists,
    CachefleetError,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidState,
)
from cachefleet.domain.events import event_for
from cachefleet.domain.identifiers import Region
from cachefleet.domain.ports import StateStore
from cachefleet.domain.replication_groups import (
    CreateReplicationGroupRequest,
    GroupChange,
    GroupStatus,
    GroupUseCases,
    ModifyReplicationGroupRequest,
    ReplicationGroups,
)
from cachefleet.domain.replication_groups import ReplicationGroup as Group
from cachefleet.domain.resource import Kind
from cachefleet.domain.security import SecurityRequest
from cachefleet.domain.tags import Tag, tags

GLOBAL_REGION = Region("global")  # the store's region of records that span regions
MAX_SECONDARIES = 2  # "a primary cluster ... to a secondary cluster in up to two other Regions"
PREFIX_LETTERS = 5  # ElastiCache's prefixes are five letters: "dsdfu" for us-west-1
# Families "in size large and above" that ElastiCache runs global datastores on.
SUPPORTED_FAMILIES = ("m5", "m6g", "m7g", "r5", "r6g", "r6gd", "r7g", "c7gn")
_SMALL_SIZES = ("nano", "micro", "small", "medium")
# The oldest builds with global datastores: Redis OSS 5.0.6, Valkey 7.2.
MINIMUM_VERSIONS = {"redis": (5, 0, 6), "valkey": (7, 2, 0)}
_SUFFIX = re.compile(r"^[a-z][a-z0-9-]*$")
MAX_ID_LENGTH = 40


class GlobalStatus(StrEnum):
    """A global datastore's status, as ElastiCache writes it."""

    CREATING = "creating"
    AVAILABLE = "available"
    PRIMARY_ONLY = "primary-only"  # no secondary yet (or any more)
    MODIFYING = "modifying"
    DELETING = "deleting"


class MemberRole(StrEnum):
    PRIMARY = "PRIMARY"
    SECONDARY = "SECONDARY"


class MemberStatus(StrEnum):
    """A membership's status, as ElastiCache writes it: a secondary is associating until its primary
    has the primary region's primary's data (the full sync done, the link up)."""

    ASSOCIATING = "associating"
    ASSOCIATED = "associated"


@dataclass(frozen=True)
class GlobalMember:
    """One member: a replication group of one region, its role and the status of its membership."""

    region: Region
    replication_group_id: str
    role: MemberRole
    status: MemberStatus = MemberStatus.ASSOCIATED


@dataclass(frozen=True)
class GlobalReplicationGroup:
    """A global datastore: its settings (those of every member) and its members."""

    KIND: ClassVar[Kind] = Kind(
        name="GlobalReplicationGroup", noun="Global replication group", not_found="GlobalReplicationGroupNotFoundFault",
        arn_type="globalreplicationgroup", already_exists="GlobalReplicationGroupAlreadyExistsFault",
        invalid_state="InvalidGlobalReplicationGroupStateFault", taggable=True, store_region=GLOBAL_REGION,
    )

    region: Region  # always GLOBAL_REGION
    global_id: str
    description: str
    status: GlobalStatus
    engine: str
    engine_version: str
    node_type: str
    members: tuple[GlobalMember, ...]
    create_time: dt.datetime
    cluster_enabled: bool = False
    auth_token_enabled: bool = False
    transit_encryption: bool = False
    at_rest_encryption: bool = False
    failover_to: GlobalMember | None = None  # a planned failover asked for and not done yet
    tags: tuple[Tag, ...] = ()

    @property
    def key(self) -> str:
        return self.global_id

    @property
    def primary(self) -> GlobalMember:
        return next(m for m in self.members if m.role == MemberRole.PRIMARY)

    @property
    def secondaries(self) -> tuple[GlobalMember, ...]:
        return tuple(m for m in self.members if m.role == MemberRole.SECONDARY)

    def member(self, region: str, group_id: str) -> GlobalMember | None:
        for member in self.members:
            if (member.region, member.replication_group_id) == (region, group_id.lower()):
                return member
        return None

    def in_region(self, region: str) -> GlobalMember | None:
        return next((m for m in self.members if m.region == region), None)

    def settled_status(self) -> GlobalStatus:
        return GlobalStatus.AVAILABLE if self.secondaries else GlobalStatus.PRIMARY_ONLY


# ---------------------------------------------------------------------- rules
def id_prefix(region: str, *, account: str | None = None) -> str:
    """ElastiCache prefixes a global datastore's id with letters of its primary's region; here they
    are derived from the account (this server's by default) and the region, so one server always
    gives the same prefix."""
    digest = hashlib.sha256(f"{account or identifiers.account_id()}:{region}".encode()).digest()
    return "".join(chr(ord("a") + byte % 26) for byte in digest[:PREFIX_LETTERS])


def global_id(region: str, suffix: str) -> str:
    text = str(suffix).lower()
    if not _SUFFIX.match(text) or text.endswith("-") or "--" in text:
        raise InvalidParameterValue(
            f"Invalid GlobalReplicationGroupIdSuffix '{suffix}': it must begin with a letter and contain only "
            "letters, digits and single hyphens, and not end with a hyphen."
        )
    full = f"{id_prefix(region)}-{text}"
    if len(full) > MAX_ID_LENGTH:
        raise InvalidParameterValue(
            f"Invalid GlobalReplicationGroupIdSuffix '{suffix}': with its prefix the id {full} is longer than "
            f"{MAX_ID_LENGTH} characters."
        )
    return full


def check_node_type(node_type: str) -> None:
    parts = node_type.split(".")
    family, size = (parts[1], parts[2]) if len(parts) == 3 else ("", "")
    if family not in SUPPORTED_FAMILIES or size in _SMALL_SIZES:
        raise InvalidParameterValue(
            f"Global datastores are not supported on node type {node_type}: use a node type of the families "
            f"{', '.join(SUPPORTED_FAMILIES)} in size large and above (for example cache.r6g.large)."
        )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def check_engine(engine: str, version: str) -> None:
    minimum = MINIMUM_VERSIONS.get(engine)
    if minimum is None or _version(version) < minimum:
        needed = ", ".join(f"{e} {'.'.join(map(str, v))}" for e, v in MINIMUM_VERSIONS.items())
        raise InvalidParameterValue(
            f"Global datastores need {needed} or later; replication group runs {engine} {version}."
        )


def refuse_cluster_mode(operation: str) -> InvalidParameterValue:
    return InvalidParameterValue(
        f"{operation}: Cachefleet's global datastores replicate cluster mode disabled replication groups only "
        "(the engine refuses REPLICAOF in cluster mode, and shard-by-shard cross-region replication is not built "
        "yet); a cluster mode enabled group cannot be a member, so there are no node groups to change."
    )


def upstream(store: StateStore, group: Group) -> CacheCluster | None:
    """The node a secondary group's primary follows: the primary node of its global datastore's
    primary group (None for any other group, or while that node has no record)."""
    if group.global_replication_group_id is None or group.global_role != MemberRole.SECONDARY:
        return None
    record = store.get(GlobalReplicationGroup, GLOBAL_REGION, group.global_replication_group_id)
    if record is None:
        return None
    primary = record.primary
    primary_group = store.get(Group, primary.region, primary.replication_group_id)
    if primary_group is None:
        return None
    return store.get(CacheCluster, primary.region, primary_group.node_groups[0].primary_cluster_id)


def joining(store: StateStore, group: Group) -> GlobalReplicationGroup | None:
    """The global datastore ``group`` is joining: its record while ``group`` is an associating member."""
    if group.global_replication_group_id is None:
        return None
    record = store.get(GlobalReplicationGroup, GLOBAL_REGION, group.global_replication_group_id)
    member = record.member(group.region, group.group_id) if record is not None else None
    return record if member is not None and member.status == MemberStatus.ASSOCIATING else None


def associated(record: GlobalReplicationGroup, region: str, group_id: str) -> GlobalReplicationGroup:
    """The record once the member ``group_id`` of ``region`` has the primary region's data."""
    return replace(record, members=tuple(
        replace(m, status=MemberStatus.ASSOCIATED) if (m.region, m.replication_group_id) == (region, group_id) else m
        for m in record.members
    ))


def secondaries_of(store: StateStore, group: Group) -> list[Group]:
    """The secondary groups following ``group`` (none unless it is a global datastore's primary)."""
    if group.global_replication_group_id is None or group.global_role != MemberRole.PRIMARY:
        return []
    record = store.get(GlobalReplicationGroup, GLOBAL_REGION, group.global_replication_group_id)
    found = []
    for member in record.secondaries if record is not None else ():
        secondary = store.get(Group, member.region, member.replication_group_id)
        if secondary is not None:
            found.append(secondary)
    return found


def failed_over(store: StateStore, record: GlobalReplicationGroup) -> tuple[GlobalReplicationGroup, list[Group]]:
    """A planned failover's decisive step, once the new primary has every write: the record and the
    member groups with their roles swapped (written in one transaction by the control plane)."""
    assert record.failover_to is not None
    new = record.failover_to

    def role(member: GlobalMember) -> MemberRole:
        if (member.region, member.replication_group_id) == (new.region, new.replication_group_id):
            return MemberRole.PRIMARY
        return MemberRole.SECONDARY

    updated = replace(record, failover_to=None, members=tuple(replace(m, role=role(m)) for m in record.members))
    updated = replace(updated, status=updated.settled_status())
    groups = []
    for member in updated.members:
        group = store.get(Group, member.region, member.replication_group_id)
        if group is not None:
            groups.append(replace(group, global_role=member.role.value))
    return updated, groups


def called_off(record: GlobalReplicationGroup) -> GlobalReplicationGroup:
    """A planned failover that could not finish: nothing changed, the record is settled again."""
    return replace(record, status=record.settled_status(), failover_to=None)


# ---------------------------------------------------------------------- requests
@dataclass(frozen=True)
class ModifyGlobalRequest:
    """ModifyGlobalReplicationGroup, checked."""

    global_id: str
    node_type: str | None = None
    engine: str | None = None
    engine_version: str | None = None
    parameter_group_name: str | None = None
    description: str | None = None
    automatic_failover: bool | None = None

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ModifyGlobalRequest:
        if not params.get("ApplyImmediately"):
            raise InvalidParameterValue(
                "ApplyImmediately must be true: modifications of a global datastore are applied at once to every "
                "member, never in a maintenance window."
            )
        if params.get("CacheParameterGroupName") == "":
            # terraform-provider-aws's major-version update sends the parameter group it has, maybe none.
            params = {k: v for k, v in params.items() if k != "CacheParameterGroupName"}
        changes = [m for m in ("CacheNodeType", "EngineVersion", "CacheParameterGroupName") if m in params]
        # A major version upgrade may name the new version's parameter group with it.
        if len(changes) > 1 and set(changes) != {"EngineVersion", "CacheParameterGroupName"}:
            raise InvalidParameterCombination(
                f"Change one of CacheNodeType, EngineVersion and CacheParameterGroupName at a time (an EngineVersion "
                f"upgrade may name its CacheParameterGroupName); this request gives {', '.join(changes)}."
            )
        if "Engine" in params and "EngineVersion" not in params:
            raise InvalidParameterCombination("Engine is given with EngineVersion only (an engine change is an upgrade).")
        node_type = params.get("CacheNodeType")
        if node_type is not None:
            check_node_type(node_type)
        return cls(
            global_id=str(params["GlobalReplicationGroupId"]).lower(),
            node_type=node_type,
            engine=str(params["Engine"]).lower() if "Engine" in params else None,
            engine_version=params.get("EngineVersion"),
            parameter_group_name=params.get("CacheParameterGroupName"),
            description=params.get("GlobalReplicationGroupDescription"),
            automatic_failover=params.get("AutomaticFailoverEnabled"),
        )


# What a secondary takes from its global datastore: the request may repeat it, not change it.
_INHERITED = ("Engine", "EngineVersion", "CacheNodeType", "Port")
_SHARD_MEMBERS = ("NumNodeGroups", "NodeGroupConfiguration")


# ---------------------------------------------------------------------- use cases
class GlobalDatastores(GroupUseCases):
    """The global datastore operations; member groups change through their own use cases."""

    def __init__(self, deps: Any, *, groups: ReplicationGroups) -> None:
        super().__init__(deps)
        self._groups = groups

    def _global(self, global_id: str) -> GlobalReplicationGroup:
        return self._get(GlobalReplicationGroup, GLOBAL_REGION, str(global_id))

    @staticmethod
    def _require_settled(record: GlobalReplicationGroup, *, action: str) -> None:
        if record.status not in (GlobalStatus.AVAILABLE, GlobalStatus.PRIMARY_ONLY):
            raise InvalidState(
                f"Global replication group {record.global_id} is {record.status}; it can be {action} once it is "
                "available.",
                resource="GlobalReplicationGroup",
            )

    def _event(self, tx: Any, resource: Any, message: str) -> None:
        tx.add_event(event_for(resource, message, self._clock.now()))

    # ------------------------------------------------------------------ create
    def create(
        self, region: Region, *, suffix: str, primary_group_id: str, description: str = "",
        raw_tags: Sequence[Mapping[str, Any]] = (),
    ) -> GlobalReplicationGroup:
        full_id = global_id(region, suffix)
        given_tags = tags(raw_tags)
        group = self._group(region, primary_group_id)
        if self._store.get(GlobalReplicationGroup, GLOBAL_REGION, full_id) is not None:
            raise AlreadyExists(f"Global replication group {full_id} already exists.", resource="GlobalReplicationGroup")
        if group.cluster_enabled:
            raise refuse_cluster_mode("CreateGlobalReplicationGroup")
        if group.status != GroupStatus.AVAILABLE:
            raise InvalidState(
                f"Replication group {group.group_id} is {group.status}; it can become a global datastore's primary "
                "once it is available.",
                resource="ReplicationGroup",
            )
        if group.global_replication_group_id is not None:
            raise InvalidState(
                f"Replication group {group.group_id} is already a member of global replication group "
                f"{group.global_replication_group_id}.",
                resource="ReplicationGroup",
            )
        check_node_type(group.node_type)
        check_engine(group.engine, group.engine_version)
        record = GlobalReplicationGroup(
            region=GLOBAL_REGION, global_id=full_id, description=description, status=GlobalStatus.PRIMARY_ONLY,
            engine=group.engine, engine_version=group.engine_version, node_type=group.node_type,
            members=(GlobalMember(region, group.group_id, MemberRole.PRIMARY),), create_time=self._clock.now(),
            auth_token_enabled=group.security.auth_token_enabled, transit_encryption=group.security.transit_encryption,
            at_rest_encryption=group.at_rest_encryption, tags=given_tags,
        )
        updated = replace(group, global_replication_group_id=full_id, global_role=MemberRole.PRIMARY.value)
        with self._store.transaction() as tx:
            tx.put(record)
            tx.put(updated)
            self._event(tx, updated, f"Replication group {group.group_id} is the primary of global replication group {full_id}")
        self._changed(updated)
        return record

    def create_secondary(self, region: Region, request: CreateReplicationGroupRequest, params: Mapping[str, Any]) -> Group:
        """CreateReplicationGroup with GlobalReplicationGroupId: a new group of this region whose primary
        follows the global datastore's primary; it takes engine, version, node type and shape from it."""
        assert request.global_replication_group_id is not None
        record = self._global(request.global_replication_group_id)
        self._require_settled(record, action="given a secondary")
        if record.in_region(region) is not None:
            held = record.in_region(region)
            assert held is not None
            raise InvalidParameterValue(
                f"Global replication group {record.global_id} already has a member in {region} "
                f"({held.replication_group_id}); a global datastore has one member per region."
            )
        if len(record.secondaries) >= MAX_SECONDARIES:
            raise InvalidParameterValue(
                f"Global replication group {record.global_id} already has {MAX_SECONDARIES} secondary replication "
                "groups, the most it can have."
            )
        primary = record.primary
        primary_group = self._store.get(Group, primary.region, primary.replication_group_id)
        if primary_group is None or primary_group.status != GroupStatus.AVAILABLE:
            raise InvalidState(
                f"The primary replication group {primary.replication_group_id} of {record.global_id} is not available.",
                resource="GlobalReplicationGroup",
            )
        if request.cluster_mode or any(m in params for m in _SHARD_MEMBERS):
            raise InvalidParameterCombination(
                "A secondary replication group takes its shape from the global datastore's primary (cluster mode "
                "disabled); omit NumNodeGroups, NodeGroupConfiguration and ClusterMode enabled."
            )
        for member in ("PrimaryClusterId", "SnapshotName", "SnapshotArns"):
            if params.get(member):
                raise InvalidParameterCombination(
                    f"{member} cannot be given with GlobalReplicationGroupId: a secondary replication group gets its "
                    "data from the global datastore's primary."
                )
        inherited = {"Engine": primary_group.engine, "EngineVersion": primary_group.engine_version,
                     "CacheNodeType": primary_group.node_type, "Port": primary_group.port}
        for member in _INHERITED:
            given = params.get(member)
            if given is None:
                continue
            wanted = str(inherited[member]).lower()
            same = str(given).lower() == wanted or (member == "EngineVersion" and wanted.startswith(str(given) + "."))
            if not same:
                raise InvalidParameterCombination(
                    f"{member} {given} differs from global replication group {record.global_id} ({inherited[member]}); "
                    f"a secondary replication group takes it from the primary: omit {member}."
                )
        automatic = primary_group.automatic_failover == "enabled"
        if request.automatic_failover is not None and request.automatic_failover != automatic:
            raise InvalidParameterCombination(
                f"AutomaticFailoverEnabled differs from the primary replication group {primary_group.group_id} "
                f"(automatic failover {primary_group.automatic_failover}); a secondary inherits it: omit it."
            )
        secondary = replace(
            request, engine=primary_group.engine, engine_version=primary_group.engine_version,
            node_type=primary_group.node_type, port=primary_group.port, automatic_failover=automatic,
            multi_az=primary_group.multi_az == "enabled",
            security=self._inherited_encryption(record, primary_group, request, params),
            at_rest_encryption=primary_group.at_rest_encryption,
        )
        joining_member = GlobalMember(region, request.group_id, MemberRole.SECONDARY, MemberStatus.ASSOCIATING)
        joined = replace(record, members=(*record.members, joining_member), status=GlobalStatus.AVAILABLE)
        return self._groups.create(region, secondary, extra=Prepared(records=(joined,)))

    @staticmethod
    def _inherited_encryption(
        record: GlobalReplicationGroup, primary_group: Group, request: CreateReplicationGroupRequest,
        params: Mapping[str, Any],
    ) -> SecurityRequest:
        """A secondary takes in-transit and at-rest encryption from the primary (its primary replicates
        from the primary's over the same protocol); a request that asks otherwise is refused. Its
        AUTH token or user groups are its own: its clients' locks, not the replication's."""
        mode = primary_group.security.transit_encryption_mode
        have = {
            "TransitEncryptionEnabled": mode is not None,
            "TransitEncryptionMode": mode.value if mode is not None else None,
            "AtRestEncryptionEnabled": primary_group.at_rest_encryption,
        }
        for member, inherited in have.items():
            given = params.get(member)
            if given is None:
                continue
            same = str(given).lower() == str(inherited).lower() if member == "TransitEncryptionMode" else bool(given) == inherited
            if not same:
                raise InvalidParameterCombination(
                    f"{member} {str(given).lower()} differs from the primary replication group {primary_group.group_id} "
                    f"of {record.global_id} ({member} {str(inherited).lower()}); a secondary replication group takes "
                    f"it from the primary: omit {member}."
                )
        return request.security.inheriting(mode)

    # ------------------------------------------------------------------ describe
    def describe(self, global_id: str | None = None) -> list[GlobalReplicationGroup]:
        if global_id is not None:
            return [self._global(global_id)]
        return sorted(self._store.list(GlobalReplicationGroup, GLOBAL_REGION), key=lambda r: r.global_id)

    def member_groups(self, record: GlobalReplicationGroup) -> dict[tuple[str, str], Group]:
        found: dict[tuple[str, str], Group] = {}
        for member in record.members:
            group = self._store.get(Group, member.region, member.replication_group_id)
            if group is not None:
                found[(member.region, member.replication_group_id)] = group
        return found

    # ------------------------------------------------------------------ modify
    def modify(self, request: ModifyGlobalRequest) -> GlobalReplicationGroup:
        """All or nothing: every member's change is decided (and may be refused) before any is written,
        then the members and the record are written in one transaction."""
        record = self._global(request.global_id)
        self._require_settled(record, action="modified")
        groups = self.member_groups(record)
        for member in record.members:
            group = groups.get((member.region, member.replication_group_id))
            if group is None or group.status != GroupStatus.AVAILABLE:
                raise InvalidState(
                    f"Member {member.replication_group_id} ({member.region}) of global replication group "
                    f"{record.global_id} is {group.status if group else 'missing'}; modify once every member is "
                    "available.",
                    resource="GlobalReplicationGroup",
                )
            if request.automatic_failover and any(not ng.replica_cluster_ids for ng in group.node_groups):
                raise InvalidParameterCombination(
                    f"AutomaticFailoverEnabled needs a replica in every member: {group.group_id} ({member.region}) "
                    "has none."
                )
        if request.engine_version is not None:
            check_engine(request.engine or record.engine, request.engine_version)
        member_request = ModifyReplicationGroupRequest(
            group_id="", node_type=request.node_type, engine=request.engine if request.engine_version else None,
            engine_version=request.engine_version, parameter_group_name=request.parameter_group_name,
            automatic_failover=request.automatic_failover, apply_immediately=True,
        )
        touched = any(v is not None for v in (request.node_type, request.engine_version, request.parameter_group_name,
                                               request.automatic_failover))
        planned: dict[GlobalMember, GroupChange] = {}
        for member in record.members if touched else ():
            try:
                change = self._groups.plan_modify(member.region, replace(member_request, group_id=member.replication_group_id))
            except CachefleetError as refused:
                raise type(refused)(
                    f"{refused.message} Member {member.replication_group_id} ({member.region}) of global replication "
                    f"group {record.global_id} refused the change; no member was changed.",
                    resource=refused.resource,
                ) from refused
            planned[member] = change
        changes: dict[str, Any] = {}
        if request.description is not None:
            changes["description"] = request.description
        if request.node_type is not None:
            changes["node_type"] = request.node_type
        if request.engine_version is not None:
            # The build the members are upgraded to (their own records change once each upgrade is done).
            target = resolve_engine(self._catalog.releases(), request.engine or record.engine, request.engine_version)
            changes.update(engine=target.engine, engine_version=target.version)
        updated = replace(record, **changes)
        self._groups.apply(list(planned.values()), records=(updated,) if updated != record else ())
        return updated

    # ------------------------------------------------------------------ failover
    def failover(self, global_id: str, *, primary_region: str, primary_group_id: str) -> GlobalReplicationGroup:
        record = self._global(global_id)
        self._require_settled(record, action="failed over")
        member = self._member(record, primary_region, primary_group_id, "is not a member of global replication group")
        if member.role == MemberRole.PRIMARY:
            raise InvalidParameterValue(
                f"Replication group {primary_group_id} in {primary_region} is already the primary of global replication "
                f"group {record.global_id}."
            )
        for one in (record.primary, member):
            group = self._store.get(Group, one.region, one.replication_group_id)
            if group is None or group.status != GroupStatus.AVAILABLE:
                raise InvalidState(
                    f"Member {one.replication_group_id} ({one.region}) of global replication group {record.global_id} "
                    "is not available; fail over once both members are.",
                    resource="GlobalReplicationGroup",
                )
        updated = replace(record, status=GlobalStatus.MODIFYING, failover_to=member)
        with self._store.transaction() as tx:
            tx.put(updated)
        self._changed(updated)
        return updated

    # ------------------------------------------------------------------ disassociate, delete
    def disassociate(self, global_id: str, *, group_id: str, region: str) -> GlobalReplicationGroup:
        record = self._global(global_id)
        self._require_settled(record, action="changed")
        # terraform-provider-aws's disassociateReplicationGroup treats this wording as done.
        member = self._member(record, region, group_id, "is not associated with Global Replication Group")
        if member.role == MemberRole.PRIMARY:
            raise InvalidParameterValue(
                f"Replication group {group_id} is the primary of global replication group {record.global_id}; only a "
                "secondary can be disassociated (fail over first, or delete the global datastore)."
            )
        members = tuple(m for m in record.members if m != member)
        updated = replace(record, members=members)
        updated = replace(updated, status=updated.settled_status())
        group = self._store.get(Group, member.region, member.replication_group_id)
        with self._store.transaction() as tx:
            tx.put(updated)
            if group is not None:
                standalone = replace(group, global_replication_group_id=None, global_role=None)
                tx.put(standalone)
                self._event(tx, standalone, f"Replication group {group.group_id} left global replication group "
                                            f"{record.global_id}; it is a standalone, writable group now")
        if group is not None:
            self._changed(group)
        return updated

    @staticmethod
    def _member(record: GlobalReplicationGroup, region: str, group_id: str, wording: str) -> GlobalMember:
        """The member ``group_id`` in ``region``; refused with ``wording`` (each caller's own sentence) if missing."""
        member = record.member(region, group_id)
        if member is None:
            raise InvalidParameterValue(f"Replication group {group_id} in {region} {wording} {record.global_id}.")
        return member

    def delete(self, global_id: str, *, retain_primary: bool) -> GlobalReplicationGroup:
        record = self._global(global_id)
        self._require_settled(record, action="deleted")
        if record.secondaries:
            raise InvalidState(
                f"Global replication group {record.global_id} still has secondary replication groups "
                f"({', '.join(m.replication_group_id for m in record.secondaries)}); disassociate them first.",
                resource="GlobalReplicationGroup",
            )
        primary = record.primary
        group = self._store.get(Group, primary.region, primary.replication_group_id)
        if group is not None and not retain_primary and group.status != GroupStatus.AVAILABLE:
            raise InvalidState(
                f"Replication group {group.group_id} is {group.status}; the global datastore can be deleted with it once "
                "it is available (or with RetainPrimaryReplicationGroup).",
                resource="GlobalReplicationGroup",
            )
        deleting = replace(record, status=GlobalStatus.DELETING)
        with self._store.transaction() as tx:
            tx.delete(record)
            if group is not None:
                left = replace(group, global_replication_group_id=None, global_role=None)
                tx.put(left)
                self._event(tx, left, f"Global replication group {record.global_id} deleted")
        if group is not None and not retain_primary:
            self._groups.delete(primary.region, group.group_id)
        return deleting

    def refuse_shards(self, global_id: str, operation: str) -> None:
        """Increase/Decrease/RebalanceSlots...: the global datastore must exist; it has no shards to change."""
        self._global(global_id)
        raise refuse_cluster_mode(operation)

