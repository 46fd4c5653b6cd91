"""Pure parts of monitoring: statistics, metric math, alarm decisions, metric derivation, ring files."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import time
from pathlib import Path

import pytest

from cachefleet.domain import metrics
from cachefleet.domain.alarms import AlarmState, MetricAlarm, evaluate
from cachefleet.domain.errors import ValidationError
from cachefleet.domain.identifiers import Region
from cachefleet.domain.logs import LogDelivery
from cachefleet.domain.metrics import Expression, Labelled, MetricId, Samples
from cachefleet.engine.access import NodeAccess
from cachefleet.monitor import catalog, logs
from cachefleet.monitor.nodes import MonitoredNode
from cachefleet.monitor.sampler import (
    CORES,
    TICKS_PER_SECOND,
    Raw,
    Sampler,
    derive,
    parse_info,
    read_process,
    replication_lag,
    system_uptime,
)
from cachefleet.monitor.timeseries import (
    MINUTE_SLOTS,
    SECOND_SLOTS,
    RingFile,
    SeriesKey,
    TimeSeriesStore,
    bytes_per_node,
)
from helpers import free_port

T0 = 1_800_000_000  # a whole minute


def test_aggregate_per_period_with_all_statistics():
    samples = Samples(step=1, timestamps=[T0 + i for i in range(120)], sums=[float(i % 10) for i in range(120)])
    points = metrics.aggregate(samples, T0, T0 + 120, 60, keep_values=True)
    assert [p.timestamp for p in points] == [T0, T0 + 60]
    first = points[0]
    assert (first.sample_count, first.total, first.minimum, first.maximum) == (60, 270, 0, 9)
    assert first.average == 4.5
    assert first.statistic("p50") == 4 and first.statistic("p100") == 9


def test_aggregate_of_minute_rows_and_alignment():
    samples = Samples(step=60, timestamps=[T0, T0 + 60, T0 + 120], sums=[60.0, 120.0, 30.0], counts=[60.0, 60.0, 30.0],
                      mins=[1.0, 2.0, 0.0], maxs=[1.0, 2.0, 5.0])
    (point,) = metrics.aggregate(samples, T0 + 17, T0 + 180, 300)
    assert point.timestamp == T0  # the start is rounded down to the minute
    assert (point.sample_count, point.total, point.minimum, point.maximum) == (150, 210, 0, 5)
    assert metrics.count_datapoints(T0 + 17, T0 + 86400, 60) == 1440
    assert metrics.align_start(T0 + 17, 5) == T0 + 15


@pytest.mark.parametrize("period", [1, 5, 10, 30, 60, 120, 3600])
def test_valid_periods(period):
    assert metrics.check_period(period) == period


@pytest.mark.parametrize("period", [2, 45, 61, 90])
def test_invalid_periods(period):
    with pytest.raises(metrics.InvalidParameterValue):
        metrics.check_period(period)


def series(**values):
    return {float(t): float(v) for t, v in values.items()}


def evaluate_text(text, known, everything=()):
    return Expression(text).evaluate(lambda name: known[name], lambda part: [x for x in everything if part in x.label])


def test_expressions_combine_series_and_numbers():
    a = {1.0: 10.0, 2.0: 20.0, 3.0: 30.0}
    b = {1.0: 1.0, 2.0: 4.0}
    assert evaluate_text("a+b", {"a": a, "b": b}) == {1.0: 11.0, 2.0: 24.0}  # timestamps both have
    assert evaluate_text("b/a*100", {"a": a, "b": b}) == {1.0: 10.0, 2.0: 20.0}
    assert evaluate_text("-(a - 5) * 2", {"a": a}) == {1.0: -10.0, 2.0: -30.0, 3.0: -50.0}
    listed = [Labelled("GetTypeCmds", a), Labelled("SetTypeCmds", b)]
    assert evaluate_text("SUM(METRICS())", {}, listed) == {1.0: 11.0, 2.0: 24.0, 3.0: 30.0}
    assert evaluate_text('MAX(METRICS("Set"))', {}, listed) == {1.0: 1.0, 2.0: 4.0}
    assert evaluate_text("AVG(a)", {"a": a}) == {1.0: 20.0, 2.0: 20.0, 3.0: 20.0}
    assert evaluate_text("ABS(b - 3)", {"b": b}) == {1.0: 2.0, 2.0: 1.0}
    assert math.isnan(evaluate_text("a / 0", {"a": a})[1.0])
    assert Expression("m1 + m2 * SUM(METRICS())").references() == {"m1", "m2"}


@pytest.mark.parametrize("text", ["a +", "(a", "a $ b", "FOO(a)", "SUM(a, a)", "a b", "Capital"])
def test_bad_expressions(text):
    with pytest.raises(ValidationError, match="Error in expression"):
        evaluate_text(text, {"a": {1.0: 1.0}})


def alarm(**changes) -> MetricAlarm:
    base = {
        "region": Region("us-east-1"), "name": "a", "arn": "arn", "metric_name": "CurrConnections", "namespace": "AWS/ElastiCache",
        "statistic": "Maximum", "dimensions": (), "period": 60, "evaluation_periods": 3, "datapoints_to_alarm": 2,
        "threshold": 10.0, "comparison_operator": "GreaterThanThreshold", "treat_missing_data": "missing",
        "configuration_updated": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    }
    return MetricAlarm(**{**base, **changes})


def window(*values):
    start = dt.datetime(2026, 11, 29, 14, 0, tzinfo=dt.UTC)
    return [(start + dt.timedelta(minutes=i), v) for i, v in enumerate(values)]


NOW = dt.datetime(2026, 11, 29, 14, 4, tzinfo=dt.UTC)


def test_m_out_of_n_goes_to_alarm_with_cloudwatchs_reason():
    result = evaluate(alarm(), window(11, 5, 12), now=NOW)
    assert result.state == AlarmState.ALARM
    assert result.reason == (
        "Threshold Crossed: 2 out of the last 3 datapoints [12.0 (29/11/26 14:02:00), 5.0 (29/11/26 14:01:00), "
        "11.0 (29/11/26 14:00:00)] was greater than the threshold (10.0) (minimum 2 datapoints for OK -> ALARM transition)."
    )
    data = json.loads(result.reason_data)
    assert data["recentDatapoints"] == [11, 5, 12] and data["threshold"] == 10 and data["statistic"] == "Maximum"
    assert evaluate(alarm(), window(11, 5, 5), now=NOW).state == AlarmState.OK


@pytest.mark.parametrize(
    ("operator", "breaching", "words", "negation"),
    [
        ("GreaterThanThreshold", {11.0}, "greater than", "not greater than"),
        ("GreaterThanOrEqualToThreshold", {10.0, 11.0}, "greater than or equal to", "not greater than or equal to"),
        ("LessThanThreshold", {9.0}, "less than", "not less than"),
        ("LessThanOrEqualToThreshold", {9.0, 10.0}, "less than or equal to", "not less than or equal to"),
    ],
)
def test_every_comparison_operator(operator, breaching, words, negation):
    single = alarm(comparison_operator=operator, evaluation_periods=1, datapoints_to_alarm=1)  # threshold 10
    for value in (9.0, 10.0, 11.0):
        result = evaluate(single, window(value), now=NOW)
        if value in breaching:
            assert result.state == AlarmState.ALARM, value
            assert f"] was {words} the threshold (10.0)" in result.reason
        else:
            assert result.state == AlarmState.OK, value
            assert f"] was {negation} the threshold (10.0)" in result.reason
    # M out of N counts the breaching datapoints by the same rule.
    assert evaluate(alarm(comparison_operator=operator), window(9, 10, 11), now=NOW).state == (
        AlarmState.ALARM if len(breaching) >= 2 else AlarmState.OK)


@pytest.mark.parametrize(
    ("treat", "values", "expected"),
    [
        ("missing", (None, None, None), AlarmState.INSUFFICIENT_DATA),
        ("missing", (None, 11, 12), AlarmState.ALARM),
        ("missing", (None, None, 12), AlarmState.OK),  # 1 of 2 needed: not enough to alarm
        ("breaching", (None, None, 5), AlarmState.ALARM),
        ("notBreaching", (None, None, 12), AlarmState.OK),
        ("notBreaching", (None, None, None), AlarmState.OK),
        ("ignore", (None, None, None), AlarmState.ALARM),  # keeps the current state
    ],
)
def test_treat_missing_data(treat, values, expected):
    current = alarm(treat_missing_data=treat, state=AlarmState.ALARM)
    assert evaluate(current, window(*values), now=NOW).state == expected


def test_insufficient_data_reason():
    result = evaluate(alarm(evaluation_periods=1, datapoints_to_alarm=1), window(None), now=NOW)
    assert result.reason == "Insufficient Data: 1 datapoint was unknown."


INFO = """# Clients\r
connected_clients:{clients}\r
# Memory\r
used_memory:{used}\r
maxmemory:1000000\r
mem_fragmentation_ratio:{fragmentation}\r
# Stats\r
total_connections_received:{conns}\r
total_net_input_bytes:{net_in}\r
total_net_output_bytes:{net_out}\r
keyspace_hits:{hits}\r
keyspace_misses:{misses}\r
evicted_keys:{evicted}\r
expired_keys:{expired}\r
acl_access_denied_auth:{auth}\r
acl_access_denied_cmd:{denied_cmd}\r
# Replication\r
role:master\r
connected_slaves:1\r
slave0:ip=127.0.0.9,port=6379,state=online,offset=100,lag=1\r
total_net_repl_output_bytes:{repl}\r
# Persistence\r
rdb_bgsave_in_progress:{bgsave}\r
aof_rewrite_in_progress:{aof_rewrite}\r
# CPU\r
used_cpu_sys_main_thread:{cpu}\r
used_cpu_user_main_thread:0.0\r
# Commandstats\r
cmdstat_get:calls={gets},usec={get_usec},usec_per_call=1.00,rejected_calls=0,failed_calls=0\r
cmdstat_set:calls={sets},usec={set_usec},usec_per_call=1.00,rejected_calls=0,failed_calls=0\r
cmdstat_client|setname:calls=1,usec=1,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r
# Keyspace\r
db0:keys=7,expires=2,avg_ttl=1500\r
db3:keys=1,expires=0,avg_ttl=0\r
"""


def raw(at, *, cpu_ticks=100, pid=1, **values):
    defaults = {"clients": 3, "used": 250000, "conns": 10, "net_in": 1000, "net_out": 500, "hits": 0, "misses": 0, "auth": 0,
                "denied_cmd": 0, "evicted": 0, "expired": 3, "repl": 0, "cpu": 1.0, "gets": 0, "get_usec": 0, "sets": 0,
                "set_usec": 0, "fragmentation": 1.5, "bgsave": 0, "aof_rewrite": 0}
    info, commands, keyspace, replicas = parse_info(INFO.format(**{**defaults, **values}))
    return Raw(at, info, commands, keyspace, replicas, cpu_ticks=cpu_ticks, rss=300_000, pid=pid)


FAMILIES = {
    "get": catalog.classify("get", ["readonly", "fast"], ["@read", "@string", "@fast"], True),
    "set": catalog.classify("set", ["write", "denyoom"], ["@write", "@string", "@slow"], True),
    "client": catalog.classify("client", ["noscript"], ["@slow"], False),
}


def test_derive_turns_counters_into_per_period_values():
    # Two seconds apart: per-period counters are deltas (not rates), CPU is a rate over the elapsed time.
    before = raw(100.0, gets=10, get_usec=20, sets=5, set_usec=10, hits=4, misses=1, conns=10, net_in=1000, repl=50, cpu=1.0,
                 cpu_ticks=1000, net_out=500, evicted=7, expired=3, denied_cmd=1, fragmentation=1.5, bgsave=0)
    after = raw(102.0, gets=40, get_usec=80, sets=15, set_usec=50, hits=24, misses=11, conns=12, net_in=1600, repl=250, auth=2,
                cpu=1.5, cpu_ticks=1000 + TICKS_PER_SECOND, net_out=4596, evicted=12, expired=10, denied_cmd=4,
                fragmentation=2.25, bgsave=1)
    row = derive(before, after, families=FAMILIES, memory_bytes=1_000_000, host_available=10**12, replica_lag=math.nan)
    value = dict(zip(catalog.NAMES, row, strict=True))
    assert value["GetTypeCmds"] == 30 and value["SetTypeCmds"] == 10 and value["StringBasedCmds"] == 40
    assert value["GetTypeCmdsLatency"] == 2.0 and value["SetTypeCmdsLatency"] == 4.0
    assert value["KeyBasedCmds"] == 0 and math.isnan(value["KeyBasedCmdsLatency"])
    assert (value["CacheHits"], value["CacheMisses"]) == (20, 10)
    assert value["CacheHitRate"] == pytest.approx(200 / 3)
    assert (value["NewConnections"], value["CurrConnections"], value["NetworkBytesIn"]) == (2, 3, 600)
    assert value["NetworkBytesOut"] == 4096
    assert (value["CurrItems"], value["CurrVolatileItems"], value["DB0AverageTTL"]) == (8, 2, 1500)
    assert value["BytesUsedForCache"] == 250000 and value["DatabaseMemoryUsagePercentage"] == 25
    assert value["MemoryFragmentationRatio"] == 2.25  # a gauge: the current ratio, not a difference
    assert value["FreeableMemory"] == 700_000
    # One second of CPU time (utime + stime ticks from /proc) in two seconds: half a core, as a share of all cores.
    assert value["CPUUtilization"] == pytest.approx(50.0 / CORES)
    assert value["EngineCPUUtilization"] == pytest.approx(25.0)  # 0.5 s of main-thread CPU in 2 s: of one core
    assert (value["Evictions"], value["Reclaimed"], value["CommandAuthorizationFailures"]) == (5, 7, 3)
    assert value["SaveInProgress"] == 1
    assert (value["IsMaster"], value["ReplicationBytes"], value["AuthenticationFailures"]) == (1, 200, 2)
    assert math.isnan(value["MasterLinkHealthStatus"]) and math.isnan(value["ReplicationLag"])
    assert after.replicas == {"127.0.0.9": 1}


@pytest.mark.parametrize(("bgsave", "aof_rewrite", "saving"), [(0, 0, 0), (1, 0, 1), (0, 1, 1)])
def test_save_in_progress_counts_background_saves_and_rewrites(bgsave, aof_rewrite, saving):
    row = derive(raw(100.0), raw(101.0, bgsave=bgsave, aof_rewrite=aof_rewrite), families=FAMILIES, memory_bytes=1,
                 host_available=1, replica_lag=0.0)
    assert row[catalog.INDEX["SaveInProgress"]] == saving


def test_cpu_utilization_needs_two_readings_of_the_same_process():
    restarted = derive(raw(100.0, pid=1, cpu_ticks=10), raw(101.0, pid=2, cpu_ticks=500), families=FAMILIES, memory_bytes=1,
                       host_available=1, replica_lag=0.0)
    assert math.isnan(restarted[catalog.INDEX["CPUUtilization"]])  # another process: its ticks are not a delta
    gone = derive(raw(100.0), raw(101.0, cpu_ticks=None), families=FAMILIES, memory_bytes=1, host_available=1, replica_lag=0.0)
    assert math.isnan(gone[catalog.INDEX["CPUUtilization"]])


def test_read_process_reads_cpu_ticks_and_memory_from_proc():
    resident = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    ticks, rss, started = read_process(os.getpid())
    assert rss == pytest.approx(resident, abs=8 << 20)  # the same figure, give or take this test's own allocations
    assert started is not None and 0 < started / TICKS_PER_SECOND <= system_uptime()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # burn 0.3 s of CPU
        pass
    later, _, _ = read_process(os.getpid())
    assert ticks is not None and later is not None
    assert later - ticks >= 0.2 * TICKS_PER_SECOND
    assert read_process(None) == (None, None, None)
    assert read_process(2**22 + 12345) == (None, None, None)  # above pid_max: no such process


def test_derive_counts_from_zero_after_an_engine_restart():
    before = raw(100.0, gets=1000, hits=900)
    after = raw(101.0, gets=7, hits=5)
    row = derive(before, after, families=FAMILIES, memory_bytes=1, host_available=1, replica_lag=0.0)
    value = dict(zip(catalog.NAMES, row, strict=True))
    assert value["GetTypeCmds"] == 7 and value["CacheHits"] == 5


def test_command_reply_classification():
    reply = [
        ["get", 2, ["readonly", "fast"], 1, 1, 1, ["@read", "@string", "@fast"], [], [["flags", ["RO"]]], []],
        ["del", -2, ["write"], 1, -1, 1, ["@keyspace", "@write", "@slow"], [], [["flags", ["RM"]]], []],
        ["eval", -3, ["noscript", "stale"], 0, 0, 0, ["@slow", "@scripting"], [], [["flags", ["RW"]]], []],
        ["ping", -1, ["fast"], 0, 0, 0, ["@fast", "@connection"], [], [], []],
        ["cluster", -2, [], 0, 0, 0, ["@slow"], [], [], []],
    ]
    names = {name: {catalog.FAMILY_NAMES[i] for i in found} for name, found in catalog.classify_command_reply(reply).items()}
    assert names["get"] == {"GetTypeCmds", "StringBasedCmds"}
    assert names["del"] == {"SetTypeCmds", "KeyBasedCmds"}
    assert names["eval"] == {"EvalBasedCmds"}  # its keys are in key specs: a key-based command
    assert names["ping"] == {"NonKeyTypeCmds"}
    assert names["cluster"] == {"NonKeyTypeCmds", "ClusterBasedCmds"}


def test_ring_file_wraps_and_skips_stale_rows(tmp_path):
    ring = RingFile(tmp_path / "r.ring", step=1, slots=10, width=2, fingerprint=1)
    for t in range(T0, T0 + 25):
        ring.write(t, [float(t - T0), math.nan if t % 2 else 1.0])
    stamps, values = ring.column(0, T0, T0 + 25)
    assert stamps == [float(t) for t in range(T0 + 15, T0 + 25)]  # only the last lap is kept
    assert values == [float(v) for v in range(15, 25)]
    assert ring.column(1, T0, T0 + 25)[0] == [float(t) for t in range(T0 + 16, T0 + 25, 2)]  # NaN is "no value"
    assert ring.column(0, T0, T0 + 10) == ([], [])
    ring.close()
    reopened = RingFile(tmp_path / "r.ring", step=1, slots=10, width=2, fingerprint=1)
    assert reopened.column(0, T0 + 20, T0 + 22)[1] == [20.0, 21.0]
    assert reopened.last_write == T0 + 24
    reopened.close()
    changed = RingFile(tmp_path / "r.ring", step=1, slots=10, width=2, fingerprint=2)  # another metric list: start afresh
    assert changed.column(0, T0, T0 + 25) == ([], [])
    changed.close()


def test_store_rolls_seconds_up_into_minutes_and_prunes(tmp_path):
    store = TimeSeriesStore(tmp_path)
    key = SeriesKey("us-east-1", "c-001", "0001")
    for t in range(T0, T0 + 60):
        row = [math.nan] * catalog.WIDTH
        row[catalog.INDEX["GetTypeCmds"]] = 2.0
        row[catalog.INDEX["CurrConnections"]] = float(t - T0)
        store.write(key, t, row)
    store.roll_up(T0)
    metric = MetricId.of(catalog.NAMESPACE, "GetTypeCmds", [("CacheClusterId", "c-001"), ("CacheNodeId", "0001")])
    minute = store.samples("us-east-1", metric, T0, T0 + 60, step=60)
    assert (minute.timestamps, minute.sums, minute.counts) == ([T0], [120.0], [60.0])
    connections = store.samples("us-east-1", MetricId.of(catalog.NAMESPACE, "CurrConnections", [("CacheClusterId", "c-001")]),
                                T0, T0 + 60, step=60)
    assert (connections.mins, connections.maxs, connections.unit) == ([0.0], [59.0], "Count")
    assert store.samples("us-east-1", MetricId.of("AWS/EC2", "GetTypeCmds", metric.dimensions), T0, T0 + 1, step=1) is None
    assert store.samples("us-east-1", MetricId.of(catalog.NAMESPACE, "GetTypeCmds", [("CacheClusterId", "other")]),
                         T0, T0 + 1, step=1) is None
    assert store.prune(now=T0 + 86400) == []
    assert store.prune(now=T0 + 16 * 86400) == [key]
    assert not (tmp_path / "us-east-1" / "c-001" / "0001").exists()
    store.close()


def test_store_keeps_three_hours_of_seconds_and_fifteen_days_of_minutes(tmp_path):
    """Retention with the real ring sizes: every second written for 3 h, every minute for 15 days."""
    assert SECOND_SLOTS >= 3 * 3600 and MINUTE_SLOTS >= 15 * 1440
    store = TimeSeriesStore(tmp_path)
    key = SeriesKey("us-east-1", "c-001", "0001")
    metric = MetricId.of(catalog.NAMESPACE, "CurrItems", [("CacheClusterId", "c-001"), ("CacheNodeId", "0001")])
    column = catalog.INDEX["CurrItems"]
    now = T0 + 20 * 86400

    def row(value: float) -> list[float]:
        values = [math.nan] * catalog.WIDTH
        values[column] = value
        return values

    # A full lap and a bit of seconds, up to now: each second holds its own age.
    for stamp in range(now - SECOND_SLOTS - 30, now + 1):
        store.write(key, stamp, row(float(now - stamp)))
    old = now - (2 * 3600 + 59 * 60)  # 2 h 59 min ago
    seconds = store.samples("us-east-1", metric, old, old + 1, step=1)
    assert (seconds.timestamps, seconds.sums) == ([float(old)], [float(now - old)])
    assert store.samples("us-east-1", metric, now - 3 * 3600, now + 1, step=1).timestamps[0] == now - 3 * 3600
    # What is older than the ring was overwritten by the last lap.
    lapped = now - SECOND_SLOTS - 10
    assert store.samples("us-east-1", metric, lapped, lapped + 1, step=1).timestamps == []

    # Minutes: one second per minute rolled up into the minute ring, a full lap and a bit.
    first_minute = (now - (MINUTE_SLOTS + 30) * 60) // 60 * 60
    for minute in range(first_minute, now, 60):
        store.write(key, minute, row(float((now - minute) // 60)))
        store.roll_up(minute)
    fortnight = (now - 14 * 86400) // 60 * 60
    minutes = store.samples("us-east-1", metric, fortnight, fortnight + 60, step=60)
    assert (minutes.timestamps, minutes.sums, minutes.counts) == ([float(fortnight)], [14 * 1440.0], [1.0])
    assert store.samples("us-east-1", metric, now - 15 * 86400, now, step=60).timestamps[0] == (now - 15 * 86400) // 60 * 60
    assert store.samples("us-east-1", metric, first_minute, first_minute + 60, step=60).timestamps == []
    store.close()


def test_log_delivery_turned_on_for_a_running_node_starts_from_then(tmp_path, monkeypatch):
    """A new node's engine log is delivered from its start; turned off and on again (or added next
    to another log type), only what the engine logs from then on is delivered, nothing is replayed."""
    engine_log = tmp_path / "engine.log"
    delivered = tmp_path / "logs" / "cloudwatch-logs" / "us-east-1" / "%2Fg" / "c-001-0001-engine-log.log"
    engine_delivery = LogDelivery("engine-log", "cloudwatch-logs", "/g", "text")
    slow_delivery = LogDelivery("slow-log", "cloudwatch-logs", "/g-slow", "json")  # no engine listens: nothing read
    current: list[tuple[LogDelivery, ...]] = [(engine_delivery,)]
    age = [1.0]
    closed_port = free_port()
    monkeypatch.setattr(logs, "_process_age", lambda pid: age[0])

    def source() -> list[MonitoredNode]:
        return [MonitoredNode(key="k", region="us-east-1", cluster_id="c-001", node_id="0001",
                              access=NodeAccess("127.0.0.1", closed_port), pid=4242, engine_log=engine_log,
                              deliveries=current[0])]

    def append(message: str) -> None:
        with open(engine_log, "a") as handle:
            handle.write(f"4242:M 29 Nov 2026 14:00:00.000 * {message}\n")

    def messages() -> list[str]:
        return [line.rsplit(",", 1)[1] for line in delivered.read_text().splitlines()] if delivered.exists() else []

    async def scenario() -> None:
        deliverer = logs.LogDeliverer(tmp_path / "logs", source)

        async def tick() -> None:
            deliverer.on_tick(0)
            while deliverer._busy:
                await asyncio.sleep(0.005)

        append("started")
        await tick()
        assert messages() == ["started"]  # a node seen in its first seconds: from its start
        age[0] = 3600.0
        append("one")
        await tick()
        assert messages() == ["started", "one"]
        current[0] = ()  # ModifyReplicationGroup: engine-log off
        await tick()
        append("while off")
        await tick()
        current[0] = (engine_delivery,)  # ... and on again
        await tick()
        append("back on")
        await tick()
        assert messages() == ["started", "one", "back on"]
        current[0] = (slow_delivery,)  # engine-log off, the node still delivers its slow log
        await tick()
        append("off again")
        await tick()
        current[0] = (slow_delivery, engine_delivery)
        await tick()
        append("on again")
        await tick()
        assert messages() == ["started", "one", "back on", "on again"]
        await deliverer.stop()

    asyncio.run(scenario())


def test_replication_lag_is_derived_from_the_offsets():
    """ElastiCache shows ~0 for a caught-up replica: equal offsets are 0 s, whatever the time since
    the last acknowledgement; behind, it is the time since the primary was at the replica's offset."""
    import collections

    history = {"127.0.0.1": collections.deque([(10.0, 500), (11.0, 800), (12.0, 1000)])}
    replica = {"role": "slave", "master_host": "127.0.0.1"}
    assert replication_lag({**replica, "slave_repl_offset": "1000"}, history, 12.0, fallback=1.0) == 0.0
    assert replication_lag({**replica, "slave_repl_offset": "700"}, history, 12.0, fallback=1.0) == 1.0
    assert replication_lag({**replica, "slave_repl_offset": "400"}, history, 12.0, fallback=1.0) == 2.0  # at least
    # The primary not sampled this tick: the primary's own view, as before.
    assert replication_lag({**replica, "master_host": "127.0.0.2", "slave_repl_offset": "5"}, history, 12.0,
                           fallback=3.0) == 3.0


