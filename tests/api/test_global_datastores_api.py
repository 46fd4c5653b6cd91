"""Global datastores through boto3: ElastiCache's faults (nothing half-created), the id's prefix,
DescribeGlobalReplicationGroups' members and paging, a secondary's inherited settings, the shard
operations refused after their checks, and the rules of Modify/Failover/Disassociate/Delete."""

from __future__ import annotations

import datetime as dt

import pytest

from cachefleet.domain.global_datastores import id_prefix
from helpers import engine, expect, wait_event, wait_for, wait_group, wait_group_gone

LARGE = {"ReplicationGroupDescription": "gd", "Engine": "valkey", "CacheNodeType": "cache.r6g.large"}


@pytest.fixture(scope="module")
def pair(server):
    """A global datastore: gda-east (us-east-1) and its secondary gda-west (us-west-2)."""
    east, west = server.client(region="us-east-1"), server.client(region="us-west-2")
    east.create_replication_group(ReplicationGroupId="gda-east", **LARGE)
    wait_group(east, "gda-east")
    record = east.create_global_replication_group(
        GlobalReplicationGroupIdSuffix="apitest", PrimaryReplicationGroupId="gda-east",
    )["GlobalReplicationGroup"]
    west.create_replication_group(
        ReplicationGroupId="gda-west", ReplicationGroupDescription="secondary",
        GlobalReplicationGroupId=record["GlobalReplicationGroupId"],
    )
    wait_group(west, "gda-west")
    yield east, west, record["GlobalReplicationGroupId"]
    west_left = west.describe_replication_groups(ReplicationGroupId="gda-west")["ReplicationGroups"][0]
    if "GlobalReplicationGroupInfo" in west_left:
        east.disassociate_global_replication_group(
            GlobalReplicationGroupId=record["GlobalReplicationGroupId"], ReplicationGroupId="gda-west",
            ReplicationGroupRegion="us-west-2",
        )
    east.delete_global_replication_group(
        GlobalReplicationGroupId=record["GlobalReplicationGroupId"], RetainPrimaryReplicationGroup=False,
    )
    west.delete_replication_group(ReplicationGroupId="gda-west")
    wait_group_gone(east, "gda-east")
    wait_group_gone(west, "gda-west")


def test_the_id_has_a_prefix_of_five_letters_the_same_every_time(pair):
    east, _, global_id = pair
    prefix, _, suffix = global_id.partition("-")
    assert suffix == "apitest" and len(prefix) == 5 and prefix.isalpha()
    assert prefix == id_prefix("us-east-1") != id_prefix("us-west-2")  # derived, not random: the same every start
    expect("GlobalReplicationGroupAlreadyExistsFault", east.create_global_replication_group,
           GlobalReplicationGroupIdSuffix="apitest", PrimaryReplicationGroupId="gda-east")


def test_describe_shows_members_only_when_asked_and_pages(pair):
    east, west, global_id = pair
    plain = west.describe_global_replication_groups(GlobalReplicationGroupId=global_id)["GlobalReplicationGroups"][0]
    assert "Members" not in plain
    assert plain["Status"] == "available" and plain["Engine"] == "valkey" and plain["CacheNodeType"] == "cache.r6g.large"
    assert plain["ARN"] == f"arn:aws:elasticache::000000000000:globalreplicationgroup:{global_id}"
    assert plain["ClusterEnabled"] is False
    full = east.describe_global_replication_groups(GlobalReplicationGroupId=global_id, ShowMemberInfo=True)
    members = {m["ReplicationGroupId"]: m for m in full["GlobalReplicationGroups"][0]["Members"]}
    assert members["gda-east"] == {"ReplicationGroupId": "gda-east", "ReplicationGroupRegion": "us-east-1",
                                   "Role": "PRIMARY", "AutomaticFailover": "disabled", "Status": "associated"}
    assert members["gda-west"]["Role"] == "SECONDARY" and members["gda-west"]["ReplicationGroupRegion"] == "us-west-2"
    page = east.describe_global_replication_groups(MaxRecords=20)
    assert global_id in [g["GlobalReplicationGroupId"] for g in page["GlobalReplicationGroups"]]
    expect("GlobalReplicationGroupNotFoundFault", east.describe_global_replication_groups,
           GlobalReplicationGroupId="ldgnf-nothing")
    expect("InvalidParameterValue", east.describe_global_replication_groups, MaxRecords=5)


