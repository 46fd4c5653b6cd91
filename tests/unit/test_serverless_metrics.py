"""A serverless cache's metrics as a whole: the ECPU formula, how node rows add up, and the series
the CloudWatch API reads under the dimension clusterId (pure and file-level; no engine)."""

from __future__ import annotations

import math
import time

import pytest

from cachefleet.domain.metrics import MetricId
from cachefleet.engine.access import NodeAccess
from cachefleet.monitor import catalog
from cachefleet.monitor.nodes import MonitoredNode
from cachefleet.monitor.sampler import (
    Raw,
    counts_from_start,
    data_memory,
    serverless_usage,
)
from cachefleet.monitor.serverless import (
    BASELINE_USEC,
    FRAMING_BYTES,
    CacheMetrics,
    NodePeriod,
    NodeUsage,
    cache_row,
    processing_units,
)
from cachefleet.monitor.timeseries import TimeSeriesStore

KB = 1024


def test_simple_reads_and_writes_cost_one_ecpu_per_kib_transferred():
    # 1,000 SETs and 1,000 GETs of 1 KiB values (~1 µs each): ~2 MiB moved -> ~2,000 ECPUs.
    before = {"set": (10, 10), "get": (5, 5)}
    now = {"set": (1010, 1010), "get": (1005, 905)}
    ecpu, commands = processing_units(before, now, bytes_in=1000 * (KB + 40) + 1000 * 30,
                                      bytes_out=1000 * 5 + 1000 * (KB + 9))
    assert commands == 2000
    assert ecpu == pytest.approx(2000 * (1 + (42 - FRAMING_BYTES) / KB), rel=0.001)


def test_small_commands_cost_at_least_one_each_and_slow_ones_their_engine_time():
    ecpu, _ = processing_units({}, {"get": (100, 100)}, bytes_in=100 * 20, bytes_out=100 * 10)
    assert ecpu == 100  # 3 KB moved by 100 commands: the per-command minimum wins
    # A SORT averaging 10 baselines of engine time costs 10.
    ecpu, _ = processing_units({}, {"sort": (3, int(3 * 10 * BASELINE_USEC))}, bytes_in=90, bytes_out=90)
    assert ecpu == pytest.approx(30)


def test_upkeep_commands_and_their_bytes_cost_nothing():
    now = {"info": (50, 5000), "cluster|slots": (4, 100), "ping": (9, 9), "client|setname": (1, 1)}
    assert processing_units({}, now, bytes_in=4000, bytes_out=90_000) == (0.0, 0.0)


def test_a_reset_counter_counts_from_zero():
    ecpu, commands = processing_units({"set": (500, 500)}, {"set": (7, 7)}, bytes_in=7 * 50, bytes_out=7 * 5)
    assert (ecpu, commands) == (7, 7)


INFO_REQUEST = 96  # the sampler's INFO request, as a node's traffic meter counts it


def _raw(net_in, net_out, commands, *, control=(0, 0), synthetic=False):
    info = {"total_net_input_bytes": str(net_in), "total_net_output_bytes": str(net_out)}
    return Raw(0.0, info, commands, (0, 0, 0), {}, None, None, 1, control=control, synthetic=synthetic)


def test_the_control_planes_own_traffic_is_left_out_of_a_nodes_period():
    # Between two readings of the node's meter the control plane sent this tick's INFO request and
    # 25 CLUSTER NODES (40 bytes each), and read the previous INFO's reply (6,000) and their 25
    # replies (1,200 each); a client sent 2 SETs (2,038 bytes) and read 10.
    previous = _raw(1000, 50_000, {"info": (10, 400)}, control=(5_000, 700_000))
    current = _raw(1000 + INFO_REQUEST + 25 * 40 + 2038, 50_000 + 6000 + 25 * 1200 + 10,
                   {"info": (11, 440), "cluster|nodes": (25, 500), "set": (2, 2)},
                   control=(5_000 + INFO_REQUEST + 25 * 40, 700_000 + 6000 + 25 * 1200))
    usage = serverless_usage(previous, current, {})
    assert usage == NodeUsage(2.0, 2.0, 2038.0, 10.0)  # 2048 bytes, of which 64 of framing: 1.9 KiB, 2 commands
    # Without the meter's readings the control plane's 31 KB would be billed to the client's 2 SETs.
    unmetered = serverless_usage(_raw(1000, 50_000, {"info": (10, 400)}),
                                 _raw(1000 + INFO_REQUEST + 25 * 40 + 2038, 50_000 + 6000 + 25 * 1200 + 10,
                                      {"info": (11, 440), "cluster|nodes": (25, 500), "set": (2, 2)}), {})
    assert unmetered is not None and unmetered.ecpu > 30

