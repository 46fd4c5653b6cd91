"""CreateServerlessCache to `available` (one shard: a primary and a replica in another zone),
and DeleteServerlessCache to gone.

Target (issue 13): median <= 1 s (ElastiCache: about a minute). Cachefleet runs with its
default warm pool (3 nodes); a run waits until the pool has refilled. `--cold` turns it off.
Usage: python bench/serverless.py [--runs 10] [--cold]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from common import machine, server, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cold", action="store_true", help="turn the warm pool off")
    args = parser.parse_args()
    print(f"CreateServerlessCache -> available, DeleteServerlessCache -> gone; warm pool "
          f"{'off' if args.cold else 'on'}; {machine()}")
    created: list[float] = []
    deleted: list[float] = []
    extra = ["--warm-nodes", "0"] if args.cold else []
    with server("127.94.0.0/20", extra=extra) as running:
        ec = running.client()
        for run in range(args.runs):
            time.sleep(3.0)  # the warm pool refills (a warm node is ready 2.2 s after its start)
            name = f"bench{run}"
            started = time.perf_counter()
            ec.create_serverless_cache(ServerlessCacheName=name, Engine="valkey")
            while ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]["Status"] != "available":
                time.sleep(0.005)
            created.append(time.perf_counter() - started)
            started = time.perf_counter()
            ec.delete_serverless_cache(ServerlessCacheName=name)
            while any(c["ServerlessCacheName"] == name for c in ec.describe_serverless_caches()["ServerlessCaches"]):
                time.sleep(0.005)
            deleted.append(time.perf_counter() - started)
    print(f"  create to available: {summary(created)}")
    print(f"  delete to gone:      {summary(deleted)}")
    print(f"  target: create median <= 1 s: {'met' if statistics.median(created) <= 1.0 else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
