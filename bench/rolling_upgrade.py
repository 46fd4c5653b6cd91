"""Rolling engine upgrade of a 3-node group: total time, and the longest write-error streak through
the PrimaryEndpoint.

Each round creates a 3-node group (a primary and two replicas, automatic failover) on Redis OSS 7.0
holding --keys keys, then upgrades it to Valkey 8.1 and then to Valkey 9.1 (ApplyImmediately), while
a writer SETs through the PrimaryEndpoint address in a tight loop (no retries inside the client, a
fresh connection after an error, 1 ms apart). Per upgrade: the time from the API call to the group
`available` with every node on the new build; the longest error streak (first failed write to the
next successful one); and the longest gap between two successful writes (the streak plus the
planned failover's pause of writes while a replica catches up). Goal (issue 11): longest streak
<= 100 ms, as for a planned failover.
Usage: python bench/rolling_upgrade.py [--rounds 5] [--keys 10000]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import redis
from common import machine, server, summary
from redis.backoff import NoBackoff
from redis.retry import Retry

STEPS = (("valkey", "8.1"), ("valkey", "9.1"))


class Writer:
    """SETs through one address; records error streaks and the gaps between successful writes."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.streaks: list[float] = []
        self.gaps: list[float] = []
        self.writes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _client(self) -> redis.Redis:
        return redis.Redis(host=self.address, socket_timeout=2, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))

    def _run(self) -> None:
        client = self._client()
        last_ok = time.perf_counter()
        failing_since: float | None = None
        while not self._stop.is_set():
            try:
                client.set(f"w:{self.writes % 1000}", self.writes)
                now = time.perf_counter()
                self.gaps.append(now - last_ok)
                last_ok = now
                if failing_since is not None:
                    self.streaks.append(now - failing_since)
                    failing_since = None
                self.writes += 1
            except redis.RedisError:
                if failing_since is None:
                    failing_since = time.perf_counter()
                client = self._client()
            time.sleep(0.001)

    def mark(self) -> tuple[int, int]:
        return len(self.streaks), len(self.gaps)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def status(ec, group_id: str) -> str:
    return str(ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]["Status"])


def on_version(ec, group_id: str, version: str) -> bool:
    clusters = ec.describe_cache_clusters()["CacheClusters"]
    ours = [c for c in clusters if c.get("ReplicationGroupId") == group_id]
    return len(ours) == 3 and all(c["EngineVersion"].startswith(version + ".") for c in ours)


def wait(predicate, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keys", type=int, default=10000)
    args = parser.parse_args()
    print(f"rolling upgrade of a 3-node group (Redis OSS 7.0 -> Valkey 8.1 -> Valkey 9.1), {args.keys} keys of "
          f"100 bytes, a writer through the PrimaryEndpoint; {machine()}")
    results: dict[str, dict[str, list[float]]] = {f"{e} {v}": {"total": [], "streak": [], "gap": []} for e, v in STEPS}
    with server("127.98.0.0/24", extra=["--warm-nodes", "0"]) as running:
        ec = running.client()
        for round_number in range(args.rounds):
            group_id = f"roll{round_number}"
            ec.create_replication_group(ReplicationGroupId=group_id, ReplicationGroupDescription="bench", Engine="redis",
                                        CacheNodeType="cache.t4g.micro", NumCacheClusters=3, AutomaticFailoverEnabled=True)
            wait(lambda group_id=group_id: status(ec, group_id) == "available")
            group = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
            endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
            loader = redis.Redis(host=endpoint)
            pipe = loader.pipeline(transaction=False)
            for i in range(args.keys):
                pipe.set(f"k:{i}", "x" * 100)
            pipe.execute()
            with Writer(endpoint) as writer:
                time.sleep(0.2)
                for engine, version in STEPS:
                    streaks_before, gaps_before = writer.mark()
                    started = time.perf_counter()
                    ec.modify_replication_group(ReplicationGroupId=group_id, Engine=engine, EngineVersion=version,
                                                ApplyImmediately=True)
                    wait(lambda group_id=group_id, version=version: status(ec, group_id) == "available"
                         and on_version(ec, group_id, version))
                    total = time.perf_counter() - started
                    time.sleep(0.2)
                    key = f"{engine} {version}"
                    results[key]["total"].append(total)
                    results[key]["streak"].append(max(writer.streaks[streaks_before:], default=0.0))
                    results[key]["gap"].append(max(writer.gaps[gaps_before:], default=0.0))
            assert redis.Redis(host=endpoint).dbsize() >= args.keys
            ec.delete_replication_group(ReplicationGroupId=group_id)
            wait(lambda group_id=group_id: group_id not in {
                g["ReplicationGroupId"] for g in ec.describe_replication_groups()["ReplicationGroups"]})
    for key, figures in results.items():
        print(f"  to {key}: total {summary(figures['total'], 's', 1.0)}")
        print(f"    longest error streak per upgrade: {summary(figures['streak'])}")
        print(f"    longest gap between successful writes: {summary(figures['gap'])}")
    worst = max(s for figures in results.values() for s in figures["streak"])
    print(f"  goal: longest streak <= 100 ms: {'met' if worst <= 0.1 else 'NOT met'} (worst {worst * 1000:.1f} ms)")


if __name__ == "__main__":
    sys.exit(main())
