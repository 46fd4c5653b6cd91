"""The snapshot operations through boto3: ElastiCache's faults for bad requests (nothing half-created),
DescribeSnapshots' filters and paging, tags on snapshot ARNs, exports to and restores from a local
bucket directory (no S3 endpoint configured), and the groups' and clusters' snapshot settings."""

from __future__ import annotations

import pytest

from helpers import events_of, expect, wait_cluster, wait_for, wait_group, wait_group_gone

GROUP = {"ReplicationGroupDescription": "snapshots", "Engine": "valkey", "CacheNodeType": "cache.t4g.micro"}



def status_of(ec, name):
    found = [s for s in ec.describe_snapshots()["Snapshots"] if s["SnapshotName"] == name]
    return found[0]["SnapshotStatus"] if found else None


def wait_snapshot(ec, name, status="available"):
    wait_for(lambda: status_of(ec, name) == status, what=f"snapshot {name} {status}")


@pytest.fixture(scope="module")
def snap_group(server):
    ec = server.client()
    ec.create_replication_group(ReplicationGroupId="snapi", NumCacheClusters=2, **GROUP)
    wait_group(ec, "snapi")
    yield "snapi"
    for snapshot in ec.describe_snapshots(ReplicationGroupId="snapi")["Snapshots"]:
        if snapshot["SnapshotStatus"] in ("available", "failed"):
            ec.delete_snapshot(SnapshotName=snapshot["SnapshotName"])
    ec.delete_replication_group(ReplicationGroupId="snapi")
    wait_group_gone(ec, "snapi")
    wait_for(lambda: not ec.describe_snapshots(ReplicationGroupId="snapi")["Snapshots"], what="snapshots deleted")


def test_bad_snapshot_requests_get_elasticaches_faults(ec, snap_group):
    expect("InvalidParameterCombination", ec.create_snapshot, says="one of the two", SnapshotName="s",
           ReplicationGroupId=snap_group, CacheClusterId="snapi-001")
    expect("ReplicationGroupNotFoundFault", ec.create_snapshot, status=404, SnapshotName="s", ReplicationGroupId="nope")
    expect("CacheClusterNotFound", ec.create_snapshot, status=404, SnapshotName="s", CacheClusterId="nope")
    expect("InvalidParameterValue", ec.create_snapshot, says="automatic.", SnapshotName="automatic.mine",
           ReplicationGroupId=snap_group)
    expect("SnapshotNotFoundFault", ec.describe_snapshots, status=404, SnapshotName="nope")
    expect("SnapshotNotFoundFault", ec.delete_snapshot, status=404, SnapshotName="nope")
    expect("SnapshotNotFoundFault", ec.copy_snapshot, SourceSnapshotName="nope", TargetSnapshotName="x")
    expect("InvalidParameterValue", ec.describe_snapshots, says="20 and 50", MaxRecords=51)
    expect("InvalidParameterValue", ec.describe_snapshots, says="user", SnapshotSource="everything")
    expect("CacheClusterNotFound", ec.describe_snapshots, CacheClusterId="nope")
    expect("InvalidParameterValue", ec.modify_replication_group, says="35 days", ReplicationGroupId=snap_group,
           SnapshotRetentionLimit=40)
    expect("InvalidParameterValue", ec.modify_replication_group, says="not a member",
           ReplicationGroupId=snap_group, SnapshottingClusterId="other-001")
    expect("InvalidParameterCombination", ec.modify_replication_group, says="overlaps",
           ReplicationGroupId=snap_group, SnapshotWindow="05:30-06:30")
    assert ec.describe_snapshots(ReplicationGroupId=snap_group)["Snapshots"] == []


