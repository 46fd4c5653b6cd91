"""The workflows the crash tests kill the control plane in, each from its starting group."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import redis

from crashsteps import (
    ConfirmedWriter,
    Shape,
    Workflow,
    describe,
    engines_agree,
    in_region,
    kill_primary,
    member_addresses,
    wait_until,
)
from enginekit import installed
from engines import BareEngines
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

# ---------------------------------------------------------------------------------- online migration

SOURCE_KEYS = 2000  # on the source before StartMigration
LATER_KEYS = 200  # written to the source while the group follows it
# What a source answers to without being written to (INFO commandstats names): the group's probes
# and its replication link, and this test's reads.
SOURCE_READS = {"info", "ping", "client", "psync", "sync", "replconf", "config", "command", "hello", "dbsize", "get",
                "select", "auth"}
MIGRATED = {**HA, "NumCacheClusters": 2, "MultiAZEnabled": True}


def _source_writes(source: redis.Redis) -> dict[str, int]:
    """The source's write commands so far, by name, with their counts (INFO commandstats)."""
    stats = source.info("commandstats")
    calls = {name.removeprefix("cmdstat_").split("|")[0]: int(value["calls"]) for name, value in stats.items()}
    return {name: count for name, count in calls.items() if name not in SOURCE_READS}


def _events(ec: Any, source_id: str) -> list[str]:
    return [str(e["Message"]) for e in ec.describe_events(SourceIdentifier=source_id, Duration=60)["Events"]]


def _last(messages: list[str], text: str) -> int:
    return max((n for n, message in enumerate(messages) if text in message), default=-1)


