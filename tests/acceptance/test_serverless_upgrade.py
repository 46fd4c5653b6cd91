"""ModifyServerlessCache MajorEngineVersion: Valkey 8 -> 9 through the replication groups' rolling
upgrade (replicas first, then a failover per shard), with real engines, while valkey-glide writes:
every key kept, the nodes run the new build, a downgrade is refused.

A client writing through the failover sees errors for a moment while its slots change primary,
and must recover on its own: writing again, then without errors. Not zero errors: the planned
failover fences the old primary (SIGKILL, after draining its writes), so valkey-glide's request in
flight on it fails (ConnectionError: the write may or may not have run, glide does not retry it)
and the next ones fail fast with RequestError 'Connection in recovery' until glide has reconnected
(since valkey-glide#5399 calls during a reconnect fail fast instead of waiting for it): from the
fence until the new primary has taken its slots (TAKEOVER) and the configuration endpoint -- glide's
only seed -- answers on it. Measured here: 1-598 errors within 0.005-0.114 s (the count is glide's
fast-fail rate). Before the new primary took the configuration endpoint at once
(control/workflows/failover.py), the endpoint refused connections until the group's next pass
(~0.75 s after the fence): 472-1,023 errors over 0.17-1 s, glide logging "Can't reconnect to
initial nodes ... Connection refused" all along.
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
# The failover's errors (see above): the request in flight on the fenced primary and glide's fast
# failures while it reconnects, not a client cut off from the configuration endpoint.
ERRORS_WITHIN = 0.5  # seconds from the first to the last (measured 0.005-0.114; 0.17-1 with the endpoint's gap)


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
        span = max(writer.error_times, default=0.0) - min(writer.error_times, default=0.0)
        print(f"glide errors {len(writer.errors)} within {span:.3f} s")
        assert span <= ERRORS_WITHIN, (span, len(writer.errors), writer.errors[:2], writer.errors[-2:])
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