def test_snapshots_described_paged_tagged_copied_and_deleted(ec, snap_group, server):
    ec.modify_replication_group(ReplicationGroupId=snap_group, SnapshottingClusterId="snapi-001",
                                SnapshotRetentionLimit=3, SnapshotWindow="01:00-02:00", ApplyImmediately=True)
    group = ec.describe_replication_groups(ReplicationGroupId=snap_group)["ReplicationGroups"][0]
    assert (group["SnapshottingClusterId"], group["SnapshotRetentionLimit"], group["SnapshotWindow"]) == (
        "snapi-001", 3, "01:00-02:00")
    created = ec.create_snapshot(ReplicationGroupId=snap_group, SnapshotName="base",
                                 Tags=[{"Key": "team", "Value": "cache"}])["Snapshot"]
    assert created["SnapshotStatus"] == "creating" and created["SnapshotSource"] == "manual"
    wait_snapshot(ec, "base")
    expect("SnapshotAlreadyExistsFault", ec.create_snapshot, SnapshotName="base", ReplicationGroupId=snap_group)
    base = ec.describe_snapshots(SnapshotName="base")["Snapshots"][0]
    assert base["ARN"] == "arn:aws:elasticache:us-east-1:000000000000:snapshot:base"
    assert base["NodeSnapshots"][0]["CacheClusterId"] == "snapi-001"  # SnapshottingClusterId, the primary here
    assert "NodeGroupConfiguration" not in base["NodeSnapshots"][0]
    assert base["SnapshotRetentionLimit"] == 3 and base["Engine"] == "valkey" and base["NumNodeGroups"] == 1
    assert ec.list_tags_for_resource(ResourceName=base["ARN"])["TagList"] == [{"Key": "team", "Value": "cache"}]
    ec.add_tags_to_resource(ResourceName=base["ARN"], Tags=[{"Key": "env", "Value": "test"}])
    assert len(ec.list_tags_for_resource(ResourceName=base["ARN"])["TagList"]) == 2
    for number in range(20):
        ec.copy_snapshot(SourceSnapshotName="base", TargetSnapshotName=f"copy-{number:02d}")
        wait_snapshot(ec, f"copy-{number:02d}")
    assert any("Snapshot base copied to copy-00" in m for m in events_of(ec, snap_group))
    first = ec.describe_snapshots(ReplicationGroupId=snap_group, MaxRecords=20)
    assert len(first["Snapshots"]) == 20 and first["Marker"]
    rest = ec.describe_snapshots(ReplicationGroupId=snap_group, MaxRecords=20, Marker=first["Marker"])
    names = [s["SnapshotName"] for s in first["Snapshots"] + rest["Snapshots"]]
    assert names == ["base"] + [f"copy-{n:02d}" for n in range(20)] and "Marker" not in rest
    assert ec.describe_snapshots(ReplicationGroupId=snap_group, SnapshotSource="system")["Snapshots"] == []
    assert len(ec.describe_snapshots(ReplicationGroupId=snap_group, SnapshotSource="user")["Snapshots"]) == 21
    for number in range(20):
        ec.delete_snapshot(SnapshotName=f"copy-{number:02d}")
    wait_for(lambda: [s["SnapshotName"] for s in ec.describe_snapshots(ReplicationGroupId=snap_group)["Snapshots"]]
             == ["base"], what="copies deleted")
    assert not (server.data_dir / "snapshots" / "us-east-1" / "copy-00").exists()


def test_export_to_a_local_bucket_and_restore_a_cluster_from_it(ec, snap_group, server):
    bucket = server.data_dir / "buckets" / "local-exports"
    bucket.mkdir(parents=True, mode=0o700)  # without --s3-endpoint-url a bucket is a directory of the data dir
    ec.create_snapshot(ReplicationGroupId=snap_group, SnapshotName="to-export")
    wait_snapshot(ec, "to-export")
    ec.copy_snapshot(SourceSnapshotName="to-export", TargetSnapshotName="exported", TargetBucket="local-exports")
    wait_snapshot(ec, "to-export")
    assert [p.name for p in bucket.iterdir()] == ["exported-0001.rdb"]
    assert (bucket / "exported-0001.rdb").stat().st_mode & 0o777 == 0o600
    ec.create_cache_cluster(CacheClusterId="from-local", CacheNodeType="cache.t4g.micro", Engine="valkey",
                            SnapshotArns=["arn:aws:s3:::local-exports/exported-0001.rdb"])
    assert wait_cluster(ec, "from-local", timeout=60)["CacheClusterStatus"] == "available"
    ec.modify_cache_cluster(CacheClusterId="from-local", SnapshotRetentionLimit=2, SnapshotWindow="02:00-03:00")
    cluster = ec.describe_cache_clusters(CacheClusterId="from-local")["CacheClusters"][0]
    assert (cluster["SnapshotRetentionLimit"], cluster["SnapshotWindow"]) == (2, "02:00-03:00")
    # The windows may not overlap (ElastiCache's rule), on ModifyCacheCluster too.
    expect("InvalidParameterCombination", ec.modify_cache_cluster, says="overlaps PreferredMaintenanceWindow",
           CacheClusterId="from-local", SnapshotWindow="04:30-05:30", PreferredMaintenanceWindow="sun:05:00-sun:06:00")
    ec.create_snapshot(CacheClusterId="from-local", SnapshotName="of-a-cluster")
    assert ec.describe_cache_clusters(CacheClusterId="from-local")["CacheClusters"][0]["CacheClusterStatus"] in (
        "snapshotting", "available")
    wait_snapshot(ec, "of-a-cluster")
    assert ec.describe_snapshots(CacheClusterId="from-local")["Snapshots"][0]["NumCacheNodes"] == 1
    ec.delete_cache_cluster(CacheClusterId="from-local")
    ec.delete_snapshot(SnapshotName="of-a-cluster")
    wait_for(lambda: status_of(ec, "of-a-cluster") is None, what="the snapshot deleted")
