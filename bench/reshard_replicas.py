"""Resharding with replicas: scale a 2-shard group with R replicas per shard to 3 shards.

Valkey 8+ answers every CLUSTER SETSLOT only once the shard's replicas acknowledged it, so this
measures how well slot moves overlap (lanes). Each run creates a fresh group (no keys), then
times ModifyReplicationGroupShardConfiguration (NodeGroupCount 3) from the call to `available`:
5,461 slots move to the new shard, whose nodes start first. Runs with 0 and 1 replicas alternate.
Usage: python bench/reshard_replicas.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import machine, server


def scale_out(ec, group_id: str, replicas: int) -> float:
    ec.create_replication_group(
        ReplicationGroupId=group_id, ReplicationGroupDescription="bench", Engine="valkey",
        CacheNodeType="cache.t4g.micro", NumNodeGroups=2, ReplicasPerNodeGroup=replicas,
    )
    status = lambda: ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]["Status"]  # noqa: E731
    while status() != "available":
        time.sleep(0.05)
    started = time.perf_counter()
    ec.modify_replication_group_shard_configuration(ReplicationGroupId=group_id, NodeGroupCount=3, ApplyImmediately=True)
    while status() != "available":
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    ec.delete_replication_group(ReplicationGroupId=group_id)
    while any(g["ReplicationGroupId"] == group_id for g in ec.describe_replication_groups()["ReplicationGroups"]):
        time.sleep(0.05)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"scale 2 -> 3 shards (5,461 slots move), with and without replicas; {machine()}")
    times: dict[int, list[float]] = {0: [], 1: []}
    with server("127.99.0.0/24", extra=["--warm-nodes", "0"]) as running:
        ec = running.client()
        for run in range(args.runs):
            for replicas in (0, 1):
                times[replicas].append(scale_out(ec, f"reshard-r{replicas}-{run}", replicas))
    for replicas, values in times.items():
        print(f"  {replicas} replica(s) per shard: median {statistics.median(values):.2f} s "
              f"({', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