def test_a_nodes_first_period_counts_its_commands_not_its_bytes():
    # Since the engine started (a zero baseline): set-up (upkeep) and a client's 3 SETs, ~60 KB of
    # replies to the control plane's INFO and CLUSTER NODES, a slow SORT of 10 baselines.
    now = {"info": (40, 4000), "cluster|nodes": (30, 900), "set": (3, 3), "sort": (1, int(10 * BASELINE_USEC))}
    current = _raw(90_000, 60_000, now)
    assert serverless_usage(_raw(0, 0, {}, synthetic=True), current, {}) == NodeUsage(13.0, 4.0, 0.0, 0.0, first=True)
    # On a replica, the writes it applied from its primary are not its clients'.
    families = {"set": (catalog.FAMILY_NAMES.index("SetTypeCmds"),)}
    current.info.update(role="slave")
    usage = serverless_usage(_raw(0, 0, {}, synthetic=True), current, families)
    assert usage is not None and (usage.ecpu, usage.commands) == (10.0, 1.0)


@pytest.mark.parametrize(("engine_age", "member_age", "monitor_age", "counted"), [
    (3.0, 3.0, 600.0, True),  # a new node
    (2.0, 86_400.0, 600.0, True),  # an engine restarted under its old record (a replaced node, a reboot)
    (3_600.0, 1.5, 600.0, True),  # a warm node a new cache or shard took while this monitor runs
    (3_600.0, 1_800.0, 5.0, False),  # adopted after a control-plane restart: the run before metered it
    (8.0, 8.0, 5.0, False),  # even a young one: the run before may have sampled it
    (3_600.0, None, 600.0, False),  # no record time: only its engine's age can tell
    (None, 1.0, 600.0, False),  # the process is gone
])
def test_which_first_readings_count_from_the_engines_start(engine_age, member_age, monitor_age, counted):
    assert counts_from_start(engine_age=engine_age, member_age=member_age, monitor_age=monitor_age) is counted


def test_replication_is_not_clients_work():
    families = {"set": (catalog.FAMILY_NAMES.index("SetTypeCmds"),), "get": (catalog.FAMILY_NAMES.index("GetTypeCmds"),)}
    # A replica: its primary's stream comes in (and its SETs run there); a client's 3 GETs too.
    previous = _raw(0, 0, {"set": (0, 0), "get": (0, 0)})
    previous.info.update(total_net_repl_input_bytes="0", role="slave")
    current = _raw(INFO_REQUEST + 500_000 + 90, 60, {"set": (480, 480), "get": (3, 3)}, control=(INFO_REQUEST, 0))
    current.info.update(total_net_repl_input_bytes="500000", role="slave")
    assert serverless_usage(previous, current, families) == NodeUsage(3.0, 3.0, 90.0, 60.0)
    # A primary: what it sends its replica is not a client's.
    previous = _raw(0, 0, {"set": (0, 0)})
    previous.info.update(total_net_repl_output_bytes="0", role="master")
    current = _raw(INFO_REQUEST + 480 * 1064, 480 * 5 + 510_000, {"set": (480, 480)}, control=(INFO_REQUEST, 0))
    current.info.update(total_net_repl_output_bytes="510000", role="master")
    usage = serverless_usage(previous, current, families)
    assert usage is not None and usage.commands == 480
    assert usage.ecpu == pytest.approx(480 * (1069 - FRAMING_BYTES) / 1024)


def _row(**values):
    row = [math.nan] * catalog.WIDTH
    for name, value in values.items():
        row[catalog.INDEX[name]] = value
    return row


def test_a_cache_row_sums_its_nodes():
    primary = _row(BytesUsedForCache=5e6, CurrItems=100, CurrConnections=4, CacheHits=8, CacheMisses=2,
                   GetTypeCmds=10, GetTypeCmdsLatency=2.0, SetTypeCmds=4, SetTypeCmdsLatency=3.0, IsMaster=1.0)
    other = _row(BytesUsedForCache=3e6, CurrItems=50, CurrConnections=2, CacheHits=2, CacheMisses=0,
                 GetTypeCmds=30, GetTypeCmdsLatency=4.0, SetTypeCmds=0, IsMaster=1.0)
    replica = _row(BytesUsedForCache=5e6, CurrItems=100, CurrConnections=1, IsMaster=0.0, SetTypeCmds=4,
                   SetTypeCmdsLatency=50.0, StringBasedCmds=4)  # its primary's writes, applied again
    row = cache_row([
        NodePeriod(True, primary, NodeUsage(14.0, 14.0, 100.0, 200.0)),
        NodePeriod(True, other, NodeUsage(30.0, 30.0, 10.0, 20.0)),
        NodePeriod(False, replica, NodeUsage(0.0, 0.0, 0.0, 0.0)),
    ])
    got = {name: row[i] for name, i in catalog.SERVERLESS_INDEX.items() if row[i] == row[i]}
    assert got["BytesUsedForCache"] == 8e6 and got["CurrItems"] == 150  # primaries only
    assert got["CurrConnections"] == 3 + 1 + 0  # the monitor's own connection to each node left out
    assert got["ElastiCacheProcessingUnits"] == 44 and got["TotalCmdsCount"] == 44
    assert got["CacheHits"] == 10 and got["CacheMisses"] == 2 and got["CacheHitRate"] == pytest.approx(10 / 12 * 100)
    assert got["GetTypeCmds"] == 40 and got["SuccessfulReadRequestLatency"] == pytest.approx((20 + 120) / 40)
    assert got["SetTypeCmds"] == 4 and got["SuccessfulWriteRequestLatency"] == pytest.approx(3.0)
    assert got["NetworkBytesIn"] == 110 and got["NetworkBytesOut"] == 220


