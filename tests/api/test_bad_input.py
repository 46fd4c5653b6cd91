"""Every invalid request gets ElastiCache's error code, a message saying what to change, and changes nothing."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from helpers import (
    Server,
    engine_pids,
    error_code,
    events_of,
    free_port,
    fresh_network,
    raw_call,
    wait_cluster,
    wait_for,
    wait_group,
    wait_group_gone,
)

FAKES = Path(__file__).resolve().parent.parent / "fakes"
VALID = {
    "ReplicationGroupId": "bad",
    "ReplicationGroupDescription": "bad input",
    "Engine": "valkey",
    "CacheNodeType": "cache.t4g.micro",
}


def expect(code: str, call, /, *, status: int | None = None, says: str | None = None, **kwargs) -> str:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    assert error["Code"] == code, f"{call.__name__}({kwargs}) -> {error}"
    assert len(error["Message"]) > 20, error
    if status is not None:
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    if says is not None:
        assert says in error["Message"], error["Message"]
    return str(error["Message"])


@pytest.fixture(scope="module")
def stable(server):
    """A group that stays available for the whole module."""
    ec = server.client()
    ec.create_replication_group(**{**VALID, "ReplicationGroupId": "stable", "NumCacheClusters": 2})
    wait_group(ec, "stable")
    yield "stable"
    ec.delete_replication_group(ReplicationGroupId="stable")
    wait_group_gone(ec, "stable")


def _nothing_created(server, ec, group_id="bad"):
    with pytest.raises(ec.exceptions.ReplicationGroupNotFoundFault):
        ec.describe_replication_groups(ReplicationGroupId=group_id)
    clusters = [c["CacheClusterId"] for c in ec.describe_cache_clusters()["CacheClusters"]]
    assert not [c for c in clusters if c.startswith(f"{group_id}-")]
    assert not [k for k in engine_pids(server.data_dir) if f"/{group_id}-" in k]


@pytest.mark.parametrize(
    ("changes", "code", "says"),
    [
        ({"ReplicationGroupId": "1abc"}, "InvalidParameterValue", "begin with a letter"),
        ({"ReplicationGroupId": "a--b"}, "InvalidParameterValue", "consecutive hyphens"),
        ({"ReplicationGroupId": "ends-"}, "InvalidParameterValue", "hyphen"),
        ({"ReplicationGroupId": "x" * 41}, "InvalidParameterValue", "at most 40"),
        ({"NumCacheClusters": 7}, "InvalidParameterValue", "1 to 6"),
        ({"NumCacheClusters": 0}, "InvalidParameterValue", "1 to 6"),
        ({"ReplicasPerNodeGroup": 6}, "InvalidParameterValue", "0 to 5"),
        ({"NumCacheClusters": 2, "ReplicasPerNodeGroup": 3}, "InvalidParameterCombination", "disagree"),
        ({"NumCacheClusters": 2, "PreferredCacheClusterAZs": ["us-east-1a"]}, "InvalidParameterCombination", "one zone per cluster"),
        ({"NumCacheClusters": 1, "PreferredCacheClusterAZs": ["us-west-2a"]}, "InvalidParameterValue", "zones of us-east-1"),
        ({"NumCacheClusters": 1, "PreferredCacheClusterAZs": ["us-east-1f"]}, "InvalidParameterValue", "not in cache subnet group default"),
        ({"Engine": "memcached"}, "InvalidParameterValue", "Cachefleet serves Valkey and Redis OSS only"),
        ({"Engine": "dragonfly"}, "InvalidParameterValue", "valkey or redis"),
        ({"EngineVersion": "6.2"}, "InvalidParameterValue", "valkey 8.1.8"),
        ({"CacheNodeType": "cache.huge"}, "InvalidParameterValue", "cache.t4g.micro"),
        ({"CacheNodeType": None}, "InvalidParameterValue", "CacheNodeType must be provided"),
        ({"Port": 0}, "InvalidParameterValue", "between 1 and 65535"),
        ({"Port": 70000}, "InvalidParameterValue", "between 1 and 65535"),
        ({"CacheSubnetGroupName": "nope"}, "CacheSubnetGroupNotFoundFault", "nope"),
        ({"CacheParameterGroupName": "custom-params"}, "CacheParameterGroupNotFound", "custom-params"),
        ({"CacheParameterGroupName": "default.redis7"}, "InvalidParameterCombination", "family"),
        # TLS on a Valkey wheel (built without it): the engines that can are named.
        ({"TransitEncryptionEnabled": True}, "InvalidParameterCombination", "Engines with TLS on this host: redis"),
        ({"AuthToken": "a-very-long-auth-token-1234"}, "InvalidParameterValue", "encryption-in-transit"),
        ({"UserGroupIds": ["no-such-group"]}, "UserGroupNotFound", "no-such-group"),
        ({"SnapshotRetentionLimit": 36}, "InvalidParameterValue", "0 (off) to 35 days"),
        ({"SnapshotRetentionLimit": -1}, "InvalidParameterValue", "SnapshotRetentionLimit"),
        ({"SnapshotWindow": "05:30-06:30"}, "InvalidParameterCombination", "overlaps PreferredMaintenanceWindow"),
        ({"KmsKeyId": "my-key"}, "InvalidParameterCombination", "AtRestEncryptionEnabled"),
        ({"SnapshotName": "no-such-snapshot"}, "SnapshotNotFoundFault", "no-such-snapshot"),
        ({"SnapshotName": "s", "SnapshotArns": ["arn:aws:s3:::bucket/k.rdb"]}, "InvalidParameterCombination", "not both"),
        ({"SnapshotArns": ["arn:aws:s3:::no-such-bucket/k.rdb"]}, "InvalidParameterValue", "does not exist"),
        ({"SnapshotArns": ["s3://bucket/k.rdb"]}, "InvalidParameterValue", "arn:aws:s3:::bucket/key.rdb"),
        ({"SecurityGroupIds": ["sg-123"]}, "InvalidParameterValue", "8 or 17 hexadecimal digits"),
        ({"CacheSecurityGroupNames": ["nope"]}, "CacheSecurityGroupNotFound", "nope"),
        ({"PrimaryClusterId": "missing-cluster"}, "CacheClusterNotFound", "missing-cluster"),
        ({"Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]}, "TagQuotaPerResourceExceeded", "50"),
        ({"Tags": [{"Key": "aws:owner", "Value": "v"}]}, "InvalidParameterValue", "aws:"),
        ({"PreferredMaintenanceWindow": "sun:05:00-sun:05:30"}, "InvalidParameterValue", "60 minutes"),
        ({"PreferredMaintenanceWindow": "someday"}, "InvalidParameterValue", "ddd:hh24:mi"),
        ({"SnapshotWindow": "25:00-26:00"}, "InvalidParameterValue", "hh24:mi"),
        ({"NetworkType": "ipv6"}, "InvalidParameterCombination", "NetworkType"),
        ({"Durability": "sync"}, "InvalidParameterCombination", "Durability sync"),
        ({"Durability": "async"}, "InvalidParameterCombination", "default or disabled"),
    ],
)
def test_create_replication_group_rejects(server, ec, changes, code, says):
    params = {**VALID, **changes}
    params = {k: v for k, v in params.items() if v is not None}
    expect(code, ec.create_replication_group, says=says, **params)
    _nothing_created(server, ec)


def test_create_replication_group_that_exists(ec, stable):
    expect("ReplicationGroupAlreadyExists", ec.create_replication_group, status=400, **{**VALID, "ReplicationGroupId": "STABLE"})


def test_create_replication_group_over_a_cluster_name_in_use(server, ec):
    ec.create_cache_cluster(CacheClusterId="taken-001", Engine="valkey", CacheNodeType="cache.t4g.micro")
    wait_cluster(ec, "taken-001")
    expect("CacheClusterAlreadyExists", ec.create_replication_group, says="taken-001", **{**VALID, "ReplicationGroupId": "taken"})
    with pytest.raises(ec.exceptions.ReplicationGroupNotFoundFault):
        ec.describe_replication_groups(ReplicationGroupId="taken")
    clusters = [c["CacheClusterId"] for c in ec.describe_cache_clusters()["CacheClusters"]]
    assert [c for c in clusters if c.startswith("taken-")] == ["taken-001"]
    assert "ReplicationGroupId" not in ec.describe_cache_clusters(CacheClusterId="taken-001")["CacheClusters"][0]
    ec.delete_cache_cluster(CacheClusterId="taken-001")
    ec.get_waiter("cache_cluster_deleted").wait(CacheClusterId="taken-001", WaiterConfig={"Delay": 1})


def test_required_parameters_are_checked_by_the_server(server):
    status, body = raw_call(server.url, {"Action": "CreateReplicationGroup", "Version": "2015-02-02", "ReplicationGroupId": "x"})
    assert status == 400
    assert error_code(body) == "MissingParameter"
    assert "ReplicationGroupDescription" in body


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"NumCacheClusters": "three"}, "InvalidParameterValue"),
        ({"AutomaticFailoverEnabled": "maybe"}, "InvalidParameterValue"),
        ({"NetworkType": "ipx"}, "InvalidParameterValue"),
    ],
)
def test_types_and_enums_are_checked_by_the_server(server, params, code):
    request = {"Action": "CreateReplicationGroup", "Version": "2015-02-02", **{k: str(v) for k, v in VALID.items()}, **params}
    status, body = raw_call(server.url, request)
    assert (status, error_code(body)) == (400, code), body


def test_modify_replication_group_rejects(ec, stable):
    expect("ReplicationGroupNotFoundFault", ec.modify_replication_group, status=404, ReplicationGroupId="nope")
    expect("InvalidParameterCombination", ec.modify_replication_group, says="CacheNodeType on its own",
           ReplicationGroupId=stable, CacheNodeType="cache.r7g.large", ReplicationGroupDescription="x")
    expect("InvalidParameterValue", ec.modify_replication_group, says="cache.t4g.micro",
           ReplicationGroupId=stable, CacheNodeType="cache.giant")
    expect("InvalidParameterCombination", ec.modify_replication_group, says="already uses",
           ReplicationGroupId=stable, CacheNodeType="cache.t4g.micro")
    expect("InvalidParameterValue", ec.modify_replication_group, says="invalid security group id 'sg-1'",
           ReplicationGroupId=stable, SecurityGroupIds=["sg-1"])
    expect("CacheParameterGroupNotFound", ec.modify_replication_group, status=404, says="nope",
           ReplicationGroupId=stable, CacheParameterGroupName="nope")
    expect("InvalidParameterCombination", ec.modify_replication_group, says="cannot downgrade",
           ReplicationGroupId=stable, EngineVersion="8.1", ApplyImmediately=True)
    expect("InvalidParameterCombination", ec.modify_replication_group, says="never Valkey to Redis OSS",
           ReplicationGroupId=stable, Engine="redis", EngineVersion="7.0", ApplyImmediately=True)
    expect("UserGroupNotFound", ec.modify_replication_group, says="group-1", status=404,
           ReplicationGroupId=stable, UserGroupIdsToAdd=["group-1"])
    expect("InvalidParameterCombination", ec.modify_replication_group, says="must also set TransitEncryptionMode",
           ReplicationGroupId=stable, TransitEncryptionEnabled=True)
    expect("InvalidParameterCombination", ec.modify_replication_group, says="Engines with TLS on this host: redis",
           ReplicationGroupId=stable, TransitEncryptionEnabled=True, TransitEncryptionMode="preferred")
    expect("InvalidParameterCombination", ec.modify_replication_group, says="SET is allowed only after ROTATE",
           ReplicationGroupId=stable, AuthToken="a-very-long-auth-token-1234", AuthTokenUpdateStrategy="SET")
    expect("InvalidParameterValue", ec.modify_replication_group, says="not a member",
           ReplicationGroupId=stable, PrimaryClusterId="stable-009")
    expect("InvalidParameterValue", ec.modify_replication_group, ReplicationGroupId=stable, PreferredMaintenanceWindow="bad")
    expect("InvalidParameterCombination", ec.modify_replication_group, says="Durability async",
           ReplicationGroupId=stable, Durability="async")
    group = ec.describe_replication_groups(ReplicationGroupId=stable)["ReplicationGroups"][0]
    assert group["Status"] == "available" and group["Description"] == "bad input"
    assert group["CacheNodeType"] == "cache.t4g.micro"


def test_delete_replication_group_rejects(ec):
    expect("ReplicationGroupNotFoundFault", ec.delete_replication_group, ReplicationGroupId="nope")


def test_delete_replication_group_with_a_bad_final_snapshot_name_is_refused(ec, stable):
    expect("InvalidParameterValue", ec.delete_replication_group, says="automatic.",
           ReplicationGroupId=stable, FinalSnapshotIdentifier="automatic.final")
    expect("InvalidParameterValue", ec.delete_replication_group, says="begin with a letter",
           ReplicationGroupId=stable, FinalSnapshotIdentifier="-final")
    assert ec.describe_replication_groups(ReplicationGroupId=stable)["ReplicationGroups"][0]["Status"] == "available"
    assert not [s for s in ec.describe_snapshots(ReplicationGroupId=stable)["Snapshots"] if "final" in s["SnapshotName"]]


@pytest.mark.parametrize(
    ("params", "code", "says"),
    [
        ({"CacheClusterId": "c1", "Engine": "valkey", "CacheNodeType": "cache.t4g.micro", "NumCacheNodes": 2}, "InvalidParameterValue", "exactly one node"),
        ({"CacheClusterId": "c1", "Engine": "valkey", "CacheNodeType": "cache.t4g.micro", "AZMode": "cross-az"}, "InvalidParameterValue", "Memcached"),
        ({"CacheClusterId": "c1", "Engine": "valkey"}, "InvalidParameterValue", "CacheNodeType"),
        ({"CacheClusterId": "c1", "Engine": "memcached", "CacheNodeType": "cache.t4g.micro"}, "InvalidParameterValue", "memcached"),
        ({"CacheClusterId": "c1", "Engine": "redis", "EngineVersion": "2.8", "CacheNodeType": "cache.t4g.micro"}, "InvalidParameterValue", "redis 7.0.15"),
        ({"CacheClusterId": "-c1", "Engine": "valkey", "CacheNodeType": "cache.t4g.micro"}, "InvalidParameterValue", "begin with a letter"),
        ({"CacheClusterId": "c" * 51, "Engine": "valkey", "CacheNodeType": "cache.t4g.micro"}, "InvalidParameterValue", "at most 50"),
        ({"CacheClusterId": "c1", "Engine": "valkey", "CacheNodeType": "cache.t4g.micro", "PreferredAvailabilityZone": "us-east-1e"}, "InvalidParameterValue", "subnet group"),
        ({"CacheClusterId": "c1", "Engine": "valkey", "CacheNodeType": "cache.t4g.micro", "SnapshotArns": ["arn:aws:s3:::no-bucket/k.rdb"]}, "InvalidParameterValue", "The S3 bucket no-bucket does not exist"),
        ({"CacheClusterId": "c1", "Engine": "valkey", "SnapshotName": "nope"}, "SnapshotNotFoundFault", "nope"),
        ({"CacheClusterId": "c1", "Engine": "valkey", "CacheNodeType": "cache.t4g.micro", "SnapshotRetentionLimit": 99}, "InvalidParameterValue", "35 days"),
        ({"CacheClusterId": "c1", "ReplicationGroupId": "nope"}, "ReplicationGroupNotFoundFault", "nope"),
    ],
)
def test_create_cache_cluster_rejects(server, ec, params, code, says):
    expect(code, ec.create_cache_cluster, says=says, **params)
    assert "c1" not in [c["CacheClusterId"] for c in ec.describe_cache_clusters()["CacheClusters"]]
    assert not [k for k in engine_pids(server.data_dir) if "/c1-" in k]


def test_create_cache_cluster_joining_a_group_rejects(ec, stable):
    expect("InvalidParameterCombination", ec.create_cache_cluster, says="omit Engine",
           CacheClusterId="joiner", ReplicationGroupId=stable, Engine="redis")
    expect("InvalidParameterCombination", ec.create_cache_cluster, says="CacheNodeType",
           CacheClusterId="joiner", ReplicationGroupId=stable, CacheNodeType="cache.r7g.large")
    expect("InvalidParameterCombination", ec.create_cache_cluster, says="omit CacheParameterGroupName",
           CacheClusterId="joiner", ReplicationGroupId=stable, CacheParameterGroupName="custom-params")
    expect("InvalidParameterCombination", ec.create_cache_cluster, says="omit PreferredMaintenanceWindow",
           CacheClusterId="joiner", ReplicationGroupId=stable, PreferredMaintenanceWindow="mon:01:00-mon:02:00")
    expect("InvalidParameterCombination", ec.create_cache_cluster, says="SnapshotWindow",
           CacheClusterId="joiner", ReplicationGroupId=stable, SnapshotWindow="01:00-02:00")
    expect("InvalidParameterCombination", ec.create_cache_cluster, says="AutoMinorVersionUpgrade",
           CacheClusterId="joiner", ReplicationGroupId=stable, AutoMinorVersionUpgrade=False)
    expect("CacheClusterAlreadyExists", ec.create_cache_cluster, CacheClusterId="stable-002", ReplicationGroupId=stable)
    assert ec.describe_replication_groups(ReplicationGroupId=stable)["ReplicationGroups"][0]["MemberClusters"] == [
        "stable-001", "stable-002",
    ]


def test_a_full_group_takes_no_more_replicas(ec):
    ec.create_replication_group(**{**VALID, "ReplicationGroupId": "full", "NumCacheClusters": 6})
    wait_group(ec, "full")
    expect("InvalidParameterValue", ec.create_cache_cluster, says="6 cache clusters", CacheClusterId="full-007", ReplicationGroupId="full")
    ec.delete_replication_group(ReplicationGroupId="full")
    wait_group_gone(ec, "full")


def test_delete_cache_cluster_rejects(ec, stable):
    expect("CacheClusterNotFound", ec.delete_cache_cluster, status=404, CacheClusterId="nope")
    expect("InvalidCacheClusterState", ec.delete_cache_cluster, says="primary", CacheClusterId="stable-001")
    expect("InvalidParameterCombination", ec.delete_cache_cluster, says="FinalSnapshotIdentifier",
           CacheClusterId="stable-002", FinalSnapshotIdentifier="snap")
    assert ec.describe_replication_groups(ReplicationGroupId=stable)["ReplicationGroups"][0]["MemberClusters"] == [
        "stable-001", "stable-002",
    ]


def test_describe_calls_reject(ec):
    expect("ReplicationGroupNotFoundFault", ec.describe_replication_groups, ReplicationGroupId="nope")
    expect("CacheClusterNotFound", ec.describe_cache_clusters, CacheClusterId="nope")
    expect("CacheSubnetGroupNotFoundFault", ec.describe_cache_subnet_groups, CacheSubnetGroupName="nope")
    for call in (ec.describe_replication_groups, ec.describe_cache_clusters, ec.describe_cache_engine_versions,
                 ec.describe_cache_subnet_groups, ec.describe_events):
        expect("InvalidParameterValue", call, says="between 20 and 100", MaxRecords=10)
        expect("InvalidParameterValue", call, says="between 20 and 100", MaxRecords=101)
        expect("InvalidParameterValue", call, says="Marker", Marker="not-a-marker!")


def test_engine_versions_filters(ec):
    assert ec.describe_cache_engine_versions(Engine="memcached")["CacheEngineVersions"] == []
    valkey = ec.describe_cache_engine_versions(Engine="valkey")["CacheEngineVersions"]
    assert {v["EngineVersion"] for v in valkey} == {"8.1", "9.1"}
    assert {v["CacheParameterGroupFamily"] for v in valkey} == {"valkey8", "valkey9"}
    default = ec.describe_cache_engine_versions(Engine="valkey", DefaultOnly=True)["CacheEngineVersions"]
    assert [v["EngineVersion"] for v in default] == ["9.1"]
    redis = ec.describe_cache_engine_versions(Engine="redis", EngineVersion="7.0")["CacheEngineVersions"]
    assert [v["CacheParameterGroupFamily"] for v in redis] == ["redis7"]
    assert ec.describe_cache_engine_versions(CacheParameterGroupFamily="valkey8")["CacheEngineVersions"][0]["EngineVersion"] == "8.1"


def test_subnet_group_rejects(server, ec, stable):
    ec.create_cache_subnet_group(
        CacheSubnetGroupName="sg-bad", CacheSubnetGroupDescription="d", SubnetIds=["subnet-us-east-1a"]
    )
    expect("CacheSubnetGroupAlreadyExists", ec.create_cache_subnet_group, CacheSubnetGroupName="SG-BAD",
           CacheSubnetGroupDescription="d", SubnetIds=["subnet-us-east-1a"])
    expect("CacheSubnetGroupAlreadyExists", ec.create_cache_subnet_group, CacheSubnetGroupName="default",
           CacheSubnetGroupDescription="d", SubnetIds=["subnet-us-east-1a"])
    expect("InvalidSubnet", ec.create_cache_subnet_group, says="subnet-us-east-1a",
           CacheSubnetGroupName="sg2", CacheSubnetGroupDescription="d", SubnetIds=["subnet-0abc123"])
    expect("InvalidSubnet", ec.create_cache_subnet_group, says="not a zone of region",
           CacheSubnetGroupName="sg2", CacheSubnetGroupDescription="d", SubnetIds=["subnet-eu-west-1a"])
    expect("CacheSubnetQuotaExceededFault", ec.create_cache_subnet_group, CacheSubnetGroupName="sg2",
           CacheSubnetGroupDescription="d", SubnetIds=[f"subnet-us-east-1a-{i}" for i in range(21)])
    expect("InvalidParameterValue", ec.create_cache_subnet_group, CacheSubnetGroupName="bad name!",
           CacheSubnetGroupDescription="d", SubnetIds=["subnet-us-east-1a"])
    expect("CacheSubnetGroupNotFoundFault", ec.modify_cache_subnet_group, CacheSubnetGroupName="nope",
           CacheSubnetGroupDescription="x")
    expect("CacheSubnetGroupNotFoundFault", ec.delete_cache_subnet_group, CacheSubnetGroupName="nope")
    expect("InvalidParameterValue", ec.delete_cache_subnet_group, CacheSubnetGroupName="default")
    # A zone that hosts nodes cannot be taken out of the subnet group.
    ec.create_cache_cluster(CacheClusterId="sgnode", Engine="valkey", CacheNodeType="cache.t4g.micro",
                            CacheSubnetGroupName="sg-bad")
    expect("SubnetInUse", ec.modify_cache_subnet_group, says="us-east-1a",
           CacheSubnetGroupName="sg-bad", SubnetIds=["subnet-us-east-1b"])
    expect("CacheSubnetGroupInUse", ec.delete_cache_subnet_group, CacheSubnetGroupName="sg-bad")
    names = [g["CacheSubnetGroupName"] for g in ec.describe_cache_subnet_groups()["CacheSubnetGroups"]]
    assert "sg2" not in names
    subnets = ec.describe_cache_subnet_groups(CacheSubnetGroupName="sg-bad")["CacheSubnetGroups"][0]["Subnets"]
    assert [s["SubnetIdentifier"] for s in subnets] == ["subnet-us-east-1a"]
    wait_cluster(ec, "sgnode")
    ec.delete_cache_cluster(CacheClusterId="sgnode")
    ec.get_waiter("cache_cluster_deleted").wait(CacheClusterId="sgnode", WaiterConfig={"Delay": 1})
    ec.delete_cache_subnet_group(CacheSubnetGroupName="sg-bad")


def test_tag_calls_reject(ec, stable):
    arn = f"arn:aws:elasticache:us-east-1:000000000000:replicationgroup:{stable}"
    expect("InvalidARN", ec.list_tags_for_resource, ResourceName="not-an-arn")
    expect("InvalidARN", ec.list_tags_for_resource, says="region",
           ResourceName=f"arn:aws:elasticache:eu-west-1:000000000000:replicationgroup:{stable}")
    expect("InvalidARN", ec.list_tags_for_resource, ResourceName="arn:aws:elasticache:us-east-1:000000000000:widget:x")
    expect("ReplicationGroupNotFoundFault", ec.list_tags_for_resource,
           ResourceName="arn:aws:elasticache:us-east-1:000000000000:replicationgroup:nope")
    expect("CacheClusterNotFound", ec.add_tags_to_resource, Tags=[{"Key": "a", "Value": "b"}],
           ResourceName="arn:aws:elasticache:us-east-1:000000000000:cluster:nope")
    expect("SnapshotNotFoundFault", ec.list_tags_for_resource,
           ResourceName="arn:aws:elasticache:us-east-1:000000000000:snapshot:nope")
    expect("TagNotFound", ec.remove_tags_from_resource, ResourceName=arn, TagKeys=["never-set"])
    expect("TagQuotaPerResourceExceeded", ec.add_tags_to_resource, ResourceName=arn,
           Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    assert ec.list_tags_for_resource(ResourceName=arn)["TagList"] == []


def test_describe_events_rejects(ec):
    expect("InvalidParameterValue", ec.describe_events, says="20160", Duration=30000)
    now = dt.datetime.now(dt.UTC)
    expect("InvalidParameterCombination", ec.describe_events, StartTime=now, EndTime=now - dt.timedelta(hours=1))
    # A Marker names an event by its date and sequence: one that does not fit the store is refused, not a 500.
    for forged in ("e:nan:1", "e:inf:1", "e:1.5:" + "9" * 30, "e:1.5:-1", "e:abc:1", "k:1.5:1", "e:1.5"):
        marker = base64.urlsafe_b64encode(forged.encode()).decode()
        expect("InvalidParameterValue", ec.describe_events, says="Marker", Marker=marker)


def test_protocol_level_errors(server):
    def call(params, **kwargs):
        status, body = raw_call(server.url, params, **kwargs)
        return status, error_code(body)

    assert call({"Action": "LaunchRockets", "Version": "2015-02-02"}) == (400, "InvalidAction")
    assert call({"Action": "DescribeReplicationGroups", "Version": "2010-01-01"}) == (400, "InvalidAction")
    assert call({"Version": "2015-02-02"}) == (400, "MissingAction")
    assert call({"Action": "DescribeReplicationGroups"}, access_key=None) == (403, "MissingAuthenticationToken")
    assert call({"Action": "DescribeReplicationGroups"}, access_key=None,
                headers={"Authorization": "AWS4-HMAC-SHA256 garbage"}) == (400, "IncompleteSignature")
    # GET with a query string works like POST.
    status, body = raw_call(server.url, {"Action": "DescribeCacheEngineVersions", "Version": "2015-02-02"}, method="GET")
    assert status == 200 and "<CacheParameterGroupFamily>valkey8</CacheParameterGroupFamily>" in body


@pytest.fixture(scope="module")
def fake_engines(tmp_path_factory):
    """A server that also has a build that never answers (7.2) and one that cannot start (7.1)."""
    root = tmp_path_factory.mktemp("fakes")
    running = Server(
        data_dir=root / "data", network=fresh_network(), port=free_port(),
        extra=["--engine-path", str(FAKES / "hanging"), "--engine-path", str(FAKES / "failing")],
    ).start()
    yield running
    running.down()


def test_an_engine_that_will_not_start_fails_the_create_with_the_reason(fake_engines):
    ec = fake_engines.client()
    ec.create_replication_group(**{**VALID, "ReplicationGroupId": "doomed", "EngineVersion": "7.1", "NumCacheClusters": 2})
    group = wait_group(ec, "doomed", status="create-failed")
    assert group["MemberClusters"] == ["doomed-001", "doomed-002"]
    messages = events_of(ec, "doomed")
    assert any("create-failed" in m and "cachefleet test engine always fails" in m for m in messages), messages
    assert not [k for k in engine_pids(fake_engines.data_dir) if "/doomed-" in k]
    expect("InvalidParameterCombination", ec.delete_replication_group, says="RetainPrimaryCluster",
           ReplicationGroupId="doomed", RetainPrimaryCluster=True)
    ec.delete_replication_group(ReplicationGroupId="doomed")
    wait_group_gone(ec, "doomed")
    assert ec.describe_cache_clusters()["CacheClusters"] == []

    ec.create_cache_cluster(CacheClusterId="doomed-solo", Engine="valkey", EngineVersion="7.1", CacheNodeType="cache.t4g.micro")
    wait_cluster(ec, "doomed-solo", status="create-failed")
    assert any("would not start" in m for m in events_of(ec, "doomed-solo"))
    ec.delete_cache_cluster(CacheClusterId="doomed-solo")
    ec.get_waiter("cache_cluster_deleted").wait(CacheClusterId="doomed-solo", WaiterConfig={"Delay": 1})


def test_operations_on_a_group_that_is_still_creating_are_refused(fake_engines):
    ec = fake_engines.client()
    ec.create_replication_group(**{**VALID, "ReplicationGroupId": "slow", "EngineVersion": "7.2", "NumCacheClusters": 2})
    assert ec.describe_replication_groups(ReplicationGroupId="slow")["ReplicationGroups"][0]["Status"] == "creating"
    expect("InvalidReplicationGroupState", ec.delete_replication_group, says="creating", ReplicationGroupId="slow")
    expect("InvalidReplicationGroupState", ec.modify_replication_group, ReplicationGroupId="slow", ReplicationGroupDescription="x")
    expect("InvalidReplicationGroupState", ec.create_cache_cluster, CacheClusterId="slow-009", ReplicationGroupId="slow")
    expect("InvalidCacheClusterState", ec.delete_cache_cluster, CacheClusterId="slow-002")
    assert ec.describe_replication_groups(ReplicationGroupId="slow")["ReplicationGroups"][0]["Status"] == "creating"


SHARDED = {**VALID, "ReplicationGroupId": "badshards"}


@pytest.mark.parametrize(
    ("changes", "code", "says"),
    [
        ({"NodeGroupConfiguration": [{"Slots": "0-9000"}, {"Slots": "8000-16383"}]}, "InvalidParameterValue", "overlap"),
        ({"NodeGroupConfiguration": [{"Slots": "0-8000"}, {"Slots": "9000-16383"}]}, "InvalidParameterValue", "8001-8999"),
        ({"NodeGroupConfiguration": [{"Slots": "0-8000"}, {"Slots": "8001-16384"}]}, "InvalidParameterValue", "0-16383"),
        ({"NodeGroupConfiguration": [{"Slots": "0-8000"}, {"Slots": "banana"}]}, "InvalidParameterValue", "slot ranges like"),
        ({"NodeGroupConfiguration": [{"Slots": "0-16383"}, {"ReplicaCount": 1}]}, "InvalidParameterValue", "every node group"),
        ({"NumNodeGroups": 3, "NodeGroupConfiguration": [{"Slots": "0-16383"}]}, "InvalidParameterCombination", "one configuration per node group"),
        ({"NodeGroupConfiguration": [{"NodeGroupId": "0001"}, {"NodeGroupId": "1"}]}, "InvalidParameterValue", "different"),
        ({"NodeGroupConfiguration": [{"NodeGroupId": "abc"}]}, "InvalidParameterValue", "must match"),
        ({"NodeGroupConfiguration": [{"NodeGroupId": "0"}]}, "InvalidParameterValue", "shard number"),
        ({"NumNodeGroups": 2, "ReplicasPerNodeGroup": 6}, "InvalidParameterValue", "0 to 5"),
        ({"NodeGroupConfiguration": [{"ReplicaCount": 2, "ReplicaAvailabilityZones": ["us-east-1a"]}]}, "InvalidParameterCombination", "one zone per replica"),
        ({"NumNodeGroups": 501}, "NodeGroupsPerReplicationGroupQuotaExceeded", "500"),
        ({"NumNodeGroups": 100, "ReplicasPerNodeGroup": 5}, "NodeQuotaForClusterExceeded", "500 nodes"),
        ({"NumNodeGroups": 2, "AutomaticFailoverEnabled": False}, "InvalidParameterCombination", "Automatic failover must be enabled"),
        ({"NumNodeGroups": 2, "NumCacheClusters": 2}, "InvalidParameterCombination", "NumCacheClusters"),
        ({"NumNodeGroups": 2, "ClusterMode": "disabled"}, "InvalidParameterCombination", "ClusterMode is disabled"),
        ({"ClusterMode": "compatible"}, "InvalidParameterCombination", "compatible"),
        ({"NumNodeGroups": 2, "CacheParameterGroupName": "default.valkey9"}, "InvalidParameterCombination", "cluster.on"),

    ],
)
def test_create_sharded_group_rejects(server, ec, changes, code, says):
    expect(code, ec.create_replication_group, says=says, **{**SHARDED, **changes})
    _nothing_created(server, ec, "badshards")


@pytest.fixture(scope="module")
def sharded(server):
    ec = server.client()
    ec.create_replication_group(**{**SHARDED, "ReplicationGroupId": "sharded", "NumNodeGroups": 2, "ReplicasPerNodeGroup": 1})
    wait_group(ec, "sharded")
    yield "sharded"
    ec.delete_replication_group(ReplicationGroupId="sharded")
    wait_group_gone(ec, "sharded")


def test_resharding_rejects(ec, sharded, stable):
    reshard = ec.modify_replication_group_shard_configuration
    expect("ReplicationGroupNotFoundFault", reshard, ReplicationGroupId="nope", NodeGroupCount=2, ApplyImmediately=True)
    expect("InvalidParameterCombination", reshard, says="cluster mode disabled",
           ReplicationGroupId=stable, NodeGroupCount=2, ApplyImmediately=True)
    expect("InvalidParameterValue", reshard, says="ApplyImmediately", ReplicationGroupId=sharded, NodeGroupCount=3,
           ApplyImmediately=False)
    expect("InvalidParameterValue", reshard, says="NodeGroupsToRemove", ReplicationGroupId=sharded, NodeGroupCount=1,
           ApplyImmediately=True)
    expect("NodeGroupNotFoundFault", reshard, says="0009", ReplicationGroupId=sharded, NodeGroupCount=1,
           NodeGroupsToRemove=["0009"], ApplyImmediately=True)
    expect("InvalidParameterCombination", reshard, says="leaves", ReplicationGroupId=sharded, NodeGroupCount=1,
           NodeGroupsToRemove=["0001", "0002"], ApplyImmediately=True)
    expect("InvalidParameterValue", reshard, says="at least one node group", ReplicationGroupId=sharded, NodeGroupCount=0,
           ApplyImmediately=True)
    expect("NodeGroupsPerReplicationGroupQuotaExceeded", reshard, ReplicationGroupId=sharded, NodeGroupCount=501,
           ApplyImmediately=True)
    expect("InvalidParameterCombination", reshard, says="NodeGroupCount is 3", ReplicationGroupId=sharded, NodeGroupCount=3,
           ReshardingConfiguration=[{"NodeGroupId": "0003"}], ApplyImmediately=True)
    # A new shard of this group has a primary and one replica: two zones, no more, no fewer.
    for zones in (["us-east-1a"], ["us-east-1a", "us-east-1b", "us-east-1c"]):
        expect("InvalidParameterValue", reshard, says="give 2 zones", ReplicationGroupId=sharded, NodeGroupCount=3,
               ReshardingConfiguration=[{"NodeGroupId": "0001"}, {"NodeGroupId": "0002"},
                                        {"NodeGroupId": "0003", "PreferredAvailabilityZones": zones}],
               ApplyImmediately=True)
    group = ec.describe_replication_groups(ReplicationGroupId=sharded)["ReplicationGroups"][0]
    assert group["Status"] == "available" and len(group["NodeGroups"]) == 2 and not group["PendingModifiedValues"]


def test_replica_count_changes_reject(ec, sharded, stable):
    increase, decrease = ec.increase_replica_count, ec.decrease_replica_count
    expect("InvalidParameterValue", increase, says="above that", ReplicationGroupId=sharded, NewReplicaCount=1, ApplyImmediately=True)
    expect("InvalidParameterValue", increase, says="0 to 5", ReplicationGroupId=sharded, NewReplicaCount=6, ApplyImmediately=True)
    expect("InvalidParameterCombination", increase, says="one of the two", ReplicationGroupId=sharded, ApplyImmediately=True)
    expect("NodeGroupNotFoundFault", increase, ReplicationGroupId=sharded, ApplyImmediately=True,
           ReplicaConfiguration=[{"NodeGroupId": "0007", "NewReplicaCount": 2}])
    expect("InvalidParameterValue", decrease, says="below that", ReplicationGroupId=sharded, NewReplicaCount=1, ApplyImmediately=True)
    expect("InvalidParameterValue", decrease, says="primary", ReplicationGroupId=sharded,
           ReplicasToRemove=["sharded-0001-001"], ApplyImmediately=True)
    expect("InvalidParameterValue", decrease, says="not a member", ReplicationGroupId=sharded,
           ReplicasToRemove=["stable-002"], ApplyImmediately=True)
    expect("InvalidParameterValue", increase, says="ApplyImmediately", ReplicationGroupId=stable, NewReplicaCount=3,
           ApplyImmediately=False)
    # ConfigureShard.PreferredAvailabilityZones names NewReplicaCount + 1 zones: the primary's, then the replicas'.
    expect("InvalidParameterValue", increase, says="needs 3: the primary's zone first", ReplicationGroupId=sharded,
           ApplyImmediately=True,
           ReplicaConfiguration=[{"NodeGroupId": "0001", "NewReplicaCount": 2, "PreferredAvailabilityZones": ["us-east-1a", "us-east-1b"]}])
    expect("InvalidParameterValue", decrease, says="needs 1: the primary's zone first", ReplicationGroupId=sharded,
           ApplyImmediately=True,
           ReplicaConfiguration=[{"NodeGroupId": "0002", "NewReplicaCount": 0, "PreferredAvailabilityZones": ["us-east-1a", "us-east-1b"]}])
    expect("InvalidParameterValue", increase, says="not in cache subnet group", ReplicationGroupId=sharded, ApplyImmediately=True,
           ReplicaConfiguration=[{"NodeGroupId": "0001", "NewReplicaCount": 2,
                                  "PreferredAvailabilityZones": ["us-east-1a", "us-east-1b", "us-east-1f"]}])
    group = ec.describe_replication_groups(ReplicationGroupId=sharded)["ReplicationGroups"][0]
    assert [len(ng["NodeGroupMembers"]) for ng in group["NodeGroups"]] == [2, 2]


def test_scaling_while_another_modification_runs_is_refused(ec):
    ec.create_replication_group(**{**SHARDED, "ReplicationGroupId": "busy", "NumNodeGroups": 2})
    wait_group(ec, "busy")
    ec.increase_replica_count(ReplicationGroupId="busy", NewReplicaCount=1, ApplyImmediately=True)
    expect("InvalidReplicationGroupState", ec.modify_replication_group_shard_configuration, says="modifying",
           ReplicationGroupId="busy", NodeGroupCount=3, ApplyImmediately=True)
    expect("InvalidReplicationGroupState", ec.increase_replica_count, ReplicationGroupId="busy", NewReplicaCount=2,
           ApplyImmediately=True)
    group = wait_group(ec, "busy")
    assert [len(ng["NodeGroupMembers"]) for ng in group["NodeGroups"]] == [2, 2]
    ec.delete_replication_group(ReplicationGroupId="busy")
    wait_group_gone(ec, "busy")


def test_node_type_listing_rejects(ec, stable):
    expect("InvalidParameterCombination", ec.list_allowed_node_type_modifications, says="one of the two")
    expect("ReplicationGroupNotFoundFault", ec.list_allowed_node_type_modifications, ReplicationGroupId="nope")
    expect("CacheClusterNotFound", ec.list_allowed_node_type_modifications, CacheClusterId="nope")
    allowed = ec.list_allowed_node_type_modifications(CacheClusterId="stable-001")
    assert "cache.t4g.small" in allowed["ScaleUpModifications"] and "cache.t4g.micro" not in allowed["ScaleUpModifications"]


def test_a_node_network_too_small_for_the_shards(tmp_path):
    """A /28 holds 14 addresses: 5 shards of 3 nodes and a configuration endpoint do not fit."""
    network = fresh_network().replace(".0/24", ".0/28")
    tiny = Server(data_dir=tmp_path / "tiny", network=network, port=free_port()).start()
    try:
        ec = tiny.client()
        expect("InsufficientCacheClusterCapacity", ec.create_replication_group, says="--node-network",
               **{**SHARDED, "NumNodeGroups": 5, "ReplicasPerNodeGroup": 2})
        assert ec.describe_replication_groups()["ReplicationGroups"] == []
        assert ec.describe_cache_clusters()["CacheClusters"] == []
    finally:
        tiny.down()


@pytest.mark.parametrize(
    ("changes", "code", "says"),
    [
        ({"MultiAZEnabled": True, "NumCacheClusters": 2}, "InvalidParameterCombination", "MultiAZEnabled needs AutomaticFailoverEnabled"),
        ({"AutomaticFailoverEnabled": True, "NumCacheClusters": 1}, "InvalidParameterCombination", "at least one replica"),
        ({"AutomaticFailoverEnabled": True, "MultiAZEnabled": True, "NumCacheClusters": 2, "CacheSubnetGroupName": "one-zone"},
         "InvalidParameterCombination", "two availability zones"),
        ({"NumNodeGroups": 2, "MultiAZEnabled": True}, "InvalidParameterCombination", "at least one replica"),
    ],
)
def test_failover_settings_reject(server, ec, changes, code, says):
    try:
        ec.create_cache_subnet_group(CacheSubnetGroupName="one-zone", CacheSubnetGroupDescription="a",
                                     SubnetIds=["subnet-us-east-1a"])
    except ec.exceptions.CacheSubnetGroupAlreadyExistsFault:
        pass
    expect(code, ec.create_replication_group, says=says, **{**VALID, **changes})
    _nothing_created(server, ec)


def test_ha_operations_reject(ec, stable, sharded):
    expect("InvalidReplicationGroupState", ec.test_failover, says="automatic failover",
           ReplicationGroupId=stable, NodeGroupId="0001")
    expect("ReplicationGroupNotFoundFault", ec.test_failover, ReplicationGroupId="nope", NodeGroupId="0001")
    expect("NodeGroupNotFoundFault", ec.test_failover, ReplicationGroupId=sharded, NodeGroupId="0009")
    expect("InvalidParameterValue", ec.reboot_cache_cluster, says="not one of its nodes",
           CacheClusterId="stable-001", CacheNodeIdsToReboot=["0002"])
    expect("CacheClusterNotFound", ec.reboot_cache_cluster, CacheClusterId="nope", CacheNodeIdsToReboot=["0001"])
    expect("InvalidParameterCombination", ec.modify_replication_group, says="cannot be disabled",
           ReplicationGroupId=sharded, AutomaticFailoverEnabled=False)
    expect("InvalidParameterCombination", ec.modify_replication_group, says="MultiAZEnabled needs",
           ReplicationGroupId=stable, MultiAZEnabled=True)
    expect("InvalidParameterValue", ec.modify_replication_group, says="not a member",
           ReplicationGroupId=stable, PrimaryClusterId="sharded-0001-001")
    expect("InvalidParameterCombination", ec.modify_replication_group, says="on its own",
           ReplicationGroupId=stable, PrimaryClusterId="stable-002", ReplicationGroupDescription="x")
    group = ec.describe_replication_groups(ReplicationGroupId=stable)["ReplicationGroups"][0]
    assert group["AutomaticFailover"] == "disabled" and group["MultiAZ"] == "disabled" and group["Status"] == "available"


def test_failover_limits(make_server):
    ec = make_server().client()  # a server of its own: TestFailover calls count per region
    ec.create_replication_group(**{**VALID, "ReplicationGroupId": "limits", "NumCacheClusters": 2,
                                   "AutomaticFailoverEnabled": True})
    wait_group(ec, "limits")
    # The last replica of a group with automatic failover cannot go.
    expect("InvalidCacheClusterState", ec.delete_cache_cluster, says="the only read replica", CacheClusterId="limits-002")
    expect("InvalidParameterValue", ec.decrease_replica_count, says="automatic failover needs one",
           ReplicationGroupId="limits", NewReplicaCount=0, ApplyImmediately=True)
    # One failover at a time.
    ec.test_failover(ReplicationGroupId="limits", NodeGroupId="0001")
    expect("TestFailoverNotAvailableFault", ec.test_failover, says="already in progress", ReplicationGroupId="limits",
           NodeGroupId="0001")
    wait_group(ec, "limits")
    # At most 15 test failovers in 24 hours (one was made above).
    for _ in range(14):
        wait_for(lambda: _test_failover_accepted(ec, "limits"), timeout=30, interval=0.05, what="a test failover")
    wait_group(ec, "limits")
    expect("APICallRateForCustomerExceeded", ec.test_failover, says="24 hours", ReplicationGroupId="limits", NodeGroupId="0001")
    ec.delete_replication_group(ReplicationGroupId="limits")
    wait_group_gone(ec, "limits")


def _test_failover_accepted(ec, group_id):
    try:
        ec.test_failover(ReplicationGroupId=group_id, NodeGroupId="0001")
        return True
    except ClientError as error:
        if error.response["Error"]["Code"] in ("TestFailoverNotAvailableFault", "InvalidReplicationGroupState"):
            return False
        raise
