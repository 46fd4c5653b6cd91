"""The snapshots family's rules and use cases, with a real store in a temp dir, a fixed clock and a
fake storage (what an RDB holds, which engine loads it)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import replace

import pytest

from cachefleet.api.errors import shape_for
from cachefleet.domain import backups, errors
from cachefleet.domain.backups import RestoreRequest, SnapshotDefaults
from cachefleet.domain.base import Dependencies
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus, CreateCacheClusterRequest
from cachefleet.domain.elasticache import ElastiCache
from cachefleet.domain.engines import EngineRelease
from cachefleet.domain.operations import Operation
from cachefleet.domain.replication_groups import CreateReplicationGroupRequest, GroupStatus, ReplicationGroup
from cachefleet.domain.snapshots import (
    CopySnapshotRequest,
    CreateSnapshotRequest,
    DescribeSnapshotsRequest,
    ObjectFacts,
    Restore,
    Snapshot,
    SnapshotSource,
    SnapshotStatus,
    automatic_due,
    automatic_name,
    cache_size,
    expired,
    snapshot_name,
    window_containing,
)
from cachefleet.store.sqlite import SqliteStore

REGION = "us-east-1"
RELEASES = [
    EngineRelease("valkey", "8.1.8", "valkey8", "Valkey 8.1.8"),
    EngineRelease("valkey", "9.1.2", "valkey9", "Valkey 9.1.2"),
    EngineRelease("redis", "7.0.15", "redis7", "Redis OSS 7.0.15"),
]
NOON = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.time = NOON

    def now(self) -> dt.datetime:
        return self.time


class Catalog:
    def releases(self):
        return RELEASES


class Storage:
    """Objects by (bucket, key); Redis 7.0 loads REDIS0001-0010 only, Valkey 8.1 up to REDIS0011."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], ObjectFacts] = {}
        self.buckets = {"exports"}

    def loadable(self, rdb_format, engine, version):
        if rdb_format.startswith("VALKEY") and not version.startswith("9."):
            return f"{engine} {version} cannot load an RDB of format {rdb_format}"
        if engine == "redis" and rdb_format > "REDIS0010":
            return f"Redis OSS 7.0 cannot load an RDB of format {rdb_format}"
        return None

    def object_facts(self, bucket, key):
        if bucket not in self.buckets:
            raise errors.InvalidParameterValue(f"The S3 bucket {bucket} does not exist.")
        if (bucket, key) not in self.objects:
            raise errors.InvalidParameterValue(f"No object {key} in the S3 bucket {bucket}.")
        return self.objects[(bucket, key)]

    def bucket_exists(self, bucket):
        return bucket in self.buckets

    def object_exists(self, bucket, key):
        return (bucket, key) in self.objects


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def storage():
    return Storage()


@pytest.fixture
def service(tmp_path, clock, storage):
    deps = Dependencies(store=SqliteStore(tmp_path / "state.db"), catalog=Catalog(), clock=clock,
                        node_network=ipaddress.IPv4Network("127.80.0.0/24"))
    return ElastiCache(deps, snapshot_storage=storage)


def available_group(service, group_id="g", **params):
    request = CreateReplicationGroupRequest.parse(REGION, {
        "ReplicationGroupId": group_id, "ReplicationGroupDescription": "d", "CacheNodeType": "cache.t4g.micro",
        "Engine": "valkey", **params,
    })
    group = service.replication_groups.create(REGION, request)
    store = service.deps.store
    with store.transaction() as tx:
        tx.put(replace(group, status=GroupStatus.AVAILABLE))
        for cluster in store.list(CacheCluster):
            tx.put(replace(cluster, status=ClusterStatus.AVAILABLE))
        for operation in store.list(Operation):
            tx.delete(operation)
    return store.get(ReplicationGroup, REGION, group_id)


def finish(service, name, *, rdb_format="REDIS0011", size=3_000_000):
    """What the workflow records once a snapshot is taken: its files, and its group available again."""
    store = service.deps.store
    snapshot = store.get(Snapshot, REGION, name)
    with store.transaction() as tx:
        tx.put(replace(snapshot, status=SnapshotStatus.AVAILABLE, node_snapshots=tuple(
            replace(n, rdb_format=rdb_format, size=size) for n in snapshot.node_snapshots)))
        for operation in store.list(Operation):
            tx.delete(operation)
        for group in store.list(ReplicationGroup):
            if group.status == GroupStatus.SNAPSHOTTING:
                tx.put(replace(group, status=GroupStatus.AVAILABLE))
    return store.get(Snapshot, REGION, name)


