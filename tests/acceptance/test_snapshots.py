"""Snapshots end to end, through boto3 against a real control plane and real engines: snapshot and
restore of 100,000 keys of every type into other shard counts, exports to an S3 endpoint (moto's
server) and restores from SnapshotArns (also of a bare engine's RDB), final snapshots, encryption at
rest, a corrupt file, a full disk, the automatic schedule on a fake clock, and a control plane
killed in the middle of a snapshot and of a restore."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest
import redis
from botocore.exceptions import ClientError

from cachefleet.engine.keyslot import key_slot
from datasets import compare, count_by_type, fill, read_back
from enginekit import EngineSet, installed
from helpers import (
    Server,
    engine_processes,
    events_of,
    free_port,
    fresh_network,
    moto_s3_server,
    wait_cluster,
    wait_for,
    wait_group,
    wait_group_gone,
)

NODE_TYPE = "cache.m5.large"  # room for the data sets: a smaller maxmemory would evict keys with TTLs


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """moto_server on a free port (a real S3 API over HTTP), stopped by pid at the end."""
    with moto_s3_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture(scope="module")
def aws_env():
    """The standard credential chain's environment, for the server (and this process's S3 client)."""
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, s3_endpoint, aws_env):
    """One control plane for the module, with the S3 endpoint configured."""
    root = tmp_path_factory.mktemp("snapshots")
    server = Server(data_dir=root / "data", network=fresh_network(), port=free_port(),
                    extra=["--s3-endpoint-url", s3_endpoint]).start()
    try:
        yield server
    finally:
        server.down()


@pytest.fixture(scope="module")
def ec(fleet):
    return fleet.client()


@pytest.fixture(scope="module")
def s3(s3_endpoint, aws_env):
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


# ---------------------------------------------------------------------- helpers
def raw(address: str, port: int = 6379) -> redis.Redis:
    return redis.Redis(host=address, port=port, socket_timeout=60)


def snapshot_status(ec, name):
    try:
        return ec.describe_snapshots(SnapshotName=name)["Snapshots"][0]["SnapshotStatus"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "SnapshotNotFoundFault":
            return None
        raise


def wait_snapshot(ec, name, status="available", timeout=60.0):
    wait_for(lambda: snapshot_status(ec, name) == status, timeout=timeout, what=f"snapshot {name} to be {status}")
    return ec.describe_snapshots(SnapshotName=name, ShowNodeGroupConfig=True)["Snapshots"][0]


def group(ec, group_id, *, shards=None, replicas=0, **extra):
    params = dict(ReplicationGroupId=group_id, ReplicationGroupDescription="snapshots", Engine="valkey",
                  CacheNodeType=NODE_TYPE, **extra)
    if shards is not None:
        params.update(NumNodeGroups=shards, ReplicasPerNodeGroup=replicas)
    elif "SnapshotName" not in extra and "SnapshotArns" not in extra:
        params["NumCacheClusters"] = replicas + 1
    ec.create_replication_group(**params)
    return wait_group(ec, group_id, timeout=120)


def primary_of(described) -> str:
    if described["ClusterEnabled"]:
        return described["ConfigurationEndpoint"]["Address"]
    return described["NodeGroups"][0]["PrimaryEndpoint"]["Address"]


def read_group(ec, described, keys):
    """Every key read from the primary that owns it (in cluster mode, by slot from CLUSTER SLOTS)."""
    if not described["ClusterEnabled"]:
        return read_back(raw(primary_of(described)), keys)
    seed = raw(described["ConfigurationEndpoint"]["Address"])
    owners = {}
    for low, high, primary, *_ in seed.execute_command("CLUSTER", "SLOTS"):
        for slot in range(low, high + 1):
            owners[slot] = primary[0].decode()
    by_node: dict[str, list[bytes]] = {}
    for key in keys:
        by_node.setdefault(owners[key_slot(key)], []).append(key)
    found = {}
    for address, mine in by_node.items():
        found.update(read_back(raw(address), mine))
    return found


def delete_group(ec, group_id):
    ec.delete_replication_group(ReplicationGroupId=group_id)
    wait_group_gone(ec, group_id, timeout=60)


def snapshot_dir(server: Server, name: str) -> Path:
    return server.data_dir / "snapshots" / "us-east-1" / name


# ---------------------------------------------------------------------- 100,000 keys
def test_100k_keys_of_every_type_restore_into_three_shards_and_back_into_two(ec):
    """Snapshot of a cluster mode disabled group (from its in-sync replica) restored 1 -> 3 shards
    (keys moved by slot), that group's 3-shard snapshot restored 3 -> 2 (two shards seeded at
    start-up, the middle one's keys moved): every key, type, value and TTL (within a second) as written."""
    source = group(ec, "big", replicas=1)
    primary = raw(primary_of(source))
    keys = fill(primary, 100_000, seed=10)
    assert primary.wait(1, 10_000) == 1  # the replica has every write: the snapshot is taken from it
    # Read from that replica: a replica sets a stream consumer's seen-time itself when it applies the
    # primary's XREADGROUP, which on a busy machine is a millisecond after the primary did.
    replica_address = next(m["ReadEndpoint"]["Address"] for m in source["NodeGroups"][0]["NodeGroupMembers"]
                           if m["CurrentRole"] == "replica")
    expected = read_back(raw(replica_address), keys)
    counts = count_by_type(expected.values())
    assert set(counts) == {b"string", b"hash", b"list", b"set", b"zset", b"stream"} and min(counts.values()) > 10_000
    assert sum(1 for _, _, expires in expected.values() if expires != -1) >= 33_000

    created = ec.create_snapshot(ReplicationGroupId="big", SnapshotName="big-1")["Snapshot"]
    assert created["SnapshotStatus"] == "creating"
    assert ec.describe_replication_groups(ReplicationGroupId="big")["ReplicationGroups"][0]["Status"] == "snapshotting"
    taken = wait_snapshot(ec, "big-1")
    (node,) = taken["NodeSnapshots"]
    assert node["CacheClusterId"] == "big-002"  # the replica: the primary did not fork
    assert node["NodeGroupConfiguration"]["ReplicaCount"] == 1 and int(node["CacheSize"].split()[0]) > 1
    wait_group(ec, "big")  # available again
    delete_group(ec, "big")

    three = group(ec, "big-three", SnapshotName="big-1", NumNodeGroups=3, ReplicasPerNodeGroup=0)
    assert three["ClusterEnabled"] and len(three["NodeGroups"]) == 3
    assert compare(expected, read_group(ec, three, keys)) == []
    assert any("keys moved by slot" in m for m in events_of(ec, "big-three"))

    ec.create_snapshot(ReplicationGroupId="big-three", SnapshotName="big-3")
    shards = wait_snapshot(ec, "big-3")
    ranges = [n["NodeGroupConfiguration"]["Slots"] for n in shards["NodeSnapshots"]]
    assert ranges == [ng["Slots"] for ng in three["NodeGroups"]] and len(ranges) == 3  # one RDB per shard
    delete_group(ec, "big-three")
    two = group(ec, "big-two", SnapshotName="big-3", NumNodeGroups=2, ReplicasPerNodeGroup=0)
    assert compare(expected, read_group(ec, two, keys)) == []
    assert any("2 primary node(s) started from their RDB files" in m for m in events_of(ec, "big-two"))
    delete_group(ec, "big-two")


