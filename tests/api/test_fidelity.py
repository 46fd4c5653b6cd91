"""What a tool written against ElastiCache expects beyond the operation list: Memcached refused
as such, ARNs in the configured account, ElastiCache's wording of its errors."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cachefleet.domain import errors
from helpers import CACHEFLEET, ROOT, expect, free_port, fresh_network, wait_for, wait_group, wait_group_gone

MEMCACHED = "Cachefleet serves Valkey and Redis OSS only"


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        # Everything else of each call is wrong too: the memcached refusal comes before any other check.
        ("create_cache_cluster", {"CacheClusterId": "fid-m", "Engine": "memcached", "NumCacheNodes": 3, "AZMode": "cross-az"}),
        ("create_replication_group", {"ReplicationGroupId": "fid-m", "ReplicationGroupDescription": "m", "Engine": "memcached",
                                      "NumCacheClusters": 9}),
        ("create_cache_parameter_group", {"CacheParameterGroupName": "fid-m", "CacheParameterGroupFamily": "memcached1.6",
                                          "Description": "m"}),
        ("describe_engine_default_parameters", {"CacheParameterGroupFamily": "memcached1.6"}),
        ("create_serverless_cache", {"ServerlessCacheName": "fid-m", "Engine": "Memcached", "MajorEngineVersion": "x"}),
        ("modify_replication_group", {"ReplicationGroupId": "fid-none", "Engine": "memcached"}),
        ("modify_cache_cluster", {"CacheClusterId": "fid-none", "Engine": "memcached", "NumCacheNodes": 2}),
        ("create_user", {"UserId": "fid-m", "UserName": "fid-m", "Engine": "memcached", "AccessString": "on"}),
    ],
)
def test_memcached_is_refused_first_everywhere_an_engine_is_taken(ec: Any, operation: str, params: dict[str, Any]) -> None:
    expect("InvalidParameterValue", getattr(ec, operation), says=MEMCACHED, **params)


def test_memcached_engine_versions_are_an_empty_list(ec: Any) -> None:
    # A filter, not a request for memcached: an engine with no versions here lists none, as a tool
    # enumerating the engines expects.
    assert ec.describe_cache_engine_versions(Engine="memcached")["CacheEngineVersions"] == []
    assert ec.describe_cache_engine_versions(CacheParameterGroupFamily="memcached1.6")["CacheEngineVersions"] == []


# ---------------------------------------------------------------------- ElastiCache's wordings
def _client_error(call: Callable[..., Any], **kwargs: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return dict(caught.value.response["Error"])


def refused_while_modifying(ec: Any, group_id: str, *, attempts: int = 5) -> list[dict[str, str]]:
    """A ModifyReplicationGroup sent while the group is modifying (a replica being added), replayed
    as terraform-provider-aws sends it: retried while refused with ``InvalidReplicationGroupState``
    and a message Terraform's retry matches (TERRAFORM_RETRY), until it goes through. The refusals
    seen; the scenario is repeated (up to ``attempts``) until the second call lands in the window."""
    for attempt in range(1, attempts + 1):
        replicas = len(wait_group(ec, group_id)["MemberClusters"]) - 1
        # A replica added (or, once there is one, removed) keeps the group modifying for a while.
        change = ec.increase_replica_count if replicas == 0 else ec.decrease_replica_count
        change(ReplicationGroupId=group_id, NewReplicaCount=1 - min(replicas, 1), ApplyImmediately=True)
        refusals: list[dict[str, str]] = []
        deadline = time.monotonic() + 30
        while True:
            try:
                ec.modify_replication_group(ReplicationGroupId=group_id, ReplicationGroupDescription=f"try {attempt}",
                                            ApplyImmediately=True)
                break
            except ClientError as error:
                found = dict(error.response["Error"])
                if found["Code"] != "InvalidReplicationGroupState" or not TERRAFORM_RETRY.search(found["Message"]):
                    raise  # Terraform would give up here: the apply fails
                refusals.append(found)
                assert time.monotonic() < deadline, refusals
                time.sleep(0.05)
        if refusals:
            return refusals
    raise AssertionError(f"{group_id} never refused a modification while modifying")


# tfresource.RetryWhenIsAErrorMessageContains(InvalidReplicationGroupStateFault, "not in available state")
TERRAFORM_RETRY = re.compile("not in available state")


@pytest.fixture(scope="module")
def worded(server: Any) -> Iterator[dict[str, Any]]:
    """What the catalogue's refusals need: a cache cluster, a subnet group, a user, a group."""
    ec = server.client()
    ec.create_cache_cluster(CacheClusterId="fid-c1", Engine="valkey", CacheNodeType="cache.t4g.micro")
    ec.create_cache_subnet_group(CacheSubnetGroupName="fid-sn", CacheSubnetGroupDescription="d",
                                 SubnetIds=["subnet-us-east-1a"])
    ec.create_user(UserId="fid-u1", UserName="fid-u1", Engine="valkey", AccessString="on ~* +@all",
                   NoPasswordRequired=True)
    ec.create_replication_group(ReplicationGroupId="fid-rg", ReplicationGroupDescription="d", Engine="valkey",
                                CacheNodeType="cache.t4g.micro")
    # DeleteCacheCluster's refusals: a group of one node (fid-rg changes size), a primary with one replica.
    ec.create_replication_group(ReplicationGroupId="fid-one", ReplicationGroupDescription="d", Engine="valkey",
                                CacheNodeType="cache.t4g.micro")
    ec.create_replication_group(ReplicationGroupId="fid-pair", ReplicationGroupDescription="d", Engine="valkey",
                                CacheNodeType="cache.t4g.micro", NumCacheClusters=2, AutomaticFailoverEnabled=True)
    yield {"ec": ec}
    for group_id in ("fid-one", "fid-pair"):
        wait_group(ec, group_id)
        ec.delete_replication_group(ReplicationGroupId=group_id)
    ec.delete_replication_group(ReplicationGroupId="fid-rg")
    ec.delete_cache_cluster(CacheClusterId="fid-c1")
    for group_id in ("fid-rg", "fid-one", "fid-pair"):
        wait_group_gone(ec, group_id)
    wait_for(lambda: not [c for c in ec.describe_cache_clusters()["CacheClusters"] if c["CacheClusterId"] == "fid-c1"],
             what="fid-c1 deleted")
    ec.delete_cache_subnet_group(CacheSubnetGroupName="fid-sn")
    ec.delete_user(UserId="fid-u1")


