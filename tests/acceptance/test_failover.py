"""High availability with real engines: kill -9 and SIGSTOP of primaries, TestFailover, reboots, Multi-AZ."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time

import pytest
import redis
from redis.cluster import RedisCluster

from helpers import (
    engine,
    engine_pids,
    events_of,
    node_addresses,
    wait_cluster,
    wait_event,
    wait_for,
    wait_group,
    wait_group_gone,
    write_replicated,
)

HA = {
    "ReplicationGroupDescription": "ha",
    "Engine": "valkey",
    "CacheNodeType": "cache.t4g.micro",
    "AutomaticFailoverEnabled": True,
}


def members(group):
    return {m["CacheClusterId"]: m for ng in group["NodeGroups"] for m in ng["NodeGroupMembers"]}


def primary_of(group, node_group=0):
    return next(m for m in group["NodeGroups"][node_group]["NodeGroupMembers"] if m["CurrentRole"] == "primary")


def assert_one_primary_all_replicas_synced(group):
    """Exactly one primary per shard, every member running, every replica in sync with it."""
    for node_group in group["NodeGroups"]:
        roles = {}
        for member in node_group["NodeGroupMembers"]:
            node = engine(member["ReadEndpoint"]["Address"])
            info = node.info("replication")
            roles[member["CacheClusterId"]] = info["role"]
            if member["CurrentRole"] == "replica":
                assert info["role"] == "slave" and info["master_link_status"] == "up", (member, info)
        assert list(roles.values()).count("master") == 1, roles
        described = [m["CacheClusterId"] for m in node_group["NodeGroupMembers"] if m["CurrentRole"] == "primary"]
        assert [cid for cid, role in roles.items() if role == "master"] == described


def kill(server, address, sig=signal.SIGKILL):
    os.kill(engine_pids(server.data_dir)[address], sig)


class ConfirmedWriter:
    """Writes k:N on the primary endpoint and confirms each with WAIT 1; reconnects on errors."""

    def __init__(self, address):
        self.address = address
        self.confirmed: list[int] = []
        self.attempts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        client = redis.Redis(host=self.address, socket_timeout=1, socket_connect_timeout=0.5)
        n = 0
        while not self._stop.is_set():
            try:
                self.attempts += 1
                client.set(f"k:{n}", n)
                if client.wait(1, 200) >= 1:
                    self.confirmed.append(n)
                n += 1
            except redis.RedisError:
                client = redis.Redis(host=self.address, socket_timeout=1, socket_connect_timeout=0.5)
                time.sleep(0.005)


def test_kill_9_of_the_primary_under_load_loses_no_confirmed_write(server, ec):
    ec.create_replication_group(ReplicationGroupId="ha-kill", NumCacheClusters=3, **HA)
    group = wait_group(ec, "ha-kill")
    assert group["AutomaticFailover"] == "enabled"
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    old = primary_of(group)
    with ConfirmedWriter(endpoint) as writer:
        wait_for(lambda: len(writer.confirmed) > 200, what="confirmed writes before the kill")
        kill(server, old["ReadEndpoint"]["Address"])
        before = len(writer.confirmed)
        wait_for(lambda: len(writer.confirmed) > before + 200, what="confirmed writes after the failover")
    group = wait_group(ec, "ha-kill")
    new = primary_of(group)
    assert new["CacheClusterId"] != old["CacheClusterId"]
    # The primary endpoint follows the new primary; the old node is back as a synced replica.
    assert engine(endpoint).info("replication")["role"] == "master"
    assert members(group)[old["CacheClusterId"]]["CurrentRole"] == "replica"
    assert_one_primary_all_replicas_synced(group)
    primary = engine(endpoint)
    missing = [n for n in writer.confirmed if primary.get(f"k:{n}") is None]
    assert missing == [], f"{len(missing)} WAIT-confirmed writes lost, e.g. {missing[:5]}"
    messages = events_of(ec, "ha-kill")
    assert any(m.startswith(f"Failover from primary node {old['CacheClusterId']} to replica node {new['CacheClusterId']} completed")
               for m in messages), messages
    wait_event(ec, old["CacheClusterId"], "Finished recovery for cache nodes")
    ec.delete_replication_group(ReplicationGroupId="ha-kill")
    wait_group_gone(ec, "ha-kill")


def test_a_hung_primary_is_detected_fenced_and_replaced(server, ec):
    ec.create_replication_group(ReplicationGroupId="ha-hang", NumCacheClusters=2, **HA)
    group = wait_group(ec, "ha-hang")
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    old = primary_of(group)
    old_address = old["ReadEndpoint"]["Address"]
    hung_pid = engine_pids(server.data_dir)[old_address]
    engine(endpoint).set("before", "hang")
    assert engine(endpoint).wait(1, 1000) == 1
    os.kill(hung_pid, signal.SIGSTOP)
    try:
        wait_for(lambda: _answers_as_primary(endpoint), timeout=20, what="the primary endpoint to answer as a primary again")
    finally:
        try:
            os.kill(hung_pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    # The hung process was fenced (killed), not left to come back as a second primary.
    wait_for(lambda: not _alive(hung_pid), what="the hung process to be gone")
    group = wait_group(ec, "ha-hang")
    assert primary_of(group)["CacheClusterId"] != old["CacheClusterId"]
    assert engine(endpoint).get("before") == "hang"
    assert_one_primary_all_replicas_synced(group)
    wait_event(ec, "ha-hang", "stopped answering")
    ec.delete_replication_group(ReplicationGroupId="ha-hang")
    wait_group_gone(ec, "ha-hang")


def _answers_as_primary(address):
    try:
        node = redis.Redis(host=address, socket_timeout=0.3, socket_connect_timeout=0.3)
        node.set("probe", "1")
        return node.info("replication")["role"] == "master"
    except redis.RedisError:
        return False


def _alive(pid):
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_test_failover_cluster_mode_disabled_event_sequence(ec):
    ec.create_replication_group(ReplicationGroupId="ha-test", NumCacheClusters=2, **HA)
    group = wait_group(ec, "ha-test")
    old = primary_of(group)
    engine(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]).set("kept", "1")
    answer = ec.test_failover(ReplicationGroupId="ha-test", NodeGroupId="0001")["ReplicationGroup"]
    assert answer["Status"] == "modifying"
    group = wait_group(ec, "ha-test")
    new = primary_of(group)
    assert new["CacheClusterId"] != old["CacheClusterId"]
    assert engine(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]).get("kept") == "1"
    assert_one_primary_all_replicas_synced(group)
    _assert_test_failover_sequence(ec, "ha-test", "0001", old["CacheClusterId"], new["CacheClusterId"])
    ec.delete_replication_group(ReplicationGroupId="ha-test")
    wait_group_gone(ec, "ha-test")


def _assert_test_failover_sequence(ec, group_id, node_group_id, old, new):
    """ElastiCache's TestFailover events, each once and in this order (group and node events together)."""
    wanted = [
        ("Test Failover API called for node group", f"Test Failover API called for node group {node_group_id}"),
        ("Failover from primary node", f"Failover from primary node {old} to replica node {new} completed"),
        ("Recovering cache nodes", f"Recovering cache nodes {old}"),
        ("Finished recovery", f"Finished recovery for cache nodes {old}: it is a replica in sync with the primary"),
    ]
    # All events in the order the service recorded them (several share a timestamp), then ours.
    pages = ec.get_paginator("describe_events").paginate(Duration=60)
    events = [e for page in pages for e in page["Events"] if e["SourceIdentifier"] in (group_id, old)]
    seen = [e["Message"] for e in events if any(e["Message"].startswith(kind) for kind, _ in wanted)]
    assert len(seen) == len(wanted), seen
    for message, (_, expected) in zip(seen, wanted, strict=True):
        assert message.startswith(expected), seen


