"""DescribeReplicationGroups latency with 100 groups, and control-plane memory with 100 nodes running.

Targets (issue 2): p99 <= 20 ms; control plane RSS <= 150 MB with 100 nodes.
Latency is measured with raw signed requests (no botocore response parsing), so it is the server's.
Usage: python bench/describe_scale.py [--groups 100] [--calls 300]
"""

from __future__ import annotations

import argparse
import time

from common import machine, percentile, raw_request, server, summary, wait_all_available


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    print(f"{args.groups} single-node replication groups; {machine()}")
    with server("127.92.0.0/20") as running:
        ec = running.client()
        rss_idle = running.rss_mb()
        for index in range(args.groups):
            ec.create_replication_group(ReplicationGroupId=f"scale-{index:03d}", ReplicationGroupDescription="bench",
                                        Engine="valkey", CacheNodeType="cache.t4g.micro")
        wait_all_available(ec, args.groups, interval=0.2)
        time.sleep(3)  # let a few resync passes run
        params = {"Action": "DescribeReplicationGroups", "Version": "2015-02-02", "MaxRecords": "100"}
        times = []
        for _ in range(args.calls):
            started = time.perf_counter()
            body = raw_request(running.url, params)
            times.append(time.perf_counter() - started)
        assert body.count(b"<ReplicationGroup>") == min(100, args.groups)
        p99 = percentile(times, 0.99)
        rss = running.rss_mb()
        print(f"  DescribeReplicationGroups (100 per page): {summary(times)}, p99 {p99 * 1000:.1f} ms"
              f" (target <= 20 ms: {'met' if p99 <= 0.02 else 'NOT met'})")
        print(f"  control plane RSS: {rss_idle:.0f} MB idle, {rss:.0f} MB with {args.groups} nodes"
              f" (target <= 150 MB: {'met' if rss <= 150 else 'NOT met'})")


if __name__ == "__main__":
    main()
