"""CreateReplicationGroup of 3 nodes (1 primary + 2 replicas) to `available`, per engine.

Target (issue 2): median <= 0.5 s on a 2-core machine.
Usage: python bench/create_group.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import machine, server, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print(f"create 3-node replication group to available; {machine()}")
    with server("127.90.0.0/20") as running:
        ec = running.client()
        versions = [(v["Engine"], v["EngineVersion"]) for v in ec.describe_cache_engine_versions()["CacheEngineVersions"]]
        for engine, version in versions:
            times = []
            for run in range(args.runs):
                group_id = f"bench-{engine}-{version.replace('.', '')}-{run}"
                started = time.perf_counter()
                ec.create_replication_group(ReplicationGroupId=group_id, ReplicationGroupDescription="bench",
                                            Engine=engine, EngineVersion=version, CacheNodeType="cache.t4g.micro",
                                            NumCacheClusters=3)
                while ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]["Status"] != "available":
                    time.sleep(0.005)
                times.append(time.perf_counter() - started)
                ec.delete_replication_group(ReplicationGroupId=group_id)
                while True:
                    try:
                        ec.describe_replication_groups(ReplicationGroupId=group_id)
                    except ec.exceptions.ReplicationGroupNotFoundFault:
                        break
                    time.sleep(0.005)
            print(f"  {engine} {version}: {summary(times)}")
            print(f"    target median <= 500 ms: {'met' if statistics.median(times) <= 0.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
