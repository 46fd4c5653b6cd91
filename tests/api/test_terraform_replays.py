"""terraform-provider-aws, resource by resource: the provider's own call sequences replayed with
boto3 against a real server (create -> refresh -> update -> destroy), with its waiters' rules.

Read from internal/service/elasticache/*.go (replication_group.go, cluster.go, subnet_group.go,
user.go, user_group.go, user_group_association.go, serverless_cache.go, global_replication_group.go; parameter_group.go is replayed in
test_parameter_groups.py), and the data sources of the same names where they read more. What matters is what the provider would do with our answers:

- its waiters are StateChangeConf: every status seen must be in Pending or Target, else
  "unexpected state" fails the apply; a waiter with an empty Target ends on NotFound only (a
  lingering ``deleted`` status would fail the destroy);
- it reads tags with ListTagsForResource on the ARN, and changes them with AddTagsToResource /
  RemoveTagsFromResource (transparent tagging);
- it retries DeleteReplicationGroup on InvalidReplicationGroupState, DeleteCacheCluster on
  InvalidCacheClusterState, ModifyUserGroup (associations) on InvalidUserGroupState;
- a refresh reads the group, then DescribeCacheClusters(ShowCacheNodeInfo) of its first member,
  and every CacheNode needs CacheNodeId, Endpoint.Address/Port and CustomerAvailabilityZone.

The provider's delays (30 s before the first poll) are left out: the polling is what is replayed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

NOT_FOUND = ""  # what the provider's status functions return for a NotFound error


class UnexpectedState(AssertionError):
    pass


def state_change(
    refresh: Callable[[], str], *, pending: set[str], target: set[str], timeout: float = 60.0, not_found_checks: int = 20
) -> list[str]:
    """terraform-plugin-sdk's StateChangeConf.WaitForState: the statuses seen, or UnexpectedState."""
    seen: list[str] = []
    misses = 0
    deadline = time.monotonic() + timeout
    while True:
        status = refresh()
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == NOT_FOUND:
            if not target:
                return seen  # an empty Target: gone is done
            misses += 1
            if misses > not_found_checks:
                raise UnexpectedState(f"not found after {not_found_checks} checks: {seen}")
        elif status in target:
            return seen
        elif status not in pending:
            raise UnexpectedState(f"unexpected state {status!r}, wanted {sorted(target)}: {seen}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"still {status!r}: {seen}")
        time.sleep(0.05)


def _status(call: Callable[[], dict[str, Any]], listing: str, field: str, missing: str) -> Callable[[], str]:
    def refresh() -> str:
        try:
            found = call()[listing]
        except ClientError as error:
            if error.response["Error"]["Code"] == missing:
                return NOT_FOUND
            raise
        return str(found[0][field])

    return refresh


def retry_when(code: str, call: Callable[[], Any], timeout: float = 60.0) -> Any:
    """tfresource.RetryWhenIsA: repeats ``call`` while it fails with ``code``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ClientError as error:
            if error.response["Error"]["Code"] != code or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def tags_of(ec: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in ec.list_tags_for_resource(ResourceName=arn)["TagList"]}


def update_tags(ec: Any, arn: str, old: dict[str, str], new: dict[str, str]) -> None:
    """The provider's updateTags: removed keys first, then added or changed ones."""
    removed = [k for k in old if k not in new]
    if removed:
        ec.remove_tags_from_resource(ResourceName=arn, TagKeys=removed)
    changed = [{"Key": k, "Value": v} for k, v in new.items() if old.get(k) != v]
    if changed:
        ec.add_tags_to_resource(ResourceName=arn, Tags=changed)


def check_cache_nodes(cluster: dict[str, Any]) -> None:
    """setCacheNodeData fails the read on a node missing any of these."""
    assert cluster["CacheNodes"], cluster
    for node in cluster["CacheNodes"]:
        assert node["CacheNodeId"] and node["Endpoint"]["Address"] and node["Endpoint"]["Port"], node
        assert node["CustomerAvailabilityZone"], node


def read_cache_cluster_fields(cluster: dict[str, Any]) -> None:
    """setFromCacheCluster and resourceClusterRead: fields set into the state (a missing one is a diff)."""
    for field in ("CacheNodeType", "Engine", "EngineVersion", "CacheSubnetGroupName", "PreferredMaintenanceWindow",
                  "ARN", "NumCacheNodes", "PreferredAvailabilityZone", "SnapshotRetentionLimit"):
        assert field in cluster, field
    assert cluster["CacheParameterGroup"]["CacheParameterGroupName"]
    assert "AutoMinorVersionUpgrade" in cluster and "TransitEncryptionEnabled" in cluster


RG_AVAILABLE = {"pending": {"creating", "modifying", "snapshotting"}, "target": {"available"}}
RG_DELETED = {"pending": {"creating", "available", "deleting"}, "target": set()}
CC_AVAILABLE = {"pending": {"creating", "modifying", "snapshotting", "rebooting cluster nodes"}, "target": {"available"}}
CC_DELETED = {"pending": {"creating", "available", "modifying", "deleting", "incompatible-network", "restore-failed",
                          "snapshotting"}, "target": set()}
MEMBERS_AVAILABLE = {"pending": {"creating", "deleting", "modifying", "snapshotting"}, "target": {"available"}}


def test_aws_elasticache_replication_group(ec):
    group_id = "tf-rg"
    group_status = _status(lambda: ec.describe_replication_groups(ReplicationGroupId=group_id),
                           "ReplicationGroups", "Status", "ReplicationGroupNotFoundFault")

    def members_status() -> str:  # statusReplicationGroupMemberClusters: every cluster, filtered by MemberClusters
        members = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]["MemberClusters"]
        clusters = [c for page in ec.get_paginator("describe_cache_clusters").paginate()
                    for c in page["CacheClusters"] if c["CacheClusterId"] in members]
        assert clusters
        return next((c["CacheClusterStatus"] for c in clusters if c["CacheClusterStatus"] != "available"), "available")

    # Create: the input the provider builds from a minimal resource block, then its waiter.
    created = ec.create_replication_group(
        ReplicationGroupId=group_id, ReplicationGroupDescription="Managed by Terraform", Engine="valkey",
        EngineVersion="8.1", CacheNodeType="cache.t4g.micro", NumCacheClusters=1, Port=6379,
        AutomaticFailoverEnabled=False, MultiAZEnabled=False, TransitEncryptionEnabled=False,
        PreferredMaintenanceWindow="sun:05:00-sun:06:00", SnapshotRetentionLimit=0,
        Tags=[{"Key": "Name", "Value": group_id}],
    )["ReplicationGroup"]
    assert created["ReplicationGroupId"] == group_id
    state_change(group_status, **RG_AVAILABLE)

    # Refresh (resourceReplicationGroupRead).
    group = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    assert group["AutomaticFailover"] in ("enabled", "disabled", "enabling", "disabling")
    assert group["MultiAZ"] in ("enabled", "disabled")
    for field in ("Description", "MemberClusters", "NodeGroups", "ClusterEnabled", "ARN", "SnapshotRetentionLimit",
                  "SnapshotWindow", "UserGroupIds", "LogDeliveryConfigurations", "DataTiering", "IpDiscovery",
                  "NetworkType", "ClusterMode"):
        assert field in group, field
    assert "ConfigurationEndpoint" not in group
    primary = group["NodeGroups"][0]["PrimaryEndpoint"]
    assert primary["Address"] and primary["Port"] == 6379 and group["NodeGroups"][0]["ReaderEndpoint"]["Address"]
    for member in group["NodeGroups"][0]["NodeGroupMembers"]:  # flattenNodeGroupConfigurations
        assert member["CacheClusterId"] and member["PreferredAvailabilityZone"], member
    first = group["NodeGroups"][0]["NodeGroupMembers"][0]["CacheClusterId"]
    cluster = ec.describe_cache_clusters(CacheClusterId=first, ShowCacheNodeInfo=True)["CacheClusters"][0]
    read_cache_cluster_fields(cluster)
    check_cache_nodes(cluster)
    assert cluster["AtRestEncryptionEnabled"] is False and cluster["AuthTokenEnabled"] is False
    assert "CacheSecurityGroups" in cluster and "SecurityGroups" in cluster
    assert tags_of(ec, group["ARN"]) == {"Name": group_id}
    # data "aws_elasticache_replication_group" reads these of the group itself.
    assert group["AuthTokenEnabled"] is False and group["CacheNodeType"] == "cache.t4g.micro"

    # Update: num_cache_clusters 1 -> 2 (IncreaseReplicaCount, member clusters' waiter), then the
    # description (ModifyReplicationGroup between two waiters), then the tags.
    state_change(group_status, **RG_AVAILABLE)
    ec.increase_replica_count(ReplicationGroupId=group_id, NewReplicaCount=1, ApplyImmediately=True)
    state_change(members_status, **MEMBERS_AVAILABLE)
    state_change(group_status, **RG_AVAILABLE)
    ec.modify_replication_group(ReplicationGroupId=group_id, ApplyImmediately=False,
                                ReplicationGroupDescription="changed by Terraform")
    state_change(group_status, **RG_AVAILABLE)
    update_tags(ec, group["ARN"], {"Name": group_id}, {"Name": group_id, "env": "test"})
    group = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    assert group["Description"] == "changed by Terraform" and len(group["MemberClusters"]) == 2
    assert tags_of(ec, group["ARN"]) == {"Name": group_id, "env": "test"}

    # A second apply with nothing changed sends nothing; one that matches the server's state
    # gets "No modifications were requested", which the provider takes as success.
    try:
        ec.modify_replication_group(ReplicationGroupId=group_id, ApplyImmediately=True,
                                    ReplicationGroupDescription="changed by Terraform")
    except ClientError as error:
        assert error.response["Error"]["Code"] == "InvalidParameterCombination"
        assert "No modifications were requested" in error.response["Error"]["Message"]
    state_change(group_status, **RG_AVAILABLE)

    # Destroy.
    retry_when("InvalidReplicationGroupState", lambda: ec.delete_replication_group(ReplicationGroupId=group_id))
    assert state_change(group_status, **RG_DELETED)[-1] == NOT_FOUND


