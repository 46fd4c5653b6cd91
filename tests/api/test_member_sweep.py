"""No silent drops: every optional input member of an operation Cachefleet answers either shows
in what the next Describe (or the operation's own output) answers, or the call is refused with
InvalidParameterValue / InvalidParameterCombination naming the member.

Driven by botocore's input shapes: ``members`` walks each operation's input, nested members of
structures and of list elements included, so a member botocore adds is swept without a change
here. What a member needs to be valid (a value, the base call it goes with) is in ``VALUES`` and
``BASES``; where the shown member has another name or form, ``SHOWN`` says how to read it; and
``EXCEPTIONS`` (sweep_exceptions.py, next to this file) lists each member that is neither, with
its reason. A member of a swept operation that is in none of these tables is sent with a value
made from its shape (a sentinel string, true, 2, the last enum value) and must pass the check.

The calls create records and describe them; the groups and clusters are waited for and deleted
together at the end, so the sweep costs one engine start per member.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import importlib.util
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.model import Shape

from cachefleet.api import elasticache
from cachefleet.api.server import handlers_of
from cachefleet.domain.global_datastores import id_prefix
from engines import BINARIES, BareEngines, marked_build
from helpers import Server, engine, free_port, fresh_network, node_update_statuses, wait_for

# The table of exceptions lives next to this file (tests run with --import-mode=importlib).
_spec = importlib.util.spec_from_file_location("sweep_exceptions", Path(__file__).with_name("sweep_exceptions.py"))
assert _spec is not None and _spec.loader is not None
sweep_exceptions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep_exceptions)
EXCEPTIONS: dict[tuple[str, str], str] = sweep_exceptions.EXCEPTIONS
REMAINING: tuple[str, ...] = sweep_exceptions.REMAINING
REFUSED_WHOLE: dict[str, tuple[str, str]] = sweep_exceptions.REFUSED_WHOLE
REFUSED_PATHS: dict[tuple[str, str], tuple[str, str]] = sweep_exceptions.REFUSED_PATHS

MODEL = botocore.session.get_session().get_service_model("elasticache")
OUTPOST = "arn:aws:outposts:us-east-1:000000000000:outpost/op-0123456789abcdef0"
REFUSALS = ("InvalidParameterValue", "InvalidParameterCombination")


def members(shape: Shape, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Shape]]:
    """Every optional member path of an input shape: ``A``, ``A.B`` (structure), ``A[].B`` (list element)."""
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            path = prefix + name
            if not (depth == 0 and name in shape.required_members):
                yield path, member
            if depth < 4:
                yield from members(member, path + ".", depth + 1)
    elif shape.type_name == "list" and shape.member.type_name == "structure":
        yield from members(shape.member, prefix[:-1] + "[].", depth)


def made_value(path: str, shape: Shape) -> Any:
    """A valid-looking value from the shape alone (the sweep's fallback)."""
    kind = shape.type_name
    if getattr(shape, "enum", None):
        return shape.enum[-1]
    if kind == "boolean":
        return True
    if kind == "integer":
        return 2
    if kind == "string":
        return "sweep-" + path.rsplit(".", 1)[-1].lower().replace("[]", "")
    if kind == "list":
        return [made_value(path, shape.member)]
    raise KeyError(f"no value for {path} ({kind}): add it to VALUES")


def put(params: dict[str, Any], path: str, value: Any, elements: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``path`` set to ``value``; a list element on the way starts as ``elements[...]``."""
    result = copy.deepcopy(params)
    head, _, rest = path.partition(".")
    if head.endswith("[]"):
        name = head[:-2]
        element = copy.deepcopy(elements.get(name, {}))
        for key in list(element):
            if rest == key or rest.startswith(key + "."):
                element.pop(key)  # the member under test replaces the base element's
        result[name] = [put(element, rest, value, {}) if rest else value]
        return result
    if rest:
        result[head] = put(result.get(head, {}), rest, value, elements)
    else:
        result[head] = value
    return result


def deep_values(found: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair anywhere in a response."""
    if isinstance(found, dict):
        for key, value in found.items():
            yield key, value
            yield from deep_values(value)
    elif isinstance(found, list):
        for item in found:
            yield from deep_values(item)


def shows(observed: Any, path: str, value: Any) -> bool:
    """The generic check: a key of the member's name with that value, or every string of the value
    among the response's values."""
    leaf = path.rsplit(".", 1)[-1].replace("[]", "")
    pairs = list(deep_values(observed))
    if any(key == leaf and _same(found, value) for key, found in pairs):
        return True
    strings = list(_strings(value))
    texts = {str(found).lower() for _, found in pairs if isinstance(found, str | int)}
    texts |= {str(item).lower() for _, found in pairs if isinstance(found, list) for item in found if isinstance(item, str)}
    return bool(strings) and all(s.lower() in texts for s in strings)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _same(found: Any, value: Any) -> bool:
    if isinstance(found, str) and isinstance(value, str):
        return found.lower() == value.lower()
    return bool(found == value)


@dataclass(frozen=True)
class Operation:
    """How one operation is swept: its base call, and what to read afterwards."""

    name: str
    base: Callable[[str], dict[str, Any]]  # resource id -> the smallest valid call
    observe: Callable[[Any, str, dict[str, Any]], Any]  # (client, id, the call's answer) -> what to search
    cleanup: Callable[[Any, str], None]  # deletes it (once it can be deleted)
    elements: dict[str, Any]  # a valid list element per list member, for nested members
    values: dict[str, Any]  # member path -> a valid value
    bases: dict[str, dict[str, Any]]  # member path -> what the base call needs beside it
    shown: dict[str, Callable[[Any], Any]]  # member path -> reads it from the observation
    element_for: dict[str, dict[str, Any]] = field(default_factory=dict)  # member path -> its element's base
    gone: Callable[[Any, str], None] = lambda ec, rid: None  # waits until a deleted one is gone


# ---------------------------------------------------------------------- replication groups
def _group_observed(ec: Any, group_id: str, answer: dict[str, Any]) -> Any:
    group = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    clusters = [
        ec.describe_cache_clusters(CacheClusterId=c, ShowCacheNodeInfo=True)["CacheClusters"][0]
        for c in group["MemberClusters"]
    ]
    tags = ec.list_tags_for_resource(ResourceName=group["ARN"])["TagList"]
    return {"group": group, "clusters": clusters, "tags": tags}


def _group_cleanup(ec: Any, group_id: str) -> None:
    def settled() -> bool:
        found = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
        return found["Status"] in ("available", "create-failed")

    wait_for(settled, timeout=60, what=f"{group_id} settled")
    ec.delete_replication_group(ReplicationGroupId=group_id)


LOG = {"LogType": "slow-log", "DestinationType": "cloudwatch-logs",
       "DestinationDetails": {"CloudWatchLogsDetails": {"LogGroup": "sweep-log-group"}}, "LogFormat": "json",
       "Enabled": True}
SHARDED = {"ClusterMode": "enabled", "NumNodeGroups": 1}
TLS = {"Engine": "redis", "TransitEncryptionEnabled": True}

REPLICATION_GROUP = Operation(
    name="CreateReplicationGroup",
    base=lambda rid: {"ReplicationGroupId": rid, "ReplicationGroupDescription": "sweep", "Engine": "valkey",
                      "CacheNodeType": "cache.t4g.micro"},
    observe=_group_observed,
    cleanup=_group_cleanup,
    elements={"NodeGroupConfiguration": {"ReplicaCount": 0}, "Tags": {"Key": "sweep", "Value": "v"},
              "LogDeliveryConfigurations": LOG},
    values={
        "AutomaticFailoverEnabled": True, "MultiAZEnabled": True, "NumCacheClusters": 2,
        "PreferredCacheClusterAZs": ["us-east-1b"], "NumNodeGroups": 2, "ReplicasPerNodeGroup": 1,
        "NodeGroupConfiguration": [{"NodeGroupId": "0007", "ReplicaCount": 0}],
        "NodeGroupConfiguration[].NodeGroupId": "0007", "NodeGroupConfiguration[].Slots": "0-16383",
        "NodeGroupConfiguration[].ReplicaCount": 1, "NodeGroupConfiguration[].PrimaryAvailabilityZone": "us-east-1b",
        "NodeGroupConfiguration[].ReplicaAvailabilityZones": ["us-east-1c"],
        "NodeGroupConfiguration[].PrimaryOutpostArn": OUTPOST,
        "NodeGroupConfiguration[].ReplicaOutpostArns": [OUTPOST],
        "EngineVersion": "8.1", "CacheParameterGroupName": "default.valkey9",
        "CacheSubnetGroupName": "sweep-subnets", "CacheSecurityGroupNames": ["sweep-security"],
        "SecurityGroupIds": ["sg-0123456789abcdef0"], "Tags": [{"Key": "sweep", "Value": "v"}],
        "Tags[].Key": "sweep-key", "Tags[].Value": "sweep-value",
        "PreferredMaintenanceWindow": "tue:03:00-tue:04:00", "Port": 6390,
        "NotificationTopicArn": "arn:aws:sns:us-east-1:000000000000:sweep", "AutoMinorVersionUpgrade": False,
        "SnapshotRetentionLimit": 3, "SnapshotWindow": "07:00-08:00", "AuthToken": "sweep-auth-token-0123456789",
        "TransitEncryptionEnabled": True, "AtRestEncryptionEnabled": True, "KmsKeyId": "sweep-key-id",
        "UserGroupIds": ["sweep-users"], "LogDeliveryConfigurations": [LOG],
        "LogDeliveryConfigurations[].LogType": "engine-log",
        "LogDeliveryConfigurations[].DestinationType": "cloudwatch-logs",
        "LogDeliveryConfigurations[].DestinationDetails": {"CloudWatchLogsDetails": {"LogGroup": "sweep-other-group"}},
        "LogDeliveryConfigurations[].DestinationDetails.CloudWatchLogsDetails":
            {"LogGroup": "sweep-other-group"},
        "LogDeliveryConfigurations[].DestinationDetails.CloudWatchLogsDetails.LogGroup": "sweep-other-group",
        "LogDeliveryConfigurations[].LogFormat": "text", "LogDeliveryConfigurations[].Enabled": True,
        "LogDeliveryConfigurations[].DestinationDetails.KinesisFirehoseDetails": {"DeliveryStream": "sweep-stream"},
        "LogDeliveryConfigurations[].DestinationDetails.KinesisFirehoseDetails.DeliveryStream": "sweep-stream",
        "DataTieringEnabled": True, "NetworkType": "ipv4", "IpDiscovery": "ipv4",
        "TransitEncryptionMode": "preferred", "ClusterMode": "enabled", "Durability": "default",
    },
    bases={
        "NumNodeGroups": {"ClusterMode": "enabled"},
        "NodeGroupConfiguration": SHARDED,
        **{f"NodeGroupConfiguration[].{m}": SHARDED for m in (
            "NodeGroupId", "Slots", "ReplicaCount", "PrimaryAvailabilityZone", "ReplicaAvailabilityZones",
            "PrimaryOutpostArn", "ReplicaOutpostArns")},
        "NodeGroupConfiguration[].ReplicaAvailabilityZones": {**SHARDED, "ReplicasPerNodeGroup": 1},
        "NodeGroupConfiguration[].ReplicaOutpostArns": {**SHARDED, "ReplicasPerNodeGroup": 1},
        "MultiAZEnabled": {"AutomaticFailoverEnabled": True, "NumCacheClusters": 2},
        "AutomaticFailoverEnabled": {"NumCacheClusters": 2},
        "AuthToken": TLS, "TransitEncryptionEnabled": {"Engine": "redis"}, "TransitEncryptionMode": TLS,
        "UserGroupIds": TLS, "KmsKeyId": {"AtRestEncryptionEnabled": True},
    },
    element_for={
        "LogDeliveryConfigurations[].DestinationDetails.KinesisFirehoseDetails":
            {"LogDeliveryConfigurations": {**LOG, "DestinationType": "kinesis-firehose"}},
        "LogDeliveryConfigurations[].DestinationDetails.KinesisFirehoseDetails.DeliveryStream":
            {"LogDeliveryConfigurations": {**LOG, "DestinationType": "kinesis-firehose"}},
    },
    gone=lambda ec, rid: ec.get_waiter("replication_group_deleted").wait(
        ReplicationGroupId=rid, WaiterConfig={"Delay": 1}),
    shown={
        "AutomaticFailoverEnabled": lambda o: o["group"]["AutomaticFailover"] == "enabled",
        "MultiAZEnabled": lambda o: o["group"]["MultiAZ"] == "enabled",
        "NumCacheClusters": lambda o: len(o["group"]["MemberClusters"]) == 2,
        "NumNodeGroups": lambda o: len(o["group"]["NodeGroups"]) == 2,
        "ReplicasPerNodeGroup": lambda o: len(o["group"]["NodeGroups"][0]["NodeGroupMembers"]) == 2,
        "NodeGroupConfiguration": lambda o: o["group"]["NodeGroups"][0]["NodeGroupId"] == "0007",
        "NodeGroupConfiguration[].ReplicaCount": lambda o: len(o["group"]["MemberClusters"]) == 2,
        "NodeGroupConfiguration[].PrimaryOutpostArn": lambda o: all(
            m.get("PreferredOutpostArn") == OUTPOST for m in o["group"]["NodeGroups"][0]["NodeGroupMembers"][:1]),
        "NodeGroupConfiguration[].ReplicaOutpostArns": lambda o: OUTPOST in o["group"].get(
            "MemberClustersOutpostArns", []),
        "EngineVersion": lambda o: o["clusters"][0]["EngineVersion"].startswith("8.1."),
        "LogDeliveryConfigurations[].Enabled": lambda o: o["group"]["LogDeliveryConfigurations"][0]["Status"] == "active",
        "Tags": lambda o: {"Key": "sweep", "Value": "v"} in o["tags"],
        "AuthToken": lambda o: o["group"]["AuthTokenEnabled"] is True,  # a secret is never shown back
        "UserGroupIds": lambda o: o["group"].get("UserGroupIds") == ["sweep-users"],
        "DataTieringEnabled": lambda o: o["group"]["DataTiering"] == "enabled",
        "ClusterMode": lambda o: o["group"]["ClusterMode"] == "enabled" and o["group"]["ClusterEnabled"],
        "CacheSecurityGroupNames": lambda o: o["clusters"][0]["CacheSecurityGroups"][0]["CacheSecurityGroupName"]
        == "sweep-security",
        "SecurityGroupIds": lambda o: o["clusters"][0]["SecurityGroups"][0]["SecurityGroupId"] == "sg-0123456789abcdef0",
        "NotificationTopicArn": lambda o: o["clusters"][0]["NotificationConfiguration"]["TopicArn"].endswith(":sweep"),
    },
)

# ---------------------------------------------------------------------- cache clusters
def _cluster_observed(ec: Any, cluster_id: str, answer: dict[str, Any]) -> Any:
    cluster = ec.describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)["CacheClusters"][0]
    return {"cluster": cluster, "tags": ec.list_tags_for_resource(ResourceName=cluster["ARN"])["TagList"]}


def _cluster_cleanup(ec: Any, cluster_id: str) -> None:
    def settled() -> bool:
        found = ec.describe_cache_clusters(CacheClusterId=cluster_id)["CacheClusters"][0]
        return found["CacheClusterStatus"] in ("available", "create-failed")

    wait_for(settled, timeout=60, what=f"{cluster_id} settled")
    ec.delete_cache_cluster(CacheClusterId=cluster_id)


_SHARED = ("EngineVersion", "CacheParameterGroupName", "CacheSubnetGroupName", "CacheSecurityGroupNames",
           "SecurityGroupIds", "Tags", "Tags[].Key", "Tags[].Value", "PreferredMaintenanceWindow", "Port",
           "NotificationTopicArn", "AutoMinorVersionUpgrade", "SnapshotRetentionLimit", "SnapshotWindow", "AuthToken",
           "TransitEncryptionEnabled", "NetworkType", "IpDiscovery")
CACHE_CLUSTER = Operation(
    name="CreateCacheCluster",
    base=lambda rid: {"CacheClusterId": rid, "Engine": "valkey", "CacheNodeType": "cache.t4g.micro"},
    observe=_cluster_observed,
    cleanup=_cluster_cleanup,
    gone=lambda ec, rid: ec.get_waiter("cache_cluster_deleted").wait(CacheClusterId=rid, WaiterConfig={"Delay": 1}),
    elements=REPLICATION_GROUP.elements,
    values={
        **{m: REPLICATION_GROUP.values[m] for m in _SHARED},
        **{m: v for m, v in REPLICATION_GROUP.values.items() if m.startswith("LogDeliveryConfigurations")},
        "PreferredAvailabilityZone": "us-east-1b", "PreferredAvailabilityZones": ["us-east-1b"],
        "PreferredOutpostArn": OUTPOST, "PreferredOutpostArns": [OUTPOST],
    },
    bases={"AuthToken": TLS, "TransitEncryptionEnabled": {"Engine": "redis"}},
    element_for=REPLICATION_GROUP.element_for,
    shown={
        "EngineVersion": lambda o: o["cluster"]["EngineVersion"].startswith("8.1."),
        "Tags": lambda o: {"Key": "sweep", "Value": "v"} in o["tags"],
        "AuthToken": lambda o: o["cluster"]["AuthTokenEnabled"] is True,
        "CacheSecurityGroupNames": lambda o: o["cluster"]["CacheSecurityGroups"][0]["CacheSecurityGroupName"]
        == "sweep-security",
        "SecurityGroupIds": lambda o: o["cluster"]["SecurityGroups"][0]["SecurityGroupId"] == "sg-0123456789abcdef0",
        "NotificationTopicArn": lambda o: o["cluster"]["NotificationConfiguration"]["TopicArn"].endswith(":sweep"),
        "LogDeliveryConfigurations[].Enabled": lambda o: o["cluster"]["LogDeliveryConfigurations"][0]["Status"]
        == "active",
    },
)


# ---------------------------------------------------------------------- records without engines
def _record(kind: str, key: str, describe: str, listing: str, delete: str) -> tuple[Any, Any]:
    def observe(ec: Any, rid: str, answer: dict[str, Any]) -> Any:
        found = getattr(ec, describe)(**{key: rid})[listing][0]
        return {"record": found, "tags": ec.list_tags_for_resource(ResourceName=found["ARN"])["TagList"]}

    def cleanup(ec: Any, rid: str) -> None:
        getattr(ec, delete)(**{key: rid})

    return observe, cleanup


def _tags_only(name: str, base: Callable[[str], dict[str, Any]], record: tuple[Any, Any]) -> Operation:
    return Operation(
        name=name, base=base, observe=record[0], cleanup=record[1], elements=REPLICATION_GROUP.elements,
        values={"Tags": [{"Key": "sweep", "Value": "v"}], "Tags[].Key": "sweep-key", "Tags[].Value": "sweep-value"},
        bases={}, shown={"Tags": lambda o: {"Key": "sweep", "Value": "v"} in o["tags"]},
    )


SUBNET_GROUP = _tags_only(
    "CreateCacheSubnetGroup",
    lambda rid: {"CacheSubnetGroupName": rid, "CacheSubnetGroupDescription": "sweep", "SubnetIds": ["subnet-us-east-1a"]},
    _record("CacheSubnetGroup", "CacheSubnetGroupName", "describe_cache_subnet_groups", "CacheSubnetGroups",
            "delete_cache_subnet_group"),
)
PARAMETER_GROUP = _tags_only(
    "CreateCacheParameterGroup",
    lambda rid: {"CacheParameterGroupName": rid, "CacheParameterGroupFamily": "valkey8", "Description": "sweep"},
    _record("CacheParameterGroup", "CacheParameterGroupName", "describe_cache_parameter_groups",
            "CacheParameterGroups", "delete_cache_parameter_group"),
)
SECURITY_GROUP = _tags_only(
    "CreateCacheSecurityGroup",
    lambda rid: {"CacheSecurityGroupName": rid, "Description": "sweep"},
    _record("CacheSecurityGroup", "CacheSecurityGroupName", "describe_cache_security_groups", "CacheSecurityGroups",
            "delete_cache_security_group"),
)
_user_record = _record("User", "UserId", "describe_users", "Users", "delete_user")
USER = Operation(
    name="CreateUser",
    base=lambda rid: {"UserId": rid, "UserName": rid, "Engine": "redis", "AccessString": "on ~* +@all",
                      "NoPasswordRequired": True},
    observe=_user_record[0],
    cleanup=_user_record[1],
    gone=lambda ec, rid: wait_for(lambda: not [u for u in ec.describe_users()["Users"] if u["UserId"] == rid],
                                  what=f"user {rid} gone"),
    elements=REPLICATION_GROUP.elements,
    values={"Passwords": ["sweep-password-0123456789"], "NoPasswordRequired": True,
            "Tags": [{"Key": "sweep", "Value": "v"}], "Tags[].Key": "sweep-key", "Tags[].Value": "sweep-value",
            "AuthenticationMode": {"Type": "password", "Passwords": ["sweep-password-0123456789"]},
            "AuthenticationMode.Type": "no-password-required",
            "AuthenticationMode.Passwords": ["sweep-password-0123456789"]},
    bases={"Passwords": {"NoPasswordRequired": False}, "AuthenticationMode": {"NoPasswordRequired": False},
           "AuthenticationMode.Type": {"NoPasswordRequired": False},
           "AuthenticationMode.Passwords": {"NoPasswordRequired": False}},
    shown={
        # Passwords are never shown: their count and the authentication type are.
        "Passwords": lambda o: o["record"]["Authentication"] == {"Type": "password", "PasswordCount": 1},
        "NoPasswordRequired": lambda o: o["record"]["Authentication"]["Type"] == "no-password",
        "Tags": lambda o: {"Key": "sweep", "Value": "v"} in o["tags"],
        "AuthenticationMode": lambda o: o["record"]["Authentication"] == {"Type": "password", "PasswordCount": 1},
        "AuthenticationMode.Type": lambda o: o["record"]["Authentication"]["Type"] == "no-password",
        "AuthenticationMode.Passwords": lambda o: o["record"]["Authentication"]["PasswordCount"] == 1,
    },
)
_user_group_record = _record("UserGroup", "UserGroupId", "describe_user_groups", "UserGroups", "delete_user_group")
USER_GROUP = Operation(
    name="CreateUserGroup",
    base=lambda rid: {"UserGroupId": rid, "Engine": "redis", "UserIds": ["default"]},
    observe=_user_group_record[0],
    cleanup=_user_group_record[1],
    gone=lambda ec, rid: wait_for(
        lambda: not [g for g in ec.describe_user_groups()["UserGroups"] if g["UserGroupId"] == rid],
        what=f"user group {rid} gone"),
    elements=REPLICATION_GROUP.elements,
    values={"UserIds": ["default"], "Tags": [{"Key": "sweep", "Value": "v"}], "Tags[].Key": "sweep-key",
            "Tags[].Value": "sweep-value"},
    bases={},
    shown={"Tags": lambda o: {"Key": "sweep", "Value": "v"} in o["tags"]},
)

# ---------------------------------------------------------------------- serverless caches
def _serverless_observed(ec: Any, name: str, answer: dict[str, Any]) -> Any:
    cache = ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]
    return {"record": cache, "tags": ec.list_tags_for_resource(ResourceName=cache["ARN"])["TagList"]}