def test_the_groups_say_which_global_datastore_they_belong_to(pair):
    east, west, global_id = pair
    primary = east.describe_replication_groups(ReplicationGroupId="gda-east")["ReplicationGroups"][0]
    assert primary["GlobalReplicationGroupInfo"] == {
        "GlobalReplicationGroupId": global_id, "GlobalReplicationGroupMemberRole": "PRIMARY"}
    secondary = west.describe_replication_groups(ReplicationGroupId="gda-west")["ReplicationGroups"][0]
    assert secondary["GlobalReplicationGroupInfo"]["GlobalReplicationGroupMemberRole"] == "SECONDARY"
    assert (secondary["CacheNodeType"], secondary["ClusterEnabled"]) == ("cache.r6g.large", False)
    expect("InvalidReplicationGroupState", east.delete_replication_group, ReplicationGroupId="gda-east",
           says="global replication group")


def test_the_secondarys_primary_reports_its_global_replication_lag(pair, server):
    def lag(region, cluster_id):
        now = dt.datetime.now(dt.UTC)
        points = server.client("cloudwatch", region=region).get_metric_statistics(
            Namespace="AWS/ElastiCache", MetricName="GlobalDatastoreReplicationLag", StartTime=now - dt.timedelta(minutes=2),
            EndTime=now, Period=60, Statistics=["Maximum"],
            Dimensions=[{"Name": "CacheClusterId", "Value": cluster_id}, {"Name": "CacheNodeId", "Value": "0001"}],
        )["Datapoints"]
        return max((p["Maximum"] for p in points), default=None)

    wait_for(lambda: lag("us-west-2", "gda-west-001") is not None, timeout=10, what="a GlobalDatastoreReplicationLag sample")
    assert 0 <= lag("us-west-2", "gda-west-001") < 1  # idle and caught up on loopback
    assert lag("us-east-1", "gda-east-001") is None  # the primary region's primary follows no one


def test_a_second_member_in_one_region_and_conflicting_settings_are_refused(pair, server):
    east, west, global_id = pair
    expect("InvalidParameterValue", east.create_replication_group, ReplicationGroupId="gda-again",
           ReplicationGroupDescription="x", GlobalReplicationGroupId=global_id, says="one member per region")
    other = server.client(region="eu-west-1")
    expect("InvalidParameterCombination", other.create_replication_group, ReplicationGroupId="gda-eu",
           ReplicationGroupDescription="x", GlobalReplicationGroupId=global_id, CacheNodeType="cache.r6g.xlarge",
           says="CacheNodeType")
    expect("InvalidParameterCombination", other.create_replication_group, ReplicationGroupId="gda-eu",
           ReplicationGroupDescription="x", GlobalReplicationGroupId=global_id, NumNodeGroups=2)
    expect("GlobalReplicationGroupNotFoundFault", other.create_replication_group, ReplicationGroupId="gda-eu",
           ReplicationGroupDescription="x", GlobalReplicationGroupId="ldgnf-nothing")
    assert other.describe_replication_groups()["ReplicationGroups"] == []