def test_aws_elasticache_replication_group_cluster_mode(ec):
    """num_node_groups / replicas_per_node_group: the configuration endpoint is what the provider reads."""
    group_id = "tf-rg-sharded"
    group_status = _status(lambda: ec.describe_replication_groups(ReplicationGroupId=group_id),
                           "ReplicationGroups", "Status", "ReplicationGroupNotFoundFault")
    ec.create_replication_group(
        ReplicationGroupId=group_id, ReplicationGroupDescription="Managed by Terraform", Engine="valkey",
        CacheNodeType="cache.t4g.micro", NumNodeGroups=2, ReplicasPerNodeGroup=0, Port=6379,
        AutomaticFailoverEnabled=True, CacheParameterGroupName="default.valkey9.cluster.on",
    )
    state_change(group_status, **RG_AVAILABLE)
    group = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    assert group["ClusterEnabled"] is True and group["ClusterMode"] == "enabled"
    assert group["ConfigurationEndpoint"]["Address"] and group["ConfigurationEndpoint"]["Port"] == 6379
    assert len(group["NodeGroups"]) == 2 and all(ng["Slots"] for ng in group["NodeGroups"])
    assert all(len(ng["NodeGroupMembers"]) == 1 for ng in group["NodeGroups"])  # replicas_per_node_group = 0
    assert group["CacheNodeType"] == "cache.t4g.micro"  # the data source's node_type
    first = group["NodeGroups"][0]["NodeGroupMembers"][0]["CacheClusterId"]
    cluster = ec.describe_cache_clusters(CacheClusterId=first, ShowCacheNodeInfo=True)["CacheClusters"][0]
    read_cache_cluster_fields(cluster)
    check_cache_nodes(cluster)
    retry_when("InvalidReplicationGroupState", lambda: ec.delete_replication_group(ReplicationGroupId=group_id))
    assert state_change(group_status, **RG_DELETED)[-1] == NOT_FOUND


