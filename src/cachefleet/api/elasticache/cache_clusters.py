"""Cache cluster handlers and views: create, delete, describe, reboot."""

from __future__ import annotations

from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.elasticache.common import endpoint, log_delivery
from cachefleet.api.paging import paginate
from cachefleet.domain import identifiers
from cachefleet.domain.cache_clusters import (
    CacheCluster,
    CreateCacheClusterRequest,
    ModifyCacheClusterRequest,
)
from cachefleet.domain.logs import LogDelivery


def view(cluster: CacheCluster, *, show_nodes: bool, group_log_delivery: tuple[LogDelivery, ...] = ()) -> dict[str, Any]:
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
        "PendingModifiedValues": {},
        "CacheSecurityGroups": [],
        "CacheParameterGroup": {
            "CacheParameterGroupName": cluster.parameter_group_name,
            "ParameterApplyStatus": "in-sync",
            "CacheNodeIdsToReboot": [],
        },
        "CacheSubnetGroupName": cluster.subnet_group_name,
        "AutoMinorVersionUpgrade": cluster.auto_minor_version_upgrade,
        "SecurityGroups": [],
        "ReplicationGroupId": cluster.replication_group_id,
        "SnapshotRetentionLimit": cluster.snapshot_retention_limit,
        "SnapshotWindow": cluster.snapshot_window,
        "AuthTokenEnabled": False,
        "TransitEncryptionEnabled": False,
        "AtRestEncryptionEnabled": cluster.at_rest_encryption,
        "ARN": identifiers.arn(cluster.region, "cluster", cluster.cluster_id),
        "ReplicationGroupLogDeliveryEnabled": bool(group_log_delivery),
        "LogDeliveryConfigurations": log_delivery(group_log_delivery),
        "NetworkType": "ipv4",
        "IpDiscovery": "ipv4",
    }
    if show_nodes:
        node = cluster.node
        result["CacheNodes"] = [
            {
                "CacheNodeId": node.node_id,
                "CacheNodeStatus": node.status.value,
                "CacheNodeCreateTime": node.create_time,
                "Endpoint": endpoint(node.address, node.port),
                "ParameterGroupStatus": "in-sync",
                "CustomerAvailabilityZone": node.availability_zone,
            }
        ]
    return result


def create_cache_cluster(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = CreateCacheClusterRequest.parse(ctx.region, params)
    return {"CacheCluster": view(ctx.elasticache.cache_clusters.create(ctx.region, request), show_nodes=False)}


def delete_cache_cluster(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    cluster = ctx.elasticache.cache_clusters.delete(
        ctx.region, params["CacheClusterId"], final_snapshot=params.get("FinalSnapshotIdentifier")
    )
    return {"CacheCluster": view(cluster, show_nodes=False)}


def describe_cache_clusters(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    clusters = ctx.elasticache.cache_clusters.describe(
        ctx.region,
        params.get("CacheClusterId"),
        not_in_replication_groups=params.get("ShowCacheClustersNotInReplicationGroups", False),
    )
    page, marker = paginate(clusters, params, key=lambda c: c.cluster_id)
    show = params.get("ShowCacheNodeInfo", False)
    wanted = {c.replication_group_id for c in page if c.replication_group_id}
    deliveries = {
        g.group_id: g.log_delivery for g in ctx.elasticache.replication_groups.describe(ctx.region) if g.group_id in wanted
    }
    return {
        "CacheClusters": [
            view(c, show_nodes=show, group_log_delivery=deliveries.get(c.replication_group_id or "", ())) for c in page
        ],
        "Marker": marker,
    }


def modify_cache_cluster(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = ModifyCacheClusterRequest.parse(params)
    return {"CacheCluster": view(ctx.elasticache.cache_clusters.modify(ctx.region, request), show_nodes=False)}


def reboot_cache_cluster(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    cluster = ctx.elasticache.availability.reboot_cache_cluster(
        ctx.region, params["CacheClusterId"], list(params["CacheNodeIdsToReboot"])
    )
    return {"CacheCluster": view(cluster, show_nodes=False)}
