"""Slow log and engine log delivery (LogDeliveryConfigurations), read back with `cachefleet logs` and the AWS CLI."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

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


def test_follow_prints_new_entries_as_they_are_delivered(server, logged):
    env = {**os.environ, "CACHEFLEET_ENDPOINT": server.url, "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "PYTHONUNBUFFERED": "1"}
    following = subprocess.Popen([*CACHEFLEET, "logs", "logged", "--slow", "--follow", "--since", "10m"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in following.stdout], daemon=True)
    reader.start()

    def next_line(fragment: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                assert following.poll() is None, following.stderr.read()
                continue
            if fragment in line:
                return line
        raise TimeoutError(f"no line with {fragment!r} within {timeout} s")

    try:
        old = json.loads(next_line("EVAL ... (2 more arguments)", 20).split("  ", 1)[1])  # what was there already
        client = redis.Redis(host=logged["NodeGroups"][0]["PrimaryEndpoint"]["Address"], port=6379)
        client.eval(SLOW_SCRIPT, 0, "followed")
        client.close()
        new = json.loads(next_line("EVAL ... (3 more arguments)", 15).split("  ", 1)[1])
        assert new["Id"] > old["Id"] and new["CacheClusterId"] == "logged-001"
        assert following.poll() is None  # still following
    finally:
        following.terminate()
        try:
            following.wait(timeout=10)
        except subprocess.TimeoutExpired:
            following.kill()
            following.wait()
        reader.join(timeout=5)
        following.stdout.close()
        following.stderr.close()


def _background_save(client: redis.Redis, engine_log: Path) -> str:
    """BGSAVE, and the engine's own log line saying it started (unique: it carries the child's pid)."""
    def started() -> list[str]:
        return [line.split(" * ", 1)[1] for line in engine_log.read_text().splitlines() if "Background saving started" in line]

    def finished() -> int:
        return engine_log.read_text().count("Background saving terminated")

    before, done = started(), finished()
    client.bgsave()
    wait_for(lambda: finished() > done, timeout=10, what="background save")
    (line,) = [line for line in started() if line not in before]
    return line


def test_modify_changes_what_is_delivered_and_how(server, logged):
    ec = server.client()
    primary = redis.Redis(host=logged["NodeGroups"][0]["PrimaryEndpoint"]["Address"], port=6379)
    member = next(m for m in logged["NodeGroups"][0]["NodeGroupMembers"] if m["CacheClusterId"] == "logged-001")
    key = member["ReadEndpoint"]["Address"]  # the node's own address names its directory
    engine_log = server.data_dir / "nodes" / key / "engine.log"
    delivered = server.data_dir / "logs" / "cloudwatch-logs" / "us-east-1"
    slow_file = delivered / quote("/cachefleet/logged/slow", safe="") / "logged-001-0001-slow-log.log"
    engine_file = delivered / quote("/cachefleet/logged/engine", safe="") / "logged-001-0001-engine-log.log"

    def noticed(what: str) -> None:
        # The deliverer takes a configuration change at its next tick and says so in the server's log.
        wait_for(lambda: f"log delivery of {key}: {what} from now on" in server.log(), timeout=10, what=f"{what} turned on")

    # 1. engine-log off, slow-log as text.
    group = ec.modify_replication_group(
        ReplicationGroupId="logged", ApplyImmediately=True,
        LogDeliveryConfigurations=[{"LogType": "engine-log", "Enabled": False},
                                   {"LogType": "slow-log", "LogFormat": "text"}],
    )["ReplicationGroup"]
    assert [(d["LogType"], d["LogFormat"]) for d in group["LogDeliveryConfigurations"]] == [("slow-log", "text")]
    done = logs_cli(server, "logged")
    assert done.returncode != 0 and "does not deliver its engine-log" in done.stderr
    saved_while_off = _background_save(primary, engine_log)
    primary.eval(SLOW_SCRIPT, 0, "a", "b")
    line = wait_for(lambda: next((x for x in slow_file.read_text().splitlines() if "(4 more arguments)" in x), None),
                    timeout=15, what="a slow-log line as text")
    message = line.split("\t", 1)[1]
    assert message.startswith("logged-001,0001,") and ",EVAL ... (4 more arguments)," in message
    with pytest.raises(ValueError):
        json.loads(message)
    assert json.loads(slow_file.read_text().splitlines()[0].split("\t", 1)[1])["Command"]  # the lines before stay JSON
    time.sleep(1.5)  # another round of delivery
    assert saved_while_off not in engine_file.read_text()

    # 2. slow-log off, engine-log on again: new engine lines only, nothing from while it was off.
    ec.modify_replication_group(
        ReplicationGroupId="logged", ApplyImmediately=True,
        LogDeliveryConfigurations=[{"LogType": "slow-log", "Enabled": False},
                                   cloudwatch_logs("/cachefleet/logged/engine", log_type="engine-log", log_format="text")],
    )
    noticed("engine-log")
    primary.eval(SLOW_SCRIPT, 0, "c", "d", "e")
    saved_while_on = _background_save(primary, engine_log)
    wait_for(lambda: saved_while_on in engine_file.read_text(), timeout=15, what="engine-log delivered again")
    assert saved_while_off not in engine_file.read_text()
    time.sleep(1.5)
    assert "(5 more arguments)" not in slow_file.read_text()

    # 3. slow-log on again, to a Firehose delivery stream, as JSON: new entries only.
    group = ec.modify_replication_group(
        ReplicationGroupId="logged", ApplyImmediately=True,
        LogDeliveryConfigurations=[{"LogType": "slow-log", "DestinationType": "kinesis-firehose", "LogFormat": "json",
                                    "DestinationDetails": {"KinesisFirehoseDetails": {"DeliveryStream": "logged-slow"}}}],
    )["ReplicationGroup"]
    assert {d["LogType"]: d["DestinationType"] for d in group["LogDeliveryConfigurations"]} == {
        "slow-log": "kinesis-firehose", "engine-log": "cloudwatch-logs"}
    noticed("slow-log")
    primary.eval(SLOW_SCRIPT, 0, "f")
    firehose = server.data_dir / "logs" / "kinesis-firehose" / "us-east-1" / "logged-slow.log"
    records = wait_for(lambda: firehose.exists() and [json.loads(x) for x in firehose.read_text().splitlines()], timeout=15,
                       what="a record in the Firehose file")
    assert [r["Command"] for r in records] == ["EVAL ... (3 more arguments)"]  # not the one run while it was off
    assert (records[0]["CacheClusterId"], records[0]["CacheNodeId"]) == ("logged-001", "0001")
    assert records[0]["Duration (us)"] >= 10_000
    done = logs_cli(server, "logged", "--slow")
    assert done.returncode != 0 and "kinesis-firehose/us-east-1/logged-slow.log" in done.stderr
    primary.close()


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
