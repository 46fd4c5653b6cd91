"""The control plane can stop, crash and come back without disturbing the cache nodes."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from helpers import (
    CACHEFLEET,
    ROOT,
    engine,
    engine_pids,
    engine_processes,
    events_of,
    free_port,
    node_addresses,
    wait_event,
    wait_for,
    wait_group,
    wait_group_gone,
    write_replicated,
)

SPEC = {"ReplicationGroupDescription": "d", "Engine": "valkey", "CacheNodeType": "cache.t4g.micro", "NumCacheClusters": 3}


def _addresses(ec, group_id):
    members = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]["MemberClusters"]
    return set(node_addresses(ec, members).values())


def _group_processes(server, addresses):
    """(address, pid) of every engine process at these addresses; duplicates would show twice."""
    return [(key, pid) for key, pid in engine_processes(server.data_dir) if key in addresses]


def test_restart_adopts_running_nodes_without_restarting_them(make_server):
    server = make_server()
    ec = server.client()
    ec.create_replication_group(ReplicationGroupId="adopt", **SPEC)
    group = wait_group(ec, "adopt")
    primary = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    reader = group["NodeGroups"][0]["ReaderEndpoint"]["Address"]
    write_replicated(primary, "before", "restart", 2)
    addresses = _addresses(ec, "adopt")
    before = _group_processes(server, addresses)
    assert len(before) == 3

    assert server.stop(signal.SIGTERM) == 0
    # With the control plane down, the nodes still serve on every address.
    assert _group_processes(server, addresses) == before
    engine(primary).set("while", "down")
    assert engine(reader).get("before") == "restart"

    server.start()
    ec = server.client()
    group = wait_group(ec, "adopt")
    assert _group_processes(server, addresses) == before  # same processes: adopted, not restarted
    assert engine(primary).get("while") == "down"
    assert engine(reader).get("before") == "restart"
    assert not any("restarted" in m for m in events_of(ec, "adopt-001") + events_of(ec, "adopt-002"))
    # Ctrl-C (SIGINT) stops the control plane just as cleanly, nodes untouched; its banner said
    # where the API is and how to point the AWS CLI at it.
    banner = server.log()
    assert f"serving the ElastiCache API on {server.url}" in banner
    assert f"export AWS_ENDPOINT_URL_ELASTICACHE={server.url}" in banner
    assert server.stop(signal.SIGINT) == 0
    assert _group_processes(server, addresses) == before
    server.start()
    ec = server.client()
    assert wait_group(ec, "adopt")["Status"] == "available"
    # Adopted nodes are fully managed: a new replica joins, deletion stops them.
    ec.create_cache_cluster(CacheClusterId="adopt-004", ReplicationGroupId="adopt")
    wait_for(lambda: "adopt-004" in wait_group(ec, "adopt")["MemberClusters"], what="new replica")
    addresses = _addresses(ec, "adopt")
    ec.delete_replication_group(ReplicationGroupId="adopt")
    wait_group_gone(ec, "adopt")
    wait_for(lambda: not _group_processes(server, addresses), what="adopted processes to stop")


@pytest.mark.parametrize("delay", [0.0, 0.004, 0.015, 0.04, 0.1])
def test_sigkill_in_the_middle_of_a_create_ends_available(make_server, delay):
    server = make_server()
    ec = server.client()
    ec.create_replication_group(ReplicationGroupId="steady", **SPEC)
    steady = wait_group(ec, "steady")
    steady_primary = steady["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    write_replicated(steady_primary, "precious", "data", 2)
    steady_addresses = _addresses(ec, "steady")
    steady_processes = _group_processes(server, steady_addresses)

    ec.create_replication_group(ReplicationGroupId="crashy", **SPEC)
    time.sleep(delay)
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL

    server.start()
    ec = server.client()
    group = wait_group(ec, "crashy")
    processes = _group_processes(server, _addresses(ec, "crashy"))
    assert len(processes) == 3, processes  # no orphan, no duplicate
    assert len({key for key, _ in processes}) == 3
    write_replicated(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"], "after", "crash", 2)
    assert engine(group["NodeGroups"][0]["ReaderEndpoint"]["Address"]).get("after") == "crash"
    assert engine(steady_primary).get("precious") == "data"
    assert _group_processes(server, steady_addresses) == steady_processes


def test_sigkill_in_the_middle_of_a_delete_finishes_the_delete(make_server):
    server = make_server()
    ec = server.client()
    for group_id in ("gone1", "gone2"):
        ec.create_replication_group(ReplicationGroupId=group_id, **SPEC)
    for group_id in ("gone1", "gone2"):
        wait_group(ec, group_id)
    ec.delete_replication_group(ReplicationGroupId="gone1")
    ec.delete_replication_group(ReplicationGroupId="gone2")
    server.stop(signal.SIGKILL)
    server.start()
    ec = server.client()
    for group_id in ("gone1", "gone2"):
        wait_group_gone(ec, group_id)
    wait_for(lambda: not engine_processes(server.data_dir), what="every node to stop")
    assert ec.describe_cache_clusters()["CacheClusters"] == []


def test_down_stops_the_nodes_and_up_brings_them_back(make_server):
    server = make_server()
    ec = server.client()
    ec.create_replication_group(ReplicationGroupId="downed", **SPEC)
    wait_group(ec, "downed")
    subprocess.run([*CACHEFLEET, "down", "--data-dir", str(server.data_dir)], check=True, capture_output=True, cwd=ROOT)
    assert server.process.wait(timeout=20) == 0
    server.process = None
    assert engine_processes(server.data_dir) == []
    server.start()
    ec = server.client()
    group = wait_group(ec, "downed")
    wait_for(lambda: len(_group_processes(server, _addresses(ec, "downed"))) == 3, what="nodes to come back")
    primary = engine(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"])
    wait_for(lambda: primary.set("back", "1"), what="primary endpoint to accept writes")
    wait_event(ec, "downed-001", "restarted")


def test_two_instances_side_by_side(make_server):
    first, second = make_server(), make_server()
    ecs = [first.client(), second.client()]
    for ec in ecs:
        ec.create_replication_group(ReplicationGroupId="twin", **SPEC)
    groups = [wait_group(ec, "twin") for ec in ecs]
    addresses = [g["NodeGroups"][0]["PrimaryEndpoint"]["Address"] for g in groups]
    assert addresses[0] != addresses[1]
    engine(addresses[0]).set("who", "first")
    engine(addresses[1]).set("who", "second")
    assert [engine(a).get("who") for a in addresses] == ["first", "second"]
    second_processes = engine_processes(second.data_dir)
    ecs[0].delete_replication_group(ReplicationGroupId="twin")
    wait_group_gone(ecs[0], "twin")
    assert wait_group(ecs[1], "twin")["Status"] == "available"
    first.down()
    assert engine_processes(second.data_dir) == second_processes
    assert engine(addresses[1]).get("who") == "second"


def test_a_crashed_node_is_restarted_and_resyncs(make_server):
    server = make_server()
    ec = server.client()
    ec.create_replication_group(ReplicationGroupId="crashnode", **SPEC)
    group = wait_group(ec, "crashnode")
    write_replicated(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"], "k", "v", 2)
    primary = engine(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"])
    pids = engine_pids(server.data_dir)
    addresses = node_addresses(ec, ["crashnode-001", "crashnode-002"])
    replica_key = addresses["crashnode-002"]
    os.kill(pids[replica_key], signal.SIGKILL)
    wait_for(lambda: engine_pids(server.data_dir).get(replica_key) not in (None, pids[replica_key]), what="replica restart")
    replica_address = [m for m in group["NodeGroups"][0]["NodeGroupMembers"] if m["CacheClusterId"] == "crashnode-002"][0]
    replica = engine(replica_address["ReadEndpoint"]["Address"])
    wait_for(lambda: replica.get("k") == "v", what="restarted replica to resync")
    wait_event(ec, "crashnode-002", "restarted: its engine process had stopped; it resyncs from the primary")
    # Without automatic failover, a crashed primary restarts in place; its data is gone.
    primary_key = addresses["crashnode-001"]
    os.kill(pids[primary_key], signal.SIGKILL)
    wait_for(lambda: engine_pids(server.data_dir).get(primary_key) not in (None, pids[primary_key]), what="primary restart")
    wait_for(lambda: _ping(primary), what="primary endpoint back")
    primary.set("new", "1")
    wait_event(ec, "crashnode-001", "data was lost")
    assert wait_group(ec, "crashnode")["Status"] == "available"


def _ping(client):
    try:
        return client.ping()
    except Exception:
        return False


def test_one_control_plane_per_data_dir(make_server):
    server = make_server()
    done = subprocess.run(
        [*CACHEFLEET, "up", "--data-dir", str(server.data_dir), "--listen", f"127.0.0.1:{free_port()}",
         "--node-network", "127.77.1.0/24"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert done.returncode != 0
    assert "already running" in done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--node-network", "10.254.253.0/24"], "not usable on this machine"),
        (["--node-network", "banana"], "IPv4 block"),
        (["--listen", "0.0.0.0:18999"], "requires --credentials-file"),
        (["--listen", "nonsense"], "HOST:PORT"),
    ],
)
def test_start_up_errors_are_clear(tmp_path, args, says):
    base = ["--data-dir", str(tmp_path / "d"), "--listen", f"127.0.0.1:{free_port()}", "--node-network", "127.77.2.0/24"]
    done = subprocess.run([*CACHEFLEET, "up", *base, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode != 0
    assert says in done.stderr
    assert "Traceback" not in done.stderr
