"""The workflows the crash tests kill the control plane in, each from its starting group."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import redis

from crashsteps import Shape, Workflow, kill_primary, member_addresses, wait_until
from helpers import Server, engine, wait_group

BASE = {"ReplicationGroupDescription": "crash", "Engine": "valkey", "CacheNodeType": "cache.t4g.micro"}
HA = {**BASE, "AutomaticFailoverEnabled": True}


def _create(group_id: str, **spec: Any) -> Any:
    def setup(ec: Any) -> None:
        ec.create_replication_group(ReplicationGroupId=group_id, **{**HA, **spec})
        wait_group(ec, group_id, timeout=60)

    return setup


def _nothing(ec: Any) -> None:
    return None


def _request(method: str, **params: Any) -> Any:
    def action(ec: Any, server: Server) -> None:
        getattr(ec, method)(**params)
        return None

    return action


WORKFLOWS: tuple[Workflow, ...] = (
    Workflow("create-disabled", "cr-off", False, _nothing,
             _request("create_replication_group", ReplicationGroupId="cr-off", NumCacheClusters=3, **HA),
             Shape(1, 2), writer=False),
    Workflow("create-enabled", "cr-on", True, _nothing,
             _request("create_replication_group", ReplicationGroupId="cr-on", NumNodeGroups=2, ReplicasPerNodeGroup=1,
                      **HA),
             Shape(2, 1), writer=False),
    Workflow("add-replica", "add", False, _create("add", NumCacheClusters=2),
             _request("increase_replica_count", ReplicationGroupId="add", NewReplicaCount=2, ApplyImmediately=True),
             Shape(1, 2)),
    Workflow("remove-replica", "remove", False, _create("remove", NumCacheClusters=3),
             _request("decrease_replica_count", ReplicationGroupId="remove", NewReplicaCount=1, ApplyImmediately=True),
             Shape(1, 1)),
    Workflow("reshard-out", "out", True, _create("out", NumNodeGroups=2, ReplicasPerNodeGroup=1),
             _request("modify_replication_group_shard_configuration", ReplicationGroupId="out", NodeGroupCount=3,
                      ApplyImmediately=True),
             Shape(3, 1)),
    Workflow("reshard-in", "in", True, _create("in", NumNodeGroups=3, ReplicasPerNodeGroup=1),
             _request("modify_replication_group_shard_configuration", ReplicationGroupId="in", NodeGroupCount=2,
                      NodeGroupsToRemove=["0003"], ApplyImmediately=True),
             Shape(2, 1)),
    Workflow("failover", "fo", False, _create("fo", NumCacheClusters=3),
             lambda ec, server: kill_primary(ec, server, "fo"), Shape(1, 2)),
    Workflow("node-type", "scale", False, _create("scale", NumCacheClusters=2),
             _request("modify_replication_group", ReplicationGroupId="scale", CacheNodeType="cache.r7g.large",
                      ApplyImmediately=True),
             Shape(1, 1, "cache.r7g.large")),
)

def _snapshot(group_id: str, name: str) -> Any:
    def action(ec: Any, server: Server) -> Callable[[Any], bool]:
        ec.create_snapshot(ReplicationGroupId=group_id, SnapshotName=name)
        return lambda ec: _snapshot_status(ec, name) == "available"

    return action


def _snapshot_status(ec: Any, name: str) -> str | None:
    snapshots = ec.describe_snapshots(SnapshotName=name)["Snapshots"]
    return str(snapshots[0]["SnapshotStatus"]) if snapshots else None


def _with_parameter_group(group_id: str, **spec: Any) -> Any:
    def setup(ec: Any) -> None:
        ec.create_cache_parameter_group(CacheParameterGroupName="crash-params", CacheParameterGroupFamily="valkey9",
                                        Description="crash")
        ec.modify_cache_parameter_group(CacheParameterGroupName="crash-params",
                                        ParameterNameValues=[{"ParameterName": "cluster-enabled", "ParameterValue": "yes"}])
        ec.create_replication_group(ReplicationGroupId=group_id, CacheParameterGroupName="crash-params", **HA, **spec,
                                    ClusterMode="enabled")
        wait_group(ec, group_id, timeout=60)

    return setup


def _set_parameter(group_id: str, name: str, value: str) -> Any:
    def action(ec: Any, server: Server) -> Callable[[Any], bool]:
        ec.modify_cache_parameter_group(CacheParameterGroupName="crash-params",
                                        ParameterNameValues=[{"ParameterName": name, "ParameterValue": value}])
        return lambda ec: all(engine(address).config_get(name).get(name) == value
                              for address in member_addresses(ec, group_id).values())

    return action


def _upgrade(group_id: str) -> Any:
    def action(ec: Any, server: Server) -> Callable[[Any], bool]:
        ec.modify_replication_group(ReplicationGroupId=group_id, Engine="valkey", EngineVersion="8.1",
                                    ApplyImmediately=True)
        return lambda ec: all(c["Engine"] == "valkey" and str(c["EngineVersion"]).startswith("8.1")
                              for c in ec.describe_cache_clusters()["CacheClusters"]
                              if c.get("ReplicationGroupId") == group_id)

    return action


def _runs_valkey(pid: int) -> bool:
    """Whether the engine process runs a Valkey build (the upgrade's target; the group starts on Redis OSS)."""
    try:
        return "valkey" in os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False


WORKFLOWS += (
    Workflow("failover-enabled", "foc", True, _create("foc", NumNodeGroups=2, ReplicasPerNodeGroup=1),
             lambda ec, server: kill_primary(ec, server, "foc"), Shape(2, 1)),
    Workflow("snapshot", "snap", False, _create("snap", NumCacheClusters=2), _snapshot("snap", "crash-snap"),
             Shape(1, 1)),
    Workflow("parameters", "params", True, _with_parameter_group("params", NumNodeGroups=2, ReplicasPerNodeGroup=1),
             _set_parameter("params", "maxmemory-samples", "7"), Shape(2, 1)),
    Workflow("upgrade", "upg", False,
             _create("upg", NumCacheClusters=2, Engine="redis", EngineVersion="7.0"),
             _upgrade("upg"), Shape(1, 1), upgraded=_runs_valkey),
)

RESTORED_KEYS = 2000


def _snapshotted(source_id: str, snapshot: str, **spec: Any) -> Any:
    """A group holding RESTORED_KEYS keys and a snapshot of it, to restore from."""
    def setup(ec: Any) -> None:
        _create(source_id, **spec)(ec)
        client = _client(ec.describe_replication_groups(ReplicationGroupId=source_id)["ReplicationGroups"][0])
        try:
            pipe = client.pipeline(transaction=False)
            for n in range(RESTORED_KEYS):
                pipe.set(f"restored:{n}", n)
            pipe.execute()
        finally:
            client.close()
        ec.create_snapshot(ReplicationGroupId=source_id, SnapshotName=snapshot)
        wait_until(lambda: _snapshot_status(ec, snapshot) == "available", 60, f"snapshot {snapshot}")

    return setup


def _client(group: dict[str, Any]) -> Any:
    """A client of the group's data: its configuration endpoint (cluster mode) or its primary."""
    if group["ClusterEnabled"]:
        endpoint = group["ConfigurationEndpoint"]
        return redis.RedisCluster(host=endpoint["Address"], port=endpoint["Port"], socket_timeout=5)
    return engine(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"])


def _restore(group_id: str, snapshot: str, **spec: Any) -> Any:
    """CreateReplicationGroup from the snapshot; done once every key of it reads back from the new group."""
    def action(ec: Any, server: Server) -> Callable[[Any], bool]:
        ec.create_replication_group(ReplicationGroupId=group_id, SnapshotName=snapshot, **{**HA, **spec})
        return lambda ec: _restored(ec, group_id)

    return action


def _restored(ec: Any, group_id: str) -> bool:
    group = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    if group["Status"] != "available":
        return False
    client = _client(group)
    try:
        pipe = client.pipeline(transaction=False)
        for n in range(RESTORED_KEYS):
            pipe.get(f"restored:{n}")
        values = [v.decode() if isinstance(v, bytes) else v for v in pipe.execute()]
        return values == [str(n) for n in range(RESTORED_KEYS)]
    except redis.RedisError:
        return False
    finally:
        client.close()


def _with_user_group(group_id: str, **spec: Any) -> Any:
    """Users ``default`` (open, as without a user group) and ``app`` in a user group (of Engine redis: ElastiCache
    lets only those hold a user without a password), and a group without it."""
    def setup(ec: Any) -> None:
        ec.create_user(UserId="crash-default", UserName="default", Engine="redis", AccessString="on ~* +@all",
                       NoPasswordRequired=True)
        ec.create_user(UserId="crash-app", UserName="app", Engine="redis", AccessString="on ~app:* +get",
                       Passwords=["crash-app-password-0123456789"])
        ec.create_user_group(UserGroupId="crash-users", Engine="redis", UserIds=["crash-default", "crash-app"])
        wait_until(lambda: ec.describe_user_groups(UserGroupId="crash-users")["UserGroups"][0]["Status"] == "active",
                  20, "the user group active")
        _create(group_id, **spec)(ec)

    return setup


def _add_user_group(group_id: str) -> Any:
    """ModifyReplicationGroup UserGroupIdsToAdd; done once every node knows the ``app`` user."""
    def action(ec: Any, server: Server) -> Callable[[Any], bool]:
        ec.modify_replication_group(ReplicationGroupId=group_id, UserGroupIdsToAdd=["crash-users"],
                                    ApplyImmediately=True)

        def synced(ec: Any) -> bool:
            try:
                return all(any(rule.startswith("user app on ") for rule in engine(address).acl_list())
                           for address in member_addresses(ec, group_id).values())
            except redis.RedisError:
                return False

        return synced

    return action


WORKFLOWS += (
    Workflow("restore", "rst", False, _snapshotted("rst-src", "crash-rst", NumCacheClusters=2),
             _restore("rst", "crash-rst", NumCacheClusters=2), Shape(1, 1), writer=False),
    Workflow("restore-reshape", "rsh", True,
             _snapshotted("rsh-src", "crash-rsh", NumNodeGroups=1, ReplicasPerNodeGroup=1, ClusterMode="enabled"),
             _restore("rsh", "crash-rsh", NumNodeGroups=2, ReplicasPerNodeGroup=1, ClusterMode="enabled"), Shape(2, 1), writer=False),
    Workflow("acl-sync", "acl", False, _with_user_group("acl", NumCacheClusters=2), _add_user_group("acl"),
             Shape(1, 1)),
)

BY_NAME = {workflow.name: workflow for workflow in WORKFLOWS}

# What `make test` crashes at: one commit of each workflow, the first, a middle or the last as
# `make chaos` enumerates them (it checks that each is still a step of its workflow), so that every
# position is covered; a full crash run costs 10-40 s on this machine, `make chaos` runs them all.
SHORT: tuple[tuple[str, str], ...] = (
    ("create-disabled", "CacheCluster creating + Operation CREATE requested + ReplicationGroup creating#1"),
    ("create-enabled", "CacheCluster available#1"),
    ("add-replica", "CacheCluster available#3"),
    ("remove-replica", "CacheCluster deleted + CacheNodeParameters deleted + ReplicationGroup modifying#1"),
    ("reshard-out", "Operation RESHARD moving slots + ReplicationGroup modifying#4"),
    ("reshard-in", "Operation RESHARD moving slots + ReplicationGroup modifying#4"),
    ("failover", "CacheCluster modifying + ReplicationGroup modifying#1"),
    ("node-type", "ReplicationGroup available#1"),
    ("failover-enabled", "CacheCluster available#5"),
    ("snapshot", "Operation SNAPSHOT streaming#1"),
    ("parameters", "CacheNodeParameters#5"),
    ("upgrade", "Operation FAILOVER requested + Operation UPGRADE failing over#1"),
    ("restore", "Restore moving#1"),
    ("restore-reshape", "Operation CREATE restoring#1"),
    ("acl-sync", "Operation ACCESS requested + ReplicationGroup modifying#1"),
)

# Crash points where the product is known not to converge (RELIABILITY.md, "Known failures"):
# `make chaos` reports whether each recurred instead of failing on it. Keyed by workflow and step.
KNOWN: dict[tuple[str, str], str] = {}