def test_test_failover_cluster_mode_enabled(server, ec):
    ec.create_replication_group(ReplicationGroupId="ha-shards", NumNodeGroups=2, ReplicasPerNodeGroup=1, **HA)
    group = wait_group(ec, "ha-shards")
    endpoint = group["ConfigurationEndpoint"]
    client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], decode_responses=True)
    for i in range(500):
        client.set(f"s:{i}", i)
    old = primary_of(group, 1)
    ec.test_failover(ReplicationGroupId="ha-shards", NodeGroupId="0002")
    group = wait_group(ec, "ha-shards")
    new = primary_of(group, 1)
    assert new["CacheClusterId"] != old["CacheClusterId"]
    assert group["NodeGroups"][1]["Slots"] == "8192-16383"
    assert_one_primary_all_replicas_synced(group)
    assert all(client.get(f"s:{i}") == str(i) for i in range(500))
    _assert_test_failover_sequence(ec, "ha-shards", "0002", old["CacheClusterId"], new["CacheClusterId"])

    # kill -9 of a shard's primary: writes to that shard's keys succeed again through the cluster client.
    victim = primary_of(group, 0)
    key = next(f"s:{i}" for i in range(500) if client.keyslot(f"s:{i}") < 8192)
    kill(server, victim["ReadEndpoint"]["Address"])
    wait_for(lambda: _cluster_write(client, key), timeout=30, what="writes to the failed shard")
    group = wait_group(ec, "ha-shards")
    assert primary_of(group, 0)["CacheClusterId"] != victim["CacheClusterId"]
    assert_one_primary_all_replicas_synced(group)
    client.close()
    ec.delete_replication_group(ReplicationGroupId="ha-shards")
    wait_group_gone(ec, "ha-shards")


