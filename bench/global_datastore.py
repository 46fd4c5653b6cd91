"""Global datastores: cross-region replication lag under load, and the planned global failover.

One server serves both regions: a us-east-1 primary group and a us-west-2 secondary (two nodes
each, Valkey). Two measurements, in rounds; the medians of the rounds are what BENCHMARKS.md quotes.

(a) Lag: redis-benchmark runs a SET load on us-east-1's primary endpoint while a marker writer
    SETs a timestamp there and polls us-west-2's primary endpoint until it reads it back; the
    time from the SET's reply to the first read that sees it is one lag sample.
    Target (issue 14): p99 <= 10 ms on loopback (ElastiCache: typically under a second).
(b) Failover: a writer SETs a new key and WAITs for one replica, in a loop, on the primary
    endpoint of whichever region is primary (on an error it asks DescribeGlobalReplicationGroups
    which member is primary and moves there). Each round is one FailoverGlobalReplicationGroup to
    the other region; measured: the longest streak of failed writes, the longest gap between two
    confirmed writes (the failover's write pause included), and confirmed keys missing on the new
    primary. Targets: longest error streak <= 1 s; nothing lost.
Usage: python bench/global_datastore.py [--rounds 5] [--markers 500] [--failovers 6] [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import threading
import time

import boto3
import redis
from botocore.config import Config
from common import machine, percentile, server

SETTINGS = {"Engine": "valkey", "CacheNodeType": "cache.r6g.large", "NumCacheClusters": 2,
            "AutomaticFailoverEnabled": True}
REGIONS = ("us-east-1", "us-west-2")


def wait(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


class Regions:
    """One boto3 client per region, and the lookups the benchmark needs."""

    def __init__(self, url: str) -> None:
        self.ec = {region: boto3.client("elasticache", endpoint_url=url, region_name=region, aws_access_key_id="bench",
                                        aws_secret_access_key="bench", config=Config(retries={"max_attempts": 1}))
                   for region in REGIONS}
        self.groups = {"us-east-1": "gd-east", "us-west-2": "gd-west"}
        self.global_id = ""

    def group(self, region: str) -> dict:
        return self.ec[region].describe_replication_groups(ReplicationGroupId=self.groups[region])["ReplicationGroups"][0]

    def endpoint(self, region: str) -> str:
        return self.group(region)["NodeGroups"][0]["PrimaryEndpoint"]["Address"]

    def record(self) -> dict:
        return self.ec["us-east-1"].describe_global_replication_groups(
            GlobalReplicationGroupId=self.global_id, ShowMemberInfo=True)["GlobalReplicationGroups"][0]

    def primary_region(self) -> str:
        return next(m["ReplicationGroupRegion"] for m in self.record()["Members"] if m["Role"] == "PRIMARY")

    def settled(self, primary: str) -> bool:
        """``primary`` is the primary region, everything available, and the other region's primary follows it."""
        record = self.record()
        if record["Status"] != "available" or self.primary_region() != primary:
            return False
        for region in REGIONS:
            group = self.group(region)
            if group["Status"] != "available":
                return False
            for member in group["NodeGroups"][0]["NodeGroupMembers"]:
                role = member["CurrentRole"] if region == primary else "replica"  # a secondary's primary follows
                try:
                    info = redis.Redis(host=member["ReadEndpoint"]["Address"], socket_timeout=1).info("replication")
                except redis.RedisError:
                    return False
                if role == "replica" and info.get("master_link_status") != "up":
                    return False
        return True


def set_up(regions: Regions) -> None:
    east, west = regions.ec["us-east-1"], regions.ec["us-west-2"]
    east.create_replication_group(ReplicationGroupId="gd-east", ReplicationGroupDescription="bench", **SETTINGS)
    wait(lambda: regions.group("us-east-1")["Status"] == "available", what="gd-east")
    regions.global_id = east.create_global_replication_group(
        GlobalReplicationGroupIdSuffix="bench", PrimaryReplicationGroupId="gd-east")["GlobalReplicationGroup"][
        "GlobalReplicationGroupId"]
    west.create_replication_group(ReplicationGroupId="gd-west", ReplicationGroupDescription="bench secondary",
                                  GlobalReplicationGroupId=regions.global_id, NumCacheClusters=2)
    wait(lambda: regions.settled("us-east-1"), what="gd-west following gd-east")


