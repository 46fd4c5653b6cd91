"""Explicit mapping from domain records to the members of botocore's output shapes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cachefleet.domain import identifiers, slots
from cachefleet.domain.model import (
    CacheCluster,
    CacheSubnetGroup,
    EngineRelease,
    Event,
    GroupStatus,
    LogDelivery,
    ReplicationGroup,
    Tag,
)


def endpoint(address: str | None, port: int) -> dict[str, Any] | None:
    if not address:
        return None
    return {"Address": address, "Port": port}


def tag_list(tags: tuple[Tag, ...]) -> list[dict[str, str]]:
    return [{"Key": tag.key, "Value": tag.value} for tag in tags]


def log_delivery(items: tuple[LogDelivery, ...]) -> list[dict[str, Any]]:
    views = []
    for item in items:
        if item.destination_type == "cloudwatch-logs":
            details = {"CloudWatchLogsDetails": {"LogGroup": item.destination}}
        else:
            details = {"KinesisFirehoseDetails": {"DeliveryStream": item.destination}}
        views.append(
            {
                "LogType": item.log_type,
                "DestinationType": item.destination_type,
                "DestinationDetails": details,
                "LogFormat": item.log_format,
                "Status": item.status,
            }
        )
    return views


def _node_group_status(group: ReplicationGroup) -> str:
    if group.status == GroupStatus.CREATE_FAILED:
        return "create-failed"
    return group.status.value


def pending_modified_values(group: ReplicationGroup) -> dict[str, Any]:
    pending: dict[str, Any] = {}
    if group.resharding is not None:
        owned = {ng.node_group_id: slots.parse(ng.slots) for ng in group.node_groups}
        target = {name: slots.parse(ranges) for name, ranges in group.resharding.target_slots}
        left = slots.moves(owned, target)
        total = max(group.resharding.total_slots, 1)
        pending["Resharding"] = {"SlotMigration": {"ProgressPercentage": round(100.0 * (total - left) / total, 2)}}
    return pending


def replication_group(group: ReplicationGroup, clusters: Mapping[str, CacheCluster]) -> dict[str, Any]:
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
                "Status": _node_group_status(group),
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
        "PendingModifiedValues": pending_modified_values(group),
        "MemberClusters": list(group.member_cluster_ids),
        "NodeGroups": node_groups,
        "AutomaticFailover": group.automatic_failover,
        "MultiAZ": group.multi_az,
        "ConfigurationEndpoint": endpoint(group.configuration_endpoint, group.port),
        "SnapshotRetentionLimit": group.snapshot_retention_limit,
        "SnapshotWindow": group.snapshot_window,
        "ClusterEnabled": group.cluster_enabled,
        "CacheNodeType": group.node_type,
        "AuthTokenEnabled": False,
        "TransitEncryptionEnabled": False,
        "AtRestEncryptionEnabled": False,
        "MemberClustersOutpostArns": [],
        "ARN": identifiers.arn(group.region, "replicationgroup", group.group_id),
        "UserGroupIds": [],
        "LogDeliveryConfigurations": log_delivery(group.log_delivery),
        "ReplicationGroupCreateTime": group.create_time,
        "DataTiering": "disabled",
        "AutoMinorVersionUpgrade": group.auto_minor_version_upgrade,
        "NetworkType": "ipv4",
        "IpDiscovery": "ipv4",
        "ClusterMode": "enabled" if group.cluster_enabled else "disabled",
        "EffectiveDurability": "disabled",
        "Engine": group.engine,
    }


def cache_cluster(
    cluster: CacheCluster, *, show_nodes: bool, group_log_delivery: tuple[LogDelivery, ...] = ()
) -> dict[str, Any]:
    view: dict[str, Any] = {
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
        "AtRestEncryptionEnabled": False,
        "ARN": identifiers.arn(cluster.region, "cluster", cluster.cluster_id),
        "ReplicationGroupLogDeliveryEnabled": bool(group_log_delivery),
        "LogDeliveryConfigurations": log_delivery(group_log_delivery),
        "NetworkType": "ipv4",
        "IpDiscovery": "ipv4",
    }
    if show_nodes:
        node = cluster.node
        view["CacheNodes"] = [
            {
                "CacheNodeId": node.node_id,
                "CacheNodeStatus": node.status.value,
                "CacheNodeCreateTime": node.create_time,
                "Endpoint": endpoint(node.address, node.port),
                "ParameterGroupStatus": "in-sync",
                "CustomerAvailabilityZone": node.availability_zone,
            }
        ]
    return view


def cache_subnet_group(group: CacheSubnetGroup) -> dict[str, Any]:
    return {
        "CacheSubnetGroupName": group.name,
        "CacheSubnetGroupDescription": group.description,
        "VpcId": group.vpc_id,
        "Subnets": [
            {
                "SubnetIdentifier": subnet.subnet_id,
                "SubnetAvailabilityZone": {"Name": subnet.availability_zone},
                "SupportedNetworkTypes": ["ipv4"],
            }
            for subnet in group.subnets
        ],
        "ARN": identifiers.arn(group.region, "subnetgroup", group.name),
        "SupportedNetworkTypes": ["ipv4"],
    }


def event(item: Event) -> dict[str, Any]:
    return {
        "SourceIdentifier": item.source_id,
        "SourceType": item.source_type.value,
        "Message": item.message,
        "Date": item.date,
    }


def engine_version(release: EngineRelease) -> dict[str, Any]:
    return {
        "Engine": release.engine,
        "EngineVersion": release.major_minor,
        "CacheParameterGroupFamily": release.family,
        "CacheEngineDescription": "Valkey" if release.engine == "valkey" else "Redis OSS",
        "CacheEngineVersionDescription": release.description,
    }
