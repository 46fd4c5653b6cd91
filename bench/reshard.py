"""Resharding throughput: move 1,000,000 small keys from one shard to another.

Two identical 2-shard clusters (no replicas) hold the same keys, all in the slots of the
first shard. One is emptied by Cachefleet (ModifyReplicationGroupShardConfiguration,
NodeGroupCount 1, removing that shard); the other by `valkey-cli --cluster reshard` of the
same slots, with its default pipeline. Both in one run, same engine build.
Target (issue 3): Cachefleet >= 2x valkey-cli's keys per second.
Usage: python bench/reshard.py [--keys 1000000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from common import machine, server
from redis.crc import key_slot

from cachefleet.domain import slots as slotmath
from cachefleet.engine.catalog import Catalog
from cachefleet.engine.config import NodeConfig, render


def keys_in(slots: set[int], count: int) -> list[str]:
    """``count`` distinct small key names whose hash slots are in ``slots``."""
    names, n = [], 0
    while len(names) < count:
        name = f"k{n}"
        if key_slot(name.encode()) in slots:
            names.append(name)
        n += 1
    return names


def load(cli: Path, address: str, names: list[str]) -> None:
    """Fast bulk load through valkey-cli --pipe (the keys all live on this one node)."""
    payload = "".join(f"*3\r\n$3\r\nSET\r\n${len(k)}\r\n{k}\r\n$8\r\nvalue-01\r\n" for k in names).encode()
    subprocess.run([str(cli), "-h", address, "--pipe"], input=payload, capture_output=True, check=True)


def cli_cluster(binary, cli: Path, names: list[str]) -> float:
    """A hand-made 2-shard cluster emptied with valkey-cli --cluster reshard; returns seconds."""
    root = Path(tempfile.mkdtemp(prefix="bench-cli-reshard-"))
    addresses = ["127.97.1.1", "127.97.1.2"]
    processes = []
    try:
        for address in addresses:
            directory = root / address
            (directory / "data").mkdir(parents=True)
            (directory / "engine.conf").write_text(
                render(NodeConfig(address=address, port=6379, directory=directory, maxmemory=2**31, cluster=True))
            )
            processes.append(subprocess.Popen([str(binary.server), str(directory / "engine.conf")],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        a, b = (redis.Redis(host=x) for x in addresses)
        ids = [a.execute_command("CLUSTER", "MYID").decode(), b.execute_command("CLUSTER", "MYID").decode()]
        a.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 8191)
        b.execute_command("CLUSTER", "ADDSLOTSRANGE", 8192, 16383)
        a.execute_command("CLUSTER", "MEET", addresses[1], 6379)
        while b"cluster_state:ok" not in a.execute_command("CLUSTER", "INFO") or b"cluster_state:ok" not in b.execute_command("CLUSTER", "INFO"):
            time.sleep(0.05)
        time.sleep(1)
        load(cli, addresses[0], names)
        assert a.dbsize() == len(names)
        started = time.perf_counter()
        subprocess.run(
            [str(cli), "--cluster", "reshard", f"{addresses[0]}:6379", "--cluster-from", ids[0], "--cluster-to", ids[1],
             "--cluster-slots", "8192", "--cluster-yes"],
            capture_output=True, check=True,
        )
        elapsed = time.perf_counter() - started
        assert a.dbsize() == 0 and b.dbsize() == len(names)
        return elapsed
    finally:
        for process in processes:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--engine-major", default="8", help="the Valkey major both clusters run (9: atomic slot migration)")
    args = parser.parse_args()
    valkeys = sorted((b for b in Catalog.discover().binaries() if b.release.engine == "valkey"), key=lambda b: b.release.version)
    binary = next(b for b in valkeys if b.release.version.startswith(f"{args.engine_major}."))
    cli = next(b.cli for b in valkeys if b.cli is not None and b.cli.name == "valkey-cli")
    print(f"move {args.keys:,} keys (8192 slots) between 2 shards; {binary.release.engine} {binary.release.version}; {machine()}")
    names = keys_in(set(range(8192)), args.keys)
    with server("127.98.0.0/24", extra=["--warm-nodes", "0"]) as running:
        ec = running.client()
        ec.create_replication_group(
            ReplicationGroupId="reshard", ReplicationGroupDescription="bench", Engine="valkey",
            EngineVersion=binary.release.major_minor, CacheNodeType="cache.r7g.large",
            NodeGroupConfiguration=[{"NodeGroupId": "0001", "Slots": "0-8191", "ReplicaCount": 0},
                                    {"NodeGroupId": "0002", "Slots": "8192-16383", "ReplicaCount": 0}],
        )
        while ec.describe_replication_groups(ReplicationGroupId="reshard")["ReplicationGroups"][0]["Status"] != "available":
            time.sleep(0.05)
        group = ec.describe_replication_groups(ReplicationGroupId="reshard")["ReplicationGroups"][0]
        first = group["NodeGroups"][0]["NodeGroupMembers"][0]["ReadEndpoint"]["Address"]
        load(cli, first, names)
        started = time.perf_counter()
        ec.modify_replication_group_shard_configuration(ReplicationGroupId="reshard", NodeGroupCount=1,
                                                        NodeGroupsToRemove=["0001"], ApplyImmediately=True)
        while ec.describe_replication_groups(ReplicationGroupId="reshard")["ReplicationGroups"][0]["Status"] != "available":
            time.sleep(0.05)
        ours = time.perf_counter() - started
        group = ec.describe_replication_groups(ReplicationGroupId="reshard")["ReplicationGroups"][0]
        assert [len(slotmath.parse(ng["Slots"])) for ng in group["NodeGroups"]] == [16384]
        survivor = group["NodeGroups"][0]["NodeGroupMembers"][0]["ReadEndpoint"]["Address"]
        assert redis.Redis(host=survivor).dbsize() == len(names)
    theirs = cli_cluster(binary, cli, names)
    print(f"  Cachefleet: {ours:.1f} s, {args.keys / ours:,.0f} keys/s (whole operation, API call to available)")
    print(f"  valkey-cli --cluster reshard: {theirs:.1f} s, {args.keys / theirs:,.0f} keys/s")
    ratio = theirs / ours
    print(f"  ratio: {ratio:.2f}x (target >= 2x: {'met' if ratio >= 2 else 'NOT met'})")


if __name__ == "__main__":
    sys.exit(main())
