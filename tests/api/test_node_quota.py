"""The node quota per region (`cachefleet up --max-nodes`): every way of adding nodes is refused past it
with ElastiCache's NodeQuotaForCustomerExceeded and its words, and nothing is half-created."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from helpers import wait_cluster, wait_for, wait_group

QUOTA_WORDS = "Customer node quota exceeded. You can have at most 3 nodes in this region."
MICRO = {"Engine": "valkey", "CacheNodeType": "cache.t4g.micro"}


def cluster_ids(ec) -> list[str]:
    return sorted(c["CacheClusterId"] for c in ec.describe_cache_clusters()["CacheClusters"])


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
    # The region is full (3 of 3): a replica added to q-two, a group made around q-solo, refused alike.
    message = refused(ec.create_cache_cluster, CacheClusterId="q-two-003", ReplicationGroupId="q-two")
    assert "3 are in use and this asks for 1 more" in message, message
    wait_cluster(ec, "q-solo")
    refused(ec.create_replication_group, ReplicationGroupId="q-around", ReplicationGroupDescription="around",
            PrimaryClusterId="q-solo", NumCacheClusters=2)
    assert cluster_ids(ec) == ["q-solo", "q-two-001", "q-two-002"]
    groups = {g["ReplicationGroupId"]: g for g in ec.describe_replication_groups()["ReplicationGroups"]}
    assert list(groups) == ["q-two"] and groups["q-two"]["MemberClusters"] == ["q-two-001", "q-two-002"]
    assert "ReplicationGroupId" not in ec.describe_cache_clusters(CacheClusterId="q-solo")["CacheClusters"][0]


def test_cluster_mode_paths_past_the_quota_create_nothing(make_server):
    ec = make_server("--max-nodes", "4", "--warm-nodes", "0").client()
    message = refused(ec.create_replication_group, ReplicationGroupId="q-big", ReplicationGroupDescription="big",
                      NumNodeGroups=3, ReplicasPerNodeGroup=1, **MICRO)
    assert message.startswith("Customer node quota exceeded. You can have at most 4 nodes in this region. "
                              "0 are in use and this asks for 6 more"), message
    assert ec.describe_replication_groups()["ReplicationGroups"] == []
    assert cluster_ids(ec) == []
    ec.create_replication_group(ReplicationGroupId="q-sharded", ReplicationGroupDescription="sharded",
                                NumNodeGroups=2, ReplicasPerNodeGroup=1, **MICRO)  # 4 of 4
    wait_group(ec, "q-sharded")
    before = cluster_ids(ec)
    assert len(before) == 4
    message = refused(ec.modify_replication_group_shard_configuration, ReplicationGroupId="q-sharded",
                      NodeGroupCount=3, ApplyImmediately=True)
    assert "4 are in use and this asks for 2 more" in message, message
    refused(ec.increase_replica_count, ReplicationGroupId="q-sharded", NewReplicaCount=2, ApplyImmediately=True)
    group = ec.describe_replication_groups(ReplicationGroupId="q-sharded")["ReplicationGroups"][0]
    assert group["Status"] == "available"
    assert len(group["NodeGroups"]) == 2 and sorted(group["MemberClusters"]) == before
    assert all(len(node_group["NodeGroupMembers"]) == 2 for node_group in group["NodeGroups"])
    assert cluster_ids(ec) == before
    # Freed nodes count at once: one shard fewer makes room for one single-node cluster, no more.
    ec.modify_replication_group_shard_configuration(ReplicationGroupId="q-sharded", NodeGroupCount=1,
                                                    NodeGroupsToRemove=["0002"], ApplyImmediately=True)
    wait_for(lambda: len(cluster_ids(ec)) == 2, timeout=60, what="the removed shard's nodes gone")
    ec.create_cache_cluster(CacheClusterId="q-third", **MICRO)
    ec.create_cache_cluster(CacheClusterId="q-fourth", **MICRO)
    refused(ec.create_cache_cluster, CacheClusterId="q-fifth", **MICRO)


def test_the_default_quota_is_elasticaches_300(make_server):
    ec = make_server("--warm-nodes", "0").client()
    # 320 nodes: within a cluster's own 500, past the region's 300.
    message = refused(ec.create_replication_group, ReplicationGroupId="q-wide", ReplicationGroupDescription="wide",
                      NumNodeGroups=160, ReplicasPerNodeGroup=1, **MICRO)
    assert message.startswith("Customer node quota exceeded. You can have at most 300 nodes in this region. "
                              "0 are in use and this asks for 320 more"), message
    assert ec.describe_replication_groups()["ReplicationGroups"] == []
    # Past a cluster's 500 nodes, ElastiCache's per-cluster fault comes first, whatever the region's quota.
    with pytest.raises(ClientError) as caught:
        ec.create_replication_group(ReplicationGroupId="q-wider", ReplicationGroupDescription="wider",
                                    NumNodeGroups=300, ReplicasPerNodeGroup=1, **MICRO)
    assert caught.value.response["Error"]["Code"] == "NodeQuotaForClusterExceeded"
    assert "at most 500 nodes" in caught.value.response["Error"]["Message"]
    assert cluster_ids(ec) == []