def test_aws_elasticache_cluster(ec):
    cluster_id = "tf-cluster"
    status = _status(lambda: ec.describe_cache_clusters(CacheClusterId=cluster_id), "CacheClusters",
                     "CacheClusterStatus", "CacheClusterNotFound")
    created = ec.create_cache_cluster(
        CacheClusterId=cluster_id, Engine="redis", CacheNodeType="cache.t4g.micro", NumCacheNodes=1, Port=6379,
        SnapshotRetentionLimit=0, Tags=[{"Key": "Name", "Value": cluster_id}],
    )["CacheCluster"]
    assert created["CacheClusterId"] == cluster_id.lower() and created["ARN"]
    state_change(status, **CC_AVAILABLE)

    cluster = ec.describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)["CacheClusters"][0]
    read_cache_cluster_fields(cluster)
    check_cache_nodes(cluster)
    assert "ConfigurationEndpoint" not in cluster and cluster["CacheNodes"][0]["Endpoint"]["Port"] == 6379
    assert "ReplicationGroupId" not in cluster
    assert tags_of(ec, cluster["ARN"]) == {"Name": cluster_id}

    ec.modify_cache_cluster(CacheClusterId=cluster_id, ApplyImmediately=False,
                            PreferredMaintenanceWindow="mon:03:00-mon:04:00", SnapshotRetentionLimit=1)
    state_change(status, **CC_AVAILABLE)
    cluster = ec.describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)["CacheClusters"][0]
    assert cluster["PreferredMaintenanceWindow"] == "mon:03:00-mon:04:00" and cluster["SnapshotRetentionLimit"] == 1
    update_tags(ec, cluster["ARN"], {"Name": cluster_id}, {})
    assert tags_of(ec, cluster["ARN"]) == {}

    retry_when("InvalidCacheClusterState", lambda: ec.delete_cache_cluster(CacheClusterId=cluster_id))
    assert state_change(status, **CC_DELETED)[-1] == NOT_FOUND