def _serverless_cleanup(ec: Any, name: str) -> None:
    def settled() -> bool:
        found = ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]
        return found["Status"] in ("available", "create-failed")

    wait_for(settled, timeout=60, what=f"{name} settled")
    ec.delete_serverless_cache(ServerlessCacheName=name)


def _serverless_gone(ec: Any, name: str) -> None:
    def gone() -> bool:
        try:
            ec.describe_serverless_caches(ServerlessCacheName=name)
        except ClientError as error:
            return error.response["Error"]["Code"] == "ServerlessCacheNotFoundFault"
        return False

    wait_for(gone, timeout=60, what=f"{name} gone")


_GB = {"CacheUsageLimits": {"DataStorage": {"Unit": "GB"}}}
SERVERLESS_CACHE = Operation(
    name="CreateServerlessCache",
    base=lambda rid: {"ServerlessCacheName": rid, "Engine": "valkey"},
    observe=_serverless_observed,
    cleanup=_serverless_cleanup,
    gone=_serverless_gone,
    elements={"Tags": {"Key": "sweep", "Value": "v"}, "Integrations": {"IntegrationType": "dynamodb"}},
    values={
        "Description": "sweep-description", "MajorEngineVersion": "8",
        "CacheUsageLimits": {"DataStorage": {"Maximum": 10, "Unit": "GB"}},
        "CacheUsageLimits.DataStorage": {"Maximum": 10, "Unit": "GB"},
        "CacheUsageLimits.DataStorage.Maximum": 10, "CacheUsageLimits.DataStorage.Minimum": 1,
        "CacheUsageLimits.DataStorage.Unit": "GB",
        "CacheUsageLimits.ECPUPerSecond": {"Maximum": 5000},
        "CacheUsageLimits.ECPUPerSecond.Maximum": 5000, "CacheUsageLimits.ECPUPerSecond.Minimum": 1000,
        "KmsKeyId": "sweep-key-id", "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "Tags": [{"Key": "sweep", "Value": "v"}], "Tags[].Key": "sweep-key", "Tags[].Value": "sweep-value",
        "UserGroupId": "sweep-users", "SubnetIds": ["subnet-us-east-1b"], "SnapshotRetentionLimit": 3,
        "DailySnapshotTime": "04:00", "Integrations": [{"IntegrationType": "dynamodb"}],
    },
    bases={"CacheUsageLimits.DataStorage.Maximum": _GB, "CacheUsageLimits.DataStorage.Minimum": _GB,
           "UserGroupId": {"Engine": "redis"}},
    shown={
        "MajorEngineVersion": lambda o: o["record"]["FullEngineVersion"].startswith("8."),
        "CacheUsageLimits": lambda o: o["record"]["CacheUsageLimits"]["DataStorage"]["Maximum"] == 10,
        "CacheUsageLimits.DataStorage": lambda o: o["record"]["CacheUsageLimits"]["DataStorage"]["Maximum"] == 10,
        "CacheUsageLimits.DataStorage.Unit": lambda o: "CacheUsageLimits" not in o["record"]
        or o["record"]["CacheUsageLimits"].get("DataStorage", {}).get("Unit") in (None, "GB"),
        "Tags": lambda o: {"Key": "sweep", "Value": "v"} in o["tags"],
    },
)

SWEPT = (REPLICATION_GROUP, CACHE_CLUSTER, SUBNET_GROUP, PARAMETER_GROUP, SECURITY_GROUP, USER, USER_GROUP,
         SERVERLESS_CACHE)


def _cases() -> list[Any]:
    cases = []
    for operation in SWEPT:
        shape = MODEL.operation_model(operation.name).input_shape
        for path, member in members(shape):
            reason = EXCEPTIONS.get((operation.name, path))
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            cases.append(pytest.param(operation, path, member, id=f"{operation.name}:{path}", marks=marks))
    return cases