def take(service, name, **params):
    return service.snapshots.create(REGION, CreateSnapshotRequest.parse({"SnapshotName": name, **params}))


# ---------------------------------------------------------------------- rules
def test_windows_and_the_daily_instance_they_are_in():
    assert window_containing("03:00-04:00", at("2031-03-01T03:30")) == (at("2031-03-01T03:00"), at("2031-03-01T04:00"))
    assert window_containing("03:00-04:00", at("2031-03-01T04:00")) is None
    # A window across midnight belongs to the day it starts.
    assert window_containing("23:30-00:30", at("2031-03-02T00:10")) == (at("2031-03-01T23:30"), at("2031-03-02T00:30"))


def test_one_automatic_snapshot_a_day_in_the_window_when_retention_is_on():
    taken = [at("2031-03-01T03:10")]
    assert automatic_due("03:00-04:00", 1, at("2031-03-01T03:05"), []) is True
    assert automatic_due("03:00-04:00", 1, at("2031-03-01T03:50"), taken) is False  # one a day
    assert automatic_due("03:00-04:00", 1, at("2031-03-01T05:00"), []) is False  # outside the window
    assert automatic_due("03:00-04:00", 0, at("2031-03-01T03:05"), []) is False  # retention off
    assert automatic_due("03:00-04:00", 1, at("2031-03-02T03:00"), taken) is True  # the next day
    assert expired(1, at("2031-03-01T03:10"), at("2031-03-02T03:10")) is True
    assert expired(1, at("2031-03-01T03:10"), at("2031-03-02T03:09")) is False
    assert expired(0, at("2001-01-01T00:00"), at("2031-03-02T03:09")) is False  # kept while retention is off
    assert automatic_name("my-group", at("2031-03-01T03:10:42")) == "automatic.my-group-2031-03-01-03-10"


@pytest.mark.parametrize(
    ("snapshot", "maintenance", "overlaps"),
    [
        ("05:30-06:30", "sun:05:00-sun:06:00", True),
        ("06:00-07:00", "sun:05:00-sun:06:00", False),  # touching is not overlapping
        ("04:00-05:00", "sun:05:00-sun:06:00", False),
        ("23:30-00:30", "mon:00:00-mon:01:00", True),  # across midnight
        ("00:00-01:00", "sat:23:30-sun:00:30", True),  # across the week's end
        ("12:00-13:00", "wed:12:30-wed:14:00", True),
    ],
)
def test_the_snapshot_window_must_not_overlap_the_maintenance_window(snapshot, maintenance, overlaps):
    if overlaps:
        with pytest.raises(errors.InvalidParameterCombination, match="overlaps"):
            backups.check_windows(snapshot, maintenance)
    else:
        backups.check_windows(snapshot, maintenance)


def test_names_and_requests():
    assert snapshot_name("My-Backup.1") == "my-backup.1"
    for bad, why in (("automatic.x", "automatic."), ("-x", "begin with a letter"), ("x--y", "consecutive"),
                     ("x" * 256, "255"), ("", "1 to 255")):
        with pytest.raises(errors.InvalidParameterValue, match=why):
            snapshot_name(bad)
    with pytest.raises(errors.InvalidParameterCombination, match="one of the two"):
        CreateSnapshotRequest.parse({"SnapshotName": "s", "ReplicationGroupId": "g", "CacheClusterId": "c"})
    with pytest.raises(errors.InvalidParameterCombination, match="one of the two"):
        CreateSnapshotRequest.parse({"SnapshotName": "s"})
    with pytest.raises(errors.InvalidParameterValue, match="user .manual. or system"):
        DescribeSnapshotsRequest.parse({"SnapshotSource": "manual"})
    assert DescribeSnapshotsRequest.parse({"SnapshotSource": "system"}).source == SnapshotSource.AUTOMATED
    with pytest.raises(errors.InvalidParameterValue, match="TargetBucket"):
        CopySnapshotRequest.parse({"SourceSnapshotName": "a", "TargetSnapshotName": "b", "TargetBucket": "B_"})
    with pytest.raises(errors.InvalidParameterCombination, match="not to an export"):
        CopySnapshotRequest.parse({"SourceSnapshotName": "a", "TargetSnapshotName": "b", "TargetBucket": "bucket",
                                   "KmsKeyId": "k"})
    with pytest.raises(errors.InvalidParameterCombination, match="not both"):
        RestoreRequest.parse({"SnapshotName": "s", "SnapshotArns": ["arn:aws:s3:::bucket/a.rdb"]})
    with pytest.raises(errors.InvalidParameterValue, match="twice"):
        RestoreRequest.parse({"SnapshotArns": ["arn:aws:s3:::bucket/a.rdb"] * 2})
    with pytest.raises(errors.InvalidParameterValue, match="arn:aws:s3:::bucket/key.rdb"):
        RestoreRequest.parse({"SnapshotArns": ["arn:aws:s3:::b/a.rdb"]})  # no 1-letter buckets
    assert RestoreRequest.parse({"SnapshotArns": ["arn:aws:s3:::my.bucket/dir/a.rdb"]}).objects == (
        ("my.bucket", "dir/a.rdb"),)
    assert cache_size(0) == "0 MB" and cache_size(1) == "1 MB" and cache_size(6_000_001) == "7 MB"
    assert backups.retention_limit(35) == 35
    with pytest.raises(errors.InvalidParameterValue, match="35 days"):
        backups.retention_limit(36)