def _delete_member(ec: Any, group_id: str, cluster_id: str) -> dict[str, str]:
    wait_group(ec, group_id)
    return _client_error(ec.delete_cache_cluster, CacheClusterId=cluster_id)


def _trigger(wording: errors.Wording, ec: Any) -> tuple[dict[str, str], dict[str, str]]:
    """The error Cachefleet answers where ElastiCache answers ``wording``, and the wording's values."""
    user = {"UserId": "fid-u2", "UserName": "fid-u2", "Engine": "valkey", "AccessString": "on"}
    triggers: dict[errors.Wording, tuple[Callable[[], dict[str, str]], dict[str, str]]] = {
        errors.CACHE_NODE_TYPE_REQUIRED: (
            lambda: _client_error(ec.create_cache_cluster, CacheClusterId="fid-x", Engine="valkey"), {}),
        errors.CACHE_CLUSTER_NOT_FOUND: (
            lambda: _client_error(ec.describe_cache_clusters, CacheClusterId="fid-nope"), {"id": "fid-nope"}),
        errors.CACHE_CLUSTER_ALREADY_EXISTS: (
            lambda: _client_error(ec.create_cache_cluster, CacheClusterId="fid-c1", Engine="valkey",
                                  CacheNodeType="cache.t4g.micro"), {"id": "fid-c1"}),
        errors.CACHE_SUBNET_GROUP_NOT_FOUND: (
            lambda: _client_error(ec.describe_cache_subnet_groups, CacheSubnetGroupName="fid-nope"), {"name": "fid-nope"}),
        errors.CACHE_SUBNET_GROUP_ALREADY_EXISTS: (
            lambda: _client_error(ec.create_cache_subnet_group, CacheSubnetGroupName="fid-sn",
                                  CacheSubnetGroupDescription="d", SubnetIds=["subnet-us-east-1a"]), {"name": "fid-sn"}),
        errors.REPLICATION_GROUP_NOT_FOUND: (
            lambda: _client_error(ec.describe_replication_groups, ReplicationGroupId="fid-nope"), {"id": "fid-nope"}),
        errors.REPLICATION_GROUP_NOT_AVAILABLE: (lambda: refused_while_modifying(ec, "fid-rg")[0], {"id": "fid-rg"}),
        errors.USER_NOT_FOUND: (lambda: _client_error(ec.describe_users, UserId="fid-nope"), {"id": "fid-nope"}),
        errors.USER_ALREADY_EXISTS: (
            lambda: _client_error(ec.create_user, **{**user, "UserId": "fid-u1", "NoPasswordRequired": True}),
            {"id": "fid-u1"}),
        errors.PASSWORD_LENGTH: (lambda: _client_error(ec.create_user, **user, Passwords=["short"]), {}),
        errors.NO_PASSWORD: (lambda: _client_error(ec.create_user, **user), {}),
        errors.AUTHENTICATION_TYPE: (
            lambda: _client_error(ec.create_user, **user, AuthenticationMode={"Passwords": ["a-password-0123456789"]}),
            {"type": "null"}),
        errors.ARN_COMPONENTS: (
            lambda: _client_error(ec.list_tags_for_resource, ResourceName="arn:aws:elasticache:us-east-1:cluster:x"), {}),
        errors.CACHE_CLUSTER_SERVING_AS_PRIMARY: (
            lambda: _delete_member(ec, "fid-pair", "fid-pair-001"), {"id": "fid-pair-001", "group": "fid-pair"}),
        errors.CACHE_CLUSTER_ONLY_MEMBER: (lambda: _delete_member(ec, "fid-one", "fid-one-001"), {}),
        errors.CACHE_CLUSTER_ONLY_READ_REPLICA: (
            lambda: _delete_member(ec, "fid-pair", "fid-pair-002"), {"group": "fid-pair"}),
    }
    assert set(triggers) == set(errors.CATALOGUE), "every catalogue entry needs its trigger here"
    call, values = triggers[wording]
    return call(), values


