"""Parameter groups applied for real, on real engine processes: dynamic changes reach every node of
every user at once without a restart, static ones wait for a reboot, new and replacement nodes
start with their group's values, and a fan-out a control-plane SIGKILL interrupted resumes."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cachefleet.control.warm import READY_AFTER
from cachefleet.domain.credentials import CONTROL_PLANE_USER
from helpers import (
    Server,
    data_memory,
    engine,
    engine_pids,
    events_of,
    free_port,
    fresh_network,
    node_addresses,
    wait_cluster,
    wait_for,
    wait_group,
    wait_group_gone,
)

NODE_TYPE = "cache.t4g.micro"
GROUP_ID = "live-rg"
SOLO_ID = "live-solo"


def _modify(ec: Any, name: str, **values: str) -> None:
    ec.modify_cache_parameter_group(
        CacheParameterGroupName=name,
        ParameterNameValues=[{"ParameterName": k.replace("_", "-"), "ParameterValue": v} for k, v in values.items()],
    )


def _config(address: str, name: str) -> str:
    return str(engine(address).config_get(name)[name])


def _run_ids(addresses: list[str]) -> dict[str, str]:
    return {a: str(engine(a).info("server")["run_id"]) for a in addresses}


def _apply_status(ec: Any, cluster_id: str) -> tuple[str, list[str], str]:
    cluster = ec.describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)["CacheClusters"][0]
    group = cluster["CacheParameterGroup"]
    return group["ParameterApplyStatus"], group["CacheNodeIdsToReboot"], cluster["CacheNodes"][0]["ParameterGroupStatus"]


@pytest.fixture(scope="module")
def live(server: Server) -> Iterator[dict[str, Any]]:
    """A custom group used by a 3-node replication group (automatic failover) and a standalone cluster."""
    ec = server.client()
    ec.create_cache_parameter_group(CacheParameterGroupName="live", CacheParameterGroupFamily="valkey8", Description="d")
    _modify(ec, "live", maxmemory_policy="allkeys-lru")
    common = {"Engine": "valkey", "EngineVersion": "8.1", "CacheNodeType": NODE_TYPE, "CacheParameterGroupName": "live"}
    ec.create_replication_group(ReplicationGroupId=GROUP_ID, ReplicationGroupDescription="d", NumCacheClusters=3,
                                AutomaticFailoverEnabled=True, **common)
    ec.create_cache_cluster(CacheClusterId=SOLO_ID, **common)
    group = wait_group(ec, GROUP_ID)
    wait_cluster(ec, SOLO_ID)
    addresses = node_addresses(ec, [*group["MemberClusters"], SOLO_ID])
    yield {"ec": ec, "addresses": addresses}
    ec.delete_replication_group(ReplicationGroupId=GROUP_ID)
    ec.delete_cache_cluster(CacheClusterId=SOLO_ID)
    wait_group_gone(ec, GROUP_ID)
    wait_for(lambda: SOLO_ID not in [c["CacheClusterId"] for c in ec.describe_cache_clusters()["CacheClusters"]])
    for name in ("live", "live-db32", "live-other"):
        try:
            ec.delete_cache_parameter_group(CacheParameterGroupName=name)
        except ec.exceptions.CacheParameterGroupNotFoundFault:
            pass


def test_nodes_start_with_their_groups_values(live: dict[str, Any]) -> None:
    for address in live["addresses"].values():
        assert _config(address, "maxmemory-policy") == "allkeys-lru"
        # ElastiCache's maxmemory: the node type's, less reserved-memory-percent (25).
        assert int(_config(address, "maxmemory")) == data_memory(NODE_TYPE)
        assert _config(address, "repl-backlog-size") == "10485760"  # valkey8's default, not the engine's 1 MB
    assert _apply_status(live["ec"], SOLO_ID) == ("in-sync", [], "in-sync")


def test_a_dynamic_change_reaches_every_node_within_a_second_without_restarting_it(live: dict[str, Any]) -> None:
    ec, addresses = live["ec"], list(live["addresses"].values())
    before = _run_ids(addresses)
    started = time.monotonic()
    _modify(ec, "live", maxmemory_policy="allkeys-lfu", notify_keyspace_events="KEA", timeout="120")
    wait_for(
        lambda: all(_config(a, "maxmemory-policy") == "allkeys-lfu" and _config(a, "timeout") == "120" for a in addresses),
        timeout=1.0, interval=0.005, what="the change on every node",
    )
    took = time.monotonic() - started
    assert _run_ids(addresses) == before, "a dynamic change must not restart any node"
    assert took < 1.0
    wait_for(lambda: _apply_status(ec, SOLO_ID)[0] == "in-sync", timeout=2, what="in-sync")
    # The engine does what the parameter says: keyspace events are published.
    primary = engine(live["addresses"][f"{GROUP_ID}-001"])
    listener = primary.pubsub()
    listener.psubscribe("__keyevent@0__:*")
    wait_for(lambda: listener.get_message(timeout=0.1), what="psubscribe")
    primary.set("notified", "1")
    message = wait_for(lambda: listener.get_message(timeout=0.1), what="a keyspace event")
    assert (message["channel"], message["data"]) == ("__keyevent@0__:set", "notified")
    listener.close()


def test_reserved_memory_percent_changes_the_memory_left_for_data(live: dict[str, Any]) -> None:
    ec, addresses = live["ec"], list(live["addresses"].values())
    _modify(ec, "live", reserved_memory_percent="50")
    wait_for(lambda: {int(_config(a, "maxmemory")) for a in addresses} == {data_memory(NODE_TYPE, 50)},
             timeout=1.0, interval=0.005, what="maxmemory with a 50 % reserve")
    _modify(ec, "live", reserved_memory_percent="25")
    wait_for(lambda: {int(_config(a, "maxmemory")) for a in addresses} == {data_memory(NODE_TYPE)}, timeout=1.0,
             interval=0.005, what="maxmemory back")


def test_a_static_change_waits_for_the_reboot(live: dict[str, Any]) -> None:
    """Switching a cluster to a group whose databases differ: the dynamic difference at once, the
    static one pending-reboot until RebootCacheCluster."""
    ec = live["ec"]
    address = live["addresses"][SOLO_ID]
    ec.create_cache_parameter_group(CacheParameterGroupName="live-db32", CacheParameterGroupFamily="valkey8", Description="d")
    _modify(ec, "live-db32", databases="32", maxmemory_policy="volatile-ttl")
    ec.create_cache_parameter_group(CacheParameterGroupName="live-redis", CacheParameterGroupFamily="redis7", Description="d")
    with pytest.raises(ec.exceptions.ClientError, match="InvalidParameterCombination.*family valkey8"):
        ec.modify_cache_cluster(CacheClusterId=SOLO_ID, CacheParameterGroupName="live-redis")
    ec.delete_cache_parameter_group(CacheParameterGroupName="live-redis")
    run_id = _run_ids([address])[address]

    ec.modify_cache_cluster(CacheClusterId=SOLO_ID, CacheParameterGroupName="live-db32", ApplyImmediately=True)
    wait_for(lambda: _config(address, "maxmemory-policy") == "volatile-ttl", timeout=1.0, interval=0.005, what="dynamic part")
    wait_for(lambda: _apply_status(ec, SOLO_ID) == ("pending-reboot", ["0001"], "pending-reboot"), timeout=2,
             what="pending-reboot")
    assert _config(address, "databases") == "16"
    assert _run_ids([address])[address] == run_id
    assert any("databases" in m and "pending-reboot" in m for m in events_of(ec, SOLO_ID))

    ec.reboot_cache_cluster(CacheClusterId=SOLO_ID, CacheNodeIdsToReboot=["0001"])
    wait_for(lambda: _apply_status(ec, SOLO_ID)[0] == "in-sync" and _config(address, "databases") == "32",
             timeout=30, what="databases 32 after the reboot")
    wait_cluster(ec, SOLO_ID)
    assert _run_ids([address])[address] != run_id
    assert _config(address, "maxmemory-policy") == "volatile-ttl"


def test_switching_a_groups_parameter_group_applies_the_difference(live: dict[str, Any]) -> None:
    ec = live["ec"]
    members = {k: v for k, v in live["addresses"].items() if k != SOLO_ID}
    ec.create_cache_parameter_group(CacheParameterGroupName="live-other", CacheParameterGroupFamily="valkey8", Description="d")
    _modify(ec, "live-other", maxmemory_policy="noeviction", slowlog_max_len="512")
    before = _run_ids(list(members.values()))
    ec.modify_replication_group(ReplicationGroupId=GROUP_ID, CacheParameterGroupName="live-other", ApplyImmediately=True)
    wait_for(lambda: all(_config(a, "maxmemory-policy") == "noeviction" and _config(a, "slowlog-max-len") == "512"
                         for a in members.values()), timeout=1.0, interval=0.005, what="the other group's values")
    # What the new group leaves at its default goes back to the default (the difference is applied).
    assert {_config(a, "timeout") for a in members.values()} == {"0"}
    assert _run_ids(list(members.values())) == before
    clusters = ec.describe_cache_clusters()["CacheClusters"]
    assert {c["CacheParameterGroup"]["CacheParameterGroupName"] for c in clusters if c.get("ReplicationGroupId") == GROUP_ID} == {
        "live-other"
    }
    with pytest.raises(ec.exceptions.ClientError, match="InvalidCacheParameterGroupState"):
        ec.delete_cache_parameter_group(CacheParameterGroupName="live-other")
    ec.modify_replication_group(ReplicationGroupId=GROUP_ID, CacheParameterGroupName="live", ApplyImmediately=True)
    wait_for(lambda: all(_config(a, "maxmemory-policy") == "allkeys-lfu" for a in members.values()), timeout=1.0,
             interval=0.005, what="back to live")
    ec.delete_cache_parameter_group(CacheParameterGroupName="live-other")


def test_replacement_and_new_replicas_start_with_the_groups_values(server: Server, live: dict[str, Any]) -> None:
    ec = live["ec"]
    group = wait_group(ec, GROUP_ID)
    node_group = group["NodeGroups"][0]
    old = next(m for m in node_group["NodeGroupMembers"] if m["CurrentRole"] == "primary")
    address = old["ReadEndpoint"]["Address"]
    os.kill(engine_pids(server.data_dir)[address], signal.SIGKILL)
    wait_for(lambda: next(m for m in wait_group(ec, GROUP_ID)["NodeGroups"][0]["NodeGroupMembers"]
                          if m["CacheClusterId"] == old["CacheClusterId"])["CurrentRole"] == "replica",
             timeout=30, what="the old primary back as a replica")
    wait_group(ec, GROUP_ID)
    # The replacement is a fresh engine process, started with the group's values.
    assert _config(address, "maxmemory-policy") == "allkeys-lfu"
    assert _config(address, "timeout") == "120" and _config(address, "notify-keyspace-events") in ("AKE", "KEA")
    assert int(_config(address, "maxmemory")) == data_memory(NODE_TYPE)
    assert _apply_status(ec, old["CacheClusterId"])[0] == "in-sync"

    ec.increase_replica_count(ReplicationGroupId=GROUP_ID, NewReplicaCount=3, ApplyImmediately=True)
    group = wait_group(ec, GROUP_ID)
    new = sorted(set(group["MemberClusters"]) - set(live["addresses"]))
    assert len(new) == 1
    fresh = node_addresses(ec, new)[new[0]]
    assert _config(fresh, "maxmemory-policy") == "allkeys-lfu" and _config(fresh, "timeout") == "120"


# ------------------------------------------------------------------------------------- own server


@pytest.fixture(scope="module")
def own() -> Iterator[Server]:
    """A server of this module's own (it is SIGKILLed), with one warm node."""
    root = Path(tempfile.mkdtemp(prefix="cachefleet-params-"))
    running = Server(data_dir=root / "data", network=fresh_network(), port=free_port(), extra=["--warm-nodes", "1"]).start()
    try:
        yield running
    finally:
        running.down()
        shutil.rmtree(root, ignore_errors=True)


