"""TLS in transit on real engines (Redis OSS 7.0, the build with TLS): the preferred -> required path
of a live group with replication flowing; a cluster mode enabled TLS group whose default user is off
serves cluster clients (redis-py, valkey-glide) through its configuration endpoint, fails over and
reshards; certificates are renewed before they expire without a restart; the CA stays private."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest
import redis
from cryptography import x509
from glide import (
    AdvancedGlideClusterClientConfiguration,
    GlideClusterClient,
    GlideClusterClientConfiguration,
    NodeAddress,
    ServerCredentials,
    TlsAdvancedConfiguration,
)
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from helpers import engine_pids, events_of, wait_for, wait_group

PLAIN, SHOP = "sec-plain", "sec-shop"


def tls(address: str, ca_file: str, port: int = 6379, **kwargs) -> redis.Redis:
    return redis.Redis(host=address, port=port, ssl=True, ssl_ca_certs=ca_file, socket_timeout=5, socket_connect_timeout=3,
                       decode_responses=True, protocol=2, retry=Retry(NoBackoff(), 0), **kwargs)


def plain(address: str, port: int = 6379) -> redis.Redis:
    return redis.Redis(host=address, port=port, socket_timeout=2, socket_connect_timeout=2, decode_responses=True,
                       protocol=2, retry=Retry(NoBackoff(), 0))


def serves_plain(address: str) -> bool:
    try:
        return bool(plain(address).ping())
    except redis.ConnectionError:
        return False


def certificate_serial(address: str, ca_file: str, port: int = 6379) -> int:
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection((address, port), timeout=5) as raw, context.wrap_socket(raw, server_hostname=address) as conn:
        return x509.load_der_x509_certificate(conn.getpeercert(binary_form=True)).serial_number


def test_preferred_then_required_with_replication_flowing(locked_server, lec, ca_file):
    lec.create_replication_group(ReplicationGroupId=PLAIN, ReplicationGroupDescription="tls path", Engine="redis",
                                 CacheNodeType="cache.t4g.micro", NumCacheClusters=2)
    group = wait_group(lec, PLAIN)
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    old_client = plain(endpoint)
    old_client.set("plain", "1")
    assert old_client.wait(1, 5000) == 1

    changing = lec.modify_replication_group(ReplicationGroupId=PLAIN, TransitEncryptionEnabled=True,
                                            TransitEncryptionMode="preferred", ApplyImmediately=True)["ReplicationGroup"]
    assert changing["Status"] == "modifying"
    assert changing["PendingModifiedValues"] == {"TransitEncryptionEnabled": True, "TransitEncryptionMode": "preferred"}
    group = wait_group(lec, PLAIN)
    assert (group["TransitEncryptionEnabled"], group["TransitEncryptionMode"]) == (True, "preferred")
    # Both served: plain text keeps the port, TLS is on the next one (one engine port cannot speak both).
    assert old_client.set("still-plain", "2") and old_client.wait(1, 5000) == 1
    assert plain(endpoint).get("plain") == "1"
    secure = tls(endpoint, ca_file, port=6380)
    assert secure.set("over-tls", "3") and secure.wait(1, 5000) == 1

    lec.modify_replication_group(ReplicationGroupId=PLAIN, TransitEncryptionMode="required", ApplyImmediately=True)
    group = wait_group(lec, PLAIN)
    assert group["TransitEncryptionMode"] == "required"
    for member in group["NodeGroups"][0]["NodeGroupMembers"]:
        assert not serves_plain(member["ReadEndpoint"]["Address"])
    required = tls(endpoint, ca_file)
    assert required.get("over-tls") == "3"
    required.set("required", "4")
    assert required.wait(1, 5000) == 1  # replication flows, over TLS now
    assert any("in-transit encryption required" in m for m in events_of(lec, PLAIN))

    # Back one step, and off: the way out is the way in.
    with pytest.raises(Exception, match="first set TransitEncryptionMode to preferred"):
        lec.modify_replication_group(ReplicationGroupId=PLAIN, TransitEncryptionEnabled=False, ApplyImmediately=True)
    lec.modify_replication_group(ReplicationGroupId=PLAIN, TransitEncryptionMode="preferred", ApplyImmediately=True)
    wait_group(lec, PLAIN)
    lec.modify_replication_group(ReplicationGroupId=PLAIN, TransitEncryptionEnabled=False, ApplyImmediately=True)
    group = wait_group(lec, PLAIN)
    assert group["TransitEncryptionEnabled"] is False and plain(endpoint).get("required") == "4"
    lec.delete_replication_group(ReplicationGroupId=PLAIN)


def test_cluster_mode_tls_group_with_default_off_serves_fails_over_and_reshards(locked_server, lec, ca_file, secret):
    password = secret("shop-app-password-0123456789")
    lec.create_user(UserId="sec-shop-lock", UserName="default", Engine="redis", AccessString="off",
                    NoPasswordRequired=True)
    lec.create_user(UserId="sec-shop-app", UserName="shop", Engine="redis", AccessString="on ~* +@all",
                    Passwords=[password])
    lec.create_user_group(UserGroupId="sec-shop-users", Engine="redis", UserIds=["sec-shop-lock", "sec-shop-app"])
    wait_for(lambda: lec.describe_user_groups(UserGroupId="sec-shop-users")["UserGroups"][0]["Status"] == "active",
             timeout=10, what="user group active")
    lec.create_replication_group(
        ReplicationGroupId=SHOP, ReplicationGroupDescription="shop", Engine="redis", CacheNodeType="cache.t4g.micro",
        NumNodeGroups=2, ReplicasPerNodeGroup=1, TransitEncryptionEnabled=True, UserGroupIds=["sec-shop-users"],
    )
    group = wait_group(lec, SHOP, timeout=90)
    configuration = group["ConfigurationEndpoint"]["Address"]
    assert not serves_plain(configuration)
    # The cluster bus speaks TLS too, with the node's certificate.
    member = group["NodeGroups"][0]["NodeGroupMembers"][0]["ReadEndpoint"]["Address"]
    assert certificate_serial(member, ca_file, port=16379) == certificate_serial(member, ca_file)

    cluster = RedisCluster(startup_nodes=[ClusterNode(configuration, 6379)], ssl=True, ssl_ca_certs=ca_file,
                           username="shop", password=password, socket_timeout=5, decode_responses=True)
    keys = [f"item:{n}" for n in range(200)]
    for n, key in enumerate(keys):
        cluster.set(key, str(n))
    with pytest.raises(redis.exceptions.RedisClusterException, match="authenticated"):
        RedisCluster(startup_nodes=[ClusterNode(configuration, 6379)], ssl=True, ssl_ca_certs=ca_file,
                     socket_timeout=5).ping()  # the default user is off

    async def glide_reads() -> list[bytes | None]:
        config = GlideClusterClientConfiguration(
            [NodeAddress(configuration, 6379)], use_tls=True, request_timeout=3000,
            credentials=ServerCredentials(password=password, username="shop"),
            advanced_config=AdvancedGlideClusterClientConfiguration(
                tls_config=TlsAdvancedConfiguration(root_pem_cacerts=open(ca_file, "rb").read())),
        )
        client = await GlideClusterClient.create(config)
        try:
            return [await client.get(key) for key in keys[::20]]
        finally:
            await client.close()

    assert asyncio.run(glide_reads()) == [str(n).encode() for n in range(0, 200, 20)]

    # A failover of shard 0001, by the control plane, as its own user.
    old_primary = next(m["CacheClusterId"] for m in group["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "primary")
    lec.test_failover(ReplicationGroupId=SHOP, NodeGroupId="0001")
    group = wait_group(lec, SHOP, timeout=90)
    new_primary = next(m["CacheClusterId"] for m in group["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "primary")
    assert new_primary != old_primary
    assert [cluster.get(key) for key in keys] == [str(n) for n in range(200)]

    # Resharding: slots move with their keys (MIGRATE ... AUTH2 between locked TLS nodes).
    lec.modify_replication_group_shard_configuration(ReplicationGroupId=SHOP, NodeGroupCount=3, ApplyImmediately=True)
    group = wait_group(lec, SHOP, timeout=120)
    assert len(group["NodeGroups"]) == 3 and all(ng["Slots"] for ng in group["NodeGroups"])
    fresh = RedisCluster(startup_nodes=[ClusterNode(configuration, 6379)], ssl=True, ssl_ca_certs=ca_file,
                         username="shop", password=password, socket_timeout=5, decode_responses=True)
    assert [fresh.get(key) for key in keys] == [str(n) for n in range(200)]
    new_shard = next(ng for ng in group["NodeGroups"] if ng["NodeGroupId"] == "0003")
    address = next(m["ReadEndpoint"]["Address"] for m in new_shard["NodeGroupMembers"] if m["CurrentRole"] == "primary")
    assert tls(address, ca_file, username="shop", password=password).dbsize() > 0
    with pytest.raises(redis.AuthenticationError):
        tls(address, ca_file).ping()
    lec.delete_replication_group(ReplicationGroupId=SHOP)


def test_certificates_are_renewed_before_they_expire_without_a_restart(locked_server, lec, ca_file):
    """Node certificates live 17 s here: each is renewed, a third before expiry, by a CONFIG SET."""
    lec.create_cache_cluster(CacheClusterId="sec-renew", Engine="redis", CacheNodeType="cache.t4g.micro",
                             TransitEncryptionEnabled=True)
    wait_for(lambda: lec.describe_cache_clusters(CacheClusterId="sec-renew")["CacheClusters"][0]["CacheClusterStatus"]
             == "available", timeout=30, what="sec-renew available")
    address = lec.describe_cache_clusters(CacheClusterId="sec-renew", ShowCacheNodeInfo=True)["CacheClusters"][0][
        "CacheNodes"][0]["Endpoint"]["Address"]
    pid = engine_pids(locked_server.data_dir)[address]
    kept = tls(address, ca_file)
    kept.set("kept", "yes")
    first = certificate_serial(address, ca_file)
    wait_for(lambda: certificate_serial(address, ca_file) != first, timeout=30, interval=0.5, what="a renewed certificate")
    assert kept.get("kept") == "yes"  # a connection made before the renewal keeps working
    assert engine_pids(locked_server.data_dir)[address] == pid  # no restart
    messages = events_of(lec, "sec-renew")
    assert any(m.startswith("Certificate of cache node 0001 of cache cluster sec-renew renewed") for m in messages)
    node_tls = locked_server.data_dir / "nodes" / address / "tls"
    assert len(list(node_tls.glob("node-*.crt"))) == 1  # the older issues are gone
    assert all(key.stat().st_mode & 0o777 == 0o600 for key in node_tls.glob("node-*.key"))
    ca_dir = locked_server.data_dir / "tls"
    assert ca_dir.stat().st_mode & 0o777 == 0o700 and (ca_dir / "ca.key").stat().st_mode & 0o777 == 0o600
    lec.delete_cache_cluster(CacheClusterId="sec-renew")
