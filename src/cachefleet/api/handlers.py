"""One handler per ElastiCache action, named as botocore's snake_case operation name.

A handler takes the request context and the parsed parameters, calls one use case and
returns a dict shaped like the operation's output. No business rule lives here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from cachefleet.api import views
from cachefleet.api.errors import ApiError
from cachefleet.domain.model import CacheCluster, Region, ReplicationGroup
from cachefleet.domain.service import ElastiCache

T = TypeVar("T")

DEFAULT_MAX_RECORDS = 100
MIN_MAX_RECORDS = 20


@dataclass(frozen=True)
class Context:
    service: ElastiCache
    region: Region
    request_id: str
    cloudwatch: Any = None  # domain.cloudwatch.CloudWatch, for the monitoring service
    log_reader: Any = None  # api.logs.LogReader, for the logs service


def paginate(
    items: Sequence[T], params: dict[str, Any], *, key: Callable[[T], str] | None = None
) -> tuple[list[T], str | None]:
    """Marker/MaxRecords paging, as every ElastiCache Describe call has it (20 to 100 records)."""
    max_records = params.get("MaxRecords", DEFAULT_MAX_RECORDS)
    if not MIN_MAX_RECORDS <= max_records <= DEFAULT_MAX_RECORDS:
        raise ApiError(
            "InvalidParameterValue",
            f"Invalid MaxRecords {max_records}: use a value between {MIN_MAX_RECORDS} and {DEFAULT_MAX_RECORDS}.",
        )
    start = 0
    marker = params.get("Marker")
    if marker:
        try:
            kind, _, value = base64.urlsafe_b64decode(marker.encode()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ApiError("InvalidParameterValue", f"Invalid Marker '{marker}': pass the Marker of a previous response.") from None
        if kind == "k" and key is not None:
            start = next((i for i, item in enumerate(items) if key(item) >= value), len(items))
        elif kind == "o" and value.isdigit():
            start = int(value)
        else:
            raise ApiError("InvalidParameterValue", f"Invalid Marker '{marker}': pass the Marker of a previous response.")
    page = list(items[start : start + max_records])
    next_marker = None
    if start + max_records < len(items):
        following = items[start + max_records]
        text = f"k:{key(following)}" if key is not None else f"o:{start + max_records}"
        next_marker = base64.urlsafe_b64encode(text.encode()).decode()
    return page, next_marker


def _clusters_for(ctx: Context, groups: Sequence[ReplicationGroup]) -> dict[str, CacheCluster]:
    wanted = {cid for group in groups for cid in group.member_cluster_ids}
    return {c.cluster_id: c for c in ctx.service.describe_cache_clusters(ctx.region) if c.cluster_id in wanted}


def _group_view(ctx: Context, group: ReplicationGroup) -> dict[str, Any]:
    return views.replication_group(group, _clusters_for(ctx, [group]))


# ---------------------------------------------------------------------- replication groups
def create_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"ReplicationGroup": _group_view(ctx, ctx.service.create_replication_group(ctx.region, params))}


def modify_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"ReplicationGroup": _group_view(ctx, ctx.service.modify_replication_group(ctx.region, params))}


def delete_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"ReplicationGroup": _group_view(ctx, ctx.service.delete_replication_group(ctx.region, params))}


def describe_replication_groups(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    groups = ctx.service.describe_replication_groups(ctx.region, params.get("ReplicationGroupId"))
    page, marker = paginate(groups, params, key=lambda g: g.group_id)
    clusters = _clusters_for(ctx, page)
    return {"ReplicationGroups": [views.replication_group(g, clusters) for g in page], "Marker": marker}


# ---------------------------------------------------------------------- shards, replicas, node types
def modify_replication_group_shard_configuration(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"ReplicationGroup": _group_view(ctx, ctx.service.scaling.modify_shard_configuration(ctx.region, params))}


def increase_replica_count(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"ReplicationGroup": _group_view(ctx, ctx.service.scaling.increase_replica_count(ctx.region, params))}


def decrease_replica_count(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"ReplicationGroup": _group_view(ctx, ctx.service.scaling.decrease_replica_count(ctx.region, params))}


def list_allowed_node_type_modifications(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    up, down = ctx.service.scaling.allowed_node_type_modifications(ctx.region, params)
    return {"ScaleUpModifications": up, "ScaleDownModifications": down}


# ---------------------------------------------------------------------- high availability
def test_failover(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"ReplicationGroup": _group_view(ctx, ctx.service.availability.test_failover(ctx.region, params))}


def reboot_cache_cluster(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    cluster = ctx.service.availability.reboot_cache_cluster(ctx.region, params)
    return {"CacheCluster": views.cache_cluster(cluster, show_nodes=False)}


# ---------------------------------------------------------------------- cache clusters
def create_cache_cluster(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"CacheCluster": views.cache_cluster(ctx.service.create_cache_cluster(ctx.region, params), show_nodes=False)}


def delete_cache_cluster(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"CacheCluster": views.cache_cluster(ctx.service.delete_cache_cluster(ctx.region, params), show_nodes=False)}


def describe_cache_clusters(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    clusters = ctx.service.describe_cache_clusters(
        ctx.region,
        params.get("CacheClusterId"),
        not_in_replication_groups=params.get("ShowCacheClustersNotInReplicationGroups", False),
    )
    page, marker = paginate(clusters, params, key=lambda c: c.cluster_id)
    show = params.get("ShowCacheNodeInfo", False)
    wanted = {c.replication_group_id for c in page if c.replication_group_id}
    deliveries = {
        g.group_id: g.log_delivery for g in ctx.service.describe_replication_groups(ctx.region) if g.group_id in wanted
    }
    return {
        "CacheClusters": [
            views.cache_cluster(c, show_nodes=show, group_log_delivery=deliveries.get(c.replication_group_id or "", ()))
            for c in page
        ],
        "Marker": marker,
    }


# ---------------------------------------------------------------------- engines
def describe_cache_engine_versions(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    releases = ctx.service.engine_releases(
        engine=params.get("Engine"),
        engine_version=params.get("EngineVersion"),
        family=params.get("CacheParameterGroupFamily"),
        default_only=params.get("DefaultOnly", False),
    )
    page, marker = paginate(releases, params)
    return {"CacheEngineVersions": [views.engine_version(r) for r in page], "Marker": marker}


# ---------------------------------------------------------------------- subnet groups
def create_cache_subnet_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"CacheSubnetGroup": views.cache_subnet_group(ctx.service.create_cache_subnet_group(ctx.region, params))}


def modify_cache_subnet_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"CacheSubnetGroup": views.cache_subnet_group(ctx.service.modify_cache_subnet_group(ctx.region, params))}


def delete_cache_subnet_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.service.delete_cache_subnet_group(ctx.region, params["CacheSubnetGroupName"])
    return {}


def describe_cache_subnet_groups(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    groups = ctx.service.describe_cache_subnet_groups(ctx.region, params.get("CacheSubnetGroupName"))
    page, marker = paginate(groups, params, key=lambda g: g.name)
    return {"CacheSubnetGroups": [views.cache_subnet_group(g) for g in page], "Marker": marker}


# ---------------------------------------------------------------------- tags
def add_tags_to_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    tags = ctx.service.add_tags(ctx.region, params["ResourceName"], params["Tags"])
    return {"TagList": views.tag_list(tags)}


def list_tags_for_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"TagList": views.tag_list(ctx.service.tags_of(ctx.region, params["ResourceName"]))}


def remove_tags_from_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    tags = ctx.service.remove_tags(ctx.region, params["ResourceName"], params["TagKeys"])
    return {"TagList": views.tag_list(tags)}


# ---------------------------------------------------------------------- events
def describe_events(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    events = ctx.service.describe_events(ctx.region, params)
    # Keyed by the order of recording: a page boundary stays put while events come and go.
    page, marker = paginate(events, params, key=lambda e: f"{e.date.timestamp():020.6f}:{e.sequence:015d}")
    return {"Events": [views.event(e) for e in page], "Marker": marker}
