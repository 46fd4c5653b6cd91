"""Serverless cache snapshots' rules: Snapshot records of the hidden group under their own names and
faults, kept out of the node-based snapshot calls; copy, export, delete, the final snapshot of a
delete, SnapshotArnsToRestore and the restore's shape."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import replace

import pytest

from cachefleet.api.errors import shape_for
from cachefleet.domain import errors
from cachefleet.domain.base import Dependencies
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus
from cachefleet.domain.elasticache import ElastiCache
from cachefleet.domain.engines import EngineRelease
from cachefleet.domain.operations import Operation
from cachefleet.domain.replication_groups import GroupStatus, ReplicationGroup
from cachefleet.domain.serverless import (
    CreateServerlessCacheRequest,
    ServerlessCache,
    restore_request,
    status_of,
)
from cachefleet.domain.serverless_snapshots import (
    CopyServerlessCacheSnapshotRequest,
    CreateServerlessCacheSnapshotRequest,
    DescribeServerlessCacheSnapshotsRequest,
    ExportServerlessCacheSnapshotRequest,
    SnapshotType,
    expiry_time,
    status,
)
from cachefleet.domain.snapshots import (
    DescribeSnapshotsRequest,
    Restore,
    Snapshot,
    SnapshotSource,
    SnapshotStatus,
    daily_window,
)
from cachefleet.store.sqlite import SqliteStore

REGION = "us-east-1"
NOON = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
RELEASES = [EngineRelease("valkey", "8.1.8", "valkey8", "Valkey 8.1.8")]


class Clock:
    def now(self) -> dt.datetime:
        return NOON


class Catalog:
    def releases(self):
        return RELEASES


class Storage:
    buckets = {"exports"}

    def loadable(self, rdb_format, engine, version):
        return None

    def object_facts(self, bucket, key):
        raise errors.InvalidParameterValue(f"No object {key} in the S3 bucket {bucket}.")

    def bucket_exists(self, bucket):
        return bucket in self.buckets

    def object_exists(self, bucket, key):
        return False


@pytest.fixture
def service(tmp_path):
    deps = Dependencies(store=SqliteStore(tmp_path / "state.db"), catalog=Catalog(), clock=Clock(),
                        node_network=ipaddress.IPv4Network("127.81.0.0/24"))
    return ElastiCache(deps, snapshot_storage=Storage())


def settle(service):
    """What the workflows record once done: groups and nodes available, snapshots taken, no operations."""
    store = service.deps.store
    with store.transaction() as tx:
        for group in store.list(ReplicationGroup):
            if group.status != GroupStatus.DELETING:
                tx.put(replace(group, status=GroupStatus.AVAILABLE))
        for cluster in store.list(CacheCluster):
            tx.put(replace(cluster, status=ClusterStatus.AVAILABLE))
        for snapshot in store.list(Snapshot):
            if snapshot.status in (SnapshotStatus.CREATING, SnapshotStatus.COPYING, SnapshotStatus.EXPORTING):
                tx.put(replace(snapshot, status=SnapshotStatus.AVAILABLE, export=None, copied_from=None,
                               node_snapshots=tuple(replace(n, size=1000, rdb_format="REDIS0011")
                                                    for n in snapshot.node_snapshots)))
        for operation in store.list(Operation):
            if operation.resource_kind != "ReplicationGroup" or "serverless--" not in operation.key:
                tx.delete(operation)
        for restore in store.list(Restore):
            tx.delete(restore)


def cache(service, name="c1", **params):
    request = CreateServerlessCacheRequest.parse(REGION, {"ServerlessCacheName": name, "Engine": "valkey", **params})
    service.serverless.create(REGION, request)
    settle(service)
    return service.deps.store.get(ServerlessCache, REGION, name)


def snap(service, name="s1", cache_name="c1"):
    return service.serverless_snapshots.create(REGION, CreateServerlessCacheSnapshotRequest.parse(
        {"ServerlessCacheSnapshotName": name, "ServerlessCacheName": cache_name}))


def code(error):
    return shape_for(error)


def test_a_serverless_snapshot_is_a_snapshot_of_the_hidden_group_under_its_own_name(service):
    made = cache(service)
    taken = snap(service)
    assert (taken.name, taken.user_name, taken.serverless_cache_name) == ("serverless--s1", "s1", "c1")
    assert taken.replication_group_id == "serverless--c1" and taken.status == SnapshotStatus.CREATING
    group = service.deps.store.get(ReplicationGroup, REGION, made.group_id)
    assert group.status == GroupStatus.SNAPSHOTTING
    assert status_of(made, group).value == "available"  # the cache keeps serving
    # A second one while the first is taken: the cache is busy.
    with pytest.raises(errors.InvalidState) as caught:
        snap(service, "s2")
    assert code(caught.value) == "InvalidServerlessCacheStateFault"
    settle(service)
    with pytest.raises(errors.AlreadyExists) as caught:
        snap(service, "s1")
    assert code(caught.value) == "ServerlessCacheSnapshotAlreadyExistsFault"
    with pytest.raises(errors.NotFound) as caught:
        snap(service, "s3", cache_name="nope")
    assert code(caught.value) == "ServerlessCacheNotFoundFault"
    with pytest.raises(errors.InvalidParameterValue, match="ServerlessCacheSnapshotName"):
        CreateServerlessCacheSnapshotRequest.parse({"ServerlessCacheSnapshotName": "a--b", "ServerlessCacheName": "c1"})

    # Not a snapshot to the node-based calls.
    assert service.snapshots.describe(REGION, DescribeSnapshotsRequest()) == []
    for call in (lambda: service.snapshots.delete(REGION, "serverless--s1"),
                 lambda: service.snapshots.describe(REGION, DescribeSnapshotsRequest(snapshot_name="serverless--s1"))):
        with pytest.raises(errors.NotFound) as caught:
            call()
        assert code(caught.value) == "SnapshotNotFoundFault"


def test_describe_filters_copy_export_and_delete(service):
    cache(service)
    cache(service, "c2")
    snap(service, "s1")
    settle(service)
    snap(service, "s2", cache_name="c2")
    settle(service)
    describe = service.serverless_snapshots.describe
    assert [s.user_name for s in describe(REGION, DescribeServerlessCacheSnapshotsRequest())] == ["s1", "s2"]
    assert [s.user_name for s in describe(REGION, DescribeServerlessCacheSnapshotsRequest(cache_name="c2"))] == ["s2"]
    assert describe(REGION, DescribeServerlessCacheSnapshotsRequest(snapshot_type=SnapshotType.AUTOMATIC)) == []
    with pytest.raises(errors.NotFound) as caught:
        describe(REGION, DescribeServerlessCacheSnapshotsRequest(snapshot_name="nope"))
    assert code(caught.value) == "ServerlessCacheSnapshotNotFoundFault"
    with pytest.raises(errors.NotFound) as caught:
        describe(REGION, DescribeServerlessCacheSnapshotsRequest(cache_name="nope"))
    assert code(caught.value) == "ServerlessCacheNotFoundFault"
    with pytest.raises(errors.InvalidParameterValue, match="SnapshotType"):
        DescribeServerlessCacheSnapshotsRequest.parse({"SnapshotType": "user"})

    copied = service.serverless_snapshots.copy(REGION, CopyServerlessCacheSnapshotRequest.parse(
        {"SourceServerlessCacheSnapshotName": "s1", "TargetServerlessCacheSnapshotName": "s1-copy"}))
    assert (copied.name, copied.copied_from, copied.serverless_cache_name) == ("serverless--s1-copy", "serverless--s1", "c1")
    source = service.deps.store.get(Snapshot, REGION, "serverless--s1")
    assert status(source, restoring=False) == "copying"
    with pytest.raises(errors.InvalidState) as caught:
        service.serverless_snapshots.delete(REGION, "s1")
    assert code(caught.value) == "InvalidServerlessCacheSnapshotStateFault"
    settle(service)
    with pytest.raises(errors.AlreadyExists) as caught:
        service.serverless_snapshots.copy(REGION, CopyServerlessCacheSnapshotRequest.parse(
            {"SourceServerlessCacheSnapshotName": "s1", "TargetServerlessCacheSnapshotName": "s2"}))
    assert code(caught.value) == "ServerlessCacheSnapshotAlreadyExistsFault"

    with pytest.raises(errors.InvalidParameterValue, match="does not exist"):
        service.serverless_snapshots.export(REGION, ExportServerlessCacheSnapshotRequest.parse(
            {"ServerlessCacheSnapshotName": "s1", "S3BucketName": "missing"}))
    exporting = service.serverless_snapshots.export(REGION, ExportServerlessCacheSnapshotRequest.parse(
        {"ServerlessCacheSnapshotName": "s1", "S3BucketName": "exports"}))
    assert exporting.export.bucket == "exports" and exporting.export.target_name == "s1"
    settle(service)
    deleting = service.serverless_snapshots.delete(REGION, "s1")
    assert deleting.status == SnapshotStatus.DELETING
    with pytest.raises(errors.InvalidState) as caught:
        service.serverless_snapshots.delete(REGION, "s1")
    assert code(caught.value) == "InvalidServerlessCacheSnapshotStateFault"


def test_delete_with_a_final_snapshot(service):
    made = cache(service)
    snap(service, "taken")
    settle(service)
    with pytest.raises(errors.AlreadyExists) as caught:
        service.serverless.delete(REGION, "c1", final_snapshot="taken")
    assert code(caught.value) == "ServerlessCacheSnapshotAlreadyExistsFault"
    assert not service.deps.store.get(ServerlessCache, REGION, "c1").deleting  # nothing half-done
    service.serverless.delete(REGION, "c1", final_snapshot="last")
    final = service.deps.store.get(Snapshot, REGION, "serverless--last")
    assert (final.status, final.serverless_cache_name, final.source) == (SnapshotStatus.CREATING, "c1",
                                                                        SnapshotSource.MANUAL)
    assert service.deps.store.get(ReplicationGroup, REGION, made.group_id).status == GroupStatus.DELETING


def test_snapshot_arns_to_restore():
    assert restore_request(REGION, None) is None
    arn = "arn:aws:elasticache:us-east-1:000000000000:"
    assert restore_request(REGION, [arn + "serverlesscachesnapshot:S1"]).snapshot_name == "serverless--s1"
    assert restore_request(REGION, [arn + "snapshot:node-snap"]).snapshot_name == "node-snap"
    assert restore_request(REGION, ["arn:aws:s3:::bkt/a.rdb", "arn:aws:s3:::bkt/b.rdb"]).objects == (
        ("bkt", "a.rdb"), ("bkt", "b.rdb"))
    with pytest.raises(errors.InvalidParameterValue, match="one snapshot"):
        restore_request(REGION, [arn + "snapshot:a", arn + "snapshot:b"])
    with pytest.raises(errors.InvalidParameterValue, match="SnapshotArnsToRestore"):
        restore_request(REGION, [arn + "user:u1"])


def test_restore_takes_the_snapshots_shard_count_and_shows_restoring(service):
    cache(service, "src")
    store = service.deps.store
    snap(service, "three", cache_name="src")
    settle(service)
    taken = store.get(Snapshot, REGION, "serverless--three")
    with store.transaction() as tx:  # as if the source had scaled out to three shards
        tx.put(replace(taken, node_snapshots=tuple(replace(taken.node_snapshots[0], node_group_id=f"000{i}")
                                                   for i in (1, 2, 3))))
    with pytest.raises(errors.NotFound) as caught:
        service.serverless.create(REGION, CreateServerlessCacheRequest.parse(REGION, {
            "ServerlessCacheName": "dst", "Engine": "valkey",
            "SnapshotArnsToRestore": ["arn:aws:elasticache:us-east-1:000000000000:serverlesscachesnapshot:nope"]}))
    assert code(caught.value) == "ServerlessCacheSnapshotNotFoundFault"
    assert store.get(ServerlessCache, REGION, "dst") is None
    service.serverless.create(REGION, CreateServerlessCacheRequest.parse(REGION, {
        "ServerlessCacheName": "dst", "Engine": "valkey",
        "SnapshotArnsToRestore": ["arn:aws:elasticache:us-east-1:000000000000:serverlesscachesnapshot:three"]}))
    group = store.get(ReplicationGroup, REGION, "serverless--dst")
    assert len(group.node_groups) == 3
    restore = store.list(Restore)[0]
    assert restore.snapshot_name == "serverless--three" and len(restore.sources) == 3
    assert service.serverless_snapshots.restoring(taken)
    assert status(store.get(Snapshot, REGION, "serverless--three"), restoring=True) == "restoring"


def test_expiry_of_automatic_snapshots_only():
    base = Snapshot(region=REGION, name="serverless--a", status=SnapshotStatus.AVAILABLE,
                    source=SnapshotSource.AUTOMATED, create_time=NOON, engine="valkey", engine_version="8.1.8",
                    node_type="x", port=6379, parameter_group_name="p", subnet_group_name="s", node_snapshots=(),
                    snapshot_retention_limit=3)
    assert expiry_time(base) == NOON + dt.timedelta(days=3)
    assert expiry_time(replace(base, source=SnapshotSource.MANUAL)) is None


def test_daily_window():
    assert daily_window("04:00") == "04:00-05:00"
    assert daily_window("23:30") == "23:30-00:30"


def test_the_daily_snapshot_at_daily_snapshot_time_pruned_after_the_retention_limit(service):
    store = service.deps.store
    cache(service, "daily", DailySnapshotTime="04:00", SnapshotRetentionLimit=2)
    cache(service, "never")  # retention 0: no automatic snapshot
    run = service.snapshots.run_schedule
    assert run(dt.datetime(2026, 11, 30, 3, 59, tzinfo=dt.UTC)) == []  # before the window
    four = dt.datetime(2026, 11, 30, 4, 10, tzinfo=dt.UTC)
    assert run(four) == ["taking serverless--automatic.daily-2026-11-30-04-10"]
    taken = store.get(Snapshot, REGION, "serverless--automatic.daily-2026-11-30-04-10")
    assert (taken.serverless_cache_name, taken.user_name) == ("daily", "automatic.daily-2026-11-30-04-10")
    assert expiry_time(taken) == four + dt.timedelta(days=2)
    settle(service)
    assert run(four + dt.timedelta(minutes=20)) == []  # one a day
    found = service.serverless_snapshots.describe(
        REGION, DescribeServerlessCacheSnapshotsRequest(snapshot_type=SnapshotType.AUTOMATIC))
    assert [s.user_name for s in found] == ["automatic.daily-2026-11-30-04-10"]
    assert service.snapshots.describe(REGION, DescribeSnapshotsRequest()) == []
    # Two days later: the next one is taken and the first pruned.
    later = four + dt.timedelta(days=2)
    assert sorted(run(later)) == [
        "deleting serverless--automatic.daily-2026-11-30-04-10: it is older than the retention limit of 2 day(s)",
        "taking serverless--automatic.daily-2026-12-02-04-10",
    ]