def test_errors_map_to_elasticaches_codes():
    assert shape_for(errors.NotFound("x", resource="Snapshot")) == "SnapshotNotFoundFault"
    assert shape_for(errors.AlreadyExists("x", resource="Snapshot")) == "SnapshotAlreadyExistsFault"
    assert shape_for(errors.InvalidState("x", resource="Snapshot")) == "InvalidSnapshotStateFault"
    assert shape_for(errors.QuotaExceeded("x", resource="Snapshot")) == "SnapshotQuotaExceededFault"


# ---------------------------------------------------------------------- use cases
def test_create_snapshot_of_a_group_marks_it_snapshotting_with_an_operation(service):
    group = available_group(service, NumNodeGroups=3, ReplicasPerNodeGroup=1)
    snapshot = take(service, "first", ReplicationGroupId="g", Tags=[{"Key": "team", "Value": "a"}])
    assert snapshot.status == SnapshotStatus.CREATING and snapshot.source == SnapshotSource.MANUAL
    assert [n.slots for n in snapshot.node_snapshots] == [ng.slots for ng in group.node_groups]
    assert [n.file for n in snapshot.node_snapshots] == ["first-0001.rdb", "first-0002.rdb", "first-0003.rdb"]
    assert all(n.replica_count == 1 for n in snapshot.node_snapshots)
    store = service.deps.store
    assert store.get(ReplicationGroup, REGION, "g").status == GroupStatus.SNAPSHOTTING
    assert service.replication_groups.operations(group) == {}
    assert store.get(Operation, REGION, "Snapshot/first/snapshot") is not None
    with pytest.raises(errors.InvalidState, match="snapshotting") as raised:
        take(service, "second", ReplicationGroupId="g")  # one at a time: the group is not available
    assert shape_for(raised.value) == "InvalidReplicationGroupStateFault"
    with pytest.raises(errors.InvalidState, match="creating") as raised:
        service.snapshots.delete(REGION, "first")
    assert shape_for(raised.value) == "InvalidSnapshotStateFault"
    finish(service, "first")
    with pytest.raises(errors.AlreadyExists):
        take(service, "first", ReplicationGroupId="g")
    with pytest.raises(errors.InvalidParameterCombination, match="cluster mode enabled"):
        take(service, "member", CacheClusterId="g-0001-001")
    with pytest.raises(errors.NotFound) as missing:
        take(service, "x", ReplicationGroupId="nope")
    assert shape_for(missing.value) == "ReplicationGroupNotFoundFault"


def test_twenty_manual_snapshots_per_node_a_day(service, clock):
    available_group(service)  # one node
    for number in range(20):
        take(service, f"s{number}", ReplicationGroupId="g")
        finish(service, f"s{number}")
    with pytest.raises(errors.QuotaExceeded, match="20 per node") as raised:
        take(service, "s20", ReplicationGroupId="g")
    assert shape_for(raised.value) == "SnapshotQuotaExceededFault"
    clock.time = NOON + dt.timedelta(hours=24, seconds=1)
    take(service, "s20", ReplicationGroupId="g")