# ---------------------------------------------------------------------- S3
def test_export_to_s3_then_restore_from_its_arns_and_from_a_bare_engines_rdb(ec, s3, fleet):
    s3.create_bucket(Bucket="exports")
    source = group(ec, "exp", shards=2)
    client = redis.RedisCluster(host=primary_of(source), port=6379)
    for n in range(2000):
        client.set(f"key:{n}", f"value:{n}")
    client.expire("key:7", 7200)
    ec.create_snapshot(ReplicationGroupId="exp", SnapshotName="exp-snap")
    wait_snapshot(ec, "exp-snap")

    with pytest.raises(ClientError, match="does not exist"):
        ec.copy_snapshot(SourceSnapshotName="exp-snap", TargetSnapshotName="out", TargetBucket="no-such-bucket")
    exported = ec.copy_snapshot(SourceSnapshotName="exp-snap", TargetSnapshotName="out", TargetBucket="exports")
    assert exported["Snapshot"]["SnapshotStatus"] == "exporting"
    wait_snapshot(ec, "exp-snap")
    objects = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="exports")["Contents"])
    assert objects == ["out-0001.rdb", "out-0002.rdb"]  # ElastiCache's layout: <name>-<shard>.rdb
    assert s3.get_object(Bucket="exports", Key="out-0001.rdb")["Body"].read(9)[:5] in (b"REDIS", b"VALKE")  # plain RDBs
    with pytest.raises(ClientError, match="already contains an object"):
        ec.copy_snapshot(SourceSnapshotName="exp-snap", TargetSnapshotName="out", TargetBucket="exports")

    arns = [f"arn:aws:s3:::exports/{key}" for key in objects]
    restored = group(ec, "from-arns", SnapshotArns=arns, NumNodeGroups=3)
    restored_client = redis.RedisCluster(host=primary_of(restored), port=6379)
    assert [restored_client.get(f"key:{n}") for n in range(0, 2000, 97)] == [
        f"value:{n}".encode() for n in range(0, 2000, 97)
    ]
    assert 7100 < restored_client.ttl("key:7") <= 7200
    delete_group(ec, "from-arns")
    # The 2-shard snapshot into one standalone cluster (cluster mode disabled): one shard's RDB is
    # loaded at start-up, the other's keys are moved into it.
    ec.create_cache_cluster(CacheClusterId="exp-one", SnapshotName="exp-snap")
    single = raw(wait_cluster(ec, "exp-one", timeout=60)["CacheNodes"][0]["Endpoint"]["Address"])
    assert single.dbsize() == 2000 and single.get("key:1999") == b"value:1999"
    ec.delete_cache_cluster(CacheClusterId="exp-one")
    delete_group(ec, "exp")

    # An RDB saved by a bare engine (not by Cachefleet), uploaded by hand, seeds a cache cluster.
    engines = EngineSet()
    try:
        bare = engines.start(installed("valkey", "8."))
        bare.client().mset({f"bare:{n}": f"v{n}" for n in range(500)})
        bare.client().save()
        s3.upload_file(str(bare.rdb), "exports", "mine/dump.rdb")
    finally:
        engines.close()
    # Redis OSS 7.0 cannot read Valkey 8.1's format: refused before anything is created.
    with pytest.raises(ClientError) as refused:
        ec.create_cache_cluster(CacheClusterId="bare-redis", Engine="redis", CacheNodeType=NODE_TYPE,
                                SnapshotArns=["arn:aws:s3:::exports/mine/dump.rdb"])
    assert refused.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert "cannot load an RDB of format REDIS0011" in refused.value.response["Error"]["Message"]
    assert "bare-redis" not in [c["CacheClusterId"] for c in ec.describe_cache_clusters()["CacheClusters"]]
    ec.create_cache_cluster(CacheClusterId="bare", Engine="valkey", EngineVersion="8.1", CacheNodeType=NODE_TYPE,
                            SnapshotArns=["arn:aws:s3:::exports/mine/dump.rdb"])
    cluster = wait_cluster(ec, "bare", timeout=60)
    node = raw(cluster["CacheNodes"][0]["Endpoint"]["Address"])
    assert node.dbsize() == 500 and node.get("bare:499") == b"v499"
    ec.delete_cache_cluster(CacheClusterId="bare")


