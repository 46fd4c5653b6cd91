"""Pure parts of monitoring: statistics, metric math, alarm decisions, metric derivation, ring files."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest

from cachefleet.domain import metrics
from cachefleet.domain.alarms import AlarmState, MetricAlarm, evaluate
from cachefleet.domain.errors import ValidationError
from cachefleet.domain.metrics import Expression, Labelled, MetricId, Samples
from cachefleet.domain.model import Region
from cachefleet.monitor import catalog
from cachefleet.monitor.sampler import Raw, derive, parse_info
from cachefleet.monitor.timeseries import RingFile, SeriesKey, TimeSeriesStore

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
mem_fragmentation_ratio:1.5\r
# Stats\r
total_connections_received:{conns}\r
total_net_input_bytes:{net_in}\r
total_net_output_bytes:500\r
keyspace_hits:{hits}\r
keyspace_misses:{misses}\r
evicted_keys:0\r
expired_keys:3\r
acl_access_denied_auth:{auth}\r
# Replication\r
role:master\r
connected_slaves:1\r
slave0:ip=127.0.0.9,port=6379,state=online,offset=100,lag=1\r
total_net_repl_output_bytes:{repl}\r
# Persistence\r
rdb_bgsave_in_progress:0\r
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


def raw(at, **values):
    defaults = {"clients": 3, "used": 250000, "conns": 10, "net_in": 1000, "hits": 0, "misses": 0, "auth": 0, "repl": 0,
                "cpu": 1.0, "gets": 0, "get_usec": 0, "sets": 0, "set_usec": 0}
    info, commands, keyspace, replicas = parse_info(INFO.format(**{**defaults, **values}))
    return Raw(at, info, commands, keyspace, replicas, cpu_ticks=100, rss=300_000, pid=1)


FAMILIES = {
    "get": catalog.classify("get", ["readonly", "fast"], ["@read", "@string", "@fast"], True),
    "set": catalog.classify("set", ["write", "denyoom"], ["@write", "@string", "@slow"], True),
    "client": catalog.classify("client", ["noscript"], ["@slow"], False),
}


def test_derive_turns_counters_into_per_period_values():
    before = raw(100.0, gets=10, get_usec=20, sets=5, set_usec=10, hits=4, misses=1, conns=10, net_in=1000, repl=50, cpu=1.0)
    after = raw(101.0, gets=40, get_usec=80, sets=15, set_usec=50, hits=24, misses=11, conns=12, net_in=1600, repl=250, auth=2,
                cpu=1.25)
    row = derive(before, after, families=FAMILIES, memory_bytes=1_000_000, host_available=10**12, replica_lag=math.nan)
    value = dict(zip(catalog.NAMES, row, strict=True))
    assert value["GetTypeCmds"] == 30 and value["SetTypeCmds"] == 10 and value["StringBasedCmds"] == 40
    assert value["GetTypeCmdsLatency"] == 2.0 and value["SetTypeCmdsLatency"] == 4.0
    assert value["KeyBasedCmds"] == 0 and math.isnan(value["KeyBasedCmdsLatency"])
    assert (value["CacheHits"], value["CacheMisses"]) == (20, 10)
    assert value["CacheHitRate"] == pytest.approx(200 / 3)
    assert (value["NewConnections"], value["CurrConnections"], value["NetworkBytesIn"]) == (2, 3, 600)
    assert (value["CurrItems"], value["CurrVolatileItems"], value["DB0AverageTTL"]) == (8, 2, 1500)
    assert value["BytesUsedForCache"] == 250000 and value["DatabaseMemoryUsagePercentage"] == 25
    assert value["FreeableMemory"] == 700_000
    assert value["EngineCPUUtilization"] == pytest.approx(25.0)
    assert (value["IsMaster"], value["ReplicationBytes"], value["AuthenticationFailures"]) == (1, 200, 2)
    assert math.isnan(value["MasterLinkHealthStatus"]) and math.isnan(value["ReplicationLag"])
    assert after.replicas == {"127.0.0.9": 1}


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