def test_create_checks_the_primary(server, pair):
    east = server.client(region="us-east-1")
    expect("ReplicationGroupNotFoundFault", east.create_global_replication_group,
           GlobalReplicationGroupIdSuffix="x", PrimaryReplicationGroupId="gda-nothing")
    expect("InvalidParameterValue", east.create_global_replication_group,
           GlobalReplicationGroupIdSuffix="Bad--suffix", PrimaryReplicationGroupId="gda-east")
    expect("InvalidReplicationGroupState", east.create_global_replication_group,
           GlobalReplicationGroupIdSuffix="twice", PrimaryReplicationGroupId="gda-east", says="already a member")
    east.create_replication_group(ReplicationGroupId="gda-micro", ReplicationGroupDescription="small",
                                  Engine="valkey", CacheNodeType="cache.t4g.micro")
    east.create_replication_group(ReplicationGroupId="gda-sharded", NumNodeGroups=2, **LARGE)
    try:
        wait_group(east, "gda-micro")
        wait_group(east, "gda-sharded")
        expect("InvalidParameterValue", east.create_global_replication_group, GlobalReplicationGroupIdSuffix="micro",
               PrimaryReplicationGroupId="gda-micro", says="size large and above")
        expect("InvalidParameterValue", east.create_global_replication_group, GlobalReplicationGroupIdSuffix="sharded",
               PrimaryReplicationGroupId="gda-sharded", says="cluster mode disabled")
    finally:
        east.delete_replication_group(ReplicationGroupId="gda-micro")
        east.delete_replication_group(ReplicationGroupId="gda-sharded")
    assert [g["GlobalReplicationGroupId"] for g in east.describe_global_replication_groups()["GlobalReplicationGroups"]
            if g["GlobalReplicationGroupId"].endswith(("-micro", "-sharded"))] == []


@pytest.mark.parametrize("operation, extra", [
    ("increase_node_groups_in_global_replication_group", {"NodeGroupCount": 2}),
    ("decrease_node_groups_in_global_replication_group", {"NodeGroupCount": 1}),
    ("rebalance_slots_in_global_replication_group", {}),
])
def test_shard_operations_answer_after_their_checks(pair, operation, extra):
    east, _, global_id = pair
    call = getattr(east, operation)
    expect("GlobalReplicationGroupNotFoundFault", call, GlobalReplicationGroupId="ldgnf-nothing", ApplyImmediately=True,
           **extra)
    expect("InvalidParameterValue", call, GlobalReplicationGroupId=global_id, ApplyImmediately=True,
           says="cluster mode disabled", **extra)
    if extra:
        expect("InvalidParameterValue", call, GlobalReplicationGroupId=global_id, ApplyImmediately=True,
               NodeGroupCount=0)


def test_modify_needs_apply_immediately_and_reaches_every_member(pair):
    east, west, global_id = pair
    expect("InvalidParameterValue", east.modify_global_replication_group, GlobalReplicationGroupId=global_id,
           ApplyImmediately=False, GlobalReplicationGroupDescription="later")
    expect("GlobalReplicationGroupNotFoundFault", east.modify_global_replication_group,
           GlobalReplicationGroupId="ldgnf-nothing", ApplyImmediately=True)
    expect("InvalidParameterCombination", east.modify_global_replication_group, GlobalReplicationGroupId=global_id,
           ApplyImmediately=True, AutomaticFailoverEnabled=True, says="replica")
    expect("InvalidParameterValue", east.modify_global_replication_group, GlobalReplicationGroupId=global_id,
           ApplyImmediately=True, CacheNodeType="cache.t4g.small")
    changed = east.modify_global_replication_group(
        GlobalReplicationGroupId=global_id, ApplyImmediately=True, GlobalReplicationGroupDescription="renamed",
    )["GlobalReplicationGroup"]
    assert changed["GlobalReplicationGroupDescription"] == "renamed"
    scaled = east.modify_global_replication_group(
        GlobalReplicationGroupId=global_id, ApplyImmediately=True, CacheNodeType="cache.r6g.xlarge",
    )["GlobalReplicationGroup"]
    assert scaled["CacheNodeType"] == "cache.r6g.xlarge"
    for client, group_id in ((east, "gda-east"), (west, "gda-west")):
        wait_for(lambda c=client, g=group_id: (found := wait_group(c, g))["CacheNodeType"] == "cache.r6g.xlarge" and found,
                 what=f"{group_id} scaled")
    # A parameter group is regional: the one named must exist in every member's region.
    east_params = east.describe_cache_clusters(CacheClusterId="gda-east-001")["CacheClusters"][0]
    family = east.describe_cache_parameter_groups(
        CacheParameterGroupName=east_params["CacheParameterGroup"]["CacheParameterGroupName"],
    )["CacheParameterGroups"][0]["CacheParameterGroupFamily"]
    east.create_cache_parameter_group(CacheParameterGroupName="gda-params", CacheParameterGroupFamily=family,
                                      Description="east")
    expect("CacheParameterGroupNotFound", east.modify_global_replication_group, GlobalReplicationGroupId=global_id,
           ApplyImmediately=True, CacheParameterGroupName="gda-params")
    unchanged = east.describe_cache_clusters(CacheClusterId="gda-east-001")["CacheClusters"][0]
    assert unchanged["CacheParameterGroup"]["CacheParameterGroupName"] != "gda-params"  # no member changes if one refuses
    west.create_cache_parameter_group(CacheParameterGroupName="gda-params", CacheParameterGroupFamily=family,
                                      Description="west")
    east.modify_global_replication_group(GlobalReplicationGroupId=global_id, ApplyImmediately=True,
                                         CacheParameterGroupName="gda-params")
    for client, group_id in ((east, "gda-east"), (west, "gda-west")):
        member = wait_group(client, group_id)
        assert member["MemberClusters"]
        cluster = client.describe_cache_clusters(CacheClusterId=member["MemberClusters"][0])["CacheClusters"][0]
        assert cluster["CacheParameterGroup"]["CacheParameterGroupName"] == "gda-params"