@pytest.fixture(scope="module")
def sweep_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The sweep's own server: the hundred-odd resources it holds at once need most of a /24 of
    node addresses, which a server shared with other test files might not have left."""
    root = tmp_path_factory.mktemp("sweep")
    # The schedule's clock stays at noon, outside every snapshot window the sweep's resources name, so
    # that no automatic snapshot starts (and makes a group `snapshotting`) whenever the suite runs;
    # `snapshotted` moves it into a window once.
    clock = root / "snapshot-clock"
    clock.write_text(NOON)
    running = Server(data_dir=root / "data", network=fresh_network(), port=free_port(),
                     extra=["--snapshot-clock-file", str(clock)]).start()
    _EXPORTS["clock"] = clock
    yield running
    running.down()


@pytest.fixture(scope="module")
def sweep(sweep_server: Server) -> Iterator[dict[str, Any]]:
    """The records the members name, and the resources the sweep creates (deleted at the end)."""
    ec = sweep_server.client()
    ec.create_cache_subnet_group(CacheSubnetGroupName="sweep-subnets", CacheSubnetGroupDescription="sweep",
                                 SubnetIds=["subnet-us-east-1a", "subnet-us-east-1b"])
    ec.create_cache_security_group(CacheSecurityGroupName="sweep-security", Description="sweep")
    ec.create_user_group(UserGroupId="sweep-users", Engine="redis", UserIds=["default"])
    created: list[tuple[Operation, str]] = []
    yield {"ec": ec, "created": created}
    for operation, resource_id in created:
        try:
            operation.cleanup(ec, resource_id)
        except ClientError as error:
            if "NotFound" not in error.response["Error"]["Code"]:
                raise
    for operation, resource_id in created:
        operation.gone(ec, resource_id)
    ec.delete_user_group(UserGroupId="sweep-users")
    ec.delete_cache_security_group(CacheSecurityGroupName="sweep-security")
    ec.delete_cache_subnet_group(CacheSubnetGroupName="sweep-subnets")


def _resource_id(operation: Operation, path: str) -> str:
    """Unique per case: a stable digest (``hash()`` changes with each run's PYTHONHASHSEED, and its
    last three digits once gave two cases with the same 30-letter prefix the same id)."""
    text = "".join(c for c in path.lower() if c.isalnum())
    return f"sw-{text[:30]}-{hashlib.sha256(f'{operation.name}:{path}'.encode()).hexdigest()[:3]}"


@pytest.mark.parametrize(("operation", "path", "member"), _cases())
def test_each_optional_member_shows_or_is_refused(sweep: dict[str, Any], operation: Operation, path: str,
                                                  member: Shape) -> None:
    _sweep_member(sweep, operation, path, member)


def _sweep_member(sweep: dict[str, Any], operation: Operation, path: str, member: Shape) -> None:
    ec = sweep["ec"]
    value = operation.values[path] if path in operation.values else made_value(path, member)
    resource_id = _resource_id(operation, path)
    elements = {**operation.elements, **operation.element_for.get(path, {})}
    merged = {**operation.base(resource_id), **operation.bases.get(path, {})}
    # A base member set to None is left out for this member (CacheClusterId instead of ReplicationGroupId).
    params = put({k: v for k, v in merged.items() if v is not None}, path, value, elements)
    call = getattr(ec, botocore.xform_name(operation.name))
    try:
        answer = call(**params)
    except ClientError as error:
        found = error.response["Error"]
        # The member, or the member it is part of (refused whole), is named.
        names = [part.replace("[]", "") for part in path.split(".")]
        assert found["Code"] in REFUSALS, f"{operation.name} {params} -> {found}"
        assert any(name in found["Message"] for name in names), f"the refusal names none of {names}: {found['Message']}"
        return
    sweep["created"].append((operation, resource_id))
    observed = operation.observe(ec, resource_id, {**answer, "_params": params})
    check = operation.shown.get(path)
    if check is not None:
        assert check(observed), f"{path}={value!r} accepted but not shown: {observed}"
    else:
        assert shows(observed, path, value), f"{path}={value!r} accepted but not shown: {observed}"


def test_the_exceptions_name_members_that_exist() -> None:
    for (operation, path), reason in EXCEPTIONS.items():
        assert reason, (operation, path)
        known = {p for p, _ in members(MODEL.operation_model(operation).input_shape)}
        assert path in known, f"{operation} has no member {path} (stale exception)"
    assert not SWEPT_NAMES & set(REMAINING), "an operation swept here is still listed as remaining"


def test_every_answered_operation_with_optional_members_is_swept_or_listed_as_remaining() -> None:
    answered = handlers_of(MODEL, elasticache.FAMILIES)
    with_members = {o for o in answered if any(members(MODEL.operation_model(o).input_shape))}
    assert with_members - SWEPT_NAMES == set(REMAINING)


# ---------------------------------------------------------------------- modifications
@dataclass(frozen=True)
class Modification:
    """How a Modify operation is swept: on one resource made for it, member after member."""

    name: str
    target: str  # the resource's id (made by the ``modified`` fixture)
    key: str  # the input member naming it
    base: dict[str, Any]  # beside the id, in every call
    observe: Callable[[Any, str], Any]
    settled: Callable[[Any, str], bool]  # the next call may be made
    values: dict[str, Any]
    bases: dict[str, dict[str, Any]]
    shown: dict[str, Callable[[Any], Any]]
    elements: dict[str, Any] = field(default_factory=lambda: dict(REPLICATION_GROUP.elements))
    element_for: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(REPLICATION_GROUP.element_for))
    # member path -> list member -> the elements sent before the swept one (a call that needs several)
    leading: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    # member path -> a call made (and waited for) before the swept one, where the resource needs a change first
    prepare: dict[str, Callable[[Any], None]] = field(default_factory=dict)


def _group_settled(ec: Any, group_id: str) -> bool:
    group = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    clusters = ec.describe_cache_clusters(ShowCacheNodeInfo=True)["CacheClusters"]
    members = [c for c in clusters if c["CacheClusterId"] in group["MemberClusters"]]
    return group["Status"] == "available" and all(c["CacheClusterStatus"] == "available" for c in members)


def _cluster_settled(ec: Any, cluster_id: str) -> bool:
    return bool(ec.describe_cache_clusters(CacheClusterId=cluster_id)["CacheClusters"][0]["CacheClusterStatus"]
                == "available")


_MODIFIED_VALUES = {
    "SecurityGroupIds": ["sg-0fedcba987654321f"], "CacheSecurityGroupNames": ["sweep-security"],
    "PreferredMaintenanceWindow": "wed:03:00-wed:04:00", "NotificationTopicArn": "arn:aws:sns:us-east-1:000000000000:m",
    "NotificationTopicStatus": "inactive", "CacheParameterGroupName": "sweep-params8", "Engine": "valkey",
    "EngineVersion": "9.1", "AutoMinorVersionUpgrade": False, "SnapshotRetentionLimit": 4,
    "SnapshotWindow": "09:00-10:00", "CacheNodeType": "cache.t4g.small",
    "LogDeliveryConfigurations": [LOG],
    **{m: v for m, v in REPLICATION_GROUP.values.items() if m.startswith("LogDeliveryConfigurations[]")},
}
_MODIFIED_SHOWN = {
    "SecurityGroupIds": lambda o: o["clusters"][0]["SecurityGroups"][0]["SecurityGroupId"] == "sg-0fedcba987654321f",
    "CacheSecurityGroupNames": lambda o: o["clusters"][0]["CacheSecurityGroups"][0]["CacheSecurityGroupName"]
    == "sweep-security",
    "CacheParameterGroupName": lambda o: o["clusters"][0]["CacheParameterGroup"]["CacheParameterGroupName"]
    == "sweep-params8",
    "EngineVersion": lambda o: o["clusters"][0]["EngineVersion"].startswith("9.1.")
    or str(o["pending"].get("EngineVersion", "")).startswith("9.1"),
    "Engine": lambda o: o["clusters"][0]["Engine"] == "valkey",
    "CacheNodeType": lambda o: o["clusters"][0]["CacheNodeType"] == "cache.t4g.small"
    or o["pending"].get("CacheNodeType") == "cache.t4g.small",
    "LogDeliveryConfigurations[].Enabled": lambda o: any(
        c["Status"] == "active" for c in o["clusters"][0]["LogDeliveryConfigurations"]),
}

MODIFY_GROUP = Modification(
    name="ModifyReplicationGroup",
    target="sweep-modified",
    key="ReplicationGroupId",
    base={"ApplyImmediately": True},
    observe=lambda ec, rid: {**_group_observed(ec, rid, {}),
                             "pending": ec.describe_replication_groups(ReplicationGroupId=rid)[
                                 "ReplicationGroups"][0]["PendingModifiedValues"]},
    settled=_group_settled,
    values={**_MODIFIED_VALUES, "ReplicationGroupDescription": "sweep-new-description",
            "PrimaryClusterId": "sweep-modified-002", "SnapshottingClusterId": "sweep-modified-002",
            "AutomaticFailoverEnabled": True, "MultiAZEnabled": True, "NodeGroupId": "0001",
            "IpDiscovery": "ipv6", "ClusterMode": "compatible", "Durability": "disabled", "ApplyImmediately": True},
    bases={"MultiAZEnabled": {"AutomaticFailoverEnabled": True}},
    shown={**_MODIFIED_SHOWN,
           "PrimaryClusterId": lambda o: [m["CacheClusterId"] for m in o["group"]["NodeGroups"][0]["NodeGroupMembers"]
                                          if m["CurrentRole"] == "primary"] == ["sweep-modified-002"],
           "AutomaticFailoverEnabled": lambda o: o["group"]["AutomaticFailover"] == "enabled",
           "MultiAZEnabled": lambda o: o["group"]["MultiAZ"] == "enabled",
           "ApplyImmediately": lambda o: o["pending"] == {}},
)
MODIFY_CLUSTER = Modification(
    name="ModifyCacheCluster",
    target="sweep-modified-alone",
    key="CacheClusterId",
    base={"ApplyImmediately": True},
    observe=lambda ec, rid: {"clusters": [ec.describe_cache_clusters(CacheClusterId=rid, ShowCacheNodeInfo=True)[
        "CacheClusters"][0]], "pending": ec.describe_cache_clusters(CacheClusterId=rid)["CacheClusters"][0][
        "PendingModifiedValues"]},
    settled=_cluster_settled,
    values={**_MODIFIED_VALUES, "NumCacheNodes": 2, "CacheNodeIdsToRemove": ["0001"], "NewAvailabilityZones": ["us-east-1b"],
            "ApplyImmediately": True, "ScaleConfig": {"ScalePercentage": 20, "ScaleIntervalMinutes": 5},
            "ScaleConfig.ScalePercentage": 20, "ScaleConfig.ScaleIntervalMinutes": 5},
    bases={"NotificationTopicStatus": {"NotificationTopicArn": "arn:aws:sns:us-east-1:000000000000:m"}},
    shown={**_MODIFIED_SHOWN,
           "NotificationTopicArn": lambda o: o["clusters"][0]["NotificationConfiguration"]["TopicArn"].endswith(":m"),
           "NotificationTopicStatus": lambda o: o["clusters"][0]["NotificationConfiguration"]["TopicStatus"]
           == "inactive",
           "ApplyImmediately": lambda o: o["pending"] == {}},
)
def _one(describe: str, listing: str, key: str) -> Callable[[Any, str], Any]:
    return lambda ec, rid: {"record": getattr(ec, describe)(**{key: rid})[listing][0]}


def _status_is(describe: str, listing: str, key: str, field: str, status: str) -> Callable[[Any, str], bool]:
    return lambda ec, rid: bool(getattr(ec, describe)(**{key: rid})[listing][0][field] == status)


PASSWORD = "sweep-password-0123456789"
MODIFY_USER = Modification(
    name="ModifyUser", target="sweep-modified-user", key="UserId", base={},
    observe=_one("describe_users", "Users", "UserId"),
    settled=_status_is("describe_users", "Users", "UserId", "Status", "active"),
    values={"AccessString": "on ~sweep* +@all", "AppendAccessString": "-flushall", "Passwords": [PASSWORD],
            "NoPasswordRequired": True, "AuthenticationMode": {"Type": "password", "Passwords": [PASSWORD]},
            "AuthenticationMode.Type": "no-password-required", "AuthenticationMode.Passwords": [PASSWORD],
            "Engine": "valkey"},
    bases={},
    shown={
        "AppendAccessString": lambda o: "-flushall" in o["record"]["AccessString"],
        # Passwords are never shown: their count and the authentication type are.
        "Passwords": lambda o: o["record"]["Authentication"] == {"Type": "password", "PasswordCount": 1},
        "NoPasswordRequired": lambda o: o["record"]["Authentication"]["Type"] == "no-password",
        "AuthenticationMode": lambda o: o["record"]["Authentication"] == {"Type": "password", "PasswordCount": 1},
        "AuthenticationMode.Type": lambda o: o["record"]["Authentication"]["Type"] == "no-password",
    },
)
MODIFY_USER_GROUP = Modification(
    name="ModifyUserGroup", target="sweep-modified-users", key="UserGroupId", base={},
    observe=_one("describe_user_groups", "UserGroups", "UserGroupId"),
    settled=_status_is("describe_user_groups", "UserGroups", "UserGroupId", "Status", "active"),
    values={"UserIdsToAdd": ["sweep-member"], "UserIdsToRemove": ["sweep-member"], "Engine": "valkey"},
    bases={},
    shown={"UserIdsToAdd": lambda o: "sweep-member" in o["record"]["UserIds"],
           "UserIdsToRemove": lambda o: "sweep-member" not in o["record"]["UserIds"]},
)
MODIFY_SUBNET_GROUP = Modification(
    name="ModifyCacheSubnetGroup", target="sweep-modified-subnets", key="CacheSubnetGroupName", base={},
    observe=_one("describe_cache_subnet_groups", "CacheSubnetGroups", "CacheSubnetGroupName"),
    settled=lambda ec, rid: True,
    values={"CacheSubnetGroupDescription": "sweep-new-description", "SubnetIds": ["subnet-us-east-1c"]},
    bases={}, shown={},
)
MODIFY_SERVERLESS = Modification(
    name="ModifyServerlessCache", target="sweep-modified-sl", key="ServerlessCacheName", base={},
    observe=_one("describe_serverless_caches", "ServerlessCaches", "ServerlessCacheName"),
    settled=_status_is("describe_serverless_caches", "ServerlessCaches", "ServerlessCacheName", "Status", "available"),
    values={**SERVERLESS_CACHE.values, "Description": "sweep-new-description", "RemoveUserGroup": True,
            "SecurityGroupIds": ["sg-0fedcba987654321f"], "SnapshotRetentionLimit": 5, "DailySnapshotTime": "05:00",
            "Engine": "valkey", "MajorEngineVersion": "9"},
    bases={**SERVERLESS_CACHE.bases, "UserGroupId": {}, "MajorEngineVersion": {"Engine": "valkey"}},
    shown={**{k: v for k, v in SERVERLESS_CACHE.shown.items() if k.startswith("CacheUsageLimits")},
           "RemoveUserGroup": lambda o: "UserGroupId" not in o["record"],
           "Engine": lambda o: o["record"]["Engine"] == "valkey",
           "MajorEngineVersion": lambda o: o["record"]["FullEngineVersion"].startswith("9.")},
)
def _parameters_observed(ec: Any, name: str) -> Any:
    listed = ec.describe_cache_parameters(CacheParameterGroupName=name, Source="user")["Parameters"]
    return {"parameters": {p["ParameterName"]: p.get("ParameterValue") for p in listed}}


_POLICY = {"ParameterName": "maxmemory-policy", "ParameterValue": "allkeys-lru"}
MODIFY_PARAMETERS = Modification(
    name="ModifyCacheParameterGroup", target="sweep-modified-params", key="CacheParameterGroupName",
    base={"ParameterNameValues": [_POLICY]},
    observe=_parameters_observed, settled=lambda ec, rid: True,
    values={"ParameterNameValues[].ParameterName": "timeout", "ParameterNameValues[].ParameterValue": "allkeys-lfu"},
    bases={}, elements={"ParameterNameValues": {"ParameterName": "timeout", "ParameterValue": "30"}},
    element_for={"ParameterNameValues[].ParameterValue": {"ParameterNameValues": _POLICY}},
    shown={"ParameterNameValues[].ParameterName": lambda o: o["parameters"].get("timeout") == "30",
           "ParameterNameValues[].ParameterValue": lambda o: o["parameters"].get("maxmemory-policy") == "allkeys-lfu"},
)
MODIFY_RESET = Modification(
    name="ResetCacheParameterGroup", target="sweep-modified-params", key="CacheParameterGroupName", base={},
    observe=_parameters_observed, settled=lambda ec, rid: True,
    values={"ResetAllParameters": True, "ParameterNameValues": [{"ParameterName": "timeout"}],
            "ParameterNameValues[].ParameterName": "timeout", "ParameterNameValues[].ParameterValue": "30"},
    bases={}, elements={"ParameterNameValues": {"ParameterName": "timeout"}},
    # A reset parameter is no longer the user's: it leaves the Source user listing.
    shown={"ResetAllParameters": lambda o: o["parameters"] == {},
           "ParameterNameValues": lambda o: "timeout" not in o["parameters"],
           "ParameterNameValues[].ParameterName": lambda o: "timeout" not in o["parameters"],
           "ParameterNameValues[].ParameterValue": lambda o: "timeout" not in o["parameters"]},
)
# ---------------------------------------------------------------------- replica and shard scaling
# One cluster mode enabled group, one shard and no replica: each IncreaseReplicaCount member adds a
# replica (1 to 5), each DecreaseReplicaCount member removes some (back to none), then each
# ModifyReplicationGroupShardConfiguration member adds or removes shards.
SCALED = "sweep-scaled"


def _scaled_observed(ec: Any, group_id: str) -> Any:
    group = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    return {"group": group, "shards": {ng["NodeGroupId"]: ng["NodeGroupMembers"] for ng in group["NodeGroups"]}}


def _replicas(count: int) -> Callable[[Any], bool]:
    return lambda o: len(o["shards"]["0001"]) == 1 + count


def _newest_zone(zone: str) -> Callable[[Any], bool]:
    return lambda o: sorted(o["shards"]["0001"], key=lambda m: m["CacheClusterId"])[-1][
        "PreferredAvailabilityZone"] == zone


# The existing replicas keep their zones (b, c, a, b here); the new one goes to the zone left over.
_ZONES6 = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1a", "us-east-1b", "us-east-1c"]
INCREASE = Modification(
    name="IncreaseReplicaCount", target=SCALED, key="ReplicationGroupId", base={"ApplyImmediately": True},
    observe=_scaled_observed, settled=_group_settled,
    values={"NewReplicaCount": 1, "ReplicaConfiguration": [{"NodeGroupId": "0001", "NewReplicaCount": 2}],
            "ReplicaConfiguration[].NodeGroupId": "0001", "ReplicaConfiguration[].NewReplicaCount": 4,
            "ReplicaConfiguration[].PreferredAvailabilityZones": _ZONES6,
            "ReplicaConfiguration[].PreferredOutpostArns": [OUTPOST]},
    bases={}, elements={"ReplicaConfiguration": {"NodeGroupId": "0001", "NewReplicaCount": 3}},
    element_for={"ReplicaConfiguration[].PreferredAvailabilityZones": {
        "ReplicaConfiguration": {"NodeGroupId": "0001", "NewReplicaCount": 5}},
        "ReplicaConfiguration[].PreferredOutpostArns": {
        "ReplicaConfiguration": {"NodeGroupId": "0001", "NewReplicaCount": 5}}},
    shown={"NewReplicaCount": _replicas(1), "ReplicaConfiguration": _replicas(2),
           "ReplicaConfiguration[].NodeGroupId": _replicas(3), "ReplicaConfiguration[].NewReplicaCount": _replicas(4),
           "ReplicaConfiguration[].PreferredAvailabilityZones": lambda o: _replicas(5)(o)
           and _newest_zone("us-east-1c")(o)},
)


def _a_replica(ec: Any) -> list[str]:
    members = _scaled_observed(ec, SCALED)["shards"]["0001"]
    return [m["CacheClusterId"] for m in members if m["CurrentRole"] == "replica"][:1]


DECREASE = Modification(
    name="DecreaseReplicaCount", target=SCALED, key="ReplicationGroupId", base={"ApplyImmediately": True},
    observe=_scaled_observed, settled=_group_settled,
    values={"NewReplicaCount": 4, "ReplicaConfiguration": [{"NodeGroupId": "0001", "NewReplicaCount": 3}],
            "ReplicaConfiguration[].NodeGroupId": "0001", "ReplicaConfiguration[].NewReplicaCount": 1,
            "ReplicaConfiguration[].PreferredAvailabilityZones": ["us-east-1a", "us-east-1c"],
            "ReplicaConfiguration[].PreferredOutpostArns": [OUTPOST], "ReplicasToRemove": _a_replica},
    bases={}, elements={"ReplicaConfiguration": {"NodeGroupId": "0001", "NewReplicaCount": 2}},
    element_for={"ReplicaConfiguration[].PreferredAvailabilityZones": {
        "ReplicaConfiguration": {"NodeGroupId": "0001", "NewReplicaCount": 1}}},
    # A second replica (in us-east-1c) is added back first: of 002 (us-east-1b) and it, the zones keep it; by
    # name, 002 would stay.
    prepare={"ReplicaConfiguration[].PreferredAvailabilityZones": lambda ec: ec.increase_replica_count(
        ReplicationGroupId=SCALED, ApplyImmediately=True, ReplicaConfiguration=[
            {"NodeGroupId": "0001", "NewReplicaCount": 2, "PreferredAvailabilityZones": _ZONES6[:3]}])},
    shown={"NewReplicaCount": _replicas(4), "ReplicaConfiguration": _replicas(3),
           "ReplicaConfiguration[].NodeGroupId": _replicas(2), "ReplicaConfiguration[].NewReplicaCount": _replicas(1),
           "ReplicaConfiguration[].PreferredAvailabilityZones": lambda o: _replicas(1)(o)
           and _newest_zone("us-east-1c")(o),
           "ReplicasToRemove": _replicas(0)},
)


def _shards(*names: str) -> Callable[[Any], bool]:
    return lambda o: sorted(o["shards"]) == sorted(names)


RESHARD = Modification(
    name="ModifyReplicationGroupShardConfiguration", target=SCALED, key="ReplicationGroupId",
    base={"ApplyImmediately": True},
    observe=_scaled_observed, settled=_group_settled,
    values={"ReshardingConfiguration": [{"NodeGroupId": "0001"},
                                        {"NodeGroupId": "0005", "PreferredAvailabilityZones": ["us-east-1c"]}],
            "ReshardingConfiguration[].NodeGroupId": "0007",
            "ReshardingConfiguration[].PreferredAvailabilityZones": ["us-east-1c"],
            "NodeGroupsToRemove": ["0009"], "NodeGroupsToRetain": ["0001", "0005"]},
    bases={"ReshardingConfiguration": {"NodeGroupCount": 2}, "ReshardingConfiguration[].NodeGroupId": {"NodeGroupCount": 3},
           "ReshardingConfiguration[].PreferredAvailabilityZones": {"NodeGroupCount": 4},
           "NodeGroupsToRemove": {"NodeGroupCount": 3}, "NodeGroupsToRetain": {"NodeGroupCount": 2}},
    elements={"ReshardingConfiguration": {"NodeGroupId": "0009"}},
    leading={"ReshardingConfiguration[].NodeGroupId": {"ReshardingConfiguration": [{"NodeGroupId": "0001"},
                                                                                  {"NodeGroupId": "0005"}]},
             "ReshardingConfiguration[].PreferredAvailabilityZones": {"ReshardingConfiguration": [
                 {"NodeGroupId": "0001"}, {"NodeGroupId": "0005"}, {"NodeGroupId": "0007"}]}},
    shown={"ReshardingConfiguration": lambda o: _shards("0001", "0005")(o)
           and o["shards"]["0005"][0]["PreferredAvailabilityZone"] == "us-east-1c",
           "ReshardingConfiguration[].NodeGroupId": _shards("0001", "0005", "0007"),
           "ReshardingConfiguration[].PreferredAvailabilityZones": lambda o: _shards("0001", "0005", "0007", "0009")(o)
           and o["shards"]["0009"][0]["PreferredAvailabilityZone"] == "us-east-1c",
           "NodeGroupsToRemove": _shards("0001", "0005", "0007"), "NodeGroupsToRetain": _shards("0001", "0005")},
)
MODIFIED = (MODIFY_GROUP, MODIFY_CLUSTER, MODIFY_USER, MODIFY_USER_GROUP, MODIFY_SUBNET_GROUP, MODIFY_SERVERLESS,
            MODIFY_PARAMETERS, MODIFY_RESET, INCREASE, DECREASE, RESHARD)


@pytest.fixture(scope="module")
def modified(sweep: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The group and the standalone cluster the Modify sweeps change, member after member."""
    ec = sweep["ec"]
    ec.create_cache_parameter_group(CacheParameterGroupName="sweep-params8", CacheParameterGroupFamily="valkey8",
                                    Description="sweep")
    ec.create_replication_group(ReplicationGroupId=MODIFY_GROUP.target, ReplicationGroupDescription="sweep",
                                Engine="valkey", EngineVersion="8.1", CacheNodeType="cache.t4g.micro", NumCacheClusters=2)
    ec.create_cache_cluster(CacheClusterId=MODIFY_CLUSTER.target, Engine="valkey", EngineVersion="8.1",
                            CacheNodeType="cache.t4g.micro")
    ec.create_user(UserId=MODIFY_USER.target, UserName=MODIFY_USER.target, Engine="redis", AccessString="on ~* +@all",
                   NoPasswordRequired=True)
    ec.create_user(UserId="sweep-member", UserName="sweep-member", Engine="redis", AccessString="on ~* +@all",
                   NoPasswordRequired=True)
    ec.create_user_group(UserGroupId=MODIFY_USER_GROUP.target, Engine="redis", UserIds=["default"])
    ec.create_cache_subnet_group(CacheSubnetGroupName=MODIFY_SUBNET_GROUP.target, CacheSubnetGroupDescription="sweep",
                                 SubnetIds=["subnet-us-east-1a"])
    ec.create_serverless_cache(ServerlessCacheName=MODIFY_SERVERLESS.target, Engine="redis", MajorEngineVersion="7",
                               UserGroupId="sweep-users")
    ec.create_cache_parameter_group(CacheParameterGroupName=MODIFY_PARAMETERS.target,
                                    CacheParameterGroupFamily="valkey8", Description="sweep")
    ec.create_replication_group(ReplicationGroupId=SCALED, ReplicationGroupDescription="sweep", Engine="valkey",
                                CacheNodeType="cache.t4g.micro", ClusterMode="enabled", NumNodeGroups=1,
                                ReplicasPerNodeGroup=0)
    yield sweep
    ec.delete_cache_parameter_group(CacheParameterGroupName=MODIFY_PARAMETERS.target)
    for modification in MODIFIED:
        wait_for(lambda m=modification: m.settled(ec, m.target), timeout=120, what=f"{modification.target} settled")
    ec.delete_replication_group(ReplicationGroupId=MODIFY_GROUP.target)
    ec.delete_replication_group(ReplicationGroupId=SCALED)
    ec.delete_cache_cluster(CacheClusterId=MODIFY_CLUSTER.target)
    ec.get_waiter("replication_group_deleted").wait(ReplicationGroupId=MODIFY_GROUP.target, WaiterConfig={"Delay": 1})
    ec.get_waiter("replication_group_deleted").wait(ReplicationGroupId=SCALED, WaiterConfig={"Delay": 1})
    ec.get_waiter("cache_cluster_deleted").wait(CacheClusterId=MODIFY_CLUSTER.target, WaiterConfig={"Delay": 1})
    ec.delete_cache_parameter_group(CacheParameterGroupName="sweep-params8")
    ec.delete_serverless_cache(ServerlessCacheName=MODIFY_SERVERLESS.target)
    ec.delete_cache_subnet_group(CacheSubnetGroupName=MODIFY_SUBNET_GROUP.target)
    ec.delete_user_group(UserGroupId=MODIFY_USER_GROUP.target)
    _serverless_gone(ec, MODIFY_SERVERLESS.target)
    for user in (MODIFY_USER.target, "sweep-member"):
        wait_for(lambda: not [g for g in ec.describe_user_groups()["UserGroups"]
                              if g["UserGroupId"] == MODIFY_USER_GROUP.target], what="the user group gone")
        ec.delete_user(UserId=user)