def _warm_addresses(server: Server) -> set[str]:
    nodes = server.data_dir / "nodes"
    return {p.name for p in nodes.iterdir() if (p / "warm").exists()} if nodes.exists() else set()


def test_a_warm_node_handed_over_serves_with_the_groups_values(own: Server) -> None:
    ec = own.client()
    ec.create_cache_parameter_group(CacheParameterGroupName="warm-params", CacheParameterGroupFamily="valkey9", Description="d")
    _modify(ec, "warm-params", cluster_enabled="yes", maxmemory_policy="allkeys-lfu", timeout="90")

    def ready() -> set[str]:
        # The pool hands out a warm node once it has run for READY_AFTER seconds (its marker is written at start).
        nodes = own.data_dir / "nodes"
        return {a for a in _warm_addresses(own) if time.time() - (nodes / a / "warm").stat().st_mtime > READY_AFTER + 0.2}

    warm = wait_for(ready, timeout=30, what="a ready warm node")
    ec.create_replication_group(ReplicationGroupId="warmed", ReplicationGroupDescription="d", Engine="valkey",
                                CacheNodeType=NODE_TYPE, CacheParameterGroupName="warm-params")
    group = wait_group(ec, "warmed")
    assert group["ClusterEnabled"] is True
    primary = node_addresses(ec, group["MemberClusters"])["warmed-0001-001"]
    assert primary in warm, "the new shard's primary should be the warm node"
    assert _config(primary, "maxmemory-policy") == "allkeys-lfu" and _config(primary, "timeout") == "90"
    assert int(_config(primary, "maxmemory")) == data_memory(NODE_TYPE)
    assert _apply_status(ec, "warmed-0001-001")[0] == "in-sync"
    ec.delete_replication_group(ReplicationGroupId="warmed")
    wait_group_gone(ec, "warmed")
    ec.delete_cache_parameter_group(CacheParameterGroupName="warm-params")


