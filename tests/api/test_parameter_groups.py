"""Parameter groups, cache security groups and ModifyCacheCluster through boto3 against a running server:
the community Terraform module's call sequence, ElastiCache's errors, paging."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from helpers import data_memory, engine, events_of, wait_cluster, wait_for

# What the community Terraform module (cloudposse/terraform-aws-elasticache-redis) is given as
# `parameter` blocks by a typical user: more than one ModifyCacheParameterGroup call's worth.
TERRAFORM_PARAMETERS = {
    "maxmemory-policy": "allkeys-lru", "notify-keyspace-events": "lK", "timeout": "300", "tcp-keepalive": "60",
    "maxmemory-samples": "5", "lfu-log-factor": "11", "lfu-decay-time": "2", "slowlog-log-slower-than": "20000",
    "slowlog-max-len": "256", "hash-max-listpack-entries": "256", "hash-max-listpack-value": "32",
    "set-max-intset-entries": "256", "zset-max-listpack-entries": "64", "zset-max-listpack-value": "32",
    "list-compress-depth": "1", "stream-node-max-bytes": "8192", "stream-node-max-entries": "200",
    "hll-sparse-max-bytes": "2000", "active-expire-effort": "2", "acllog-max-len": "64", "latency-tracking": "yes",
    "repl-backlog-ttl": "1800", "min-replicas-max-lag": "20", "client-output-buffer-limit-pubsub-soft-seconds": "30",
    "tracking-table-max-keys": "500000",
}


def code_of(call, **kwargs) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    return error["Code"], error["Message"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


def _batches(items: list[dict[str, str]], size: int = 20) -> list[list[dict[str, str]]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _user_parameters(ec, name: str) -> dict[str, str]:
    found = ec.describe_cache_parameters(CacheParameterGroupName=name, Source="user")
    return {p["ParameterName"]: p["ParameterValue"] for p in found["Parameters"]}


def test_terraform_modules_parameter_group_call_sequence(ec):
    """terraform-provider-aws' aws_elasticache_parameter_group, as the module drives it: create,
    modify in batches of 20, read back, change (reset the removed, modify the changed), destroy."""
    name = "tf-redis-params"
    created = ec.create_cache_parameter_group(
        CacheParameterGroupName=name, CacheParameterGroupFamily="valkey8", Description="Managed by Terraform",
        Tags=[{"Key": "Name", "Value": name}],
    )["CacheParameterGroup"]
    assert created["ARN"] == f"arn:aws:elasticache:us-east-1:000000000000:parametergroup:{name}"
    wanted = [{"ParameterName": k, "ParameterValue": v} for k, v in TERRAFORM_PARAMETERS.items()]
    batches = _batches(wanted)
    assert [len(b) for b in batches] == [20, 5]
    for batch in batches:
        answer = ec.modify_cache_parameter_group(CacheParameterGroupName=name, ParameterNameValues=batch)
        assert answer["CacheParameterGroupName"] == name
    # Read: the group, then only the user's parameters (the provider reads one page of Source=user).
    groups = ec.get_paginator("describe_cache_parameter_groups").paginate(CacheParameterGroupName=name)
    found = [g for page in groups for g in page["CacheParameterGroups"]]
    assert [(g["CacheParameterGroupName"], g["CacheParameterGroupFamily"], g["Description"], g["IsGlobal"]) for g in found] == [
        (name, "valkey8", "Managed by Terraform", False)
    ]
    user = ec.describe_cache_parameters(CacheParameterGroupName=name, Source="user")
    assert "Marker" not in user and user["CacheNodeTypeSpecificParameters"] == []
    assert {p["ParameterName"]: p["ParameterValue"] for p in user["Parameters"]} == TERRAFORM_PARAMETERS
    assert {p["Source"] for p in user["Parameters"]} == {"user"}
    tags = ec.list_tags_for_resource(ResourceName=created["ARN"])["TagList"]
    assert tags == [{"Key": "Name", "Value": name}]

    # An update removes three parameters (reset) and changes one (modify), as the provider does.
    removed = ["latency-tracking", "tracking-table-max-keys", "acllog-max-len"]
    ec.reset_cache_parameter_group(
        CacheParameterGroupName=name, ParameterNameValues=[{"ParameterName": n, "ParameterValue": TERRAFORM_PARAMETERS[n]} for n in removed]
    )
    ec.modify_cache_parameter_group(
        CacheParameterGroupName=name, ParameterNameValues=[{"ParameterName": "timeout", "ParameterValue": "600"}]
    )
    expected = {k: v for k, v in TERRAFORM_PARAMETERS.items() if k not in removed} | {"timeout": "600"}
    assert _user_parameters(ec, name) == expected
    everything = ec.describe_cache_parameters(CacheParameterGroupName=name)["Parameters"]
    assert {p["ParameterName"]: p["ParameterValue"] for p in everything}["latency-tracking"] == "no"

    # Destroy: delete (retried by the provider on InvalidCacheParameterGroupState), then gone.
    ec.delete_cache_parameter_group(CacheParameterGroupName=name)
    assert code_of(ec.describe_cache_parameter_groups, CacheParameterGroupName=name) == (
        "CacheParameterGroupNotFound", f"CacheParameterGroup not found: {name}", 404
    )
    assert code_of(ec.delete_cache_parameter_group, CacheParameterGroupName=name)[0] == "CacheParameterGroupNotFound"


def test_reset_all_and_the_reserved_memory_answer_terraform_relies_on(ec):
    name = "reset-all"
    ec.create_cache_parameter_group(CacheParameterGroupName=name, CacheParameterGroupFamily="redis7", Description="d")
    ec.modify_cache_parameter_group(CacheParameterGroupName=name, ParameterNameValues=[
        {"ParameterName": "maxmemory-policy", "ParameterValue": "noeviction"},
        {"ParameterName": "lazyfree-lazy-user-del", "ParameterValue": "yes"},
    ])
    code, message, _ = code_of(ec.reset_cache_parameter_group, CacheParameterGroupName=name,
                               ParameterNameValues=[{"ParameterName": "reserved-memory"}])
    assert (code, message) == ("InvalidParameterValue", "Parameter reserved-memory doesn't exist.")
    ec.reset_cache_parameter_group(CacheParameterGroupName=name, ResetAllParameters=True)
    assert _user_parameters(ec, name) == {}
    ec.delete_cache_parameter_group(CacheParameterGroupName=name)


def test_errors_are_elasticaches(ec):
    ec.create_cache_parameter_group(CacheParameterGroupName="errs", CacheParameterGroupFamily="valkey9", Description="d")
    assert code_of(ec.create_cache_parameter_group, CacheParameterGroupName="ERRS", CacheParameterGroupFamily="valkey9",
                   Description="d")[0] == "CacheParameterGroupAlreadyExists"
    code, message, _ = code_of(ec.create_cache_parameter_group, CacheParameterGroupName="x",
                               CacheParameterGroupFamily="redis6.x", Description="d")
    assert code == "InvalidParameterValue" and "redis7, valkey8, valkey9" in message
    assert code_of(ec.create_cache_parameter_group, CacheParameterGroupName="two--hyphens",
                   CacheParameterGroupFamily="valkey9", Description="d")[0] == "InvalidParameterValue"
    code, message, _ = code_of(ec.modify_cache_parameter_group, CacheParameterGroupName="default.valkey9",
                               ParameterNameValues=[{"ParameterName": "timeout", "ParameterValue": "30"}])
    assert code == "InvalidParameterValue" and "default parameter group" in message
    too_many = [{"ParameterName": "timeout", "ParameterValue": str(20 + i)} for i in range(21)]
    assert code_of(ec.modify_cache_parameter_group, CacheParameterGroupName="errs", ParameterNameValues=too_many)[:2] == (
        "InvalidParameterCombination", "Cannot modify more than 20 parameters in a single request"
    )
    code, message, _ = code_of(ec.modify_cache_parameter_group, CacheParameterGroupName="errs",
                               ParameterNameValues=[{"ParameterName": "maxmemory-policy", "ParameterValue": "lru"}])
    assert code == "InvalidParameterValue" and "maxmemory-policy" in message and "allkeys-lru" in message
    assert code_of(ec.modify_cache_parameter_group, CacheParameterGroupName="nope",
                   ParameterNameValues=[{"ParameterName": "timeout", "ParameterValue": "30"}])[::2] == (
        "CacheParameterGroupNotFound", 404
    )
    code, message, _ = code_of(ec.describe_cache_parameters, CacheParameterGroupName="errs", Source="mine")
    assert code == "InvalidParameterValue" and "user, system, engine-default" in message
    assert _user_parameters(ec, "errs") == {}  # nothing half-done
    # A group of another family, or of the other cluster mode, is refused where a cluster names it.
    code, message, _ = code_of(ec.create_cache_cluster, CacheClusterId="wrongfamily", Engine="redis",
                               CacheNodeType="cache.t4g.micro", CacheParameterGroupName="errs")
    assert code == "InvalidParameterCombination" and "family redis7" in message and "family valkey9" in message
    ec.delete_cache_parameter_group(CacheParameterGroupName="errs")


def test_describe_pages_and_engine_defaults_of_every_installed_family(ec):
    families = sorted({v["CacheParameterGroupFamily"] for v in ec.describe_cache_engine_versions()["CacheEngineVersions"]})
    assert families == ["redis7", "valkey8", "valkey9"]
    groups = [g["CacheParameterGroupName"] for g in ec.describe_cache_parameter_groups()["CacheParameterGroups"]]
    for family in families:
        assert {f"default.{family}", f"default.{family}.cluster.on"} <= set(groups)
        pages = list(ec.get_paginator("describe_engine_default_parameters").paginate(
            CacheParameterGroupFamily=family, PaginationConfig={"PageSize": 20}
        ))
        assert len(pages) >= 3
        names = [p["ParameterName"] for page in pages for p in page["EngineDefaults"]["Parameters"]]
        assert names == sorted(set(names)) and len(names) > 50
        assert pages[0]["EngineDefaults"]["CacheParameterGroupFamily"] == family
        specific = [p for page in pages for p in page["EngineDefaults"]["CacheNodeTypeSpecificParameters"]]
        assert {p["ParameterName"] for p in specific} == {
            "maxmemory", "client-output-buffer-limit-replica-hard-limit", "client-output-buffer-limit-replica-soft-limit"
        }
        maxmemory = next(p for p in specific if p["ParameterName"] == "maxmemory")
        assert {"CacheNodeType": "cache.t4g.micro", "Value": "536870912"} in maxmemory["CacheNodeTypeSpecificValues"]
        # Not offered: what every installed build refuses (activedefrag needs jemalloc's defrag support).
        assert "activedefrag" not in names
        cluster_on = ec.describe_cache_parameters(CacheParameterGroupName=f"default.{family}.cluster.on")["Parameters"]
        assert {p["ParameterName"]: p["ParameterValue"] for p in cluster_on}["cluster-enabled"] == "yes"
    one = ec.describe_engine_default_parameters(CacheParameterGroupFamily="valkey8")["EngineDefaults"]["Parameters"]
    by_name = {p["ParameterName"]: p for p in one}
    policy = by_name["maxmemory-policy"]
    assert (policy["ParameterValue"], policy["ChangeType"], policy["IsModifiable"], policy["DataType"]) == (
        "volatile-lru", "immediate", True, "string"
    )
    assert "allkeys-lfu" in policy["AllowedValues"] and policy["MinimumEngineVersion"] == "8.0.0"
    assert by_name["databases"]["ChangeType"] == "requires-reboot"
    assert by_name["reserved-memory-percent"]["ParameterValue"] == "25"
    assert by_name["timeout"]["Source"] == "engine-default" and by_name["maxmemory-policy"]["Source"] == "system"
    # Marker paging of the groups themselves.
    pages = list(ec.get_paginator("describe_cache_parameter_groups").paginate(PaginationConfig={"PageSize": 20}))
    assert [g["CacheParameterGroupName"] for page in pages for g in page["CacheParameterGroups"]] == sorted(groups)


def test_a_group_in_use_is_not_deleted_and_security_groups(ec):
    ec.create_cache_parameter_group(CacheParameterGroupName="in-use", CacheParameterGroupFamily="valkey9", Description="d")
    sg = ec.create_cache_security_group(CacheSecurityGroupName="Web", Description="web tier")["CacheSecurityGroup"]
    assert (sg["CacheSecurityGroupName"], sg["OwnerId"], sg["EC2SecurityGroups"]) == ("web", "000000000000", [])
    assert sg["ARN"] == "arn:aws:elasticache:us-east-1:000000000000:securitygroup:web"
    assert code_of(ec.create_cache_security_group, CacheSecurityGroupName="web", Description="d")[0] == (
        "CacheSecurityGroupAlreadyExists"
    )
    authorized = ec.authorize_cache_security_group_ingress(
        CacheSecurityGroupName="web", EC2SecurityGroupName="app", EC2SecurityGroupOwnerId="123456789012"
    )["CacheSecurityGroup"]
    assert authorized["EC2SecurityGroups"] == [
        {"Status": "authorized", "EC2SecurityGroupName": "app", "EC2SecurityGroupOwnerId": "123456789012"}
    ]
    assert code_of(ec.authorize_cache_security_group_ingress, CacheSecurityGroupName="web", EC2SecurityGroupName="app",
                   EC2SecurityGroupOwnerId="123456789012")[0] == "AuthorizationAlreadyExists"
    assert code_of(ec.authorize_cache_security_group_ingress, CacheSecurityGroupName="web", EC2SecurityGroupName="app",
                   EC2SecurityGroupOwnerId="me")[0] == "InvalidParameterValue"

    ec.create_cache_cluster(
        CacheClusterId="sg-user", Engine="valkey", EngineVersion="9.1", CacheNodeType="cache.t4g.micro",
        CacheParameterGroupName="in-use", CacheSecurityGroupNames=["web"], SecurityGroupIds=["sg-0123abcd"],
    )
    cluster = wait_cluster(ec, "sg-user")
    assert cluster["CacheSecurityGroups"] == [{"CacheSecurityGroupName": "web", "Status": "active"}]
    assert cluster["SecurityGroups"] == [{"SecurityGroupId": "sg-0123abcd", "Status": "active"}]
    assert cluster["CacheParameterGroup"] == {
        "CacheParameterGroupName": "in-use", "ParameterApplyStatus": "in-sync", "CacheNodeIdsToReboot": []
    }
    code, message, _ = code_of(ec.delete_cache_parameter_group, CacheParameterGroupName="in-use")
    assert code == "InvalidCacheParameterGroupState" and "sg-user" in message
    assert code_of(ec.delete_cache_security_group, CacheSecurityGroupName="web")[0] == "InvalidCacheSecurityGroupState"
    # Moved off them: both can go.
    ec.modify_cache_cluster(CacheClusterId="sg-user", CacheParameterGroupName="default.valkey9",
                            CacheSecurityGroupNames=[], SecurityGroupIds=["sg-0123abcd", "sg-0123abcd4567abcde"])
    cluster = ec.describe_cache_clusters(CacheClusterId="sg-user")["CacheClusters"][0]
    assert cluster["CacheSecurityGroups"] == [] and len(cluster["SecurityGroups"]) == 2
    ec.delete_cache_parameter_group(CacheParameterGroupName="in-use")
    revoked = ec.revoke_cache_security_group_ingress(
        CacheSecurityGroupName="web", EC2SecurityGroupName="app", EC2SecurityGroupOwnerId="123456789012"
    )["CacheSecurityGroup"]
    assert revoked["EC2SecurityGroups"] == []
    assert code_of(ec.revoke_cache_security_group_ingress, CacheSecurityGroupName="web", EC2SecurityGroupName="app",
                   EC2SecurityGroupOwnerId="123456789012")[::2] == ("AuthorizationNotFound", 404)
    listed = ec.get_paginator("describe_cache_security_groups").paginate(PaginationConfig={"PageSize": 20})
    assert "web" in [g["CacheSecurityGroupName"] for page in listed for g in page["CacheSecurityGroups"]]
    ec.delete_cache_security_group(CacheSecurityGroupName="web")
    assert code_of(ec.describe_cache_security_groups, CacheSecurityGroupName="web")[::2] == ("CacheSecurityGroupNotFound", 404)
    ec.delete_cache_cluster(CacheClusterId="sg-user")


def test_modify_cache_cluster(ec):
    """Settings are stored and shown; a node type change waits in PendingModifiedValues without
    ApplyImmediately, and is applied (the engine's memory) with it."""
    ec.create_cache_cluster(CacheClusterId="mod-me", Engine="valkey", CacheNodeType="cache.t4g.micro")
    wait_cluster(ec, "mod-me")
    modified = ec.modify_cache_cluster(
        CacheClusterId="mod-me", CacheNodeType="cache.t4g.small", SnapshotRetentionLimit=5, SnapshotWindow="03:00-04:00",
        PreferredMaintenanceWindow="tue:01:00-tue:02:00", NotificationTopicArn="arn:aws:sns:us-east-1:123456789012:ops",
        NotificationTopicStatus="inactive", AutoMinorVersionUpgrade=False,
    )["CacheCluster"]
    assert modified["CacheClusterStatus"] == "available" and modified["CacheNodeType"] == "cache.t4g.micro"
    assert modified["PendingModifiedValues"] == {"CacheNodeType": "cache.t4g.small"}
    assert (modified["SnapshotRetentionLimit"], modified["SnapshotWindow"]) == (5, "03:00-04:00")
    assert modified["PreferredMaintenanceWindow"] == "tue:01:00-tue:02:00" and modified["AutoMinorVersionUpgrade"] is False
    assert modified["NotificationConfiguration"] == {
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ops", "TopicStatus": "inactive"
    }
    code, message, _ = code_of(ec.modify_cache_cluster, CacheClusterId="mod-me", EngineVersion="8.1")
    assert code == "InvalidParameterCombination" and "cannot downgrade" in message
    started = ec.modify_cache_cluster(CacheClusterId="mod-me", CacheNodeType="cache.t4g.medium", ApplyImmediately=True)
    assert started["CacheCluster"]["CacheClusterStatus"] == "modifying"
    assert started["CacheCluster"]["PendingModifiedValues"] == {"CacheNodeType": "cache.t4g.medium"}
    done = wait_cluster(ec, "mod-me")
    assert done["CacheNodeType"] == "cache.t4g.medium" and done["PendingModifiedValues"] == {}
    node = engine(done["CacheNodes"][0]["Endpoint"]["Address"])
    assert int(node.config_get("maxmemory")["maxmemory"]) == data_memory("cache.t4g.medium")
    assert any("scaled to cache.t4g.medium" in m for m in events_of(ec, "mod-me"))
    ec.delete_cache_cluster(CacheClusterId="mod-me")
    wait_for(lambda: not [c for c in ec.describe_cache_clusters()["CacheClusters"] if c["CacheClusterId"] == "mod-me"])