def test_aws_elasticache_subnet_group(ec):
    name = "tf-subnets"  # the provider lower-cases the name
    created = ec.create_cache_subnet_group(
        CacheSubnetGroupName=name, CacheSubnetGroupDescription="Managed by Terraform",
        SubnetIds=["subnet-us-east-1a"], Tags=[{"Key": "Name", "Value": name}],
    )["CacheSubnetGroup"]
    found = ec.describe_cache_subnet_groups(CacheSubnetGroupName=name)["CacheSubnetGroups"]
    assert len(found) == 1
    group = found[0]
    assert group["ARN"] == created["ARN"] and group["VpcId"] and group["CacheSubnetGroupDescription"]
    assert [s["SubnetIdentifier"] for s in group["Subnets"]] == ["subnet-us-east-1a"]
    assert tags_of(ec, group["ARN"]) == {"Name": name}
    ec.modify_cache_subnet_group(CacheSubnetGroupName=name, CacheSubnetGroupDescription="changed",
                                 SubnetIds=["subnet-us-east-1a", "subnet-us-east-1b"])
    group = ec.describe_cache_subnet_groups(CacheSubnetGroupName=name)["CacheSubnetGroups"][0]
    assert sorted(s["SubnetIdentifier"] for s in group["Subnets"]) == ["subnet-us-east-1a", "subnet-us-east-1b"]
    assert group["CacheSubnetGroupDescription"] == "changed"
    retry_when("CacheSubnetGroupInUse", lambda: ec.delete_cache_subnet_group(CacheSubnetGroupName=name))
    try:
        ec.describe_cache_subnet_groups(CacheSubnetGroupName=name)
        raise AssertionError("the subnet group is still there")
    except ClientError as error:
        assert error.response["Error"]["Code"] == "CacheSubnetGroupNotFoundFault"