# ---------------------------------------------------------------------- final snapshots, encryption, corruption
def test_a_final_snapshot_is_taken_before_the_nodes_stop(ec, fleet):
    source = group(ec, "fin", replicas=1)
    primary = raw(primary_of(source))
    primary.mset({f"f:{n}": n for n in range(3000)})
    primary.wait(1, 5000)
    deleting = ec.delete_replication_group(ReplicationGroupId="fin", FinalSnapshotIdentifier="fin-final")
    assert deleting["ReplicationGroup"]["Status"] == "deleting"
    wait_group_gone(ec, "fin", timeout=60)
    final = wait_snapshot(ec, "fin-final")
    assert final["SnapshotSource"] == "manual" and final["ReplicationGroupId"] == "fin"
    messages = events_of(ec, "fin")
    assert messages.index("Snapshot succeeded for snapshot with ID 'fin-final' of replication group with ID 'fin'") < \
        messages.index("Replication group fin deleted")
    ec.create_cache_cluster(CacheClusterId="fin-copy", SnapshotName="fin-final")  # settings from the snapshot
    copy = wait_cluster(ec, "fin-copy", timeout=60)
    assert copy["CacheNodeType"] == NODE_TYPE
    assert raw(copy["CacheNodes"][0]["Endpoint"]["Address"]).dbsize() == 3000
    # A standalone cluster's final snapshot, and a copy of it that is deleted again.
    ec.delete_cache_cluster(CacheClusterId="fin-copy", FinalSnapshotIdentifier="fin-copy-final")
    wait_for(lambda: "fin-copy" not in [c["CacheClusterId"] for c in ec.describe_cache_clusters()["CacheClusters"]],
             timeout=60, what="fin-copy to be deleted")
    assert wait_snapshot(ec, "fin-copy-final")["CacheClusterId"] == "fin-copy"
    ec.copy_snapshot(SourceSnapshotName="fin-copy-final", TargetSnapshotName="fin-copy-2")
    assert wait_snapshot(ec, "fin-copy-2")["NodeSnapshots"][0]["CacheSize"] == final["NodeSnapshots"][0]["CacheSize"]
    for name in ("fin-final", "fin-copy-final", "fin-copy-2"):
        assert ec.delete_snapshot(SnapshotName=name)["Snapshot"]["SnapshotStatus"] == "deleting"
    wait_for(lambda: all(snapshot_status(ec, n) is None for n in ("fin-final", "fin-copy-final", "fin-copy-2")),
             what="snapshots to be deleted")
    assert not snapshot_dir(fleet, "fin-final").exists()


