"""Serverless cache snapshot handlers and views: Create/Describe/Copy/Delete/ExportServerlessCacheSnapshot
(every one answers with a ServerlessCacheSnapshot; Describe pages 1 to 50 at a time)."""

from __future__ import annotations

from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.paging import paginate
from cachefleet.domain import identifiers
from cachefleet.domain.serverless_snapshots import (
    CopyServerlessCacheSnapshotRequest,
    CreateServerlessCacheSnapshotRequest,
    DescribeServerlessCacheSnapshotsRequest,
    ExportServerlessCacheSnapshotRequest,
    expiry_time,
    major_version,
    snapshot_type,
    status,
)
from cachefleet.domain.snapshots import Snapshot

MAX_RESULTS = 50  # DescribeServerlessCacheSnapshots' default and largest page


def view(ctx: Context, snapshot: Snapshot) -> dict[str, Any]:
    return {
        "ServerlessCacheSnapshotName": snapshot.user_name,
        "ARN": identifiers.arn(snapshot.region, "serverlesscachesnapshot", snapshot.user_name),
        "KmsKeyId": snapshot.kms_key_id,
        "SnapshotType": snapshot_type(snapshot).value,
        "Status": status(snapshot, restoring=ctx.elasticache.serverless_snapshots.restoring(snapshot)),
        "CreateTime": snapshot.create_time,
        "ExpiryTime": expiry_time(snapshot),
        "BytesUsedForCache": str(snapshot.size),
        "ServerlessCacheConfiguration": {
            "ServerlessCacheName": snapshot.serverless_cache_name,
            "Engine": snapshot.engine,
            "MajorEngineVersion": major_version(snapshot),
        },
    }


def create_serverless_cache_snapshot(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = CreateServerlessCacheSnapshotRequest.parse(params)
    return {"ServerlessCacheSnapshot": view(ctx, ctx.elasticache.serverless_snapshots.create(ctx.region, request))}


def describe_serverless_cache_snapshots(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = DescribeServerlessCacheSnapshotsRequest.parse(params)
    found = ctx.elasticache.serverless_snapshots.describe(ctx.region, request)
    page, token = paginate(
        found, params, key=lambda s: s.name, default=MAX_RESULTS, maximum=MAX_RESULTS, minimum=1,
        names=("MaxResults", "NextToken"),
    )
    return {"ServerlessCacheSnapshots": [view(ctx, s) for s in page], "NextToken": token}


def copy_serverless_cache_snapshot(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = CopyServerlessCacheSnapshotRequest.parse(params)
    return {"ServerlessCacheSnapshot": view(ctx, ctx.elasticache.serverless_snapshots.copy(ctx.region, request))}


def delete_serverless_cache_snapshot(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    snapshot = ctx.elasticache.serverless_snapshots.delete(ctx.region, str(params["ServerlessCacheSnapshotName"]))
    return {"ServerlessCacheSnapshot": view(ctx, snapshot)}


def export_serverless_cache_snapshot(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = ExportServerlessCacheSnapshotRequest.parse(params)
    return {"ServerlessCacheSnapshot": view(ctx, ctx.elasticache.serverless_snapshots.export(ctx.region, request))}