def test_describe_filters_copy_and_export(service, storage):
    available_group(service, AtRestEncryptionEnabled=True, KmsKeyId="alias/k")
    taken = take(service, "one", ReplicationGroupId="g")
    assert taken.encryption_key == "alias/k" and taken.kms_key_id == "alias/k"
    assert taken.node_snapshots[0].file == "one-0001.rdb.enc"
    finish(service, "one")
    describe = service.snapshots.describe
    assert [s.name for s in describe(REGION, DescribeSnapshotsRequest(replication_group_id="g"))] == ["one"]
    assert describe(REGION, DescribeSnapshotsRequest(source=SnapshotSource.AUTOMATED)) == []
    assert [s.name for s in describe(REGION, DescribeSnapshotsRequest(cache_cluster_id="g-001"))] == ["one"]
    with pytest.raises(errors.NotFound) as missing:
        describe(REGION, DescribeSnapshotsRequest(cache_cluster_id="nope"))
    assert shape_for(missing.value) == "CacheClusterNotFoundFault"

    copy = service.snapshots.copy(REGION, CopySnapshotRequest.parse(
        {"SourceSnapshotName": "one", "TargetSnapshotName": "two", "KmsKeyId": "other"}))
    assert copy.status == SnapshotStatus.CREATING and copy.copied_from == "one" and copy.encryption_key == "other"
    assert service.deps.store.get(Snapshot, REGION, "one").status == SnapshotStatus.COPYING
    with pytest.raises(errors.InvalidState, match="copying"):
        service.snapshots.copy(REGION, CopySnapshotRequest.parse({"SourceSnapshotName": "one", "TargetSnapshotName": "x"}))
    with store_tx(service) as tx:
        tx.put(replace(service.deps.store.get(Snapshot, REGION, "one"), status=SnapshotStatus.AVAILABLE))
    with pytest.raises(errors.InvalidParameterValue, match="does not exist"):
        service.snapshots.copy(REGION, CopySnapshotRequest.parse(
            {"SourceSnapshotName": "one", "TargetSnapshotName": "out", "TargetBucket": "missing"}))
    storage.objects[("exports", "out-0001.rdb")] = ObjectFacts(1, "REDIS0011")
    with pytest.raises(errors.InvalidParameterValue, match="already contains an object with key out-0001.rdb"):
        service.snapshots.copy(REGION, CopySnapshotRequest.parse(
            {"SourceSnapshotName": "one", "TargetSnapshotName": "out", "TargetBucket": "exports"}))
    exporting = service.snapshots.copy(REGION, CopySnapshotRequest.parse(
        {"SourceSnapshotName": "one", "TargetSnapshotName": "out2", "TargetBucket": "exports"}))
    assert exporting.status == SnapshotStatus.EXPORTING and exporting.export.target_name == "out2"


def store_tx(service):
    return service.deps.store.transaction()


def test_the_schedule_takes_one_a_day_and_prunes_after_the_limit(service):
    available_group(service, SnapshotRetentionLimit=2, SnapshotWindow="03:00-04:00")
    run = service.snapshots.run_schedule
    assert run(at("2031-03-01T02:59")) == []
    assert run(at("2031-03-01T03:01")) == ["taking automatic.g-2031-03-01-03-01"]
    assert run(at("2031-03-01T03:02")) == []  # the group is snapshotting
    finish(service, "automatic.g-2031-03-01-03-01")
    assert run(at("2031-03-01T03:30")) == []  # one a day
    assert run(at("2031-03-02T03:10")) == ["taking automatic.g-2031-03-02-03-10"]
    finish(service, "automatic.g-2031-03-02-03-10")
    done = run(at("2031-03-03T03:02"))
    assert done[0] == "taking automatic.g-2031-03-03-03-02"
    assert done[1].startswith("deleting automatic.g-2031-03-01-03-01: it is older than the retention limit of 2 day(s)")
    snapshots = {s.name: s for s in service.deps.store.list(Snapshot)}
    assert snapshots["automatic.g-2031-03-01-03-01"].status == SnapshotStatus.DELETING
    assert snapshots["automatic.g-2031-03-02-03-10"].source == SnapshotSource.AUTOMATED
    # Automatic snapshots go with their group (manual ones stay).
    finish(service, "automatic.g-2031-03-03-03-02")
    take(service, "manual", ReplicationGroupId="g")
    finish(service, "manual")
    with store_tx(service) as tx:
        tx.delete(service.deps.store.get(ReplicationGroup, REGION, "g"))
    done = run(at("2031-03-03T05:00"))
    assert sorted(done) == ["deleting automatic.g-2031-03-02-03-10: replication group with ID 'g' no longer exists",
                            "deleting automatic.g-2031-03-03-03-02: replication group with ID 'g' no longer exists"]
    assert service.deps.store.get(Snapshot, REGION, "manual").status == SnapshotStatus.AVAILABLE