KNOWN = b"the-known-plaintext-value-4f1d"


def test_an_encrypted_snapshot_holds_no_known_value_in_plain_text_and_restores(ec, s3, fleet):
    source = group(ec, "sealed", AtRestEncryptionEnabled=True, KmsKeyId="alias/cachefleet-test")
    assert source["AtRestEncryptionEnabled"] and source["KmsKeyId"] == "alias/cachefleet-test"
    primary = raw(primary_of(source))
    primary.set("secret", KNOWN)
    primary.mset({f"filler:{n}": KNOWN + b"%d" % n for n in range(2000)})
    ec.create_snapshot(ReplicationGroupId="sealed", SnapshotName="sealed-snap")
    taken = wait_snapshot(ec, "sealed-snap")
    assert taken["KmsKeyId"] == "alias/cachefleet-test"
    directory = snapshot_dir(fleet, "sealed-snap")
    files = sorted(p.name for p in directory.iterdir())
    assert files == ["manifest.json.enc", "sealed-snap-0001.rdb.enc"]
    assert directory.stat().st_mode & 0o777 == 0o700
    for path in directory.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
        assert KNOWN not in path.read_bytes() and b"REDIS00" not in path.read_bytes()[:64]
    key_files = list((fleet.data_dir / "keys").iterdir())
    assert key_files and all(p.stat().st_mode & 0o777 == 0o600 for p in key_files)
    assert (fleet.data_dir / "keys").stat().st_mode & 0o777 == 0o700

    restored = group(ec, "unsealed", SnapshotName="sealed-snap")
    assert restored["AtRestEncryptionEnabled"]  # an encrypted snapshot's data stays encrypted at rest
    assert raw(primary_of(restored)).get("secret") == KNOWN
    # Exported objects are encrypted as well; a restore from their ARNs decrypts them.
    s3.create_bucket(Bucket="sealed-exports")
    ec.copy_snapshot(SourceSnapshotName="sealed-snap", TargetSnapshotName="sealed", TargetBucket="sealed-exports")
    wait_snapshot(ec, "sealed-snap")
    assert KNOWN not in s3.get_object(Bucket="sealed-exports", Key="sealed-0001.rdb")["Body"].read()
    ec.create_cache_cluster(CacheClusterId="from-sealed", CacheNodeType=NODE_TYPE, Engine="valkey",
                            SnapshotArns=["arn:aws:s3:::sealed-exports/sealed-0001.rdb"])
    cluster = wait_cluster(ec, "from-sealed", timeout=60)
    assert raw(cluster["CacheNodes"][0]["Endpoint"]["Address"]).get("secret") == KNOWN
    ec.delete_cache_cluster(CacheClusterId="from-sealed")
    delete_group(ec, "sealed")
    delete_group(ec, "unsealed")