def _modify_cases(*modifications: Modification) -> list[Any]:
    cases = []
    for modification in modifications or MODIFIED:
        for path, member in members(MODEL.operation_model(modification.name).input_shape):
            reason = EXCEPTIONS.get((modification.name, path))
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            cases.append(pytest.param(modification, path, member, id=f"{modification.name}:{path}", marks=marks))
    return cases


@pytest.mark.parametrize(("modification", "path", "member"), _modify_cases())
def test_each_optional_modify_member_shows_or_is_refused(modified: dict[str, Any], modification: Modification,
                                                         path: str, member: Shape) -> None:
    _modify_member(modified["ec"], modification, path, member)


def _modify_member(ec: Any, modification: Modification, path: str, member: Shape) -> None:
    key = modification.key
    wait_for(lambda: modification.settled(ec, modification.target), timeout=120, what=f"{modification.target} settled")
    if path in modification.prepare:
        modification.prepare[path](ec)
        wait_for(lambda: modification.settled(ec, modification.target), timeout=120,
                 what=f"{modification.target} settled")
    value = modification.values[path] if path in modification.values else made_value(path, member)
    if callable(value):  # a value read from the resource as it is now (a replica's id)
        value = value(ec)
    elements = {**modification.elements, **modification.element_for.get(path, {})}
    params = put({key: modification.target, **modification.base, **modification.bases.get(path, {})}, path, value,
                 elements)
    for name, before in modification.leading.get(path, {}).items():
        params[name] = before + params[name]
    try:
        getattr(ec, botocore.xform_name(modification.name))(**params)
    except ClientError as error:
        found = error.response["Error"]
        names = [part.replace("[]", "") for part in path.split(".")]
        assert found["Code"] in REFUSALS, f"{modification.name} {params} -> {found}"
        assert any(name in found["Message"] for name in names), f"the refusal names none of {names}: {found['Message']}"
        return
    # What a modification starts (a switchover, a node type change) shows once it is done.
    wait_for(lambda: modification.settled(ec, modification.target), timeout=120, what=f"{modification.target} settled")
    observed = modification.observe(ec, modification.target)
    check = modification.shown.get(path)
    if check is not None:
        assert check(observed), f"{path}={value!r} accepted but not shown: {observed}"
    else:
        assert shows(observed, path, value), f"{path}={value!r} accepted but not shown: {observed}"


# ---------------------------------------------------------------------- snapshots
# Taken of the resources the Modify sweeps changed (settled by then: these tests come after theirs), and
# deleted with the sweep's other records at the end.
BUCKET = "sweep-bucket"
NOON = "2031-03-01T12:00:00+00:00"  # the sweep server's snapshot schedule clock (see sweep_server)
_EXPORTS: dict[str, Path] = {}  # "dir": the bucket's directory (set by the ``snapshotted`` fixture)


def _snapshot_observed(ec: Any, name: str, answer: dict[str, Any]) -> Any:
    if "TargetBucket" in answer.get("_params", {}):
        # Without --s3-endpoint-url a bucket is a directory of the data dir: the export's object lands there.
        exported = _EXPORTS["dir"] / f"{name}-0001.rdb"
        wait_for(exported.exists, timeout=60, what=f"{exported} written")
        return {"exported": exported}

    def done() -> Any:
        found = ec.describe_snapshots(SnapshotName=name)["Snapshots"][0]
        return found if found["SnapshotStatus"] in ("available", "failed") else None

    found = wait_for(done, timeout=60, what=f"snapshot {name} taken")
    return {"record": found, "tags": ec.list_tags_for_resource(ResourceName=found["ARN"])["TagList"]}


def _serverless_snapshot_observed(ec: Any, name: str, answer: dict[str, Any]) -> Any:
    def done() -> Any:
        found = ec.describe_serverless_cache_snapshots(ServerlessCacheSnapshotName=name)["ServerlessCacheSnapshots"][0]
        return found if found["Status"] in ("available", "failed") else None

    found = wait_for(done, timeout=60, what=f"serverless cache snapshot {name} taken")
    return {"record": found, "tags": ec.list_tags_for_resource(ResourceName=found["ARN"])["TagList"]}


_TAGGED = {"Tags": [{"Key": "sweep", "Value": "v"}], "Tags[].Key": "sweep-key", "Tags[].Value": "sweep-value",
           "KmsKeyId": "sweep-key-id"}
_TAGS_SHOWN = {"Tags": lambda o: {"Key": "sweep", "Value": "v"} in o["tags"],
               "KmsKeyId": lambda o: o["record"]["KmsKeyId"] == "sweep-key-id"}
_delete_snapshot = lambda ec, name: ec.delete_snapshot(SnapshotName=name)  # noqa: E731
_delete_serverless_snapshot = lambda ec, name: ec.delete_serverless_cache_snapshot(  # noqa: E731
    ServerlessCacheSnapshotName=name)
CREATE_SNAPSHOT = Operation(
    name="CreateSnapshot",
    base=lambda rid: {"SnapshotName": rid, "ReplicationGroupId": MODIFY_GROUP.target},
    observe=_snapshot_observed, cleanup=_delete_snapshot, elements=REPLICATION_GROUP.elements,
    values={**_TAGGED, "ReplicationGroupId": MODIFY_GROUP.target, "CacheClusterId": MODIFY_CLUSTER.target},
    bases={"CacheClusterId": {"ReplicationGroupId": None}}, shown=_TAGS_SHOWN,
)
COPY_SNAPSHOT = Operation(
    name="CopySnapshot",
    base=lambda rid: {"SourceSnapshotName": "sweep-source", "TargetSnapshotName": rid},
    observe=_snapshot_observed, cleanup=_delete_snapshot, elements=REPLICATION_GROUP.elements,
    values={**_TAGGED, "TargetBucket": BUCKET}, bases={},
    shown={**_TAGS_SHOWN, "TargetBucket": lambda o: o["exported"].stat().st_size > 0},
)
CREATE_SERVERLESS_SNAPSHOT = Operation(
    name="CreateServerlessCacheSnapshot",
    base=lambda rid: {"ServerlessCacheSnapshotName": rid, "ServerlessCacheName": MODIFY_SERVERLESS.target},
    observe=_serverless_snapshot_observed, cleanup=_delete_serverless_snapshot, elements=REPLICATION_GROUP.elements,
    values=_TAGGED, bases={}, shown=_TAGS_SHOWN,
)
COPY_SERVERLESS_SNAPSHOT = Operation(
    name="CopyServerlessCacheSnapshot",
    base=lambda rid: {"SourceServerlessCacheSnapshotName": "sweep-sl-source", "TargetServerlessCacheSnapshotName": rid},
    observe=_serverless_snapshot_observed, cleanup=_delete_serverless_snapshot, elements=REPLICATION_GROUP.elements,
    values=_TAGGED, bases={}, shown=_TAGS_SHOWN,
)
SNAPSHOTS = (CREATE_SNAPSHOT, COPY_SNAPSHOT, CREATE_SERVERLESS_SNAPSHOT, COPY_SERVERLESS_SNAPSHOT)


@pytest.fixture(scope="module")
def snapshotted(modified: dict[str, Any], sweep_server: Server) -> Iterator[dict[str, Any]]:
    """The snapshots the copies start from, and the bucket an export goes to."""
    ec = modified["ec"]
    _EXPORTS["dir"] = sweep_server.data_dir / "buckets" / BUCKET
    _EXPORTS["dir"].mkdir(parents=True, mode=0o700)
    for modification in MODIFIED:
        wait_for(lambda m=modification: m.settled(ec, m.target), timeout=120, what=f"{modification.target} settled")
    ec.create_snapshot(SnapshotName="sweep-source", ReplicationGroupId=MODIFY_GROUP.target)
    ec.create_serverless_cache_snapshot(ServerlessCacheSnapshotName="sweep-sl-source",
                                        ServerlessCacheName=MODIFY_SERVERLESS.target)
    _snapshot_observed(ec, "sweep-source", {})
    _serverless_snapshot_observed(ec, "sweep-sl-source", {})
    modified["created"] += [(CREATE_SNAPSHOT, "sweep-source"), (CREATE_SERVERLESS_SNAPSHOT, "sweep-sl-source")]
    _automatic_snapshots(modified)
    yield modified