def test_the_metric_files_of_a_node_stay_within_the_documented_bound(tmp_path):
    """README: at most 22.2 MiB per node; the files are created at their final size."""
    assert round(bytes_per_node() / 1024**2, 1) == 22.2
    store = TimeSeriesStore(tmp_path)
    store.write(SeriesKey("us-east-1", "c-001", "0001"), 1_700_000_000, [1.0] * catalog.WIDTH)
    store.close()
    files = list(tmp_path.rglob("*.ring"))
    assert files and sum(f.stat().st_size for f in files) == bytes_per_node()


def test_the_minutes_roll_up_lets_the_event_loop_in_and_ends_before_the_ticks_listeners(tmp_path):
    # 1,000 new nodes' first roll-up held the event loop for 24.9 s in one go (its minute files'
    # pages faulted in): the API and the health monitor stood still. Now it returns to the loop
    # every ROLL_UP_SLICE, and the tick's listeners (alarms of 60 s periods) still run after it.
    class SlowStore(TimeSeriesStore):
        rolled: list[float] = []

        def roll_up_steps(self, minute):
            for _ in range(20):
                time.sleep(0.005)  # one node's first roll-up: ~25 ms measured; 5 ms here
                self.rolled.append(time.monotonic())
                yield

    store = SlowStore(tmp_path / "metrics")
    heard: list[float] = []
    sampler = Sampler(directory=lambda: [], store=store, on_tick=lambda second: heard.append(time.monotonic()))

    async def run() -> list[float]:
        turns: list[float] = []

        async def other_work() -> None:
            while True:
                turns.append(time.monotonic())
                await asyncio.sleep(0)

        beside = asyncio.create_task(other_work())
        await asyncio.sleep(0)
        await sampler.tick(59 * 60 + 59)
        await sampler.tick(60 * 60)  # a new minute: the last one is rolled up
        beside.cancel()
        return turns

    turns = asyncio.run(run())
    first, last = store.rolled[0], store.rolled[-1]
    during = [t for t in turns if first < t < last]
    assert len(store.rolled) == 20
    assert len(during) >= 5, f"the event loop ran other work {len(during)} times during a 100 ms roll-up"
    assert heard[-1] > last  # the listeners of the new minute's tick come after the roll-up
    store.close()
