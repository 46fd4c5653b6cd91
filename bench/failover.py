"""Failover time: kill -9 the primary, then measure until the first successful write.

Cluster mode disabled: a write through the PrimaryEndpoint address (a fresh connection per
try, 5 ms apart). Cluster mode enabled: a write of a key of the failed shard through
redis-py's RedisCluster. Each round waits for the group to recover fully (the lost node back
as a synced replica) before the next kill.
Targets (issue 4): disabled: median <= 0.5 s, worst of 50 <= 2 s; enabled: median <= 1 s.
Usage: python bench/failover.py [--rounds 50] [--cluster-rounds 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time

import redis
from common import machine, server, summary
from redis.cluster import RedisCluster


def engine_pids(data_dir) -> dict[str, int]:
    """Node address -> pid of every engine process of the server whose data directory is ``data_dir``."""
    prefix = str((data_dir / "nodes").resolve()) + os.sep
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                argv = open(f"/proc/{entry.name}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            config = argv[1].decode(errors="replace") if len(argv) > 1 else ""
            if config.startswith(prefix) and config.endswith("/engine.conf"):
                found[config[len(prefix):-len("/engine.conf")]] = int(entry.name)
    return found


def engine_pid(data_dir, address: str) -> int:
    pid = engine_pids(data_dir).get(address)
    if pid is None:
        raise LookupError(address)
    return pid


def recovered(ec, group_id: str) -> bool:
    group = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    if group["Status"] != "available":
        return False
    for node_group in group["NodeGroups"]:
        for member in node_group["NodeGroupMembers"]:
            try:
                info = redis.Redis(host=member["ReadEndpoint"]["Address"], socket_timeout=1).info("replication")
            except redis.RedisError:
                return False
            if member["CurrentRole"] == "replica" and info.get("master_link_status") != "up":
                return False
    return True


def wait(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.02)


def primary(group, index: int = 0):
    return next(m for m in group["NodeGroups"][index]["NodeGroupMembers"] if m["CurrentRole"] == "primary")


def time_failovers(ec, running, group_id: str, rounds: int, *, timeout: float = 60.0) -> list[float]:
    """SIGKILL the group's primary ``rounds`` times: seconds from each kill to a write answered
    through the primary endpoint (the group recovers between rounds)."""
    times = []
    for _ in range(rounds):
        group = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
        endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
        pid = engine_pid(running.root / "data", primary(group)["ReadEndpoint"]["Address"])
        started = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        while True:
            try:
                redis.Redis(host=endpoint, socket_timeout=0.5, socket_connect_timeout=0.5).set("after", "kill")
                break
            except redis.RedisError:
                time.sleep(0.005)
        times.append(time.perf_counter() - started)
        wait(lambda: recovered(ec, group_id), timeout=timeout)
    return times


def disabled_mode(running, rounds: int) -> list[float]:
    ec = running.client()
    ec.create_replication_group(ReplicationGroupId="fo", ReplicationGroupDescription="bench", Engine="valkey",
                                CacheNodeType="cache.t4g.micro", NumCacheClusters=3, AutomaticFailoverEnabled=True)
    wait(lambda: recovered(ec, "fo"))
    return time_failovers(ec, running, "fo", rounds)


def kill_until_written(pid: int, client: RedisCluster, key: str) -> float:
    """kill -9 of a shard's primary: seconds until ``client`` writes ``key`` (of that shard) again."""
    started = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    while True:
        try:
            client.set(key, "after")
            return time.perf_counter() - started
        except redis.RedisError:
            time.sleep(0.005)


def enabled_mode(running, rounds: int) -> list[float]:
    ec = running.client()
    ec.create_replication_group(ReplicationGroupId="fos", ReplicationGroupDescription="bench", Engine="valkey",
                                CacheNodeType="cache.t4g.micro", NumNodeGroups=3, ReplicasPerNodeGroup=1)
    wait(lambda: recovered(ec, "fos"))
    group = ec.describe_replication_groups(ReplicationGroupId="fos")["ReplicationGroups"][0]
    endpoint = group["ConfigurationEndpoint"]
    client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], socket_timeout=0.5, socket_connect_timeout=0.5)
    key = next(f"k{i}" for i in range(1000) if client.keyslot(f"k{i}") < 5462)  # a key of shard 0001
    times = []
    for _ in range(rounds):
        group = ec.describe_replication_groups(ReplicationGroupId="fos")["ReplicationGroups"][0]
        client.set(key, "before")
        pid = engine_pid(running.root / "data", primary(group, 0)["ReadEndpoint"]["Address"])
        times.append(kill_until_written(pid, client, key))
        wait(lambda: recovered(ec, "fos"))
    client.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--cluster-rounds", type=int, default=20)
    args = parser.parse_args()
    print(f"kill -9 of the primary, time to the first successful write; {machine()}")
    with server("127.99.0.0/24", extra=["--warm-nodes", "0"]) as running:
        times = disabled_mode(running, args.rounds)
        print(f"  cluster mode disabled, via PrimaryEndpoint: {summary(times)}")
        print(f"    targets: median <= 500 ms: {'met' if statistics.median(times) <= 0.5 else 'NOT met'}; "
              f"worst <= 2 s: {'met' if max(times) <= 2 else 'NOT met'}")
        times = enabled_mode(running, args.cluster_rounds)
        print(f"  cluster mode enabled, via RedisCluster: {summary(times)}")
        print(f"    target: median <= 1 s: {'met' if statistics.median(times) <= 1 else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
