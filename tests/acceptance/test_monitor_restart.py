"""Alarms, their history and the stored metrics survive a crash of the control plane."""

from __future__ import annotations

import datetime as dt
import signal

from helpers import wait_for, wait_group

DIMENSIONS = [{"Name": "CacheClusterId", "Value": "kept-001"}, {"Name": "CacheNodeId", "Value": "0001"}]


def sample_count(cw, start, end) -> float:
    points = cw.get_metric_statistics(Namespace="AWS/ElastiCache", MetricName="CurrItems", Dimensions=DIMENSIONS,
                                      StartTime=start, EndTime=end, Period=1, Statistics=["SampleCount"])["Datapoints"]
    return sum(p["SampleCount"] for p in points)


def test_alarms_and_metrics_survive_a_crash(make_server):
    server = make_server()
    ec, cw = server.client(), server.client("cloudwatch")
    ec.create_replication_group(ReplicationGroupId="kept", ReplicationGroupDescription="d", Engine="valkey",
                                CacheNodeType="cache.t4g.micro", NumCacheClusters=1)
    wait_group(ec, "kept")
    cw.put_metric_alarm(AlarmName="kept-items", MetricName="CurrItems", Namespace="AWS/ElastiCache", Statistic="Maximum",
                        Dimensions=DIMENSIONS, Period=60, EvaluationPeriods=3, DatapointsToAlarm=2, Threshold=1000,
                        ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching",
                        AlarmActions=["http://127.0.0.1:9/unreachable"], Tags=[{"Key": "team", "Value": "cache"}])
    cw.set_alarm_state(AlarmName="kept-items", StateValue="ALARM", StateReason="set by the test")
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
    wait_for(lambda: sample_count(cw, start, dt.datetime.now(dt.UTC)) >= 3, timeout=15, what="samples")
    end = dt.datetime.now(dt.UTC)
    before = sample_count(cw, start, end)

    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    server.start()
    cw = server.client("cloudwatch")

    alarm = cw.describe_alarms(AlarmNames=["kept-items"])["MetricAlarms"][0]
    assert (alarm["Threshold"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"], alarm["TreatMissingData"]) == (
        1000.0, 3, 2, "notBreaching")
    assert alarm["AlarmActions"] == ["http://127.0.0.1:9/unreachable"]
    history = cw.describe_alarm_history(AlarmName="kept-items")["AlarmHistoryItems"]
    summaries = [h["HistorySummary"] for h in history]
    assert "Alarm updated from INSUFFICIENT_DATA to ALARM" in summaries
    assert 'Alarm "kept-items" created' in summaries
    assert sample_count(cw, start, end) == before  # the samples taken before the crash are still there
    # The alarm keeps being evaluated after the restart: 0 items is not breaching, so it goes back to OK.
    wait_for(lambda: cw.describe_alarms(AlarmNames=["kept-items"])["MetricAlarms"][0]["StateValue"] == "OK",
             timeout=90, interval=1, what="re-evaluation after restart")
    wait_for(lambda: sample_count(cw, end, dt.datetime.now(dt.UTC)) >= 2, timeout=15, what="sampling after restart")