def test_aws_elasticache_user_user_group_and_association(ec):
    user_status = {}
    for user_id in ("tf-user-a", "tf-user-b"):
        ec.create_user(UserId=user_id, UserName=user_id, Engine="redis", AccessString="on ~* +@all",
                       AuthenticationMode={"Type": "password", "Passwords": ["tf-password-0123456789"]},
                       Tags=[{"Key": "Name", "Value": user_id}])
        user_status[user_id] = _status(lambda user_id=user_id: ec.describe_users(UserId=user_id), "Users", "Status",
                                       "UserNotFound")
        state_change(user_status[user_id], pending={"creating"}, target={"active"})
    user = ec.describe_users(UserId="tf-user-a")["Users"][0]
    for field in ("ARN", "AccessString", "Engine", "UserName", "MinimumEngineVersion"):
        assert user[field], field
    assert user["Authentication"]["Type"] == "password" and user["Authentication"]["PasswordCount"] == 1
    assert tags_of(ec, user["ARN"]) == {"Name": "tf-user-a"}
    ec.modify_user(UserId="tf-user-a", AccessString="on ~app:* +@read")
    state_change(user_status["tf-user-a"], pending={"modifying"}, target={"active"})
    assert ec.describe_users(UserId="tf-user-a")["Users"][0]["AccessString"] == "on ~app:* +@read"

    group_status = _status(lambda: ec.describe_user_groups(UserGroupId="tf-users"), "UserGroups", "Status",
                           "UserGroupNotFound")
    ec.create_user_group(UserGroupId="tf-users", Engine="redis", UserIds=["default", "tf-user-a"],
                         Tags=[{"Key": "Name", "Value": "tf-users"}])
    state_change(group_status, pending={"creating", "modifying"}, target={"active"})
    group = ec.describe_user_groups(UserGroupId="tf-users")["UserGroups"][0]
    assert group["ARN"] and group["Engine"] == "redis" and sorted(group["UserIds"]) == ["default", "tf-user-a"]
    assert tags_of(ec, group["ARN"]) == {"Name": "tf-users"}

    # aws_elasticache_user_group_association: add (retried on InvalidUserGroupState), wait, read.
    retry_when("InvalidUserGroupState",
               lambda: ec.modify_user_group(UserGroupId="tf-users", UserIdsToAdd=["tf-user-b"]))
    state_change(group_status, pending={"modifying"}, target={"active"})
    assert "tf-user-b" in ec.describe_user_groups(UserGroupId="tf-users")["UserGroups"][0]["UserIds"]
    retry_when("InvalidUserGroupState",
               lambda: ec.modify_user_group(UserGroupId="tf-users", UserIdsToRemove=["tf-user-b"]))
    state_change(group_status, pending={"modifying"}, target={"active"})
    assert "tf-user-b" not in ec.describe_user_groups(UserGroupId="tf-users")["UserGroups"][0]["UserIds"]

    # Destroy: the group, then the users, each waiting for NotFound through "deleting" only.
    ec.delete_user_group(UserGroupId="tf-users")
    assert state_change(group_status, pending={"deleting"}, target=set())[-1] == NOT_FOUND
    for user_id in ("tf-user-a", "tf-user-b"):
        ec.delete_user(UserId=user_id)
        assert state_change(user_status[user_id], pending={"deleting"}, target=set())[-1] == NOT_FOUND


def test_the_waiter_replay_fails_where_the_provider_would() -> None:
    """The replays can fail: a status the provider's waiter does not list ends its apply."""
    answers = iter(["deleting", "deleted", ""])
    try:
        state_change(lambda: next(answers), **RG_DELETED)
        raise AssertionError("a lingering 'deleted' status passed the delete waiter")
    except UnexpectedState as error:
        assert "'deleted'" in str(error)
    answers = iter(["creating", "available"])
    assert state_change(lambda: next(answers), **RG_AVAILABLE) == ["creating", "available"]


