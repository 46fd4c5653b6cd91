"""Serverless cache snapshots with real engines: keys written, a snapshot taken, restored with
SnapshotArnsToRestore into a new serverless cache with every key back, and a delete that takes a
final snapshot first."""

from __future__ import annotations

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


def test_snapshot_restore_into_a_new_cache_and_a_final_snapshot(ec):
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

    ec.delete_serverless_cache(ServerlessCacheName="sl-snap-dst")
    for name in ("sl-snap-1", "sl-snap-final"):
        ec.delete_serverless_cache_snapshot(ServerlessCacheSnapshotName=name)
    wait_for(lambda: snapshot_of(ec, "sl-snap-1") is None and snapshot_of(ec, "sl-snap-final") is None
             and cache_of(ec, "sl-snap-dst") is None, interval=0.05, what="snapshots and caches gone")
