"""Replication group handlers and views: create, modify, delete, describe, shards, replicas,
node types and TestFailover (every one answers with the group)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.elasticache.common import endpoint, log_delivery, security_fields
from cachefleet.api.paging import paginate
from cachefleet.domain import identifiers, slots
from cachefleet.domain.cache_clusters import CacheCluster
from cachefleet.domain.operations import Operation, OperationKind
from cachefleet.domain.replicas import ReplicaCountRequest
from cachefleet.domain.replication_groups import (
    CreateReplicationGroupRequest,
    ModifyReplicationGroupRequest,
    ReplicationGroup,
)
from cachefleet.domain.shards import ShardConfigurationRequest


def pending_modified_values(operations: Mapping[OperationKind, Operation], group: ReplicationGroup) -> dict[str, Any]:
    pending: dict[str, Any] = {}
    reshard = operations.get(OperationKind.RESHARD)
    if reshard is not None and reshard.resharding is not None:
        owned = {ng.node_group_id: slots.parse(ng.slots) for ng in group.node_groups}
        target = {name: slots.parse(ranges) for name, ranges in reshard.resharding.target_slots}
        left = slots.moves(owned, target)
        total = max(reshard.resharding.total_slots, 1)
        pending["Resharding"] = {"SlotMigration": {"ProgressPercentage": round(100.0 * (total - left) / total, 2)}}
    access = operations.get(OperationKind.ACCESS)
    change = access.access if access is not None else None
    if change is None and group.pending_access is not None:
        change = group.pending_access.change  # waiting for the maintenance window
    if change is not None:
        if change.auth_token_status:
            pending["AuthTokenStatus"] = change.auth_token_status
        if change.user_groups_to_add or change.user_groups_to_remove:
            pending["UserGroups"] = {"UserGroupIdsToAdd": list(change.user_groups_to_add),
                                     "UserGroupIdsToRemove": list(change.user_groups_to_remove)}
        if change.transit_encryption_enabled is not None:
            pending["TransitEncryptionEnabled"] = change.transit_encryption_enabled
        if change.transit_encryption_mode is not None:
            pending["TransitEncryptionMode"] = change.transit_encryption_mode
    return pending


def view(group: ReplicationGroup, clusters: Mapping[str, CacheCluster], operations: Mapping[OperationKind, Operation]) -> dict[str, Any]:
    node_groups = []
    for node_group in group.node_groups:
        members = []
        for cluster_id in node_group.member_cluster_ids:
            cluster = clusters.get(cluster_id)
            if cluster is None:
                continue
            members.append(
                {
                    "CacheClusterId": cluster.cluster_id,
                    "CacheNodeId": cluster.node.node_id,
                    "ReadEndpoint": endpoint(cluster.node.address, cluster.port),
                    "PreferredAvailabilityZone": cluster.availability_zone,
                    "CurrentRole": "primary" if cluster_id == node_group.primary_cluster_id else "replica",
                }
            )
        node_groups.append(
            {
                "NodeGroupId": node_group.node_group_id,
                "Status": group.status.value,
                "PrimaryEndpoint": endpoint(node_group.primary_endpoint, group.port),
                "ReaderEndpoint": endpoint(node_group.reader_endpoint, group.port),
                "Slots": node_group.slots or None,
                "NodeGroupMembers": members,
            }
        )
    return {
        "ReplicationGroupId": group.group_id,
        "Description": group.description,
        "Status": group.status.value,
        "PendingModifiedValues": pending_modified_values(operations, group),
        "MemberClusters": list(group.member_cluster_ids),
        "NodeGroups": node_groups,
        "AutomaticFailover": group.automatic_failover,
        "MultiAZ": group.multi_az,
        "ConfigurationEndpoint": endpoint(group.configuration_endpoint, group.port),
        "SnapshotRetentionLimit": group.snapshot_retention_limit,
        "SnapshotWindow": group.snapshot_window,
        "ClusterEnabled": group.cluster_enabled,
        "CacheNodeType": group.node_type,
        "SnapshottingClusterId": group.snapshotting_cluster_id,
        **security_fields(group.security),
        "AtRestEncryptionEnabled": group.at_rest_encryption,
        "KmsKeyId": group.kms_key_id,
        "MemberClustersOutpostArns": [],
        "ARN": identifiers.arn(group.region, "replicationgroup", group.group_id),
        "UserGroupIds": list(group.security.user_group_ids),
        "LogDeliveryConfigurations": log_delivery(group.log_delivery),
        "ReplicationGroupCreateTime": group.create_time,
        "DataTiering": "disabled",
        "AutoMinorVersionUpgrade": group.auto_minor_version_upgrade,
        "NetworkType": "ipv4",
        "IpDiscovery": "ipv4",
        "ClusterMode": "enabled" if group.cluster_enabled else "disabled",
        "EffectiveDurability": "disabled",
        "Engine": group.engine,
        "GlobalReplicationGroupInfo": {
            "GlobalReplicationGroupId": group.global_replication_group_id,
            "GlobalReplicationGroupMemberRole": group.global_role,
        } if group.global_replication_group_id else None,
    }


def _views(ctx: Context, groups: list[ReplicationGroup]) -> list[dict[str, Any]]:
    use_cases = ctx.elasticache
    wanted = [cid for group in groups for cid in group.member_cluster_ids]
    clusters = use_cases.cache_clusters.of(ctx.region, wanted)
    return [view(g, clusters, use_cases.replication_groups.operations(g)) for g in groups]


def _one(ctx: Context, group: ReplicationGroup) -> dict[str, Any]:
    return {"ReplicationGroup": _views(ctx, [group])[0]}


def create_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = CreateReplicationGroupRequest.parse(ctx.region, params)
    if request.global_replication_group_id is not None:  # a secondary of a global datastore
        return _one(ctx, ctx.elasticache.global_datastores.create_secondary(ctx.region, request, params))
    return _one(ctx, ctx.elasticache.replication_groups.create(ctx.region, request))


def modify_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = ModifyReplicationGroupRequest.parse(params)
    return _one(ctx, ctx.elasticache.replication_groups.modify(ctx.region, request))


def delete_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = ctx.elasticache.replication_groups.delete(
        ctx.region,
        params["ReplicationGroupId"],
        retain_primary_cluster=bool(params.get("RetainPrimaryCluster", False)),
        final_snapshot=params.get("FinalSnapshotIdentifier"),
    )
    return _one(ctx, group)


def describe_replication_groups(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    groups = ctx.elasticache.replication_groups.describe(ctx.region, params.get("ReplicationGroupId"))
    page, marker = paginate(groups, params, key=lambda g: g.group_id)
    return {"ReplicationGroups": _views(ctx, page), "Marker": marker}


def modify_replication_group_shard_configuration(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = ShardConfigurationRequest.parse(ctx.region, params)
    return _one(ctx, ctx.elasticache.shards.modify_shard_configuration(ctx.region, request))


def increase_replica_count(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = ReplicaCountRequest.parse(ctx.region, params, increase=True)
    return _one(ctx, ctx.elasticache.replicas.increase(ctx.region, request))


def decrease_replica_count(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = ReplicaCountRequest.parse(ctx.region, params, increase=False)
    return _one(ctx, ctx.elasticache.replicas.decrease(ctx.region, request))


def list_allowed_node_type_modifications(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    up, down = ctx.elasticache.replication_groups.allowed_node_type_modifications(
        ctx.region, group_id=params.get("ReplicationGroupId"), cluster_id=params.get("CacheClusterId")
    )
    return {"ScaleUpModifications": up, "ScaleDownModifications": down}


def test_failover(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = ctx.elasticache.availability.test_failover(ctx.region, params["ReplicationGroupId"], params["NodeGroupId"])
    return _one(ctx, group)
