"""RBAC on real engines (Valkey 8.1): users of a user group as ACL users on every node, the default
user locked out; a change of a user or of the group's membership reaches every node within a second;
new and replacement nodes start with the users; the control plane keeps monitoring and failing over
a group whose ``default`` is off."""

from __future__ import annotations

import os
import signal
import time
import urllib.request

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from helpers import engine_pids, events_of, wait_for, wait_group

GROUP = "sec-rbac"


def client(address: str, user: str | None = None, password: str | None = None) -> redis.Redis:
    return redis.Redis(host=address, username=user, password=password, socket_timeout=5, socket_connect_timeout=3,
                       decode_responses=True, protocol=2, retry=Retry(NoBackoff(), 0))


def error_of(call, *args) -> str:
    try:
        call(*args)
    except redis.RedisError as error:
        return f"{type(error).__name__}: {error}"
    return "no error"


def within_a_second(condition, what: str) -> float:
    """How long until ``condition`` holds; fails if that is more than a second."""
    started = time.monotonic()
    wait_for(condition, timeout=1.0, interval=0.01, what=what)
    return time.monotonic() - started


def raw_noauth(address: str) -> bytes:
    import socket

    with socket.create_connection((address, 6379), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(1024)


def test_users_of_a_user_group_on_every_node(locked_server, lec, secret):
    app_password, writer_password = secret("app-password-0123456789"), secret("writer-password-0123456789")
    lec.create_user(UserId="sec-lock", UserName="default", Engine="valkey", AccessString="off",
                    Passwords=[secret("never-used-default-password")])
    lec.create_user(UserId="sec-app", UserName="app", Engine="valkey", AccessString="on ~app:* +get",
                    Passwords=[app_password])
    lec.create_user(UserId="sec-writer", UserName="writer", Engine="valkey", AccessString="on ~* +@all",
                    Passwords=[writer_password])
    lec.create_user_group(UserGroupId="sec-users", Engine="valkey", UserIds=["sec-lock", "sec-app", "sec-writer"])
    wait_for(lambda: lec.describe_user_groups(UserGroupId="sec-users")["UserGroups"][0]["Status"] == "active",
             timeout=10, what="user group active")
    lec.create_replication_group(
        ReplicationGroupId=GROUP, ReplicationGroupDescription="rbac", Engine="valkey", EngineVersion="8.1",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=2, AutomaticFailoverEnabled=True, UserGroupIds=["sec-users"],
    )
    group = wait_group(lec, GROUP)
    assert group["UserGroupIds"] == ["sec-users"] and group["AuthTokenEnabled"] is False
    assert lec.describe_user_groups(UserGroupId="sec-users")["UserGroups"][0]["ReplicationGroups"] == [GROUP]
    node_group = group["NodeGroups"][0]
    endpoint = node_group["PrimaryEndpoint"]["Address"]
    nodes = [m["ReadEndpoint"]["Address"] for m in node_group["NodeGroupMembers"]]

    writer = client(endpoint, "writer", writer_password)
    writer.set("app:1", "one")
    writer.set("other:1", "two")
    assert writer.wait(1, 5000) == 1
    for address in nodes:
        assert raw_noauth(address).startswith(b"-NOAUTH"), address
        app = client(address, "app", app_password)
        assert app.get("app:1") == "one"
        assert "NoPermissionError" in error_of(app.set, "app:1", "x")
        assert "NoPermissionError" in error_of(app.get, "other:1")
        assert "AuthenticationError" in error_of(client(address, "app", "wrong-password-0123456789").ping)

    # A ModifyUser reaches every node within a second.
    lec.modify_user(UserId="sec-app", AccessString="on ~app:* +get +set")
    took = within_a_second(lambda: all(error_of(client(a, "app", app_password).set, "app:2", "y") == "no error"
                                       for a in [endpoint]), "app may SET")
    wait_for(lambda: lec.describe_users(UserId="sec-app")["Users"][0]["Status"] == "active", timeout=5, what="active")
    assert took < 1.0

    # So does a change of the group's membership: the writer is gone from every node (and its connections).
    lec.modify_user_group(UserGroupId="sec-users", UserIdsToRemove=["sec-writer"])
    within_a_second(lambda: all("AuthenticationError" in error_of(client(a, "writer", writer_password).ping)
                                for a in nodes), "writer refused")
    assert "Error" in error_of(writer.ping)
    wait_for(lambda: lec.describe_user_groups(UserGroupId="sec-users")["UserGroups"][0]["Status"] == "active",
             timeout=5, what="user group active")

    # A new replica starts with the users.
    lec.increase_replica_count(ReplicationGroupId=GROUP, NewReplicaCount=2, ApplyImmediately=True)
    group = wait_group(lec, GROUP, timeout=60)
    members = group["NodeGroups"][0]["NodeGroupMembers"]
    added = next(m["ReadEndpoint"]["Address"] for m in members if m["ReadEndpoint"]["Address"] not in nodes)
    assert raw_noauth(added).startswith(b"-NOAUTH")
    assert client(added, "app", app_password).get("app:1") == "one"

    # The control plane is not blinded by default being off: it samples the nodes every second...
    def sampled_now() -> bool:
        with urllib.request.urlopen(f"{locked_server.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        stamps = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith("elasticache_sample_timestamp_seconds{") and f'replication_group="{GROUP}"' in line]
        return len(stamps) == 3 and min(stamps) > time.time() - 5

    wait_for(sampled_now, timeout=10, what="every node of the group sampled in the last 5 s")
    # ... and fails it over: kill -9 of the primary; the replacement node enforces the same users.
    old = next(m for m in members if m["CurrentRole"] == "primary")
    os.kill(engine_pids(locked_server.data_dir)[old["ReadEndpoint"]["Address"]], signal.SIGKILL)
    wait_for(lambda: error_of(client(endpoint, "app", app_password).set, "app:3", "z") == "no error", timeout=30,
             what="writes through the primary endpoint again")
    wait_for(lambda: (g := lec.describe_replication_groups(ReplicationGroupId=GROUP)["ReplicationGroups"][0])["Status"]
             == "available" and all(
                 lec.describe_cache_clusters(CacheClusterId=m)["CacheClusters"][0]["CacheClusterStatus"] == "available"
                 for m in g["MemberClusters"]), timeout=60, what="the group whole again")
    replacement = old["ReadEndpoint"]["Address"]
    assert raw_noauth(replacement).startswith(b"-NOAUTH")
    recovered = client(replacement, "app", app_password)
    assert recovered.get("app:3") == "z" and "NoPermissionError" in error_of(recovered.get, "other:1")
    assert "AuthenticationError" in error_of(client(replacement, "writer", writer_password).ping)
    assert any("Failover from primary node" in m for m in events_of(lec, GROUP))

    # From RBAC to no user group: the default user is the engine's open one again.
    lec.modify_replication_group(ReplicationGroupId=GROUP, UserGroupIdsToRemove=["sec-users"], ApplyImmediately=True)
    wait_group(lec, GROUP)
    assert client(endpoint).ping() and "AuthenticationError" in error_of(client(endpoint, "app", app_password).ping)
    lec.delete_replication_group(ReplicationGroupId=GROUP)


@pytest.mark.parametrize("user_id", ["sec-app", "sec-writer", "sec-lock"])
def test_users_are_deleted_once_nothing_uses_them(lec, user_id):
    if user_id == "sec-lock":
        wait_for(lambda: GROUP not in {g["ReplicationGroupId"] for g in lec.describe_replication_groups()
                                       ["ReplicationGroups"]} or not lec.describe_user_groups(UserGroupId="sec-users")
                 ["UserGroups"][0]["ReplicationGroups"], timeout=30, what="the user group unused")
        lec.delete_user_group(UserGroupId="sec-users")
        wait_for(lambda: "sec-users" not in {g["UserGroupId"] for g in lec.describe_user_groups()["UserGroups"]},
                 timeout=10, what="user group gone")
    lec.delete_user(UserId=user_id)
    wait_for(lambda: user_id not in {u["UserId"] for u in lec.describe_users()["Users"]}, timeout=10, what="user gone")
