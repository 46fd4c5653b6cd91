"""The node quota per region (`cachefleet up --max-nodes`): every way of adding nodes is refused past it
with ElastiCache's NodeQuotaForCustomerExceeded and its words, and nothing is half-created."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from helpers import wait_group

QUOTA_WORDS = "Customer node quota exceeded. You can have at most 3 nodes in this region."


def refused(call, **kwargs) -> str:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    assert error["Code"] == "NodeQuotaForCustomerExceeded", error
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(error["Message"])


def test_nodes_past_the_quota_are_refused_in_elasticache_words(make_server):
    ec = make_server("--max-nodes", "3", "--warm-nodes", "0").client()
    ec.create_replication_group(ReplicationGroupId="q-two", ReplicationGroupDescription="two", Engine="valkey",
                                CacheNodeType="cache.t4g.micro", NumCacheClusters=2)
    message = refused(ec.create_replication_group, ReplicationGroupId="q-more", ReplicationGroupDescription="more",
                      Engine="valkey", CacheNodeType="cache.t4g.micro", NumCacheClusters=2)
    assert message.startswith(QUOTA_WORDS) and "2 are in use and this asks for 2 more" in message, message
    assert "--max-nodes" in message
    ids = [g["ReplicationGroupId"] for g in ec.describe_replication_groups()["ReplicationGroups"]]
    assert ids == ["q-two"]  # nothing half-created
    assert len(ec.describe_cache_clusters()["CacheClusters"]) == 2
    wait_group(ec, "q-two")
    refused(ec.increase_replica_count, ReplicationGroupId="q-two", NewReplicaCount=3, ApplyImmediately=True)
    ec.create_cache_cluster(CacheClusterId="q-solo", Engine="valkey", CacheNodeType="cache.t4g.micro")  # the third
    message = refused(ec.create_cache_cluster, CacheClusterId="q-fourth", Engine="valkey", CacheNodeType="cache.t4g.micro")
    assert message.startswith(QUOTA_WORDS) and "3 are in use and this asks for 1 more" in message, message
    assert sorted(c["CacheClusterId"] for c in ec.describe_cache_clusters()["CacheClusters"]) == [
        "q-solo", "q-two-001", "q-two-002"]
