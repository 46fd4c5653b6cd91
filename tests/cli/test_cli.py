"""The real `cachefleet` command against a live server: every command, as a user runs it."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from helpers import data_memory, engine, free_port, wait_for, wait_group, wait_group_gone

CACHEFLEET = str(Path(sys.executable).with_name("cachefleet"))


def clean_env(endpoint: str | None, home: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without AWS credentials or config of the user's."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CACHEFLEET_"))}
    clean.update(HOME=str(home), COLUMNS="200", AWS_CONFIG_FILE=str(home / "none"), AWS_SHARED_CREDENTIALS_FILE=str(home / "none"))
    if endpoint is not None:
        clean["CACHEFLEET_ENDPOINT"] = endpoint
    clean.update(env or {})
    return clean


def run(
    endpoint: str | None, *args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Runs the installed `cachefleet` with no AWS credentials or config of the user's."""
    return subprocess.run([CACHEFLEET, *args], capture_output=True, text=True, env=clean_env(endpoint, home, env),
                          timeout=timeout, stdin=subprocess.DEVNULL)


def in_terminal(endpoint: str, *args: str, home: Path, after: str, action: Callable[[], None], timeout: float = 60) -> str:
    """Runs `cachefleet` on a pseudo-terminal (as a user sees it); calls ``action`` once ``after`` is on
    the screen. Returns everything written to the terminal."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen([CACHEFLEET, *args], stdin=terminal, stdout=terminal, stderr=terminal,
                               env=clean_env(endpoint, home, {"LINES": "50"}), close_fds=True)
    os.close(terminal)
    screen = b""
    acted = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([controller], [], [], 0.2)[0]:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the command has exited and closed the terminal
                break
            if not chunk:
                break
            screen += chunk
            if not acted and after.encode() in screen:
                acted = True
                action()
        assert process.wait(timeout=10) == 0, screen.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    assert acted, screen.decode(errors="replace")
    return ANSI.sub("", screen.decode(errors="replace"))


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def gets_per_second(render: str) -> float:
    """The Gets/s cell of the first node's row in one drawing of `top`'s table."""
    row = next(line for line in render.splitlines() if "climetrics-001/0001" in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]  # Node, Role, Ops/s, Gets/s, ...
    return 0.0 if cells[3] == "-" else float(cells[3])


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done.stdout


def failed(done: subprocess.CompletedProcess[str], *fragments: str, code: int = 1) -> str:
    """A clean failure: the expected exit code, the message, and no traceback."""
    assert done.returncode == code, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    assert "Traceback" not in done.stderr + done.stdout
    for fragment in fragments:
        assert fragment in done.stderr, f"{fragment!r} not in stderr: {done.stderr}"
    return done.stderr


@pytest.fixture
def cli(server, tmp_path):
    def invoke(*args: str, **kwargs):
        return run(server.url, *args, home=tmp_path, **kwargs)

    return invoke


def test_create_show_connect_scale_events_delete(cli, ec):
    created = cli("create", "clilife", "--replicas", "1", "--wait")
    ok(created)
    assert "2/2 nodes available" in created.stderr  # the progress bar's last state
    group = ec.describe_replication_groups(ReplicationGroupId="clilife")["ReplicationGroups"][0]
    assert group["Status"] == "available"
    primary = group["NodeGroups"][0]["PrimaryEndpoint"]
    reader = group["NodeGroups"][0]["ReaderEndpoint"]
    primary_text = f"{primary['Address']}:{primary['Port']}"
    assert primary_text in created.stdout

    # ls: the group with its status and endpoint.
    listed = ok(cli("ls"))
    line = next(line for line in listed.splitlines() if "clilife" in line)
    assert "available" in line and "replication group" in line and primary_text in line
    listed_json = json.loads(ok(cli("ls", "--json")))
    assert {"id": "clilife", "status": "available", "nodes": 2, "shards": 1}.items() <= next(
        item for item in listed_json if item["id"] == "clilife"
    ).items()

    # show: shards, nodes, roles, endpoints, zones — the same as the API says.
    shown = ok(cli("show", "clilife"))
    assert f"{reader['Address']}:{reader['Port']}" in shown
    for member in group["NodeGroups"][0]["NodeGroupMembers"]:
        row = next(line for line in shown.splitlines() if member["CacheClusterId"] in line and "0001" in line)
        assert member["CurrentRole"] in row
        assert f"{member['ReadEndpoint']['Address']}:6379" in row
        assert member["PreferredAvailabilityZone"] in row
    view = json.loads(ok(cli("show", "clilife", "--json")))
    assert [(n["cache_cluster_id"], n["role"]) for n in view["nodes"]] == [("clilife-001", "primary"), ("clilife-002", "replica")]

    # The README's quick-start line: `cachefleet valkey-cli -h HOST -p PORT ...` passes every argument
    # through (-h is valkey-cli's host, not the CLI's help).
    assert ok(cli("valkey-cli", "-h", primary["Address"], "-p", str(primary["Port"]), "set", "quick", "start")).strip() == "OK"
    assert engine(primary["Address"]).get("quick") == "start"
    helped = cli("valkey-cli", "--help")
    assert "Usage: valkey-cli" in helped.stdout + helped.stderr

    # connect: valkey-cli on the primary endpoint (a write works there, and lands on the real primary).
    assert ok(cli("connect", "clilife", "set", "greeting", "hello")).strip() == "OK"
    assert engine(primary["Address"]).get("greeting") == "hello"
    assert "role:master" in ok(cli("connect", "clilife", "info", "replication"))

    # scale --replicas: up to 2, then down to 1 (IncreaseReplicaCount, or the documented fallback).
    ok(cli("scale", "clilife", "--replicas", "2", "--wait"))
    grown = wait_group(ec, "clilife")
    assert len(grown["MemberClusters"]) == 3
    new_member = next(m for m in grown["NodeGroups"][0]["NodeGroupMembers"] if m["CacheClusterId"] not in view["member_clusters"])
    assert engine(new_member["ReadEndpoint"]["Address"]).get("greeting") == "hello"  # a real, synced replica
    ok(cli("scale", "clilife", "--replicas", "1", "--wait"))
    assert len(wait_group(ec, "clilife")["MemberClusters"]) == 2

    events = ok(cli("events", "clilife"))
    assert "created and available" in events and "clilife-003" in events

    deleted = cli("delete", "clilife", "--wait")
    ok(deleted)
    assert "clilife is deleted" in deleted.stdout and "2/2 nodes removed" in deleted.stderr
    with pytest.raises(ec.exceptions.ReplicationGroupNotFoundFault):
        ec.describe_replication_groups(ReplicationGroupId="clilife")
    assert "Replication group clilife deleted" in ok(cli("events", "clilife", "--since", "10m"))
    assert "clilife" not in ok(cli("ls"))


def test_create_redis_of_a_node_type_and_events_of_everything(cli, ec):
    created = cli("create", "cliredis", "--engine", "redis", "--node-type", "cache.t4g.small", "--wait")
    ok(created)
    assert "1/1 nodes available" in created.stderr
    group = ec.describe_replication_groups(ReplicationGroupId="cliredis")["ReplicationGroups"][0]
    assert (group["Status"], group["CacheNodeType"]) == ("available", "cache.t4g.small")
    cluster = ec.describe_cache_clusters(CacheClusterId="cliredis-001")["CacheClusters"][0]
    assert (cluster["Engine"], cluster["CacheNodeType"]) == ("redis", "cache.t4g.small")
    assert cluster["EngineVersion"].startswith("7.0")
    # The node really is Redis OSS, sized as the node type (1.37 GiB, less the default 25 % reserve).
    node = engine(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"])
    server_info = node.info("server")
    assert str(server_info["redis_version"]).startswith("7.0") and "valkey_version" not in server_info
    assert int(node.config_get("maxmemory")["maxmemory"]) == data_memory("cache.t4g.small")
    node.close()
    connected = cli("connect", "cliredis", "ping")
    assert ok(connected).strip() == "PONG" and "redis-cli" in connected.stderr  # with the engine's own CLI

    # events without NAME: every source of the region, the same as DescribeEvents says.
    listed = ok(cli("events"))
    assert "Events in us-east-1" in listed
    assert next(line for line in listed.splitlines() if "cliredis" in line)
    from_api = {(e["SourceIdentifier"], e["Message"]) for e in ec.describe_events(Duration=60, MaxRecords=100)["Events"]}
    shown = {(e["source"], e["message"]) for e in json.loads(ok(cli("events", "--json")))}
    assert from_api <= shown and {"cliredis", "cliredis-001"} <= {source for source, _ in shown}
    ok(cli("delete", "cliredis", "--wait"))


def test_standalone_cluster_in_ls_show_connect_delete(cli, ec):
    ec.create_cache_cluster(CacheClusterId="clisolo", Engine="valkey", CacheNodeType="cache.t4g.micro")
    wait_for(lambda: json.loads(ok(cli("show", "clisolo", "--json")))["status"] == "available", what="clisolo available")
    line = next(line for line in ok(cli("ls")).splitlines() if "clisolo" in line)
    assert "cache cluster" in line and "available" in line
    assert ok(cli("connect", "clisolo", "ping")).strip() == "PONG"
    ok(cli("delete", "clisolo", "--wait"))
    with pytest.raises(ec.exceptions.CacheClusterNotFoundFault):
        ec.describe_cache_clusters(CacheClusterId="clisolo")


# TestFailover is limited to 15 calls a day per region: tests that fail over use a region of their own
# on the shared server, so they neither use up nor find used up another test's allowance.
FAILOVER_REGION = "eu-west-1"


def test_failover_moves_the_primary_to_the_replica(server, tmp_path):
    def cli(*args: str, **kwargs):
        return run(server.url, "--region", FAILOVER_REGION, *args, home=tmp_path, **kwargs)

    created = ok(cli("create", "clifo", "--replicas", "1", "--wait"))
    assert re.search(r"Automatic failover\s+enabled", created)  # the default with a replica
    assert "Failing over shard 0001 of clifo (TestFailover)" in ok(cli("failover", "clifo"))

    def roles():
        view = json.loads(ok(cli("show", "clifo", "--json")))
        return view["status"] == "available" and {n["cache_cluster_id"]: n["role"] for n in view["nodes"]}

    assert wait_for(lambda: roles() == {"clifo-001": "replica", "clifo-002": "primary"}, timeout=60, what="failover")
    # The primary endpoint followed: `connect` reaches the new primary and can write.
    assert "role:master" in ok(cli("connect", "clifo", "info", "replication"))
    assert ok(cli("connect", "clifo", "set", "after", "failover")).strip() == "OK"
    assert "Failover from primary node clifo-001 to replica node clifo-002 completed" in ok(cli("events", "clifo"))
    ok(cli("delete", "clifo", "--wait"))


def test_cluster_mode_create_connect_reshard(server, tmp_path):
    ec = server.client(region=FAILOVER_REGION)

    def cli(*args: str, **kwargs):
        return run(server.url, "--region", FAILOVER_REGION, *args, home=tmp_path, **kwargs)

    created = json.loads(ok(cli("create", "clicm", "--shards", "2", "--replicas", "1", "--wait", "--json")))
    assert created["cluster_mode"] and created["configuration_endpoint"]
    assert [s["id"] for s in created["shards"]] == ["0001", "0002"]
    assert all(len(s["nodes"]) == 2 for s in created["shards"])
    shown = ok(cli("show", "clicm"))
    assert "0-8191" in shown and "8192-16383" in shown and created["configuration_endpoint"] in shown

    # connect: the configuration endpoint with -c, so keys of every slot can be written.
    keys = [f"key-{i}" for i in range(12)]
    for key in keys:
        assert ok(cli("connect", "clicm", "set", key, key)).strip() == "OK"
    per_shard = [engine(s["nodes"][0]["endpoint"].split(":")[0]).dbsize() for s in created["shards"]]
    assert sum(per_shard) == len(keys) and all(per_shard), per_shard  # the keys landed on both shards

    failed(cli("failover", "clicm"), "clicm has 2 shards (0001, 0002): choose one with --shard")
    assert "Failing over shard 0002 of clicm" in ok(cli("failover", "clicm", "--shard", "0002"))
    wait_group(ec, "clicm", timeout=60)

    ok(cli("scale", "clicm", "--shards", "3", "--wait"))
    group = wait_group(ec, "clicm", timeout=120)
    assert len(group["NodeGroups"]) == 3
    for key in keys:  # every key still there, wherever its slot went
        assert ok(cli("connect", "clicm", "get", key)).strip() == key
    ok(cli("delete", "clicm", "--wait"))


def test_refusals_print_the_api_message(cli, ec):
    """A single-node group cannot fail over and cluster mode disabled cannot reshard: each prints
    the server's message and exits 1."""
    ok(cli("create", "cliblocked", "--wait"))
    failed(cli("failover", "cliblocked"), "does not have automatic failover enabled", "(InvalidReplicationGroupState)")
    failed(cli("scale", "cliblocked", "--shards", "2"), "cluster mode disabled", "(InvalidParameterCombination)")
    failed(cli("create", "clibad", "--replicas", "0", "--multi-az"), "(InvalidParameterCombination)")
    failed(cli("metrics", "nosuchgroup", "CPUUtilization"), "No replication group or cache cluster named nosuchgroup")
    ok(cli("delete", "cliblocked", "--wait"))


