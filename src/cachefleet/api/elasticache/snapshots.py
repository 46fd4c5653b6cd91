"""Snapshot handlers and views: CreateSnapshot, DescribeSnapshots, DeleteSnapshot, CopySnapshot
(every one answers with snapshots; DescribeSnapshots pages 20 to 50 at a time)."""

from __future__ import annotations

from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.paging import paginate
from cachefleet.domain import identifiers
from cachefleet.domain.snapshots import (
    CopySnapshotRequest,
    CreateSnapshotRequest,
    DescribeSnapshotsRequest,
    NodeSnapshot,
    Snapshot,
    cache_size,
)

MAX_RECORDS = 50  # DescribeSnapshots' default and largest page


def node_view(snapshot: Snapshot, node: NodeSnapshot, *, show_node_group_config: bool) -> dict[str, Any]:
    result: dict[str, Any] = {
        "CacheClusterId": node.cache_cluster_id,
        "NodeGroupId": node.node_group_id,
        "CacheNodeId": node.cache_node_id,
        "CacheSize": cache_size(node.size),
        "CacheNodeCreateTime": node.cache_node_create_time,
        "SnapshotCreateTime": node.snapshot_create_time,
    }
    if show_node_group_config:
        result["NodeGroupConfiguration"] = {
            "NodeGroupId": node.node_group_id,
            "Slots": node.slots or None,
            "ReplicaCount": node.replica_count,
            "PrimaryAvailabilityZone": node.primary_zone or None,
            "ReplicaAvailabilityZones": list(node.replica_zones),
        }
    return result


def view(snapshot: Snapshot, *, show_node_group_config: bool = False) -> dict[str, Any]:
    of_cluster = snapshot.cache_cluster_id is not None
    return {
        "SnapshotName": snapshot.name,
        "ReplicationGroupId": snapshot.replication_group_id,
        "ReplicationGroupDescription": snapshot.replication_group_description or None,
        "CacheClusterId": snapshot.cache_cluster_id,
        "SnapshotStatus": snapshot.status.value,
        "SnapshotSource": snapshot.source.value,
        "CacheNodeType": snapshot.node_type,
        "Engine": snapshot.engine,
        "EngineVersion": snapshot.engine_version,
        "NumCacheNodes": 1 if of_cluster else None,
        "PreferredAvailabilityZone": snapshot.preferred_availability_zone or None,
        "CacheClusterCreateTime": snapshot.cache_cluster_create_time,
        "PreferredMaintenanceWindow": snapshot.preferred_maintenance_window or None,
        "Port": snapshot.port,
        "CacheParameterGroupName": snapshot.parameter_group_name,
        "CacheSubnetGroupName": snapshot.subnet_group_name,
        "AutoMinorVersionUpgrade": snapshot.auto_minor_version_upgrade,
        "SnapshotRetentionLimit": snapshot.snapshot_retention_limit,
        "SnapshotWindow": snapshot.snapshot_window or None,
        "NumNodeGroups": len(snapshot.node_snapshots) if snapshot.replication_group_id is not None else None,
        "AutomaticFailover": snapshot.automatic_failover if snapshot.replication_group_id is not None else None,
        "NodeSnapshots": [
            node_view(snapshot, node, show_node_group_config=show_node_group_config) for node in snapshot.node_snapshots
        ],
        "KmsKeyId": snapshot.kms_key_id,
        "ARN": identifiers.arn(snapshot.region, "snapshot", snapshot.name),
        "DataTiering": "disabled",
    }


def create_snapshot(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = CreateSnapshotRequest.parse(params)
    return {"Snapshot": view(ctx.elasticache.snapshots.create(ctx.region, request))}


def describe_snapshots(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = DescribeSnapshotsRequest.parse(params)
    found = ctx.elasticache.snapshots.describe(ctx.region, request)
    page, marker = paginate(found, params, key=lambda s: s.name, default=MAX_RECORDS, maximum=MAX_RECORDS)
    return {
        "Snapshots": [view(s, show_node_group_config=request.show_node_group_config) for s in page],
        "Marker": marker,
    }


def delete_snapshot(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"Snapshot": view(ctx.elasticache.snapshots.delete(ctx.region, params["SnapshotName"]))}


def copy_snapshot(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = CopySnapshotRequest.parse(params)
    return {"Snapshot": view(ctx.elasticache.snapshots.copy(ctx.region, request))}
