"""The walking skeleton with boto3 and real engine processes: create, use, grow, shrink, delete."""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis

from helpers import (
    data_memory,
    engine,
    engine_pids,
    events_of,
    node_addresses,
    wait_cluster,
    wait_for,
    wait_group,
    wait_group_gone,
)


def _nodes_of(server, addresses):
    """Running engine processes among these node addresses."""
    pids = engine_pids(server.data_dir)
    return {address: pids[address] for address in addresses if address in pids}


@pytest.mark.parametrize(
    ("engine_name", "engine_version", "port"),
    [("valkey", None, 6379), ("valkey", "8.1", 6390), ("redis", None, 6379)],
    ids=["valkey-newest", "valkey-8.1-port-6390", "redis"],
)
def test_create_write_read_add_replica_delete(server, ec, engine_name, engine_version, port):
    group_id = f"life-{engine_name}-{(engine_version or 'newest').replace('.', '-')}"
    created = ec.create_replication_group(
        ReplicationGroupId=group_id,
        ReplicationGroupDescription="lifecycle",
        Engine=engine_name,
        CacheNodeType="cache.t4g.micro",
        NumCacheClusters=3,
        Port=port,
        Tags=[{"Key": "team", "Value": "cache"}],
        **({"EngineVersion": engine_version} if engine_version else {}),
    )["ReplicationGroup"]
    assert created["Status"] == "creating"
    assert created["MemberClusters"] == [f"{group_id}-001", f"{group_id}-002", f"{group_id}-003"]

    group = wait_group(ec, group_id)
    node_group = group["NodeGroups"][0]
    primary = node_group["PrimaryEndpoint"]
    reader = node_group["ReaderEndpoint"]
    assert primary["Port"] == port and reader["Port"] == port
    member_addresses = {m["ReadEndpoint"]["Address"] for m in node_group["NodeGroupMembers"]}
    # The endpoints are addresses of their own, not a member's.
    assert primary["Address"] not in member_addresses and reader["Address"] not in member_addresses
    roles = {m["CacheClusterId"]: m["CurrentRole"] for m in node_group["NodeGroupMembers"]}
    assert roles == {f"{group_id}-001": "primary", f"{group_id}-002": "replica", f"{group_id}-003": "replica"}

    # A real write on the primary endpoint, read back on the reader endpoint (a replica).
    writer = engine(primary["Address"], port)
    writer.set("greeting", "hello")
    assert writer.info("replication")["role"] == "master"
    assert writer.wait(2, 2000) == 2
    read = engine(reader["Address"], port)
    assert read.info("replication")["role"] == "slave"
    assert read.get("greeting") == "hello"
    with pytest.raises(redis.exceptions.ReadOnlyError):
        read.set("x", "y")
    # The running engine is the one asked for.
    version = group_engine_version(ec, f"{group_id}-001")
    server_info = writer.info("server")
    assert version == server_info.get("valkey_version", server_info["redis_version"])
    if engine_version:
        assert version.startswith(engine_version + ".")

    # Every member runs as its own process, and each node has its own address.
    addresses = node_addresses(ec, group["MemberClusters"])
    processes = _nodes_of(server, addresses.values())
    assert len(processes) == 3 and len(set(processes.values())) == 3

    # Add a replica with CreateCacheCluster: it syncs the data that is already there.
    new = ec.create_cache_cluster(CacheClusterId=f"{group_id}-extra", ReplicationGroupId=group_id)["CacheCluster"]
    assert new["CacheClusterStatus"] == "creating"
    assert new["ReplicationGroupId"] == group_id
    group = wait_group(ec, group_id)
    assert f"{group_id}-extra" in group["MemberClusters"]
    extra = wait_cluster(ec, f"{group_id}-extra")
    extra_address = extra["CacheNodes"][0]["Endpoint"]["Address"]
    assert engine(extra_address, port).get("greeting") == "hello"
    assert extra["Engine"] == engine_name

    # Remove it again with DeleteCacheCluster.
    ec.delete_cache_cluster(CacheClusterId=f"{group_id}-extra")
    wait_for(lambda: f"{group_id}-extra" not in wait_group(ec, group_id)["MemberClusters"], what="replica removal")
    assert not _nodes_of(server, [extra_address])

    deleted = ec.delete_replication_group(ReplicationGroupId=group_id)["ReplicationGroup"]
    assert deleted["Status"] == "deleting"
    wait_group_gone(ec, group_id)
    wait_for(lambda: not _nodes_of(server, addresses.values()), what="processes to stop")
    for cluster_id in group["MemberClusters"]:
        with pytest.raises(ec.exceptions.CacheClusterNotFoundFault):
            ec.describe_cache_clusters(CacheClusterId=cluster_id)
    # Node directories are cleaned up as well.
    assert not [a for a in addresses.values() if (server.data_dir / "nodes" / a).exists()]
    messages = events_of(ec, group_id)
    assert any("Creating replication group" in m for m in messages)
    assert any("created and available" in m for m in messages)
    assert any(f"Replication group {group_id} deleted" in m for m in messages)


