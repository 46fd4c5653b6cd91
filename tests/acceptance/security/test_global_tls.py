"""A global datastore whose primary has TLS and an AUTH token (Redis OSS 7.0, the build with TLS):
the secondary takes the primary's in-transit and at-rest encryption (a request that asks otherwise
is refused), keeps its own AUTH token, replicates across regions over TLS, and after a planned
global failover the old primary follows the new one over TLS as well."""

from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from helpers import expect, replicates_read_only, wait_for, wait_group, wait_group_gone, wait_writable

SETTINGS = {"Engine": "redis", "CacheNodeType": "cache.r6g.large"}


def tls(address: str, ca_file: str, password: str) -> redis.Redis:
    return redis.Redis(host=address, port=6379, ssl=True, ssl_ca_certs=ca_file, password=password, socket_timeout=5,
                       socket_connect_timeout=3, decode_responses=True, protocol=2, retry=Retry(NoBackoff(), 0))


def endpoint(ec, group_id: str) -> str:
    group = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    return str(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"])


def roles(ec, global_id: str) -> dict[str, str]:
    record = ec.describe_global_replication_groups(GlobalReplicationGroupId=global_id, ShowMemberInfo=True)
    return {m["ReplicationGroupRegion"]: m["Role"] for m in record["GlobalReplicationGroups"][0]["Members"]}


@pytest.mark.timeout(120)
def test_a_tls_global_datastore_replicates_over_tls_both_ways(locked_server, ca_file, secret):
    east, west = locked_server.client(region="us-east-1"), locked_server.client(region="us-west-2")
    east_token, west_token = secret("east-token-0123456789"), secret("west-token-0123456789")
    east.create_replication_group(
        ReplicationGroupId="gtls-east", ReplicationGroupDescription="tls primary", NumCacheClusters=2,
        AutomaticFailoverEnabled=True, TransitEncryptionEnabled=True, AuthToken=east_token,
        AtRestEncryptionEnabled=True, **SETTINGS)
    wait_group(east, "gtls-east")
    global_id = east.create_global_replication_group(
        GlobalReplicationGroupIdSuffix="tls", PrimaryReplicationGroupId="gtls-east",
    )["GlobalReplicationGroup"]["GlobalReplicationGroupId"]

    # The secondary cannot ask for other encryption than the primary's...
    for member, value in (("TransitEncryptionEnabled", False), ("AtRestEncryptionEnabled", False),
                          ("TransitEncryptionMode", "preferred")):
        extra = {"TransitEncryptionEnabled": True} if member == "TransitEncryptionMode" else {}
        expect("InvalidParameterCombination", west.create_replication_group,
               says=f"a secondary replication group takes it from the primary: omit {member}",
               ReplicationGroupId="gtls-west", ReplicationGroupDescription="x", GlobalReplicationGroupId=global_id,
               NumCacheClusters=2, **{member: value, **extra})
    expect("ReplicationGroupNotFoundFault", west.describe_replication_groups, ReplicationGroupId="gtls-west")
    # ... and takes it when it says nothing (as Terraform sends it: transit_encryption_enabled conflicts
    # with global_replication_group_id there); its AUTH token is its own.
    west.create_replication_group(
        ReplicationGroupId="gtls-west", ReplicationGroupDescription="tls secondary", GlobalReplicationGroupId=global_id,
        NumCacheClusters=2, AuthToken=west_token)
    secondary = wait_group(west, "gtls-west", timeout=60)
    assert secondary["TransitEncryptionEnabled"] is True and secondary["TransitEncryptionMode"] == "required"
    assert secondary["AtRestEncryptionEnabled"] is True and secondary["AuthTokenEnabled"] is True
    record = east.describe_global_replication_groups(GlobalReplicationGroupId=global_id)["GlobalReplicationGroups"][0]
    assert record["TransitEncryptionEnabled"] is True and record["AuthTokenEnabled"] is True

    east_client = tls(endpoint(east, "gtls-east"), ca_file, east_token)
    west_client = tls(endpoint(west, "gtls-west"), ca_file, west_token)
    with pytest.raises(redis.AuthenticationError):
        tls(endpoint(west, "gtls-west"), ca_file, east_token).ping()  # each region's clients have their own token
    replicates_read_only(east_client, west_client, "greeting", "over tls")
    expect("InvalidParameterCombination", west.modify_replication_group, says="cannot change here",
           ReplicationGroupId="gtls-west", TransitEncryptionEnabled=True, TransitEncryptionMode="preferred",
           ApplyImmediately=True)

    # A planned global failover: the old primary now follows the new one, over TLS too.
    east.failover_global_replication_group(
        GlobalReplicationGroupId=global_id, PrimaryRegion="us-west-2", PrimaryReplicationGroupId="gtls-west")
    wait_for(lambda: roles(east, global_id) == {"us-east-1": "SECONDARY", "us-west-2": "PRIMARY"}, timeout=20,
             what="the roles to swap")
    assert west_client.get("greeting") == "over tls"

    wait_writable(west_client, what="the new primary region to take writes")
    west_client.set("greeting", "from the west")
    wait_for(lambda: east_client.get("greeting") == "from the west", timeout=5, what="the write back in us-east-1")
    with pytest.raises(redis.ReadOnlyError):
        east_client.set("greeting", "from the east")

    # Disassociated, the old primary region's group is a primary of its own again. Then tidy: the
    # package's other tests share this server.
    east.disassociate_global_replication_group(
        GlobalReplicationGroupId=global_id, ReplicationGroupId="gtls-east", ReplicationGroupRegion="us-east-1")

    wait_writable(east_client, what="gtls-east writable on its own")
    wait_group(east, "gtls-east")
    east.delete_global_replication_group(GlobalReplicationGroupId=global_id, RetainPrimaryReplicationGroup=False)
    east.delete_replication_group(ReplicationGroupId="gtls-east")
    wait_group_gone(east, "gtls-east")
    wait_group_gone(west, "gtls-west")
