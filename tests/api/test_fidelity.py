"""What a tool written against ElastiCache expects beyond the operation list: Memcached refused
as such, ARNs in the configured account, ElastiCache's wording of its errors."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import expect

MEMCACHED = "Cachefleet serves Valkey and Redis OSS only"


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        # Everything else of each call is wrong too: the memcached refusal comes before any other check.
        ("create_cache_cluster", {"CacheClusterId": "fid-m", "Engine": "memcached", "NumCacheNodes": 3, "AZMode": "cross-az"}),
        ("create_replication_group", {"ReplicationGroupId": "fid-m", "ReplicationGroupDescription": "m", "Engine": "memcached",
                                      "NumCacheClusters": 9}),
        ("create_cache_parameter_group", {"CacheParameterGroupName": "fid-m", "CacheParameterGroupFamily": "memcached1.6",
                                          "Description": "m"}),
        ("describe_engine_default_parameters", {"CacheParameterGroupFamily": "memcached1.6"}),
        ("create_serverless_cache", {"ServerlessCacheName": "fid-m", "Engine": "Memcached", "MajorEngineVersion": "x"}),
        ("modify_replication_group", {"ReplicationGroupId": "fid-none", "Engine": "memcached"}),
        ("modify_cache_cluster", {"CacheClusterId": "fid-none", "Engine": "memcached", "NumCacheNodes": 2}),
        ("create_user", {"UserId": "fid-m", "UserName": "fid-m", "Engine": "memcached", "AccessString": "on"}),
    ],
)
def test_memcached_is_refused_first_everywhere_an_engine_is_taken(ec: Any, operation: str, params: dict[str, Any]) -> None:
    expect("InvalidParameterValue", getattr(ec, operation), says=MEMCACHED, **params)


def test_memcached_engine_versions_are_an_empty_list(ec: Any) -> None:
    # A filter, not a request for memcached: an engine with no versions here lists none, as a tool
    # enumerating the engines expects.
    assert ec.describe_cache_engine_versions(Engine="memcached")["CacheEngineVersions"] == []
    assert ec.describe_cache_engine_versions(CacheParameterGroupFamily="memcached1.6")["CacheEngineVersions"] == []