def group_engine_version(ec, cluster_id):
    return ec.describe_cache_clusters(CacheClusterId=cluster_id)["CacheClusters"][0]["EngineVersion"]


def test_botocore_waiters_work_unchanged(ec):
    ec.create_replication_group(
        ReplicationGroupId="waiters",
        ReplicationGroupDescription="waiters",
        Engine="valkey",
        CacheNodeType="cache.t4g.micro",
        ReplicasPerNodeGroup=1,
    )
    ec.get_waiter("replication_group_available").wait(ReplicationGroupId="waiters", WaiterConfig={"Delay": 1})
    ec.get_waiter("cache_cluster_available").wait(CacheClusterId="waiters-002", WaiterConfig={"Delay": 1})
    ec.delete_replication_group(ReplicationGroupId="waiters")
    ec.get_waiter("replication_group_deleted").wait(ReplicationGroupId="waiters", WaiterConfig={"Delay": 1})
    ec.get_waiter("cache_cluster_deleted").wait(CacheClusterId="waiters-002", WaiterConfig={"Delay": 1})


def test_standalone_cache_cluster(server, ec):
    created = ec.create_cache_cluster(
        CacheClusterId="Solo", Engine="valkey", CacheNodeType="cache.t4g.small", PreferredAvailabilityZone="us-east-1b"
    )["CacheCluster"]
    assert created["CacheClusterId"] == "solo"  # ElastiCache keeps identifiers in lower case
    cluster = wait_cluster(ec, "solo")
    node = cluster["CacheNodes"][0]
    assert node["CacheNodeId"] == "0001" and node["CustomerAvailabilityZone"] == "us-east-1b"
    assert cluster["PreferredAvailabilityZone"] == "us-east-1b"
    assert "ReplicationGroupId" not in cluster
    client = engine(node["Endpoint"]["Address"], node["Endpoint"]["Port"])
    client.set("k", "v")
    assert client.get("k") == "v"
    # maxmemory comes from the node type (cache.t4g.small: 1.37 GiB) less the default 25 % reserve.
    assert int(client.config_get("maxmemory")["maxmemory"]) == data_memory("cache.t4g.small")
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru"
    assert client.config_get("save")["save"] == ""
    assert client.config_get("appendonly")["appendonly"] == "no"
    without_nodes = ec.describe_cache_clusters(CacheClusterId="solo")["CacheClusters"][0]
    assert "CacheNodes" not in without_nodes
    standalone = ec.describe_cache_clusters(ShowCacheClustersNotInReplicationGroups=True)["CacheClusters"]
    assert "solo" in [c["CacheClusterId"] for c in standalone]
    ec.delete_cache_cluster(CacheClusterId="solo")
    ec.get_waiter("cache_cluster_deleted").wait(CacheClusterId="solo", WaiterConfig={"Delay": 1})
    assert not _nodes_of(server, [node["Endpoint"]["Address"]])


def test_delete_with_retain_primary_cluster_keeps_data(server, ec):
    ec.create_replication_group(
        ReplicationGroupId="retain", ReplicationGroupDescription="r", Engine="valkey",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=2,
    )
    group = wait_group(ec, "retain")
    addresses = node_addresses(ec, ["retain-001", "retain-002"])
    primary_endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    engine(primary_endpoint).set("kept", "yes")
    ec.delete_replication_group(ReplicationGroupId="retain", RetainPrimaryCluster=True)
    wait_group_gone(ec, "retain")
    kept = wait_cluster(ec, "retain-001")
    assert "ReplicationGroupId" not in kept
    address = kept["CacheNodes"][0]["Endpoint"]["Address"]
    assert engine(address).get("kept") == "yes"
    assert set(_nodes_of(server, addresses.values())) == {addresses["retain-001"]}
    # The group's endpoint addresses are released by the retained node.
    with pytest.raises(redis.exceptions.ConnectionError):
        engine(primary_endpoint).ping()
    ec.delete_cache_cluster(CacheClusterId="retain-001")
    wait_for(lambda: not _nodes_of(server, [addresses["retain-001"]]), what="retained primary to stop")


