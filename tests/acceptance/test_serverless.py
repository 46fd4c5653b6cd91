"""A serverless cache with real engines: created and available, keys through its Endpoint with
redis-py and valkey-glide, reads from replicas through its ReaderEndpoint, scaling out on its own
under a writer with zero failed operations, writes past its DataStorage maximum failing with the
engine's OOM error (nothing evicted), and deleted.

Short sizing thresholds (documented in README: Serverless caches): a shard holds 16 MiB, it scales
out at half of that, and one "GB" of CacheUsageLimits is 8 MiB, so the test moves a few MB only.
"""

from __future__ import annotations

import time

import pytest
import redis
from redis.cluster import LoadBalancingStrategy, RedisCluster

from helpers import GlideLoad, events_of, wait_for

MIB = 1 << 20
SIZING = "shard_capacity_bytes=16777216,gigabyte_bytes=8388608,scale_out_at=0.5,scale_in_after=3600,cooldown=1"
VALUE = "v" * 2000
FILL = 1300  # 2 KB values: with the 10,000 small keys, past 8 MiB of used memory on one shard
SMALL = "s" * 100  # what the writer writes while the cache scales


def described(ec, name):
    return ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]


def primaries(client: RedisCluster) -> list[redis.Redis]:
    return [redis.Redis(host=n.host, port=n.port) for n in client.get_primaries()]



@pytest.fixture
def sized(make_server):
    return make_server("--serverless-sizing", SIZING, "--warm-nodes", "2")


def test_create_use_scale_out_limit_and_delete(sized):
    ec = sized.client()
    started = time.monotonic()
    ec.create_serverless_cache(ServerlessCacheName="sl-acc", Engine="valkey",
                               CacheUsageLimits={"DataStorage": {"Maximum": 4, "Unit": "GB"}})  # 32 MiB here
    cache = wait_for(lambda: (c := described(ec, "sl-acc"))["Status"] == "available" and c, interval=0.01,
                     what="serverless cache available")
    took = time.monotonic() - started
    print(f"CreateServerlessCache to available: {took:.2f} s")
    endpoint, reader = cache["Endpoint"], cache["ReaderEndpoint"]
    assert endpoint["Port"] == 6379

    # 10,000 keys through the endpoint with redis-py's cluster client, and read back.
    client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], decode_responses=True)
    pipe = client.pipeline()
    for i in range(10_000):
        pipe.set(f"k:{i}", str(i))
    pipe.execute()
    assert client.mget_nonatomic([f"k:{i}" for i in range(0, 10_000, 7)]) == [str(i) for i in range(0, 10_000, 7)]
    assert len(client.get_primaries()) == 1 and len(client.get_replicas()) == 1

    # Reads through the ReaderEndpoint come from the replica (every replica is in sync first).
    for primary in primaries(client):
        assert primary.wait(1, 5000) == 1
    readers = RedisCluster(host=reader["Address"], port=reader["Port"], decode_responses=True,
                           load_balancing_strategy=LoadBalancingStrategy.RANDOM_REPLICA)
    assert [readers.get(f"k:{i}") for i in range(50)] == [str(i) for i in range(50)]
    replica = redis.Redis(host=client.get_replicas()[0].host, port=6379)
    assert int(replica.info("commandstats")["cmdstat_get"]["calls"]) >= 50
    readers.close()

    # The data limit is on the engine: maxmemory is the whole maximum on one shard, never evicting.
    node = primaries(client)[0]
    assert node.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    assert int(node.config_get("maxmemory")["maxmemory"]) == 32 * MIB

    # Past half a shard's 16 MiB, it scales out on its own while glide writes: no failed operation.
    pipe = client.pipeline()
    for i in range(FILL):
        pipe.set(f"fill:{i}", VALUE)
    pipe.execute()
    with GlideLoad(endpoint, value=SMALL) as writer:
        wait_for(lambda: any("scale-out 1 -> 2 shard(s)" in m for m in events_of(ec, "sl-acc")), timeout=30,
                 what="the scale-out decision")
        # The step started with the decision (the group went modifying in that call): wait for its end.
        wait_for(lambda: described(ec, "sl-acc")["Status"] == "available", timeout=40, what="scaled out")
        time.sleep(0.5)  # writes go on against the new shape
    assert writer.errors == [], writer.errors[:5]
    assert writer.written > 100
    decision = next(m for m in events_of(ec, "sl-acc") if "scale-out" in m)
    assert "shard 0001 uses" in decision and "of its 16 MiB capacity" in decision
    client.close()
    client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], decode_responses=True)
    assert len(client.get_primaries()) == 2 and len(client.get_replicas()) == 2
    assert client.get("k:9999") == "9999" and client.get(f"glide:{writer.written - 1}") == SMALL

    # Two shards share the 32 MiB: 16 MiB each. Writes past it fail with OOM; nothing is evicted.
    wait_for(lambda: all(int(p.config_get("maxmemory")["maxmemory"]) == 16 * MIB for p in primaries(client)),
             what="maxmemory re-computed for two shards")
    written, refused = 0, None
    while refused is None and written < 40_000:
        try:
            client.set(f"over:{written}", VALUE)
            written += 1
        except redis.exceptions.OutOfMemoryError as error:
            refused = error
    assert refused is not None and "used memory > 'maxmemory'" in str(refused)  # the engine's OOM error
    assert sum(int(p.info("stats")["evicted_keys"]) for p in primaries(client)) == 0
    held = sum(p.dbsize() for p in primaries(client))
    assert held == 10_000 + FILL + writer.written + written
    assert any("-> 2 shard(s)" in m for m in events_of(ec, "sl-acc"))
    client.close()

    assert ec.delete_serverless_cache(ServerlessCacheName="sl-acc")["ServerlessCache"]["Status"] == "deleting"
    wait_for(lambda: not ec.describe_serverless_caches()["ServerlessCaches"], what="serverless cache gone")