def test_upgrade_now_with_progress_and_in_the_maintenance_window(cli, ec):
    """`cachefleet upgrade`: a 2-node group moves to Valkey 9.1 (its nodes' builds show the progress),
    an upgrade left for the window shows as pending, and a downgrade is refused with the server's words."""
    ok(cli("create", "cliupg", "--engine-version", "8.1", "--replicas", "1", "--wait"))
    endpoint = json.loads(ok(cli("show", "cliupg", "--json")))["shards"][0]["primary_endpoint"].split(":")[0]
    engine(endpoint).set("kept", "yes")
    done = cli("upgrade", "cliupg", "--engine-version", "9.1", "--wait")
    assert "Upgrading cliupg to valkey 9.1" in ok(done)
    assert "2/2 nodes on 9.1." in done.stderr  # the progress bar's last state
    view = json.loads(ok(cli("show", "cliupg", "--json")))
    assert {n["engine_version"] for n in view["nodes"]} == {view["engine_version"]} and view["upgrade"] is None
    assert view["engine_version"].startswith("9.1.") and engine(endpoint).get("kept") == "yes"
    failed(cli("upgrade", "cliupg", "--engine-version", "8.1"), "cannot downgrade", "(InvalidParameterCombination)")
    ok(cli("create", "cliwin", "--engine-version", "8.1", "--wait"))
    assert "waits for its maintenance window" in ok(cli("upgrade", "cliwin", "--engine-version", "9.1",
                                                        "--in-maintenance-window"))
    shown = ok(cli("show", "cliwin"))
    assert "Engine upgrade" in shown and "waiting for the maintenance window" in shown and "→ 9.1." in shown
    ok(cli("delete", "cliupg", "--wait"))
    ok(cli("delete", "cliwin", "--wait"))


