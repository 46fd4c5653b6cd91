"""Slow log and engine log delivery (LogDeliveryConfigurations), read back with `cachefleet logs` and the AWS CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from botocore.exceptions import ClientError

from helpers import CACHEFLEET, ROOT, wait_for, wait_group, wait_group_gone

AWS = str(Path(sys.executable).with_name("aws"))
SLOW_SCRIPT = "local i = 0 while i < 4000000 do i = i + 1 end return i"  # ~30-60 ms: over the 10 ms threshold


def cloudwatch_logs(group: str, *, log_type: str = "slow-log", log_format: str = "json") -> dict:
    return {"LogType": log_type, "DestinationType": "cloudwatch-logs", "LogFormat": log_format,
            "DestinationDetails": {"CloudWatchLogsDetails": {"LogGroup": group}}}


def logs_cli(server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CACHEFLEET_ENDPOINT": server.url, "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(name, None)  # works without credentials against a loopback server
    return subprocess.run([*CACHEFLEET, "logs", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


@pytest.fixture(scope="module")
def logged(server):
    ec = server.client()
    ec.create_replication_group(
        ReplicationGroupId="logged", ReplicationGroupDescription="logs", Engine="valkey", CacheNodeType="cache.t4g.micro",
        NumCacheClusters=2,
        LogDeliveryConfigurations=[cloudwatch_logs("/cachefleet/logged/slow"),
                                   cloudwatch_logs("/cachefleet/logged/engine", log_type="engine-log", log_format="text")],
    )
    group = wait_group(ec, "logged")
    client = redis.Redis(host=group["NodeGroups"][0]["PrimaryEndpoint"]["Address"], port=6379)
    client.eval(SLOW_SCRIPT, 0)
    client.set("secret-key", "secret-value")
    client.close()
    yield group
    ec.delete_replication_group(ReplicationGroupId="logged")
    wait_group_gone(ec, "logged")


def test_describe_shows_the_delivery_configurations(server, logged):
    shown = {d["LogType"]: d for d in logged["LogDeliveryConfigurations"]}
    assert shown["slow-log"] == {**cloudwatch_logs("/cachefleet/logged/slow"), "Status": "active"}
    assert shown["engine-log"]["LogFormat"] == "text"
    cluster = server.client().describe_cache_clusters(CacheClusterId="logged-002")["CacheClusters"][0]
    assert cluster["ReplicationGroupLogDeliveryEnabled"] is True
    assert {d["LogType"] for d in cluster["LogDeliveryConfigurations"]} == {"slow-log", "engine-log"}


def test_slow_log_entries_are_delivered_masked(server, logged):
    done = wait_for(lambda: (r := logs_cli(server, "logged", "--slow")).returncode == 0 and "EVAL" in r.stdout and r,
                    timeout=15, interval=0.5, what="slow log delivery")
    line = next(line for line in done.stdout.splitlines() if "EVAL" in line)
    record = json.loads(line.split("  ", 1)[1])
    assert record["CacheClusterId"] == "logged-001" and record["CacheNodeId"] == "0001"
    assert record["Command"] == "EVAL ... (2 more arguments)"  # the script itself is not exposed
    assert record["Duration (us)"] >= 10_000
    assert "secret" not in done.stdout


def test_engine_log_lines_are_delivered_as_text(server, logged):
    done = wait_for(lambda: (r := logs_cli(server, "logged")).returncode == 0 and "Ready to accept connections" in r.stdout and r,
                    timeout=15, interval=0.5, what="engine log delivery")
    assert "logged-001-0001" in done.stdout and "logged-002-0001" in done.stdout
    assert "logged-001,0001,NOTICE,M," in done.stdout  # text format: cluster, node, level, role, time, message
    assert "logged-002,0001,NOTICE,S," in done.stdout  # the replica's lines carry its role


def test_aws_cli_reads_the_log_group(server, logged):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    done = wait_for(lambda: (r := subprocess.run(
        [AWS, "logs", "filter-log-events", "--log-group-name", "/cachefleet/logged/slow", "--endpoint-url", server.url],
        capture_output=True, text=True, env=env, timeout=60)).returncode == 0 and json.loads(r.stdout)["events"] and r,
        timeout=15, interval=0.5, what="aws logs filter-log-events")
    events = json.loads(done.stdout)["events"]
    assert events[0]["logStreamName"] == "logged-001-0001-slow-log"
    done = subprocess.run([AWS, "logs", "describe-log-streams", "--log-group-name", "/nope", "--endpoint-url", server.url],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode != 0 and "ResourceNotFoundException" in done.stderr


def test_modify_disables_and_changes_delivery(server, logged):
    ec = server.client()
    group = ec.modify_replication_group(
        ReplicationGroupId="logged", ApplyImmediately=True,
        LogDeliveryConfigurations=[{"LogType": "engine-log", "Enabled": False},
                                   {"LogType": "slow-log", "LogFormat": "text"}],
    )["ReplicationGroup"]
    assert [(d["LogType"], d["LogFormat"]) for d in group["LogDeliveryConfigurations"]] == [("slow-log", "text")]
    done = logs_cli(server, "logged")
    assert done.returncode != 0 and "does not deliver its engine-log" in done.stderr


def test_logs_command_errors(server):
    done = logs_cli(server, "no-such-group")
    assert done.returncode != 0 and "ReplicationGroupNotFoundFault" in done.stderr and "Traceback" not in done.stderr
    done = logs_cli(server, "x", "--since", "soon")
    assert done.returncode != 0 and "30s, 15m, 2h or 1d" in done.stderr


@pytest.mark.parametrize(
    ("configurations", "code", "says"),
    [
        ([cloudwatch_logs("g"), cloudwatch_logs("h")], "InvalidParameterCombination", "configured twice"),
        ([{"LogType": "slow-log", "DestinationType": "cloudwatch-logs", "LogFormat": "json"}], "InvalidParameterValue",
         "CloudWatchLogsDetails.LogGroup"),
        ([{"LogType": "slow-log", "DestinationType": "kinesis-firehose", "LogFormat": "json",
           "DestinationDetails": {"KinesisFirehoseDetails": {"DeliveryStream": "bad stream!"}}}], "InvalidParameterValue",
         "DeliveryStream"),
        ([{"LogType": "slow-log", "LogFormat": "json"}], "InvalidParameterValue", "DestinationType"),
        ([{"LogType": "audit-log", "DestinationType": "cloudwatch-logs", "LogFormat": "json"}], "InvalidParameterValue",
         "slow-log, engine-log"),
    ],
)
def test_bad_log_delivery_configurations_are_refused(server, configurations, code, says):
    ec = server.client()
    with pytest.raises(ClientError) as caught:
        ec.create_replication_group(ReplicationGroupId="badlogs", ReplicationGroupDescription="d", Engine="valkey",
                                    CacheNodeType="cache.t4g.micro", LogDeliveryConfigurations=configurations)
    assert caught.value.response["Error"]["Code"] == code
    assert says in caught.value.response["Error"]["Message"]
    with pytest.raises(ec.exceptions.ReplicationGroupNotFoundFault):
        ec.describe_replication_groups(ReplicationGroupId="badlogs")
