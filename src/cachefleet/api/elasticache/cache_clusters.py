"""Cache cluster handlers and views: create, modify, delete, describe, reboot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.elasticache.common import endpoint, log_delivery, security_fields
from cachefleet.api.paging import paginate
from cachefleet.domain import identifiers
from cachefleet.domain.cache_clusters import (
    CacheCluster,
    CreateCacheClusterRequest,
    ModifyCacheClusterRequest,
)
from cachefleet.domain.logs import LogDelivery
from cachefleet.domain.operations import OperationKind
from cachefleet.domain.parameters import ApplyStatus
from cachefleet.domain.security import Security

IN_SYNC: tuple[ApplyStatus, tuple[str, ...]] = (ApplyStatus.IN_SYNC, ())


def pending_modified_values(cluster: CacheCluster, node_type_change: str | None) -> dict[str, Any]:
    """What waits (ApplyImmediately false) or is under way (a node type change in progress)."""
    pending: dict[str, Any] = {}
    node_type = node_type_change or cluster.pending.node_type
    if node_type is not None:
        pending["CacheNodeType"] = node_type
    if cluster.pending.engine_version is not None:
        pending["EngineVersion"] = cluster.pending.engine_version
    return pending


def view(
    cluster: CacheCluster,
    *,
    show_nodes: bool,
    group_log_delivery: tuple[LogDelivery, ...] = (),
    parameters: tuple[ApplyStatus, tuple[str, ...]] = IN_SYNC,
    node_type_change: str | None = None,
    group_security: Security | None = None,
) -> dict[str, Any]:
    apply_status, reboot = parameters
    result: dict[str, Any] = {
        "CacheClusterId": cluster.cluster_id,
        "ClientDownloadLandingPage": "https://valkey.io/download/",
        "CacheNodeType": cluster.node_type,
        "Engine": cluster.engine,
        "EngineVersion": cluster.engine_version,
        "CacheClusterStatus": cluster.status.value,
        "NumCacheNodes": 1,
        "PreferredAvailabilityZone": cluster.availability_zone,
        "CacheClusterCreateTime": cluster.create_time,
        "PreferredMaintenanceWindow": cluster.preferred_maintenance_window,
        "PendingModifiedValues": pending_modified_values(cluster, node_type_change),
        "CacheSecurityGroups": [
            {"CacheSecurityGroupName": name, "Status": "active"} for name in cluster.cache_security_group_names
        ],
        "CacheParameterGroup": {
            "CacheParameterGroupName": cluster.parameter_group_name,
            "ParameterApplyStatus": apply_status.value,
            "CacheNodeIdsToReboot": [cluster.node.node_id] if reboot else [],
        },
        "CacheSubnetGroupName": cluster.subnet_group_name,
        "AutoMinorVersionUpgrade": cluster.auto_minor_version_upgrade,
        "SecurityGroups": [{"SecurityGroupId": sg, "Status": "active"} for sg in cluster.security_group_ids],
        "ReplicationGroupId": cluster.replication_group_id,
        "SnapshotRetentionLimit": cluster.snapshot_retention_limit,
        "SnapshotWindow": cluster.snapshot_window,
        **security_fields(group_security if group_security is not None else cluster.security),
        "AtRestEncryptionEnabled": cluster.at_rest_encryption,
        "ARN": identifiers.arn(cluster.region, "cluster", cluster.cluster_id),
        "ReplicationGroupLogDeliveryEnabled": bool(group_log_delivery),
        "LogDeliveryConfigurations": log_delivery(group_log_delivery),
        "NetworkType": "ipv4",
        "IpDiscovery": "ipv4",
    }
    if cluster.notification_topic_arn is not None:
        result["NotificationConfiguration"] = {
            "TopicArn": cluster.notification_topic_arn, "TopicStatus": cluster.notification_topic_status,
        }
    if show_nodes:
        node = cluster.node
        result["CacheNodes"] = [
            {
                "CacheNodeId": node.node_id,
                "CacheNodeStatus": node.status.value,
                "CacheNodeCreateTime": node.create_time,
                "Endpoint": endpoint(node.address, node.port),
                "ParameterGroupStatus": apply_status.value,
                "CustomerAvailabilityZone": node.availability_zone,
            }
        ]
    return result


def views(ctx: Context, clusters: Sequence[CacheCluster], *, show_nodes: bool) -> list[dict[str, Any]]:
    """Each cluster's view, with its group's log deliveries and locks, its parameter status and work in progress."""
    use_cases = ctx.elasticache
    wanted = {c.replication_group_id for c in clusters if c.replication_group_id}
    groups = {g.group_id: g for g in use_cases.replication_groups.describe(ctx.region) if g.group_id in wanted}
    found = []
    for cluster in clusters:
        group = groups.get(cluster.replication_group_id or "")
        operation = use_cases.cache_clusters.operation(cluster, OperationKind.NODE_TYPE)
        found.append(
            view(
                cluster,
                show_nodes=show_nodes,
                group_log_delivery=group.log_delivery if group is not None else (),
                group_security=group.security if group is not None else None,
                parameters=use_cases.parameter_groups.status_of(cluster),
                node_type_change=operation.node_type if operation is not None else None,
            )
        )
    return found


def _one(ctx: Context, cluster: CacheCluster) -> dict[str, Any]:
    return {"CacheCluster": views(ctx, [cluster], show_nodes=False)[0]}


def create_cache_cluster(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = CreateCacheClusterRequest.parse(ctx.region, params)
    return _one(ctx, ctx.elasticache.cache_clusters.create(ctx.region, request))


def modify_cache_cluster(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = ModifyCacheClusterRequest.parse(params)
    return _one(ctx, ctx.elasticache.cache_clusters.modify(ctx.region, request))


def delete_cache_cluster(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    cluster = ctx.elasticache.cache_clusters.delete(
        ctx.region, params["CacheClusterId"], final_snapshot=params.get("FinalSnapshotIdentifier")
    )
    return _one(ctx, cluster)


def describe_cache_clusters(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    clusters = ctx.elasticache.cache_clusters.describe(
        ctx.region,
        params.get("CacheClusterId"),
        not_in_replication_groups=params.get("ShowCacheClustersNotInReplicationGroups", False),
    )
    page, marker = paginate(clusters, params, key=lambda c: c.cluster_id)
    return {"CacheClusters": views(ctx, page, show_nodes=params.get("ShowCacheNodeInfo", False)), "Marker": marker}


def reboot_cache_cluster(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    cluster = ctx.elasticache.availability.reboot_cache_cluster(
        ctx.region, params["CacheClusterId"], list(params["CacheNodeIdsToReboot"])
    )
    return _one(ctx, cluster)