def lag_round(regions: Regions, markers: int, clients: int) -> list[float]:
    """Lag samples (seconds) of ``markers`` marker writes under a redis-benchmark SET load."""
    primary, secondary = regions.endpoint("us-east-1"), regions.endpoint("us-west-2")
    load = subprocess.Popen(
        [shutil.which("redis-benchmark") or "redis-benchmark", "-h", primary, "-p", "6379", "-t", "set",
         "-n", "100000000", "-c", str(clients), "-r", "100000", "-d", "64", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    writer = redis.Redis(host=primary, socket_timeout=2)
    reader = redis.Redis(host=secondary, socket_timeout=2)
    samples: list[float] = []
    try:
        wait(lambda: int(writer.info("stats")["instantaneous_ops_per_sec"]) > 1000, timeout=10, what="the SET load")
        for i in range(markers):
            value = f"{i}"
            writer.set("bench:marker", value)
            written = time.perf_counter()
            while reader.get("bench:marker") != value.encode():
                pass
            samples.append(time.perf_counter() - written)
            time.sleep(0.002)
        ops = int(writer.info("stats")["instantaneous_ops_per_sec"])
    finally:
        load.terminate()
        load.wait(timeout=10)
        writer.close()
        reader.close()
    print(f"    round: {len(samples)} markers under ~{ops} SET/s: p50 {percentile(samples, 0.5) * 1000:.2f} ms, "
          f"p99 {percentile(samples, 0.99) * 1000:.2f} ms, max {max(samples) * 1000:.2f} ms", flush=True)
    return samples


class Writer(threading.Thread):
    """SET + WAIT 1 on the primary endpoint of the current primary region; moves on any error."""

    def __init__(self, regions: Regions) -> None:
        super().__init__(daemon=True)
        self.regions = regions
        self.endpoints = {region: regions.endpoint(region) for region in REGIONS}
        self.confirmed: list[str] = []
        self.longest_streak = 0.0  # first failed write to the next confirmed one
        self.longest_gap = 0.0  # between two confirmed writes
        self.errors = 0
        self.done = threading.Event()

    def _client(self) -> redis.Redis:
        try:
            region = self.regions.primary_region()
        except Exception:  # noqa: BLE001 - the API answers again on the next try
            region = "us-east-1"
        return redis.Redis(host=self.endpoints[region], socket_timeout=3, socket_connect_timeout=1)

    def run(self) -> None:
        client = self._client()
        i = 0
        last = time.monotonic()
        failing_since: float | None = None
        while not self.done.is_set():
            key = f"w{i}"
            i += 1
            try:
                client.set(key, "v")
                if client.wait(1, 2000) < 1:
                    raise redis.RedisError("not confirmed")
            except redis.RedisError:
                self.errors += 1
                failing_since = failing_since or time.monotonic()
                client.close()
                client = self._client()
                continue
            now = time.monotonic()
            self.confirmed.append(key)
            self.longest_gap, last = max(self.longest_gap, now - last), now
            if failing_since is not None:
                self.longest_streak, failing_since = max(self.longest_streak, now - failing_since), None
        client.close()


def failover_round(regions: Regions, target: str) -> tuple[float, float, int, int]:
    """One planned failover to ``target``: (longest error streak, longest gap, errors, confirmed keys lost)."""
    writer = Writer(regions)
    writer.start()
    try:
        wait(lambda: len(writer.confirmed) > 200, timeout=10, what="confirmed writes before the failover")
        regions.ec[target].failover_global_replication_group(
            GlobalReplicationGroupId=regions.global_id, PrimaryRegion=target,
            PrimaryReplicationGroupId=regions.groups[target])
        wait(lambda: regions.primary_region() == target, timeout=20, what=f"{target} primary")
        count = len(writer.confirmed)
        wait(lambda: len(writer.confirmed) > count + 200, timeout=10, what="confirmed writes on the new primary")
    finally:
        writer.done.set()
        writer.join(10)
    new_primary = redis.Redis(host=writer.endpoints[target], socket_timeout=5)
    lost = 0
    for start in range(0, len(writer.confirmed), 1000):
        chunk = writer.confirmed[start:start + 1000]
        lost += sum(1 for value in new_primary.mget(chunk) if value is None)
    for start in range(0, len(writer.confirmed), 1000):  # the next round starts from an empty keyspace
        new_primary.delete(*writer.confirmed[start:start + 1000])
    new_primary.close()
    wait(lambda: regions.settled(target), timeout=30, what=f"both regions settled on {target}")
    print(f"    round -> {target}: longest error streak {writer.longest_streak * 1000:.1f} ms, longest gap "
          f"{writer.longest_gap * 1000:.1f} ms, {writer.errors} failed writes, {len(writer.confirmed)} confirmed, "
          f"{lost} lost", flush=True)
    return writer.longest_streak, writer.longest_gap, writer.errors, lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="lag rounds")
    parser.add_argument("--markers", type=int, default=500, help="marker writes per lag round")
    parser.add_argument("--clients", type=int, default=20, help="redis-benchmark connections")
    parser.add_argument("--failovers", type=int, default=6, help="failover rounds (alternating regions)")
    parser.add_argument("--quick", action="store_true", help="2 lag rounds of 200 markers, 2 failovers")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.markers, args.failovers = 2, 200, 2
    print(f"global datastore us-east-1 -> us-west-2 (Valkey, 2 nodes per region); {machine()}", flush=True)
    with server("127.89.0.0/24", extra=["--warm-nodes", "0"]) as running:
        regions = Regions(running.url)
        set_up(regions)
        print(f"  (a) replication lag under redis-benchmark -t set -c {args.clients} -d 64:", flush=True)
        p50s, p99s, maxes = [], [], []
        for _ in range(args.rounds):
            samples = lag_round(regions, args.markers, args.clients)
            p50s.append(percentile(samples, 0.5))
            p99s.append(percentile(samples, 0.99))
            maxes.append(max(samples))
        p99 = statistics.median(p99s)
        print(f"  lag, medians of {args.rounds} rounds: p50 {statistics.median(p50s) * 1000:.2f} ms, "
              f"p99 {p99 * 1000:.2f} ms, max {statistics.median(maxes) * 1000:.2f} ms "
              f"(worst max {max(maxes) * 1000:.2f} ms)")
        print(f"    target: p99 <= 10 ms: {'met' if p99 <= 0.010 else 'NOT met'}", flush=True)
        print("  (b) planned FailoverGlobalReplicationGroup under a SET + WAIT 1 writer:", flush=True)
        streaks, gaps, lost = [], [], 0
        primary = "us-east-1"
        for _ in range(args.failovers):
            primary = "us-west-2" if primary == "us-east-1" else "us-east-1"
            streak, gap, _errors, missing = failover_round(regions, primary)
            streaks.append(streak)
            gaps.append(gap)
            lost += missing
        print(f"  failover, medians of {args.failovers} rounds: longest error streak "
              f"{statistics.median(streaks) * 1000:.1f} ms (worst {max(streaks) * 1000:.1f} ms), longest gap between "
              f"confirmed writes {statistics.median(gaps) * 1000:.1f} ms (worst {max(gaps) * 1000:.1f} ms); "
              f"confirmed writes lost: {lost}")
        print(f"    targets: error streak <= 1 s: {'met' if max(streaks) <= 1.0 else 'NOT met'}; "
              f"nothing lost: {'met' if lost == 0 else 'NOT met'}")
        # `cachefleet down` (server()'s exit) stops every engine of both regions and the data dir goes.

if __name__ == "__main__":
    sys.exit(main())