def test_a_corrupt_snapshot_file_fails_the_restore_with_create_failed_and_a_reason(ec, fleet):
    source = group(ec, "good")
    raw(primary_of(source)).mset({f"g:{n}": n for n in range(5000)})
    ec.create_snapshot(ReplicationGroupId="good", SnapshotName="good-snap")
    wait_snapshot(ec, "good-snap")
    delete_group(ec, "good")
    path = snapshot_dir(fleet, "good-snap") / "good-snap-0001.rdb"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the RDB's checksum no longer matches
    path.write_bytes(bytes(data))
    ec.create_replication_group(ReplicationGroupId="bad-restore", ReplicationGroupDescription="d",
                                SnapshotName="good-snap", NumCacheClusters=2)
    failed = wait_group(ec, "bad-restore", status="create-failed", timeout=60)
    assert failed["Status"] == "create-failed"
    reasons = [m for m in events_of(ec, "bad-restore") if "create-failed" in m]
    assert reasons and ("checksum" in reasons[-1].lower() or "could not be loaded" in reasons[-1]), reasons
    assert not [m for m in events_of(ec, "bad-restore") if "available" in m]  # never reported available
    assert not [key for key, _ in engine_processes(fleet.data_dir) if key in {
        m["ReadEndpoint"]["Address"] for m in failed["NodeGroups"][0]["NodeGroupMembers"]}]
    delete_group(ec, "bad-restore")
    ec.delete_snapshot(SnapshotName="good-snap")


# ---------------------------------------------------------------------- a full disk
def test_a_full_disk_fails_the_snapshot_and_the_group_keeps_serving(make_server, tmp_path):
    data_dir = tmp_path / "full"
    mount = data_dir / "snapshots"
    mount.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        server = make_server(data_dir=data_dir)
        ec = server.client()
        source = group(ec, "full")
        primary = raw(primary_of(source))
        primary.mset({f"big:{n}": os.urandom(1024) for n in range(3000)})  # a 3 MB RDB for a 1 MB disk
        ec.create_snapshot(ReplicationGroupId="full", SnapshotName="too-big")
        wait_snapshot(ec, "too-big", status="failed")
        assert any("no space left" in m.lower() for m in events_of(ec, "full")), events_of(ec, "full")
        assert wait_group(ec, "full")["Status"] == "available"
        primary.set("after", "still serving")
        assert primary.get("after") == b"still serving" and primary.dbsize() == 3001
        assert [p for p in mount.rglob("*") if p.is_file()] == []  # no partial file left
        ec.delete_snapshot(SnapshotName="too-big")
        wait_for(lambda: snapshot_status(ec, "too-big") is None, what="the failed snapshot to be deleted")
        server.down()
    finally:
        subprocess.run(["umount", str(mount)], check=True)


# ---------------------------------------------------------------------- the automatic schedule
def test_automatic_snapshots_in_their_window_pruned_after_the_limit_across_a_restart(make_server, tmp_path):
    clock = tmp_path / "clock"
    clock.write_text("2031-03-01T02:50:00+00:00")  # before the window: nothing is due
    server = make_server("--snapshot-clock-file", str(clock))
    ec = server.client()
    ec.create_cache_cluster(CacheClusterId="auto", Engine="valkey", CacheNodeType=NODE_TYPE,
                            SnapshotRetentionLimit=1, SnapshotWindow="03:00-04:00")
    node = raw(wait_cluster(ec, "auto")["CacheNodes"][0]["Endpoint"]["Address"])
    node.set("k", "v")

    def automatic():
        return sorted(s["SnapshotName"] for s in ec.describe_snapshots(SnapshotSource="system")["Snapshots"])

    time.sleep(1.5)
    assert automatic() == []
    clock.write_text("2031-03-01T03:10:00+00:00")
    first = "automatic.auto-2031-03-01-03-10"
    wait_for(lambda: automatic() == [first], what="the first automatic snapshot")
    assert wait_snapshot(ec, first)["SnapshotSource"] == "automated"
    assert ec.describe_snapshots(SnapshotSource="user")["Snapshots"] == []
    server.stop(signal.SIGKILL)
    server.start()  # the schedule keeps no state of its own: one snapshot a day, whatever restarts
    ec = server.client()
    clock.write_text("2031-03-01T03:50:00+00:00")
    time.sleep(1.5)
    assert automatic() == [first]
    clock.write_text("2031-03-02T03:05:00+00:00")  # the next day's window; the first is 23 h 55 min old
    second = "automatic.auto-2031-03-02-03-05"
    wait_for(lambda: automatic() == [first, second], what="the second automatic snapshot")
    wait_snapshot(ec, second)
    clock.write_text("2031-03-02T03:11:00+00:00")  # one day after the first: past the limit of 1 day
    wait_for(lambda: automatic() == [second], what="the first automatic snapshot to be pruned")
    assert any(f"Automatic snapshot {first} deleted" in m for m in events_of(ec, "auto"))
    ec.modify_cache_cluster(CacheClusterId="auto", SnapshotRetentionLimit=0)
    clock.write_text("2031-03-03T03:30:00+00:00")
    time.sleep(1.5)
    assert automatic() == [second]  # retention off: none taken, none pruned
    assert not snapshot_dir(server, first).exists()


