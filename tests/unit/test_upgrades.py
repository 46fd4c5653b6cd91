"""Engine upgrade rules, weekly windows, the rolling replacement's decisions, service update statuses and
the maintenance window's decisions -- pure logic, with a real store where records are involved."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import replace

import pytest

from cachefleet.control.workflows.upgrades import Decision, Move, needs_replacing, newest, next_move
from cachefleet.domain import errors
from cachefleet.domain.base import Dependencies
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus, CreateCacheClusterRequest
from cachefleet.domain.elasticache import ElastiCache
from cachefleet.domain.engines import EngineRelease
from cachefleet.domain.operations import EngineUpgrade, Operation, OperationKind
from cachefleet.domain.replication_groups import (
    CreateReplicationGroupRequest,
    GroupStatus,
    ModifyReplicationGroupRequest,
    NodeGroup,
    ReplicationGroup,
)
from cachefleet.domain.service_updates import (
    ActionStatus,
    ServiceUpdate,
    derived_status,
    update_name,
    updates_in,
)
from cachefleet.domain.upgrades import choose_target, static_differences
from cachefleet.domain.windows import Window, describe
from cachefleet.store.sqlite import SqliteStore

R70 = EngineRelease("redis", "7.0.15", "redis7", "Redis OSS 7.0.15")
V81 = EngineRelease("valkey", "8.1.8", "valkey8", "Valkey 8.1.8")
V819 = EngineRelease("valkey", "8.1.9", "valkey8", "Valkey 8.1.9")
V91 = EngineRelease("valkey", "9.1.2", "valkey9", "Valkey 9.1.2")
RELEASES = [R70, V81, V91]


# ---------------------------------------------------------------------- which build
@pytest.mark.parametrize(
    ("current", "engine", "version", "expected"),
    [
        (V81, None, "9.1", V91),
        (V81, "valkey", "9", V91),
        (R70, "valkey", "8.1", V81),
        (R70, "VALKEY", "9.1.2", V91),
        (V81, None, "8.1", None),  # the major.minor run: no change
        (V81, None, "8.1.8", None),
        (V81, None, None, None),
        (R70, "redis", "7.0", None),
    ],
)
def test_the_build_an_upgrade_moves_to(current, engine, version, expected):
    assert choose_target(RELEASES, current, engine=engine, version=version, noun="replication group") == expected


@pytest.mark.parametrize(
    ("current", "engine", "version", "error", "says"),
    [
        (V91, None, "8.1", errors.InvalidParameterCombination, "you cannot downgrade to an earlier engine version"),
        (V91, "redis", "7.0", errors.InvalidParameterCombination, "never Valkey to Redis OSS"),
        (V81, "redis", None, errors.InvalidParameterCombination, "never Valkey to Redis OSS"),
        (R70, "valkey", None, errors.InvalidParameterCombination, "needs EngineVersion"),
        (V81, None, "7.2", errors.InvalidParameterValue, "not installed"),
        (R70, "memcached", "1.6", errors.InvalidParameterValue, "memcached"),
        (R70, "valkey", "10.0", errors.InvalidParameterValue, "not installed"),
    ],
)
def test_refusals_of_an_engine_change(current, engine, version, error, says):
    with pytest.raises(error, match=says):
        choose_target(RELEASES, current, engine=engine, version=version, noun="replication group")


def test_the_downgrade_refusal_names_the_resource_as_elasticache_does():
    with pytest.raises(errors.InvalidParameterCombination) as refused:
        choose_target(RELEASES, V91, engine=None, version="8.1", noun="cluster")
    assert "you must delete the existing cluster and create it anew with the earlier engine version" in refused.value.message


def test_static_parameters_compared_across_families():
    assert static_differences({"databases": "32", "maxclients": "65000"}, {"databases": "16", "maxclients": "65000"},
                              old_family="redis7", new_family="valkey8") == ["databases"]
    assert static_differences({"cluster-enabled": "no"}, {"cluster-enabled": "yes"},
                              old_family="redis7", new_family="valkey8") == []


# ---------------------------------------------------------------------- windows
SUNDAY = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)


def test_a_window_opens_weekly_and_is_open_for_its_length():
    window = Window.parse("sun:05:00-sun:06:00")
    assert window.opens_at_or_after(SUNDAY) == SUNDAY + dt.timedelta(hours=5)
    assert window.opens_at_or_after(SUNDAY + dt.timedelta(hours=5)) == SUNDAY + dt.timedelta(hours=5)
    assert window.opens_at_or_after(SUNDAY + dt.timedelta(hours=5, seconds=1)) == SUNDAY + dt.timedelta(days=7, hours=5)
    assert not window.is_open(SUNDAY + dt.timedelta(hours=4, minutes=59))
    assert window.open_since(SUNDAY + dt.timedelta(hours=5, minutes=30)) == SUNDAY + dt.timedelta(hours=5)
    assert not window.is_open(SUNDAY + dt.timedelta(hours=6))
    assert describe(SUNDAY + dt.timedelta(hours=5)) == "2026-12-06 05:00 UTC"


def test_a_window_across_the_week_boundary():
    window = Window.parse("sat:23:00-sun:01:00")
    saturday_night = SUNDAY - dt.timedelta(hours=1)
    assert window.opens_at_or_after(SUNDAY - dt.timedelta(hours=2)) == saturday_night
    assert window.open_since(SUNDAY + dt.timedelta(minutes=30)) == saturday_night
    assert window.closes(saturday_night) == SUNDAY + dt.timedelta(hours=1)
    assert not window.is_open(SUNDAY + dt.timedelta(hours=1))


# ---------------------------------------------------------------------- the rolling replacement
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
UPGRADE = EngineUpgrade("valkey", "9.1.2", "default.valkey9")


def member(cluster_id: str, *, version: str = "8.1.8", status: ClusterStatus = ClusterStatus.AVAILABLE,
           node_group: str = "0001") -> CacheCluster:
    from cachefleet.domain.cache_clusters import CacheNode, NodeStatus

    return CacheCluster(
        region="us-east-1", cluster_id=cluster_id, status=status, engine="valkey", engine_version=version,
        node_type="cache.t4g.micro", port=6379, availability_zone="us-east-1a", subnet_group_name="default",
        parameter_group_name="default.valkey8", node=CacheNode("0001", "127.0.0.1", 6379, "us-east-1a",
                                                               NodeStatus.AVAILABLE, NOW),
        create_time=NOW, replication_group_id="g", node_group_id=node_group,
    )


def group(*node_groups: NodeGroup) -> ReplicationGroup:
    return ReplicationGroup(
        region="us-east-1", group_id="g", description="", status=GroupStatus.MODIFYING, engine="valkey",
        engine_version="8.1.8", node_type="cache.t4g.micro", port=6379, subnet_group_name="default",
        parameter_group_name="default.valkey8", node_groups=node_groups, create_time=NOW,
        cluster_enabled=len(node_groups) > 1,
    )


def decide(g: ReplicationGroup, members: dict[str, CacheCluster], upgrade: EngineUpgrade = UPGRADE,
           not_ready: frozenset[str] = frozenset()) -> Decision:
    needing = {cid for cid, m in members.items() if needs_replacing(m, upgrade, pending_reboot=False)}
    ready = {cid for cid, m in members.items() if m.status == ClusterStatus.AVAILABLE and cid not in not_ready}
    return next_move(g, members, upgrade, needing=needing, ready=ready)


def test_replicas_first_then_the_failover_then_the_old_primary():
    shard = NodeGroup("0001", "g-001", ("g-001", "g-002", "g-003"))
    g = group(shard)
    members = {cid: member(cid) for cid in shard.member_cluster_ids}
    assert decide(g, members) == Decision(Move.REPLACE, "g-002", "0001")
    members["g-002"] = member("g-002", version="9.1.2")
    assert decide(g, members) == Decision(Move.REPLACE, "g-003", "0001")
    # A replica that is not back (in sync) yet holds the next one.
    assert decide(g, members, not_ready=frozenset({"g-002"})).move == Move.WAIT
    members["g-003"] = member("g-003", version="9.1.2")
    assert decide(g, members) == Decision(Move.FAILOVER, "g-001", "0001")
    # After the failover the old primary is a replica, not running (fenced): it is replaced at once.
    g = group(replace(shard, primary_cluster_id="g-002"))
    members["g-001"] = member("g-001", status=ClusterStatus.MODIFYING)
    assert decide(g, members) == Decision(Move.REPLACE, "g-001", "0001")
    members["g-001"] = member("g-001", version="9.1.2")
    assert decide(g, members).move == Move.DONE


def test_a_replica_waits_for_its_primary_and_a_stop_goes_no_further():
    shard = NodeGroup("0001", "g-001", ("g-001", "g-002"))
    members = {cid: member(cid) for cid in shard.member_cluster_ids}
    members["g-001"] = replace(members["g-001"], engine_version="9.1.2")
    members["g-002"] = member("g-002", status=ClusterStatus.MODIFYING)
    assert decide(group(shard), members, not_ready=frozenset({"g-001"})).move == Move.WAIT
    assert decide(group(shard), {k: member(k) for k in members}, replace(UPGRADE, stopping=True)).move == Move.STOP


def test_shards_go_one_after_the_other_and_a_lone_primary_restarts_in_place():
    first = NodeGroup("0001", "g-0001-001", ("g-0001-001", "g-0001-002"))
    second = NodeGroup("0002", "g-0002-001", ("g-0002-001",))
    members = {cid: member(cid, node_group=ng.node_group_id) for ng in (first, second) for cid in ng.member_cluster_ids}
    g = group(first, second)
    assert decide(g, members) == Decision(Move.REPLACE, "g-0001-002", "0001")
    members["g-0001-002"] = replace(members["g-0001-002"], engine_version="9.1.2")
    assert decide(g, members) == Decision(Move.FAILOVER, "g-0001-001", "0001")
    members["g-0001-001"] = replace(members["g-0001-001"], engine_version="9.1.2")
    assert decide(g, members) == Decision(Move.RESTART_IN_PLACE, "g-0002-001", "0002")


def test_static_parameter_restarts_replace_only_the_nodes_waiting_for_a_reboot():
    restart = EngineUpgrade("valkey", "8.1.8", "default.valkey8", restart_pending_reboot=True)
    assert needs_replacing(member("a"), restart, pending_reboot=True)
    assert not needs_replacing(member("a"), restart, pending_reboot=False)
    assert needs_replacing(member("a"), UPGRADE, pending_reboot=False)


def test_the_newest_build_among_members():
    redis = replace(member("r"), engine="redis", engine_version="7.0.15")
    assert newest([redis, member("v")]).cluster_id == "v"
    assert newest([member("a", version="8.1.8"), member("b", version="9.1.2")]).cluster_id == "b"


# ---------------------------------------------------------------------- service updates
def test_updates_are_the_newest_patch_build_of_a_line_with_several():
    assert updates_in([V81, V819, V91, R70]) == [V819]
    assert updates_in(RELEASES) == []
    assert update_name("valkey", "8.1.9") == "valkey-8-1-9-engine-update"


def test_an_update_action_status():
    update = ServiceUpdate("us-east-1", "u", "valkey", "8.1.9", "8.1", NOW)
    assert update.applies_to("valkey", "8.1.8") and not update.applies_to("valkey", "8.1.9")
    assert not update.applies_to("valkey", "9.1.2") and not update.applies_to("redis", "8.1.8")
    g = group(NodeGroup("0001", "g-001", ("g-001",)))
    old, new = [member("g-001")], [member("g-001", version="8.1.9")]
    assert derived_status(update, g, old, None, None) == ActionStatus.SCHEDULED  # AutoMinorVersionUpgrade on
    assert derived_status(update, replace(g, auto_minor_version_upgrade=False), old, None, None) == ActionStatus.NOT_APPLIED
    running = Operation("us-east-1", "ReplicationGroup", "g", OperationKind.UPGRADE, "x", NOW, NOW,
                        upgrade=replace(UPGRADE, service_update="u"))
    assert derived_status(update, g, old, None, running) == ActionStatus.IN_PROGRESS
    assert derived_status(update, g, old, None, replace(running, upgrade=replace(
        running.upgrade, stopping=True))) == ActionStatus.STOPPING
    assert derived_status(update, g, new, None, None) == ActionStatus.COMPLETE


# ---------------------------------------------------------------------- the maintenance window, with records
class MovableClock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        return self.at


class Releases:
    def releases(self):
        return [V81, V91]


@pytest.fixture
def world(tmp_path):
    store = SqliteStore(tmp_path / "state.db")
    clock = MovableClock(SUNDAY + dt.timedelta(hours=1))
    changed = []
    use_cases = ElastiCache(Dependencies(store=store, catalog=Releases(), clock=clock,
                                         node_network=ipaddress.IPv4Network("127.81.0.0/24"),
                                         on_change=lambda kind, region, key: changed.append(key)))
    yield store, clock, use_cases, changed
    store.close()


def _available(store) -> None:
    with store.transaction() as tx:
        for found in store.list(ReplicationGroup):
            tx.put(replace(found, status=GroupStatus.AVAILABLE))
        for cluster in store.list(CacheCluster):
            tx.put(replace(cluster, status=ClusterStatus.AVAILABLE))
        for operation in store.list(Operation):
            tx.delete(operation)


def _events(store, source_id: str) -> list[str]:
    return [e.message for e in store.events("us-east-1", start=SUNDAY - dt.timedelta(days=1),
                                              end=SUNDAY + dt.timedelta(days=30), source_id=source_id)]


def test_pending_work_waits_for_the_window_start_and_starts_there(world):
    store, clock, use_cases, changed = world
    use_cases.replication_groups.create("us-east-1", CreateReplicationGroupRequest.parse("us-east-1", {
        "ReplicationGroupId": "g", "ReplicationGroupDescription": "d", "CacheNodeType": "cache.t4g.micro",
        "Engine": "valkey", "EngineVersion": "8.1", "NumCacheClusters": 2, "AutoMinorVersionUpgrade": False,
    }))
    _available(store)
    maintenance = use_cases.maintenance
    assert maintenance.next_wake(clock.now()) is None  # nothing waits
    use_cases.replication_groups.modify("us-east-1", ModifyReplicationGroupRequest.parse(
        {"ReplicationGroupId": "g", "CacheNodeType": "cache.t4g.small"}))
    use_cases.replication_groups.modify("us-east-1", ModifyReplicationGroupRequest.parse(
        {"ReplicationGroupId": "g", "EngineVersion": "9.1"}))
    assert store.get(ReplicationGroup, "us-east-1", "g").status == GroupStatus.AVAILABLE
    assert store.list(Operation) == []
    opens = SUNDAY + dt.timedelta(hours=5)
    assert maintenance.next_wake(clock.now()) == opens
    assert maintenance.run(clock.now()) == []  # the window is closed
    clock.at = opens
    started = maintenance.run(clock.now())
    assert len(started) == 1 and "scaling from cache.t4g.micro to cache.t4g.small" in started[0]
    kinds = sorted(o.kind.value for o in store.list(Operation))
    assert kinds == ["node-type", "upgrade"]
    upgrade = next(o for o in store.list(Operation) if o.kind == OperationKind.UPGRADE).upgrade
    assert (upgrade.engine_version, upgrade.parameter_group_name, upgrade.maintenance) == ("9.1.2", "default.valkey9", True)
    assert store.get(ReplicationGroup, "us-east-1", "g").status == GroupStatus.MODIFYING
    # The members keep their pending EngineVersion until each is replaced; the node type is under way.
    for cluster in store.list(CacheCluster):
        assert (cluster.pending.engine_version, cluster.pending.node_type) == ("9.1.2", None)
    assert "g" in changed
    messages = _events(store, "g")
    assert any("maintenance window sun:05:00-sun:06:00 open (2026-12-06 05:00 UTC to 2026-12-06 06:00 UTC)" in m
               for m in messages), messages
    # Looked at again within the window: nothing starts twice.
    clock.at = opens + dt.timedelta(minutes=1)
    assert maintenance.run(clock.now()) == []
    assert maintenance.next_wake(clock.now()) == clock.now() + dt.timedelta(seconds=30)


def test_apply_immediately_alone_starts_what_waits(world):
    store, clock, use_cases, _ = world
    use_cases.cache_clusters.create("us-east-1", CreateCacheClusterRequest.parse("us-east-1", {
        "CacheClusterId": "c", "CacheNodeType": "cache.t4g.micro", "Engine": "valkey", "EngineVersion": "8.1"}))
    _available(store)
    from cachefleet.domain.cache_clusters import ModifyCacheClusterRequest

    use_cases.cache_clusters.modify("us-east-1", ModifyCacheClusterRequest.parse({"CacheClusterId": "c", "EngineVersion": "9.1"}))
    cluster = store.get(CacheCluster, "us-east-1", "c")
    assert (cluster.status, cluster.pending.engine_version) == (ClusterStatus.AVAILABLE, "9.1.2")
    use_cases.cache_clusters.modify("us-east-1", ModifyCacheClusterRequest.parse({"CacheClusterId": "c", "ApplyImmediately": True}))
    assert store.get(CacheCluster, "us-east-1", "c").status == ClusterStatus.MODIFYING
    (operation,) = store.list(Operation)
    assert operation.kind == OperationKind.UPGRADE and operation.upgrade.engine_version == "9.1.2"
    # Recorded and read back whole.
    assert store.get(Operation, "us-east-1", operation.key) == operation


# ---------------------------------------------------------------------- the scheduler that wakes at the window
async def test_the_maintenance_scheduler_wakes_at_the_window_start_of_its_clock():
    import asyncio

    from cachefleet.control.maintenance import MaintenanceScheduler
    from inprocess import FakeClock

    clock = FakeClock(SUNDAY + dt.timedelta(hours=4))
    opens = SUNDAY + dt.timedelta(hours=5)
    looks: list[dt.datetime] = []
    scheduler = MaintenanceScheduler(clock=clock, next_wake=lambda now: opens if now < opens else None,
                                     run=lambda now: looks.append(now) or [])
    scheduler.start()
    try:
        for _ in range(200):
            if looks:
                break
            await asyncio.sleep(0.005)
        assert len(looks) == 1 and looks[0] < opens  # the first look, at start-up
        await asyncio.sleep(0.05)
        assert len(looks) == 1  # asleep until the window opens
        clock.set(opens - dt.timedelta(seconds=0.05))
        for _ in range(200):
            if len(looks) > 1:
                break
            await asyncio.sleep(0.005)
        assert len(looks) == 2 and opens <= looks[1] < opens + dt.timedelta(seconds=1)
        scheduler.poke()
        for _ in range(200):
            if len(looks) > 2:
                break
            await asyncio.sleep(0.005)
        assert len(looks) == 3  # a poke makes it look again
    finally:
        await scheduler.stop()
