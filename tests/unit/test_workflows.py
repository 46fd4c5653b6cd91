"""The workflows' pure decisions: who owns a slot, whether the cluster agrees, what a failed reshard
falls back to, whether a node type's memory fits the data."""

from __future__ import annotations

import datetime as dt

from cachefleet.control.workflows.node_type import NodeTypeVerdict, node_type_verdict
from cachefleet.control.workflows.sharded import (
    FORMING_NODE_TIMEOUT,
    STEADY_NODE_TIMEOUT,
    ShardedTopology,
    forming_node_timeout,
    rollback_plan,
)
from cachefleet.domain.operations import Resharding
from cachefleet.domain.replication_groups import GroupStatus, NodeGroup, ReplicationGroup
from cachefleet.engine.cluster import parse_nodes

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _view(myself: str, epoch: int, slots: str, others: str = ""):
    line = f"{myself} 127.0.0.1:6379@16379 myself,master - 0 0 {epoch} connected {slots}"
    return parse_nodes(line + ("\n" + others if others else ""))


def test_slot_owners_come_from_the_primaries_and_the_higher_epoch_wins_a_dispute():
    views = {
        "g-0001-001": _view("a" * 40, 1, "0-100"),
        "g-0002-001": _view("b" * 40, 3, "90-200"),  # 90-100 claimed by both: epoch 3 wins
        "g-0001-002": _view("c" * 40, 9, "0-16383"),  # not a primary of the plan: ignored
    }
    owners = ShardedTopology._owners(views, {"0001": "a" * 40, "0002": "b" * 40})
    assert owners[0] == "0001" and owners[89] == "0001" and owners[95] == "0002" and owners[200] == "0002"
    assert 201 not in owners


def test_the_cluster_agrees_only_when_every_node_sees_the_planned_slots():
    a, b = "a" * 40, "b" * 40
    line_b = f"{b} 127.0.0.2:6379@16379 master - 0 0 2 connected 8192-16383"
    line_a = f"{a} 127.0.0.1:6379@16379 master - 0 0 1 connected 0-8191"
    views = {"p1": _view(a, 1, "0-8191", line_b), "p2": parse_nodes(line_a + "\n" + line_b.replace("master", "myself,master"))}
    target = {"0001": set(range(8192)), "0002": set(range(8192, 16384))}
    primaries = {"0001": "p1", "0002": "p2"}
    ids = {"p1": a, "p2": b}
    assert ShardedTopology._agreed(views, ids, target, primaries)
    moved = {"0001": set(range(8000)), "0002": set(range(8000, 16384))}
    assert not ShardedTopology._agreed(views, ids, moved, primaries)


def test_a_failed_reshard_keeps_slots_where_they_are_and_drops_the_empty_new_shards():
    group = ReplicationGroup(
        region="us-east-1", group_id="g", description="d", status=GroupStatus.MODIFYING, engine="valkey",
        engine_version="8.1.8", node_type="cache.t4g.micro", port=6379, subnet_group_name="default",
        parameter_group_name="default.valkey8.cluster.on", create_time=NOW, cluster_enabled=True,
        node_groups=(
            NodeGroup("0001", "g-0001-001", ("g-0001-001",), slots="0-6000"),
            NodeGroup("0002", "g-0002-001", ("g-0002-001",), slots="8192-16383"),
            NodeGroup("0003", "g-0003-001", ("g-0003-001",), slots="6001-8191"),  # got some: it stays
            NodeGroup("0004", "g-0004-001", ("g-0004-001",), slots=""),  # got none: it goes
        ),
    )
    plan = Resharding(target_slots=(), total_slots=8000, adding=("0003", "0004"))
    fallback = rollback_plan(group, plan)
    assert fallback.removing == ("0004",)
    assert dict(fallback.target_slots) == {"0001": "0-6000", "0002": "8192-16383", "0003": "6001-8191"}


def test_a_node_type_change_is_refused_by_the_first_node_whose_data_does_not_fit():
    assert node_type_verdict(100, used={"g-001": 100, "g-002": 90}, waiting=[]) == (NodeTypeVerdict.APPLY, "")
    assert node_type_verdict(500, used={"g-002": 600, "g-001": 700, "g-003": 10}, waiting=[]) == (
        NodeTypeVerdict.REFUSE, "g-001")
    # A member that could not be measured (restarting, resyncing) never lets a change through.
    assert node_type_verdict(500, used={"g-001": 10}, waiting=["g-002"]) == (NodeTypeVerdict.WAIT, "g-002")