def test_primary_cluster_id_seeds_a_group_from_a_standalone_cluster(ec):
    ec.create_cache_cluster(CacheClusterId="seed", Engine="valkey", CacheNodeType="cache.t4g.micro")
    seed = wait_cluster(ec, "seed")
    engine(seed["CacheNodes"][0]["Endpoint"]["Address"]).set("seeded", "1")
    ec.create_replication_group(
        ReplicationGroupId="seeded", ReplicationGroupDescription="from seed", PrimaryClusterId="seed", NumCacheClusters=2
    )
    group = wait_group(ec, "seeded")
    assert group["MemberClusters"] == ["seed", "seeded-002"]
    node_group = group["NodeGroups"][0]
    assert engine(node_group["PrimaryEndpoint"]["Address"]).get("seeded") == "1"
    replica = engine(node_group["ReaderEndpoint"]["Address"])
    wait_for(lambda: replica.get("seeded") == "1", what="replica to have the seed's data")
    assert ec.describe_cache_clusters(CacheClusterId="seed")["CacheClusters"][0]["ReplicationGroupId"] == "seeded"
    ec.delete_replication_group(ReplicationGroupId="seeded")
    wait_group_gone(ec, "seeded")


def test_reader_endpoint_moves_off_a_replica_being_deleted(ec):
    ec.create_replication_group(
        ReplicationGroupId="reader", ReplicationGroupDescription="r", Engine="valkey",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=2,
    )
    group = wait_group(ec, "reader")
    reader = group["NodeGroups"][0]["ReaderEndpoint"]["Address"]
    assert engine(reader).info("replication")["role"] == "slave"
    ec.delete_cache_cluster(CacheClusterId="reader-002")
    wait_for(lambda: wait_group(ec, "reader")["MemberClusters"] == ["reader-001"], what="replica removal")
    # With no replica left, the reader endpoint is served by the primary.
    assert engine(reader).info("replication")["role"] == "master"
    ec.create_cache_cluster(CacheClusterId="reader-002b", ReplicationGroupId="reader")
    wait_group(ec, "reader")
    wait_for(lambda: engine(reader).info("replication")["role"] == "slave", what="reader endpoint on the new replica")
    ec.delete_replication_group(ReplicationGroupId="reader")
    wait_group_gone(ec, "reader")


def _reads_through(reader: str, until_role: bytes) -> dict[str, int]:
    """GETs of ``probe`` through the reader endpoint, a fresh connection each, until a node of ``until_role`` answers it."""
    seen: dict[str, int] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            client = redis.Redis(host=reader, port=6379, socket_timeout=2, socket_connect_timeout=2)
            try:
                reply = client.get("probe")
                role = client.execute_command("ROLE")[0]
            finally:
                client.close()
        except redis.BusyLoadingError:
            reply, role = b"LOADING", b"?"
        except redis.ConnectionError:
            continue  # the endpoint moving between nodes
        outcome = f"{reply!r} from {role.decode()}"
        seen[outcome] = seen.get(outcome, 0) + 1
        if role == until_role and reply == b"here":
            return seen
    raise AssertionError(f"no read from a {until_role!r} within 60 s: {seen}")


