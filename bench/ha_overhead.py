"""Control-plane CPU and memory with 100 nodes under automatic failover (health probes running).

50 replication groups of 2 nodes with AutomaticFailoverEnabled: every node is probed
(PING every 200 ms) and every group reconciled every 2 s. Measured over 20 s, idle traffic.
Usage: python bench/ha_overhead.py [--groups 50] [--seconds 20]
"""

from __future__ import annotations

import argparse
import time

from common import cpu_seconds, machine, server, wait_all_available


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(f"{args.groups} groups x 2 nodes with automatic failover; {machine()}")
    with server("127.86.0.0/22", extra=["--warm-nodes", "0"]) as running:
        ec = running.client()
        for index in range(args.groups):
            ec.create_replication_group(ReplicationGroupId=f"ha{index}", ReplicationGroupDescription="bench", Engine="valkey",
                                        CacheNodeType="cache.t4g.micro", NumCacheClusters=2, AutomaticFailoverEnabled=True)
        wait_all_available(ec, args.groups, interval=0.5)
        time.sleep(3)
        assert running.process is not None
        before, started = cpu_seconds(running.process.pid), time.monotonic()
        time.sleep(args.seconds)
        used = (cpu_seconds(running.process.pid) - before) / (time.monotonic() - started)
        print(f"  control plane CPU: {100 * used:.1f}% of one core; RSS {running.rss_mb():.0f} MB with {2 * args.groups} nodes")


if __name__ == "__main__":
    main()
