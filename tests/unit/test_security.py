"""The locks of a group (TLS mode, AUTH token, user group) and RBAC's rules, as pure decisions;
the control plane's per-node lock files; policies' resources; the credentials file."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from cachefleet.api.errors import ApiError
from cachefleet.api.policy import Policy, authorize, request_resources
from cachefleet.api.sigv4 import CredentialsFile, append_access_key, load_access_keys
from cachefleet.control.locks import Locks, fingerprint
from cachefleet.domain.credentials import TransitEncryptionMode, secret_hash
from cachefleet.domain.errors import (
    AlreadyExists,
    InvalidParameterCombination,
    InvalidParameterValue,
    NotFound,
)
from cachefleet.domain.security import (
    AccessModification,
    Security,
    SecurityRequest,
    check_tls_engine,
    plan_modification,
    preferred_tls_port,
)
from cachefleet.domain.users import (
    CreateUserRequest,
    ModifyUserRequest,
    User,
    UserGroup,
    UserGroupStatus,
    built_in_default,
    check_members,
)
from cachefleet.engine import acl

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
TOKEN = "First-Token-0123456789"
OTHER = "Second-Token-0123456789"
REQUIRED = TransitEncryptionMode.REQUIRED
PREFERRED = TransitEncryptionMode.PREFERRED


def plan(current: Security, params: dict, *, cluster_mode: bool = False, groups: dict | None = None):
    modification = AccessModification.parse(params)
    assert modification is not None
    return plan_modification(current, modification, group_id="g", cluster_mode=cluster_mode,
                             user_groups=groups or {}, engine="valkey", now=NOW)


# ---------------------------------------------------------------------- create
def test_a_create_hashes_the_token_and_defaults_to_required():
    request = SecurityRequest.parse({"TransitEncryptionEnabled": True, "AuthToken": TOKEN})
    assert request.transit_encryption_mode is REQUIRED
    assert request.auth_token_hash == secret_hash(TOKEN) and TOKEN not in repr(request)
    security = request.security(now=NOW)
    assert security.auth_token_hashes == (secret_hash(TOKEN),) and security.auth_token_last_modified == NOW


@pytest.mark.parametrize(
    ("params", "error", "says"),
    [
        ({"AuthToken": TOKEN}, InvalidParameterValue, "only supported when encryption-in-transit is enabled"),
        ({"TransitEncryptionMode": "required"}, InvalidParameterCombination, "needs TransitEncryptionEnabled"),
        ({"TransitEncryptionEnabled": True, "TransitEncryptionMode": "preferred", "AuthToken": TOKEN},
         InvalidParameterCombination, "preferred is not supported with redis access control"),
        ({"TransitEncryptionEnabled": True, "AuthToken": TOKEN, "UserGroupIds": ["ug"]}, InvalidParameterCombination,
         "cannot be used together"),
        ({"UserGroupIds": ["a", "b"]}, InvalidParameterValue, "one user group"),
        ({"TransitEncryptionEnabled": True, "AuthToken": "short"}, InvalidParameterValue, "Invalid AuthToken"),
    ],
)
def test_a_create_refuses_what_elasticache_refuses(params, error, says):
    with pytest.raises(error, match=says) as caught:
        SecurityRequest.parse(params)
    assert TOKEN not in caught.value.message


def test_a_secondary_checks_its_auth_token_against_the_tls_it_inherits():
    request = SecurityRequest.parse({"AuthToken": TOKEN}, transit_inherited=True)  # no TransitEncryptionEnabled
    assert request.inheriting(REQUIRED).security(now=NOW).transit_encryption_mode is REQUIRED
    with pytest.raises(InvalidParameterValue, match="only supported when encryption-in-transit is enabled"):
        request.inheriting(None)
    with pytest.raises(InvalidParameterCombination, match="preferred is not supported with redis access control"):
        request.inheriting(TransitEncryptionMode.PREFERRED)
    assert SecurityRequest.parse({}, transit_inherited=True).inheriting(None).security(now=NOW) == Security()


def test_tls_on_a_build_without_it_names_the_engines_that_can():
    from cachefleet.domain.engines import EngineRelease

    valkey = EngineRelease("valkey", "8.1.8", "valkey8", "Valkey 8.1.8")
    redis = EngineRelease("redis", "7.0.15", "redis7", "Redis OSS 7.0.15", tls=True)
    check_tls_engine(redis, [valkey, redis], member="TransitEncryptionEnabled")
    with pytest.raises(InvalidParameterCombination, match="valkey 8.1.8 here is built without it.*redis 7.0.15"):
        check_tls_engine(valkey, [valkey, redis], member="TransitEncryptionEnabled")
    with pytest.raises(InvalidParameterCombination, match="none is installed"):
        check_tls_engine(valkey, [valkey], member="TransitEncryptionEnabled")


# ---------------------------------------------------------------------- modify
def test_rotate_keeps_the_current_token_then_set_keeps_only_the_new_one_then_delete_none():
    start = Security(REQUIRED, (secret_hash(TOKEN),), NOW)
    rotated = plan(start, {"AuthToken": OTHER, "AuthTokenUpdateStrategy": "ROTATE"})
    assert rotated.security.auth_token_hashes == (secret_hash(TOKEN), secret_hash(OTHER))
    assert rotated.change.auth_token_status == "ROTATING" and "both accepted" in rotated.change.done
    again = plan(rotated.security, {"AuthToken": "Third-Token-0123456789"})  # ROTATE is the default
    assert again.security.auth_token_hashes == (secret_hash(OTHER), secret_hash("Third-Token-0123456789"))
    set_ = plan(rotated.security, {"AuthToken": OTHER, "AuthTokenUpdateStrategy": "SET"})
    assert set_.security.auth_token_hashes == (secret_hash(OTHER),) and set_.change.auth_token_status == "SETTING"
    deleted = plan(set_.security, {"AuthTokenUpdateStrategy": "DELETE"})
    assert deleted.security.auth_token_hashes == () and "without a token" in deleted.change.done
    for result in (rotated, set_, deleted):
        assert TOKEN not in result.message + result.change.done and OTHER not in result.message + result.change.done


@pytest.mark.parametrize(
    ("current", "params", "says"),
    [
        (Security(REQUIRED), {"AuthToken": TOKEN, "AuthTokenUpdateStrategy": "SET"}, "SET is allowed only after ROTATE"),
        (Security(REQUIRED), {"AuthTokenUpdateStrategy": "DELETE"}, "no AUTH token to delete"),
        (Security(REQUIRED, (secret_hash(TOKEN),)), {"AuthToken": TOKEN, "AuthTokenUpdateStrategy": "DELETE"},
         "omit AuthToken"),
        (Security(REQUIRED, (secret_hash(TOKEN),)), {"AuthTokenUpdateStrategy": "SET"}, "must be specified with AuthToken"),
        (Security(), {"AuthToken": TOKEN}, "only supported when encryption-in-transit"),
        (Security(), {"TransitEncryptionEnabled": True}, "must also set TransitEncryptionMode to preferred"),
        (Security(), {"TransitEncryptionEnabled": True, "TransitEncryptionMode": "required"}, "two-step"),
        (Security(), {"TransitEncryptionMode": "preferred"}, "needs TransitEncryptionEnabled=true"),
        (Security(REQUIRED), {"TransitEncryptionEnabled": False}, "first set TransitEncryptionMode to preferred"),
        (Security(REQUIRED, (secret_hash(TOKEN),)), {"TransitEncryptionMode": "preferred"},
         "preferred is not supported with redis access control"),
        (Security(REQUIRED, user_group_ids=("ug",)), {"AuthToken": TOKEN}, "cannot have an AUTH token and a user group"),
        (Security(REQUIRED, user_group_ids=("ug",)), {"UserGroupIdsToRemove": ["other"]}, "does not use user group"),
    ],
)
def test_modifications_elasticache_refuses(current, params, says):
    with pytest.raises((InvalidParameterCombination, InvalidParameterValue), match=says):
        plan(current, params)


def test_the_migration_paths():
    preferred = plan(Security(), {"TransitEncryptionEnabled": True, "TransitEncryptionMode": "preferred"})
    assert preferred.security.transit_encryption_mode is PREFERRED
    assert (preferred.change.transit_encryption_enabled, preferred.change.transit_encryption_mode) == (True, "preferred")
    required = plan(preferred.security, {"TransitEncryptionMode": "required"})
    assert required.security.transit_encryption_mode is REQUIRED and required.change.transit_encryption_enabled is None
    back = plan(required.security, {"TransitEncryptionMode": "preferred"})
    off = plan(back.security, {"TransitEncryptionEnabled": False})
    assert off.security.transit_encryption_mode is None and off.change.transit_encryption_enabled is False
    with pytest.raises(InvalidParameterCombination, match="cluster mode enabled"):
        plan(Security(), {"TransitEncryptionEnabled": True, "TransitEncryptionMode": "preferred"}, cluster_mode=True)
    assert plan(required.security, {"TransitEncryptionMode": "required"}) is None  # nothing changes
    assert preferred_tls_port(6379) == 6380 and preferred_tls_port(65535) == 65534


def test_from_auth_to_rbac_and_back():
    active = UserGroup("us-east-1", "ug", "redis", ("default",), UserGroupStatus.ACTIVE)
    with_token = Security(REQUIRED, (secret_hash(TOKEN),), NOW)
    rbac = plan(with_token, {"UserGroupIdsToAdd": ["ug"]}, groups={"ug": active})
    assert rbac.security.user_group_ids == ("ug",) and rbac.security.auth_token_hashes == ()
    assert rbac.change.user_groups_to_add == ("ug",)
    back = plan(rbac.security, {"RemoveUserGroups": True, "AuthToken": OTHER})
    assert back.security.user_group_ids == () and back.security.auth_token_hashes == (secret_hash(OTHER),)
    with pytest.raises(Exception, match="is creating"):
        plan(with_token, {"UserGroupIdsToAdd": ["ug"]},
             groups={"ug": UserGroup("us-east-1", "ug", "redis", ("default",), UserGroupStatus.CREATING)})
    with pytest.raises(InvalidParameterCombination, match="one user group|1 user group"):
        plan(rbac.security, {"UserGroupIdsToAdd": ["other"]},
             groups={"other": UserGroup("us-east-1", "other", "redis", ("default",), UserGroupStatus.ACTIVE)})


# ---------------------------------------------------------------------- users
def test_a_user_keeps_only_the_hashes_of_its_passwords():
    request = CreateUserRequest.parse({"UserId": "App", "UserName": "app", "Engine": "Redis", "AccessString": "on ~app:*  +get",
                                       "Passwords": ["app-password-0123456789"]})
    assert (request.user_id, request.engine, request.access_string) == ("app", "redis", "on ~app:* +get")
    assert request.password_hashes == (secret_hash("app-password-0123456789"),)
    assert "app-password" not in repr(request)
    modify = ModifyUserRequest.parse({"UserId": "app", "AuthenticationMode": {"Type": "no-password-required"}})
    assert (modify.authentication, modify.password_hashes) == ("no-password", ())
    with pytest.raises(InvalidParameterCombination):
        ModifyUserRequest.parse({"UserId": "app"})
    with pytest.raises(InvalidParameterCombination):
        ModifyUserRequest.parse({"UserId": "app", "AccessString": "on", "AppendAccessString": "+get"})


def test_a_user_group_needs_a_default_user_unique_names_and_its_engines_rules():
    region = "us-east-1"
    default = built_in_default(region)
    app = User(region, "app", "app", "redis", "on ~* +@all", "password", ("h",))
    locked = User(region, "lock", "default", "redis", "off", "no-password")
    check_members("ug", "redis", [default, app])
    with pytest.raises(NotFound, match="must contain a user with the user name default") as caught:
        check_members("ug", "redis", [app])
    assert caught.value.resource == "DefaultUser"
    with pytest.raises(AlreadyExists, match="two users named default") as caught:
        check_members("ug", "redis", [default, locked, app])
    assert caught.value.resource == "UserName"
    with pytest.raises(InvalidParameterValue, match="engine valkey can only contain users who authenticate"):
        check_members("ug", "valkey", [locked, app])
    check_members("ug", "valkey", [User(region, "d", "default", "valkey", "off", "password", ("h",)), app])


# ---------------------------------------------------------------------- the control plane's lock files
def test_lock_files_are_private_and_hold_hashes_only(tmp_path):
    from cachefleet.domain.cache_clusters import CacheCluster, CacheNode, ClusterStatus, NodeStatus

    node_dir = tmp_path / "nodes"
    locks = Locks(store=_EmptyStore(), node_dir=lambda key: node_dir / key)
    password = locks.ensure_password("127.1.2.3")
    assert locks.ensure_password("127.1.2.3") == password and len(password) >= 40
    assert (node_dir / "127.1.2.3" / "control.secret").stat().st_mode & 0o777 == 0o600
    assert (node_dir / "127.1.2.3").stat().st_mode & 0o777 == 0o700
    cluster = CacheCluster(
        region="us-east-1", cluster_id="c", status=ClusterStatus.CREATING, engine="redis", engine_version="7.0.15",
        node_type="cache.t4g.micro", port=6379, availability_zone="us-east-1a", subnet_group_name="default",
        parameter_group_name="default.redis7", node=CacheNode("0001", "127.1.2.3", 6379, "us-east-1a", NodeStatus.CREATING, NOW),
        create_time=NOW, security=Security(REQUIRED, (secret_hash(TOKEN),)),
    )
    users = locks.users(cluster, "127.1.2.3")
    assert [u.name for u in users] == [acl.CONTROL_PLANE_USER, "default"]
    path = locks.write_aclfile("127.1.2.3", users)
    text = path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    assert password not in text and TOKEN not in text and secret_hash(TOKEN) in text
    settings = locks.engine_settings(cluster, "127.1.2.3", sharded=False, replica_of=("127.1.2.3", 6379), now=NOW, mode=None)
    assert password not in json.dumps(settings)  # the masterauth goes in the 0600 include file only
    include = node_dir / "127.1.2.3" / "secrets.conf"
    assert settings["include"] == str(include.resolve()) and include.stat().st_mode & 0o777 == 0o600
    access = locks.access(cluster, "127.1.2.3", REQUIRED)
    assert (access.username, access.port) == (acl.CONTROL_PLANE_USER, 6379) and password not in repr(access)
    assert fingerprint(users) == fingerprint(list(reversed(users))) != fingerprint(users[:1])


class _EmptyStore:
    def get(self, kind, region, key):
        return None

    def list(self, kind, region=None):
        return []


# ---------------------------------------------------------------------- policies and the credentials file
GLOBAL_ARN = "arn:aws:elasticache::000000000000:globalreplicationgroup:"


@pytest.mark.parametrize("operation", [
    "DescribeGlobalReplicationGroups", "ModifyGlobalReplicationGroup", "DeleteGlobalReplicationGroup",
    "IncreaseNodeGroupsInGlobalReplicationGroup", "DecreaseNodeGroupsInGlobalReplicationGroup",
    "RebalanceSlotsInGlobalReplicationGroup",
])
def test_a_global_datastore_operation_names_its_region_less_arn(operation):
    assert request_resources("elasticache", operation, {"GlobalReplicationGroupId": "abcde-Orders"}, "us-west-2") == [
        GLOBAL_ARN + "abcde-orders"]


def test_global_datastore_operations_naming_a_group_name_it_in_its_region():
    from cachefleet.domain.global_datastores import id_prefix

    assert request_resources("elasticache", "CreateGlobalReplicationGroup", {
        "GlobalReplicationGroupIdSuffix": "orders", "PrimaryReplicationGroupId": "east"}, "us-east-1") == [
        f"{GLOBAL_ARN}{id_prefix('us-east-1')}-orders",
        "arn:aws:elasticache:us-east-1:000000000000:replicationgroup:east"]
    assert request_resources("elasticache", "DisassociateGlobalReplicationGroup", {
        "GlobalReplicationGroupId": "abcde-orders", "ReplicationGroupId": "west",
        "ReplicationGroupRegion": "us-west-2"}, "us-east-1") == [
        GLOBAL_ARN + "abcde-orders", "arn:aws:elasticache:us-west-2:000000000000:replicationgroup:west"]
    assert request_resources("elasticache", "FailoverGlobalReplicationGroup", {
        "GlobalReplicationGroupId": "abcde-orders", "PrimaryRegion": "us-west-2",
        "PrimaryReplicationGroupId": "west"}, "us-east-1") == [
        GLOBAL_ARN + "abcde-orders", "arn:aws:elasticache:us-west-2:000000000000:replicationgroup:west"]
    assert request_resources("elasticache", "CreateReplicationGroup", {
        "ReplicationGroupId": "west", "GlobalReplicationGroupId": "abcde-orders"}, "us-west-2") == [
        "arn:aws:elasticache:us-west-2:000000000000:replicationgroup:west", GLOBAL_ARN + "abcde-orders"]
    assert request_resources("elasticache", "DescribeGlobalReplicationGroups", {}, "us-east-1") == ["*"]


def test_the_resources_a_request_names():
    assert request_resources("elasticache", "CreateReplicationGroup", {"ReplicationGroupId": "Web"}, "eu-west-1") == [
        "arn:aws:elasticache:eu-west-1:000000000000:replicationgroup:web"]
    assert request_resources("elasticache", "ModifyUserGroup", {"UserGroupId": "ug"}, "us-east-1")[0].endswith(":usergroup:ug")
    assert request_resources("elasticache", "DescribeUsers", {}, "us-east-1") == ["*"]
    arn = "arn:aws:elasticache:us-east-1:000000000000:cluster:c"
    assert request_resources("elasticache", "AddTagsToResource", {"ResourceName": arn}, "us-east-1") == [arn]
    assert request_resources("monitoring", "DeleteAlarms", {"AlarmNames": ["a"]}, "us-east-1") == [
        "arn:aws:cloudwatch:us-east-1:000000000000:alarm:a"]
    policy = Policy.parse({"Statement": [
        {"Effect": "Allow", "Action": "elasticache:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "elasticache:Delete*", "Resource": "arn:aws:elasticache:*:*:replicationgroup:prod-*"},
    ]})
    authorize(policy, principal="p", service="elasticache", action="elasticache:DeleteReplicationGroup",
              resources=["arn:aws:elasticache:us-east-1:000000000000:replicationgroup:dev-1"])
    with pytest.raises(ApiError, match="with an explicit deny") as caught:
        authorize(policy, principal="p", service="elasticache", action="elasticache:DeleteReplicationGroup",
                  resources=["arn:aws:elasticache:us-east-1:000000000000:replicationgroup:prod-1"])
    assert caught.value.code == "AccessDenied"


def test_credentials_create_appends_a_key_and_a_running_server_reads_it_again(tmp_path):
    path = tmp_path / "credentials"
    first = append_access_key(path, user="ops")
    assert path.stat().st_mode & 0o777 == 0o600
    assert first.access_key.startswith("AKIA") and len(first.access_key) == 20 and len(first.secret) == 40
    source = CredentialsFile(path)
    assert set(source.keys()) == {first.access_key}
    reader = append_access_key(path, user="reader", policy='{"Statement": {"Effect": "Allow", "Action": '
                                                           '"elasticache:Describe*", "Resource": "*"}}')
    keys = source.keys()
    assert set(keys) == {first.access_key, reader.access_key}
    assert keys[reader.access_key].policy is not None and keys[first.access_key].policy is None
    assert load_access_keys(path)[reader.access_key].user == "reader"
    with pytest.raises(ValueError, match="already has a profile"):
        append_access_key(path, user="ops")
    with pytest.raises(ValueError, match="Condition is not supported"):
        append_access_key(path, user="x", policy='{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", '
                                                 '"Condition": {}}]}')
    assert set(load_access_keys(path)) == {first.access_key, reader.access_key}  # nothing half-written
    path.write_text(path.read_text() + "[broken]\npolicy = {not json\n")
    assert set(source.keys()) == {first.access_key, reader.access_key}  # the previous keys stay
