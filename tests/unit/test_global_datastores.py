"""The rules of global datastores: the id's prefix and suffix, node types and engines, the planned
failover's role swap, whom a secondary's primary follows, ModifyGlobalReplicationGroup's request."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from cachefleet.domain import global_datastores as gd
from cachefleet.domain.cache_clusters import CacheCluster, CacheNode, ClusterStatus, NodeStatus
from cachefleet.domain.errors import InvalidParameterCombination, InvalidParameterValue
from cachefleet.domain.global_datastores import GlobalMember, GlobalReplicationGroup, MemberRole
from cachefleet.domain.identifiers import Region
from cachefleet.domain.replication_groups import GroupStatus, NodeGroup, ReplicationGroup
from cachefleet.domain.tags import Tag
from cachefleet.store.codec import decode, encode
from cachefleet.store.sqlite import SqliteStore

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
EAST, WEST = Region("us-east-1"), Region("us-west-2")


def group(region, group_id, role, primary_address):
    return ReplicationGroup(
        region=region, group_id=group_id, description="d", status=GroupStatus.AVAILABLE, engine="valkey",
        engine_version="8.1.8", node_type="cache.r6g.large", port=6379, subnet_group_name="default",
        parameter_group_name="default.valkey8", node_groups=(NodeGroup("0001", f"{group_id}-001", (f"{group_id}-001",)),),
        create_time=NOW, global_replication_group_id="abcde-g", global_role=role,
    )


def cluster(region, cluster_id, address):
    return CacheCluster(
        region=region, cluster_id=cluster_id, status=ClusterStatus.AVAILABLE, engine="valkey", engine_version="8.1.8",
        node_type="cache.r6g.large", port=6379, availability_zone=f"{region}a", subnet_group_name="default",
        parameter_group_name="default.valkey8", node=CacheNode("0001", address, 6379, f"{region}a", NodeStatus.AVAILABLE, NOW),
        create_time=NOW, replication_group_id=cluster_id.rsplit("-", 1)[0], node_group_id="0001",
    )


def record(**changes):
    base = GlobalReplicationGroup(
        region=gd.GLOBAL_REGION, global_id="abcde-g", description="", status=gd.GlobalStatus.AVAILABLE, engine="valkey",
        engine_version="8.1.8", node_type="cache.r6g.large", create_time=NOW,
        members=(GlobalMember(EAST, "east", MemberRole.PRIMARY), GlobalMember(WEST, "west", MemberRole.SECONDARY)),
    )
    return replace(base, **changes)


@pytest.fixture
def store(tmp_path):
    store = SqliteStore(tmp_path / "state.db")
    with store.transaction() as tx:
        tx.put(record())
        tx.put(group(EAST, "east", "PRIMARY", "127.80.0.1"))
        tx.put(group(WEST, "west", "SECONDARY", "127.80.0.2"))
        tx.put(cluster(EAST, "east-001", "127.80.0.1"))
        tx.put(cluster(WEST, "west-001", "127.80.0.2"))
    yield store
    store.close()


def test_the_prefix_is_five_letters_derived_from_the_region():
    assert gd.id_prefix("us-east-1") == gd.id_prefix("us-east-1")
    assert gd.id_prefix("us-east-1") != gd.id_prefix("us-west-2")
    assert len(gd.id_prefix("eu-west-1")) == 5 and gd.id_prefix("eu-west-1").isalpha()
    assert gd.global_id("us-east-1", "Orders") == f"{gd.id_prefix('us-east-1')}-orders"


@pytest.mark.parametrize("suffix", ["1abc", "a--b", "ab-", "a_b", "x" * 40])
def test_bad_suffixes_are_refused(suffix):
    with pytest.raises(InvalidParameterValue):
        gd.global_id("us-east-1", suffix)


@pytest.mark.parametrize("node_type, ok", [
    ("cache.r6g.large", True), ("cache.m5.xlarge", True), ("cache.r7g.16xlarge", True),
    ("cache.t4g.micro", False), ("cache.t3.medium", False), ("cache.m6g.medium", False), ("cache.m4.large", False),
])
def test_node_types_of_the_supported_families_in_size_large_and_above(node_type, ok):
    if ok:
        gd.check_node_type(node_type)
    else:
        with pytest.raises(InvalidParameterValue, match="size large and above"):
            gd.check_node_type(node_type)


def test_engines_from_redis_5_0_6_and_valkey_7_2():
    gd.check_engine("redis", "7.0.15")
    gd.check_engine("valkey", "8.1.8")
    for engine, version in (("redis", "5.0.5"), ("valkey", "7.1.0"), ("memcached", "1.6.22")):
        with pytest.raises(InvalidParameterValue):
            gd.check_engine(engine, version)


def test_a_secondary_follows_the_primary_groups_primary_node(store):
    west = store.get(ReplicationGroup, WEST, "west")
    east = store.get(ReplicationGroup, EAST, "east")
    assert gd.upstream(store, west).node.address == "127.80.0.1"
    assert gd.upstream(store, east) is None  # the primary follows no one
    assert gd.upstream(store, replace(west, global_replication_group_id=None, global_role=None)) is None
    assert [g.group_id for g in gd.secondaries_of(store, east)] == ["west"]
    assert gd.secondaries_of(store, west) == []


def test_a_joining_secondary_is_associating_until_it_is_said_to_have_the_data(store):
    west = store.get(ReplicationGroup, WEST, "west")
    assert gd.joining(store, west) is None  # the fixture's secondary is associated
    joining = record(members=(*record().members[:1], GlobalMember(WEST, "west", MemberRole.SECONDARY,
                                                                   gd.MemberStatus.ASSOCIATING)))
    with store.transaction() as tx:
        tx.put(joining)
    assert gd.joining(store, west) == joining
    assert gd.joining(store, store.get(ReplicationGroup, EAST, "east")) is None  # the primary joins nothing
    done = gd.associated(joining, WEST, "west")
    assert [m.status for m in done.members] == [gd.MemberStatus.ASSOCIATED] * 2 and done.members[0] == joining.members[0]
    assert decode(GlobalReplicationGroup, encode(joining)) == joining


def test_a_planned_failover_swaps_the_roles_of_the_record_and_both_groups(store):
    asked = record(status=gd.GlobalStatus.MODIFYING, failover_to=GlobalMember(WEST, "west", MemberRole.SECONDARY))
    updated, groups = gd.failed_over(store, asked)
    assert updated.primary == GlobalMember(WEST, "west", MemberRole.PRIMARY)
    assert [m.replication_group_id for m in updated.secondaries] == ["east"]
    assert updated.failover_to is None and updated.status == gd.GlobalStatus.AVAILABLE
    assert {g.group_id: g.global_role for g in groups} == {"east": "SECONDARY", "west": "PRIMARY"}
    assert gd.called_off(asked) == record()


def test_the_record_round_trips_through_the_store_codec():
    value = record(failover_to=GlobalMember(WEST, "west", MemberRole.SECONDARY), tags=(Tag("team", "cache"),))
    assert decode(GlobalReplicationGroup, encode(value)) == value
    assert record(members=record().members[:1]).settled_status() == gd.GlobalStatus.PRIMARY_ONLY


def test_modify_global_needs_apply_immediately_and_one_engine_change_at_a_time():
    with pytest.raises(InvalidParameterValue, match="ApplyImmediately"):
        gd.ModifyGlobalRequest.parse({"GlobalReplicationGroupId": "x", "ApplyImmediately": False})
    with pytest.raises(InvalidParameterCombination):
        gd.ModifyGlobalRequest.parse({"GlobalReplicationGroupId": "x", "ApplyImmediately": True,
                                      "CacheNodeType": "cache.r6g.xlarge", "EngineVersion": "8.1"})
    parsed = gd.ModifyGlobalRequest.parse({"GlobalReplicationGroupId": "X", "ApplyImmediately": True,
                                           "AutomaticFailoverEnabled": True})
    assert (parsed.global_id, parsed.automatic_failover) == ("x", True)
    # terraform-provider-aws's major-version update: EngineVersion with the parameter group it has (maybe "").
    upgrade = gd.ModifyGlobalRequest.parse({"GlobalReplicationGroupId": "x", "ApplyImmediately": True,
                                            "EngineVersion": "9.1", "CacheParameterGroupName": "default.valkey9"})
    assert (upgrade.engine_version, upgrade.parameter_group_name) == ("9.1", "default.valkey9")
    bare = gd.ModifyGlobalRequest.parse({"GlobalReplicationGroupId": "x", "ApplyImmediately": True,
                                         "EngineVersion": "9.1", "CacheParameterGroupName": ""})
    assert (bare.engine_version, bare.parameter_group_name) == ("9.1", None)
    with pytest.raises(InvalidParameterCombination):
        gd.ModifyGlobalRequest.parse({"GlobalReplicationGroupId": "x", "ApplyImmediately": True,
                                      "CacheNodeType": "cache.r6g.xlarge", "CacheParameterGroupName": "p"})


def test_the_shard_operations_are_refused_in_elasticache_words():
    error = gd.refuse_cluster_mode("RebalanceSlotsInGlobalReplicationGroup")
    assert isinstance(error, InvalidParameterValue) and "cluster mode disabled" in str(error)


def test_one_member_lookup_serves_failover_and_disassociate_each_with_its_own_sentence():
    member = gd.GlobalDatastores._member(record(), WEST, "west", "is not a member of global replication group")
    assert member == GlobalMember(WEST, "west", MemberRole.SECONDARY)
    with pytest.raises(InvalidParameterValue, match="Replication group gone in us-west-2 is not associated with "
                                                    "Global Replication Group abcde-g."):
        gd.GlobalDatastores._member(record(), WEST, "gone", "is not associated with Global Replication Group")
    # The region matters: the same id in another region is not the member.
    with pytest.raises(InvalidParameterValue, match="is not a member of global replication group abcde-g"):
        gd.GlobalDatastores._member(record(), EAST, "west", "is not a member of global replication group")