def test_a_fan_out_interrupted_by_a_control_plane_sigkill_resumes_at_the_next_start(own: Server) -> None:
    """One node cannot take the change (CONFIG SET is denied to the control plane's ACL user there) while the
    others do; the control plane is SIGKILLed with the change half applied: Describe says applying until
    the next control plane finishes it, without restarting any node."""
    ec = own.client()
    ec.create_cache_parameter_group(CacheParameterGroupName="crash", CacheParameterGroupFamily="valkey9", Description="d")
    ec.create_replication_group(ReplicationGroupId="crashy", ReplicationGroupDescription="d", Engine="valkey",
                                CacheNodeType=NODE_TYPE, NumCacheClusters=2, CacheParameterGroupName="crash")
    group = wait_group(ec, "crashy")
    addresses = node_addresses(ec, group["MemberClusters"])
    primary, replica = addresses["crashy-001"], addresses["crashy-002"]
    before = _run_ids([primary, replica])
    blocked = engine(replica)
    blocked.execute_command("ACL", "SETUSER", CONTROL_PLANE_USER, "-config|set")
    try:
        _modify(ec, "crash", timeout="77", maxmemory_policy="allkeys-random")
        wait_for(lambda: _config(primary, "timeout") == "77", timeout=1.0, interval=0.005, what="the change on the primary")
        # The engine takes the values before the store records the node in-sync: wait for the record.
        wait_for(lambda: _apply_status(ec, "crashy-001")[0] == "in-sync", timeout=5, what="the primary recorded in-sync")
        assert _apply_status(ec, "crashy-002")[0] == "applying"
        own.stop(signal.SIGKILL)
    finally:
        blocked.execute_command("ACL", "SETUSER", CONTROL_PLANE_USER, "+config|set")
    # Down: the node that missed the change still runs with its old values, and nothing changes it.
    assert _config(replica, "timeout") == "0" and _config(replica, "maxmemory-policy") == "volatile-lru"

    own.start()
    ec = own.client()
    assert _apply_status(ec, "crashy-002")[0] in ("applying", "in-sync")
    wait_for(lambda: _config(replica, "timeout") == "77" and _config(replica, "maxmemory-policy") == "allkeys-random",
             timeout=10, what="the change resumed on the replica")
    wait_for(lambda: _apply_status(ec, "crashy-002")[0] == "in-sync", timeout=5, what="in-sync after the restart")
    assert _run_ids([primary, replica]) == before, "resuming must not restart any node"
    ec.delete_replication_group(ReplicationGroupId="crashy")
    wait_group_gone(ec, "crashy")
    ec.delete_cache_parameter_group(CacheParameterGroupName="crash")


