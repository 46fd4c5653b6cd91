"""Write fencing of groups with replicas (README: Zone partitions): a primary runs with
min-replicas-to-write 1 while a replica follows it, takes writes without one when the control plane
reaches it, and a parameter group that sets min-replicas-to-write has the last word."""

from __future__ import annotations

import os
import signal

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