def test_params_list_show_set_reset(cli, ec):
    """`cachefleet params`: a group's parameters set and reset on a cluster that uses it, for real."""
    ok(cli("params", "create", "cli-params", "--family", "valkey8"))
    ec.create_cache_cluster(CacheClusterId="cliparams", Engine="valkey", EngineVersion="8.1", CacheNodeType="cache.t4g.micro",
                            CacheParameterGroupName="cli-params")
    cluster = wait_for(lambda: [c for c in ec.describe_cache_clusters(CacheClusterId="cliparams", ShowCacheNodeInfo=True)[
        "CacheClusters"] if c["CacheClusterStatus"] == "available"], what="cliparams available")[0]
    node = engine(cluster["CacheNodes"][0]["Endpoint"]["Address"])
    done = cli("params", "set", "cli-params", "maxmemory-policy=allkeys-lru", "timeout=300", "--wait")
    assert "Set 2 parameter(s) of cli-params." in ok(done) + done.stderr and "1 of 1 cluster(s) in sync." in done.stderr
    assert node.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
    assert node.config_get("timeout")["timeout"] == "300"
    shown = ok(cli("params", "show", "cli-params", "--user"))
    assert re.search(r"maxmemory-policy\s+│\s+allkeys-lru\s+│\s+user\s+│\s+immediate", shown), shown
    assert "cliparams" in shown and "in-sync" in shown and "databases" not in shown
    listed = ok(cli("params", "list"))
    assert "cli-params" in listed and "default.valkey8.cluster.on" in listed
    assert re.search(r"Parameter group +cli-params\b", ok(cli("show", "cliparams")))
    failed(cli("params", "set", "cli-params", "maxmemory-policy=lru"), "allkeys-lru", "(InvalidParameterValue)")
    failed(cli("params", "set", "cli-params", "timeout"), "NAME=VALUE", code=2)
    ok(cli("params", "reset", "cli-params", "timeout", "--wait"))
    assert node.config_get("timeout")["timeout"] == "0"
    assert node.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
    failed(cli("params", "delete", "cli-params"), "in use by cache cluster(s) cliparams", "(InvalidCacheParameterGroupState)")
    ec.delete_cache_cluster(CacheClusterId="cliparams")
    ec.get_waiter("cache_cluster_deleted").wait(CacheClusterId="cliparams", WaiterConfig={"Delay": 1})
    ok(cli("params", "delete", "cli-params"))
    failed(cli("params", "show", "cli-params"), "CacheParameterGroup not found: cli-params")