def test_an_engine_refusal_is_reported_once_and_not_retried(own: Server) -> None:
    """A value the catalogue allows (lfu-log-factor "1-") but the engine refuses (above its int range)
    is recorded with the engine's reason; the node is not asked again, nor shown applying for ever."""
    ec = own.client()
    ec.create_cache_parameter_group(CacheParameterGroupName="refused", CacheParameterGroupFamily="valkey9", Description="d")
    ec.create_cache_cluster(CacheClusterId="refuser", Engine="valkey", CacheNodeType=NODE_TYPE,
                            CacheParameterGroupName="refused")
    cluster = wait_cluster(ec, "refuser")
    address = cluster["CacheNodes"][0]["Endpoint"]["Address"]
    node = engine(address)
    _modify(ec, "refused", lfu_log_factor="2147483648")
    wait_for(lambda: any("refused lfu-log-factor" in m for m in events_of(ec, "refuser")), timeout=5,
             what="the refusal event")
    assert _apply_status(ec, "refuser")[0] == "in-sync"
    assert _config(address, "lfu-log-factor") == "10"
    calls = int(node.info("commandstats")["cmdstat_config|set"]["calls"])
    _modify(ec, "refused", timeout="45")
    wait_for(lambda: _config(address, "timeout") == "45", timeout=1.0, interval=0.005, what="the next change")
    assert int(node.info("commandstats")["cmdstat_config|set"]["calls"]) == calls + 1, "the refused value was sent again"
    assert len([m for m in events_of(ec, "refuser") if "refused" in m]) == 1
    ec.delete_cache_cluster(CacheClusterId="refuser")
    wait_for(lambda: "refuser" not in [c["CacheClusterId"] for c in ec.describe_cache_clusters()["CacheClusters"]])
    ec.delete_cache_parameter_group(CacheParameterGroupName="refused")