@pytest.mark.parametrize("wording", errors.CATALOGUE, ids=lambda w: w.code + ":" + w.template[:30])
def test_each_known_wording_starts_the_message_cachefleet_answers(worded: dict[str, Any], wording: errors.Wording) -> None:
    error, values = _trigger(wording, worded["ec"])
    assert error["Code"] == wording.code, error
    assert error["Message"].startswith(wording.text(**values)), (wording.source, error["Message"])


def test_terraform_retries_a_modification_while_the_group_is_modifying(worded: dict[str, Any]) -> None:
    ec = worded["ec"]
    refusals = refused_while_modifying(ec, "fid-rg")
    assert all(r["Message"].startswith("Replication group fid-rg is not in available state.") for r in refusals)
    group = wait_group(ec, "fid-rg")
    assert group["Description"].startswith("try "), group["Description"]  # the retried call went through


# ---------------------------------------------------------------------- the account in ARNs
ACCOUNT = "111122223333"


def test_arns_name_the_configured_account_and_resolve(make_server: Any) -> None:
    server = make_server("--account-id", ACCOUNT)
    ec = server.client()
    made = ec.create_cache_subnet_group(CacheSubnetGroupName="acct-sn", CacheSubnetGroupDescription="d",
                                        SubnetIds=["subnet-us-east-1a"], Tags=[{"Key": "k", "Value": "v"}])
    arn = f"arn:aws:elasticache:us-east-1:{ACCOUNT}:subnetgroup:acct-sn"
    assert made["CacheSubnetGroup"]["ARN"] == arn
    assert ec.list_tags_for_resource(ResourceName=arn)["TagList"] == [{"Key": "k", "Value": "v"}]
    ec.create_user_group(UserGroupId="acct-ug", Engine="redis", UserIds=["default"])
    user_group_arn = f"arn:aws:elasticache:us-east-1:{ACCOUNT}:usergroup:acct-ug"
    assert ec.describe_user_groups(UserGroupId="acct-ug")["UserGroups"][0]["ARN"] == user_group_arn
    ec.add_tags_to_resource(ResourceName=user_group_arn, Tags=[{"Key": "team", "Value": "a"}])
    assert ec.list_tags_for_resource(ResourceName=user_group_arn)["TagList"] == [{"Key": "team", "Value": "a"}]
    made_sg = ec.create_cache_security_group(CacheSecurityGroupName="acct-sg", Description="d")["CacheSecurityGroup"]
    assert made_sg["OwnerId"] == ACCOUNT and made_sg["ARN"].split(":")[4] == ACCOUNT
    # Another account's ARN names nothing this account can see: ElastiCache answers NotFound.
    other = arn.replace(ACCOUNT, "000000000000")
    expect("CacheSubnetGroupNotFoundFault", ec.list_tags_for_resource, says="CacheSubnetGroup acct-sn not found.",
           ResourceName=other)
    expect("UserGroupNotFound", ec.add_tags_to_resource, ResourceName=user_group_arn.replace(ACCOUNT, "000000000000"),
           Tags=[{"Key": "x", "Value": "y"}])
    expect("SnapshotNotFoundFault", ec.create_serverless_cache, says="account", ServerlessCacheName="acct-sl",
           Engine="valkey", SnapshotArnsToRestore=["arn:aws:elasticache:us-east-1:000000000000:snapshot:s1"])
    expect("InvalidARN", ec.list_tags_for_resource, says="12 digits",
           ResourceName="arn:aws:elasticache:us-east-1:1234:subnetgroup:acct-sn")


def test_an_account_id_that_is_not_12_digits_stops_start_up(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CACHEFLEET, "up", "--data-dir", str(tmp_path / "data"), "--listen", f"127.0.0.1:{free_port()}",
         "--node-network", fresh_network(), "--account-id", "1234"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert done.returncode != 0
    assert "--account-id: '1234' is not an AWS account id: use 12 digits" in done.stderr, done.stderr


def test_outposts_placement_is_refused_not_dropped(ec: Any) -> None:
    # Checked before the group is looked up: the refusal names the member wherever it is sent.
    expect("InvalidParameterCombination", ec.increase_replica_count, says="PreferredOutpostArns",
           ReplicationGroupId="fid-none", ApplyImmediately=True,
           ReplicaConfiguration=[{"NodeGroupId": "0001", "NewReplicaCount": 1,
                                  "PreferredOutpostArns": ["arn:aws:outposts:us-east-1:000000000000:outpost/op-1"]}])
    expect("InvalidParameterCombination", ec.create_replication_group, says="PrimaryOutpostArn",
           ReplicationGroupId="fid-out", ReplicationGroupDescription="d", Engine="valkey", CacheNodeType="cache.t4g.micro",
           ClusterMode="enabled", NumNodeGroups=1,
           NodeGroupConfiguration=[{"PrimaryOutpostArn": "arn:aws:outposts:us-east-1:000000000000:outpost/op-1"}])