def test_metrics_and_top_show_real_data(cli, ec, server, tmp_path):
    """A known load of GETs shows up in `metrics` (CloudWatch Sum) and in `top`."""
    import json as jsonlib

    ok(cli("create", "climetrics", "--wait"))
    group = wait_group(ec, "climetrics")
    address = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    node = redis.Redis(host=address)
    node.set("k", "v")
    for _ in range(300):
        node.get("k")
    time.sleep(3)  # a few sampling ticks

    def total_gets():
        shown = jsonlib.loads(ok(cli("metrics", "climetrics", "GetTypeCmds", "--stat", "Sum", "--since", "5m",
                                     "--period", "60", "--json")))
        return sum(value for values in shown["series"].values() for _, value in values)

    deadline = time.monotonic() + 30
    while total_gets() < 300 and time.monotonic() < deadline:
        time.sleep(1)
    assert 300 <= total_gets() <= 310  # the GETs above (and nothing much else)
    table = ok(cli("top", "climetrics", "--iterations", "1", "--interval", "1"))
    assert "climetrics-001" in table
    # A misspelt metric is named as unknown, with the closest names; not "No data points".
    refused = failed(cli("metrics", "climetrics", "CurrConection"), "climetrics has no metric 'CurrConection'",
                     "Did you mean 'CurrConnections'", code=2)
    assert "No data points" not in refused

    # top in a terminal redraws the table with fresh figures: idle at first, then under a load started
    # once the first table is on the screen.
    stop = threading.Event()

    def load() -> None:
        client = redis.Redis(host=address)
        while not stop.is_set():
            pipe = client.pipeline(transaction=False)
            for _ in range(200):
                pipe.get("k")
            pipe.execute()
        client.close()

    loader = threading.Thread(target=load, daemon=True)
    try:
        screen = in_terminal(server.url, "top", "climetrics", "--iterations", "2", "--interval", "3", home=tmp_path,
                             after="every node, last 1 s", action=loader.start)
    finally:
        stop.set()
        if loader.is_alive():
            loader.join(timeout=10)
    node.close()
    renders = [gets_per_second(part) for part in screen.split("every node, last 1 s")[1:]]
    assert len(renders) >= 2, screen  # drawn, then redrawn in place
    assert renders[0] < 50 and renders[-1] > 500, renders
    ok(cli("delete", "climetrics", "--wait"))