def _cluster_write(client, key):
    try:
        client.set(key, "after")
        return client.get(key) == "after"
    except redis.RedisError:
        return False


def test_twenty_failovers_in_a_row(server, ec):
    ec.create_replication_group(ReplicationGroupId="ha-many", NumCacheClusters=3, **HA)
    group = wait_group(ec, "ha-many")
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    primaries = []
    for round_number in range(20):
        primary = primary_of(group)
        primaries.append(primary["CacheClusterId"])
        engine(endpoint).set("round", round_number)
        assert engine(endpoint).wait(2, 2000) == 2
        kill(server, primary["ReadEndpoint"]["Address"])
        wait_for(lambda: _answers_as_primary(endpoint), timeout=20, what=f"failover {round_number}")
        group = wait_group(ec, "ha-many")
        wait_for(lambda: _all_synced(ec, "ha-many"), timeout=20, what=f"recovery {round_number}")
        group = wait_group(ec, "ha-many")
        assert_one_primary_all_replicas_synced(group)
        assert len(engine_pids(server.data_dir).keys() & set(node_addresses(ec, group["MemberClusters"]).values())) == 3
        assert engine(endpoint).get("round") == str(round_number)
    assert all(a != b for a, b in zip(primaries, primaries[1:], strict=False))  # a new primary every round
    ec.delete_replication_group(ReplicationGroupId="ha-many")
    wait_group_gone(ec, "ha-many")


def _all_synced(ec, group_id):
    group = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    try:
        assert_one_primary_all_replicas_synced(group)
        return group["Status"] == "available"
    except (AssertionError, redis.RedisError):
        return False


