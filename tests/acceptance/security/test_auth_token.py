"""AUTH tokens on real engines (Redis OSS 7.0, the build with TLS: ElastiCache's AUTH needs in-transit
encryption): NOAUTH without the token on every node; ROTATE accepts both tokens, SET only the new,
DELETE none; replication keeps flowing across each step (WAIT 1); the group fails over and its
replacement node enforces the token; a standalone cluster with a token; valkey-glide with the CA."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl

import pytest
import redis
from glide import (
    AdvancedGlideClientConfiguration,
    GlideClient,
    GlideClientConfiguration,
    NodeAddress,
    ServerCredentials,
    TlsAdvancedConfiguration,
)
from redis.backoff import NoBackoff
from redis.retry import Retry

from helpers import engine_pids, events_of, wait_for, wait_group

GROUP = "sec-auth"


def tls_client(address: str, ca_file: str, password: str | None = None, port: int = 6379) -> redis.Redis:
    # No retries: redis-py retries a refused AUTH (an AuthenticationError is a ConnectionError) with backoff.
    return redis.Redis(host=address, port=port, ssl=True, ssl_ca_certs=ca_file, password=password, socket_timeout=5,
                       socket_connect_timeout=3, decode_responses=True, protocol=2, retry=Retry(NoBackoff(), 0))


def first_reply(address: str, ca_file: str, command: bytes, port: int = 6379) -> bytes:
    """What a client that never authenticates gets, over TLS."""
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection((address, port), timeout=5) as raw, context.wrap_socket(raw, server_hostname=address) as conn:
        conn.sendall(command + b"\r\n")
        return conn.recv(1024)


def refused(address: str, ca_file: str, password: str) -> bool:
    try:
        tls_client(address, ca_file, password).ping()
    except redis.AuthenticationError:
        return True
    return False


def replicated(client: redis.Redis, key: str) -> None:
    client.set(key, "v")
    assert client.wait(1, 5000) == 1, f"{key} did not reach the replica"


def addresses(group: dict) -> tuple[str, list[str]]:
    node_group = group["NodeGroups"][0]
    return node_group["PrimaryEndpoint"]["Address"], [m["ReadEndpoint"]["Address"] for m in node_group["NodeGroupMembers"]]


def test_auth_token_rotate_set_delete_and_failover(locked_server, lec, ca_file, secret):
    first, second = secret("First-Token-0123456789"), secret("Second-Token-0123456789")
    lec.create_replication_group(
        ReplicationGroupId=GROUP, ReplicationGroupDescription="auth", Engine="redis", CacheNodeType="cache.t4g.micro",
        NumCacheClusters=2, AutomaticFailoverEnabled=True, TransitEncryptionEnabled=True, AuthToken=first,
    )
    group = wait_group(lec, GROUP)
    assert (group["AuthTokenEnabled"], group["TransitEncryptionEnabled"], group["TransitEncryptionMode"]) == (
        True, True, "required")
    created_at = group["AuthTokenLastModifiedDate"]
    assert first not in json.dumps(group, default=str)
    endpoint, nodes = addresses(group)

    # Locked on every node: nothing without the token, nothing in plain text.
    for address in [endpoint, *nodes]:
        assert first_reply(address, ca_file, b"PING").startswith(b"-NOAUTH"), address
        assert refused(address, ca_file, "Wrong-Token-0123456789")
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host=endpoint, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)).ping()
    writer = tls_client(endpoint, ca_file, first)
    replicated(writer, "before-rotate")

    async def glide_with_the_ca() -> bytes | None:
        config = GlideClientConfiguration(
            [NodeAddress(endpoint, 6379)], use_tls=True, request_timeout=3000, credentials=ServerCredentials(password=first),
            advanced_config=AdvancedGlideClientConfiguration(tls_config=TlsAdvancedConfiguration(
                root_pem_cacerts=open(ca_file, "rb").read())),
        )
        client = await GlideClient.create(config)
        try:
            return await client.get("before-rotate")
        finally:
            await client.close()

    assert asyncio.run(glide_with_the_ca()) == b"v"

    # ROTATE: modifying while it reaches the nodes, then the old and the new token are both accepted.
    rotating = lec.modify_replication_group(ReplicationGroupId=GROUP, AuthToken=second, AuthTokenUpdateStrategy="ROTATE",
                                            ApplyImmediately=True)["ReplicationGroup"]
    assert rotating["Status"] == "modifying" and rotating["PendingModifiedValues"]["AuthTokenStatus"] == "ROTATING"
    group = wait_group(lec, GROUP)
    assert group["AuthTokenLastModifiedDate"] > created_at and not group["PendingModifiedValues"]
    for address in nodes:
        assert tls_client(address, ca_file, first).ping() and tls_client(address, ca_file, second).ping()
    replicated(writer, "after-rotate")  # the connection made with the old token keeps working
    replicated(tls_client(endpoint, ca_file, second), "after-rotate-new")

    # SET: only the new token.
    lec.modify_replication_group(ReplicationGroupId=GROUP, AuthToken=second, AuthTokenUpdateStrategy="SET",
                                 ApplyImmediately=True)
    group = wait_group(lec, GROUP)
    for address in nodes:
        assert refused(address, ca_file, first) and tls_client(address, ca_file, second).ping()
    replicated(tls_client(endpoint, ca_file, second), "after-set")

    # The control plane behind the token: kill -9 of the primary, a failover, a replacement that enforces it.
    old_primary = next(m for m in group["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "primary")
    os.kill(engine_pids(locked_server.data_dir)[old_primary["ReadEndpoint"]["Address"]], signal.SIGKILL)

    def writable() -> bool:
        try:
            return bool(tls_client(endpoint, ca_file, second).set("after-failover", "v"))
        except redis.RedisError:
            return False

    wait_for(writable, timeout=30, what="the primary endpoint to take writes again")
    group = wait_group(lec, GROUP, timeout=60)
    assert next(m for m in group["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "primary")[
        "CacheClusterId"] != old_primary["CacheClusterId"]
    replacement = old_primary["ReadEndpoint"]["Address"]
    assert first_reply(replacement, ca_file, b"PING").startswith(b"-NOAUTH")
    assert refused(replacement, ca_file, first)
    assert tls_client(replacement, ca_file, second).get("after-failover") == "v"  # it resynced, over TLS
    replicated(tls_client(endpoint, ca_file, second), "after-recovery")

    # DELETE: no token needed any more (the group keeps TLS).
    lec.modify_replication_group(ReplicationGroupId=GROUP, AuthTokenUpdateStrategy="DELETE", ApplyImmediately=True)
    group = wait_group(lec, GROUP)
    assert group["AuthTokenEnabled"] is False
    for address in nodes:
        assert tls_client(address, ca_file).ping()
    replicated(tls_client(endpoint, ca_file), "after-delete")

    # UserGroupIdsToAdd: the users of a user group replace the open default user on every node.
    app_password = secret("auth-app-password-0123456789")
    lec.create_user(UserId="sec-auth-lock", UserName="default", Engine="redis", AccessString="off",
                    NoPasswordRequired=True)
    lec.create_user(UserId="sec-auth-app", UserName="auth-app", Engine="redis", AccessString="on ~* +@all",
                    Passwords=[app_password])
    lec.create_user_group(UserGroupId="sec-auth-users", Engine="redis", UserIds=["sec-auth-lock", "sec-auth-app"])
    wait_for(lambda: lec.describe_user_groups(UserGroupId="sec-auth-users")["UserGroups"][0]["Status"] == "active",
             timeout=10, what="user group active")
    adding = lec.modify_replication_group(ReplicationGroupId=GROUP, UserGroupIdsToAdd=["sec-auth-users"],
                                          ApplyImmediately=True)["ReplicationGroup"]
    assert adding["PendingModifiedValues"]["UserGroups"] == {"UserGroupIdsToAdd": ["sec-auth-users"],
                                                            "UserGroupIdsToRemove": []}
    group = wait_group(lec, GROUP)
    assert group["UserGroupIds"] == ["sec-auth-users"]
    app = redis.Redis(host=endpoint, ssl=True, ssl_ca_certs=ca_file, username="auth-app", password=app_password,
                      socket_timeout=5, decode_responses=True, protocol=2, retry=Retry(NoBackoff(), 0))
    replicated(app, "after-user-group")
    for address in nodes:
        assert first_reply(address, ca_file, b"PING").startswith(b"-NOAUTH"), address

    messages = events_of(lec, GROUP)
    for expected in ("AUTH token rotated", "AUTH token set: only the new token is accepted", "AUTH token deleted",
                     "Failover from primary node"):
        assert any(expected in m for m in messages), (expected, messages)
    assert not any(first in m or second in m for m in messages)
    lec.delete_replication_group(ReplicationGroupId=GROUP)


def test_a_standalone_cluster_with_an_auth_token(lec, ca_file, secret):
    token = secret("Solo-Token-0123456789ab")
    lec.create_cache_cluster(CacheClusterId="sec-solo", Engine="redis", CacheNodeType="cache.t4g.micro",
                             TransitEncryptionEnabled=True, AuthToken=token)
    wait_for(lambda: lec.describe_cache_clusters(CacheClusterId="sec-solo")["CacheClusters"][0]["CacheClusterStatus"]
             == "available", timeout=30, what="sec-solo available")
    cluster = lec.describe_cache_clusters(CacheClusterId="sec-solo", ShowCacheNodeInfo=True)["CacheClusters"][0]
    assert (cluster["AuthTokenEnabled"], cluster["TransitEncryptionEnabled"], cluster["TransitEncryptionMode"]) == (
        True, True, "required")
    address = cluster["CacheNodes"][0]["Endpoint"]["Address"]
    assert first_reply(address, ca_file, b"PING").startswith(b"-NOAUTH")
    assert tls_client(address, ca_file, token).set("solo", "yes")
    # Kept running: the leak scan (test_zz_no_secret_leaks.py) reads its node's ACL file and config.
