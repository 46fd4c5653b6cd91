"""ElastiCache's nouns as frozen dataclasses, with status values that are the AWS strings.

These records are the desired state the API writes and the reconciler works towards. A
record changes only by being replaced (``dataclasses.replace``) inside a store transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType

Region = NewType("Region", str)


class GroupStatus(StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    MODIFYING = "modifying"
    DELETING = "deleting"
    CREATE_FAILED = "create-failed"
    SNAPSHOTTING = "snapshotting"


class ClusterStatus(StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    MODIFYING = "modifying"
    DELETING = "deleting"
    CREATE_FAILED = "create-failed"
    REBOOTING = "rebooting cache cluster nodes"
    SNAPSHOTTING = "snapshotting"


class NodeStatus(StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    REBOOTING = "rebooting"
    DELETING = "deleting"


class Role(StrEnum):
    PRIMARY = "primary"
    REPLICA = "replica"


class EventSourceType(StrEnum):
    CACHE_CLUSTER = "cache-cluster"
    CACHE_PARAMETER_GROUP = "cache-parameter-group"
    CACHE_SECURITY_GROUP = "cache-security-group"
    CACHE_SUBNET_GROUP = "cache-subnet-group"
    REPLICATION_GROUP = "replication-group"
    SERVERLESS_CACHE = "serverless-cache"
    SERVERLESS_CACHE_SNAPSHOT = "serverless-cache-snapshot"
    USER = "user"
    USER_GROUP = "user-group"


@dataclass(frozen=True)
class Tag:
    key: str
    value: str


@dataclass(frozen=True)
class EngineRelease:
    """An engine build installed on this machine."""

    engine: str  # "valkey" | "redis"
    version: str  # full version as the binary reports it, e.g. "8.1.8"
    family: str  # parameter group family, e.g. "valkey8"
    description: str

    @property
    def major_minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


@dataclass(frozen=True)
class LogDelivery:
    """Where a replication group's slow log or engine log goes (LogDeliveryConfigurations)."""

    log_type: str  # slow-log | engine-log
    destination_type: str  # cloudwatch-logs | kinesis-firehose
    destination: str  # the log group, or the delivery stream
    log_format: str  # text | json
    status: str = "active"


@dataclass(frozen=True)
class CacheNode:
    node_id: str  # "0001", as ElastiCache numbers nodes within a cluster
    address: str
    port: int
    availability_zone: str
    status: NodeStatus
    create_time: dt.datetime


@dataclass(frozen=True)
class CacheCluster:
    region: Region
    cluster_id: str
    status: ClusterStatus
    engine: str
    engine_version: str
    node_type: str
    port: int
    availability_zone: str
    subnet_group_name: str
    parameter_group_name: str
    node: CacheNode
    create_time: dt.datetime
    replication_group_id: str | None = None
    node_group_id: str | None = None
    preferred_maintenance_window: str = "sun:05:00-sun:06:00"
    auto_minor_version_upgrade: bool = True
    snapshot_retention_limit: int = 0
    snapshot_window: str = "05:00-06:00"
    tags: tuple[Tag, ...] = ()
    status_reason: str = ""

    @property
    def key(self) -> str:
        return self.cluster_id


@dataclass(frozen=True)
class NodeGroup:
    """A shard: one primary and its replicas. Cluster mode disabled has exactly one, "0001"."""

    node_group_id: str
    primary_cluster_id: str
    member_cluster_ids: tuple[str, ...]
    primary_endpoint: str | None = None
    reader_endpoint: str | None = None
    slots: str = ""

    @property
    def replica_cluster_ids(self) -> tuple[str, ...]:
        return tuple(cid for cid in self.member_cluster_ids if cid != self.primary_cluster_id)


@dataclass(frozen=True)
class Resharding:
    """An online slot migration in progress (ModifyReplicationGroupShardConfiguration).

    ``target_slots`` is where every slot must end up; node groups in ``removing`` are
    stopped once they own no slot. Progress is derived from the node groups' slots.
    """

    target_slots: tuple[tuple[str, str], ...]  # (node group id, slot ranges)
    total_slots: int
    removing: tuple[str, ...] = ()

    def target_of(self, node_group_id: str) -> str:
        return dict(self.target_slots).get(node_group_id, "")


class FailoverKind(StrEnum):
    TEST = "test"  # TestFailover
    REBOOT = "reboot"  # RebootCacheCluster of a primary
    SWITCHOVER = "switchover"  # ModifyReplicationGroup PrimaryClusterId


@dataclass(frozen=True)
class FailoverRequest:
    """A planned failover the reconciler is asked to carry out (one at a time per group)."""

    node_group_id: str
    kind: FailoverKind
    target_cluster_id: str | None = None


@dataclass(frozen=True)
class ReplicationGroup:
    region: Region
    group_id: str
    description: str
    status: GroupStatus
    engine: str
    engine_version: str
    node_type: str
    port: int
    subnet_group_name: str
    parameter_group_name: str
    node_groups: tuple[NodeGroup, ...]
    create_time: dt.datetime
    cluster_enabled: bool = False
    configuration_endpoint: str | None = None
    automatic_failover: str = "disabled"
    multi_az: str = "disabled"
    preferred_maintenance_window: str = "sun:05:00-sun:06:00"
    auto_minor_version_upgrade: bool = True
    snapshot_retention_limit: int = 0
    snapshot_window: str = "05:00-06:00"
    tags: tuple[Tag, ...] = ()
    retain_primary_cluster: bool = False
    status_reason: str = ""
    resharding: Resharding | None = None
    pending_node_type: str | None = None
    failover_request: FailoverRequest | None = None
    log_delivery: tuple[LogDelivery, ...] = ()

    @property
    def key(self) -> str:
        return self.group_id

    def node_group(self, node_group_id: str) -> NodeGroup | None:
        for node_group in self.node_groups:
            if node_group.node_group_id == node_group_id:
                return node_group
        return None

    @property
    def member_cluster_ids(self) -> tuple[str, ...]:
        return tuple(sorted(cid for group in self.node_groups for cid in group.member_cluster_ids))


@dataclass(frozen=True)
class Subnet:
    subnet_id: str
    availability_zone: str


@dataclass(frozen=True)
class CacheSubnetGroup:
    region: Region
    name: str
    description: str
    subnets: tuple[Subnet, ...]
    vpc_id: str
    tags: tuple[Tag, ...] = ()

    @property
    def key(self) -> str:
        return self.name

    @property
    def availability_zones(self) -> tuple[str, ...]:
        zones: list[str] = []
        for subnet in self.subnets:
            if subnet.availability_zone not in zones:
                zones.append(subnet.availability_zone)
        return tuple(zones)


@dataclass(frozen=True)
class Event:
    region: Region
    source_type: EventSourceType
    source_id: str
    message: str
    date: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    sequence: int = 0  # the store's order of recording (0 until recorded)
