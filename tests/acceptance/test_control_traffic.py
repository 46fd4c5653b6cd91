"""A serverless cache is billed for its clients' bytes, not the control plane's: a real engine, the
real sampler (its ticks driven by the test) and the control plane's connections of every kind --
the admin client, a lean RESP connection, the health probe's -- busy between two ticks beside a
client's known workload. The period's NetworkBytesIn / NetworkBytesOut are the client's bytes
(what the engine counted, less what the nodes' traffic meters counted: engine/traffic.py) and its
ECPUs the formula's for them; without the meters the control plane's ~100 KB would be billed."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio

from cachefleet.control.health import HealthMonitor
from cachefleet.domain.metrics import MetricId
from cachefleet.engine import traffic
from cachefleet.engine.access import NodeAccess
from cachefleet.engine.resp import encode
from cachefleet.monitor.nodes import MonitoredNode
from cachefleet.monitor.sampler import Sampler
from cachefleet.monitor.serverless import FRAMING_BYTES, KILOBYTE
from cachefleet.monitor.timeseries import TimeSeriesStore
from enginekit import EngineSet, installed

VALUE = b"v" * 1024
KEYS = [f"key:{i:03d}".encode() for i in range(100)]


@pytest.fixture
def engines():
    running = EngineSet()
    yield running
    running.close()


def cache_figure(store: TimeSeriesStore, metric: str, second: int) -> float:
    samples = store.samples("us-east-1", MetricId.of("AWS/ElastiCache", metric, [("clusterId", "carts")]),
                           second, second + 1, step=1)
    assert samples is not None, f"no {metric} at {second}"
    return sum(samples.sums)


def test_the_control_planes_own_traffic_is_not_billed_to_a_serverless_cache(engines, tmp_path):
    engine = engines.start(installed("valkey", "8."))
    access = NodeAccess(address=engine.address, port=engine.port)
    node = MonitoredNode(key="k", region="us-east-1", cluster_id="serverless--carts-0001-001", node_id="0001",
                         access=access, pid=engine.process.pid, engine_log=engine.directory / "engine.log",
                         group_id="serverless--carts", engine="valkey 8")
    store = TimeSeriesStore(tmp_path / "metrics")
    sampler = Sampler(directory=lambda: [node], store=store)
    client_in = sum(len(encode("SET", key, VALUE)) for key in KEYS) + sum(len(encode("GET", key)) for key in KEYS)
    client_out = len(KEYS) * len(b"+OK\r\n") + len(KEYS) * len(b"$1024\r\n" + VALUE + b"\r\n")

    async def run() -> tuple[int, tuple[int, int]]:
        health = HealthMonitor(on_change=lambda key: None)
        health.watch("k", access)
        health.start()
        second = int(time.time())
        while "k" not in sampler.latest:  # connected, then two readings: the node's periods are counted
            second += 1
            await sampler.tick(second)
            await asyncio.sleep(0.05)
        client = redis.asyncio.Redis(host=engine.address, port=engine.port, driver_info=None)
        await client.ping()  # connected before the period (a new connection sends nothing more)
        before = traffic.reading(engine.address)
        await sampler.tick(second := second + 1)

        # The period: what the control plane does while a cache is created or scaled (the admin
        # client's CLUSTER NODES / INFO polling, CONFIG calls), a log reader's lean connection, the
        # health probe's PINGs -- and a client's 100 SETs and 100 GETs of 1 KiB.
        admin = access.admin()
        lean = await access.resp(name="cachefleet-test")
        for key in KEYS:
            await client.set(key, VALUE)
            if key.endswith(b"0"):
                await admin.info("everything")
                await admin.execute("CONFIG", "GET", "*")
                await lean.call("INFO", "everything")
        for key in KEYS:
            assert await client.get(key) == VALUE
        await admin.close()
        lean.close()
        await asyncio.sleep(1.2)  # health probes: 6 PINGs and an INFO replication (~450 bytes) at least
        await health.stop()
        await asyncio.sleep(0.05)  # the last probe's answer read
        during = traffic.reading(engine.address)
        await sampler.tick(second := second + 1)
        await client.aclose()
        return second, (during[0] - before[0], during[1] - before[1])

    async def measured() -> tuple[int, tuple[int, int]]:
        try:
            return await run()
        finally:
            await sampler.stop()

    second, control = asyncio.run(measured())
    billed_in, billed_out = (cache_figure(store, metric, second) for metric in ("NetworkBytesIn", "NetworkBytesOut"))
    ecpus = cache_figure(store, "ElastiCacheProcessingUnits", second)
    store.close()
    # A health probe's PING may be in flight across the first tick: its 6 bytes in, 7 out.
    assert abs(billed_in - client_in) <= 8, (billed_in, client_in, control)
    assert abs(billed_out - client_out) <= 8, (billed_out, client_out, control)
    # The control plane moved far more than the client in that period (billed with it, the above fail).
    assert control[1] > 100_000 and control[0] > 1_000, control
    expected = (client_in + client_out - FRAMING_BYTES * 2 * len(KEYS)) / KILOBYTE  # ~201 ECPUs
    assert ecpus == pytest.approx(expected, abs=0.2), (ecpus, expected)