def _member_state(client, group_id):
    """What a user sees of a member: its status, node type, pending changes and each node's parameter group."""
    group = client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    parameter_groups = {
        cluster_id: client.describe_cache_clusters(CacheClusterId=cluster_id)["CacheClusters"][0]["CacheParameterGroup"]
        ["CacheParameterGroupName"]
        for cluster_id in group["MemberClusters"]
    }
    return group["Status"], group["CacheNodeType"], group.get("PendingModifiedValues", {}), parameter_groups


def test_modify_changes_every_member_or_none(pair):
    east, west, global_id = pair
    members = ((east, "gda-east"), (west, "gda-west"))
    for client, group_id in members:
        wait_group(client, group_id)
    before = {group_id: _member_state(client, group_id) for client, group_id in members}
    assert all(state[0] == "available" and state[2] == {} for state in before.values())
    family = east.describe_cache_parameter_groups(
        CacheParameterGroupName=next(iter(before["gda-east"][3].values())),
    )["CacheParameterGroups"][0]["CacheParameterGroupFamily"]
    # Each parameter group exists in one member's region only: the other member refuses, and the one that
    # could take it must not have taken it (whichever member is asked first).
    west.create_cache_parameter_group(CacheParameterGroupName="gda-west-only", CacheParameterGroupFamily=family,
                                      Description="west only")
    east.create_cache_parameter_group(CacheParameterGroupName="gda-east-only", CacheParameterGroupFamily=family,
                                      Description="east only")
    for name, refusing in (("gda-west-only", "gda-east (us-east-1)"), ("gda-east-only", "gda-west (us-west-2)")):
        expect("CacheParameterGroupNotFound", east.modify_global_replication_group, GlobalReplicationGroupId=global_id,
               ApplyImmediately=True, CacheParameterGroupName=name, says=refusing)
        assert {group_id: _member_state(client, group_id) for client, group_id in members} == before
    east.create_cache_parameter_group(CacheParameterGroupName="gda-west-only", CacheParameterGroupFamily=family,
                                      Description="both now")
    east.modify_global_replication_group(GlobalReplicationGroupId=global_id, ApplyImmediately=True,
                                         CacheParameterGroupName="gda-west-only")
    for client, group_id in members:
        wait_for(lambda c=client, g=group_id: set(_member_state(c, g)[3].values()) == {"gda-west-only"},
                 what=f"every node of {group_id} on gda-west-only")


