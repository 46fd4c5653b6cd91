"""Engine upgrades, pending changes and service updates through the API: ElastiCache's refusals and what
waits for the maintenance window (the rolling replacements themselves are tests/acceptance/test_upgrades.py)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from helpers import engine, events_of, wait_cluster, wait_group, wait_group_gone


def expect(code: str, call, /, *, says: str | None = None, **kwargs) -> str:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    assert error["Code"] == code, f"{call.__name__}({kwargs}) -> {error}"
    if says is not None:
        assert says in error["Message"], error["Message"]
    return str(error["Message"])


def pending_of(ec, group_id):
    clusters = ec.describe_cache_clusters()["CacheClusters"]
    return {c["CacheClusterId"]: c["PendingModifiedValues"] for c in clusters if c.get("ReplicationGroupId") == group_id}


@pytest.fixture(scope="module")
def groups(server):
    """A Valkey 8.1 group on a custom parameter group, a Redis OSS group on a custom one, a Redis OSS
    standalone cluster, created once for the module."""
    ec = server.client()
    ec.create_cache_parameter_group(CacheParameterGroupName="upg-v8", CacheParameterGroupFamily="valkey8", Description="v8")
    ec.create_cache_parameter_group(CacheParameterGroupName="upg-r7", CacheParameterGroupFamily="redis7", Description="r7")
    ec.modify_cache_parameter_group(CacheParameterGroupName="upg-r7",
                                    ParameterNameValues=[{"ParameterName": "databases", "ParameterValue": "32"}])
    for name, family, databases in (("upg-v8-same", "valkey8", "32"), ("upg-v8-other", "valkey8", "16"),
                                    ("upg-v9", "valkey9", "16")):
        ec.create_cache_parameter_group(CacheParameterGroupName=name, CacheParameterGroupFamily=family, Description=name)
        ec.modify_cache_parameter_group(CacheParameterGroupName=name,
                                        ParameterNameValues=[{"ParameterName": "databases", "ParameterValue": databases}])
    ec.create_replication_group(ReplicationGroupId="apiupg-v", ReplicationGroupDescription="v", Engine="valkey",
                                EngineVersion="8.1", CacheNodeType="cache.t4g.micro", NumCacheClusters=2,
                                CacheParameterGroupName="upg-v8")
    ec.create_replication_group(ReplicationGroupId="apiupg-r", ReplicationGroupDescription="r", Engine="redis",
                                CacheNodeType="cache.t4g.micro", CacheParameterGroupName="upg-r7")
    ec.create_cache_cluster(CacheClusterId="apiupg-solo", Engine="redis", CacheNodeType="cache.t4g.micro")
    wait_group(ec, "apiupg-v")
    wait_group(ec, "apiupg-r")
    wait_cluster(ec, "apiupg-solo")
    yield ec
    ec.delete_replication_group(ReplicationGroupId="apiupg-v")
    ec.delete_replication_group(ReplicationGroupId="apiupg-r")
    ec.delete_cache_cluster(CacheClusterId="apiupg-solo")
    wait_group_gone(ec, "apiupg-v")
    wait_group_gone(ec, "apiupg-r")


def test_engine_changes_elasticache_refuses(groups):
    ec = groups
    modify = ec.modify_replication_group
    expect("InvalidParameterValue", modify, says="is not installed", ReplicationGroupId="apiupg-v", EngineVersion="7.2")
    expect("InvalidParameterValue", modify, says="memcached", ReplicationGroupId="apiupg-v", Engine="memcached",
           EngineVersion="1.6")
    expect("InvalidParameterCombination", modify, says="never Valkey to Redis OSS", ReplicationGroupId="apiupg-v",
           Engine="redis", EngineVersion="7.0")
    # A custom parameter group must be followed by one of the new family, named in the same request.
    expect("InvalidParameterCombination", modify,
           says="Expected a parameter group of family valkey9 but found one of family valkey8: upg-v8",
           ReplicationGroupId="apiupg-v", EngineVersion="9.1", ApplyImmediately=True)
    expect("InvalidParameterCombination", modify, says="Expected a parameter group of family valkey9",
           ReplicationGroupId="apiupg-v", EngineVersion="9.1", CacheParameterGroupName="upg-v8-same")
    expect("InvalidParameterCombination", modify, says="needs EngineVersion", ReplicationGroupId="apiupg-r",
           Engine="valkey")
    # Redis OSS to Valkey with custom groups: the same static values (databases 32 here).
    expect("InvalidParameterCombination", modify, says="same static parameter values", ReplicationGroupId="apiupg-r",
           Engine="valkey", EngineVersion="8.1", CacheParameterGroupName="upg-v8-other")
    # A standalone Redis OSS cluster goes to Valkey through a replication group; members through their group.
    expect("InvalidParameterCombination", ec.modify_cache_cluster, says="first create a replication group",
           CacheClusterId="apiupg-solo", Engine="valkey", EngineVersion="8.1")
    expect("InvalidParameterCombination", ec.modify_cache_cluster, says="ModifyReplicationGroup",
           CacheClusterId="apiupg-v-001", EngineVersion="9.1")
    # The major.minor already run is no change (a tool that always sends it starts nothing).
    assert modify(ReplicationGroupId="apiupg-v", EngineVersion="8.1", ApplyImmediately=True)[
        "ReplicationGroup"]["Status"] == "available"
    for group_id in ("apiupg-v", "apiupg-r"):
        assert all(p == {} for p in pending_of(ec, group_id).values())
        assert not any("pgrad" in m for m in events_of(ec, group_id))


def test_an_upgrade_without_apply_immediately_waits_and_can_be_cancelled(groups):
    ec = groups
    answer = ec.modify_replication_group(ReplicationGroupId="apiupg-r", Engine="valkey", EngineVersion="8.1",
                                         CacheParameterGroupName="upg-v8-same")["ReplicationGroup"]
    assert answer["Status"] == "available"
    assert pending_of(ec, "apiupg-r") == {"apiupg-r-001": {"EngineVersion": "8.1.8"}}
    cluster = ec.describe_cache_clusters(CacheClusterId="apiupg-r-001")["CacheClusters"][0]
    # Nothing changed yet: the node runs Redis OSS with the Redis OSS group.
    assert (cluster["Engine"], cluster["CacheParameterGroup"]["CacheParameterGroupName"]) == ("redis", "upg-r7")
    address = wait_group(ec, "apiupg-r")["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    assert "valkey_version" not in engine(address).info("server")
    assert any("waits for the maintenance window sun:05:00-sun:06:00 (next at" in m for m in events_of(ec, "apiupg-r"))
    # Asking for the version it runs cancels what waits.
    ec.modify_replication_group(ReplicationGroupId="apiupg-r", EngineVersion="7.0")
    assert pending_of(ec, "apiupg-r") == {"apiupg-r-001": {}}
    assert any("Pending engine upgrade of replication group apiupg-r cancelled" in m for m in events_of(ec, "apiupg-r"))


def test_a_node_type_change_without_apply_immediately_waits_for_the_window(groups):
    ec = groups
    ec.modify_replication_group(ReplicationGroupId="apiupg-v", CacheNodeType="cache.t4g.small")
    group = ec.describe_replication_groups(ReplicationGroupId="apiupg-v")["ReplicationGroups"][0]
    assert (group["Status"], group["CacheNodeType"]) == ("available", "cache.t4g.micro")
    assert all(p == {"CacheNodeType": "cache.t4g.small"} for p in pending_of(ec, "apiupg-v").values())
    assert any("node type change from cache.t4g.micro to cache.t4g.small is pending" in m
               for m in events_of(ec, "apiupg-v"))
    ec.modify_replication_group(ReplicationGroupId="apiupg-v", CacheNodeType="cache.t4g.micro")
    assert all(p == {} for p in pending_of(ec, "apiupg-v").values())


def test_service_updates_without_a_second_build(groups):
    ec = groups
    names = [u["ServiceUpdateName"] for u in ec.describe_service_updates()["ServiceUpdates"]]
    # This server's catalog has one build per major.minor: no engine update to offer.
    assert names == []
    assert ec.describe_update_actions()["UpdateActions"] == []
    expect("ServiceUpdateNotFoundFault", ec.describe_service_updates, ServiceUpdateName="elasticache-20260101-001")
    expect("ServiceUpdateNotFoundFault", ec.batch_apply_update_action, ServiceUpdateName="elasticache-20260101-001",
           ReplicationGroupIds=["apiupg-v"])
    expect("ServiceUpdateNotFoundFault", ec.batch_stop_update_action, ServiceUpdateName="elasticache-20260101-001",
           CacheClusterIds=["apiupg-solo"])
    expect("InvalidParameterValue", ec.describe_update_actions, says="UpdateActionStatus", UpdateActionStatus=["done"])
    expect("InvalidParameterValue", ec.describe_service_updates, says="ServiceUpdateStatus", ServiceUpdateStatus=["new"])


def test_a_group_with_tls_is_not_upgraded_to_a_build_without_it(ec):
    """Its nodes start with TLS: a build without it would not start (the upgrade would loop on
    failed starts), so ElastiCache-style validation refuses it before anything changes."""
    ec.create_replication_group(ReplicationGroupId="upg-tls", ReplicationGroupDescription="tls", Engine="redis",
                                EngineVersion="7.0", CacheNodeType="cache.t4g.micro", TransitEncryptionEnabled=True)
    wait_group(ec, "upg-tls", timeout=60)
    message = expect("InvalidParameterCombination", ec.modify_replication_group, ReplicationGroupId="upg-tls",
                     Engine="valkey", EngineVersion="9.1", ApplyImmediately=True, says="built without TLS")
    assert message.startswith("EngineVersion:")
    group = wait_group(ec, "upg-tls")
    assert group["Status"] == "available" and not group.get("PendingModifiedValues")
    ec.delete_replication_group(ReplicationGroupId="upg-tls")
    wait_group_gone(ec, "upg-tls")