def test_reader_endpoint_serves_only_synced_data(server, ec):
    """The reader endpoint moves to a replica only once its full sync is done: a new replica, or
    one that restarted after a crash, never answers for it with an empty data set."""
    ec.create_replication_group(
        ReplicationGroupId="synced", ReplicationGroupDescription="r", Engine="valkey",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=1,
    )
    group = wait_group(ec, "synced")
    reader = group["NodeGroups"][0]["ReaderEndpoint"]["Address"]
    primary = engine(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"])
    # Enough data that a full sync takes a while.
    for start in range(0, 200_000, 10_000):
        primary.mset({f"k:{i}": "v" * 20 for i in range(start, start + 10_000)})
    primary.set("probe", "here")

    ec.create_cache_cluster(CacheClusterId="synced-002", ReplicationGroupId="synced")
    assert set(_reads_through(reader, b"slave")) == {"b'here' from master", "b'here' from slave"}
    replica = wait_cluster(ec, "synced-002")["CacheNodes"][0]["Endpoint"]["Address"]
    assert wait_group(ec, "synced")["MemberClusters"] == ["synced-001", "synced-002"]

    # The replica holding the reader endpoint dies; its restarted process starts empty.
    old_pid = engine_pids(server.data_dir)[replica]
    os.kill(old_pid, signal.SIGKILL)
    seen = _reads_through(reader, b"slave")
    assert all(outcome.startswith("b'here'") for outcome in seen), seen
    assert engine_pids(server.data_dir)[replica] != old_pid
    ec.delete_replication_group(ReplicationGroupId="synced")
    wait_group_gone(ec, "synced")


def test_modify_replication_group_description_and_windows(ec):
    ec.create_replication_group(
        ReplicationGroupId="modify", ReplicationGroupDescription="before", Engine="valkey",
        CacheNodeType="cache.t4g.micro",
    )
    wait_group(ec, "modify")
    modified = ec.modify_replication_group(
        ReplicationGroupId="modify",
        ReplicationGroupDescription="after",
        PreferredMaintenanceWindow="mon:01:00-mon:02:30",
        AutoMinorVersionUpgrade=False,
        Durability="disabled",  # standard behaviour: accepted
        ApplyImmediately=True,
    )["ReplicationGroup"]
    assert modified["Description"] == "after"
    assert modified["EffectiveDurability"] == "disabled"
    assert modified["AutoMinorVersionUpgrade"] is False
    cluster = ec.describe_cache_clusters(CacheClusterId="modify-001")["CacheClusters"][0]
    assert cluster["PreferredMaintenanceWindow"] == "mon:01:00-mon:02:30"
    assert ec.describe_replication_groups(ReplicationGroupId="modify")["ReplicationGroups"][0]["Description"] == "after"
    assert any("modified" in m for m in events_of(ec, "modify"))
    ec.delete_replication_group(ReplicationGroupId="modify")
    wait_group_gone(ec, "modify")


def test_preferred_azs_and_subnet_group_spread_nodes(ec):
    ec.create_cache_subnet_group(
        CacheSubnetGroupName="two-zones",
        CacheSubnetGroupDescription="d and e",
        SubnetIds=["subnet-us-east-1d", "subnet-us-east-1e-private"],
    )
    ec.create_replication_group(
        ReplicationGroupId="spread", ReplicationGroupDescription="s", Engine="valkey",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=3, CacheSubnetGroupName="two-zones",
    )
    group = wait_group(ec, "spread")
    zones = [m["PreferredAvailabilityZone"] for m in group["NodeGroups"][0]["NodeGroupMembers"]]
    assert zones == ["us-east-1d", "us-east-1e", "us-east-1d"]
    ec.create_replication_group(
        ReplicationGroupId="pinned", ReplicationGroupDescription="p", Engine="valkey",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=2, PreferredCacheClusterAZs=["us-east-1c", "us-east-1a"],
    )
    pinned = wait_group(ec, "pinned")
    assert [m["PreferredAvailabilityZone"] for m in pinned["NodeGroups"][0]["NodeGroupMembers"]] == [
        "us-east-1c", "us-east-1a",
    ]
    # A subnet group in use cannot be deleted.
    with pytest.raises(ec.exceptions.CacheSubnetGroupInUse):
        ec.delete_cache_subnet_group(CacheSubnetGroupName="two-zones")
    for group_id in ("spread", "pinned"):
        ec.delete_replication_group(ReplicationGroupId=group_id)
    for group_id in ("spread", "pinned"):
        wait_group_gone(ec, group_id)
    ec.delete_cache_subnet_group(CacheSubnetGroupName="two-zones")


def test_create_returns_before_the_work_is_done(ec):
    created = ec.create_replication_group(
        ReplicationGroupId="fast", ReplicationGroupDescription="f", Engine="valkey",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=6,
    )["ReplicationGroup"]
    assert created["Status"] == "creating"
    assert {m["CurrentRole"] for m in created["NodeGroups"][0]["NodeGroupMembers"]} <= {"primary", "replica"}
    group = wait_group(ec, "fast")
    assert len(group["MemberClusters"]) == 6
    ec.delete_replication_group(ReplicationGroupId="fast")
    wait_group_gone(ec, "fast")


def group_status_now(ec, group_id):
    return ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]["Status"]