def test_tags_on_create_and_on_the_regionless_arn(server):
    east, west = server.client(region="us-east-1"), server.client(region="us-west-2")
    east.create_replication_group(ReplicationGroupId="gda-tagged", **LARGE)
    wait_group(east, "gda-tagged")
    try:
        expect("InvalidParameterValue", east.create_global_replication_group, GlobalReplicationGroupIdSuffix="tagged",
               PrimaryReplicationGroupId="gda-tagged", Tags=[{"Key": "aws:owner", "Value": "x"}], says="aws:")
        assert "GlobalReplicationGroupInfo" not in wait_group(east, "gda-tagged")  # refused before anything changed
        created = east.create_global_replication_group(
            GlobalReplicationGroupIdSuffix="tagged", PrimaryReplicationGroupId="gda-tagged",
            Tags=[{"Key": "team", "Value": "cache"}, {"Key": "cost", "Value": "42"}],
        )["GlobalReplicationGroup"]
        global_id = created["GlobalReplicationGroupId"]
        arn = f"arn:aws:elasticache::000000000000:globalreplicationgroup:{global_id}"
        assert created["ARN"] == arn
        described = west.describe_global_replication_groups(GlobalReplicationGroupId=global_id)["GlobalReplicationGroups"]
        assert described[0]["ARN"] == arn
        # The datastore spans regions: its tags are the same whichever region asks.
        for client in (east, west):
            assert client.list_tags_for_resource(ResourceName=arn)["TagList"] == [
                {"Key": "team", "Value": "cache"}, {"Key": "cost", "Value": "42"}]
        added = west.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "team", "Value": "platform"},
                                                                  {"Key": "env", "Value": "prod"}])["TagList"]
        assert added == [{"Key": "team", "Value": "platform"}, {"Key": "cost", "Value": "42"},
                         {"Key": "env", "Value": "prod"}]
        left = east.remove_tags_from_resource(ResourceName=arn, TagKeys=["cost"])["TagList"]
        assert left == [{"Key": "team", "Value": "platform"}, {"Key": "env", "Value": "prod"}]
        assert west.list_tags_for_resource(ResourceName=arn)["TagList"] == left
        expect("TagNotFound", east.remove_tags_from_resource, ResourceName=arn, TagKeys=["cost"])
        # The group's own tags are its own.
        assert east.list_tags_for_resource(
            ResourceName="arn:aws:elasticache:us-east-1:000000000000:replicationgroup:gda-tagged")["TagList"] == []
        expect("InvalidARN", east.list_tags_for_resource, says="names none",
               ResourceName=f"arn:aws:elasticache:us-east-1:000000000000:globalreplicationgroup:{global_id}")
        expect("GlobalReplicationGroupNotFoundFault", east.list_tags_for_resource,
               ResourceName="arn:aws:elasticache::000000000000:globalreplicationgroup:ldgnf-nothing")
        expect("GlobalReplicationGroupNotFoundFault", east.add_tags_to_resource, Tags=[{"Key": "k", "Value": "v"}],
               ResourceName=f"arn:aws:elasticache::123456789012:globalreplicationgroup:{global_id}")
        expect("TagQuotaPerResourceExceeded", east.add_tags_to_resource, ResourceName=arn,
               Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(49)])
        assert len(east.list_tags_for_resource(ResourceName=arn)["TagList"]) == 2
        east.delete_global_replication_group(GlobalReplicationGroupId=global_id, RetainPrimaryReplicationGroup=True)
        expect("GlobalReplicationGroupNotFoundFault", east.list_tags_for_resource, ResourceName=arn)
    finally:
        for record in east.describe_global_replication_groups()["GlobalReplicationGroups"]:
            if record["GlobalReplicationGroupId"].endswith("-tagged"):
                east.delete_global_replication_group(GlobalReplicationGroupId=record["GlobalReplicationGroupId"],
                                                     RetainPrimaryReplicationGroup=True)
        east.delete_replication_group(ReplicationGroupId="gda-tagged")
        wait_group_gone(east, "gda-tagged")


def _member_status(client, global_id, group_id):
    record = client.describe_global_replication_groups(GlobalReplicationGroupId=global_id, ShowMemberInfo=True)
    return next((m["Status"] for m in record["GlobalReplicationGroups"][0]["Members"]
                 if m["ReplicationGroupId"] == group_id), None)