def test_a_period_of_unknown_counts_gives_gauges_only():
    row = cache_row([NodePeriod(True, _row(BytesUsedForCache=1e6, CacheHits=99, IsMaster=1.0), None)])
    assert row[catalog.SERVERLESS_INDEX["BytesUsedForCache"]] == 1e6
    assert math.isnan(row[catalog.SERVERLESS_INDEX["CacheHits"]])
    assert math.isnan(row[catalog.SERVERLESS_INDEX["ElastiCacheProcessingUnits"]])


def test_a_nodes_first_period_counts_commands_but_not_its_set_up_connections():
    first = _row(BytesUsedForCache=1e6, CacheHits=99, NewConnections=7, SetTypeCmds=5, IsMaster=1.0)
    later = _row(BytesUsedForCache=2e6, CacheHits=1, NewConnections=2, SetTypeCmds=1, IsMaster=1.0)
    row = cache_row([NodePeriod(True, first, NodeUsage(104.0, 104.0, 0.0, 0.0, first=True)),
                     NodePeriod(True, later, NodeUsage(1.0, 1.0, 40.0, 5.0))])
    got = {name: row[i] for name, i in catalog.SERVERLESS_INDEX.items() if row[i] == row[i]}
    assert got["ElastiCacheProcessingUnits"] == 105 and got["TotalCmdsCount"] == 105
    assert got["CacheHits"] == 100 and got["SetTypeCmds"] == 6
    assert got["NewConnections"] == 2  # the first period's 7 are the control plane's and the warm pool's


def test_cache_series_are_listed_and_read_under_cluster_id_only(tmp_path):
    store = TimeSeriesStore(tmp_path)
    caches = CacheMetrics(store)
    node = MonitoredNode(key="k", region="us-east-1", cluster_id="serverless--carts-0001-001", node_id="0001",
                         access=NodeAccess(address="127.0.0.1", port=6379), pid=None, engine_log=tmp_path / "x",
                         group_id="serverless--carts")
    plain = MonitoredNode(key="p", region="us-east-1", cluster_id="web-0001-001", node_id="0001",
                          access=NodeAccess(address="127.0.0.1", port=6379), pid=None, engine_log=tmp_path / "y",
                          group_id="web")
    assert CacheMetrics.cache_of(node) == "carts" and CacheMetrics.cache_of(plain) is None
    now = int(time.time())
    row = _row(BytesUsedForCache=2e6, IsMaster=1.0, CurrConnections=3)
    store.write(node.series_key, now, row)
    store.write(plain.series_key, now, row)
    caches.add(node, row, NodeUsage(12.0, 12.0, 1.0, 1.0))
    caches.add(plain, row, NodeUsage(99.0, 99.0, 1.0, 1.0))  # not a serverless node: ignored
    caches.flush(now)
    listed = store.metrics("us-east-1")
    cache_metrics = {m.name for m in listed if m.dimensions == (("clusterId", "carts"),)}
    assert cache_metrics == set(catalog.SERVERLESS_NAMES)
    assert not [m for m in listed if "serverless--" in (m.dimension("CacheClusterId") or "")]  # nodes hidden
    assert [m for m in listed if m.dimension("CacheClusterId") == "web-0001-001"]
    ecpu = store.samples("us-east-1", MetricId.of("AWS/ElastiCache", "ElastiCacheProcessingUnits",
                                                  [("clusterId", "carts")]), now - 5, now + 1, step=1)
    assert ecpu is not None and list(ecpu.sums) == [12.0] and ecpu.unit == "Count"
    assert store.samples("us-east-1", MetricId.of("AWS/ElastiCache", "ElastiCacheProcessingUnits",
                                                  [("clusterId", "other")]), now - 5, now + 1, step=1) is None
    store.roll_up(now // 60 * 60)
    minute = store.samples("us-east-1", MetricId.of("AWS/ElastiCache", "BytesUsedForCache", [("clusterId", "carts")]),
                           now - 120, now + 60, step=60)
    assert minute is not None and list(minute.sums) == [2e6]
    store.close()
    reopened = TimeSeriesStore(tmp_path)  # the files keep their own width across a restart
    again = reopened.samples("us-east-1", MetricId.of("AWS/ElastiCache", "ElastiCacheProcessingUnits",
                                                      [("clusterId", "carts")]), now - 5, now + 1, step=1)
    assert again is not None and list(again.sums) == [12.0]
    reopened.close()


def test_a_serverless_shard_is_sized_by_its_data_not_its_buffers():
    # Measured on a shard right after 8,192 of its slots left: the backlog kept 8.9 MB of writes.
    info = {"used_memory": "16195528", "mem_replication_backlog": "8914952", "mem_clients_slaves": "0",
            "mem_clients_normal": "29640"}
    assert data_memory(info) == 16195528 - 8914952 - 29640
    assert math.isnan(data_memory({}))