# ---------------------------------------------------------------------- a control plane killed
def test_a_control_plane_killed_mid_snapshot_and_mid_restore_resumes_cleanly(make_server):
    server = make_server()
    ec = server.client()
    ec.create_cache_cluster(CacheClusterId="kill", Engine="valkey", CacheNodeType=NODE_TYPE)
    node_address = wait_cluster(ec, "kill")["CacheNodes"][0]["Endpoint"]["Address"]
    node = raw(node_address)
    count = 30_000
    pipe = node.pipeline(transaction=False)
    for n in range(count):
        pipe.set(f"k:{n}", f"value-{n}")
    pipe.execute()
    pids = dict(engine_processes(server.data_dir))

    # Mid-snapshot: the node is paused, so the stream is sure to be under way when the control plane dies.
    os.kill(pids[node_address], signal.SIGSTOP)
    try:
        ec.create_snapshot(CacheClusterId="kill", SnapshotName="kill-snap")
        directory = snapshot_dir(server, "kill-snap")
        wait_for(lambda: directory.exists() and any(p.name.endswith(".part") for p in directory.iterdir()),
                 what="the snapshot file being written")
        server.stop(signal.SIGKILL)
    finally:
        os.kill(pids[node_address], signal.SIGCONT)
    server.start()
    ec = server.client()
    taken = wait_snapshot(ec, "kill-snap")
    assert sorted(p.name for p in directory.iterdir()) == ["kill-snap-0001.rdb", "manifest.json"]  # no .part left
    assert taken["NodeSnapshots"][0]["CacheClusterId"] == "kill"
    assert wait_cluster(ec, "kill")["CacheClusterStatus"] == "available"
    assert dict(engine_processes(server.data_dir))[node_address] == pids[node_address]  # adopted, not restarted

    # Mid-restore: 1 -> 2 shards moves every key through a temporary engine; killed while keys move.
    before = {key for key, _ in engine_processes(server.data_dir)}
    ec.create_replication_group(ReplicationGroupId="killed-restore", ReplicationGroupDescription="d",
                                SnapshotName="kill-snap", NumNodeGroups=2, CacheNodeType=NODE_TYPE)
    members = ec.describe_replication_groups(ReplicationGroupId="killed-restore")["ReplicationGroups"][0]["MemberClusters"]
    addresses = [c["CacheNodes"][0]["Endpoint"]["Address"] for c in ec.describe_cache_clusters(
        ShowCacheNodeInfo=True)["CacheClusters"] if c["CacheClusterId"] in members]

    def moved() -> int:
        total = 0
        for address in addresses:
            try:
                total += raw(address).dbsize()
            except redis.RedisError:
                pass
        return total

    wait_for(lambda: 0 < moved() < count, interval=0.005, what="keys moving into the new shards")
    server.stop(signal.SIGKILL)
    temporary = {key for key, _ in engine_processes(server.data_dir)} - before - set(addresses)
    assert len(temporary) == 1  # the temporary engine outlives the control plane...
    server.start()
    ec = server.client()
    restored = wait_group(ec, "killed-restore", timeout=120)
    cluster = redis.RedisCluster(host=primary_of(restored), port=6379)
    assert moved() == count and [cluster.get(f"k:{n}") for n in range(0, count, 997)] == [
        f"value-{n}".encode() for n in range(0, count, 997)
    ]
    finished = [m for m in events_of(ec, "killed-restore") if "finished" in m]
    assert finished and f"{count} keys moved" not in finished[0]  # ... and was resumed: only the rest moved
    left = {key for key, _ in engine_processes(server.data_dir)}
    assert not left & temporary  # the temporary engine is gone...
    assert not [key for key in temporary if (server.data_dir / "nodes" / key).exists()]  # ... with its files
    assert not list((server.data_dir / "snapshots").rglob("*.part"))
