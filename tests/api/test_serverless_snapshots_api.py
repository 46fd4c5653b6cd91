"""Serverless cache snapshots through boto3: ElastiCache's faults, the ServerlessCacheSnapshot shape
against botocore's, DescribeServerlessCacheSnapshots' filters and paging, and their namespace kept
apart from DescribeSnapshots', tags on its ARN."""

from __future__ import annotations

import botocore.session

from helpers import expect, wait_for

MODEL = botocore.session.get_session().get_service_model("elasticache")



def check_shape(value, shape):
    if shape.type_name == "structure":
        assert isinstance(value, dict)
        assert not set(value) - set(shape.members) - {"ResponseMetadata"}, (shape.name, set(value))
        for name, member in value.items():
            check_shape(member, shape.members[name]) if name in shape.members else None
    elif shape.type_name == "string":
        assert isinstance(value, str), (shape.name, value)


def snapshot(ec, name):
    return ec.describe_serverless_cache_snapshots(ServerlessCacheSnapshotName=name)["ServerlessCacheSnapshots"][0]


def test_faults_shape_paging_and_namespace(ec):
    expect("ServerlessCacheNotFoundFault", ec.create_serverless_cache_snapshot, status=404,
           ServerlessCacheSnapshotName="s-x", ServerlessCacheName="nope")
    expect("ServerlessCacheSnapshotNotFoundFault", ec.describe_serverless_cache_snapshots, status=404,
           ServerlessCacheSnapshotName="nope")
    expect("ServerlessCacheSnapshotNotFoundFault", ec.delete_serverless_cache_snapshot, ServerlessCacheSnapshotName="nope")
    expect("ServerlessCacheSnapshotNotFoundFault", ec.copy_serverless_cache_snapshot,
           SourceServerlessCacheSnapshotName="nope", TargetServerlessCacheSnapshotName="t")
    expect("ServerlessCacheSnapshotNotFoundFault", ec.export_serverless_cache_snapshot,
           ServerlessCacheSnapshotName="nope", S3BucketName="some-bucket")
    expect("ServerlessCacheNotFoundFault", ec.describe_serverless_cache_snapshots, ServerlessCacheName="nope")
    expect("InvalidParameterValue", ec.describe_serverless_cache_snapshots, says="SnapshotType", SnapshotType="user")
    expect("InvalidParameterValue", ec.describe_serverless_cache_snapshots, says="MaxResults", MaxResults=51)
    expect("ServerlessCacheSnapshotNotFoundFault", ec.create_serverless_cache, ServerlessCacheName="sl-r-none",
           Engine="valkey",
           SnapshotArnsToRestore=["arn:aws:elasticache:us-east-1:000000000000:serverlesscachesnapshot:nope"])

    ec.create_serverless_cache(ServerlessCacheName="sl-snapapi", Engine="valkey")
    expect("InvalidServerlessCacheStateFault", ec.create_serverless_cache_snapshot, says="once it is available",
           ServerlessCacheSnapshotName="too-early", ServerlessCacheName="sl-snapapi")
    wait_for(lambda: ec.describe_serverless_caches(ServerlessCacheName="sl-snapapi")["ServerlessCaches"][0]["Status"]
             == "available", interval=0.05, what="cache available")
    expect("InvalidParameterValue", ec.create_serverless_cache_snapshot, says="ServerlessCacheSnapshotName",
           ServerlessCacheSnapshotName="bad--name", ServerlessCacheName="sl-snapapi")
    created = ec.create_serverless_cache_snapshot(
        ServerlessCacheSnapshotName="sa-1", ServerlessCacheName="sl-snapapi", Tags=[{"Key": "k", "Value": "v"}],
    )["ServerlessCacheSnapshot"]
    check_shape(created, MODEL.shape_for("ServerlessCacheSnapshot"))
    assert created["ARN"] == "arn:aws:elasticache:us-east-1:000000000000:serverlesscachesnapshot:sa-1"
    assert (created["Status"], created["SnapshotType"]) == ("creating", "manual")
    assert created["ServerlessCacheConfiguration"]["Engine"] == "valkey"
    assert created["ServerlessCacheConfiguration"]["MajorEngineVersion"].isdigit()
    wait_for(lambda: snapshot(ec, "sa-1")["Status"] == "available", interval=0.05, what="sa-1 available")
    # Its events are under its own name and source type, in its user's names.
    events = ec.describe_events(SourceIdentifier="sa-1", SourceType="serverless-cache-snapshot", Duration=60)["Events"]
    assert "Creating snapshot sa-1 of serverless cache 'sl-snapapi'" in [e["Message"] for e in events]
    expect("ServerlessCacheSnapshotAlreadyExistsFault", ec.create_serverless_cache_snapshot,
           ServerlessCacheSnapshotName="sa-1", ServerlessCacheName="sl-snapapi")
    ec.copy_serverless_cache_snapshot(SourceServerlessCacheSnapshotName="sa-1", TargetServerlessCacheSnapshotName="sa-2")
    wait_for(lambda: snapshot(ec, "sa-2")["Status"] == "available" and snapshot(ec, "sa-1")["Status"] == "available",
             interval=0.05, what="copy available")
    expect("ServerlessCacheSnapshotAlreadyExistsFault", ec.copy_serverless_cache_snapshot,
           SourceServerlessCacheSnapshotName="sa-1", TargetServerlessCacheSnapshotName="sa-2")
    expect("InvalidParameterValue", ec.export_serverless_cache_snapshot, says="S3BucketName",
           ServerlessCacheSnapshotName="sa-1", S3BucketName="A")

    # Paging one at a time finds both; DescribeSnapshots lists neither.
    names, token = [], None
    while True:
        page = ec.describe_serverless_cache_snapshots(ServerlessCacheName="sl-snapapi", MaxResults=1,
                                                      **({"NextToken": token} if token else {}))
        names += [s["ServerlessCacheSnapshotName"] for s in page["ServerlessCacheSnapshots"]]
        token = page.get("NextToken")
        if not token:
            break
    assert names == ["sa-1", "sa-2"]
    assert ec.describe_serverless_cache_snapshots(SnapshotType="automatic", ServerlessCacheName="sl-snapapi")[
        "ServerlessCacheSnapshots"] == []
    assert not [s for s in ec.describe_snapshots()["Snapshots"] if s["SnapshotName"].startswith("serverless")]
    expect("SnapshotNotFoundFault", ec.delete_snapshot, SnapshotName="serverless--sa-1")

    # Tags on its own ARN (those given on create, then added); not reachable as a node-based snapshot.
    arn = created["ARN"]
    assert ec.list_tags_for_resource(ResourceName=arn)["TagList"] == [{"Key": "k", "Value": "v"}]
    ec.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "team", "Value": "a"}])
    assert {t["Key"] for t in ec.list_tags_for_resource(ResourceName=arn)["TagList"]} == {"k", "team"}
    expect("ServerlessCacheSnapshotNotFoundFault", ec.list_tags_for_resource,
           ResourceName=arn.replace(":sa-1", ":nope"))
    expect("SnapshotNotFoundFault", ec.list_tags_for_resource,
           ResourceName="arn:aws:elasticache:us-east-1:000000000000:snapshot:serverless--sa-1")

    deleted = ec.delete_serverless_cache_snapshot(ServerlessCacheSnapshotName="sa-2")["ServerlessCacheSnapshot"]
    assert deleted["Status"] == "deleting"  # (a second delete's fault: tests/unit, the files go too fast here)
    ec.delete_serverless_cache(ServerlessCacheName="sl-snapapi")
    ec.delete_serverless_cache_snapshot(ServerlessCacheSnapshotName="sa-1")
    wait_for(lambda: not ec.describe_serverless_cache_snapshots()["ServerlessCacheSnapshots"], interval=0.05,
             what="snapshots gone")