def test_errors_are_messages_with_nonzero_exit(cli, server, tmp_path):
    failed(cli("show", "nosuchgroup"), "No replication group or cache cluster named nosuchgroup")
    failed(cli("create", "bad_name!"), "(InvalidParameterValue)")
    failed(cli("scale", "nosuchgroup", "--replicas", "1"), "No replication group")
    failed(cli("delete", "nosuchgroup", "--yes"), "nosuchgroup")
    failed(cli("scale", "x"), "exactly one of --shards N or --replicas R", code=2)
    # Typos get a suggestion.
    failed(cli("shw", "x"), "No such command 'shw'", "Did you mean 'show'", code=2)
    failed(cli("create", "x", "--replica", "1"), "Did you mean '--replicas'", code=2)
    failed(cli("events", "--since", "ten minutes"), "use a number with s, m, h or d", code=2)
    # Nobody listening there.
    nowhere = f"http://127.0.0.1:{free_port()}"
    failed(run(nowhere, "ls", home=tmp_path), f"Cannot reach Cachefleet at {nowhere}")
    failed(run(None, "--endpoint-url", nowhere, "ls", home=tmp_path), f"Cannot reach Cachefleet at {nowhere}")
    # --region reaches another region's (empty) inventory.
    assert "No replication groups or cache clusters in eu-west-3" in ok(cli("--region", "eu-west-3", "ls"))


