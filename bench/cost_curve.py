"""The cost curve (issue 18): what the control plane costs as the number of nodes grows.

For each N of --nodes (default 100,300,1000) a fresh server (`--max-nodes` N, `--warm-nodes 0`)
gets N engine processes: one 2-node group with automatic failover (the one failed over) and
N - 2 single-node groups. Then, with every node watched (PING every 200 ms) and sampled every
second:
- create time: CreateReplicationGroup of all N nodes to every group `available`, and one
  2-node group's own create to `available` (created last, with the others running);
- control-plane CPU (utime + stime from /proc/PID/stat over --window seconds, % of one core)
  and RSS (VmRSS);
- DescribeReplicationGroups p99 (raw signed requests, 100 groups a page, --calls of them);
- failover time: kill -9 the 2-node group's primary, time until its PrimaryEndpoint takes a
  write (the replica is primary and the endpoint moved), --failovers rounds, each waiting for
  the lost node to be back as a synced replica.
The machine's load average is printed before and after each N: the figures depend on it.
Usage: python bench/cost_curve.py [--nodes 100,300,1000] [--window 20] [--settle 5] [--calls 200] [--failovers 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import cpu_seconds, load_average, machine, percentile, raw_request, server, wait_all_available
from failover import recovered, time_failovers, wait

NETWORK = "127.118.0.0/20"  # 4,096 addresses: room for 1,000 nodes and their endpoints
FAILOVER_GROUP = "curve-ha"


def create_all(ec, nodes: int) -> tuple[float, float]:
    """Every node of the curve created: (seconds to all `available`, seconds of the 2-node group's own create)."""
    started = time.perf_counter()
    for index in range(nodes - 2):
        ec.create_replication_group(ReplicationGroupId=f"curve-{index:04d}", ReplicationGroupDescription="bench",
                                    Engine="valkey", CacheNodeType="cache.t4g.micro")
    wait_all_available(ec, nodes - 2, interval=0.5)
    one = time.perf_counter()
    ec.create_replication_group(ReplicationGroupId=FAILOVER_GROUP, ReplicationGroupDescription="bench",
                                Engine="valkey", CacheNodeType="cache.t4g.micro", NumCacheClusters=2,
                                AutomaticFailoverEnabled=True)
    while ec.describe_replication_groups(ReplicationGroupId=FAILOVER_GROUP)["ReplicationGroups"][0]["Status"] \
            != "available":
        time.sleep(0.005)
    done = time.perf_counter()
    return done - started, done - one


def failovers(running, rounds: int) -> list[float]:
    ec = running.client()
    wait(lambda: recovered(ec, FAILOVER_GROUP), timeout=120)
    return time_failovers(ec, running, FAILOVER_GROUP, rounds, timeout=120)


def measure(nodes: int, args: argparse.Namespace) -> dict[str, float]:
    print(f"N = {nodes} nodes; load average before: {load_average()}", flush=True)
    with server(NETWORK, extra=["--warm-nodes", "0", "--max-nodes", str(nodes)]) as running:
        assert running.process is not None
        ec = running.client()
        create_seconds, group_seconds = create_all(ec, nodes)
        time.sleep(args.settle)  # every node watched and sampled, and the creates' after-work done, before the window
        pid = running.process.pid
        before, started = cpu_seconds(pid), time.monotonic()
        time.sleep(args.window)
        cpu = (cpu_seconds(pid) - before) / (time.monotonic() - started) * 100
        window_load = load_average()
        rss = running.rss_mb()
        params = {"Action": "DescribeReplicationGroups", "Version": "2015-02-02", "MaxRecords": "100"}
        times = []
        for _ in range(args.calls):
            began = time.perf_counter()
            body = raw_request(running.url, params)
            times.append(time.perf_counter() - began)
        assert body.count(b"<ReplicationGroup>") == min(100, nodes - 1)
        failover_times = failovers(running, args.failovers)
        row = {
            "nodes": nodes, "cpu": cpu, "rss": rss, "describe_p99": percentile(times, 0.99) * 1000,
            "describe_median": statistics.median(times) * 1000,
            "failover_median": statistics.median(failover_times) * 1000, "failover_max": max(failover_times) * 1000,
            "create_all": create_seconds, "create_group": group_seconds * 1000,
        }
    print(f"  load average at the end of the CPU window: {window_load}", flush=True)
    print(f"  control plane {row['cpu']:.1f} % of one core, RSS {row['rss']:.0f} MB; "
          f"DescribeReplicationGroups p99 {row['describe_p99']:.1f} ms (median {row['describe_median']:.1f} ms); "
          f"failover median {row['failover_median']:.0f} ms (max {row['failover_max']:.0f} ms, n={args.failovers}); "
          f"create of all {nodes} nodes {row['create_all']:.1f} s, of one 2-node group {row['create_group']:.0f} ms; "
          f"load average after: {load_average()}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="100,300,1000", help="comma-separated node counts (each >= 3)")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of the CPU measurement")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds between every group available and the CPU window (at 1,000 nodes the "
                             "first ~30 s still carry the creates' after-work)")
    parser.add_argument("--calls", type=int, default=200, help="DescribeReplicationGroups calls")
    parser.add_argument("--failovers", type=int, default=5, help="kill -9 rounds")
    args = parser.parse_args()
    counts = [int(part) for part in args.nodes.split(",") if part.strip()]
    if any(count < 3 for count in counts):
        parser.error("--nodes: every count must be 3 or more (a 2-node group and at least one other)")
    print(f"cost curve at {', '.join(map(str, counts))} nodes; {machine()}", flush=True)
    rows = [measure(count, args) for count in counts]
    print("| nodes | control-plane CPU | RSS | Describe p99 | failover median (max) | create all | create 2-node group |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['nodes']:,.0f} | {row['cpu']:.1f} % | {row['rss']:.0f} MB | {row['describe_p99']:.1f} ms "
              f"| {row['failover_median']:.0f} ms ({row['failover_max']:.0f} ms) | {row['create_all']:.1f} s "
              f"| {row['create_group']:.0f} ms |")


if __name__ == "__main__":
    main()
