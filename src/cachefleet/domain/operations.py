"""Operation records: the work the reconciler is doing on a resource, and how far it got.

A use case that asks for work (create a group, reshard it, scale its node type, fail it over,
add or remove members) writes an :class:`Operation` in the same transaction as the resource's
transitional status. The reconciler reads the operation, records each step it reaches, and
deletes the operation when the work is done; a restarted control plane resumes from it.

Every operation has a deadline. A workflow that makes progress moves it forward
(:func:`progressed`); once it has passed, the reconciler ends the operation in a failed state
with an event saying why, instead of retrying for ever.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import ClassVar

from cachefleet.domain.resource import Kind, Resource


class OperationKind(StrEnum):
    """The kinds of work an operation record can stand for."""

    CREATE = "create"  # a new replication group or cache cluster, until it is available
    MODIFY = "modify"  # members joining or leaving (replica counts, CreateCacheCluster in a group)
    RESHARD = "reshard"  # ModifyReplicationGroupShardConfiguration
    NODE_TYPE = "node-type"  # vertical scaling
    FAILOVER = "failover"  # a planned failover (TestFailover, reboot of a primary, switchover)
    UPGRADE = "upgrade"  # a rolling replacement of nodes: engine upgrade, service update, static parameters
    ACCESS = "access"  # AUTH token, user groups or in-transit encryption reaching every node
    SNAPSHOT = "snapshot"  # a snapshot's files being written, copied, exported or deleted (on the Snapshot)


# How long an operation may go without progress before it is failed.
ALLOWANCE: dict[OperationKind, dt.timedelta] = {
    OperationKind.CREATE: dt.timedelta(minutes=10),
    OperationKind.MODIFY: dt.timedelta(minutes=30),
    OperationKind.RESHARD: dt.timedelta(minutes=10),
    OperationKind.NODE_TYPE: dt.timedelta(minutes=10),
    OperationKind.FAILOVER: dt.timedelta(minutes=2),
    # Per node replaced: a full sync of a large data set takes a while.
    OperationKind.UPGRADE: dt.timedelta(minutes=15),
    OperationKind.ACCESS: dt.timedelta(minutes=5),
    OperationKind.SNAPSHOT: dt.timedelta(minutes=30),
}


@dataclass(frozen=True)
class Resharding:
    """An online slot migration's plan (ModifyReplicationGroupShardConfiguration).

    ``target_slots`` is where every slot must end up; node groups in ``removing`` are
    stopped once they own no slot. Progress is derived from the node groups' slots.
    """

    target_slots: tuple[tuple[str, str], ...]  # (node group id, slot ranges)
    total_slots: int
    removing: tuple[str, ...] = ()
    adding: tuple[str, ...] = ()


class FailoverKind(StrEnum):
    """Why a planned failover was asked for."""

    TEST = "test"  # TestFailover
    REBOOT = "reboot"  # RebootCacheCluster of a primary
    SWITCHOVER = "switchover"  # ModifyReplicationGroup PrimaryClusterId
    UPGRADE = "upgrade"  # every replica of the shard runs the new build: one of them takes over


@dataclass(frozen=True)
class FailoverRequest:
    """A planned failover the reconciler is asked to carry out (one at a time per group)."""

    node_group_id: str
    kind: FailoverKind
    target_cluster_id: str | None = None


class UpgradeReason(StrEnum):
    """Why a group's or cluster's nodes are being replaced one by one."""

    ENGINE_UPGRADE = "engine-upgrade"  # ModifyReplicationGroup / ModifyCacheCluster EngineVersion (or Engine)
    SERVICE_UPDATE = "service-update"  # BatchApplyUpdateAction, or AutoMinorVersionUpgrade in the window
    STATIC_PARAMETERS = "static-parameters"  # the maintenance window restarts nodes waiting for a reboot


@dataclass(frozen=True)
class EngineUpgrade:
    """A rolling replacement's plan and where it is (an UPGRADE operation).

    Every node not yet on the target build (or, with ``restart_pending_reboot``, waiting for a
    reboot to take static parameters) is replaced in turn. ``replacing`` is the node being
    replaced now and ``replacing_pid`` the process it had when it was stopped, so that after a
    control-plane crash an adopted process that predates the replacement is recognised.
    """

    engine: str
    engine_version: str
    parameter_group_name: str  # the parameter group every node runs with afterwards
    reason: UpgradeReason = UpgradeReason.ENGINE_UPGRADE
    service_update: str | None = None
    initiated_by: str = "customer"  # "customer" or "system" (ElastiCache's NodeUpdateInitiatedBy)
    maintenance: bool = False  # started by the maintenance window
    restart_pending_reboot: bool = False
    replacing: str | None = None
    replacing_pid: int | None = None
    in_place: bool = False  # a node without replicas restarts on its own saved data
    stopping: bool = False  # BatchStopUpdateAction: end once the node in progress is done


@dataclass(frozen=True)
class AccessChange:
    """What a ModifyReplicationGroup changes of a group's locks, while it reaches the nodes
    (Describe shows it as PendingModifiedValues; the workflow's event says it is done)."""

    auth_token_status: str | None = None  # "ROTATING" or "SETTING" (PendingModifiedValues.AuthTokenStatus)
    user_groups_to_add: tuple[str, ...] = ()
    user_groups_to_remove: tuple[str, ...] = ()
    transit_encryption_enabled: bool | None = None
    transit_encryption_mode: str | None = None
    done: str = ""  # the event recorded once every node has it, e.g. "AUTH token rotated: ..."


@dataclass(frozen=True)
class Operation:
    """Work in progress on one resource: one record per (resource, kind of work)."""

    KIND: ClassVar[Kind] = Kind(name="Operation", noun="Operation", not_found="InvalidParameterValue")

    region: str
    resource_kind: str  # the Kind name of the resource worked on, e.g. "ReplicationGroup"
    resource_id: str
    kind: OperationKind
    step: str
    started: dt.datetime
    deadline: dt.datetime
    resharding: Resharding | None = None
    node_type: str | None = None
    failover: FailoverRequest | None = None
    upgrade: EngineUpgrade | None = None
    access: AccessChange | None = None

    @property
    def key(self) -> str:
        return operation_key(self.resource_kind, self.resource_id, self.kind)


def operation_key(resource_kind: str, resource_id: str, kind: OperationKind) -> str:
    return f"{resource_kind}/{resource_id}/{kind.value}"


def begin(
    resource: Resource,
    kind: OperationKind,
    *,
    now: dt.datetime,
    resharding: Resharding | None = None,
    node_type: str | None = None,
    failover: FailoverRequest | None = None,
    upgrade: EngineUpgrade | None = None,
    access: AccessChange | None = None,
) -> Operation:
    """A new operation on ``resource``, due within its kind's allowance."""
    return Operation(
        region=resource.region,
        resource_kind=resource.KIND.name,
        resource_id=resource.key,
        kind=kind,
        step="requested",
        started=now,
        deadline=now + ALLOWANCE[kind],
        resharding=resharding,
        node_type=node_type,
        failover=failover,
        upgrade=upgrade,
        access=access,
    )


def progressed(operation: Operation, step: str, *, now: dt.datetime) -> Operation:
    """The operation at ``step``, with its deadline moved forward: it is making progress."""
    return replace(operation, step=step, deadline=now + ALLOWANCE[operation.kind])


def overdue(operation: Operation, now: dt.datetime) -> bool:
    return now > operation.deadline
