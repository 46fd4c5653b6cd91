"""Global datastores with real engines: two regions of one server, cross-region replication,
READONLY secondaries, a planned global failover under a WAIT-confirming writer, disassociation."""

from __future__ import annotations

import os
import signal
import threading
import time

import botocore.exceptions
import pytest
import redis

from helpers import (
    Server,
    engine,
    engine_pids,
    free_port,
    fresh_network,
    replicates_read_only,
    wait_for,
    wait_group,
    wait_group_gone,
    wait_writable,
)

SETTINGS = {"ReplicationGroupDescription": "global", "Engine": "valkey", "CacheNodeType": "cache.r6g.large"}


def primary_endpoint(group):
    return group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]


def primary_endpoint_node(ec, group_id):
    group = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    return next(m for m in group["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "primary")[
        "ReadEndpoint"]["Address"]


def roles(ec, global_id):
    record = ec.describe_global_replication_groups(GlobalReplicationGroupId=global_id, ShowMemberInfo=True)
    return {m["ReplicationGroupRegion"]: m["Role"] for m in record["GlobalReplicationGroups"][0]["Members"]}


class Writer(threading.Thread):
    """SET + WAIT 1 in a loop on the current primary endpoint; moves to ``then`` on any error."""

    def __init__(self, first: str, then: str) -> None:
        super().__init__(daemon=True)
        self.addresses = [first, then]
        self.confirmed: list[str] = []
        self.on_second = 0
        self.errors = 0
        self.longest_gap = 0.0  # seconds between two confirmed writes (the failover's pause included)
        self.done = threading.Event()

    def run(self) -> None:
        current = 0
        client = engine(self.addresses[current])
        i = 0
        last = time.monotonic()
        while not self.done.is_set():
            key = f"w{i}"
            try:
                client.set(key, "v")
                if client.wait(1, 2000) >= 1:
                    self.confirmed.append(key)
                    self.on_second += current
                    now = time.monotonic()
                    self.longest_gap, last = max(self.longest_gap, now - last), now
            except redis.RedisError:
                self.errors += 1
                current = 1
                client = engine(self.addresses[current])
            i += 1


@pytest.mark.timeout(60)
def test_global_datastore_replicates_fails_over_and_disassociates(server):
    east, west = server.client(region="us-east-1"), server.client(region="us-west-2")
    east.create_replication_group(
        ReplicationGroupId="gd-east", NumCacheClusters=2, AutomaticFailoverEnabled=True, **SETTINGS)
    primary_group = wait_group(east, "gd-east")
    created = east.create_global_replication_group(
        GlobalReplicationGroupIdSuffix="orders", PrimaryReplicationGroupId="gd-east",
        GlobalReplicationGroupDescription="orders everywhere",
    )["GlobalReplicationGroup"]
    global_id = created["GlobalReplicationGroupId"]
    assert global_id.endswith("-orders") and len(global_id.split("-")[0]) == 5
    assert created["Status"] == "primary-only"

    west.create_replication_group(
        ReplicationGroupId="gd-west", ReplicationGroupDescription="secondary", GlobalReplicationGroupId=global_id,
        NumCacheClusters=2,
    )
    secondary = wait_group(west, "gd-west")
    assert secondary["CacheNodeType"] == "cache.r6g.large"
    assert secondary["GlobalReplicationGroupInfo"] == {
        "GlobalReplicationGroupId": global_id, "GlobalReplicationGroupMemberRole": "SECONDARY"}
    assert roles(east, global_id) == {"us-east-1": "PRIMARY", "us-west-2": "SECONDARY"}

    east_endpoint, west_endpoint = primary_endpoint(primary_group), primary_endpoint(secondary)
    writer_east, reader_west = engine(east_endpoint), engine(west_endpoint)
    replicates_read_only(writer_east, reader_west, "greeting", "hello")
    # A failover inside the secondary: its new primary follows the primary region too, read-only.
    west_primary = next(m for m in secondary["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "primary")
    west.test_failover(ReplicationGroupId="gd-west", NodeGroupId="0001")
    wait_for(lambda: next(m for m in west.describe_replication_groups(ReplicationGroupId="gd-west")["ReplicationGroups"][0]
                          ["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "primary")["CacheClusterId"]
             != west_primary["CacheClusterId"], timeout=15, what="the secondary's failover")
    wait_group(west, "gd-west")
    assert reader_west.info("replication")["master_host"] == primary_endpoint_node(east, "gd-east")
    writer_east.set("greeting", "hello again")
    wait_for(lambda: reader_west.get("greeting") == "hello again", timeout=5, what="replication after the failover")
    with pytest.raises(redis.ReadOnlyError):
        reader_west.set("greeting", "from the west")

    # The primary region's primary dies: its replica takes over, and the secondary follows the new one.
    old_primary = next(m for m in primary_group["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "primary")
    os.kill(engine_pids(server.data_dir)[old_primary["ReadEndpoint"]["Address"]], signal.SIGKILL)

    def after_failover() -> bool:
        try:
            return bool(engine(east_endpoint).set("after", "failover"))
        except redis.RedisError:
            return False

    wait_for(after_failover, timeout=15, what="the primary endpoint of us-east-1 after its failover")
    wait_for(lambda: reader_west.get("after") == "failover", timeout=5, what="us-west-2 following the new primary")
    assert reader_west.get("greeting") == "hello again"
    promoted = next(m for m in wait_group(east, "gd-east")["NodeGroups"][0]["NodeGroupMembers"]
                    if m["CurrentRole"] == "primary")
    assert promoted["CacheClusterId"] != old_primary["CacheClusterId"]
    # Straight from the new primary, not through the old node (it comes back as a replica, same address).
    wait_for(lambda: reader_west.info("replication")["master_host"] == promoted["ReadEndpoint"]["Address"],
             timeout=5, what="us-west-2's primary pointed at the new primary of us-east-1")

    writer = Writer(east_endpoint, west_endpoint)
    writer.start()
    wait_for(lambda: len(writer.confirmed) > 50, timeout=10, what="confirmed writes before the failover")
    east.failover_global_replication_group(
        GlobalReplicationGroupId=global_id, PrimaryRegion="us-west-2", PrimaryReplicationGroupId="gd-west",
    )
    wait_for(lambda: roles(east, global_id) == {"us-east-1": "SECONDARY", "us-west-2": "PRIMARY"}, timeout=15,
             what="us-west-2 primary")
    wait_for(lambda: writer.on_second > 20, timeout=10, what="confirmed writes on the new primary region")
    writer.done.set()
    writer.join(5)
    print(f"longest gap between confirmed writes: {writer.longest_gap * 1000:.1f} ms, errors {writer.errors}")
    assert writer.longest_gap < 1.0  # the bound on the planned failover's write interruption
    missing = [k for k in writer.confirmed if reader_west.get(k) is None]
    assert not missing, f"{len(missing)} WAIT-confirmed keys lost: {missing[:5]}"
    # The old primary region follows the new one: writes there are refused, reads see the new writes.
    wait_for(lambda: writer_east.get(writer.confirmed[-1]) == "v", timeout=5, what="us-east-1 following us-west-2")
    with pytest.raises(redis.ReadOnlyError):
        writer_east.set("greeting", "from the east")
    assert wait_group(west, "gd-west")["GlobalReplicationGroupInfo"]["GlobalReplicationGroupMemberRole"] == "PRIMARY"

    east.disassociate_global_replication_group(
        GlobalReplicationGroupId=global_id, ReplicationGroupId="gd-east", ReplicationGroupRegion="us-east-1",
    )

    wait_writable(writer_east, what="gd-east writable on its own")
    assert "GlobalReplicationGroupInfo" not in wait_group(east, "gd-east")
    east.delete_global_replication_group(GlobalReplicationGroupId=global_id, RetainPrimaryReplicationGroup=False)
    assert west.describe_global_replication_groups()["GlobalReplicationGroups"] == []
    east.delete_replication_group(ReplicationGroupId="gd-east")
    wait_group_gone(west, "gd-west")
    wait_group_gone(east, "gd-east")


# The planned failover's role swap: the global record and both member groups in one commit
# (store/crashpoints.py labels it by what it wrote; the first such commit after the setup).
ROLE_SWAP = "GlobalReplicationGroup available + ReplicationGroup available#1"


@pytest.mark.timeout(90)
def test_a_crash_at_the_global_failovers_role_swap_converges_with_nothing_lost(tmp_path):
    """SIGKILL of the control plane right after the role swap committed, before any engine was told:
    the old primary node is paused, the new one still follows it. The restarted control plane must
    bring the engines to the stored roles: us-west-2 writable, us-east-1 following it, the engine
    processes adopted (same pids), and no WAIT-confirmed key lost."""
    server = Server(data_dir=tmp_path / "data", network=fresh_network(), port=free_port(),
                    env={"CACHEFLEET_CRASH_AFTER": ROLE_SWAP}).start()
    try:
        east, west = server.client(region="us-east-1"), server.client(region="us-west-2")
        east.create_replication_group(
            ReplicationGroupId="gdc-east", NumCacheClusters=2, AutomaticFailoverEnabled=True, **SETTINGS)
        primary_group = wait_group(east, "gdc-east")
        global_id = east.create_global_replication_group(
            GlobalReplicationGroupIdSuffix="crash", PrimaryReplicationGroupId="gdc-east",
        )["GlobalReplicationGroup"]["GlobalReplicationGroupId"]
        west.create_replication_group(ReplicationGroupId="gdc-west", ReplicationGroupDescription="secondary",
                                      GlobalReplicationGroupId=global_id, NumCacheClusters=2)
        secondary = wait_group(west, "gdc-west")
        east_endpoint, west_endpoint = primary_endpoint(primary_group), primary_endpoint(secondary)

        writer = Writer(east_endpoint, west_endpoint)
        writer.start()
        wait_for(lambda: len(writer.confirmed) > 50, timeout=10, what="confirmed writes before the failover")
        east.failover_global_replication_group(
            GlobalReplicationGroupId=global_id, PrimaryRegion="us-west-2", PrimaryReplicationGroupId="gdc-west",
        )
        assert server.process is not None
        assert server.process.wait(timeout=15) == -signal.SIGKILL, "the control plane did not crash at the role swap"
        at_crash = engine_pids(server.data_dir)
        server.process, server.env = None, {}
        server.start()
        east, west = server.client(region="us-east-1"), server.client(region="us-west-2")

        assert roles(east, global_id) == {"us-east-1": "SECONDARY", "us-west-2": "PRIMARY"}
        # Once it follows, the old primary is not left under the dead control plane's CLIENT PAUSE
        # (7 s): its writers get READONLY at once instead of hanging until the pause runs out.
        old_node, new_node = primary_endpoint_node(east, "gdc-east"), primary_endpoint_node(west, "gdc-west")
        wait_for(lambda: engine(old_node).info("replication").get("master_host") == new_node, timeout=10,
                 interval=0.01, what="the old primary to follow the new one")
        assert engine(old_node).info("clients")["paused_reason"] == "none"
        confirmed_at_restart = len(writer.confirmed)
        wait_for(lambda: writer.on_second > 20 and len(writer.confirmed) > confirmed_at_restart + 20, timeout=20,
                 what="confirmed writes on us-west-2 after the restart")
        writer.done.set()
        writer.join(10)
        reader_west, reader_east = engine(west_endpoint), engine(east_endpoint)
        missing = [k for k in writer.confirmed if reader_west.get(k) is None]
        assert not missing, f"{len(missing)} WAIT-confirmed keys lost: {missing[:5]}"
        wait_for(lambda: reader_east.get(writer.confirmed[-1]) == "v", timeout=10, what="us-east-1 following us-west-2")
        with pytest.raises(redis.ReadOnlyError):
            reader_east.set("after-crash", "from the east")
        west_primary = primary_endpoint_node(west, "gdc-west")
        assert engine(west_primary).info("replication")["role"] == "master"
        assert reader_east.info("replication")["master_host"] == west_primary
        assert wait_group(east, "gdc-east")["GlobalReplicationGroupInfo"]["GlobalReplicationGroupMemberRole"] == \
            "SECONDARY"
        record = east.describe_global_replication_groups(GlobalReplicationGroupId=global_id)[
            "GlobalReplicationGroups"][0]
        assert record["Status"] == "available"
        assert engine_pids(server.data_dir) == at_crash, "engine processes were restarted, not adopted"
        print(f"longest gap between confirmed writes across the crash: {writer.longest_gap * 1000:.0f} ms")
    finally:
        server.down()


@pytest.mark.timeout(90)
def test_a_failover_resumed_after_a_crash_never_points_the_new_primary_back_at_the_old(tmp_path):
    """SIGKILL of the control plane right after FailoverGlobalReplicationGroup's commit, before any
    engine was told. The restarted control plane resumes the failover while both member groups'
    passes run; a pass that read its group's role before the swap must not act on it after. Once
    us-west-2's primary is a primary, it stays one (sampled every few ms). Before the fix its stale
    pass pointed it back at us-east-1's primary (a replication loop of some 30 ms): this test caught
    it in 2 of 3 runs, the crash suite's global-failover workflow in 4 of 4."""
    server = Server(data_dir=tmp_path / "data", network=fresh_network(), port=free_port(),
                    env={"CACHEFLEET_CRASH_AFTER": "GlobalReplicationGroup modifying#1"}).start()
    try:
        east, west = server.client(region="us-east-1"), server.client(region="us-west-2")
        east.create_replication_group(
            ReplicationGroupId="gdr-east", NumCacheClusters=2, AutomaticFailoverEnabled=True, **SETTINGS)
        wait_group(east, "gdr-east")
        global_id = east.create_global_replication_group(
            GlobalReplicationGroupIdSuffix="resume", PrimaryReplicationGroupId="gdr-east",
        )["GlobalReplicationGroup"]["GlobalReplicationGroupId"]
        west.create_replication_group(ReplicationGroupId="gdr-west", ReplicationGroupDescription="secondary",
                                      GlobalReplicationGroupId=global_id, NumCacheClusters=2)
        wait_group(west, "gdr-west")
        wait_for(lambda: all(m["Status"] == "associated" for m in east.describe_global_replication_groups(
            GlobalReplicationGroupId=global_id, ShowMemberInfo=True)["GlobalReplicationGroups"][0]["Members"]),
            timeout=20, what="both members associated")
        new_primary = engine(primary_endpoint_node(west, "gdr-west"))
        old_primary = primary_endpoint_node(east, "gdr-east")
        with pytest.raises((botocore.exceptions.ConnectionClosedError, botocore.exceptions.EndpointConnectionError)):
            east.failover_global_replication_group(
                GlobalReplicationGroupId=global_id, PrimaryRegion="us-west-2", PrimaryReplicationGroupId="gdr-west")
        assert server.process is not None and server.process.wait(timeout=15) == -signal.SIGKILL
        server.process, server.env = None, {}
        server.start(wait=False)

        roles_seen: list[tuple[str, str | None]] = []
        deadline = time.monotonic() + 30
        promoted_at: float | None = None
        while time.monotonic() < deadline and (promoted_at is None or time.monotonic() < promoted_at + 2):
            info = new_primary.info("replication")
            seen = (info["role"], info.get("master_host"))
            if not roles_seen or roles_seen[-1] != seen:
                roles_seen.append(seen)
            if seen[0] == "master" and promoted_at is None:
                promoted_at = time.monotonic()
            time.sleep(0.002)
        assert promoted_at is not None, f"us-west-2's primary was never promoted: {roles_seen}"
        first = next(n for n, (role, _) in enumerate(roles_seen) if role == "master")
        assert all(role == "master" for role, _ in roles_seen[first:]), (
            f"us-west-2's primary was pointed back at {old_primary} after its promotion: {roles_seen}")
        server.wait_ready()
        east = server.client(region="us-east-1")
        wait_for(lambda: roles(east, global_id) == {"us-east-1": "SECONDARY", "us-west-2": "PRIMARY"}, timeout=15,
                 what="the roles swapped")
    finally:
        server.down()
