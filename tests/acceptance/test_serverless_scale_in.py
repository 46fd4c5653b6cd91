"""A serverless cache scales back in on its own once its data is deleted, with real engines, while a
valkey-glide client writes new keys and reads known ones: zero failed operations, every key kept,
and the event says why.

The cache starts scaled out to 3 shards by its DataStorage Minimum, which is then lowered to 2
shards while its data keeps it at 3 (and keeps it from going on to 1 shard, so the clients see
one step only): a scale-out on data (test_serverless.py) costs another ~20 s of slot
moves on this machine, and the scale-in step is the same either way (3 -> 2 moves 5,461 slots).

Short sizing thresholds (README: Serverless caches): a shard holds 32 MiB of data and scales out at
half of that; it scales in when every shard has stayed below 30 % of it (9.6 MiB) for 2 s and the
data fits one shard fewer at half the scale-out mark (8 MiB).
"""

from __future__ import annotations

import time

import redis
from redis.cluster import RedisCluster

from helpers import GlideLoad, events_of, wait_event, wait_for

NAME = "sl-in"
SIZING = "shard_capacity_bytes=33554432,gigabyte_bytes=8388608,scale_out_at=0.5,scale_in_after=2,cooldown=1"
VALUE = "v" * 2000
FILL = 9000  # 2 KB values: ~6 MiB of data on each of 3 shards, 18 MiB in all: more than 2 shards at 8 MiB
KNOWN = 500  # small keys the reader reads all along
SMALL = "s" * 100


def described(ec):
    return ec.describe_serverless_caches(ServerlessCacheName=NAME)["ServerlessCaches"][0]



def test_scales_in_after_its_data_is_deleted(make_server):
    server = make_server("--serverless-sizing", SIZING, "--warm-nodes", "2")
    ec = server.client()
    started = time.monotonic()
    # 9 "GB" of 8 MiB here: 72 MiB, three shards of 32 MiB kept ready.
    ec.create_serverless_cache(ServerlessCacheName=NAME, Engine="valkey",
                               CacheUsageLimits={"DataStorage": {"Minimum": 9, "Unit": "GB"}})
    endpoint = wait_for(lambda: (c := described(ec))["Status"] == "available" and c["Endpoint"], interval=0.05,
                        what="serverless cache available")
    client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], decode_responses=True)
    pipe = client.pipeline()
    for i in range(KNOWN):
        pipe.set(f"known:{i}", str(i))
    for i in range(FILL):
        pipe.set(f"fill:{i}", VALUE)
    pipe.execute()
    assert len(client.get_primaries()) == 3
    ec.modify_serverless_cache(ServerlessCacheName=NAME, CacheUsageLimits={"DataStorage": {"Minimum": 5, "Unit": "GB"}})
    assert described(ec)["CacheUsageLimits"]["DataStorage"]["Minimum"] == 5  # 40 MiB: 2 shards
    ready = time.monotonic()

    with GlideLoad(endpoint, value=SMALL, known=KNOWN) as load:
        pipe = client.pipeline()
        for i in range(FILL):
            pipe.delete(f"fill:{i}")
        assert sum(pipe.execute()) == FILL
        deleted = time.monotonic()
        wait_event(ec, NAME, "scale-in 3 -> 2 shard(s)", timeout=20)
        wait_for(lambda: described(ec)["Status"] == "available", timeout=45, what="scaled in")
        took = time.monotonic() - deleted
        reads = load.reads
        wait_for(lambda: load.reads > reads + 50, timeout=10, what="reads against the new shape")
    print(f"3 shards ready in {ready - started:.1f} s; data deleted to scaled in: {took:.1f} s; {load.written} writes, {load.reads} reads meanwhile")
    assert load.errors == [], load.errors[:5]
    assert load.written > 100 and load.reads > 100

    decision = next(m for m in events_of(ec, NAME) if "scale-in" in m)
    assert "every shard below 30% of capacity and 30% CPU for" in decision and "MiB in 3 shard(s) -> 2" in decision
    client.close()
    client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], decode_responses=True)
    assert len(client.get_primaries()) == 2 and len(client.get_replicas()) == 2
    held = sum(redis.Redis(host=n.host, port=n.port).dbsize() for n in client.get_primaries())
    assert held == KNOWN + load.written
    assert client.mget_nonatomic([f"known:{i}" for i in range(KNOWN)]) == [str(i) for i in range(KNOWN)]
    assert client.get(f"glide:{load.written - 1}") == SMALL
    client.close()