def test_multi_az_failover_prefers_another_zone(server, ec):
    ec.create_replication_group(
        ReplicationGroupId="ha-az", NumCacheClusters=3, MultiAZEnabled=True,
        PreferredCacheClusterAZs=["us-east-1a", "us-east-1a", "us-east-1b"], **HA,
    )
    group = wait_group(ec, "ha-az")
    assert group["MultiAZ"] == "enabled"
    endpoint = engine(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"])
    endpoint.set("x", 1)
    assert endpoint.wait(2, 2000) == 2
    kill(server, primary_of(group)["ReadEndpoint"]["Address"])
    wait_for(lambda: _all_synced(ec, "ha-az"), timeout=20, what="failover and recovery")
    group = wait_group(ec, "ha-az")
    assert primary_of(group)["CacheClusterId"] == "ha-az-003"
    assert primary_of(group)["PreferredAvailabilityZone"] == "us-east-1b"
    ec.delete_replication_group(ReplicationGroupId="ha-az")
    wait_group_gone(ec, "ha-az")


def test_reboot_cache_cluster(server, ec):
    ec.create_replication_group(ReplicationGroupId="ha-reboot", NumCacheClusters=2, **HA)
    group = wait_group(ec, "ha-reboot")
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    engine(endpoint).set("kept", "yes")
    assert engine(endpoint).wait(1, 1000) == 1
    replica = next(m for m in group["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "replica")
    pid = engine_pids(server.data_dir)[replica["ReadEndpoint"]["Address"]]
    rebooting = ec.reboot_cache_cluster(CacheClusterId=replica["CacheClusterId"], CacheNodeIdsToReboot=["0001"])["CacheCluster"]
    assert rebooting["CacheClusterStatus"] == "rebooting cache cluster nodes"
    ec.get_waiter("cache_cluster_available").wait(CacheClusterId=replica["CacheClusterId"], WaiterConfig={"Delay": 1})
    assert engine_pids(server.data_dir)[replica["ReadEndpoint"]["Address"]] != pid
    wait_for(lambda: engine(replica["ReadEndpoint"]["Address"]).get("kept") == "yes", what="rebooted replica to resync")
    # A rebooted primary fails over first: no data is lost.
    primary = primary_of(group)
    ec.reboot_cache_cluster(CacheClusterId=primary["CacheClusterId"], CacheNodeIdsToReboot=["0001"])
    wait_for(lambda: _all_synced(ec, "ha-reboot"), timeout=20, what="failover of the rebooted primary")
    group = wait_group(ec, "ha-reboot")
    assert primary_of(group)["CacheClusterId"] != primary["CacheClusterId"]
    assert engine(endpoint).get("kept") == "yes"
    ec.delete_replication_group(ReplicationGroupId="ha-reboot")
    wait_group_gone(ec, "ha-reboot")

    # A standalone cluster restarts in place; its data is gone, as on ElastiCache.
    ec.create_cache_cluster(CacheClusterId="ha-solo", Engine="valkey", CacheNodeType="cache.t4g.micro")
    ec.get_waiter("cache_cluster_available").wait(CacheClusterId="ha-solo", WaiterConfig={"Delay": 1})
    address = node_addresses(ec, ["ha-solo"])["ha-solo"]
    engine(address).set("gone", "soon")
    ec.reboot_cache_cluster(CacheClusterId="ha-solo", CacheNodeIdsToReboot=["0001"])
    wait_for(lambda: ec.describe_cache_clusters(CacheClusterId="ha-solo")["CacheClusters"][0]["CacheClusterStatus"] == "available",
             what="reboot")
    assert engine(address).get("gone") is None
    assert any("rebooted" in m for m in events_of(ec, "ha-solo"))
    ec.delete_cache_cluster(CacheClusterId="ha-solo")
    ec.get_waiter("cache_cluster_deleted").wait(CacheClusterId="ha-solo", WaiterConfig={"Delay": 1})


def test_switchover_with_primary_cluster_id_loses_nothing(ec):
    ec.create_replication_group(ReplicationGroupId="ha-switch", NumCacheClusters=2, **HA)
    group = wait_group(ec, "ha-switch")
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    client = redis.Redis(host=endpoint)
    pipe = client.pipeline(transaction=False)
    for i in range(20000):
        pipe.set(f"w:{i}", i)
    pipe.execute()
    ec.modify_replication_group(ReplicationGroupId="ha-switch", PrimaryClusterId="ha-switch-002", ApplyImmediately=True)
    wait_for(lambda: _all_synced(ec, "ha-switch") and primary_of(wait_group(ec, "ha-switch"))["CacheClusterId"] == "ha-switch-002",
             timeout=20, what="switchover")
    assert engine(endpoint).dbsize() == 20000
    ec.delete_replication_group(ReplicationGroupId="ha-switch")
    wait_group_gone(ec, "ha-switch")


def test_without_automatic_failover_a_primary_restarts_in_place(server, ec):
    ec.create_replication_group(ReplicationGroupId="ha-off", NumCacheClusters=2, **{**HA, "AutomaticFailoverEnabled": False})
    group = wait_group(ec, "ha-off")
    old = primary_of(group)
    kill(server, old["ReadEndpoint"]["Address"])
    wait_for(lambda: _answers_as_primary(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]), what="restart in place")
    group = wait_group(ec, "ha-off")
    assert primary_of(group)["CacheClusterId"] == old["CacheClusterId"]
    wait_event(ec, old["CacheClusterId"], "data was lost")
    # Turning automatic failover on later works too.
    ec.modify_replication_group(ReplicationGroupId="ha-off", AutomaticFailoverEnabled=True, ApplyImmediately=True)
    group = wait_group(ec, "ha-off")
    assert group["AutomaticFailover"] == "enabled"
    kill(server, primary_of(group)["ReadEndpoint"]["Address"])
    wait_for(lambda: _all_synced(ec, "ha-off"), timeout=20, what="failover after enabling it")
    assert primary_of(wait_group(ec, "ha-off"))["CacheClusterId"] != old["CacheClusterId"]
    ec.delete_replication_group(ReplicationGroupId="ha-off")
    wait_group_gone(ec, "ha-off")


@pytest.mark.parametrize("unused", [None])
def test_glide_follows_a_cluster_mode_failover(server, ec, unused):
    ec.create_replication_group(ReplicationGroupId="ha-glide", NumNodeGroups=2, ReplicasPerNodeGroup=1, **HA)
    group = wait_group(ec, "ha-glide")

    async def scenario():
        from glide import GlideClusterClient, GlideClusterClientConfiguration, NodeAddress

        endpoint = group["ConfigurationEndpoint"]
        client = await GlideClusterClient.create(
            GlideClusterClientConfiguration([NodeAddress(endpoint["Address"], endpoint["Port"])], request_timeout=2000)
        )
        try:
            await client.set("g:1", "one")
            kill(server, primary_of(group, 0)["ReadEndpoint"]["Address"])
            kill(server, primary_of(group, 1)["ReadEndpoint"]["Address"])
            deadline = time.monotonic() + 30
            while True:
                try:
                    await client.set("g:2", "two")
                    return (await client.get("g:1")).decode(), (await client.get("g:2")).decode()
                except Exception:  # noqa: BLE001 - the client reconnects while the shards fail over
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
        finally:
            await client.close()

    assert asyncio.run(scenario()) == ("one", "two")
    wait_for(lambda: _all_synced(ec, "ha-glide"), timeout=30, what="recovery of both shards")
    ec.delete_replication_group(ReplicationGroupId="ha-glide")
    wait_group_gone(ec, "ha-glide")


def _hang_until_replaced(server, address, hung_pid, *, what):
    """SIGSTOPs a node (a hang, not an exit) until another process serves its address."""
    os.kill(hung_pid, signal.SIGSTOP)
    try:
        wait_for(lambda: _pid_changed(server, address, hung_pid), timeout=15, what=what)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung_pid, signal.SIGCONT)


def _pid_changed(server, address, old_pid):
    pid = engine_pids(server.data_dir).get(address)
    return pid is not None and pid != old_pid


def _synced_replica(address, key, value):
    try:
        node = engine(address)
        info = node.info("replication")
        return info["role"] == "slave" and info["master_link_status"] == "up" and node.get(key) == value
    except redis.RedisError:
        return False


def test_a_hung_primary_without_automatic_failover_is_fenced_and_restarted_in_place(server, ec):
    ec.create_replication_group(ReplicationGroupId="ha-hang-off", NumCacheClusters=2, **{**HA, "AutomaticFailoverEnabled": False})
    group = wait_group(ec, "ha-hang-off")
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    old = primary_of(group)
    address = old["ReadEndpoint"]["Address"]
    hung_pid = engine_pids(server.data_dir)[address]
    write_replicated(endpoint, "before", "hang", 1)
    _hang_until_replaced(server, address, hung_pid, what="the hung primary to be restarted")
    # Fenced with SIGKILL: the stopped process never runs again.
    wait_for(lambda: not _alive(hung_pid), what="the hung process to be gone")
    group = wait_group(ec, "ha-hang-off")
    assert primary_of(group)["CacheClusterId"] == old["CacheClusterId"]
    wait_for(lambda: _answers_as_primary(endpoint), what="writes through the primary endpoint")
    assert engine(endpoint).get("before") is None  # restarted empty, as ElastiCache without persistence
    write_replicated(endpoint, "after", "restart", 1)
    wait_for(lambda: _all_synced(ec, "ha-hang-off"), what="the replica to resync from the restarted primary")
    messages = events_of(ec, old["CacheClusterId"])
    assert any("stopped answering" in m and "restarting it in place; automatic failover is off" in m for m in messages), messages
    assert any("restarted: it had stopped answering; the node was a primary, so its data was lost" in m for m in messages)
    ec.delete_replication_group(ReplicationGroupId="ha-hang-off")
    wait_group_gone(ec, "ha-hang-off")

    # A standalone cluster is watched too: a hang restarts it.
    ec.create_cache_cluster(CacheClusterId="ha-hang-solo", Engine="valkey", CacheNodeType="cache.t4g.micro")
    wait_cluster(ec, "ha-hang-solo")
    address = node_addresses(ec, ["ha-hang-solo"])["ha-hang-solo"]
    hung_pid = engine_pids(server.data_dir)[address]
    _hang_until_replaced(server, address, hung_pid, what="the hung standalone node to be restarted")
    wait_for(lambda: engine(address).ping(), what="the restarted node")
    wait_event(ec, "ha-hang-solo", "stopped answering")
    ec.delete_cache_cluster(CacheClusterId="ha-hang-solo")
    ec.get_waiter("cache_cluster_deleted").wait(CacheClusterId="ha-hang-solo", WaiterConfig={"Delay": 1})


def test_a_node_silent_for_a_moment_is_busy_not_hung_and_keeps_its_data(server, ec):
    """Without automatic failover, a primary and its replica that stop answering for 2 s (as a busy
    node does: a 100 MiB SETRANGE under load kept one silent 0.6 s) keep running with their data."""
    ec.create_replication_group(ReplicationGroupId="ha-busy", NumCacheClusters=2, **{**HA, "AutomaticFailoverEnabled": False})
    group = wait_group(ec, "ha-busy")
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    write_replicated(endpoint, "kept", "yes", 1)
    addresses = node_addresses(ec, group["MemberClusters"])
    pids = {address: engine_pids(server.data_dir)[address] for address in addresses.values()}
    for pid in pids.values():
        os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        # The health monitor calls them unhealthy (what used to fence them at once)...
        for address in pids:
            wait_for(lambda a=address: f"node {a} does not answer PING" in server.log(), what=f"{address} to be unhealthy")
        time.sleep(max(0.0, 2.0 - (time.monotonic() - stopped)))  # ...and they stay silent 2 s in all
    finally:
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    assert {address: engine_pids(server.data_dir).get(address) for address in pids} == pids  # not fenced
    for address in pids:
        wait_for(lambda a=address: f"node {a} answers PING again" in server.log(), what=f"{address} to answer again")
    assert all(engine(address).get("kept") == "yes" for address in pids)
    assert not any("stopped answering" in m for c in group["MemberClusters"] for m in events_of(ec, c))
    ec.delete_replication_group(ReplicationGroupId="ha-busy")
    wait_group_gone(ec, "ha-busy")


def test_a_hung_replica_is_fenced_replaced_and_resyncs(server, ec):
    ec.create_replication_group(ReplicationGroupId="ha-hang-rep", NumCacheClusters=2, **HA)
    group = wait_group(ec, "ha-hang-rep")
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    replica = next(m for m in group["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "replica")
    address = replica["ReadEndpoint"]["Address"]
    hung_pid = engine_pids(server.data_dir)[address]
    write_replicated(endpoint, "kept", "yes", 1)
    _hang_until_replaced(server, address, hung_pid, what="the hung replica to be replaced")
    wait_for(lambda: not _alive(hung_pid), what="the hung process to be gone")
    wait_for(lambda: _synced_replica(address, "kept", "yes"), what="the new replica to resync")
    group = wait_group(ec, "ha-hang-rep")
    assert primary_of(group)["CacheClusterId"] != replica["CacheClusterId"]  # no failover for a replica
    assert_one_primary_all_replicas_synced(group)
    messages = events_of(ec, replica["CacheClusterId"])
    assert any("stopped answering" in m and "fencing it and replacing it" in m for m in messages), messages
    assert any("restarted: it had stopped answering; it resyncs from the primary" in m for m in messages), messages
    ec.delete_replication_group(ReplicationGroupId="ha-hang-rep")
    wait_group_gone(ec, "ha-hang-rep")


def test_a_lagging_replica_is_reported_and_not_promoted(server, ec):
    """Replication link state and offsets are tracked: a replica cut off from its primary is
    recorded, and a failover promotes the replica holding the most of the stream, even when
    the zone rule alone would pick the lagging one."""
    ec.create_replication_group(
        ReplicationGroupId="ha-lag", NumCacheClusters=3, MultiAZEnabled=True,
        PreferredCacheClusterAZs=["us-east-1a", "us-east-1b", "us-east-1a"], **HA,
    )
    group = wait_group(ec, "ha-lag")
    assert primary_of(group)["CacheClusterId"] == "ha-lag-001"
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    addresses = node_addresses(ec, ["ha-lag-001", "ha-lag-002", "ha-lag-003"])
    write_replicated(endpoint, "early", "1", 2)
    # Cut ha-lag-002 (another zone than the primary: the zone rule's favourite) off its primary.
    engine(addresses["ha-lag-002"]).execute_command("REPLICAOF", "127.0.0.1", "1")
    wait_for(lambda: any(m.startswith("Replication link of cache cluster ha-lag-002 to its primary is down")
                         for m in events_of(ec, "ha-lag-002")), timeout=10, what="the lost link to be recorded")
    for i in range(100):
        engine(endpoint).set(f"late:{i}", i)
    assert engine(endpoint).wait(1, 2000) == 1  # only ha-lag-003 has them
    kill(server, addresses["ha-lag-001"])
    wait_for(lambda: _all_synced(ec, "ha-lag"), timeout=20, what="failover and recovery")
    group = wait_group(ec, "ha-lag")
    assert primary_of(group)["CacheClusterId"] == "ha-lag-003"
    assert engine(endpoint).get("late:99") == "99"
    # Repointed at the new primary, the lagging replica catches up, and that is recorded too.
    wait_for(lambda: _synced_replica(addresses["ha-lag-002"], "late:99", "99"), what="ha-lag-002 to catch up")
    wait_for(lambda: any(m.startswith("Replication link of cache cluster ha-lag-002 to its primary is up again")
                         for m in events_of(ec, "ha-lag-002")), timeout=10, what="the link's return to be recorded")
    ec.delete_replication_group(ReplicationGroupId="ha-lag")
    wait_group_gone(ec, "ha-lag")


def test_redis_cluster_does_not_fail_over_on_its_own(make_server):
    """With the control plane down, a cluster replica whose primary hangs stays a replica:
    only Cachefleet (which fences first) promotes. Three shards, so that the two other
    primaries are a majority that would vote for the replica if it asked."""
    server = make_server()
    ec = server.client()
    ec.create_replication_group(ReplicationGroupId="ha-nofo", NumNodeGroups=3, ReplicasPerNodeGroup=1, **HA)
    group = wait_group(ec, "ha-nofo", timeout=60)
    victim = primary_of(group, 0)
    replica = next(m for m in group["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "replica")
    addresses = [m["ReadEndpoint"]["Address"] for ng in group["NodeGroups"] for m in ng["NodeGroupMembers"]]
    watcher = engine(replica["ReadEndpoint"]["Address"])
    victim_id = engine(victim["ReadEndpoint"]["Address"]).execute_command("CLUSTER", "MYID")
    victim_pid = engine_pids(server.data_dir)[victim["ReadEndpoint"]["Address"]]

    def victim_flags():
        line = next(raw for raw in watcher.execute_command("CLUSTER", "NODES").splitlines() if raw.startswith(victim_id))
        return line.split()[2].split(",")

    assert server.stop(signal.SIGTERM) == 0
    try:
        # A short node timeout, so that Redis Cluster would fail over within a couple of seconds.
        for address in addresses:
            engine(address).config_set("cluster-node-timeout", 1000)
        os.kill(victim_pid, signal.SIGSTOP)
        try:
            wait_for(lambda: "fail" in victim_flags(), timeout=10, what="the cluster to mark the hung primary failed")
            time.sleep(3)  # an election (rank 0) would start within a second of that
            assert watcher.info("replication")["role"] == "slave"
            assert "myself" not in victim_flags() and "master" in victim_flags()
        finally:
            os.kill(victim_pid, signal.SIGCONT)
        wait_for(lambda: "fail" not in victim_flags(), timeout=10, what="the primary to be seen healthy again")
    finally:
        for address in addresses:
            with contextlib.suppress(redis.RedisError):
                engine(address).config_set("cluster-node-timeout", 15000)
        server.start()
    ec = server.client()
    group = wait_group(ec, "ha-nofo")
    assert primary_of(group, 0)["CacheClusterId"] == victim["CacheClusterId"]
    ec.delete_replication_group(ReplicationGroupId="ha-nofo")
    wait_group_gone(ec, "ha-nofo")


def _primary_and_replica(ec, group_id, cluster_mode):
    """A new group of one shard, a primary and a replica, with automatic failover: (primary, replica)."""
    shape = {"NumNodeGroups": 1, "ReplicasPerNodeGroup": 1} if cluster_mode else {"NumCacheClusters": 2}
    mode = {"ClusterMode": "enabled"} if cluster_mode else {}
    ec.create_replication_group(ReplicationGroupId=group_id, **shape, **mode, **HA)
    group = wait_group(ec, group_id)
    return primary_of(group), next(m for m in members(group).values() if m["CurrentRole"] == "replica")


@pytest.mark.parametrize("cluster_mode", [False, True], ids=["disabled", "enabled"])
def test_a_dead_primary_is_not_restarted_empty_while_its_only_replica_is_silent(server, ec, cluster_mode):
    """The primary exits while its one replica does not answer (stopped for a moment, as a node
    under heavy load can be): restarting the primary in place would give it its slots back empty,
    and the replica would sync that emptiness when it answers again. The failover waits for the
    replica instead, and promotes it: every confirmed key is kept."""
    group_id = f"ha-silent-{'on' if cluster_mode else 'off'}"
    old, replica = _primary_and_replica(ec, group_id, cluster_mode)
    primary_client = engine(old["ReadEndpoint"]["Address"])
    for n in range(200):
        primary_client.set(f"{{k}}:{n}", n)
    assert primary_client.wait(1, 5000) == 1
    replica_pid = engine_pids(server.data_dir)[replica["ReadEndpoint"]["Address"]]
    os.kill(replica_pid, signal.SIGSTOP)
    try:
        # The monitor sees the replica silent before the primary goes.
        wait_for(lambda: _silent(server, replica["ReadEndpoint"]["Address"]), timeout=10, what="the replica to be silent")
        kill(server, old["ReadEndpoint"]["Address"])
        wait_for(lambda: [m for m in events_of(ec, group_id) if "no replica is available" in m or "waits:" in m],
                 timeout=10, what="the failover to find no replica answering")
    finally:
        os.kill(replica_pid, signal.SIGCONT)
    wait_event(ec, group_id, f"Failover from primary node {old['CacheClusterId']} to replica node {replica['CacheClusterId']}")
    wait_event(ec, old["CacheClusterId"], "Finished recovery for cache nodes", timeout=60)
    group = wait_group(ec, group_id, timeout=60)
    assert primary_of(group)["CacheClusterId"] == replica["CacheClusterId"]
    new_primary = engine(primary_of(group)["ReadEndpoint"]["Address"])
    wait_for(lambda: new_primary.ping(), what="the new primary")
    missing = [n for n in range(200) if new_primary.get(f"{{k}}:{n}") is None]
    assert missing == [], f"{len(missing)} confirmed keys lost"
    ec.delete_replication_group(ReplicationGroupId=group_id)
    wait_group_gone(ec, group_id)


@pytest.mark.parametrize("cluster_mode", [False, True], ids=["disabled", "enabled"])
def test_a_replica_in_sync_but_not_yet_marked_available_takes_over(server, ec, cluster_mode):
    """The primary fails over; the old primary comes back as a replica and finishes its full sync,
    and the new primary is lost before a pass has marked that replica available. It holds every
    key: it is promoted (the primary was started again empty before, and the replica synced that
    emptiness). The window is held open deterministically: the sync is made slow
    (rdb-key-save-delay on the node that becomes the primary), the control plane is stopped
    (SIGSTOP) while the sync is seen under way, and the new primary is killed once it is done."""
    group_id = f"ha-late-{'on' if cluster_mode else 'off'}"
    first, second = _primary_and_replica(ec, group_id, cluster_mode)
    first_address, second_address = first["ReadEndpoint"]["Address"], second["ReadEndpoint"]["Address"]
    pipe = engine(first_address).pipeline(transaction=False)
    for n in range(3000):
        pipe.set(f"{{k}}:{n}", n)
    pipe.execute()
    assert engine(first_address).wait(1, 5000) == 1
    engine(second_address).config_set("rdb-key-save-delay", 2000)  # 2 ms a key: its syncs take ~6 s
    first_pid = engine_pids(server.data_dir)[first_address]
    kill(server, first_address)
    wait_for(lambda: _syncing_again(server, first_address, first_pid), timeout=30,
             what="the old primary to come back as a replica, its full sync under way")
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        # Still syncing with the control plane stopped: no pass can have marked it available.
        assert engine(first_address).info("replication")["master_sync_in_progress"] == 1
        wait_for(lambda: engine(first_address).info("replication")["master_link_status"] == "up", timeout=30,
                 what="the full sync to finish")
        kill(server, second_address)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    wait_event(ec, group_id, f"Failover from primary node {second['CacheClusterId']} to replica node "
                             f"{first['CacheClusterId']}", timeout=30)
    group = wait_group(ec, group_id, timeout=60)
    assert primary_of(group)["CacheClusterId"] == first["CacheClusterId"]
    new_primary = engine(first_address)
    missing = [n for n in range(3000) if new_primary.get(f"{{k}}:{n}") is None]
    assert missing == [], f"{len(missing)} confirmed keys lost"
    wait_event(ec, first["CacheClusterId"], "Finished recovery for cache nodes", timeout=30)
    ec.delete_replication_group(ReplicationGroupId=group_id)
    wait_group_gone(ec, group_id)


def _syncing_again(server, address, old_pid):
    """Whether a new process of this node is a replica in the middle of its full sync."""
    if engine_pids(server.data_dir).get(address) in (None, old_pid):
        return False
    try:
        return engine(address).info("replication").get("master_sync_in_progress") == 1
    except redis.RedisError:
        return False


def _silent(server, address):
    """Whether the node gives no answer to a PING within 0.2 s (no retries)."""
    try:
        with socket.create_connection((address, 6379), timeout=0.2) as conn:
            conn.sendall(b"PING\r\n")
            return not conn.recv(16)
    except OSError:
        return True


def test_a_killed_cluster_mode_replica_rejoins_its_shard(server, ec):
    """kill -9 of a replica of a cluster-mode-enabled group: its node starts again fresh (a new node
    id, no slots, no primary) and must be made a replica of its shard's primary again, synced. Found
    by the failover chaos run (RELIABILITY.md, "A thousand failovers"): the group pass saw every
    member `available` and the restarted process checked, took its shortcut for a formed cluster, and
    the new process stayed a lone master forever, the group `available`, the shard without a replica."""
    ec.create_replication_group(ReplicationGroupId="ha-replica-on", NumNodeGroups=1, ReplicasPerNodeGroup=1,
                                ClusterMode="enabled", **HA)
    group = wait_group(ec, "ha-replica-on")
    primary = primary_of(group)
    replica = next(m for m in members(group).values() if m["CurrentRole"] == "replica")
    address = replica["ReadEndpoint"]["Address"]
    old_pid = engine_pids(server.data_dir)[address]
    primary_client = engine(primary["ReadEndpoint"]["Address"])
    primary_client.set("{k}:before", "1")
    kill(server, address)
    wait_for(lambda: engine_pids(server.data_dir).get(address) not in (None, old_pid), timeout=10,
             what="the replica's node started again")

    def replica_again() -> bool:
        try:
            info = engine(address).info("replication")
        except redis.RedisError:
            return False
        return info["role"] == "slave" and info.get("master_link_status") == "up"

    wait_for(replica_again, timeout=20, interval=0.1, what="the restarted node a replica of its shard's primary again")
    primary_client.set("{k}:after", "1")
    assert primary_client.wait(1, 5000) == 1
    group = wait_group(ec, "ha-replica-on")
    assert_one_primary_all_replicas_synced(group)
    ec.delete_replication_group(ReplicationGroupId="ha-replica-on")
    wait_group_gone(ec, "ha-replica-on")