def _automatic_snapshots(modified: dict[str, Any]) -> None:
    """An automatic snapshot of a cluster and of a serverless cache, for the Describe filters on
    SnapshotSource / SnapshotType to have something to leave out: the schedule's clock (the sweep
    server's --snapshot-clock-file) is moved into their 03:00 window, then back to noon."""
    ec = modified["ec"]
    ec.create_cache_cluster(CacheClusterId="sweep-auto", Engine="valkey", CacheNodeType="cache.t4g.micro",
                            SnapshotRetentionLimit=1, SnapshotWindow="03:00-04:00")
    ec.create_serverless_cache(ServerlessCacheName="sweep-auto-sl", Engine="valkey", DailySnapshotTime="03:00",
                               SnapshotRetentionLimit=1)
    modified["created"] += [(CACHE_CLUSTER, "sweep-auto"), (SERVERLESS_CACHE, "sweep-auto-sl")]
    wait_for(lambda: ec.describe_cache_clusters(CacheClusterId="sweep-auto")["CacheClusters"][0][
        "CacheClusterStatus"] == "available", timeout=60, what="sweep-auto available")
    wait_for(lambda: ec.describe_serverless_caches(ServerlessCacheName="sweep-auto-sl")["ServerlessCaches"][0][
        "Status"] == "available", timeout=60, what="sweep-auto-sl available")
    _EXPORTS["clock"].write_text("2031-03-01T03:10:00+00:00")
    try:
        wait_for(lambda: [x for x in ec.describe_snapshots(SnapshotSource="system")["Snapshots"]
                          if x["SnapshotStatus"] == "available"], timeout=60, what="an automatic snapshot")
        wait_for(lambda: [x for x in ec.describe_serverless_cache_snapshots(SnapshotType="automatic")[
            "ServerlessCacheSnapshots"] if x["Status"] == "available"], timeout=60,
                 what="an automatic serverless cache snapshot")
    finally:
        _EXPORTS["clock"].write_text(NOON)


def _snapshot_cases() -> list[Any]:
    return [pytest.param(o, path, member, id=f"{o.name}:{path}",
                         marks=[pytest.mark.skip(reason=EXCEPTIONS[(o.name, path)])] if (o.name, path) in EXCEPTIONS
                         else [])
            for o in SNAPSHOTS for path, member in members(MODEL.operation_model(o.name).input_shape)]


@pytest.mark.parametrize(("operation", "path", "member"), _snapshot_cases())
def test_each_optional_snapshot_member_shows_or_is_refused(snapshotted: dict[str, Any], operation: Operation,
                                                           path: str, member: Shape) -> None:
    _sweep_member(snapshotted, operation, path, member)


# ---------------------------------------------------------------------- deletions
@dataclass(frozen=True)
class Deletion:
    """How a Delete operation is swept: a resource made for each member, deleted with it set."""

    name: str
    key: str  # the input member naming the resource
    create: Callable[[Any, str], None]
    ready: Callable[[Any, str], bool]  # it may be deleted now
    gone: Callable[[Any, str], bool]
    values: dict[str, Callable[[str], Any]]  # member path -> its value, from the resource's id
    shown: dict[str, Callable[[Any, str], bool]]  # member path -> (client, id) -> what the member left behind
    cleanup: dict[str, Callable[[Any, str], None]]  # member path -> removes what it left behind


def _absent(describe: str, key: str, fault: str) -> Callable[[Any, str], bool]:
    def check(ec: Any, rid: str) -> bool:
        try:
            getattr(ec, describe)(**{key: rid})
        except ClientError as error:
            return bool(error.response["Error"]["Code"] == fault)
        return False

    return check


def _snapshot_of(field: str) -> Callable[[Any, str], bool]:
    def check(ec: Any, rid: str) -> bool:
        found = _snapshot_observed(ec, f"{rid}-final", {})["record"]
        return bool(found["SnapshotStatus"] == "available" and found[field] == rid)

    return check


def _cluster_ready(ec: Any, rid: str) -> bool:
    return bool(ec.describe_cache_clusters(CacheClusterId=rid)["CacheClusters"][0]["CacheClusterStatus"] == "available")


def _group_ready(ec: Any, rid: str) -> bool:
    return _group_settled(ec, rid)


def _retained(ec: Any, rid: str) -> bool:
    cluster = ec.describe_cache_clusters(CacheClusterId=f"{rid}-001")["CacheClusters"][0]
    return bool(cluster["CacheClusterStatus"] == "available" and "ReplicationGroupId" not in cluster)


def _final(rid: str) -> str:
    return f"{rid}-final"


_VALKEY = {"Engine": "valkey", "CacheNodeType": "cache.t4g.micro"}
DELETIONS = (
    Deletion(
        name="DeleteCacheCluster", key="CacheClusterId",
        create=lambda ec, rid: ec.create_cache_cluster(CacheClusterId=rid, **_VALKEY),
        ready=_cluster_ready, gone=_absent("describe_cache_clusters", "CacheClusterId", "CacheClusterNotFound"),
        values={"FinalSnapshotIdentifier": _final}, shown={"FinalSnapshotIdentifier": _snapshot_of("CacheClusterId")},
        cleanup={"FinalSnapshotIdentifier": lambda ec, rid: ec.delete_snapshot(SnapshotName=_final(rid))},
    ),
    Deletion(
        name="DeleteReplicationGroup", key="ReplicationGroupId",
        create=lambda ec, rid: ec.create_replication_group(ReplicationGroupId=rid, ReplicationGroupDescription="sweep",
                                                           NumCacheClusters=2, **_VALKEY),
        ready=_group_ready,
        gone=_absent("describe_replication_groups", "ReplicationGroupId", "ReplicationGroupNotFoundFault"),
        values={"RetainPrimaryCluster": lambda rid: True, "FinalSnapshotIdentifier": _final},
        shown={"RetainPrimaryCluster": _retained, "FinalSnapshotIdentifier": _snapshot_of("ReplicationGroupId")},
        cleanup={"RetainPrimaryCluster": lambda ec, rid: ec.delete_cache_cluster(CacheClusterId=f"{rid}-001"),
                 "FinalSnapshotIdentifier": lambda ec, rid: ec.delete_snapshot(SnapshotName=_final(rid))},
    ),
    Deletion(
        name="DeleteServerlessCache", key="ServerlessCacheName",
        create=lambda ec, rid: ec.create_serverless_cache(ServerlessCacheName=rid, Engine="valkey"),
        ready=_status_is("describe_serverless_caches", "ServerlessCaches", "ServerlessCacheName", "Status", "available"),
        gone=_absent("describe_serverless_caches", "ServerlessCacheName", "ServerlessCacheNotFoundFault"),
        values={"FinalSnapshotName": _final},
        shown={"FinalSnapshotName": lambda ec, rid: _serverless_snapshot_observed(ec, _final(rid), {})["record"][
            "ServerlessCacheConfiguration"]["ServerlessCacheName"] == rid},
        cleanup={"FinalSnapshotName": lambda ec, rid: ec.delete_serverless_cache_snapshot(
            ServerlessCacheSnapshotName=_final(rid))},
    ),
)


def _deletion_cases() -> list[Any]:
    return [pytest.param(d, path, id=f"{d.name}:{path}",
                         marks=[pytest.mark.skip(reason=EXCEPTIONS[(d.name, path)])] if (d.name, path) in EXCEPTIONS
                         else [])
            for d in DELETIONS for path, _ in members(MODEL.operation_model(d.name).input_shape)]


def _deleted_id(deletion: Deletion, path: str) -> str:
    return f"swd-{''.join(c for c in deletion.name + path if c.isupper()).lower()}-{len(path)}"