def test_aws_elasticache_serverless_cache(ec):
    """serverless_cache.go: Create (flattening every member it reads), waitServerlessCacheAvailable
    (pending creating/deleting/modifying), Update one member per ModifyServerlessCache (the API takes
    one kind of change a call) each followed by the waiter, removing CacheUsageLimits as the provider
    does (zeros), Delete retried on DependencyViolation and waited for until NotFound."""
    name = "tf-serverless"
    refresh = _status(lambda: ec.describe_serverless_caches(ServerlessCacheName=name), "ServerlessCaches", "Status",
                      "ServerlessCacheNotFoundFault")
    pending = {"creating", "deleting", "modifying"}
    ec.create_serverless_cache(
        ServerlessCacheName=name, Engine="valkey", Description="tf", Tags=[{"Key": "team", "Value": "a"}],
        CacheUsageLimits={"DataStorage": {"Maximum": 10, "Unit": "GB"}, "ECPUPerSecond": {"Maximum": 5000}},
    )
    state_change(refresh, pending=pending, target={"available"})
    cache = ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]
    for member in ("ARN", "CacheUsageLimits", "CreateTime", "DailySnapshotTime", "Description", "Endpoint", "Engine",
                   "FullEngineVersion", "MajorEngineVersion", "ReaderEndpoint", "SnapshotRetentionLimit", "Status"):
        assert member in cache, member
    assert cache["Endpoint"]["Address"] and cache["Endpoint"]["Port"] and cache["ReaderEndpoint"]["Port"]
    assert cache["CacheUsageLimits"]["DataStorage"] == {"Maximum": 10, "Unit": "GB"}
    assert tags_of(ec, cache["ARN"]) == {"team": "a"}

    for change in ({"Description": "tf, updated"}, {"DailySnapshotTime": "03:00"}, {"SnapshotRetentionLimit": 3},
                   {"CacheUsageLimits": {"DataStorage": {"Maximum": 20, "Unit": "GB"}}},
                   # Removing cache_usage_limits from the configuration: the provider sends zeros.
                   {"CacheUsageLimits": {"DataStorage": {"Maximum": 0, "Minimum": 0, "Unit": "GB"},
                                         "ECPUPerSecond": {"Maximum": 0, "Minimum": 0}}}):
        ec.modify_serverless_cache(ServerlessCacheName=name, **change)
        state_change(refresh, pending=pending, target={"available"})
    cache = ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]
    assert (cache["Description"], cache["DailySnapshotTime"], cache["SnapshotRetentionLimit"]) == ("tf, updated", "03:00", 3)
    assert "Maximum" not in cache.get("CacheUsageLimits", {}).get("DataStorage", {}), cache.get("CacheUsageLimits")
    update_tags(ec, cache["ARN"], {"team": "a"}, {"team": "b"})
    assert tags_of(ec, cache["ARN"]) == {"team": "b"}

    retry_when("DependencyViolation", lambda: ec.delete_serverless_cache(ServerlessCacheName=name))
    assert state_change(refresh, pending=pending, target=set())[-1] == NOT_FOUND


GROUP_PENDING = {"creating", "modifying", "restoring", "snapshotting"}
GLOBAL_PENDING = {"creating", "modifying"}
GLOBAL_TARGET = {"available", "primary-only"}


