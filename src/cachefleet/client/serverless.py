"""What the console shows of a serverless cache, read through the public APIs only.

DescribeServerlessCaches gives the cache and its limits; its current shards are what its
Endpoint answers to CLUSTER SHARDS (the public data endpoint, as any cluster client reads it:
ElastiCache's API does not list a serverless cache's shards either); its usage and charts are
its CloudWatch metrics under the dimension ``clusterId``; its scaling decisions are its events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import redis

from cachefleet.client.fleet import Fleet

NAMESPACE = "AWS/ElastiCache"
GB = 10**9  # CacheUsageLimits' DataStorage unit, as ElastiCache bills it (the server may be set otherwise)


def _endpoint(value: dict[str, Any] | None) -> str | None:
    return f"{value['Address']}:{value['Port']}" if value and value.get("Address") else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def cluster_shards(address: str, port: int, *, timeout: float = 2.0) -> list[dict[str, Any]]:
    """CLUSTER SHARDS of the node at ``address``: each shard's slot ranges and nodes, primary first."""
    client = redis.Redis(host=address, port=port, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        execute: Any = client.execute_command  # untyped in redis-py's own annotations
        reply = execute("CLUSTER", "SHARDS")
    finally:
        client.close()
    shards = []
    for raw in reply:
        shard = dict(zip(map(_text, raw[::2]), raw[1::2], strict=True)) if isinstance(raw, list) else dict(raw)
        shard = {_text(k): v for k, v in shard.items()}
        ranges = [int(s) for s in shard.get("slots", [])]
        nodes = []
        for node in shard.get("nodes", []):
            fields = dict(zip(map(_text, node[::2]), node[1::2], strict=True)) if isinstance(node, list) else node
            fields = {_text(k): v for k, v in fields.items()}
            nodes.append({"address": f"{_text(fields.get('ip', ''))}:{fields.get('port', '')}", "role": _text(fields.get("role", "")),
                          "health": _text(fields.get("health", ""))})
        if not ranges:
            continue  # a node that holds no slots (leaving, or joining) is no shard of the cache
        nodes.sort(key=lambda n: n["role"] != "master")
        slots = sum(b - a + 1 for a, b in zip(ranges[::2], ranges[1::2], strict=True))
        text = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in zip(ranges[::2], ranges[1::2], strict=True))
        shards.append({"slots": slots, "ranges": text, "primary": nodes[0]["address"] if nodes else None,
                       "replicas": [n["address"] for n in nodes[1:]]})
    return sorted(shards, key=lambda s: str(s["ranges"]))


def serverless_view(fleet: Fleet, name: str) -> dict[str, Any]:
    """The cache as the console's page shows it: DescribeServerlessCaches, its shards, its latest usage."""
    cache = fleet.serverless_caches(name)[0]
    limits = cache.get("CacheUsageLimits") or {}
    data, ecpu = limits.get("DataStorage") or {}, limits.get("ECPUPerSecond") or {}
    endpoint = cache.get("Endpoint") or {}
    shards: list[dict[str, Any]] = []
    shards_error = None
    if cache.get("Status") in ("available", "modifying") and endpoint.get("Address"):
        try:
            shards = cluster_shards(endpoint["Address"], int(endpoint["Port"]))
        except (redis.RedisError, OSError) as error:
            shards_error = f"{type(error).__name__}: {error}"
    usage = latest(fleet, name, ("BytesUsedForCache", "ElastiCacheProcessingUnits", "CurrConnections"))
    return {
        "name": cache["ServerlessCacheName"], "status": cache.get("Status"), "engine": cache.get("Engine"),
        "major_engine_version": cache.get("MajorEngineVersion"), "full_engine_version": cache.get("FullEngineVersion"),
        "description": cache.get("Description"), "arn": cache.get("ARN"),
        "created": cache["CreateTime"].isoformat() if cache.get("CreateTime") else None,
        "endpoint": _endpoint(cache.get("Endpoint")), "reader_endpoint": _endpoint(cache.get("ReaderEndpoint")),
        "limits": {"data_min_gb": data.get("Minimum"), "data_max_gb": data.get("Maximum"),
                   "ecpu_min": ecpu.get("Minimum"), "ecpu_max": ecpu.get("Maximum")},
        "user_group_id": cache.get("UserGroupId"), "snapshot_retention_limit": cache.get("SnapshotRetentionLimit"),
        "daily_snapshot_time": cache.get("DailySnapshotTime"),
        "shards": shards, "shards_error": shards_error,
        "usage": {"bytes_used": usage.get("BytesUsedForCache"), "ecpu_per_second": usage.get("ElastiCacheProcessingUnits"),
                  "connections": usage.get("CurrConnections")},
    }


def _query(name: str, query_id: str, metric: str, stat: str, period: int) -> dict[str, Any]:
    return {"Id": query_id, "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": [{"Name": "clusterId", "Value": name}]},
        "Period": period, "Stat": stat}}


def latest(fleet: Fleet, name: str, metrics: Sequence[str]) -> dict[str, float]:
    """Each metric's newest 1-second value of the last minute (per second: a Sum of one second)."""
    end = dt.datetime.now(dt.UTC)
    page = fleet.call("cloudwatch", "get_metric_data", StartTime=end - dt.timedelta(seconds=60), EndTime=end,
                      ScanBy="TimestampDescending",
                      MetricDataQueries=[_query(name, f"q{i}", m, "Sum" if m == "ElastiCacheProcessingUnits" else "Average", 1)
                                         for i, m in enumerate(metrics)])
    found = {}
    for result in page.get("MetricDataResults", []):
        if result.get("Values"):
            found[metrics[int(result["Id"][1:])]] = float(result["Values"][0])
    return found


def metric_series(
    fleet: Fleet, name: str, metrics: Sequence[tuple[str, str]], *, start: dt.datetime, end: dt.datetime, period: int,
) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """GetMetricData of the cache as a whole: (metric, stat) -> (ISO timestamp, value), oldest first."""
    queries = [_query(name, f"q{i}", metric, stat, period) for i, (metric, stat) in enumerate(metrics)]
    series: dict[tuple[str, str], list[tuple[str, float]]] = {pair: [] for pair in metrics}
    token: str | None = None
    while True:
        page = fleet.call("cloudwatch", "get_metric_data", MetricDataQueries=queries, StartTime=start, EndTime=end,
                          ScanBy="TimestampAscending", **({"NextToken": token} if token else {}))
        for result in page.get("MetricDataResults", []):
            pair = metrics[int(result["Id"][1:])]
            series[pair].extend((t.isoformat(), float(v)) for t, v in zip(result["Timestamps"], result["Values"], strict=False))
        token = page.get("NextToken")
        if not token:
            break
    for values in series.values():
        values.sort()
    return series
