"""A serverless cache scales out on its own under ~200 MB of data, with real engines, while a writer
loads it and a reader reads known keys (valkey-glide): zero failed operations, every key readable
after (redis-py).

Short sizing thresholds (README: Serverless caches): a shard holds 64 MiB of data and scales out at
75 % of that (48 MiB, the default fraction), so ~230 MiB of data memory ends in 5 shards or more
(1 -> 2 during the load, then 2 -> 5).

In `make test` since slots move by atomic slot migration (Valkey 9+): ~14 s on this 2-core
machine, idle (the load ~4 s, settled at ~8 s). Key by key it took ~70 s and ran in `make chaos`.
"""

from __future__ import annotations

import asyncio
import threading
import time

import redis
from redis.cluster import RedisCluster

from helpers import events_of, wait_for

NAME = "sl-out"
MIB = 1 << 20
SIZING = "shard_capacity_bytes=67108864,scale_in_after=3600,cooldown=1"
MARK = 48 * MIB  # 75 % of 64 MiB
VALUE = "v" * 1000  # one 1,024-byte allocation per value
LOAD = 200_000  # 200 MB of values
KNOWN = 1000
BATCH = 2000


def described(ec):
    return ec.describe_serverless_caches(ServerlessCacheName=NAME)["ServerlessCaches"][0]


class GlideLoad:
    """valkey-glide's cluster client in a thread: a writer loads LOAD keys with pipelines (non-atomic
    ClusterBatch, which follows MOVED and ASK per command) and a reader reads the known keys one by
    one, both at once until stopped; every failed operation counts.

    Not redis-py's RedisCluster while slots move to a new shard: it fails an ASK to a primary it has
    not seen yet (redis/redis-py#4015; engine/cluster.py migrate_slots). redis-py checks every key after."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.errors: list[str] = []
        self.written = 0
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()))

    async def _run(self):
        from glide import ClusterBatch, GlideClusterClient, GlideClusterClientConfiguration, NodeAddress

        client = await GlideClusterClient.create(GlideClusterClientConfiguration(
            [NodeAddress(self.endpoint["Address"], self.endpoint["Port"])], request_timeout=20000))

        async def write():
            while self.written < LOAD and not self._stop.is_set():
                batch = ClusterBatch(is_atomic=False)
                for i in range(self.written, min(LOAD, self.written + BATCH)):
                    batch.set(f"load:{i}", VALUE)
                try:
                    replies = await client.exec(batch, raise_on_error=True)
                    if replies is None or any(r != "OK" and r != b"OK" for r in replies):
                        self.errors.append(f"batch at {self.written}: {replies and set(map(str, replies))}")
                    self.written = min(LOAD, self.written + BATCH)
                except Exception as error:  # noqa: BLE001 - every failure counts
                    self.errors.append(f"{time.strftime('%H:%M:%S')} batch at {self.written}: {error!r}")

        async def read():
            while not self._stop.is_set():
                known = self.reads % KNOWN
                try:
                    if (await client.get(f"known:{known}")) != str(known).encode():
                        self.errors.append(f"known:{known} read wrong")
                    self.reads += 1
                except Exception as error:  # noqa: BLE001 - every failure counts
                    self.errors.append(f"{time.strftime('%H:%M:%S')} known:{known}: {error!r}")

        try:
            await asyncio.gather(write(), read())
        finally:
            await client.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def data_in(client: RedisCluster) -> list[int]:
    """Each primary's data memory, as the sizing decision sees it (monitor/sampler.py data_memory)."""
    found = []
    for node in client.get_primaries():
        info = redis.Redis(host=node.host, port=node.port).info("memory")
        buffers = sum(int(info[k]) for k in ("mem_replication_backlog", "mem_clients_slaves", "mem_clients_normal"))
        found.append(int(info["used_memory"]) - buffers)
    return found


def test_scales_out_on_its_own_under_200_mb(make_server):
    server = make_server("--serverless-sizing", SIZING, "--warm-nodes", "2")
    ec = server.client()
    ec.create_serverless_cache(ServerlessCacheName=NAME, Engine="valkey")
    endpoint = wait_for(lambda: (c := described(ec))["Status"] == "available" and c["Endpoint"], interval=0.05,
                        what="serverless cache available")
    client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], decode_responses=True)
    pipe = client.pipeline()
    for i in range(KNOWN):
        pipe.set(f"known:{i}", str(i))
    pipe.execute()
    started = time.monotonic()

    with GlideLoad(endpoint) as load:
        wait_for(lambda: load.written >= LOAD or load.errors, timeout=120, interval=0.2, what="the load written")
        loaded = time.monotonic()
        # Scaled out until every shard is below the mark, and the group at rest.
        wait_for(lambda: described(ec)["Status"] == "available" and all(m < MARK for m in data_in(client)),
                 timeout=120, interval=0.5, what="scaled out below the mark")
        settled = time.monotonic()
        reads = load.reads
        wait_for(lambda: load.reads > reads + 50, timeout=10, what="reads against the new shape")
    steps = [m for m in events_of(ec, NAME) if "scale-out" in m]
    print(f"loaded in {loaded - started:.1f} s, settled at {settled - started:.1f} s; {load.reads} reads; steps: {steps}")
    assert load.errors == [], load.errors[:5]
    assert steps and all("at or above 75% of its 64 MiB capacity" in m for m in steps)

    client.close()
    client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], decode_responses=True)
    shards = len(client.get_primaries())
    assert shards >= 5 and len(client.get_replicas()) == shards
    assert sum(redis.Redis(host=n.host, port=n.port).dbsize() for n in client.get_primaries()) == KNOWN + LOAD
    for low in range(0, LOAD, 20_000):
        assert client.mget_nonatomic([f"load:{i}" for i in range(low, low + 20_000)]) == [VALUE] * 20_000
    assert client.mget_nonatomic([f"known:{i}" for i in range(KNOWN)]) == [str(i) for i in range(KNOWN)]
    client.close()