def test_aws_elasticache_global_replication_group(server):
    """global_replication_group.go with a secondary aws_elasticache_replication_group: Create, then
    waitGlobalReplicationGroupAvailable (pending creating/modifying, target available/primary-only);
    Read with ShowMemberInfo (the id must match the provider's import regex, five letters and a
    hyphen before the suffix); Update one member per ModifyGlobalReplicationGroup (ApplyImmediately
    true) each followed by the waiter; the secondary's destroy disassociates first (retried on
    InvalidGlobalReplicationGroupState; "is not associated with Global Replication Group" counts as
    done), then deletes the group; Delete with RetainPrimaryReplicationGroup true, retried on
    InvalidGlobalReplicationGroupState and waited for until NotFound."""
    east, west = server.client(region="us-east-1"), server.client(region="us-west-2")
    east.create_replication_group(ReplicationGroupId="tf-gd-east", ReplicationGroupDescription="primary",
                                  Engine="valkey", CacheNodeType="cache.r6g.large", NumCacheClusters=2,
                                  AutomaticFailoverEnabled=True)
    state_change(_status(lambda: east.describe_replication_groups(ReplicationGroupId="tf-gd-east"),
                         "ReplicationGroups", "Status", "ReplicationGroupNotFoundFault"),
                 pending=GROUP_PENDING, target={"available"})
    created = east.create_global_replication_group(GlobalReplicationGroupIdSuffix="tf-orders",
                                                   PrimaryReplicationGroupId="tf-gd-east",
                                                   GlobalReplicationGroupDescription="orders")
    global_id = created["GlobalReplicationGroup"]["GlobalReplicationGroupId"]
    refresh = _status(lambda: east.describe_global_replication_groups(GlobalReplicationGroupId=global_id,
                                                                      ShowMemberInfo=True),
                      "GlobalReplicationGroups", "Status", "GlobalReplicationGroupNotFoundFault")
    state_change(refresh, pending=GLOBAL_PENDING, target=GLOBAL_TARGET)
    record = east.describe_global_replication_groups(GlobalReplicationGroupId=global_id,
                                                     ShowMemberInfo=True)["GlobalReplicationGroups"][0]
    assert re.fullmatch(r"[a-z]{5}-tf-orders", global_id), global_id
    for member in ("ARN", "AtRestEncryptionEnabled", "AuthTokenEnabled", "CacheNodeType", "ClusterEnabled", "Engine",
                   "EngineVersion", "GlobalReplicationGroupDescription", "GlobalReplicationGroupId",
                   "TransitEncryptionEnabled", "Members"):
        assert member in record, member
    assert [m["ReplicationGroupId"] for m in record["Members"] if m["Role"] == "PRIMARY"] == ["tf-gd-east"]
    assert record["Members"][0]["AutomaticFailover"] == "enabled"

    # The secondary: aws_elasticache_replication_group with global_replication_group_id (no engine, no node type).
    west.create_replication_group(ReplicationGroupId="tf-gd-west", ReplicationGroupDescription="secondary",
                                  GlobalReplicationGroupId=global_id, NumCacheClusters=2)
    state_change(_status(lambda: west.describe_replication_groups(ReplicationGroupId="tf-gd-west"),
                         "ReplicationGroups", "Status", "ReplicationGroupNotFoundFault"),
                 pending=GROUP_PENDING, target={"available"})
    state_change(refresh, pending=GLOBAL_PENDING, target=GLOBAL_TARGET)
    secondary = west.describe_replication_groups(ReplicationGroupId="tf-gd-west")["ReplicationGroups"][0]
    assert secondary["GlobalReplicationGroupInfo"] == {"GlobalReplicationGroupId": global_id,
                                                       "GlobalReplicationGroupMemberRole": "SECONDARY"}

    east.modify_global_replication_group(GlobalReplicationGroupId=global_id, ApplyImmediately=True,
                                         GlobalReplicationGroupDescription="orders, updated")
    state_change(refresh, pending=GLOBAL_PENDING, target=GLOBAL_TARGET)
    record = east.describe_global_replication_groups(GlobalReplicationGroupId=global_id)["GlobalReplicationGroups"][0]
    assert record["GlobalReplicationGroupDescription"] == "orders, updated"

    def disassociate() -> None:
        try:
            retry_when("InvalidGlobalReplicationGroupState", lambda: west.disassociate_global_replication_group(
                GlobalReplicationGroupId=global_id, ReplicationGroupId="tf-gd-west", ReplicationGroupRegion="us-west-2"))
        except ClientError as error:
            if error.response["Error"]["Code"] == "GlobalReplicationGroupNotFoundFault":
                return
            if (error.response["Error"]["Code"] == "InvalidParameterValue"
                    and "is not associated with Global Replication Group" in error.response["Error"]["Message"]):
                return
            raise

    disassociate()
    disassociate()  # the provider's second look (a destroy run again) ends quietly too
    retry_when("InvalidReplicationGroupState", lambda: west.delete_replication_group(ReplicationGroupId="tf-gd-west"))
    state_change(_status(lambda: west.describe_replication_groups(ReplicationGroupId="tf-gd-west"),
                         "ReplicationGroups", "Status", "ReplicationGroupNotFoundFault"),
                 pending={"available", "creating", "deleting", "modifying", "snapshotting"}, target=set())

    retry_when("InvalidGlobalReplicationGroupState", lambda: east.delete_global_replication_group(
        GlobalReplicationGroupId=global_id, RetainPrimaryReplicationGroup=True))
    assert state_change(refresh, pending={"available", "primary-only", "modifying", "deleting"},
                        target=set())[-1] == NOT_FOUND
    assert east.describe_replication_groups(ReplicationGroupId="tf-gd-east")["ReplicationGroups"][0]["Status"] \
        in ("available", "modifying")
    retry_when("InvalidReplicationGroupState", lambda: east.delete_replication_group(ReplicationGroupId="tf-gd-east"))
