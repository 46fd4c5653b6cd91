"""Write fencing of groups with replicas (README: Zone partitions): a primary runs with
min-replicas-to-write 1 while a replica follows it, takes writes without one when the control plane
reaches it, and a parameter group that sets min-replicas-to-write has the last word."""

from __future__ import annotations

import os
import signal
import threading
import time

import redis

from helpers import engine, engine_pids, wait_for, wait_group, wait_group_gone

GROUP = {
    "ReplicationGroupDescription": "fencing", "Engine": "valkey", "CacheNodeType": "cache.t4g.micro",
    "NumCacheClusters": 2, "AutomaticFailoverEnabled": True,
}


def _members(group):
    return {m["CurrentRole"]: m["ReadEndpoint"]["Address"] for m in group["NodeGroups"][0]["NodeGroupMembers"]}


def _to_write(address):
    return engine(address).config_get("min-replicas-to-write")["min-replicas-to-write"]


def _writes(address):
    try:
        return engine(address).set("probe", "1") is True
    except redis.RedisError:
        return False


def test_a_primary_keeps_taking_writes_when_its_only_replica_is_lost(server, ec):
    ec.create_replication_group(ReplicationGroupId="wf-lost", **GROUP)
    roles = _members(wait_group(ec, "wf-lost"))
    primary, replica = roles["primary"], roles["replica"]
    assert engine(primary).config_get("min-replicas-max-lag") == {"min-replicas-max-lag": "5"}
    wait_for(lambda: _to_write(primary) == "1", timeout=10, what="min-replicas-to-write 1 with the replica online")
    os.kill(engine_pids(server.data_dir)[replica], signal.SIGKILL)
    # Without the control plane, the engine would refuse every write until the replica is back.
    wait_for(lambda: _to_write(primary) == "0" or _writes(primary), timeout=5, what="writes without the replica")
    wait_group(ec, "wf-lost")
    wait_for(lambda: _to_write(primary) == "1", timeout=15, what="min-replicas-to-write 1 again with the new replica")
    assert _writes(primary)
    ec.delete_replication_group(ReplicationGroupId="wf-lost")
    wait_group_gone(ec, "wf-lost")


def test_a_parameter_group_setting_min_replicas_to_write_has_the_last_word(server, ec):
    ec.create_cache_parameter_group(CacheParameterGroupName="wf-params", CacheParameterGroupFamily="valkey9",
                                    Description="no write fencing")
    ec.modify_cache_parameter_group(CacheParameterGroupName="wf-params", ParameterNameValues=[
        {"ParameterName": "min-replicas-to-write", "ParameterValue": "0"}])
    ec.create_replication_group(ReplicationGroupId="wf-own", CacheParameterGroupName="wf-params", **GROUP)
    roles = _members(wait_group(ec, "wf-own"))
    for address in roles.values():
        assert engine(address).config_get("min-replicas-*") == {"min-replicas-to-write": "0", "min-replicas-max-lag": "10"}
    ec.delete_replication_group(ReplicationGroupId="wf-own")
    wait_group_gone(ec, "wf-own")
    ec.delete_cache_parameter_group(CacheParameterGroupName="wf-params")


class _Writer(threading.Thread):
    """SETs to the primary endpoint until stopped; keeps the engine's NOREPLICAS refusals (a
    failover's connection errors are not what this looks at)."""

    def __init__(self, address):
        super().__init__(daemon=True)
        self.client = redis.Redis(host=address, socket_timeout=2, socket_connect_timeout=2)
        self.refused: list[str] = []
        self.written = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                self.client.set("w", self.written)
                self.written += 1
            except redis.ResponseError as error:
                if "NOREPLICAS" in str(error):
                    self.refused.append(str(error))
            except redis.RedisError:
                time.sleep(0.01)

    def stop(self):
        self.done.set()
        self.join(timeout=10)
        self.client.close()


def test_a_primary_takes_writes_while_its_only_replica_is_rebooted_or_upgraded(server, ec):
    ec.create_replication_group(ReplicationGroupId="wf-stop", EngineVersion="8.1", **GROUP)
    group = wait_group(ec, "wf-stop")
    primary = _members(group)["primary"]
    replica_id = next(m["CacheClusterId"] for m in group["NodeGroups"][0]["NodeGroupMembers"]
                      if m["CurrentRole"] == "replica")
    wait_for(lambda: _to_write(primary) == "1", timeout=10, what="min-replicas-to-write 1 with the replica online")
    writer = _Writer(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"])
    writer.start()
    try:
        ec.reboot_cache_cluster(CacheClusterId=replica_id, CacheNodeIdsToReboot=["0001"])
        wait_for(lambda: ec.describe_cache_clusters(CacheClusterId=replica_id)["CacheClusters"][0][
            "CacheClusterStatus"] == "rebooting cache cluster nodes", timeout=10, interval=0.05, what="replica rebooting")
        wait_group(ec, "wf-stop")
        wait_for(lambda: _to_write(primary) == "1", timeout=15, what="fenced again once the replica is back")
        assert writer.refused == [], writer.refused[:3]
        # A rolling upgrade stops the replica first, then fails over to it and replaces the old primary.
        ec.modify_replication_group(ReplicationGroupId="wf-stop", EngineVersion="9.1", ApplyImmediately=True)
        wait_for(lambda: ec.describe_replication_groups(ReplicationGroupId="wf-stop")["ReplicationGroups"][0][
            "Status"] == "modifying", timeout=10, interval=0.05, what="upgrade under way")
        done = wait_group(ec, "wf-stop", timeout=120)
        assert {ec.describe_cache_clusters(CacheClusterId=c)["CacheClusters"][0]["EngineVersion"][:3]
                for c in done["MemberClusters"]} == {"9.1"}
        assert writer.refused == [], writer.refused[:3]
        written = writer.written
        wait_for(lambda: writer.written > written + 10, timeout=10, what="writes on the upgraded group")
    finally:
        writer.stop()
    ec.delete_replication_group(ReplicationGroupId="wf-stop")
    wait_group_gone(ec, "wf-stop")