@pytest.fixture(scope="module")
def deletable(snapshotted: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One resource per Delete member, made at once (their engines start together)."""
    ec = snapshotted["ec"]
    made = [(d, path) for d in DELETIONS for path, _ in members(MODEL.operation_model(d.name).input_shape)
            if (d.name, path) not in EXCEPTIONS]
    for deletion, path in made:
        deletion.create(ec, _deleted_id(deletion, path))
    yield snapshotted
    for deletion, path in made:
        rid = _deleted_id(deletion, path)
        if not deletion.gone(ec, rid):  # a test that failed before its call
            wait_for(lambda d=deletion, r=rid: d.ready(ec, r), timeout=120, what=f"{rid} ready")
            getattr(ec, botocore.xform_name(deletion.name))(**{deletion.key: rid})
        wait_for(lambda d=deletion, r=rid: d.gone(ec, r), timeout=120, what=f"{rid} gone")
        try:
            deletion.cleanup[path](ec, rid)
        except ClientError as error:
            if "NotFound" not in error.response["Error"]["Code"]:
                raise
    wait_for(lambda: not [c for c in ec.describe_cache_clusters()["CacheClusters"]
                          if c["CacheClusterId"].startswith("swd-")], timeout=120, what="retained clusters gone")


@pytest.mark.parametrize(("deletion", "path"), _deletion_cases())
def test_each_optional_delete_member_shows_or_is_refused(deletable: dict[str, Any], deletion: Deletion,
                                                         path: str) -> None:
    ec = deletable["ec"]
    rid = _deleted_id(deletion, path)
    wait_for(lambda: deletion.ready(ec, rid), timeout=120, what=f"{rid} ready")
    value = deletion.values[path](rid)
    try:
        getattr(ec, botocore.xform_name(deletion.name))(**put({deletion.key: rid}, path, value, {}))
    except ClientError as error:
        found = error.response["Error"]
        assert found["Code"] in REFUSALS, f"{deletion.name} {path}={value!r} -> {found}"
        assert path in found["Message"], f"the refusal does not name {path}: {found['Message']}"
        return
    wait_for(lambda: deletion.gone(ec, rid), timeout=120, what=f"{rid} deleted")
    assert deletion.shown[path](ec, rid), f"{deletion.name} {path}={value!r} accepted but not shown"


# ---------------------------------------------------------------------- calls read from their own answer
@dataclass(frozen=True)
class Call:
    """An operation whose members show in its own answer (or in what it changes, read right after)."""

    name: str
    base: dict[str, Any]
    values: dict[str, Any]
    elements: dict[str, Any]
    shown: dict[str, Callable[[Any, dict[str, Any]], bool]]  # member path -> (client, answer) -> it took effect
    # member path -> a call made before the swept one, where the resource needs a change first
    ready: dict[str, Callable[[Any], None]] = field(default_factory=dict)


def _own_node_type(describe: Callable[[Any], str]) -> Callable[[Any, dict[str, Any]], bool]:
    """The listing is of that resource: a larger type is offered, not the one it runs."""
    def check(ec: Any, answer: dict[str, Any]) -> bool:
        offered = answer.get("ScaleUpModifications", []) + answer.get("ScaleDownModifications", [])
        return bool(answer.get("ScaleUpModifications")) and describe(ec) not in offered

    return check


_SUBNETS_ARN = "arn:aws:elasticache:us-east-1:000000000000:subnetgroup:sweep-subnets"
_tags_of_subnets = lambda ec: ec.list_tags_for_resource(ResourceName=_SUBNETS_ARN)["TagList"]  # noqa: E731
CALLS = (
    Call(
        name="AddTagsToResource", base={"ResourceName": _SUBNETS_ARN},
        values={"Tags[].Key": "sweep-added-key", "Tags[].Value": "sweep-added-value"},
        elements={"Tags": {"Key": "sweep-added", "Value": "v"}},
        shown={"Tags[].Key": lambda ec, a: {"Key": "sweep-added-key", "Value": "v"} in _tags_of_subnets(ec),
               "Tags[].Value": lambda ec, a: {"Key": "sweep-added", "Value": "sweep-added-value"}
               in _tags_of_subnets(ec)},
    ),
    Call(
        name="ListAllowedNodeTypeModifications", base={},
        values={"CacheClusterId": MODIFY_CLUSTER.target, "ReplicationGroupId": MODIFY_GROUP.target}, elements={},
        shown={"CacheClusterId": _own_node_type(lambda ec: ec.describe_cache_clusters(
                   CacheClusterId=MODIFY_CLUSTER.target)["CacheClusters"][0]["CacheNodeType"]),
               "ReplicationGroupId": _own_node_type(lambda ec: ec.describe_replication_groups(
                   ReplicationGroupId=MODIFY_GROUP.target)["ReplicationGroups"][0]["CacheNodeType"])},
    ),
)


def _call_cases() -> list[Any]:
    return [pytest.param(c, path, id=f"{c.name}:{path}",
                         marks=[pytest.mark.skip(reason=EXCEPTIONS[(c.name, path)])] if (c.name, path) in EXCEPTIONS
                         else [])
            for c in CALLS for path, _ in members(MODEL.operation_model(c.name).input_shape)]


@pytest.mark.parametrize(("call", "path"), _call_cases())
def test_each_optional_call_member_shows_or_is_refused(snapshotted: dict[str, Any], call: Call, path: str) -> None:
    _call_member(snapshotted["ec"], call, path)


def _call_member(ec: Any, call: Call, path: str) -> None:
    if path in call.ready:
        call.ready[path](ec)
    params = put(call.base, path, call.values[path], call.elements)
    try:
        answer = getattr(ec, botocore.xform_name(call.name))(**params)
    except ClientError as error:
        found = error.response["Error"]
        names = [part.replace("[]", "") for part in path.split(".")]
        assert found["Code"] in REFUSALS, f"{call.name} {params} -> {found}"
        assert any(name in found["Message"] for name in names), f"the refusal names none of {names}: {found['Message']}"
        return
    assert call.shown[path](ec, answer), f"{call.name} {params} accepted but not shown: {answer}"


# ---------------------------------------------------------------------- Describe filters and paging
# A filter takes effect when the listing with it set is not empty, holds only what matches, and the
# listing without it holds something that does not match. A page size takes effect when a page holds
# at most that many and says where the next starts; a Marker when the next page holds new items.
# They run last, over the records the sweep holds by then (its groups, clusters, snapshots, events).
@dataclass(frozen=True)
class Describe:
    """How a Describe operation's members are checked."""

    name: str
    listing: str  # the answer's list
    identity: Callable[[dict[str, Any]], Any]  # what tells two items apart
    base: dict[str, Any]
    values: dict[str, Any]  # member path -> value (a callable: (client) -> value)
    matches: dict[str, Callable[[dict[str, Any], Any], bool]]  # member path -> (item, value) -> it matches
    shown: dict[str, Callable[[dict[str, Any]], bool]] = field(default_factory=dict)  # non-filters: (answer) -> ok
    page: tuple[str, str, int] = ("MaxRecords", "Marker", 20)  # size member, marker member, smallest size
    within: str = ""  # the answer's member holding the listing and the marker, if not the answer itself
    # Filters whose value matches nothing the sweep holds (where nothing else can be had): the listing with
    # it is empty, without it not.
    leaves_out: frozenset[str] = frozenset()


def _field(name: str) -> Callable[[dict[str, Any], Any], bool]:
    return lambda item, value: bool(str(item.get(name, "")).lower() == str(value).lower())


def _at(*path: str) -> Callable[[dict[str, Any]], Any]:
    def read(item: dict[str, Any]) -> Any:
        for key in path:
            item = item.get(key, {}) if isinstance(item, dict) else {}
        return item

    return read


def _dated(ec: Any, pick: Callable[[list[Any]], Any]) -> Any:
    """A time among the events listed now: a bound that splits them."""
    dates = sorted(e["Date"] for e in ec.describe_events(Duration=1440, MaxRecords=100)["Events"])
    return pick(dates)


_event_id = lambda e: (e["SourceIdentifier"], e["Date"], e["Message"])  # noqa: E731
DESCRIBES = (
    Describe(
        name="DescribeCacheClusters", listing="CacheClusters", identity=_at("CacheClusterId"), base={},
        values={"CacheClusterId": MODIFY_CLUSTER.target, "ShowCacheNodeInfo": True,
                "ShowCacheClustersNotInReplicationGroups": True},
        matches={"CacheClusterId": _field("CacheClusterId"),
                 "ShowCacheClustersNotInReplicationGroups": lambda item, v: "ReplicationGroupId" not in item},
        shown={"ShowCacheNodeInfo": lambda a: all(c.get("CacheNodes") for c in a["CacheClusters"])},
    ),
    Describe(
        name="DescribeCacheEngineVersions", listing="CacheEngineVersions",
        identity=lambda v: (v["Engine"], v["EngineVersion"]), base={},
        values={"Engine": "valkey", "EngineVersion": "8.1", "CacheParameterGroupFamily": "valkey8", "DefaultOnly": True},
        matches={"Engine": _field("Engine"),
                 "EngineVersion": lambda item, v: item["EngineVersion"] == v or item["EngineVersion"].startswith(v + "."),
                 "CacheParameterGroupFamily": _field("CacheParameterGroupFamily")},
        # DefaultOnly: one version per engine, where the full listing has several for one.
        shown={"DefaultOnly": lambda a: len({v["Engine"] for v in a["CacheEngineVersions"]})
               == len(a["CacheEngineVersions"])},
    ),
    Describe(
        name="DescribeCacheParameterGroups", listing="CacheParameterGroups", identity=_at("CacheParameterGroupName"),
        base={}, values={"CacheParameterGroupName": "sweep-params8"},
        matches={"CacheParameterGroupName": _field("CacheParameterGroupName")},
    ),
    Describe(
        name="DescribeCacheParameters", listing="Parameters", identity=_at("ParameterName"),
        base={"CacheParameterGroupName": "sweep-params8"}, values={"Source": "engine-default"},
        matches={"Source": _field("Source")},
    ),
    Describe(
        name="DescribeCacheSecurityGroups", listing="CacheSecurityGroups", identity=_at("CacheSecurityGroupName"),
        base={}, values={"CacheSecurityGroupName": "sweep-security"},
        matches={"CacheSecurityGroupName": _field("CacheSecurityGroupName")},
    ),
    Describe(
        name="DescribeCacheSubnetGroups", listing="CacheSubnetGroups", identity=_at("CacheSubnetGroupName"),
        base={}, values={"CacheSubnetGroupName": "sweep-subnets"},
        matches={"CacheSubnetGroupName": _field("CacheSubnetGroupName")},
    ),
    Describe(
        name="DescribeEngineDefaultParameters", listing="Parameters", identity=_at("ParameterName"),
        base={"CacheParameterGroupFamily": "valkey8"}, values={}, matches={}, within="EngineDefaults",
    ),
    Describe(
        name="DescribeEvents", listing="Events", identity=_event_id, base={"Duration": 1440},
        values={"SourceIdentifier": MODIFY_GROUP.target, "SourceType": "cache-cluster",
                "StartTime": lambda ec: _dated(ec, lambda d: d[len(d) // 2]),
                "EndTime": lambda ec: _dated(ec, lambda d: d[len(d) // 2])},
        matches={"SourceIdentifier": _field("SourceIdentifier"), "SourceType": _field("SourceType"),
                 "StartTime": lambda item, v: item["Date"] >= v, "EndTime": lambda item, v: item["Date"] <= v},
    ),
    Describe(
        name="DescribeReplicationGroups", listing="ReplicationGroups", identity=_at("ReplicationGroupId"), base={},
        values={"ReplicationGroupId": MODIFY_GROUP.target}, matches={"ReplicationGroupId": _field("ReplicationGroupId")},
    ),
    Describe(
        name="DescribeServerlessCaches", listing="ServerlessCaches", identity=_at("ServerlessCacheName"), base={},
        values={"ServerlessCacheName": MODIFY_SERVERLESS.target},
        matches={"ServerlessCacheName": _field("ServerlessCacheName")}, page=("MaxResults", "NextToken", 1),
    ),
    Describe(
        name="DescribeServerlessCacheSnapshots", listing="ServerlessCacheSnapshots",
        identity=_at("ServerlessCacheSnapshotName"), base={},
        values={"ServerlessCacheName": MODIFY_SERVERLESS.target, "ServerlessCacheSnapshotName": "sweep-sl-source",
                "SnapshotType": "manual"},
        matches={"ServerlessCacheName": lambda item, v: item["ServerlessCacheConfiguration"][
                     "ServerlessCacheName"] == v,
                 "ServerlessCacheSnapshotName": _field("ServerlessCacheSnapshotName"),
                 "SnapshotType": _field("SnapshotType")}, page=("MaxResults", "NextToken", 1),
    ),
    Describe(
        name="DescribeSnapshots", listing="Snapshots", identity=_at("SnapshotName"), base={},
        values={"ReplicationGroupId": MODIFY_GROUP.target, "CacheClusterId": MODIFY_CLUSTER.target,
                "SnapshotName": "sweep-source", "SnapshotSource": "user", "ShowNodeGroupConfig": True},
        matches={"ReplicationGroupId": _field("ReplicationGroupId"), "CacheClusterId": _field("CacheClusterId"),
                 "SnapshotName": _field("SnapshotName"),
                 "SnapshotSource": lambda item, v: item["SnapshotSource"] == "manual"},
        shown={"ShowNodeGroupConfig": lambda a: all(n.get("NodeGroupConfiguration") for s in a["Snapshots"]
                                                    for n in s["NodeSnapshots"])},
    ),
    Describe(
        name="DescribeUserGroups", listing="UserGroups", identity=_at("UserGroupId"), base={},
        values={"UserGroupId": "sweep-users"}, matches={"UserGroupId": _field("UserGroupId")},
    ),
    Describe(
        name="DescribeUsers", listing="Users", identity=_at("UserId"), base={},
        values={"Engine": "valkey", "UserId": "default", "Filters": [{"Name": "user-id", "Values": ["default"]}],
                "Filters[].Name": "user-id", "Filters[].Values": ["sweep-member"]},
        matches={"Engine": _field("Engine"), "UserId": _field("UserId"),
                 "Filters": lambda item, v: item["UserId"] == "default",
                 "Filters[].Name": lambda item, v: item["UserId"] == "default",
                 "Filters[].Values": lambda item, v: item["UserId"] == "sweep-member"},
    ),
)
DESCRIBE_ELEMENTS = {"Filters": {"Name": "user-id", "Values": ["default"]}}


def _describe_cases() -> list[Any]:
    return [pytest.param(d, path, id=f"{d.name}:{path}",
                         marks=[pytest.mark.skip(reason=EXCEPTIONS[(d.name, path)])] if (d.name, path) in EXCEPTIONS
                         else [])
            for d in DESCRIBES for path, _ in members(MODEL.operation_model(d.name).input_shape)]


@pytest.mark.parametrize(("describe", "path"), _describe_cases())
def test_each_describe_member_takes_effect(snapshotted: dict[str, Any], describe: Describe, path: str) -> None:
    ec = snapshotted["ec"]
    describing = getattr(ec, botocore.xform_name(describe.name))

    def call(**params: Any) -> dict[str, Any]:
        answer = describing(**params)
        return dict(answer[describe.within]) if describe.within else dict(answer)

    size, marker, smallest = describe.page
    if path in (size, marker):
        first = call(**describe.base, **{size: smallest})
        assert 0 < len(first[describe.listing]) <= smallest and first.get(marker), \
            f"{size}={smallest}: {len(first[describe.listing])} items, {marker} {first.get(marker)!r}"
        if path == marker:
            second = call(**describe.base, **{size: smallest, marker: first[marker]})
            seen = {repr(describe.identity(i)) for i in first[describe.listing]}
            assert second[describe.listing] and not seen & {repr(describe.identity(i)) for i in second[
                describe.listing]}, f"{marker}: the next page repeats the first"
        return
    value = describe.values[path]
    if callable(value):
        value = value(ec)
    params = put(describe.base, path, value, DESCRIBE_ELEMENTS)
    try:
        answer = call(**params)
    except ClientError as error:
        found = error.response["Error"]
        names = [part.replace("[]", "") for part in path.split(".")]
        assert found["Code"] in REFUSALS, f"{describe.name} {params} -> {found}"
        assert any(name in found["Message"] for name in names), f"the refusal names none of {names}: {found['Message']}"
        return
    if path in describe.shown:
        assert describe.shown[path](answer), f"{describe.name} {params}: {answer}"
        return
    listed = answer[describe.listing]
    everything = call(**describe.base)[describe.listing]
    if path in describe.leaves_out:
        assert not listed and everything, f"{describe.name} {params}: {len(listed)} of {len(everything)} listed"
        return
    match = describe.matches[path]
    assert listed, f"{describe.name} {params} lists nothing"
    assert all(match(item, value) for item in listed), f"{describe.name} {params} lists what does not match: {listed}"
    assert any(not match(item, value) for item in everything), \
        f"{describe.name} without {path}: nothing it should leave out (the check proves nothing)"


# ---------------------------------------------------------------------- reserved nodes (bookkeeping only)
_OFFERS: dict[str, str] = {}  # name -> ReservedCacheNodesOfferingId (set by the ``reserved`` fixture)
_OFFERED = {"micro": {"CacheNodeType": "cache.t4g.micro", "Duration": "1", "OfferingType": "No Upfront",
                      "ProductDescription": "valkey"},
            "large": {"CacheNodeType": "cache.r7g.large", "Duration": "3", "OfferingType": "All Upfront",
                      "ProductDescription": "redis"}}


def _reserved_observed(ec: Any, rid: str, answer: dict[str, Any]) -> Any:
    bought = answer["ReservedCacheNode"]["ReservedCacheNodeId"]
    found = ec.describe_reserved_cache_nodes(ReservedCacheNodeId=bought)["ReservedCacheNodes"][0]
    return {"record": found, "tags": ec.list_tags_for_resource(ResourceName=found["ReservationARN"])["TagList"]}


PURCHASE = Operation(
    name="PurchaseReservedCacheNodesOffering",
    base=lambda rid: {"ReservedCacheNodesOfferingId": _OFFERS["micro"], "ReservedCacheNodeId": rid},
    observe=_reserved_observed, cleanup=lambda ec, rid: None,  # a reservation is never deleted, only expires
    elements=REPLICATION_GROUP.elements,
    values={"ReservedCacheNodeId": "sweep-reserved-own-id", "CacheNodeCount": 2, "Tags": [{"Key": "sweep", "Value": "v"}],
            "Tags[].Key": "sweep-key", "Tags[].Value": "sweep-value"},
    bases={}, shown={"Tags": lambda o: {"Key": "sweep", "Value": "v"} in o["tags"]},
)


@pytest.fixture(scope="module")
def reserved(sweep: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Two offerings apart in every filter, and a reservation of each."""
    ec = sweep["ec"]
    for name, filters in _OFFERED.items():
        _OFFERS[name] = ec.describe_reserved_cache_nodes_offerings(**filters)["ReservedCacheNodesOfferings"][0][
            "ReservedCacheNodesOfferingId"]
        ec.purchase_reserved_cache_nodes_offering(ReservedCacheNodesOfferingId=_OFFERS[name],
                                                  ReservedCacheNodeId=f"sweep-rsv-{name}")
    yield sweep


@pytest.mark.parametrize(("operation", "path", "member"), [
    pytest.param(PURCHASE, path, member, id=f"{PURCHASE.name}:{path}")
    for path, member in members(MODEL.operation_model(PURCHASE.name).input_shape)])
def test_each_optional_purchase_member_shows_or_is_refused(reserved: dict[str, Any], operation: Operation, path: str,
                                                           member: Shape) -> None:
    _sweep_member(reserved, operation, path, member)


_RESERVED_MATCHES = {
    "ReservedCacheNodesOfferingId": _field("ReservedCacheNodesOfferingId"), "CacheNodeType": _field("CacheNodeType"),
    "Duration": lambda item, v: item["Duration"] == 94608000, "ProductDescription": _field("ProductDescription"),
    "OfferingType": _field("OfferingType"),
}
_RESERVED_VALUES = {"ReservedCacheNodesOfferingId": lambda ec: _OFFERS["large"],
                    **{k: v for k, v in _OFFERED["large"].items()}}
RESERVED_DESCRIBES = (
    Describe(
        name="DescribeReservedCacheNodes", listing="ReservedCacheNodes", identity=_at("ReservedCacheNodeId"), base={},
        values={**_RESERVED_VALUES, "ReservedCacheNodeId": "sweep-rsv-large"},
        matches={**_RESERVED_MATCHES, "ReservedCacheNodeId": _field("ReservedCacheNodeId")},
    ),
    Describe(
        name="DescribeReservedCacheNodesOfferings", listing="ReservedCacheNodesOfferings",
        identity=_at("ReservedCacheNodesOfferingId"), base={}, values=_RESERVED_VALUES, matches=_RESERVED_MATCHES,
    ),
)


@pytest.mark.parametrize(("describe", "path"), [
    pytest.param(d, path, id=f"{d.name}:{path}",
                 marks=[pytest.mark.skip(reason=EXCEPTIONS[(d.name, path)])] if (d.name, path) in EXCEPTIONS else [])
    for d in RESERVED_DESCRIBES for path, _ in members(MODEL.operation_model(d.name).input_shape)])
def test_each_reserved_describe_member_takes_effect(reserved: dict[str, Any], describe: Describe, path: str) -> None:
    test_each_describe_member_takes_effect(reserved, describe, path)


# ---------------------------------------------------------------------- global datastores
# One datastore made by the sweep (its Description case) and one by the fixture, each around a group of
# its own (global datastores need a large node type); the Describe filters are checked on the two.
_LARGE = {"ReplicationGroupDescription": "sweep", "Engine": "valkey", "CacheNodeType": "cache.r6g.large"}


def _suffix(rid: str) -> str:
    """A datastore's id is its prefix and this suffix, 40 characters at most: the end of the group's id (each
    swept member's group id ends with its own name and number, so no two datastores share a suffix)."""
    return "swg" + rid[-20:]


GLOBAL_ID = f"{id_prefix('us-east-1')}-{_suffix('sweep-global-other')}"  # the global_primaries fixture's


def _global_of(ec: Any, rid: str) -> dict[str, Any] | None:
    found = [g for g in ec.describe_global_replication_groups(ShowMemberInfo=True)["GlobalReplicationGroups"]
             if g["GlobalReplicationGroupId"].endswith("-" + _suffix(rid))]
    return found[0] if found else None


def _global_cleanup(ec: Any, rid: str) -> None:
    record = _global_of(ec, rid)
    if record is not None:
        ec.delete_global_replication_group(GlobalReplicationGroupId=record["GlobalReplicationGroupId"],
                                           RetainPrimaryReplicationGroup=False)


def _global_observed(ec: Any, rid: str, answer: dict[str, Any]) -> Any:
    record = answer["GlobalReplicationGroup"]
    found = ec.describe_global_replication_groups(GlobalReplicationGroupId=record["GlobalReplicationGroupId"])
    described = found["GlobalReplicationGroups"][0]
    return {"record": described, "tags": ec.list_tags_for_resource(ResourceName=described["ARN"])["TagList"]}


CREATE_GLOBAL = Operation(
    name="CreateGlobalReplicationGroup",
    base=lambda rid: {"GlobalReplicationGroupIdSuffix": _suffix(rid), "PrimaryReplicationGroupId": rid},
    observe=_global_observed, cleanup=_global_cleanup,
    gone=lambda ec, rid: wait_for(lambda: _global_of(ec, rid) is None and group_gone(ec, rid), timeout=60,
                                  what=f"global datastore {rid} and its group gone"),
    elements=REPLICATION_GROUP.elements,
    values={"GlobalReplicationGroupDescription": "sweep-global-description", "Tags": [{"Key": "sweep", "Value": "v"}],
            "Tags[].Key": "sweep-key", "Tags[].Value": "sweep-value"},
    bases={}, shown={"Tags": lambda o: {"Key": "sweep", "Value": "v"} in o["tags"]},
)


def group_gone(ec: Any, group_id: str) -> bool:
    try:
        ec.describe_replication_groups(ReplicationGroupId=group_id)
    except ClientError as error:
        return bool(error.response["Error"]["Code"] == "ReplicationGroupNotFoundFault")
    return False


@pytest.fixture(scope="module")
def global_primaries(sweep: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The groups the datastores are made around: one for each swept member, and the fixture's own."""
    ec = sweep["ec"]
    swept = [_resource_id(CREATE_GLOBAL, path) for path in CREATE_GLOBAL.values]
    for group_id in swept:
        ec.create_replication_group(ReplicationGroupId=group_id, **_LARGE)
    # Valkey 8.1, for the ModifyGlobalReplicationGroup sweep's EngineVersion case to upgrade (global_pair).
    ec.create_replication_group(ReplicationGroupId="sweep-global-other", EngineVersion="8.1", **_LARGE)
    for group_id in (*swept, "sweep-global-other"):
        wait_for(lambda g=group_id: _group_settled(ec, g), timeout=60, what=f"{group_id} available")
    ec.create_global_replication_group(GlobalReplicationGroupIdSuffix=_suffix("sweep-global-other"),
                                       PrimaryReplicationGroupId="sweep-global-other")
    sweep["created"].append((CREATE_GLOBAL, "sweep-global-other"))
    yield sweep


@pytest.mark.parametrize(("operation", "path", "member"), [
    pytest.param(CREATE_GLOBAL, path, member, id=f"{CREATE_GLOBAL.name}:{path}")
    for path, member in members(MODEL.operation_model(CREATE_GLOBAL.name).input_shape)])
def test_each_optional_global_member_shows_or_is_refused(global_primaries: dict[str, Any], operation: Operation,
                                                         path: str, member: Shape) -> None:
    _sweep_member(global_primaries, operation, path, member)


DESCRIBE_GLOBAL = Describe(
    name="DescribeGlobalReplicationGroups", listing="GlobalReplicationGroups", identity=_at("GlobalReplicationGroupId"),
    base={}, values={"GlobalReplicationGroupId": lambda ec: _global_of(ec, "sweep-global-other")[  # type: ignore[index]
        "GlobalReplicationGroupId"], "ShowMemberInfo": True},
    matches={"GlobalReplicationGroupId": _field("GlobalReplicationGroupId")},
    shown={"ShowMemberInfo": lambda a: all(g.get("Members") for g in a["GlobalReplicationGroups"])},
)


@pytest.mark.parametrize("path", [
    pytest.param(path, id=f"{DESCRIBE_GLOBAL.name}:{path}",
                 marks=[pytest.mark.skip(reason=EXCEPTIONS[(DESCRIBE_GLOBAL.name, path)])]
                 if (DESCRIBE_GLOBAL.name, path) in EXCEPTIONS else [])
    for path, _ in members(MODEL.operation_model(DESCRIBE_GLOBAL.name).input_shape)])
def test_each_global_describe_member_takes_effect(global_primaries: dict[str, Any], path: str) -> None:
    test_each_describe_member_takes_effect(global_primaries, DESCRIBE_GLOBAL, path)


# The operations refused whole (REFUSED_WHOLE): each member is sent with the required ones (the fixture's
# datastore, the Modify sweep's serverless cache), and the refusal must be the table's fault, naming the operation.
_SECRET = "arn:aws:secretsmanager:us-east-1:000000000000:secret:sweep-source"
_WHOLE_BASES: dict[str, dict[str, Any]] = {
    **dict.fromkeys(("IncreaseNodeGroupsInGlobalReplicationGroup", "DecreaseNodeGroupsInGlobalReplicationGroup"),
                    {"GlobalReplicationGroupId": GLOBAL_ID, "NodeGroupCount": 2, "ApplyImmediately": True}),
    "PrepareMigration": {"ServerlessCacheName": MODIFY_SERVERLESS.target,
                         "CustomerNodeEndpointList": [{"Address": "127.0.0.1", "Port": 6379}]},
}
_WHOLE_ELEMENTS: dict[str, Any] = {
    "RegionalConfigurations": {"ReplicationGroupId": "sweep-global-other", "ReplicationGroupRegion": "us-east-1",
                               "ReshardingConfiguration": [{"NodeGroupId": "0001",
                                                            "PreferredAvailabilityZones": ["us-east-1a"]}]},
}
_WHOLE_VALUES: dict[str, Any] = {
    "RegionalConfigurations": [_WHOLE_ELEMENTS["RegionalConfigurations"]],
    "RegionalConfigurations[].ReplicationGroupId": "sweep-global-other",
    "RegionalConfigurations[].ReplicationGroupRegion": "us-east-1",
    "RegionalConfigurations[].ReshardingConfiguration": [{"NodeGroupId": "0001"}],
    "RegionalConfigurations[].ReshardingConfiguration[].NodeGroupId": "0001",
    "GlobalNodeGroupsToRemove": ["sweep-0001"], "GlobalNodeGroupsToRetain": ["sweep-0001"],
    "SourceAuthenticationConfiguration": {"SecretManagerConfig": {"SecretArn": _SECRET}},
    "SourceAuthenticationConfiguration.SecretManagerConfig": {"SecretArn": _SECRET},
    "SourceAuthenticationConfiguration.SecretManagerConfig.SecretArn": _SECRET,
    "SourceTlsConfiguration": {"SourceTlsMode": "verify-ca"},
}


@pytest.mark.parametrize(("operation", "path", "member"), [
    pytest.param(operation, path, member, id=f"{operation}:{path}")
    for operation in REFUSED_WHOLE
    for path, member in members(MODEL.operation_model(operation).input_shape)])
def test_each_member_of_an_operation_refused_whole_is_refused(global_primaries: dict[str, Any],
                                                              modified: dict[str, Any], operation: str, path: str,
                                                              member: Shape) -> None:
    ec = global_primaries["ec"]
    value = _WHOLE_VALUES[path] if path in _WHOLE_VALUES else made_value(path, member)
    params = put(_WHOLE_BASES[operation], path, value, _WHOLE_ELEMENTS)
    with pytest.raises(ClientError) as refused:
        getattr(ec, botocore.xform_name(operation))(**params)
    found = refused.value.response["Error"]
    assert found["Code"] == REFUSED_WHOLE[operation][0], found
    assert operation in found["Message"], found


# ---------------------------------------------------------------------- ModifyGlobalReplicationGroup
# The fixture's datastore (global_primaries: sweep-global-other in us-east-1, on Valkey 8.1) gets a
# secondary in us-west-2; each member changes both member groups, or is refused naming itself.
WEST = "us-west-2"
_WEST: dict[str, Any] = {}  # "ec": the us-west-2 client (set by the ``global_pair`` fixture)
_GLOBAL_MEMBERS = (("us-east-1", "sweep-global-other"), (WEST, "sweep-global-west"))


def _global_members(ec: Any) -> list[tuple[Any, str]]:
    return [(ec if region == "us-east-1" else _WEST["ec"], group_id) for region, group_id in _GLOBAL_MEMBERS]


def _global_settled(ec: Any, global_id: str) -> bool:
    record = ec.describe_global_replication_groups(GlobalReplicationGroupId=global_id)["GlobalReplicationGroups"][0]
    return record["Status"] == "available" and all(_group_settled(c, g) for c, g in _global_members(ec))


def _global_modified(ec: Any, global_id: str) -> Any:
    record = ec.describe_global_replication_groups(GlobalReplicationGroupId=global_id, ShowMemberInfo=True)[
        "GlobalReplicationGroups"][0]
    observed = [_group_observed(client, group_id, {}) for client, group_id in _global_members(ec)]
    return {"record": record, "groups": [o["group"] for o in observed],
            "clusters": [c for o in observed for c in o["clusters"]]}


def _every_member_cluster(check: Callable[[dict[str, Any]], bool]) -> Callable[[Any], bool]:
    """Both member groups took the change: every cluster of each (two regions) shows it."""
    return lambda o: len(o["clusters"]) == len(_GLOBAL_MEMBERS) and all(check(c) for c in o["clusters"])


MODIFY_GLOBAL = Modification(
    name="ModifyGlobalReplicationGroup", target=GLOBAL_ID, key="GlobalReplicationGroupId",
    base={"ApplyImmediately": True}, observe=_global_modified, settled=_global_settled,
    values={"CacheNodeType": "cache.r6g.xlarge", "Engine": "valkey", "EngineVersion": "9.1",
            "CacheParameterGroupName": "sweep-global-params", "AutomaticFailoverEnabled": True,
            "GlobalReplicationGroupDescription": "sweep-global-new-description"},
    bases={},
    shown={
        "CacheNodeType": lambda o: o["record"]["CacheNodeType"] == "cache.r6g.xlarge" and _every_member_cluster(
            lambda c: c["CacheNodeType"] == "cache.r6g.xlarge")(o),
        "EngineVersion": lambda o: o["record"]["EngineVersion"].startswith("9.1.") and _every_member_cluster(
            lambda c: c["EngineVersion"].startswith("9.1."))(o),
        "CacheParameterGroupName": _every_member_cluster(
            lambda c: c["CacheParameterGroup"]["CacheParameterGroupName"] == "sweep-global-params"),
    },
)


@pytest.fixture(scope="module")
def global_pair(global_primaries: dict[str, Any], sweep_server: Server) -> Iterator[dict[str, Any]]:
    """The fixture's datastore with a secondary in another region, and a parameter group of the version
    the EngineVersion case upgrades to in both regions (a parameter group is regional)."""
    ec = global_primaries["ec"]
    west = _WEST["ec"] = sweep_server.client(region=WEST)
    wait_for(lambda: _group_settled(ec, "sweep-global-other"), timeout=60, what="sweep-global-other available")
    west.create_replication_group(ReplicationGroupId="sweep-global-west", ReplicationGroupDescription="sweep",
                                  GlobalReplicationGroupId=GLOBAL_ID)
    for client in (ec, west):
        client.create_cache_parameter_group(CacheParameterGroupName="sweep-global-params",
                                            CacheParameterGroupFamily="valkey9", Description="sweep")
    wait_for(lambda: _global_settled(ec, GLOBAL_ID), timeout=60, what=f"{GLOBAL_ID} with its secondary available")
    yield global_primaries
    # The datastore goes here, with its groups: the parameter groups can go only after them.
    wait_for(lambda: _global_settled(ec, GLOBAL_ID), timeout=120, what=f"{GLOBAL_ID} settled")
    ec.disassociate_global_replication_group(GlobalReplicationGroupId=GLOBAL_ID, ReplicationGroupId="sweep-global-west",
                                             ReplicationGroupRegion=WEST)
    wait_for(lambda: _group_settled(west, "sweep-global-west"), timeout=60, what="sweep-global-west available")
    west.delete_replication_group(ReplicationGroupId="sweep-global-west")
    wait_for(lambda: ec.describe_global_replication_groups(GlobalReplicationGroupId=GLOBAL_ID)[
        "GlobalReplicationGroups"][0]["Status"] == "primary-only" and _group_settled(ec, "sweep-global-other"),
        timeout=60, what=f"{GLOBAL_ID} primary-only")
    ec.delete_global_replication_group(GlobalReplicationGroupId=GLOBAL_ID, RetainPrimaryReplicationGroup=False)
    for client, group_id in ((west, "sweep-global-west"), (ec, "sweep-global-other")):
        wait_for(lambda c=client, g=group_id: group_gone(c, g), timeout=60, what=f"{group_id} gone")
        client.delete_cache_parameter_group(CacheParameterGroupName="sweep-global-params")


@pytest.mark.parametrize(("modification", "path", "member"), _modify_cases(MODIFY_GLOBAL))
def test_each_optional_global_modify_member_shows_or_is_refused(global_pair: dict[str, Any], modification: Modification,
                                                                path: str, member: Shape) -> None:
    _modify_member(global_pair["ec"], modification, path, member)

# ---------------------------------------------------------------------- online migration
# One Multi-AZ group follows bare engines (BareEngines, as tests/acceptance/test_migration.py's): each
# member's call starts from the state its operation needs (``ready``), shows in the group's events after
# it (and in its data), and the group is made available again after each case.
MIGRATED = "sweep-migrated"
_SOURCES: dict[str, Any] = {}  # "source", "doomed" (a source the Force case kills), "nowhere": set by ``migrating``


@dataclass(frozen=True)
class MigrationCall:
    """How a migration operation is swept on MIGRATED."""

    name: str
    base: Callable[[], dict[str, Any]]  # the smallest valid call (the sources are known once started)
    values: dict[str, Callable[[], Any]]  # member path -> its value
    elements: Callable[[], dict[str, Any]]  # a list element to start from: it fails where the member is not read
    ready: Callable[[Any, str], None]  # (client, member path) -> puts MIGRATED where the call applies
    shown: dict[str, Callable[[Any, list[str]], bool]]  # member path -> (client, events since the call) -> it took effect


def _endpoint(name: str) -> dict[str, Any]:
    return {"Address": _SOURCES[name].address, "Port": _SOURCES[name].port}


def _migrated_primary(ec: Any) -> Any:
    group = ec.describe_replication_groups(ReplicationGroupId=MIGRATED)["ReplicationGroups"][0]
    return engine(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"])


def _group_events(ec: Any) -> list[str]:
    return [e["Message"] for e in ec.describe_events(SourceIdentifier=MIGRATED, SourceType="replication-group",
                                                    Duration=60, MaxRecords=100)["Events"]]


def _available_again(ec: Any) -> None:
    """Completes whatever migration MIGRATED has (Force: its source may be gone) and waits for it."""
    def completed() -> bool:
        status = ec.describe_replication_groups(ReplicationGroupId=MIGRATED)["ReplicationGroups"][0]["Status"]
        if status != "migrating":
            return _group_settled(ec, MIGRATED)
        try:
            ec.complete_migration(ReplicationGroupId=MIGRATED, Force=True)
        except ClientError as error:  # still starting, or already completing
            if error.response["Error"]["Code"] != "InvalidReplicationGroupState":
                raise
        return False

    wait_for(completed, timeout=60, interval=0.2, what=f"{MIGRATED} available again")


def _in_sync(source: str) -> Callable[[Any, list[str]], bool]:
    def check(ec: Any, events: list[str]) -> bool:
        address = f"{_SOURCES[source].address}:{_SOURCES[source].port}"
        return any(f"Migration of replication group {MIGRATED} is in sync with the source {address}" in m
                   for m in events) and _migrated_primary(ec).get("source-key") == source

    return check


def _following(source: str) -> Callable[[Any, str], None]:
    """A migration from ``source``, in sync (what CompleteMigration completes)."""
    def ready(ec: Any, path: str) -> None:
        _available_again(ec)
        before = _group_events(ec)
        ec.start_migration(ReplicationGroupId=MIGRATED, CustomerNodeEndpointList=[_endpoint(source)])
        wait_for(lambda: _in_sync(source)(ec, _since(before, _group_events(ec))), timeout=60,
                 what=f"{MIGRATED} in sync with {source}")

    return ready


def _source_lost(ec: Any, path: str) -> None:
    """In sync with the doomed source, which then goes away: completing needs Force."""
    _following("doomed")(ec, path)
    before = _group_events(ec)
    _SOURCES["doomed"].process.kill()
    wait_for(lambda: any("the replication link to the source" in m and "is down" in m
                         for m in _since(before, _group_events(ec))), timeout=60, what="the link to the source down")


def _target_data(ec: Any, path: str) -> None:
    """Available, with a key of its own (a migration's full sync replaces the target's data)."""
    _available_again(ec)
    _migrated_primary(ec).set("target-only", "mine")


def _since(before: list[str], after: list[str]) -> list[str]:
    """The events of ``after`` not in ``before`` (a message may repeat: counted)."""
    left = Counter(after) - Counter(before)
    return list(left.elements())


def _completed(ec: Any, events: list[str]) -> bool:
    return f"Complete Migration successful for {MIGRATED}" in events and _group_settled(ec, MIGRATED)


def _tested(source: str) -> Callable[[Any, list[str]], bool]:
    def check(ec: Any, events: list[str]) -> bool:
        address = f"{_SOURCES[source].address}:{_SOURCES[source].port}"
        return any(m.startswith(f"Test Migration successful for {MIGRATED}: the source {address}") for m in events)

    return check


# The endpoint element the Address and Port cases start from names an address where nothing listens, on
# the source's port, or the source's address on port 1: only the member under test makes the call work.
_ADDRESS = {"CustomerNodeEndpointList[].Address": lambda: _SOURCES["source"].address,
            "CustomerNodeEndpointList[].Port": lambda: _SOURCES["source"].port}


def _broken_element(path: str) -> Callable[[], dict[str, Any]]:
    return lambda: {"CustomerNodeEndpointList": {**_endpoint("source"), **(
        {"Address": _SOURCES["nowhere"]} if path.endswith("Address") else {"Port": 1})}}


MIGRATION_CALLS = (
    MigrationCall(
        name="TestMigration",
        base=lambda: {"ReplicationGroupId": MIGRATED, "CustomerNodeEndpointList": [_endpoint("source")]},
        values=_ADDRESS, elements=lambda: {}, ready=lambda ec, path: _available_again(ec),
        shown={path: _tested("source") for path in _ADDRESS},
    ),
    MigrationCall(
        name="StartMigration",
        base=lambda: {"ReplicationGroupId": MIGRATED, "CustomerNodeEndpointList": [_endpoint("source")]},
        values={**_ADDRESS, "ReplicationGroupId": lambda: MIGRATED,
                "CustomerNodeEndpointList": lambda: [_endpoint("source")], "AutoCutover": lambda: True,
                "ClearTargetCacheData": lambda: True, "ServerlessCacheName": lambda: MODIFY_SERVERLESS.target},
        elements=lambda: {}, ready=_target_data,
        shown={**{path: _in_sync("source") for path in ("ReplicationGroupId", "CustomerNodeEndpointList", *_ADDRESS)},
               "ClearTargetCacheData": lambda ec, events: _in_sync("source")(ec, events)
               and _migrated_primary(ec).get("target-only") is None},
    ),
    MigrationCall(
        name="CompleteMigration",
        base=lambda: {"ReplicationGroupId": MIGRATED},
        values={"ReplicationGroupId": lambda: MIGRATED, "Force": lambda: True,
                "ServerlessCacheName": lambda: MODIFY_SERVERLESS.target},
        elements=lambda: {}, ready=lambda ec, path: (_source_lost if path == "Force" else _following("source"))(ec, path),
        shown={"ReplicationGroupId": _completed, "Force": _completed},
    ),
)


@pytest.fixture(scope="module")
def migrating(modified: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """MIGRATED, and the bare engines it follows: a Valkey 8.1 source (an older engine than the group's) and the
    one the Force case kills; each holds ``source-key`` = its name."""
    ec = modified["ec"]
    engines = BareEngines()
    valkey = next(b for b in BINARIES if b.release.engine == "valkey" and b.release.major_minor == "8.1")
    try:
        for host, name in ((10, "source"), (11, "doomed")):
            _SOURCES[name] = engines(valkey, host=host)
            engine(_SOURCES[name].address, _SOURCES[name].port).set("source-key", name)
        _SOURCES["nowhere"] = engines.address(99)
        ec.create_replication_group(ReplicationGroupId=MIGRATED, ReplicationGroupDescription="sweep", Engine="valkey",
                                    CacheNodeType="cache.t4g.micro", NumCacheClusters=2, AutomaticFailoverEnabled=True,
                                    MultiAZEnabled=True)
        wait_for(lambda: _group_settled(ec, MIGRATED), timeout=60, what=f"{MIGRATED} available")
        yield modified
        _available_again(ec)
        ec.delete_replication_group(ReplicationGroupId=MIGRATED)
        ec.get_waiter("replication_group_deleted").wait(ReplicationGroupId=MIGRATED, WaiterConfig={"Delay": 1})
    finally:
        engines.close()


def _migration_cases() -> list[Any]:
    return [pytest.param(c, path, id=f"{c.name}:{path}",
                         marks=[pytest.mark.skip(reason=EXCEPTIONS[(c.name, path)])] if (c.name, path) in EXCEPTIONS
                         else [])
            for c in MIGRATION_CALLS for path, _ in members(MODEL.operation_model(c.name).input_shape)]


def _refused_naming(error: ClientError, codes: tuple[str, ...], path: str, params: dict[str, Any]) -> None:
    found = error.response["Error"]
    names = [part.replace("[]", "") for part in path.split(".")]
    assert found["Code"] in codes, f"{params} -> {found}"
    assert any(name in found["Message"] for name in names), f"the refusal names none of {names}: {found['Message']}"


@pytest.mark.parametrize(("call", "path"), _migration_cases())
def test_each_optional_migration_member_shows_or_is_refused(migrating: dict[str, Any], call: MigrationCall,
                                                            path: str) -> None:
    ec = migrating["ec"]
    operation = getattr(ec, botocore.xform_name(call.name))
    call.ready(ec, path)
    try:
        value = call.values[path]()
        elements = {**call.elements(), **(_broken_element(path)() if path in _ADDRESS else {})}
        if (call.name, path) in REFUSED_PATHS:
            # Down the refused path (the member instead of ReplicationGroupId), then beside the base call.
            alone = put({k: v for k, v in call.base().items() if k != "ReplicationGroupId"}, path, value, elements)
            with pytest.raises(ClientError) as refused:
                operation(**alone)
            _refused_naming(refused.value, (REFUSED_PATHS[(call.name, path)][0],), path, alone)
        params = put(call.base(), path, value, elements)
        before = _group_events(ec)
        try:
            operation(**params)
        except ClientError as error:
            _refused_naming(error, REFUSALS, path, params)
            return
        assert (call.name, path) not in REFUSED_PATHS, f"{call.name} {params}: {path} accepted beside the base call"
        wait_for(lambda: call.shown[path](ec, _since(before, _group_events(ec))), timeout=60,
                 what=f"{call.name} {path}={value!r} shown")
    finally:
        _available_again(ec)

# ---------------------------------------------------------------------- service updates
# The sweep's second server has a second build of two installed Valkey minors (engines.marked_build, as
# tests/acceptance/test_maintenance.py makes one: 8.1.9 of 8.1.8, 9.1.3 of 9.1.2), so it offers two service
# updates; a server of its own, so that no other resource of the sweep runs a wrapped build. A group of three
# nodes and two standalone clusters on 8.1.8 take the Batch members; a cluster on 9.1.2 is left not-applied,
# for the DescribeUpdateActions filters to have something to leave out.
UPDATE_81, UPDATE_91 = "valkey-8-1-9-engine-update", "valkey-9-1-3-engine-update"
SU_GROUP, SU_ALONE, SU_STOPPED, SU_WAITING = "sweep-su-group", "sweep-su-alone", "sweep-su-stopped", "sweep-su-waiting"


@pytest.fixture(scope="module")
def updates_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("sweep-updates")
    builds = []
    for minor, version in (("8.1", "8.1.9"), ("9.1", "9.1.3")):
        binary = next(b for b in BINARIES if b.release.engine == "valkey" and b.release.major_minor == minor)
        built = marked_build(root / "builds" / version, binary, version=version, mark="{title} wrapper-" + version)
        builds += ["--engine-path", str(built)]
    running = Server(data_dir=root / "data", network=fresh_network(), port=free_port(), extra=builds).start()
    yield running
    running.down()


def _su_settled(ec: Any) -> bool:
    clusters = ec.describe_cache_clusters()["CacheClusters"]
    return _group_settled(ec, SU_GROUP) and all(c["CacheClusterStatus"] == "available" for c in clusters)


@pytest.fixture(scope="module")
def updated(updates_server: Server) -> Iterator[dict[str, Any]]:
    ec = updates_server.client()
    ec.create_replication_group(ReplicationGroupId=SU_GROUP, ReplicationGroupDescription="sweep", NumCacheClusters=3,
                                EngineVersion="8.1.8", AutoMinorVersionUpgrade=False, **_VALKEY)
    for cluster_id, version in ((SU_ALONE, "8.1.8"), (SU_STOPPED, "8.1.8"), (SU_WAITING, "9.1.2")):
        ec.create_cache_cluster(CacheClusterId=cluster_id, EngineVersion=version, AutoMinorVersionUpgrade=False,
                                **_VALKEY)
    wait_for(lambda: _su_settled(ec), timeout=60, what="the service update sweep's resources available")
    yield {"ec": ec}
    wait_for(lambda: _su_settled(ec), timeout=120, what="the service update sweep's resources settled")
    ec.delete_replication_group(ReplicationGroupId=SU_GROUP)
    for cluster_id in (SU_ALONE, SU_STOPPED, SU_WAITING):
        ec.delete_cache_cluster(CacheClusterId=cluster_id)
    ec.get_waiter("replication_group_deleted").wait(ReplicationGroupId=SU_GROUP, WaiterConfig={"Delay": 1})
    for cluster_id in (SU_ALONE, SU_STOPPED, SU_WAITING):
        ec.get_waiter("cache_cluster_deleted").wait(CacheClusterId=cluster_id, WaiterConfig={"Delay": 1})


def _action(ec: Any, **ids: list[str]) -> dict[str, Any]:
    found = ec.describe_update_actions(ServiceUpdateName=UPDATE_81, ShowNodeLevelUpdateStatus=True, **ids)
    return dict(found["UpdateActions"][0])


def _processed(key: str, resource_id: str, status: str) -> Callable[[dict[str, Any]], bool]:
    return lambda answer: answer["ProcessedUpdateActions"] == [
        {key: resource_id, "ServiceUpdateName": UPDATE_81, "UpdateActionStatus": status}]


def _eventually(check: Callable[[], bool], what: str) -> bool:
    try:
        return bool(wait_for(check, timeout=90, interval=0.1, what=what))
    except TimeoutError:
        return False


def _versions(ec: Any, *cluster_ids: str) -> list[str]:
    return [ec.describe_cache_clusters(CacheClusterId=c)["CacheClusters"][0]["EngineVersion"] for c in cluster_ids]


_SU_MEMBERS = (f"{SU_GROUP}-001", f"{SU_GROUP}-002", f"{SU_GROUP}-003")


def _partly_updated(ec: Any) -> bool:
    """Some of the group's nodes run the new build, not all, as its update action counts them."""
    updated = _versions(ec, *_SU_MEMBERS).count("8.1.9")
    return 1 <= updated < 3 and _action(ec, ReplicationGroupIds=[SU_GROUP])["NodesUpdated"] == f"{updated}/3"


def _apply_and_begin(ec: Any) -> None:
    """Applies the group's update and waits for its first node's update to begin: a stop before any
    node began would rightly update none (it raced so in 1 of ~3 clean-clone runs)."""
    ec.batch_apply_update_action(ServiceUpdateName=UPDATE_81, ReplicationGroupIds=[SU_GROUP])

    def begun() -> bool:
        found = ec.describe_update_actions(ServiceUpdateName=UPDATE_81, ReplicationGroupIds=[SU_GROUP],
                                           ShowNodeLevelUpdateStatus=True)["UpdateActions"]
        return bool(node_update_statuses(found) & {"in-progress", "complete"})

    wait_for(begun, timeout=60, interval=0.02, what="the group's first node update to begin")


# Stopped first (between the group's nodes: the one being updated finishes, no other starts), then applied:
# the group finishes, and a cluster of its own is updated.
_apply = lambda **ids: lambda ec: ec.batch_apply_update_action(ServiceUpdateName=UPDATE_81, **ids)  # noqa: E731
BATCHES = (
    Call(
        name="BatchStopUpdateAction", base={"ServiceUpdateName": UPDATE_81},
        values={"ReplicationGroupIds": [SU_GROUP], "CacheClusterIds": [SU_STOPPED]}, elements={},
        ready={"ReplicationGroupIds": lambda ec: _apply_and_begin(ec),
               "CacheClusterIds": _apply(CacheClusterIds=[SU_STOPPED])},
        shown={
            "ReplicationGroupIds": lambda ec, a: _processed("ReplicationGroupId", SU_GROUP, "stopping")(a)
            and _eventually(lambda: _su_settled(ec) and _action(ec, ReplicationGroupIds=[SU_GROUP])[
                "UpdateActionStatus"] == "stopped", "the group's update stopped")
            and _partly_updated(ec),
            # One node: it finishes, stopped or not; the answer says the stop was taken.
            "CacheClusterIds": lambda ec, a: _processed("CacheClusterId", SU_STOPPED, "stopping")(a)
            and _eventually(lambda: _su_settled(ec), "the stopped cluster settled"),
        },
    ),
    Call(
        name="BatchApplyUpdateAction", base={"ServiceUpdateName": UPDATE_81},
        values={"ReplicationGroupIds": [SU_GROUP], "CacheClusterIds": [SU_ALONE]}, elements={},
        ready={path: lambda ec: wait_for(lambda: _su_settled(ec), timeout=60, what="settled")
               for path in ("ReplicationGroupIds", "CacheClusterIds")},
        shown={
            "ReplicationGroupIds": lambda ec, a: _processed("ReplicationGroupId", SU_GROUP, "in-progress")(a)
            and _eventually(lambda: _su_settled(ec) and _action(ec, ReplicationGroupIds=[SU_GROUP])[
                "UpdateActionStatus"] == "complete", "the group's update complete")
            and _versions(ec, *_SU_MEMBERS) == ["8.1.9"] * 3,
            "CacheClusterIds": lambda ec, a: _processed("CacheClusterId", SU_ALONE, "in-progress")(a)
            and _eventually(lambda: _su_settled(ec) and _action(ec, CacheClusterIds=[SU_ALONE])[
                "UpdateActionStatus"] == "complete", "the cluster's update complete")
            and _versions(ec, SU_ALONE) == ["8.1.9"],
        },
    ),
)


@pytest.mark.parametrize(("call", "path"), [
    pytest.param(c, path, id=f"{c.name}:{path}") for c in BATCHES
    for path, _ in members(MODEL.operation_model(c.name).input_shape)])
def test_each_optional_batch_update_member_shows_or_is_refused(updated: dict[str, Any], call: Call, path: str) -> None:
    _call_member(updated["ec"], call, path)


_FUTURE, _PAST = dt.datetime(2099, 1, 1, tzinfo=dt.UTC), dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
UPDATE_DESCRIBES = (
    Describe(
        name="DescribeServiceUpdates", listing="ServiceUpdates", identity=_at("ServiceUpdateName"), base={},
        values={"ServiceUpdateName": UPDATE_81, "ServiceUpdateStatus": ["expired"]},
        matches={"ServiceUpdateName": _field("ServiceUpdateName")},
        # Both updates are available: no other status can be had without removing a build.
        leaves_out=frozenset({"ServiceUpdateStatus"}),
    ),
    Describe(
        name="DescribeUpdateActions", listing="UpdateActions",
        identity=lambda a: (a["ServiceUpdateName"], a.get("ReplicationGroupId"), a.get("CacheClusterId")), base={},
        values={"ServiceUpdateName": UPDATE_91, "ReplicationGroupIds": [SU_GROUP], "CacheClusterIds": [SU_ALONE],
                "Engine": "redis", "ServiceUpdateStatus": ["expired"], "ServiceUpdateTimeRange": {"StartTime": _FUTURE},
                "ServiceUpdateTimeRange.StartTime": _FUTURE, "ServiceUpdateTimeRange.EndTime": _PAST,
                "UpdateActionStatus": ["not-applied"], "ShowNodeLevelUpdateStatus": True},
        matches={"ServiceUpdateName": _field("ServiceUpdateName"),
                 "ReplicationGroupIds": lambda item, v: item.get("ReplicationGroupId") == SU_GROUP,
                 "CacheClusterIds": lambda item, v: item.get("CacheClusterId") == SU_ALONE,
                 "UpdateActionStatus": lambda item, v: item["UpdateActionStatus"] == "not-applied"},
        shown={"ShowNodeLevelUpdateStatus": lambda a: bool(a["UpdateActions"]) and all(
            u.get("NodeGroupUpdateStatus") or u.get("CacheNodeUpdateStatus") for u in a["UpdateActions"])},
        # Both updates are of Valkey, available, released when the server started: these match nothing here.
        leaves_out=frozenset({"Engine", "ServiceUpdateStatus", "ServiceUpdateTimeRange", "ServiceUpdateTimeRange.StartTime",
                              "ServiceUpdateTimeRange.EndTime"}),
    ),
)


@pytest.mark.parametrize(("describe", "path"), [
    pytest.param(d, path, id=f"{d.name}:{path}",
                 marks=[pytest.mark.skip(reason=EXCEPTIONS[(d.name, path)])] if (d.name, path) in EXCEPTIONS else [])
    for d in UPDATE_DESCRIBES for path, _ in members(MODEL.operation_model(d.name).input_shape)])
def test_each_update_describe_member_takes_effect(updated: dict[str, Any], describe: Describe, path: str) -> None:
    test_each_describe_member_takes_effect(updated, describe, path)

# Every operation the sweep covers (the checks above read it when they run, after every table is made).
SWEPT_NAMES: frozenset[str] = frozenset(
    {o.name for o in (*SWEPT, *MODIFIED, *SNAPSHOTS, *DELETIONS, *CALLS, *DESCRIBES, PURCHASE, *RESERVED_DESCRIBES,
                      CREATE_GLOBAL, DESCRIBE_GLOBAL, MODIFY_GLOBAL, *MIGRATION_CALLS, *BATCHES,
                      *UPDATE_DESCRIBES)} | set(REFUSED_WHOLE))


def test_every_case_has_a_resource_id_of_its_own():
    """Two cases with one id would meet each other's resource (AlreadyExists) whenever they run."""
    ids = [_resource_id(case.values[0], case.values[1]) for case in _cases()]
    assert len(ids) == len(set(ids)) and all(len(i) <= 40 for i in ids)