def test_a_joining_secondary_is_associating_until_its_primary_has_the_primary_regions_data(pair, server):
    east, _, global_id = pair
    europe = server.client(region="eu-west-1")
    primary = next(m for m in east.describe_replication_groups(ReplicationGroupId="gda-east")["ReplicationGroups"][0]
                   ["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "primary")
    node = engine(primary["ReadEndpoint"]["Address"])
    saved = {name: node.config_get(name)[name] for name in ("repl-diskless-sync", "repl-diskless-sync-delay")}
    # The primary region's primary holds every new full sync back for 5 s (diskless, with a delay): the joining
    # secondary's primary cannot have the data before then, so its membership is seen associating.
    node.config_set("repl-diskless-sync", "yes")
    node.config_set("repl-diskless-sync-delay", "5")
    try:
        europe.create_replication_group(ReplicationGroupId="gda-eu", ReplicationGroupDescription="joining",
                                        GlobalReplicationGroupId=global_id)
        assert _member_status(east, global_id, "gda-eu") == "associating"
        assert _member_status(east, global_id, "gda-east") == _member_status(east, global_id, "gda-west") == \
            "associated"
        assert europe.describe_replication_groups(ReplicationGroupId="gda-eu")["ReplicationGroups"][0]["Status"] == \
            "creating"  # available once it has the data
        (event,) = wait_event(europe, "gda-eu", "is associated with global replication group")
        assert "in sync with gda-east-001 (us-east-1)" in event, event
        assert _member_status(europe, global_id, "gda-eu") == "associated"
        joined = wait_group(europe, "gda-eu")
        reader = engine(joined["NodeGroups"][0]["PrimaryEndpoint"]["Address"])
        assert reader.info("replication")["master_link_status"] == "up"
    finally:
        node.config_set("repl-diskless-sync", saved["repl-diskless-sync"])
        node.config_set("repl-diskless-sync-delay", saved["repl-diskless-sync-delay"])
        wait_for(lambda: europe.describe_replication_groups(ReplicationGroupId="gda-eu")["ReplicationGroups"][0]
                 ["Status"] == "available", what="gda-eu settled")
        europe.disassociate_global_replication_group(GlobalReplicationGroupId=global_id, ReplicationGroupId="gda-eu",
                                                     ReplicationGroupRegion="eu-west-1")
        europe.delete_replication_group(ReplicationGroupId="gda-eu")
        wait_group_gone(europe, "gda-eu")


def test_failover_disassociate_and_delete_rules(pair):
    east, west, global_id = pair
    expect("InvalidParameterValue", east.failover_global_replication_group, GlobalReplicationGroupId=global_id,
           PrimaryRegion="us-east-1", PrimaryReplicationGroupId="gda-east", says="already the primary")
    expect("InvalidParameterValue", east.failover_global_replication_group, GlobalReplicationGroupId=global_id,
           PrimaryRegion="eu-west-1", PrimaryReplicationGroupId="gda-east", says="not a member")
    expect("GlobalReplicationGroupNotFoundFault", east.failover_global_replication_group,
           GlobalReplicationGroupId="ldgnf-nothing", PrimaryRegion="us-west-2", PrimaryReplicationGroupId="gda-west")
    expect("InvalidParameterValue", east.disassociate_global_replication_group, GlobalReplicationGroupId=global_id,
           ReplicationGroupId="gda-east", ReplicationGroupRegion="us-east-1", says="only a secondary")
    expect("InvalidGlobalReplicationGroupState", east.delete_global_replication_group,
           GlobalReplicationGroupId=global_id, RetainPrimaryReplicationGroup=True, says="disassociate them first")
    left = west.disassociate_global_replication_group(
        GlobalReplicationGroupId=global_id, ReplicationGroupId="gda-west", ReplicationGroupRegion="us-west-2",
    )["GlobalReplicationGroup"]
    assert left["Status"] == "primary-only"
    assert "GlobalReplicationGroupInfo" not in west.describe_replication_groups(
        ReplicationGroupId="gda-west")["ReplicationGroups"][0]
    wait_for(lambda: west.describe_replication_groups(ReplicationGroupId="gda-west")["ReplicationGroups"][0]["Status"]
             == "available", what="gda-west available")
