"""ModifyServerlessCache MajorEngineVersion: Valkey 8 -> 9 through the replication groups' rolling
upgrade (replicas first, then a failover per shard), with real engines, while valkey-glide writes:
every key kept, the nodes run the new build, a downgrade is refused.

A client writing through the failover sees errors while its slots change primary (valkey-glide:
ConnectionError, then RequestError 'Connection in recovery' for about a second); it must recover
on its own: writing again, then without errors.
"""

from __future__ import annotations

import time

import botocore.exceptions
import pytest
import redis
from redis.cluster import RedisCluster

from helpers import GlideLoad, events_of, wait_for

NAME = "sl-up"
KEYS = 2000


def described(ec):
    return ec.describe_serverless_caches(ServerlessCacheName=NAME)["ServerlessCaches"][0]



def test_a_major_version_upgrade_rolls_through_the_cache(make_server):
    server = make_server("--warm-nodes", "2")
    ec = server.client()
    ec.create_serverless_cache(ServerlessCacheName=NAME, Engine="valkey", MajorEngineVersion="8")
    cache = wait_for(lambda: (c := described(ec))["Status"] == "available" and c, interval=0.05,
                     what="serverless cache available")
    assert cache["FullEngineVersion"].startswith("8.")
    endpoint = cache["Endpoint"]
    client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], decode_responses=True)
    pipe = client.pipeline()
    for i in range(KEYS):
        pipe.set(f"k:{i}", str(i))
    pipe.execute()
    for primary in client.get_primaries():
        assert redis.Redis(host=primary.host, port=primary.port).wait(1, 5000) == 1
    client.close()

    with GlideLoad(endpoint) as writer:
        wait_for(lambda: writer.written > 20, timeout=10, what="glide writing")
        started = time.monotonic()
        upgraded = ec.modify_serverless_cache(ServerlessCacheName=NAME, MajorEngineVersion="9")["ServerlessCache"]
        assert upgraded["MajorEngineVersion"] == "9" and upgraded["FullEngineVersion"].startswith("9.")
        wait_for(lambda: described(ec)["Status"] == "available", timeout=60, interval=0.2, what="the upgrade done")
        took = time.monotonic() - started
        # The client that wrote through the failover recovers: it writes again, then without errors.
        at_available = writer.written
        wait_for(lambda: writer.written >= at_available + 200, timeout=30, interval=0.05,
                 what="valkey-glide writing again after the upgrade's failover")
        errors_then = len(writer.errors)
        at_recovered = writer.written
        wait_for(lambda: writer.written >= at_recovered + 200, timeout=30, interval=0.05, what="glide writing on")
        assert len(writer.errors) == errors_then, writer.errors[errors_then:][:3]
        written = writer.written
    print(f"Valkey 8 -> 9 upgrade of a serverless cache: {took:.1f} s; {writer.written} writes meanwhile;"
          f" glide errors {len(writer.errors)} ({writer.errors[:1]} .. {writer.errors[-1:]})")

    client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], decode_responses=True)
    nodes = client.get_primaries() + client.get_replicas()
    assert len(nodes) == 2
    versions = {redis.Redis(host=n.host, port=n.port).info("server").get("valkey_version") for n in nodes}
    assert versions == {upgraded["FullEngineVersion"]}
    assert client.mget_nonatomic([f"k:{i}" for i in range(KEYS)]) == [str(i) for i in range(KEYS)]
    assert client.get(f"glide:{written - 1}") == "v"
    client.close()
    assert any(f"Upgrading serverless cache {NAME} from valkey 8" in m for m in events_of(ec, NAME))

    with pytest.raises(botocore.exceptions.ClientError) as refused:
        ec.modify_serverless_cache(ServerlessCacheName=NAME, MajorEngineVersion="8")
    assert refused.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert "would be a downgrade" in refused.value.response["Error"]["Message"]