def _migration(group_id: str) -> Any:
    """A run's migration from a bare valkey-server of its own: a user's StartMigration, then, once
    the group says it is in sync, CompleteMigration -- asked again after a restart should the
    completion not be pending or done (a failed one says so in an event), as a user would."""

    def bind(stack: contextlib.ExitStack[Any]) -> Workflow:
        engines = BareEngines()
        stack.callback(engines.close)
        counting = threading.Event()  # set once CompleteMigration is asked: the writer's keys count from then
        state: dict[str, Any] = {}

        def setup(ec: Any) -> None:
            source = engines(installed("valkey", "8.1"), host=10)
            client = redis.Redis(host=source.address, port=source.port, decode_responses=True)
            stack.callback(client.close)
            pipe = client.pipeline(transaction=False)
            for n in range(SOURCE_KEYS):
                pipe.set(f"source:{n}", n)
            pipe.execute()
            state.update(source=source, client=client, before=_source_writes(client), asked=0.0)
            _create(group_id, **MIGRATED)(ec)

        def complete_when_in_sync(ec: Any) -> None:
            messages = _events(ec, group_id)
            failed = _last(messages, f"Complete Migration failed for {group_id}")
            pending = _last(messages, f"Completing migration of replication group {group_id}") > failed
            if pending or _last(messages, "is in sync with the source") < 0 or time.monotonic() - state["asked"] < 1:
                return
            counting.set()
            state["asked"] = time.monotonic()
            try:
                ec.complete_migration(ReplicationGroupId=group_id)
            except botocore.exceptions.ClientError as error:
                # Already completing (asked before the crash), or completed meanwhile.
                if error.response["Error"]["Code"] not in ("InvalidReplicationGroupState",
                                                           "ReplicationGroupNotUnderMigrationFault"):
                    raise

        def done(ec: Any) -> bool:
            group = describe(ec, group_id)
            if group is None:
                return False
            if group["Status"] == "migrating":
                complete_when_in_sync(ec)
                return False
            # Converged once available with its primary a primary again: no longer following the source.
            primary = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
            return bool(group["Status"] == "available" and engine(primary).info("replication")["role"] == "master")

        def action(ec: Any, server: Server) -> Callable[[Any], bool]:
            source = state["source"]
            ec.start_migration(ReplicationGroupId=group_id,
                               CustomerNodeEndpointList=[{"Address": source.address, "Port": source.port}])
            pipe = state["client"].pipeline(transaction=False)
            for n in range(LATER_KEYS):
                pipe.set(f"later:{n}", n)
            pipe.execute()
            return done

        def check(ec: Any) -> list[str]:
            problems = []
            group = describe(ec, group_id)
            assert group is not None
            primary = engine(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"])
            expected = {**{f"source:{n}": str(n) for n in range(SOURCE_KEYS)},
                        **{f"later:{n}": str(n) for n in range(LATER_KEYS)}}
            names = list(expected)
            values = dict(zip(names, primary.mget(names), strict=True))
            missing = [name for name in names if values[name] != expected[name]]
            if missing:
                problems.append(f"{len(missing)} of the source's {len(names)} keys not on the group: {missing[:5]}")
            client, before = state["client"], state["before"]
            writes = _source_writes(client)
            if writes != {**before, "set": before.get("set", 0) + LATER_KEYS} or client.dbsize() != len(names):
                problems.append(f"the source was written to: its writes {writes} (before the migration {before}, "
                                f"then {LATER_KEYS} SETs of the test), {client.dbsize()} keys")
            return problems

        def make_writer(ec: Any) -> ConfirmedWriter:
            group = describe(ec, group_id)
            assert group is not None
            return ConfirmedWriter(group, counting=counting)

        return dataclasses.replace(workflow, setup=setup, action=action, check=check,
                                   make_writer=make_writer, bind=None)

    workflow = Workflow("migration", group_id, False, _nothing, lambda ec, server: None, Shape(1, 1), bind=bind)
    return workflow


# ---------------------------------------------------------------------------------- global datastore failover

GLOBAL = {**BASE, "CacheNodeType": "cache.r6g.large"}  # ElastiCache's global datastores take no T node types
EAST, WEST = "us-east-1", "us-west-2"


def _global_id(ec: Any) -> str:
    return str(ec.describe_global_replication_groups()["GlobalReplicationGroups"][0]["GlobalReplicationGroupId"])


def _global_record(ec: Any) -> dict[str, Any]:
    return dict(ec.describe_global_replication_groups(ShowMemberInfo=True)["GlobalReplicationGroups"][0])


def _primary_node(group: dict[str, Any]) -> str:
    return str(next(m for m in group["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "primary")[
        "ReadEndpoint"]["Address"])


def _global_datastore(east_id: str, west_id: str) -> Any:
    """A global datastore: ``east_id`` (1+1) its primary in us-east-1, ``west_id`` (1+1) its secondary in us-west-2."""
    def setup(ec: Any) -> None:
        west = in_region(ec, WEST)
        _create(east_id, NumCacheClusters=2, **GLOBAL)(ec)
        global_id = ec.create_global_replication_group(
            GlobalReplicationGroupIdSuffix="crash", PrimaryReplicationGroupId=east_id,
        )["GlobalReplicationGroup"]["GlobalReplicationGroupId"]
        west.create_replication_group(ReplicationGroupId=west_id, ReplicationGroupDescription="secondary",
                                      GlobalReplicationGroupId=global_id, NumCacheClusters=2)
        wait_group(west, west_id, timeout=60)
        wait_until(lambda: _global_record(ec)["Status"] == "available"
                   and all(m["Status"] == "associated" for m in _global_record(ec)["Members"]), 30,
                   "the global datastore available with both members associated")

    return setup


def _global_failover(east_id: str, west_id: str) -> Any:
    """FailoverGlobalReplicationGroup to us-west-2; done once the roles swapped in the records and on
    the engines: us-west-2's primary a primary, us-east-1's following it."""
    def action(ec: Any, server: Server) -> Callable[[Any], bool]:
        ec.failover_global_replication_group(GlobalReplicationGroupId=_global_id(ec), PrimaryRegion=WEST,
                                             PrimaryReplicationGroupId=west_id)
        return lambda ec: _swapped(ec, east_id, west_id)

    return action


def _swapped(ec: Any, east_id: str, west_id: str) -> bool:
    record = _global_record(ec)
    roles = {m["ReplicationGroupRegion"]: m["Role"] for m in record["Members"]}
    if record["Status"] != "available" or roles != {EAST: "SECONDARY", WEST: "PRIMARY"}:
        return False
    west = describe(in_region(ec, WEST), west_id)
    east = describe(ec, east_id)
    if west is None or east is None or west["Status"] != "available":
        return False
    try:
        new, old = engine(_primary_node(west)).info("replication"), engine(_primary_node(east)).info("replication")
    except redis.RedisError:
        return False
    return bool(new["role"] == "master" and old["role"] == "slave" and old.get("master_host") == _primary_node(west)
                and old.get("master_link_status") == "up")


def _global_checks(east_id: str, west_id: str) -> Any:
    """Once converged: us-west-2's engines agree among themselves, and us-east-1 refuses writes (READONLY)."""
    def check(ec: Any) -> list[str]:
        west = describe(in_region(ec, WEST), west_id)
        east = describe(ec, east_id)
        assert west is not None and east is not None
        problems = engines_agree(west)
        if west.get("GlobalReplicationGroupInfo", {}).get("GlobalReplicationGroupMemberRole") != "PRIMARY":
            problems.append(f"{west_id} is described as {west.get('GlobalReplicationGroupInfo')}")
        try:
            engine(east["NodeGroups"][0]["PrimaryEndpoint"]["Address"]).set("crash:probe", "east")
            problems.append(f"{east_id}, the secondary, accepted a write")
        except redis.exceptions.ReadOnlyError:
            pass
        return problems

    return check


def _global_writer(east_id: str, west_id: str) -> Any:
    """Writes to us-east-1's primary endpoint, and to us-west-2's once us-east-1 answers READONLY."""
    def make_writer(ec: Any) -> ConfirmedWriter:
        east, west = describe(ec, east_id), describe(in_region(ec, WEST), west_id)
        assert east is not None and west is not None
        return ConfirmedWriter(east, standby=(west["NodeGroups"][0]["PrimaryEndpoint"]["Address"],))

    return make_writer


WORKFLOWS += (
    _migration("mig"),
    Workflow("global-failover", "gf-east", False, _global_datastore("gf-east", "gf-west"),
             _global_failover("gf-east", "gf-west"), Shape(1, 1, GLOBAL["CacheNodeType"]), regions=(EAST, WEST),
             check=_global_checks("gf-east", "gf-west"), make_writer=_global_writer("gf-east", "gf-west")),
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
    ("reshard-out", "Operation RESHARD moving slots + ReplicationGroup modifying#1"),
    ("reshard-in", "Operation RESHARD moving slots + ReplicationGroup modifying#2"),
    ("failover", "CacheCluster modifying + ReplicationGroup modifying#1"),
    ("node-type", "ReplicationGroup available#1"),
    ("failover-enabled", "CacheCluster available#5"),
    ("snapshot", "Operation SNAPSHOT streaming#1"),
    ("parameters", "CacheNodeParameters#5"),
    ("upgrade", "Operation FAILOVER requested + Operation UPGRADE failing over#1"),
    ("restore", "Restore moving#1"),
    ("restore-reshape", "Operation CREATE restoring#1"),
    ("acl-sync", "Operation ACCESS requested + ReplicationGroup modifying#1"),
    ("migration", "Migration#3"),
    ("global-failover", "GlobalReplicationGroup available + ReplicationGroup available#1"),
)

# Crash points where the product is known not to converge (RELIABILITY.md, "Known failures"):
# `make chaos` reports whether each recurred instead of failing on it. Keyed by workflow and step.
KNOWN: dict[tuple[str, str], str] = {}
