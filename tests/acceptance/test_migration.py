"""Online migration with real engines: a cluster-mode-disabled group follows a bare valkey-server,
then Debian's redis-server holding 100,000 keys (through a failover of the group's primary, then losing the source: CompleteMigration needs Force); writes to the group are refused while it
migrates, the source's new writes follow (across a control-plane restart), CompleteMigration
makes the group writable and it stops following. TestMigration says what fails for an
unreachable and an AUTH-protected source. The source is never written to by Cachefleet: its
commandstats show only the test's own writes and its keyspace only the test's keys."""

from __future__ import annotations

import os
import signal

import pytest
import redis

from enginekit import installed
from helpers import engine, events_of, wait_event, wait_for, wait_group

SPEC = {
    "ReplicationGroupDescription": "migration target", "Engine": "valkey", "CacheNodeType": "cache.t4g.micro",
    "NumCacheClusters": 2, "AutomaticFailoverEnabled": True, "MultiAZEnabled": True,
}
READ_COMMANDS = {"info", "ping", "client", "psync", "sync", "replconf", "config", "debug", "command", "hello", "dbsize",
                 "get", "select", "auth"}


def _writes(source: redis.Redis) -> dict[str, int]:
    """The source's write commands so far, by name, with their counts (INFO commandstats)."""
    stats = source.info("commandstats")
    calls = {name.removeprefix("cmdstat_").split("|")[0]: int(value["calls"]) for name, value in stats.items()}
    return {name: count for name, count in calls.items() if name not in READ_COMMANDS}


def _endpoint(source) -> list[dict]:
    return [{"Address": source.address, "Port": source.port}]


def _follows(group_node: str, key: str, value: str) -> bool:
    return engine(group_node).get(key) == value


def test_migrations_from_valkey_and_redis_follow_then_complete(make_server, start_engine):
    try:
        redis_binary = installed("redis", "7.0")
    except LookupError:
        pytest.skip("Debian's redis-server is not installed")
    valkey_source = start_engine(installed("valkey", "8.1"), host=10)
    locked = start_engine(installed("valkey", "8.1"), host=11, extra={"requirepass": "s3cret"})
    redis_source = start_engine(redis_binary, host=12, extra={"enable-debug-command": "yes"})
    vk = redis.Redis(host=valkey_source.address, port=valkey_source.port, decode_responses=True)
    vk.mset({"a": "1", "b": "2", "c": "3"})

    server = make_server()
    ec = server.client()
    ec.create_replication_group(ReplicationGroupId="mig", **SPEC)
    group = wait_group(ec, "mig")
    primary = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    reader = group["NodeGroups"][0]["ReaderEndpoint"]["Address"]

    # TestMigration says what fails, and changes nothing.
    ec.test_migration(ReplicationGroupId="mig", CustomerNodeEndpointList=[{"Address": start_engine.address(99),
                                                                           "Port": 6379}])
    wait_event(ec, "mig", "Test Migration failed for mig: the source " + start_engine.address(99) + ":6379 is not "
               "reachable")
    ec.test_migration(ReplicationGroupId="mig", CustomerNodeEndpointList=_endpoint(locked))
    wait_event(ec, "mig", "requires authentication (AUTH)")
    ec.test_migration(ReplicationGroupId="mig", CustomerNodeEndpointList=_endpoint(valkey_source))
    wait_event(ec, "mig", "Test Migration successful for mig")
    assert ec.describe_replication_groups(ReplicationGroupId="mig")["ReplicationGroups"][0]["Status"] == "available"

    # From a bare valkey-server.
    before = _writes(vk)
    started = ec.start_migration(ReplicationGroupId="mig", CustomerNodeEndpointList=_endpoint(valkey_source))
    assert started["ReplicationGroup"]["Status"] == "migrating"
    wait_event(ec, "mig", "Migration of replication group mig is in sync with the source")
    assert engine(primary).mget("a", "b", "c") == ["1", "2", "3"]
    with pytest.raises(redis.exceptions.ReadOnlyError):
        engine(primary).set("mine", "no")
    vk.set("later", "follows")
    wait_for(lambda: _follows(reader, "later", "follows"), timeout=10, what="a source write on the group's replica")
    assert _writes(vk) == {**before, "set": before.get("set", 0) + 1}  # only the test's own write
    ec.complete_migration(ReplicationGroupId="mig")
    wait_event(ec, "mig", "Complete Migration successful for mig")
    wait_group(ec, "mig")
    engine(primary).set("mine", "yes")
    wait_for(lambda: _follows(reader, "mine", "yes"), timeout=10, what="the group's replica following its primary")
    vk.set("after", "complete")
    assert vk.dbsize() == 5 and engine(primary).get("after") is None and engine(primary).dbsize() == 5
    assert engine(primary).info("replication")["role"] == "master"

    # From Debian's redis-server holding 100,000 keys, across a control-plane restart.
    rd = redis.Redis(host=redis_source.address, port=redis_source.port, decode_responses=True)
    rd.execute_command("DEBUG", "POPULATE", 100000)
    before = _writes(rd)
    ec.start_migration(ReplicationGroupId="mig", CustomerNodeEndpointList=_endpoint(redis_source))
    wait_event(ec, "mig", "from the source " + f"{redis_source.address}:{redis_source.port} (Redis OSS 7.0")
    wait_for(lambda: engine(reader).dbsize() == 100000, timeout=20, what="100,000 keys on the group's replica")
    assert engine(primary).get("mine") is None  # the full sync replaced the group's data
    server.stop()
    rd.set("during", "restart")
    server.start()
    ec = server.client()
    wait_for(lambda: _follows(reader, "during", "restart"), timeout=10, what="following across a restart")
    assert ec.describe_replication_groups(ReplicationGroupId="mig")["ReplicationGroups"][0]["Status"] == "migrating"
    # A failover while migrating: the promoted replica follows the source in its turn (ElastiCache
    # replaces a migrating group's failed node and carries on).
    os.kill(int(engine(primary).info("server")["process_id"]), signal.SIGKILL)
    wait_event(ec, "mig", "after a failover, primary mig-002 follows the source", timeout=20)
    wait_group(ec, "mig", "migrating")
    rd.set("after", "failover")
    wait_for(lambda: _follows(primary, "after", "failover"), timeout=20, what="the new primary following the source")
    with pytest.raises(redis.exceptions.ReadOnlyError):
        engine(primary).set("mine", "no")
    assert _writes(rd) == {**before, "set": before.get("set", 0) + 2} and rd.dbsize() == 100002
    # The source goes away: completing without Force is refused (not in sync), with Force it completes.
    redis_source.process.kill()
    wait_event(ec, "mig", "the replication link to the source " + f"{redis_source.address}:{redis_source.port} is down")
    ec.complete_migration(ReplicationGroupId="mig")
    wait_event(ec, "mig", "Complete Migration failed for mig: the data is not in sync with the source")
    assert ec.describe_replication_groups(ReplicationGroupId="mig")["ReplicationGroups"][0]["Status"] == "migrating"
    ec.complete_migration(ReplicationGroupId="mig", Force=True)
    wait_group(ec, "mig")
    assert engine(primary).dbsize() == 100002
    engine(primary).set("written", "here")
    wait_for(lambda: _follows(reader, "written", "here"), timeout=10, what="the replica following the new primary")
    assert len([m for m in events_of(ec, "mig") if "Complete Migration successful for mig" in m]) == 2


