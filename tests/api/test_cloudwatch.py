"""AWS/ElastiCache metrics and CloudWatch alarms against a real server and real engines.

Every call goes through a real client: boto3's cloudwatch client (AWS JSON), the AWS CLI,
a signed Query request and a signed Smithy RPC v2 CBOR request.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from botocore import parsers, serialize
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from prometheus_client.parser import text_string_to_metric_families

from helpers import events_of, free_port, raw_call, wait_for, wait_group, wait_group_gone

AWS = str(Path(sys.executable).with_name("aws"))
SETS, GETS, EXISTING = 3000, 5000, 3000  # GET k0..k4999 where k0..k2999 exist: 3000 hits, 2000 misses


def node_dimensions(cluster_id: str) -> list[dict[str, str]]:
    return [{"Name": "CacheClusterId", "Value": cluster_id}, {"Name": "CacheNodeId", "Value": "0001"}]


def total(cw, cluster_id: str, metric: str, start: dt.datetime, end: dt.datetime, statistic: str = "Sum") -> float:
    points = cw.get_metric_statistics(
        Namespace="AWS/ElastiCache", MetricName=metric, Dimensions=node_dimensions(cluster_id),
        StartTime=start, EndTime=end, Period=60, Statistics=[statistic],
    )["Datapoints"]
    return sum(p[statistic] for p in points)


@pytest.fixture(scope="module")
def loaded(server):
    """A two-node group loaded with a known number of SETs and GETs, and the time window of that load."""
    ec = server.client()
    ec.create_replication_group(ReplicationGroupId="metrics", ReplicationGroupDescription="metrics", Engine="valkey",
                                CacheNodeType="cache.t4g.micro", NumCacheClusters=2)
    group = wait_group(ec, "metrics")
    primary = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    cw = server.client("cloudwatch")
    # The sampler needs one sample of a node before it can report per-second deltas.
    wait_for(lambda: total(cw, "metrics-001", "CurrConnections", dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2),
                           dt.datetime.now(dt.UTC), "SampleCount") >= 2, timeout=15, what="first samples")
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    client = redis.Redis(host=primary, port=6379)
    pipe = client.pipeline(transaction=False)
    for i in range(SETS):
        pipe.set(f"k{i}", "v")
    pipe.execute()
    pipe = client.pipeline(transaction=False)
    for i in range(GETS):
        pipe.get(f"k{i}")
    pipe.execute()
    client.close()
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    wait_for(lambda: total(cw, "metrics-001", "GetTypeCmds", start, end) >= GETS * 0.99, timeout=15, what="GETs sampled")
    time.sleep(1.5)  # one more tick: nothing of the load is still on its way
    yield {"primary": primary, "start": start, "end": end}
    ec.delete_replication_group(ReplicationGroupId="metrics")
    wait_group_gone(ec, "metrics")


def test_get_and_set_counts_match_the_load(server, loaded):
    cw = server.client("cloudwatch")
    start, end = loaded["start"], loaded["end"]
    assert total(cw, "metrics-001", "GetTypeCmds", start, end) == pytest.approx(GETS, rel=0.01)
    assert total(cw, "metrics-001", "SetTypeCmds", start, end) == pytest.approx(SETS, rel=0.01)
    assert total(cw, "metrics-001", "StringBasedCmds", start, end) == pytest.approx(GETS + SETS, rel=0.01)
    # The replica applies every write it is sent, and serves no GET.
    assert total(cw, "metrics-002", "SetTypeCmds", start, end) == pytest.approx(SETS, rel=0.01)
    assert total(cw, "metrics-002", "GetTypeCmds", start, end) == 0


def test_hits_and_misses_match_the_pattern(server, loaded):
    cw = server.client("cloudwatch")
    start, end = loaded["start"], loaded["end"]
    assert total(cw, "metrics-001", "CacheHits", start, end) == pytest.approx(EXISTING, rel=0.01)
    assert total(cw, "metrics-001", "CacheMisses", start, end) == pytest.approx(GETS - EXISTING, rel=0.01)
    rates = cw.get_metric_statistics(
        Namespace="AWS/ElastiCache", MetricName="CacheHitRate", Dimensions=node_dimensions("metrics-001"),
        StartTime=start, EndTime=end, Period=3600, Statistics=["Minimum", "Maximum"], Unit="Percent",
    )["Datapoints"]
    assert rates and 0 <= rates[0]["Minimum"] <= 60.0 <= rates[0]["Maximum"] <= 100
    items = cw.get_metric_statistics(
        Namespace="AWS/ElastiCache", MetricName="CurrItems", Dimensions=[{"Name": "CacheClusterId", "Value": "metrics-002"}],
        StartTime=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5), EndTime=dt.datetime.now(dt.UTC), Period=1,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert items and max(p["Maximum"] for p in items) == EXISTING


def test_get_metric_data_with_math_expressions(server, loaded):
    cw = server.client("cloudwatch")

    def stat(query_id, metric, cluster="metrics-001", return_data=False):
        return {"Id": query_id, "ReturnData": return_data, "MetricStat": {
            "Metric": {"Namespace": "AWS/ElastiCache", "MetricName": metric, "Dimensions": node_dimensions(cluster)},
            "Period": 3600, "Stat": "Sum"}}

    result = cw.get_metric_data(
        StartTime=loaded["start"], EndTime=loaded["end"],
        MetricDataQueries=[
            stat("gets", "GetTypeCmds", return_data=True), stat("sets", "SetTypeCmds"), stat("hits", "CacheHits"),
            {"Id": "both", "Expression": "gets+sets", "Label": "reads and writes"},
            {"Id": "all", "Expression": "SUM(METRICS())"},
            {"Id": "ratio", "Expression": "hits/gets*100"},
        ],
    )["MetricDataResults"]
    by_id = {r["Id"]: r for r in result}
    assert set(by_id) == {"gets", "both", "all", "ratio"}
    assert sum(by_id["gets"]["Values"]) == pytest.approx(GETS, rel=0.01)
    assert sum(by_id["both"]["Values"]) == pytest.approx(GETS + SETS, rel=0.01)
    assert by_id["both"]["Label"] == "reads and writes"
    assert sum(by_id["all"]["Values"]) == pytest.approx(GETS + SETS + EXISTING, rel=0.01)
    assert by_id["ratio"]["Values"] == [pytest.approx(EXISTING / GETS * 100, rel=0.01)]
    assert all(r["StatusCode"] == "Complete" for r in result)


def test_list_metrics_names_every_node(server, loaded):
    cw = server.client("cloudwatch")
    listed = cw.list_metrics(Namespace="AWS/ElastiCache", MetricName="CPUUtilization")["Metrics"]
    clusters = {d["Value"] for m in listed for d in m["Dimensions"] if d["Name"] == "CacheClusterId"}
    assert {"metrics-001", "metrics-002"} <= clusters
    names = {m["MetricName"] for m in cw.list_metrics(Dimensions=[{"Name": "CacheClusterId", "Value": "metrics-001"}])["Metrics"]}
    expected = {"CPUUtilization", "EngineCPUUtilization", "FreeableMemory", "BytesUsedForCache", "DatabaseMemoryUsagePercentage",
                "MemoryFragmentationRatio", "CurrConnections", "NewConnections", "CurrItems", "CurrVolatileItems",
                "Evictions", "Reclaimed", "CacheHits", "CacheMisses", "CacheHitRate", "GetTypeCmds", "SetTypeCmds",
                "KeyBasedCmds", "GetTypeCmdsLatency", "SetTypeCmdsLatency", "NetworkBytesIn", "NetworkBytesOut",
                "ReplicationLag", "ReplicationBytes", "IsMaster", "MasterLinkHealthStatus", "SaveInProgress",
                "AuthenticationFailures", "CommandAuthorizationFailures", "HashBasedCmds", "EvalBasedCmdsLatency"}
    assert expected <= names


def test_roles_replication_and_host_metrics(server, loaded):
    cw = server.client("cloudwatch")
    now = dt.datetime.now(dt.UTC)
    recent = {"StartTime": now - dt.timedelta(seconds=10), "EndTime": now, "Period": 60}

    def maximum(cluster, metric):
        points = cw.get_metric_statistics(Namespace="AWS/ElastiCache", MetricName=metric, Dimensions=node_dimensions(cluster),
                                          Statistics=["Maximum"], **recent)["Datapoints"]
        return max((p["Maximum"] for p in points), default=None)

    assert maximum("metrics-001", "IsMaster") == 1 and maximum("metrics-002", "IsMaster") == 0
    assert maximum("metrics-002", "MasterLinkHealthStatus") == 1
    assert maximum("metrics-001", "MasterLinkHealthStatus") is None  # a primary has no link to a primary
    assert 0 <= maximum("metrics-002", "ReplicationLag") <= 1
    # Idle and caught up (the load is over): 0 s behind -- from the offsets, not the time since its last ACK.
    idle = cw.get_metric_statistics(Namespace="AWS/ElastiCache", MetricName="ReplicationLag",
                                    Dimensions=node_dimensions("metrics-002"), Statistics=["Maximum"],
                                    StartTime=now - dt.timedelta(seconds=4), EndTime=now, Period=1)["Datapoints"]
    assert idle and max(p["Maximum"] for p in idle) == 0
    assert maximum("metrics-001", "BytesUsedForCache") > 100_000
    assert 0 < maximum("metrics-001", "FreeableMemory") < 0.6 * 1024**3  # cache.t4g.micro has 0.5 GiB
    assert maximum("metrics-001", "CurrConnections") >= 1


def aws_cli(server, *args: str, config: str = "/dev/null") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIDCLI", "AWS_SECRET_ACCESS_KEY": "cli-secret", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": config, "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    return subprocess.run([AWS, *args, "--endpoint-url", server.url, "--output", "json"], capture_output=True, text=True,
                          env=env, timeout=120)


def test_aws_cli_reads_metrics_and_reports_errors(server, loaded):
    start, end = loaded["start"].strftime("%Y-%m-%dT%H:%M:%SZ"), (loaded["end"] + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = aws_cli(server, "cloudwatch", "get-metric-statistics", "--namespace", "AWS/ElastiCache",
                   "--metric-name", "GetTypeCmds", "--dimensions", "Name=CacheClusterId,Value=metrics-001",
                   "Name=CacheNodeId,Value=0001", "--start-time", start, "--end-time", end, "--period", "60",
                   "--statistics", "Sum")
    assert done.returncode == 0, done.stderr
    assert sum(p["Sum"] for p in json.loads(done.stdout)["Datapoints"]) == pytest.approx(GETS, rel=0.01)
    done = aws_cli(server, "cloudwatch", "get-metric-statistics", "--namespace", "AWS/ElastiCache",
                   "--metric-name", "GetTypeCmds", "--start-time", "2026-01-01T00:00:00Z", "--end-time", "2026-01-02T00:00:00Z",
                   "--period", "1", "--statistics", "Sum")
    assert done.returncode != 0
    assert "InvalidParameterCombination" in done.stderr and "1,440" in done.stderr


def test_aws_cli_puts_an_alarm_with_a_webhook_action(server, tmp_path):
    config = tmp_path / "aws-config"
    config.write_text("[default]\ncli_follow_urlparam = false\n")  # as the README says
    done = aws_cli(server, "cloudwatch", "put-metric-alarm", "--alarm-name", "cli-alarm", "--namespace", "AWS/ElastiCache",
                   "--metric-name", "CurrConnections", "--dimensions", "Name=CacheClusterId,Value=metrics-001",
                   "Name=CacheNodeId,Value=0001", "--statistic", "Maximum", "--period", "10", "--evaluation-periods", "1",
                   "--threshold", "100", "--comparison-operator", "GreaterThanThreshold",
                   "--alarm-actions", "https://hooks.example.com/cachefleet", config=str(config))
    assert done.returncode == 0, done.stderr
    done = aws_cli(server, "cloudwatch", "describe-alarms", "--alarm-names", "cli-alarm")
    alarm = json.loads(done.stdout)["MetricAlarms"][0]
    assert alarm["AlarmActions"] == ["https://hooks.example.com/cachefleet"] and alarm["Threshold"] == 100
    server.client("cloudwatch").delete_alarms(AlarmNames=["cli-alarm"])


def test_query_and_cbor_protocols_answer_the_same(server, loaded):
    model = server.client("cloudwatch").meta.service_model
    operation = model.operation_model("GetMetricStatistics")
    params = {"Namespace": "AWS/ElastiCache", "MetricName": "SetTypeCmds", "Dimensions": node_dimensions("metrics-001"),
              "StartTime": loaded["start"], "EndTime": loaded["end"], "Period": 60, "Statistics": ["Sum"]}
    # Query protocol (form body, XML answer)
    body = serialize.create_serializer("query").serialize_to_request(params, operation)["body"]
    status, xml = raw_call(server.url, {k: str(v) for k, v in body.items()}, service="monitoring")
    assert status == 200, xml
    parsed = parsers.create_parser("query").parse({"body": xml.encode(), "headers": {}, "status_code": 200}, operation.output_shape)
    assert sum(p["Sum"] for p in parsed["Datapoints"]) == pytest.approx(SETS, rel=0.01)
    # Smithy RPC v2 CBOR
    request = serialize.create_serializer("smithy-rpc-v2-cbor").serialize_to_request(params, operation)
    status, headers, data = signed(server.url + request["url_path"], request["body"], request["headers"])
    assert status == 200 and headers.get("smithy-protocol") == "rpc-v2-cbor"
    parsed = parsers.create_parser("smithy-rpc-v2-cbor").parse(
        {"body": data, "headers": headers, "status_code": status}, operation.output_shape)
    assert sum(p["Sum"] for p in parsed["Datapoints"]) == pytest.approx(SETS, rel=0.01)
    # ... and its errors carry the Query error code
    bad = dict(params, Period=7)
    request = serialize.create_serializer("smithy-rpc-v2-cbor").serialize_to_request(bad, operation)
    status, headers, data = signed(server.url + request["url_path"], request["body"], request["headers"])
    error = parsers.create_parser("smithy-rpc-v2-cbor").parse({"body": data, "headers": headers, "status_code": status},
                                                              operation.output_shape)["Error"]
    assert status == 400 and error["Code"] == "InvalidParameterValue" and "multiple of 60" in error["Message"]


def signed(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(Credentials("AKIDTEST", "secret"), "monitoring", "us-east-1").add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(raw, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def test_prometheus_exposition_carries_every_node(server, loaded):
    def scrape():
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
            return {family.name: family for family in text_string_to_metric_families(response.read().decode())}

    families = scrape()
    connections = families["elasticache_curr_connections"].samples
    ec = server.client()
    nodes = {(c["CacheClusterId"], c.get("ReplicationGroupId", "")) for c in ec.describe_cache_clusters()["CacheClusters"]
             if c["CacheClusterStatus"] == "available"}
    exposed = {(s.labels["cache_cluster"], s.labels["replication_group"]) for s in connections}
    assert nodes <= exposed
    roles = {s.labels["cache_cluster"]: s.labels["role"] for s in connections}
    assert roles["metrics-001"] == "primary" and roles["metrics-002"] == "replica"
    assert {s.labels["shard"] for s in connections if s.labels["replication_group"] == "metrics"} == {"0001"}
    for name in ("elasticache_get_type_cmds", "elasticache_bytes_used_for_cache", "elasticache_engine_cpu_utilization",
                 "cachefleet_api_requests", "cachefleet_sampled_nodes", "cachefleet_sampler_cpu_seconds",
                 "process_resident_memory_bytes", "process_open_fds", "cachefleet_control_plane_tasks"):
        assert name in families, name
    assert families["cachefleet_sampled_nodes"].samples[0].value >= 2
    # At least the request's own task and the control plane's loops (tests/reliability/test_api_load.py
    # counts them before and after load).
    assert families["cachefleet_control_plane_tasks"].samples[0].value >= 2


class Webhook:
    """A tiny HTTP server that records the JSON documents POSTed to it."""

    def __init__(self, status: int = 200) -> None:
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_alarm_on_connections_goes_to_alarm_and_calls_its_webhook(server):
    ec = server.client()
    cw = server.client("cloudwatch")
    ec.create_replication_group(ReplicationGroupId="alarmed", ReplicationGroupDescription="alarm", Engine="valkey",
                                CacheNodeType="cache.t4g.micro", NumCacheClusters=1)
    address = wait_group(ec, "alarmed")["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    hook = Webhook()
    opened: list[redis.Redis] = []
    try:
        common = {"Namespace": "AWS/ElastiCache", "Period": 10, "EvaluationPeriods": 1, "Statistic": "Maximum"}
        cw.put_metric_alarm(AlarmName="alarmed-connections", MetricName="CurrConnections", ComparisonOperator="GreaterThanThreshold",
                            Threshold=15, Dimensions=node_dimensions("alarmed-001"), AlarmActions=[hook.url], OKActions=[hook.url],
                            AlarmDescription="too many clients", **common)
        cw.put_metric_alarm(AlarmName="alarmed-unknown", MetricName="NoSuchMetric", ComparisonOperator="GreaterThanThreshold",
                            Threshold=1, Dimensions=node_dimensions("alarmed-001"), **common)
        alarm = cw.describe_alarms(AlarmNames=["alarmed-connections"])["MetricAlarms"][0]
        assert alarm["StateValue"] == "INSUFFICIENT_DATA" and alarm["Threshold"] == 15 and alarm["AlarmActions"] == [hook.url]

        def state(name):
            return cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]

        wait_for(lambda: state("alarmed-connections") == "OK", timeout=30, interval=0.5, what="alarm to be OK")
        for _ in range(20):
            client = redis.Redis(host=address, port=6379)
            client.ping()
            opened.append(client)
        wait_for(lambda: state("alarmed-connections") == "ALARM", timeout=30, interval=0.5, what="alarm to be ALARM")
        alarm = cw.describe_alarms(AlarmNames=["alarmed-connections"])["MetricAlarms"][0]
        assert alarm["StateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [")
        assert "was greater than the threshold (15.0)" in alarm["StateReason"]
        assert json.loads(alarm["StateReasonData"])["recentDatapoints"][0] > 15
        notice = wait_for(lambda: next((n for n in hook.received if n["NewStateValue"] == "ALARM"), None), timeout=10,
                          what="webhook call")
        assert notice["AlarmName"] == "alarmed-connections" and notice["OldStateValue"] == "OK"
        assert notice["Trigger"]["MetricName"] == "CurrConnections" and notice["AlarmDescription"] == "too many clients"
        assert {"name": "CacheClusterId", "value": "alarmed-001"} in notice["Trigger"]["Dimensions"]
        history = wait_for(lambda: [h["HistorySummary"] for h in cw.describe_alarm_history(AlarmName="alarmed-connections")[
            "AlarmHistoryItems"] if h["HistoryItemType"] == "Action"], timeout=10, what="action history")
        assert any(summary.startswith("Successfully executed action http://127.0.0.1") for summary in history)
        assert any("Alarm updated from OK to ALARM" in m for m in events_of(ec, "alarmed-001"))
        # An alarm on a metric nobody publishes is allowed, is evaluated (periods have ended since it
        # was created) and stays INSUFFICIENT_DATA, with the evaluation's reason.
        unknown = cw.describe_alarms(AlarmNames=["alarmed-unknown"])["MetricAlarms"][0]
        assert unknown["StateValue"] == "INSUFFICIENT_DATA"
        assert unknown["StateReason"] == "Insufficient Data: 1 datapoint was unknown."
        evaluated = json.loads(unknown["StateReasonData"])
        assert evaluated["recentDatapoints"] == [] and len(evaluated["evaluatedDatapoints"]) == 1
        assert "value" not in evaluated["evaluatedDatapoints"][0]
        assert [a["AlarmName"] for a in cw.describe_alarms(StateValue="ALARM", AlarmNamePrefix="alarmed-")["MetricAlarms"]] == [
            "alarmed-connections"]
        listed = cw.describe_alarms_for_metric(MetricName="CurrConnections", Namespace="AWS/ElastiCache",
                                               Dimensions=node_dimensions("alarmed-001"))["MetricAlarms"]
        assert [a["AlarmName"] for a in listed] == ["alarmed-connections"]
        # Back under the threshold: OK again, and the OK action is called.
        for client in opened:
            client.close()
        opened.clear()
        wait_for(lambda: state("alarmed-connections") == "OK", timeout=30, interval=0.5, what="alarm back to OK")
        wait_for(lambda: any(n["NewStateValue"] == "OK" and n["OldStateValue"] == "ALARM" for n in hook.received), timeout=10,
                 what="OK webhook call")
        # Actions can be turned off, and an alarm can be set by hand.
        cw.disable_alarm_actions(AlarmNames=["alarmed-connections"])
        calls = len(hook.received)
        cw.set_alarm_state(AlarmName="alarmed-connections", StateValue="ALARM", StateReason="testing by hand")
        assert state("alarmed-connections") == "ALARM"
        time.sleep(1)
        assert len(hook.received) == calls
        assert cw.describe_alarms(AlarmNames=["alarmed-connections"])["MetricAlarms"][0]["ActionsEnabled"] is False
        cw.enable_alarm_actions(AlarmNames=["alarmed-connections"])
        assert cw.describe_alarms(AlarmNames=["alarmed-connections"])["MetricAlarms"][0]["ActionsEnabled"] is True
        cw.delete_alarms(AlarmNames=["alarmed-connections", "alarmed-unknown"])
        assert cw.describe_alarms(AlarmNamePrefix="alarmed-")["MetricAlarms"] == []
    finally:
        for client in opened:
            client.close()
        hook.close()
        ec.delete_replication_group(ReplicationGroupId="alarmed")
        wait_group_gone(ec, "alarmed")


def alarm_without_data(cw, name: str, **extra) -> None:
    """An alarm on a metric nobody publishes: with TreatMissingData=ignore it keeps the state it is set to."""
    cw.put_metric_alarm(AlarmName=name, Namespace="AWS/ElastiCache", MetricName="NoSuchMetric", Statistic="Maximum",
                        Period=10, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold",
                        Dimensions=node_dimensions("nobody-001"), **extra)


def action_history(cw, name: str) -> list[str]:
    items = cw.describe_alarm_history(AlarmName=name, HistoryItemType="Action")["AlarmHistoryItems"]
    return [item["HistorySummary"] for item in items]


def test_alarm_actions_can_be_disabled_and_enabled(server):
    cw = server.client("cloudwatch")
    hook = Webhook()
    try:
        alarm_without_data(cw, "toggled", TreatMissingData="ignore", AlarmActions=[hook.url], OKActions=[hook.url])

        def enabled() -> bool:
            return cw.describe_alarms(AlarmNames=["toggled"])["MetricAlarms"][0]["ActionsEnabled"]

        assert enabled() is True
        cw.disable_alarm_actions(AlarmNames=["toggled"])
        assert enabled() is False
        cw.set_alarm_state(AlarmName="toggled", StateValue="ALARM", StateReason="while disabled")
        time.sleep(2)  # a delivery would have been made by now
        assert hook.received == [] and action_history(cw, "toggled") == []
        assert cw.describe_alarms(AlarmNames=["toggled"])["MetricAlarms"][0]["StateValue"] == "ALARM"

        cw.enable_alarm_actions(AlarmNames=["toggled"])
        assert enabled() is True
        cw.set_alarm_state(AlarmName="toggled", StateValue="OK", StateReason="while enabled")
        notice = wait_for(lambda: hook.received, timeout=10, what="webhook call")[0]
        assert (notice["AlarmName"], notice["OldStateValue"], notice["NewStateValue"]) == ("toggled", "ALARM", "OK")
        assert notice["NewStateReason"] == "while enabled"
        assert wait_for(lambda: action_history(cw, "toggled"), timeout=10, what="action history") == [
            f"Successfully executed action {hook.url}"]
        summaries = [h["HistorySummary"] for h in cw.describe_alarm_history(
            AlarmName="toggled", HistoryItemType="ConfigurationUpdate")["AlarmHistoryItems"]]
        assert 'Alarm "toggled" disabled actions' in summaries and 'Alarm "toggled" enabled actions' in summaries
    finally:
        hook.close()
        cw.delete_alarms(AlarmNames=["toggled"])


def test_failed_deliveries_are_recorded_in_the_alarm_history(server):
    cw = server.client("cloudwatch")
    refusing = Webhook(status=500)
    nobody = f"http://127.0.0.1:{free_port()}/hook"
    topic = "arn:aws:sns:us-east-1:123456789012:ops"
    try:
        alarm_without_data(cw, "undeliverable", TreatMissingData="ignore", AlarmActions=[refusing.url, nobody, topic])
        cw.set_alarm_state(AlarmName="undeliverable", StateValue="ALARM", StateReason="testing failures")
        # Three attempts each (with pauses) before a webhook delivery is given up.
        history = wait_for(lambda: len(found := action_history(cw, "undeliverable")) == 3 and found, timeout=20,
                           interval=0.5, what="three failed actions")
        by_action = {next(a for a in (refusing.url, nobody, topic) if f"action {a}." in summary): summary
                     for summary in history}
        assert by_action[refusing.url] == f"Failed to execute action {refusing.url}. Received error: HTTP 500"
        assert by_action[nobody].startswith(f"Failed to execute action {nobody}. Received error: ")
        assert by_action[nobody] != f"Failed to execute action {nobody}. Received error: "
        assert by_action[topic] == (f"Failed to execute action {topic}. Received error: Cachefleet delivers only http(s):// "
                                    "webhook actions")
        assert len(refusing.received) == 3  # retried
        assert refusing.received[0]["NewStateValue"] == "ALARM"
        items = cw.describe_alarm_history(AlarmName="undeliverable", HistoryItemType="Action")["AlarmHistoryItems"]
        assert {json.loads(item["HistoryData"])["actionState"] for item in items} == {"Failed"}
    finally:
        refusing.close()
        cw.delete_alarms(AlarmNames=["undeliverable"])


def test_insufficient_data_actions_run_when_data_stops(server):
    cw = server.client("cloudwatch")
    hook = Webhook()
    try:
        alarm_without_data(cw, "starved", InsufficientDataActions=[hook.url])
        cw.set_alarm_state(AlarmName="starved", StateValue="OK", StateReason="set by hand")
        # The next evaluation finds no datapoint: INSUFFICIENT_DATA, and its action is called.
        notice = wait_for(lambda: hook.received, timeout=25, interval=0.2, what="INSUFFICIENT_DATA action")[0]
        assert (notice["AlarmName"], notice["OldStateValue"], notice["NewStateValue"]) == ("starved", "OK", "INSUFFICIENT_DATA")
        assert notice["NewStateReason"] == "Insufficient Data: 1 datapoint was unknown."
        assert notice["InsufficientDataActions"] == [hook.url]
        alarm = cw.describe_alarms(AlarmNames=["starved"])["MetricAlarms"][0]
        assert alarm["StateValue"] == "INSUFFICIENT_DATA"
    finally:
        hook.close()
        cw.delete_alarms(AlarmNames=["starved"])
