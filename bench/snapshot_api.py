"""Snapshots and restores through Cachefleet's API, end to end, against the bare engine doing the same.

Data: N keys (``key:%012d``) with random 1 KB values in a cluster mode disabled group with one
replica (Valkey 8.1, cache.r7g.large), loaded with valkey-cli --pipe. Rounds interleave both sides.

1. Snapshot: CreateSnapshot until DescribeSnapshots says ``available`` (polled every 20 ms; the
   RDB streamed from the in-sync replica into the snapshot file) vs ``BGSAVE`` on that replica
   until INFO says it finished. MB/s of RDB bytes. Target (issue 10): >= 0.9x.
   Meanwhile the primary's RSS is sampled: it must not grow (the primary does not fork).
2. Restore into the same shape: CreateReplicationGroup SnapshotName (one node) until available
   vs the engine starting with the same RDB in its dir (spawn to first DBSIZE). Target >= 0.9x.
3. Restore into 3 shards: CreateReplicationGroup SnapshotName NumNodeGroups=3 until available
   vs ``valkey-cli --cluster import`` of the same keys from an engine loaded with the same RDB
   into 3 fresh primaries that already form a cluster (the import alone). Keys/s; target >= 2x.

Usage: python bench/snapshot_api.py [--keys 1000000] [--rounds 2] [--parts 123]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import redis  # noqa: E402
from common import machine, server  # noqa: E402
from snapshot_io import bgsave, load  # noqa: E402

from enginekit import EngineSet, installed  # noqa: E402
from helpers import engine_processes, fresh_network  # noqa: E402

NODE_TYPE = "cache.r7g.large"


def wait(predicate, timeout: float = 1800.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step did not finish")
        time.sleep(interval)


def status(ec, group_id: str) -> str:
    try:
        return ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]["Status"]
    except ec.exceptions.ReplicationGroupNotFoundFault:
        return "gone"


def snapshot_status(ec, name: str) -> str:
    return ec.describe_snapshots(SnapshotName=name)["Snapshots"][0]["SnapshotStatus"]


def delete_group(ec, group_id: str) -> None:
    ec.delete_replication_group(ReplicationGroupId=group_id)
    wait(lambda: status(ec, group_id) == "gone", interval=0.2)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def sample(pid: int, into: list[int], done: threading.Event) -> None:
    while not done.is_set():
        into.append(rss_kb(pid))
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--parts", default="123")
    args = parser.parse_args()
    binary = installed("valkey", "8.")
    cli = binary.cli
    assert cli is not None
    print(f"snapshots through the API: {args.keys:,} keys x 1024 B; valkey {binary.release.version}; {machine()}")
    with server(fresh_network(), ["--warm-nodes", "0", "--sample-interval", "0"]) as fleet:
        ec = fleet.client()
        ec.create_replication_group(ReplicationGroupId="bench", ReplicationGroupDescription="bench", Engine="valkey",
                                    EngineVersion="8.1", CacheNodeType=NODE_TYPE, NumCacheClusters=2)
        wait(lambda: status(ec, "bench") == "available", interval=0.1)
        group = ec.describe_replication_groups(ReplicationGroupId="bench")["ReplicationGroups"][0]
        members = {m["CurrentRole"]: m["ReadEndpoint"]["Address"] for m in group["NodeGroups"][0]["NodeGroupMembers"]}
        primary = SimpleNamespace(address=members["primary"], port=6379)
        load(cli, primary, list(range(args.keys)))
        assert redis.Redis(host=primary.address).wait(1, 60_000) == 1
        replica = SimpleNamespace(client=lambda: redis.Redis(host=members["replica"], socket_timeout=120))
        pids = dict(engine_processes(fleet.root / "data"))
        engines = EngineSet()
        try:
            snapshot_file = engines.root / "bench.rdb"
            if "1" in args.parts:
                part_snapshot(ec, fleet, replica, pids[members["primary"]], args.rounds)
            ec.create_snapshot(ReplicationGroupId="bench", SnapshotName="bench-base")
            wait(lambda: snapshot_status(ec, "bench-base") == "available")
            source = fleet.root / "data" / "snapshots" / "us-east-1" / "bench-base" / "bench-base-0001.rdb"
            snapshot_file.write_bytes(source.read_bytes())
            delete_group(ec, "bench")
            if "2" in args.parts:
                part_same_shape(ec, engines, binary, snapshot_file, args.rounds)
            if "3" in args.parts:
                part_reshape(ec, engines, binary, cli, snapshot_file, args.keys, args.rounds)
        finally:
            engines.close()


def part_snapshot(ec, fleet, replica, primary_pid: int, rounds: int) -> None:
    print("\n1. Snapshot of the group (from its in-sync replica) vs BGSAVE on that replica")
    ours, bare, growth = [], [], []
    size = 0
    for number in range(rounds):
        seconds = bgsave(replica)
        directory = Path(replica.client().config_get("dir")["dir"])
        size = (directory / "dump.rdb").stat().st_size
        (directory / "dump.rdb").unlink()
        bare.append(size / seconds)

        samples = [rss_kb(primary_pid)]
        done = threading.Event()
        sampler = threading.Thread(target=sample, args=(primary_pid, samples, done))
        sampler.start()
        name = f"bench-{number}"
        started = time.perf_counter()
        ec.create_snapshot(ReplicationGroupId="bench", SnapshotName=name)
        wait(lambda name=name: snapshot_status(ec, name) == "available")
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        stored = fleet.root / "data" / "snapshots" / "us-east-1" / name / f"{name}-0001.rdb"
        ours.append(stored.stat().st_size / elapsed)
        growth.append((max(samples) - samples[0]) / 1024)
        ec.delete_snapshot(SnapshotName=name)
        wait(lambda: status(ec, "bench") == "available")
    print(f"   RDB {size / 1e6:,.0f} MB; medians of {rounds} interleaved rounds")
    print(f"   BGSAVE on the replica:           {statistics.median(bare) / 1e6:7.1f} MB/s")
    print(f"   CreateSnapshot to available:     {statistics.median(ours) / 1e6:7.1f} MB/s  "
          f"({statistics.median(ours) / statistics.median(bare):.2f}x)")
    print(f"   primary RSS growth during the snapshot: max {max(growth):.1f} MB")


def part_same_shape(ec, engines: EngineSet, binary, snapshot_file: Path, rounds: int) -> None:
    print("\n2. Restore into the same shape (one node) vs the engine loading the RDB at start-up")
    size = snapshot_file.stat().st_size
    ours, bare = [], []
    for number in range(rounds):
        engine = engines.start(binary, rdb=snapshot_file)
        bare.append(size / (engine.ready - engine.launched))
        engine.stop()
        name = f"same-{number}"
        started = time.perf_counter()
        ec.create_replication_group(ReplicationGroupId=name, ReplicationGroupDescription="bench",
                                    SnapshotName="bench-base", NumCacheClusters=1)
        wait(lambda name=name: status(ec, name) == "available")
        ours.append(size / (time.perf_counter() - started))
        delete_group(ec, name)
    print(f"   engine loading at start-up:      {statistics.median(bare) / 1e6:7.1f} MB/s")
    print(f"   CreateReplicationGroup to available: {statistics.median(ours) / 1e6:7.1f} MB/s  "
          f"({statistics.median(ours) / statistics.median(bare):.2f}x)")


def part_reshape(ec, engines: EngineSet, binary, cli: Path, snapshot_file: Path, keys: int, rounds: int) -> None:
    print("\n3. Restore into 3 shards vs valkey-cli --cluster import into a formed 3-node cluster")
    ours, theirs = [], []
    for number in range(rounds):
        source = engines.start(binary, rdb=snapshot_file)
        nodes = engines.cluster(binary, 3)
        started = time.perf_counter()
        subprocess.run([str(cli), "--cluster", "import", f"{nodes[0].address}:{nodes[0].port}", "--cluster-from",
                        f"{source.address}:{source.port}", "--cluster-replace"], capture_output=True, check=True)
        theirs.append(keys / (time.perf_counter() - started))
        assert sum(n.client().dbsize() for n in nodes) == keys
        for engine in [source, *nodes]:
            engine.stop()
        name = f"three-{number}"
        started = time.perf_counter()
        ec.create_replication_group(ReplicationGroupId=name, ReplicationGroupDescription="bench",
                                    SnapshotName="bench-base", NumNodeGroups=3, ReplicasPerNodeGroup=0)
        wait(lambda name=name: status(ec, name) == "available")
        ours.append(keys / (time.perf_counter() - started))
        delete_group(ec, name)
    print(f"   valkey-cli --cluster import (the import alone): {statistics.median(theirs):9,.0f} keys/s")
    print(f"   CreateReplicationGroup NumNodeGroups=3 to available (everything): {statistics.median(ours):9,.0f} keys/s  "
          f"({statistics.median(ours) / statistics.median(theirs):.2f}x)")


if __name__ == "__main__":
    main()
