"""Serverless cache handlers and views: Create/Describe/Modify/DeleteServerlessCache.

A serverless cache's Endpoint is its replication group's configuration endpoint (port 6379). Its
ReaderEndpoint names the same address and port: without a proxy, a cluster client reads from the
replicas its slot map lists (READONLY), not from a second port (ElastiCache's 6380; see README).
"""

from __future__ import annotations

from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.elasticache.common import endpoint
from cachefleet.api.paging import paginate
from cachefleet.domain import identifiers
from cachefleet.domain.replication_groups import ReplicationGroup
from cachefleet.domain.serverless import (
    CacheUsageLimits,
    CreateServerlessCacheRequest,
    ModifyServerlessCacheRequest,
    ServerlessCache,
    status_of,
)

MAX_RESULTS = 50  # DescribeServerlessCaches' default and largest page


def _limits(limits: CacheUsageLimits) -> dict[str, Any] | None:
    view: dict[str, Any] = {}
    if limits.data_storage_minimum is not None or limits.data_storage_maximum is not None:
        view["DataStorage"] = {
            "Maximum": limits.data_storage_maximum, "Minimum": limits.data_storage_minimum, "Unit": "GB",
        }
    if limits.ecpu_minimum is not None or limits.ecpu_maximum is not None:
        view["ECPUPerSecond"] = {"Maximum": limits.ecpu_maximum, "Minimum": limits.ecpu_minimum}
    return view or None


def view(cache: ServerlessCache, group: ReplicationGroup | None) -> dict[str, Any]:
    address = group.configuration_endpoint if group is not None else None
    port = group.port if group is not None else 0
    return {
        "ServerlessCacheName": cache.name,
        "Description": cache.description,
        "CreateTime": cache.create_time,
        "Status": status_of(cache, group).value,
        "Engine": cache.engine,
        "MajorEngineVersion": cache.major_engine_version,
        "FullEngineVersion": cache.full_engine_version,
        "CacheUsageLimits": _limits(cache.limits),
        "KmsKeyId": cache.kms_key_id,
        "SecurityGroupIds": list(cache.security_group_ids),
        "Endpoint": endpoint(address, port),
        "ReaderEndpoint": endpoint(address, port),
        "ARN": identifiers.arn(cache.region, "serverlesscache", cache.name),
        "UserGroupId": cache.user_group_id,
        "SubnetIds": list(cache.subnet_ids),
        "SnapshotRetentionLimit": cache.snapshot_retention_limit,
        "DailySnapshotTime": cache.daily_snapshot_time,
        "NetworkType": "ipv4",
    }


def create_serverless_cache(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = CreateServerlessCacheRequest.parse(ctx.region, params)
    cache = ctx.elasticache.serverless.create(ctx.region, request)
    return {"ServerlessCache": view(cache, ctx.elasticache.serverless.group_of(cache))}


def describe_serverless_caches(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    found = ctx.elasticache.serverless.describe(ctx.region, params.get("ServerlessCacheName"))
    page, token = paginate(
        found, params, key=lambda pair: pair[0].name, default=MAX_RESULTS, maximum=MAX_RESULTS, minimum=1,
        names=("MaxResults", "NextToken"),
    )
    return {"ServerlessCaches": [view(cache, group) for cache, group in page], "NextToken": token}


def modify_serverless_cache(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    cache = ctx.elasticache.serverless.modify(ctx.region, ModifyServerlessCacheRequest.parse(params))
    return {"ServerlessCache": view(cache, ctx.elasticache.serverless.group_of(cache))}


def delete_serverless_cache(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    cache = ctx.elasticache.serverless.delete(
        ctx.region, params["ServerlessCacheName"], final_snapshot=params.get("FinalSnapshotName")
    )
    return {"ServerlessCache": view(cache, ctx.elasticache.serverless.group_of(cache))}
