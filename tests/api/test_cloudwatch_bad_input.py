"""Invalid CloudWatch requests get CloudWatch's error code and a message saying what to change; never a 500."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError

NOW = dt.datetime.now(dt.UTC)
DIMENSIONS = [{"Name": "CacheClusterId", "Value": "x-001"}, {"Name": "CacheNodeId", "Value": "0001"}]
STATISTICS = {"Namespace": "AWS/ElastiCache", "MetricName": "CPUUtilization", "Dimensions": DIMENSIONS,
              "StartTime": NOW - dt.timedelta(hours=1), "EndTime": NOW, "Period": 60, "Statistics": ["Average"]}
ALARM = {"AlarmName": "bad", "MetricName": "CPUUtilization", "Namespace": "AWS/ElastiCache", "Statistic": "Average",
         "Period": 60, "EvaluationPeriods": 1, "Threshold": 90.0, "ComparisonOperator": "GreaterThanThreshold"}


def expect(code: str, call, /, *, says: str, status: int = 400, **kwargs) -> None:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    assert error["Code"] == code, error
    assert says in error["Message"], error["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


@pytest.fixture
def cw(server):
    return server.client("cloudwatch")


@pytest.mark.parametrize(
    ("changes", "code", "says"),
    [
        ({"StartTime": NOW - dt.timedelta(days=2), "Period": 1}, "InvalidParameterCombination", "exceeds the limit of 1,440"),
        ({"StartTime": NOW - dt.timedelta(days=14), "Period": 300}, "InvalidParameterCombination", "increasing Period"),
        ({"StartTime": NOW, "EndTime": NOW - dt.timedelta(hours=1)}, "InvalidParameterValue", "StartTime must be less"),
        ({"Period": 7}, "InvalidParameterValue", "multiple of 60"),
        ({"Period": 90}, "InvalidParameterValue", "multiple of 60"),
        ({"Statistics": [], "ExtendedStatistics": []}, "InvalidParameterCombination", "Statistics or ExtendedStatistics"),
        ({"ExtendedStatistics": ["p101"]}, "InvalidParameterValue", "percentile"),
        ({"ExtendedStatistics": ["Sum"]}, "InvalidParameterValue", "percentiles"),
        ({"Dimensions": DIMENSIONS + [{"Name": "CacheNodeId", "Value": "0002"}]}, "InvalidParameterValue", "only once"),
    ],
)
def test_get_metric_statistics_rejects(cw, changes, code, says):
    params = {**STATISTICS, **changes}
    if params.get("Statistics") == []:
        params.pop("Statistics")
        params.pop("ExtendedStatistics")
    expect(code, cw.get_metric_statistics, says=says, **params)


def stat(query_id: str, period: int = 60) -> dict:
    return {"Id": query_id, "MetricStat": {"Metric": {"Namespace": "AWS/ElastiCache", "MetricName": "CPUUtilization",
                                                      "Dimensions": DIMENSIONS}, "Period": period, "Stat": "Average"}}


@pytest.mark.parametrize(
    ("queries", "code", "says"),
    [
        ([stat("M1")], "InvalidParameterValue", "^[a-z][a-zA-Z0-9_]*$"),
        ([stat("m1"), stat("m1")], "InvalidParameterValue", "unique"),
        ([stat("m1"), {"Id": "e1", "Expression": "m1 +"}], "ValidationError", "Error in expression"),
        ([stat("m1"), {"Id": "e1", "Expression": "m1 + nope"}], "ValidationError", "unknown query id 'nope'"),
        ([stat("m1"), {"Id": "e1", "Expression": "MEDIAN(m1)"}], "ValidationError", "unknown function MEDIAN"),
        ([{"Id": "e1", "Expression": "e1 * 2"}], "ValidationError", "refers to itself"),
        ([stat("m1", period=1)], "InvalidParameterCombination", "exceeds the limit of 100,800"),
        ([stat("m1", period=45)], "InvalidParameterValue", "multiple of 60"),
        ([{**stat("m1"), "ReturnData": False}], "InvalidParameterValue", "ReturnData"),
        ([{**stat("m1"), "Expression": "m1"}], "InvalidParameterCombination", "exactly one of MetricStat and Expression"),
    ],
)
def test_get_metric_data_rejects(cw, queries, code, says):
    start = NOW - dt.timedelta(days=3) if queries[0].get("MetricStat", {}).get("Period") == 1 else NOW - dt.timedelta(hours=1)
    expect(code, cw.get_metric_data, says=says, MetricDataQueries=queries, StartTime=start, EndTime=NOW)


@pytest.mark.parametrize(
    ("changes", "code", "says"),
    [
        ({"DatapointsToAlarm": 3}, "InvalidParameterValue", "must not exceed EvaluationPeriods"),
        ({"Period": 5}, "InvalidParameterValue", "10, 30 or a multiple of 60"),
        ({"Period": 3600, "EvaluationPeriods": 25}, "InvalidParameterValue", "one day"),
        ({"ComparisonOperator": "LessThanLowerOrGreaterThanUpperThreshold"}, "InvalidParameterCombination", "anomaly"),
        ({"AlarmActions": ["mailto:ops@example.com"]}, "InvalidParameterValue", "http:// or https://"),
        ({"TreatMissingData": "sometimes"}, "InvalidParameterValue", "notBreaching"),
        ({"ExtendedStatistic": "p99"}, "InvalidParameterCombination", "Exactly one of Statistic and ExtendedStatistic"),
        ({"Statistic": "Mean"}, "InvalidParameterValue", "SampleCount"),
        ({"Metrics": [stat("m1")]}, "InvalidParameterCombination", "not supported by Cachefleet yet"),
    ],
)
def test_put_metric_alarm_rejects(cw, changes, code, says):
    expect(code, cw.put_metric_alarm, says=says, **{**ALARM, **changes})
    assert cw.describe_alarms(AlarmNames=["bad"])["MetricAlarms"] == []


def test_alarm_operations_on_unknown_alarms(cw):
    expect("ResourceNotFound", cw.delete_alarms, says="nope", status=404, AlarmNames=["nope"])
    expect("ResourceNotFound", cw.set_alarm_state, says="nope", status=404, AlarmName="nope", StateValue="OK",
           StateReason="x")
    cw.put_metric_alarm(**{**ALARM, "AlarmName": "bad-format"})
    expect("InvalidFormat", cw.set_alarm_state, says="JSON", AlarmName="bad-format", StateValue="OK", StateReason="x",
           StateReasonData="{not json")
    expect("InvalidParameterValue", cw.set_alarm_state, says="ALARM", AlarmName="bad-format", StateValue="RED",
           StateReason="x")
    cw.delete_alarms(AlarmNames=["bad-format"])


def test_unsupported_and_malformed_requests(server, cw):
    expect("InvalidParameterCombination", cw.put_metric_data, says="publishes", Namespace="Mine",
           MetricData=[{"MetricName": "m", "Value": 1.0}])
    expect("InvalidAction", cw.list_dashboards, says="not supported by Cachefleet yet")
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url=server.url + "/", data=b"{not json", headers={
        "X-Amz-Target": "GraniteServiceVersion20100801.ListMetrics", "Content-Type": "application/x-amz-json-1.0"})
    SigV4Auth(Credentials("a", "b"), "monitoring", "us-east-1").add_auth(request)
    prepared = request.prepare()
    try:
        urllib.request.urlopen(urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers)), timeout=10)
        raise AssertionError("a malformed body must be refused")
    except urllib.error.HTTPError as error:
        assert error.code == 400
        assert error.headers["x-amzn-query-error"] == "SerializationException;Sender"
        assert b"not valid JSON" in error.read()
