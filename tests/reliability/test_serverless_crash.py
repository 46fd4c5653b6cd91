"""A control-plane SIGKILL in the middle of a serverless cache's scaling step: the restarted control
plane resumes the step (it is the group's RESHARD operation), the cache converges to the shard count
it decided, every key is kept and its engines are adopted, not restarted.

The step is a scale-out to the 2 shards a raised DataStorage Minimum keeps ready (8 MiB "GB" and
16 MiB shards: 3 "GB" need 2 shards), the crash the control plane's own (CACHEFLEET_CRASH_AFTER,
store/crashpoints.py) right after its first commit of moving slots (on Valkey 9+ the slots of a
source and target move in one atomic slot migration job, recorded once).
"""

from __future__ import annotations

import redis
from redis.cluster import RedisCluster

from helpers import Server, engine_pids, events_of, free_port, fresh_network, wait_for

NAME = "sl-crash"
SIZING = "shard_capacity_bytes=16777216,gigabyte_bytes=8388608,cooldown=1"
CRASH_AFTER = "Operation RESHARD moving slots + ReplicationGroup modifying#1"
KEYS = 3000


def described(ec):
    return ec.describe_serverless_caches(ServerlessCacheName=NAME)["ServerlessCaches"][0]


def test_a_crash_during_a_scaling_step_resumes_it(tmp_path):
    server = Server(data_dir=tmp_path / "data", network=fresh_network(), port=free_port(),
                    extra=["--serverless-sizing", SIZING, "--warm-nodes", "2"], env={"CACHEFLEET_CRASH_AFTER": CRASH_AFTER})
    try:
        server.start()
        ec = server.client()
        ec.create_serverless_cache(ServerlessCacheName=NAME, Engine="valkey")
        endpoint = wait_for(lambda: (c := described(ec))["Status"] == "available" and c["Endpoint"], interval=0.05,
                            what="serverless cache available")
        client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], decode_responses=True)
        pipe = client.pipeline()
        for i in range(KEYS):
            pipe.set(f"k:{i}", str(i))
        pipe.execute()
        client.close()

        ec.modify_serverless_cache(ServerlessCacheName=NAME, CacheUsageLimits={"DataStorage": {"Minimum": 3, "Unit": "GB"}})
        assert server.process is not None
        wait_for(lambda: server.process.poll() is not None, timeout=30, what="the control plane killing itself mid-step")
        assert server.process.returncode == -9
        running = engine_pids(server.data_dir)
        assert len(running) >= 2  # the engines outlive the control plane

        server.process = None
        server.env = {}
        server.start()
        ec = server.client()
        wait_for(lambda: described(ec)["Status"] == "available", timeout=60, interval=0.2, what="the step resumed and done")
        messages = events_of(ec, NAME)
        assert any("scale-out 1 -> 2 shard(s): 1 shard(s) is below the 2 the DataStorage minimum keeps ready" in m
                   for m in messages), messages
        client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], decode_responses=True)
        primaries = client.get_primaries()
        assert len(primaries) == 2 and len(client.get_replicas()) == 2
        assert sum(redis.Redis(host=n.host, port=n.port).dbsize() for n in primaries) == KEYS
        assert client.mget_nonatomic([f"k:{i}" for i in range(KEYS)]) == [str(i) for i in range(KEYS)]
        client.close()
        # The nodes that ran at the crash were adopted (same processes), not started again.
        after = engine_pids(server.data_dir)
        assert {node: after.get(node) for node in running} == running
    finally:
        server.down()