def test_a_primary_the_engines_made_a_replica_of_its_own_replica_is_followed_by_the_records():
    from cachefleet.control.workflows.sharded import adopted_primaries

    p, r, other = "a" * 40, "b" * 40, "c" * 40
    group = ReplicationGroup(
        region="us-east-1", group_id="g", description="d", status=GroupStatus.MODIFYING, engine="valkey",
        engine_version="9.1.2", node_type="cache.t4g.micro", port=6379, subnet_group_name="default",
        parameter_group_name="default.valkey9.cluster.on", create_time=NOW, cluster_enabled=True,
        node_groups=(NodeGroup("0003", "g-0003-001", ("g-0003-001", "g-0003-002"), slots=""),),
    )
    replica_of = lambda me, master: parse_nodes(f"{me} 127.0.0.1:6379@16379 myself,slave {master} 0 0 1 connected")  # noqa: E731
    ids = {"g-0003-001": p, "g-0003-002": r}
    flipped = {"g-0003-001": replica_of(p, r), "g-0003-002": _view(r, 2, "")}
    assert adopted_primaries(group, flipped, ids) == {"0003": "g-0003-002"}
    usual = {"g-0003-001": _view(p, 1, ""), "g-0003-002": replica_of(r, p)}
    assert adopted_primaries(group, usual, ids) == {}
    # A primary following a node outside its node group is not adopted (that is someone else's shard).
    elsewhere = {"g-0003-001": replica_of(p, other), "g-0003-002": replica_of(r, p)}
    assert adopted_primaries(group, elsewhere, ids) == {}


def test_strangers_include_nodes_without_an_address_but_not_handshakes_or_a_nodes_own_primary():
    from cachefleet.control.workflows.sharded import strangers

    me, primary, member, gone, temp = "a" * 40, "b" * 40, "c" * 40, "d" * 40, "e" * 40
    view = parse_nodes(
        f"{me} 127.0.0.1:6379@16379 myself,slave {primary} 0 0 1 connected\n"
        f"{primary} 127.0.0.2:6379@16379 master - 0 0 1 connected 0-16383\n"
        f"{member} 127.0.0.3:6379@16379 slave {primary} 0 0 1 connected\n"
        # A replaced node whose address now answers with another id: the engine keeps it as noaddr.
        f"{gone} :0@0 master,noaddr - 0 0 1 disconnected\n"
        f"{temp} 127.0.0.9:6379@16379 handshake - 0 0 0 disconnected\n"
    )
    assert strangers({"n1": view}, {me, member}) == [("n1", gone)]
    assert strangers({"n1": view}, {me, member, gone}) == []


def test_the_members_of_a_removed_shard_are_on_their_way_out_once_it_owns_no_slot():
    from cachefleet.control.workflows.sharded import leaving_shards

    group = ReplicationGroup(
        region="us-east-1", group_id="g", description="d", status=GroupStatus.MODIFYING, engine="valkey",
        engine_version="9.1.2", node_type="cache.t4g.micro", port=6379, subnet_group_name="default",
        parameter_group_name="default.valkey9.cluster.on", create_time=NOW, cluster_enabled=True,
        node_groups=(
            NodeGroup("0001", "g-0001-001", ("g-0001-001", "g-0001-002"), slots="0-8191"),
            NodeGroup("0002", "g-0002-001", ("g-0002-001", "g-0002-002"), slots="8192-16383"),
        ),
    )
    plan = Resharding(target_slots=(("0002", "0-16383"),), total_slots=8192, removing=("0001",))
    # Still owning slots: it takes part in the cluster as usual (its slots are still to move).
    assert leaving_shards(group, plan, {0: "0001", 9000: "0002"}) == set()
    # Emptied: its nodes are not made to meet the others again (the staying ones forget them).
    assert leaving_shards(group, plan, {0: "0002", 9000: "0002"}) == {"g-0001-001", "g-0001-002"}
    assert leaving_shards(group, None, {0: "0002"}) == set()


def test_a_forming_cluster_lowers_its_node_timeout_only_while_its_pings_stay_few():
    # Up to 100 nodes a cluster forms at 1 s, as before; a larger one at the steady 15 s (at 1 s,
    # 200 nodes send ~80,000 pings a second, N (N - 1) / (T / 2), and did not form on 2 cores).
    assert forming_node_timeout(9) == FORMING_NODE_TIMEOUT == "1000"
    assert forming_node_timeout(100) == "1000"
    assert forming_node_timeout(101) == STEADY_NODE_TIMEOUT == "15000"
    assert forming_node_timeout(500) == STEADY_NODE_TIMEOUT
