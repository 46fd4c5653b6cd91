"""Serverless caches through boto3: ElastiCache's faults for bad requests (nothing half-created),
DescribeServerlessCaches' filter and paging, the describe shape against botocore's output shape,
tags on its ARN, its group hidden from the replication group calls, and the lifecycle's statuses."""

from __future__ import annotations

import botocore.session

from helpers import events_of, expect, wait_for

MODEL = botocore.session.get_session().get_service_model("elasticache")



def described(ec, name):
    found = [c for c in ec.describe_serverless_caches()["ServerlessCaches"] if c["ServerlessCacheName"] == name]
    return found[0] if found else None


def wait_status(ec, name, status="available"):
    return wait_for(lambda: (c := described(ec, name)) is not None and c["Status"] == status and c,
                    what=f"serverless cache {name} {status}")


def wait_gone(ec, name):
    wait_for(lambda: described(ec, name) is None, what=f"serverless cache {name} gone")


def check_shape(value, shape):
    """Every member returned is one of the shape's, of the shape's type (recursively)."""
    if shape.type_name == "structure":
        assert isinstance(value, dict)
        unknown = set(value) - set(shape.members) - {"ResponseMetadata"}
        assert not unknown, f"{shape.name}: {unknown}"
        for name, member in value.items():
            if name in shape.members:
                check_shape(member, shape.members[name])
    elif shape.type_name == "list":
        assert isinstance(value, list)
        for item in value:
            check_shape(item, shape.member)
    elif shape.type_name == "integer":
        assert isinstance(value, int)
    elif shape.type_name == "string":
        assert isinstance(value, str)


def nothing_of(ec, name):
    """No cache, and no group behind one: neither was ever recorded (their creation has an event)."""
    assert described(ec, name) is None
    assert events_of(ec, name) == [] and events_of(ec, f"serverless--{name}") == []


def test_bad_requests_get_elasticaches_faults_and_create_nothing(ec):
    expect("ServerlessCacheNotFoundFault", ec.describe_serverless_caches, status=404, ServerlessCacheName="nope")
    expect("ServerlessCacheNotFoundFault", ec.modify_serverless_cache, ServerlessCacheName="nope", Description="x")
    expect("ServerlessCacheNotFoundFault", ec.delete_serverless_cache, ServerlessCacheName="nope")
    expect("InvalidParameterValue", ec.create_serverless_cache, status=400, says="ServerlessCacheName",
           ServerlessCacheName="bad--name", Engine="valkey")
    expect("InvalidParameterValue", ec.create_serverless_cache, says="memcached", ServerlessCacheName="sl-mem",
           Engine="memcached")
    expect("InvalidParameterValue", ec.create_serverless_cache, says="valid values are GB", ServerlessCacheName="sl-unit",
           Engine="valkey", CacheUsageLimits={"DataStorage": {"Maximum": 5, "Unit": "TB"}})
    expect("InvalidParameterCombination", ec.create_serverless_cache, says="lower the Minimum",
           ServerlessCacheName="sl-minmax", Engine="valkey",
           CacheUsageLimits={"DataStorage": {"Minimum": 9, "Maximum": 2, "Unit": "GB"}})
    expect("InvalidParameterValue", ec.create_serverless_cache, says="EngineVersion 3",
           ServerlessCacheName="sl-major", Engine="valkey", MajorEngineVersion="3")
    expect("InvalidParameterValue", ec.create_serverless_cache, says="second availability zone",
           ServerlessCacheName="sl-subnet", Engine="valkey", SubnetIds=["subnet-us-east-1a"])
    # Looked up after the checks: an unknown user group, and nothing is left behind.
    expect("UserGroupNotFound", ec.create_serverless_cache, ServerlessCacheName="sl-ug", Engine="valkey",
           UserGroupId="no-such-group")
    expect("InvalidParameterValue", ec.describe_serverless_caches, says="MaxResults", MaxResults=51)
    expect("InvalidParameterValue", ec.describe_serverless_caches, says="NextToken", NextToken="garbage!")
    for name in ("sl-mem", "sl-unit", "sl-minmax", "sl-major", "sl-subnet", "sl-ug"):
        nothing_of(ec, name)