def test_a_restore_takes_the_snapshots_shape_unless_asked_and_refuses_what_the_engine_cannot_load(service, storage):
    available_group(service, NumNodeGroups=3)
    take(service, "sharded", ReplicationGroupId="g")
    finish(service, "sharded", rdb_format="VALKEY080")
    request = CreateReplicationGroupRequest.parse(REGION, {
        "ReplicationGroupId": "copy", "ReplicationGroupDescription": "d", "SnapshotName": "sharded"})
    assert request.node_type is None and not request.cluster_mode
    resolved = request.with_snapshot_defaults(REGION, service.snapshots.restore_defaults(REGION, request.restore))
    assert resolved.cluster_mode and len(resolved.shards) == 3 and resolved.node_type == "cache.t4g.micro"
    assert resolved.engine_version == "9.1.2"
    asked = CreateReplicationGroupRequest.parse(REGION, {
        "ReplicationGroupId": "one", "ReplicationGroupDescription": "d", "SnapshotName": "sharded", "NumCacheClusters": 2})
    assert not asked.with_snapshot_defaults(
        REGION, SnapshotDefaults(node_type="cache.t4g.micro", cluster_enabled=True, num_node_groups=3)
    ).cluster_mode

    group = service.replication_groups.create(REGION, request)
    restore = service.snapshots.restore_of(group)
    assert restore is not None and len(restore.sources) == 3 and len(restore.temporary_addresses) == 3
    assert not set(restore.temporary_addresses) & {c.node.address for c in service.deps.store.list(CacheCluster)}
    with pytest.raises(errors.InvalidState, match="being restored into copy"):
        service.snapshots.delete(REGION, "sharded")

    # Valkey 8.1 cannot read Valkey 9's RDB format: refused before anything is created.
    before = {type(r).__name__ for r in service.deps.store.list(Restore)}, len(service.deps.store.list(CacheCluster))
    with pytest.raises(errors.InvalidParameterCombination, match="VALKEY080"):
        service.replication_groups.create(REGION, CreateReplicationGroupRequest.parse(REGION, {
            "ReplicationGroupId": "old", "ReplicationGroupDescription": "d", "SnapshotName": "sharded",
            "EngineVersion": "8.1"}))
    assert service.deps.store.get(ReplicationGroup, REGION, "old") is None
    assert ({type(r).__name__ for r in service.deps.store.list(Restore)}, len(service.deps.store.list(CacheCluster))) \
        == before
    # RDB objects: they say nothing of node types.
    storage.objects[("exports", "a.rdb")] = ObjectFacts(10, "REDIS0011")
    cluster_request = CreateCacheClusterRequest.parse(REGION, {
        "CacheClusterId": "c", "Engine": "valkey", "SnapshotArns": ["arn:aws:s3:::exports/a.rdb"]})
    with pytest.raises(errors.InvalidParameterValue, match="CacheNodeType must be provided"):
        service.cache_clusters.create(REGION, cluster_request)
    with pytest.raises(errors.InvalidParameterCombination, match="Redis OSS 7.0 cannot load"):
        service.cache_clusters.create(REGION, replace(cluster_request, engine="redis", node_type="cache.t4g.micro"))
    cluster = service.cache_clusters.create(REGION, replace(cluster_request, node_type="cache.t4g.micro"))
    assert service.snapshots.restore_of(cluster).sources[0].object_key == "a.rdb"


def test_a_final_snapshot_is_recorded_with_the_delete(service):
    available_group(service, NumCacheClusters=2)
    deleting = service.replication_groups.delete(REGION, "g", final_snapshot="g-final")
    assert deleting.status == GroupStatus.DELETING
    final = service.deps.store.get(Snapshot, REGION, "g-final")
    assert final.status == SnapshotStatus.CREATING and final.replication_group_id == "g"
    assert service.deps.store.get(Operation, REGION, "Snapshot/g-final/snapshot") is not None
    available_group(service, "h")
    with pytest.raises(errors.AlreadyExists):
        service.replication_groups.delete(REGION, "h", final_snapshot="g-final")
    assert service.deps.store.get(ReplicationGroup, REGION, "h").status == GroupStatus.AVAILABLE