def test_in_sync_waits_for_the_groups_replica_to_have_the_sources_data(make_server, start_engine):
    """The primary's full sync from the source is followed by its replica's own from the primary:
    the migration is in sync (and completes) only once the replica has the data too, else a
    failover right after CompleteMigration would promote a replica without it. Found by the crash
    suite (a restart right after StartMigration: the group became available, its replica still
    syncing). The primary's RDB for its replica is made slow (rdb-key-save-delay, 3 ms a key)."""
    source = start_engine(installed("valkey", "8.1"), host=10)
    client = redis.Redis(host=source.address, port=source.port, decode_responses=True)
    client.mset({f"k{n}": str(n) for n in range(1000)})
    server = make_server()
    ec = server.client()
    ec.create_replication_group(ReplicationGroupId="mig-sync", **SPEC)
    group = wait_group(ec, "mig-sync")
    members = {m["CurrentRole"]: m["ReadEndpoint"]["Address"] for m in group["NodeGroups"][0]["NodeGroupMembers"]}
    engine(members["primary"]).config_set("rdb-key-save-delay", 3000)  # microseconds a key: a 3 s sync

    ec.start_migration(ReplicationGroupId="mig-sync", CustomerNodeEndpointList=_endpoint(source))
    wait_event(ec, "mig-sync", "is in sync with the source", timeout=30)
    info = engine(members["replica"]).info("replication")
    assert (info["master_host"], info["master_link_status"]) == (members["primary"], "up")
    assert engine(members["replica"]).dbsize() == 1000
    engine(members["primary"]).config_set("rdb-key-save-delay", 0)
    ec.complete_migration(ReplicationGroupId="mig-sync")
    wait_event(ec, "mig-sync", "Complete Migration successful for mig-sync")
    wait_group(ec, "mig-sync")