def test_lifecycle_paging_shape_tags_and_the_hidden_group(ec, server):
    created = ec.create_serverless_cache(
        ServerlessCacheName="sl-api-a", Engine="valkey", Description="first",
        CacheUsageLimits={"DataStorage": {"Maximum": 2, "Unit": "GB"}, "ECPUPerSecond": {"Maximum": 5000}},
        Tags=[{"Key": "team", "Value": "cache"}], SecurityGroupIds=["sg-1"],
        SubnetIds=["subnet-us-east-1a", "subnet-us-east-1b"], DailySnapshotTime="04:00", SnapshotRetentionLimit=3,
    )["ServerlessCache"]
    assert created["Status"] == "creating"
    expect("ServerlessCacheAlreadyExistsFault", ec.create_serverless_cache, ServerlessCacheName="SL-API-A",
           Engine="valkey")
    expect("InvalidServerlessCacheStateFault", ec.modify_serverless_cache, says="once it is available",
           ServerlessCacheName="sl-api-a", Description="too early")
    ec.create_serverless_cache(ServerlessCacheName="sl-api-b", Engine="valkey")
    cache = wait_status(ec, "sl-api-a")
    wait_status(ec, "sl-api-b")

    check_shape(cache, MODEL.shape_for("ServerlessCache"))
    assert cache["ARN"] == "arn:aws:elasticache:us-east-1:000000000000:serverlesscache:sl-api-a"
    assert cache["Endpoint"]["Port"] == 6379 and cache["ReaderEndpoint"]["Address"] == cache["Endpoint"]["Address"]
    assert cache["CacheUsageLimits"] == {"DataStorage": {"Maximum": 2, "Unit": "GB"}, "ECPUPerSecond": {"Maximum": 5000}}
    assert cache["FullEngineVersion"].startswith(cache["MajorEngineVersion"] + ".")
    assert (cache["DailySnapshotTime"], cache["SnapshotRetentionLimit"], cache["SecurityGroupIds"]) == ("04:00", 3, ["sg-1"])
    assert cache["SubnetIds"] == ["subnet-us-east-1a", "subnet-us-east-1b"]
    assert ec.list_tags_for_resource(ResourceName=cache["ARN"])["TagList"] == [{"Key": "team", "Value": "cache"}]

    # The group behind it is not a replication group to its users, nor are its nodes cache clusters.
    assert not [g for g in ec.describe_replication_groups()["ReplicationGroups"]
                if g["ReplicationGroupId"].startswith("serverless")]
    assert not [c for c in ec.describe_cache_clusters()["CacheClusters"] if c["CacheClusterId"].startswith("serverless")]
    expect("ReplicationGroupNotFoundFault", ec.describe_replication_groups, ReplicationGroupId="serverless--sl-api-a")
    expect("ReplicationGroupNotFoundFault", ec.delete_replication_group, ReplicationGroupId="serverless--sl-api-a")
    expect("CacheClusterNotFound", ec.describe_cache_clusters, CacheClusterId="serverless--sl-api-a-0001-001")
    # Nor do their events show, or their ARNs take tags (the cache's own ARN does).
    assert not [e for e in ec.describe_events(Duration=60)["Events"] if e["SourceIdentifier"].startswith("serverless--")]
    assert events_of(ec, "serverless--sl-api-a") == [] and events_of(ec, "sl-api-a")
    for arn in ("arn:aws:elasticache:us-east-1:000000000000:replicationgroup:serverless--sl-api-a",
                "arn:aws:elasticache:us-east-1:000000000000:cluster:serverless--sl-api-a-0001-001"):
        expect("ReplicationGroupNotFoundFault" if ":replicationgroup:" in arn else "CacheClusterNotFound",
               ec.list_tags_for_resource, ResourceName=arn)

    # Paging: the filter, then MaxResults with NextToken.
    mine = ["sl-api-a", "sl-api-b"]
    first = ec.describe_serverless_caches(MaxResults=1)
    names = [c["ServerlessCacheName"] for c in first["ServerlessCaches"]]
    token = first.get("NextToken")
    while token:
        page = ec.describe_serverless_caches(MaxResults=1, NextToken=token)
        names += [c["ServerlessCacheName"] for c in page["ServerlessCaches"]]
        token = page.get("NextToken")
    assert set(mine) <= set(names) and names == sorted(names)
    assert [c["ServerlessCacheName"] for c in
            ec.describe_serverless_caches(ServerlessCacheName="SL-API-B")["ServerlessCaches"]] == ["sl-api-b"]

    modified = ec.modify_serverless_cache(
        ServerlessCacheName="sl-api-a", Description="second", CacheUsageLimits={"DataStorage": {"Maximum": 3, "Unit": "GB"}},
    )["ServerlessCache"]
    assert modified["Description"] == "second"
    assert modified["CacheUsageLimits"]["DataStorage"] == {"Maximum": 3, "Unit": "GB"}
    assert modified["CacheUsageLimits"]["ECPUPerSecond"] == {"Maximum": 5000}
    expect("InvalidParameterCombination", ec.modify_serverless_cache, says="no user group to remove",
           ServerlessCacheName="sl-api-a", RemoveUserGroup=True)

    # Asked again at once: a cache being deleted cannot be deleted again (it is gone soon after).
    assert ec.delete_serverless_cache(ServerlessCacheName="sl-api-a")["ServerlessCache"]["Status"] == "deleting"
    expect("InvalidServerlessCacheStateFault", ec.delete_serverless_cache, ServerlessCacheName="sl-api-a")
    for name in mine:
        if name != "sl-api-a":
            assert ec.delete_serverless_cache(ServerlessCacheName=name)["ServerlessCache"]["Status"] == "deleting"
    for name in mine:
        wait_gone(ec, name)
    assert any("Serverless cache sl-api-a deleted" in m for m in events_of(ec, "sl-api-a"))
