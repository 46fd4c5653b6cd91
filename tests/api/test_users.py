"""RBAC through boto3: users and user groups, their statuses, faults and filters; the security members
of CreateReplicationGroup / CreateCacheCluster refused where ElastiCache refuses them. Passwords and
tokens never come back."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from helpers import wait_for

PASSWORD = "rbac-api-password-0123"
TOKEN = "Api-Token-0123456789ab"


def code_of(call, **params) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def user_group_status(ec, group_id: str) -> str:
    return ec.describe_user_groups(UserGroupId=group_id)["UserGroups"][0]["Status"]


def test_users_lifecycle_statuses_and_faults(ec):
    made = ec.create_user(UserId="Api-App", UserName="api-app", Engine="redis", AccessString="on ~app:* +get",
                          Passwords=[PASSWORD, PASSWORD + "-2"])
    assert (made["UserId"], made["Status"], made["Authentication"]) == ("api-app", "active", {"Type": "password",
                                                                                             "PasswordCount": 2})
    assert made["ARN"] == "arn:aws:elasticache:us-east-1:000000000000:user:api-app" and made["MinimumEngineVersion"]
    locked = ec.create_user(UserId="api-lock", UserName="default", Engine="redis", AccessString="off",
                            AuthenticationMode={"Type": "no-password-required"})
    assert locked["Authentication"] == {"Type": "no-password", "PasswordCount": 0}
    # ElastiCache's built-in default user is in every region and cannot be changed.
    built_in = ec.describe_users(UserId="default")["Users"][0]
    assert (built_in["UserName"], built_in["AccessString"], built_in["Authentication"]["Type"]) == (
        "default", "on ~* &* +@all", "no-password")
    assert code_of(ec.modify_user, UserId="default", AccessString="off")[0] == "InvalidParameterValue"
    assert code_of(ec.delete_user, UserId="default")[0] == "InvalidParameterValue"

    assert code_of(ec.create_user, UserId="api-app", UserName="x", Engine="redis", AccessString="on",
                   NoPasswordRequired=True)[0] == "UserAlreadyExists"
    assert code_of(ec.create_user, UserId="api-other", UserName="api-app", Engine="redis", AccessString="on",
                   NoPasswordRequired=True)[0] == "DuplicateUserName"
    for params, says in (
        ({"AccessString": "on >secret-in-access"}, "passwords cannot be set in an access string"),
        ({"AccessString": "on", "Passwords": ["short"]}, "Passwords length must be between 16-128"),
        ({"AccessString": "on", "NoPasswordRequired": True, "Engine": "memcached"}, "valkey or redis"),
        ({"AccessString": "on"}, "No password was provided"),
    ):
        call = {"UserId": "api-bad", "UserName": "api-bad", "Engine": "redis", **params}
        code, message = code_of(ec.create_user, **call)
        assert code == "InvalidParameterValue" and says in message and "secret-in-access" not in message

    filtered = ec.describe_users(Filters=[{"Name": "user-name", "Values": ["default"]}])["Users"]
    assert {u["UserId"] for u in filtered} == {"default", "api-lock"}
    assert code_of(ec.describe_users, Filters=[{"Name": "colour", "Values": ["x"]}])[0] == "InvalidParameterValue"
    assert code_of(ec.describe_users, UserId="api-nobody")[0] == "UserNotFound"

    # A user group must hold a user named default, once per name.
    assert code_of(ec.create_user_group, UserGroupId="api-ug", Engine="redis", UserIds=["api-app"])[0] == "DefaultUserRequired"
    assert code_of(ec.create_user_group, UserGroupId="api-ug", Engine="redis",
                   UserIds=["default", "api-lock"])[0] == "DuplicateUserName"
    assert code_of(ec.create_user_group, UserGroupId="api-ug", Engine="redis",
                   UserIds=["api-lock", "api-nobody"])[0] == "UserNotFound"
    group = ec.create_user_group(UserGroupId="api-ug", Engine="redis", UserIds=["api-lock", "api-app"])
    assert group["Status"] == "creating" and group["ReplicationGroups"] == []
    wait_for(lambda: user_group_status(ec, "api-ug") == "active", timeout=10, what="user group active")
    assert ec.describe_users(UserId="api-app")["Users"][0]["UserGroupIds"] == ["api-ug"]
    assert code_of(ec.create_user_group, UserGroupId="api-ug", Engine="redis", UserIds=["default"])[0] == \
        "UserGroupAlreadyExists"

    changed = ec.modify_user_group(UserGroupId="api-ug", UserIdsToRemove=["api-app"])
    assert changed["Status"] == "modifying" and changed["PendingChanges"] == {"UserIdsToRemove": ["api-app"],
                                                                             "UserIdsToAdd": []}
    wait_for(lambda: user_group_status(ec, "api-ug") == "active", timeout=10, what="user group active again")
    assert "PendingChanges" not in ec.describe_user_groups(UserGroupId="api-ug")["UserGroups"][0]
    assert code_of(ec.modify_user_group, UserGroupId="api-ug", UserIdsToRemove=["api-lock"])[0] == "DefaultUserRequired"
    # The default user of a group cannot leave it by being deleted.
    assert code_of(ec.delete_user, UserId="api-lock")[0] == "DefaultUserAssociatedToUserGroup"

    modified = ec.modify_user(UserId="api-app", AppendAccessString="+set")
    assert modified["AccessString"] == "on ~app:* +get +set" and modified["Status"] == "modifying"
    wait_for(lambda: ec.describe_users(UserId="api-app")["Users"][0]["Status"] == "active", timeout=10, what="user active")

    assert ec.delete_user_group(UserGroupId="api-ug")["Status"] == "deleting"
    wait_for(lambda: not ec.describe_user_groups()["UserGroups"] or "api-ug" not in
             {g["UserGroupId"] for g in ec.describe_user_groups()["UserGroups"]}, timeout=10, what="user group gone")
    for user_id in ("api-app", "api-lock"):
        assert ec.delete_user(UserId=user_id)["Status"] == "deleting"
    wait_for(lambda: {"api-app", "api-lock"}.isdisjoint(u["UserId"] for u in ec.describe_users()["Users"]),
             timeout=10, what="users gone")
    events = ec.describe_events(SourceType="user", Duration=60)["Events"]
    assert any(e["Message"] == "User api-app deleted" for e in events)
    assert not any(PASSWORD in e["Message"] for e in events)


def test_security_members_are_refused_where_elasticache_refuses_them(ec):
    base = {"ReplicationGroupDescription": "x", "CacheNodeType": "cache.t4g.micro", "NumCacheClusters": 1}
    code, message = code_of(ec.create_replication_group, ReplicationGroupId="api-sec1", Engine="valkey",
                            TransitEncryptionEnabled=True, **base)
    assert code == "InvalidParameterCombination" and "built without it" in message and "redis 7.0.15" in message
    code, message = code_of(ec.create_replication_group, ReplicationGroupId="api-sec2", Engine="redis",
                            AuthToken=TOKEN, **base)
    assert code == "InvalidParameterValue" and "encryption-in-transit" in message and TOKEN not in message
    code, _ = code_of(ec.create_replication_group, ReplicationGroupId="api-sec3", Engine="redis", AuthToken=TOKEN,
                      TransitEncryptionEnabled=True, UserGroupIds=["x"], **base)
    assert code == "InvalidParameterCombination"
    code, _ = code_of(ec.create_replication_group, ReplicationGroupId="api-sec4", Engine="valkey",
                      UserGroupIds=["api-missing"], **base)
    assert code == "UserGroupNotFound"
    code, message = code_of(ec.create_replication_group, ReplicationGroupId="api-sec5", Engine="redis",
                            TransitEncryptionEnabled=True, TransitEncryptionMode="preferred", NumNodeGroups=2,
                            ReplicationGroupDescription="x", CacheNodeType="cache.t4g.micro")
    assert code == "InvalidParameterCombination" and "preferred" in message
    code, message = code_of(ec.create_cache_cluster, CacheClusterId="api-sec6", Engine="valkey",
                            CacheNodeType="cache.t4g.micro", TransitEncryptionEnabled=True)
    assert code == "InvalidParameterCombination" and "redis 7.0.15" in message
    code, _ = code_of(ec.create_cache_cluster, CacheClusterId="api-sec7", Engine="redis",
                      CacheNodeType="cache.t4g.micro", AuthToken="bad@token-0123456789")
    assert code == "InvalidParameterValue"
    assert not any(g["ReplicationGroupId"].startswith("api-sec") for g in ec.describe_replication_groups()["ReplicationGroups"])
    versions = {v["Engine"]: v["CacheEngineVersionDescription"] for v in ec.describe_cache_engine_versions(Engine="redis")
                ["CacheEngineVersions"]}
    assert versions["redis"].endswith("in-transit encryption (TLS): supported")
    valkey = ec.describe_cache_engine_versions(Engine="valkey")["CacheEngineVersions"]
    assert all(v["CacheEngineVersionDescription"].endswith("not supported (built without TLS)") for v in valkey)