def test_configured_credentials_are_used_as_they_are(make_server, tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text("[ops]\naws_access_key_id = AKIDOPS\naws_secret_access_key = ops-secret\n")
    checked = make_server("--credentials-file", str(credentials))
    right = {"AWS_ACCESS_KEY_ID": "AKIDOPS", "AWS_SECRET_ACCESS_KEY": "ops-secret"}
    assert "No replication groups" in ok(run(checked.url, "ls", home=tmp_path, env=right))
    wrong = {"AWS_ACCESS_KEY_ID": "AKIDOPS", "AWS_SECRET_ACCESS_KEY": "not-it"}
    failed(run(checked.url, "ls", home=tmp_path, env=wrong), "(SignatureDoesNotMatch)")
    # Without configured credentials the CLI signs with dummy keys, which a checking server refuses.
    failed(run(checked.url, "ls", home=tmp_path), "(InvalidClientTokenId)")
    # A profile in the shared credentials file is used too.
    profile = {"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_PROFILE": "ops"}
    assert "No replication groups" in ok(run(checked.url, "ls", home=tmp_path, env=profile))


def test_users_ca_cert_and_connect_to_a_locked_group(cli, ec, server, tmp_path):
    """`user create/modify/delete` and `users` (passwords never on the command line or in the output),
    `ca-cert`, and `connect` to a TLS group with an AUTH token: redis-cli with --tls --cacert, the token
    asked for (--askpass), never on the command line."""
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/cachefleet/ca.pem", timeout=10) as response:
        assert ok(cli("ca-cert")) == response.read().decode()

    password = "cli-user-password-0123"
    made = cli("user", "create", "cli-app", "--name", "cli-app", "--access", "on ~cli:* +get",
               env={"CACHEFLEET_USER_PASSWORDS": password})
    assert "Created user cli-app (cli-app, password): active." in ok(made)
    listed = ok(cli("users"))
    assert "cli-app" in listed and "on ~cli:* +get" in listed and "password (1)" in listed and password not in listed
    shown = {u["id"]: u for u in json.loads(ok(cli("users", "--json")))}
    assert shown["cli-app"]["passwords"] == 1 and shown["default"]["authentication"] == "no-password"
    assert "Modifying user cli-app" in ok(cli("user", "modify", "cli-app", "--append", "+set"))
    wait_for(lambda: ec.describe_users(UserId="cli-app")["Users"][0]["Status"] == "active", timeout=10, what="active")
    assert ec.describe_users(UserId="cli-app")["Users"][0]["AccessString"] == "on ~cli:* +get +set"
    ok(cli("user", "delete", "cli-app"))
    failed(cli("user", "delete", "default"), "built-in default user", "(InvalidParameterValue)")

    token = "Cli-Token-0123456789ab"
    ec.create_replication_group(ReplicationGroupId="clilocked", ReplicationGroupDescription="x", Engine="redis",
                                CacheNodeType="cache.t4g.micro", NumCacheClusters=1, TransitEncryptionEnabled=True,
                                AuthToken=token)
    try:
        wait_group(ec, "clilocked")
        shown = ok(cli("show", "clilocked"))
        assert "required (TLS only)" in shown and "AUTH token" in shown and token not in shown
        connected = subprocess.run([CACHEFLEET, "connect", "clilocked", "ping"], input=token + "\n", capture_output=True,
                                   text=True, env=clean_env(server.url, tmp_path), timeout=60)
        assert ok(connected).strip().endswith("PONG"), connected.stderr
        line = connected.stderr.strip().splitlines()[0]
        assert "redis-cli" in line and "--tls --cacert" in line and "--askpass" in line and token not in line
        anonymous = subprocess.run([CACHEFLEET, "connect", "clilocked", "ping"], input="\n", capture_output=True,
                                   text=True, env=clean_env(server.url, tmp_path), timeout=60)
        assert "NOAUTH" in anonymous.stdout + anonymous.stderr or "AUTH failed" in anonymous.stdout + anonymous.stderr
    finally:
        ec.delete_replication_group(ReplicationGroupId="clilocked")


def test_snapshot_snapshots_and_restore_into_shards(cli, ec):
    ok(cli("create", "clisnap", "--wait"))
    primary = ec.describe_replication_groups(ReplicationGroupId="clisnap")["ReplicationGroups"][0]["NodeGroups"][0]
    node = engine(primary["PrimaryEndpoint"]["Address"])
    node.mset({f"cli:{n}": n for n in range(500)})
    taken = ok(cli("snapshot", "clisnap", "--name", "clisnap-one", "--wait"))
    assert "Snapshot clisnap-one of clisnap: available" in taken
    listed = ok(cli("snapshots", "clisnap"))
    row = next(line for line in listed.splitlines() if "clisnap-one" in line)
    assert "available" in row and "manual" in row and "valkey" in row
    assert "clisnap-one" in [s["name"] for s in json.loads(ok(cli("snapshots", "--json")))]
    restored = cli("restore", "clisnap-one", "clisnap-two", "--shards", "2", "--wait")
    ok(restored)
    assert "Restoring clisnap-one into clisnap-two" in restored.stderr and "2/2 nodes available" in restored.stderr
    group = ec.describe_replication_groups(ReplicationGroupId="clisnap-two")["ReplicationGroups"][0]
    assert group["ClusterEnabled"] and len(group["NodeGroups"]) == 2
    assert sum(engine(m["ReadEndpoint"]["Address"]).dbsize() for ng in group["NodeGroups"]
               for m in ng["NodeGroupMembers"]) == 500
    failed(cli("restore", "no-such-snapshot", "clisnap-three"), "SnapshotNotFoundFault")
    ok(cli("delete", "clisnap-two", "--yes", "--wait"))
    ok(cli("delete", "clisnap", "--yes", "--wait"))
    ec.delete_snapshot(SnapshotName="clisnap-one")


def test_serverless_create_ls_show_delete(cli, ec):
    created = ok(cli("serverless", "create", "cli-sl", "--max-data", "3", "--wait"))
    endpoint = ec.describe_serverless_caches(ServerlessCacheName="cli-sl")["ServerlessCaches"][0]["Endpoint"]
    assert "cli-sl is available in" in created and f"{endpoint['Address']}:6379" in created
    listed = ok(cli("serverless", "ls"))
    assert "cli-sl" in listed and "available" in listed and "0-3 GB" in listed
    shown = ok(cli("serverless", "show", "cli-sl"))
    assert "arn:aws:elasticache:us-east-1:000000000000:serverlesscache:cli-sl" in shown
    assert "is deleted" in ok(cli("serverless", "delete", "cli-sl", "--wait", "--yes"))
    assert not ec.describe_serverless_caches()["ServerlessCaches"] or "cli-sl" not in str(ec.describe_serverless_caches())


def test_migrate_test_start_complete_status_say_what_fails(cli, ec):
    ec.create_replication_group(ReplicationGroupId="climig", ReplicationGroupDescription="target", Engine="valkey",
                                CacheNodeType="cache.t4g.micro", NumCacheClusters=2, AutomaticFailoverEnabled=True,
                                MultiAZEnabled=True)
    wait_group(ec, "climig")
    failed(cli("migrate", "test", "climig", "127.0.0.1:1"), "Test Migration failed for climig: the source 127.0.0.1:1 "
           "is not reachable")
    failed(cli("migrate", "complete", "climig"), "is not under migration")
    failed(cli("migrate", "start", "climig", "no-port"), "HOST:PORT", code=2)
    assert "Migrating climig from 127.0.0.1:1 (migrating)" in ok(cli("migrate", "start", "climig", "127.0.0.1:1"))
    wait_group(ec, "climig")  # a few tries, then available again
    status = ok(cli("migrate", "status", "climig"))
    assert "climig: available" in status and "Start Migration failed for climig" in status, status
    ec.delete_replication_group(ReplicationGroupId="climig")


def test_global_create_ls_show_failover_disassociate_delete(cli, server):
    east, west = server.client(region="us-east-1"), server.client(region="us-west-2")
    settings = {"Engine": "valkey", "CacheNodeType": "cache.r6g.large", "NumCacheClusters": 1}
    east.create_replication_group(ReplicationGroupId="gdcli-east", ReplicationGroupDescription="primary", **settings)
    wait_group(east, "gdcli-east")
    failed(cli("global", "create", "clis", "--primary", "gdcli-nowhere"), "gdcli-nowhere")
    created = json.loads(ok(cli("global", "create", "clis", "--primary", "gdcli-east", "--description", "cli", "-o", "json")))
    global_id = created["GlobalReplicationGroupId"]
    assert global_id.endswith("-clis") and created["Status"] == "primary-only"
    west.create_replication_group(ReplicationGroupId="gdcli-west", ReplicationGroupDescription="secondary",
                                  GlobalReplicationGroupId=global_id, NumCacheClusters=1)
    wait_group(west, "gdcli-west")

    listed = ok(cli("global", "ls"))
    row = next(line for line in listed.splitlines() if global_id in line)
    assert "available" in row and "us-east-1/gdcli-east" in row and "us-west-2/gdcli-west" in row, listed
    shown = ok(cli("global", "show", global_id))
    assert f"arn:aws:elasticache::000000000000:globalreplicationgroup:{global_id}" in shown
    primary_row = next(line for line in shown.splitlines() if "gdcli-east" in line)
    secondary_row = next(line for line in shown.splitlines() if "gdcli-west" in line)
    assert "PRIMARY" in primary_row and "us-east-1" in primary_row and "SECONDARY" in secondary_row, shown
    as_json = json.loads(ok(cli("global", "show", global_id, "--json")))
    assert {m["ReplicationGroupRegion"]: m["Role"] for m in as_json["Members"]} == {
        "us-east-1": "PRIMARY", "us-west-2": "SECONDARY"}

    failed(cli("global", "failover", global_id, "--region", "us-west-2", "--group", "gdcli-other"), "gdcli-other")
    moved = ok(cli("global", "failover", global_id, "--region", "us-west-2", "--group", "gdcli-west", "--wait"))
    assert f"us-west-2/gdcli-west is the primary of {global_id}" in moved, moved
    record = east.describe_global_replication_groups(GlobalReplicationGroupId=global_id, ShowMemberInfo=True)[
        "GlobalReplicationGroups"][0]
    assert record["Status"] == "available"
    assert {m["ReplicationGroupRegion"]: m["Role"] for m in record["Members"]} == {
        "us-east-1": "SECONDARY", "us-west-2": "PRIMARY"}
    west_endpoint = wait_group(west, "gdcli-west")["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    east_endpoint = wait_group(east, "gdcli-east")["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    engine(west_endpoint).set("from-the-west", "1")
    wait_for(lambda: engine(east_endpoint).get("from-the-west") == "1", timeout=5, what="us-east-1 following us-west-2")

    failed(cli("global", "delete", global_id, "--yes"), "InvalidGlobalReplicationGroupState")
    left = ok(cli("global", "disassociate", global_id, "--region", "us-east-1", "--group", "gdcli-east"))
    assert f"Disassociating us-east-1/gdcli-east from {global_id}" in left, left
    wait_for(lambda: "GlobalReplicationGroupInfo" not in wait_group(east, "gdcli-east"), timeout=10,
             what="gdcli-east standalone")
    deleted = ok(cli("global", "delete", global_id, "--yes"))
    assert f"Deleting global datastore {global_id}" in deleted and "the primary group is kept" in deleted, deleted
    wait_for(lambda: global_id not in ok(cli("global", "ls", "-o", "json")), timeout=10, what=f"{global_id} gone")
    assert "GlobalReplicationGroupInfo" not in wait_group(west, "gdcli-west")
    east.delete_replication_group(ReplicationGroupId="gdcli-east")
    west.delete_replication_group(ReplicationGroupId="gdcli-west")
    wait_group_gone(east, "gdcli-east")
    wait_group_gone(west, "gdcli-west")
