"""Serverless cache snapshots with real engines: keys written, a snapshot taken, exported to a
bucket, restored with SnapshotArnsToRestore into a new serverless cache with every key back (and
a node-based cluster's snapshot restored into one too), and a delete that takes a final snapshot
first."""

from __future__ import annotations

import redis
from redis.cluster import RedisCluster

from helpers import wait_for

KEYS = 3000


def cache_of(ec, name):
    found = [c for c in ec.describe_serverless_caches()["ServerlessCaches"] if c["ServerlessCacheName"] == name]
    return found[0] if found else None


def available(ec, name):
    return wait_for(lambda: (c := cache_of(ec, name)) is not None and c["Status"] == "available" and c,
                    interval=0.05, what=f"serverless cache {name} available")


def snapshot_of(ec, name):
    found = ec.describe_serverless_cache_snapshots()["ServerlessCacheSnapshots"]
    return next((s for s in found if s["ServerlessCacheSnapshotName"] == name), None)


def snapshot_available(ec, name):
    return wait_for(lambda: (s := snapshot_of(ec, name)) is not None and s["Status"] == "available" and s,
                    interval=0.05, what=f"serverless snapshot {name} available")


def client_of(cache):
    return RedisCluster(host=cache["Endpoint"]["Address"], port=cache["Endpoint"]["Port"], decode_responses=True)


def test_snapshot_restore_into_a_new_cache_and_a_final_snapshot(ec, server):
    ec.create_serverless_cache(ServerlessCacheName="sl-snap-src", Engine="valkey")
    source = client_of(available(ec, "sl-snap-src"))
    pipe = source.pipeline()
    for i in range(KEYS):
        pipe.set(f"key:{i}", f"value-{i}")
    pipe.execute()

    taken = ec.create_serverless_cache_snapshot(ServerlessCacheSnapshotName="sl-snap-1",
                                                ServerlessCacheName="sl-snap-src")["ServerlessCacheSnapshot"]
    assert taken["Status"] == "creating" and taken["SnapshotType"] == "manual"
    snapshot = snapshot_available(ec, "sl-snap-1")
    assert int(snapshot["BytesUsedForCache"]) > KEYS * 10
    assert snapshot["ServerlessCacheConfiguration"]["ServerlessCacheName"] == "sl-snap-src"
    # Written after the snapshot: must not come back in the restored cache.
    source.set("key:after", "x")

    bucket = server.data_dir / "buckets" / "sl-exports"
    bucket.mkdir(parents=True, mode=0o700)  # without --s3-endpoint-url a bucket is a directory of the data dir
    ec.export_serverless_cache_snapshot(ServerlessCacheSnapshotName="sl-snap-1", S3BucketName="sl-exports")
    snapshot_available(ec, "sl-snap-1")
    assert [p.name for p in bucket.iterdir()] == ["sl-snap-1-0001.rdb"]

    ec.create_serverless_cache(ServerlessCacheName="sl-snap-dst", Engine="valkey",
                               SnapshotArnsToRestore=[snapshot["ARN"]])
    restored = client_of(available(ec, "sl-snap-dst"))
    names = [f"key:{i}" for i in range(KEYS)]
    assert restored.mget_nonatomic(names) == [f"value-{i}" for i in range(KEYS)]
    assert restored.get("key:after") is None
    assert restored.dbsize(target_nodes=RedisCluster.PRIMARIES) == KEYS
    restored.close()

    # Delete with a final snapshot: taken before the nodes stop, and it outlives the cache.
    deleted = ec.delete_serverless_cache(ServerlessCacheName="sl-snap-src", FinalSnapshotName="sl-snap-final")
    assert deleted["ServerlessCache"]["Status"] == "deleting"
    source.close()
    final = snapshot_available(ec, "sl-snap-final")
    wait_for(lambda: cache_of(ec, "sl-snap-src") is None, interval=0.05, what="source cache gone")
    assert int(final["BytesUsedForCache"]) >= int(snapshot["BytesUsedForCache"])

    # A node-based cluster's snapshot into a serverless cache: its keys spread over the slots.
    ec.create_cache_cluster(CacheClusterId="sl-node-src", Engine="valkey", CacheNodeType="cache.t4g.micro",
                            NumCacheNodes=1)
    node = wait_for(lambda: (c := ec.describe_cache_clusters(CacheClusterId="sl-node-src", ShowCacheNodeInfo=True)[
        "CacheClusters"][0])["CacheClusterStatus"] == "available" and c, interval=0.05, what="cluster available")
    plain = redis.Redis(host=node["CacheNodes"][0]["Endpoint"]["Address"], port=node["CacheNodes"][0]["Endpoint"]["Port"])
    plain.mset({f"node:{i}": str(i) for i in range(500)})
    plain.close()
    ec.create_snapshot(SnapshotName="sl-node-snap", CacheClusterId="sl-node-src")
    wait_for(lambda: ec.describe_snapshots(SnapshotName="sl-node-snap")["Snapshots"][0]["SnapshotStatus"] == "available",
             interval=0.05, what="node snapshot available")
    ec.create_serverless_cache(ServerlessCacheName="sl-from-node", Engine="valkey", SnapshotArnsToRestore=[
        "arn:aws:elasticache:us-east-1:000000000000:snapshot:sl-node-snap"])
    from_node = client_of(available(ec, "sl-from-node"))
    assert from_node.mget_nonatomic([f"node:{i}" for i in range(500)]) == [str(i) for i in range(500)]
    from_node.close()
    ec.delete_cache_cluster(CacheClusterId="sl-node-src")
    ec.delete_serverless_cache(ServerlessCacheName="sl-from-node")

    ec.delete_serverless_cache(ServerlessCacheName="sl-snap-dst")
    for name in ("sl-snap-1", "sl-snap-final"):
        ec.delete_serverless_cache_snapshot(ServerlessCacheSnapshotName=name)
    wait_for(lambda: snapshot_of(ec, "sl-snap-1") is None and snapshot_of(ec, "sl-snap-final") is None
             and cache_of(ec, "sl-snap-dst") is None and cache_of(ec, "sl-from-node") is None, interval=0.05,
             what="snapshots and caches gone")
    ec.delete_snapshot(SnapshotName="sl-node-snap")
