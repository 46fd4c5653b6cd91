"""Does sampling slow a node down? redis-benchmark on one node with and without the sampler.

The same node is benchmarked in interleaved rounds, the control plane restarted between them
(the node keeps serving; each start adopts it): with sampling (every second: INFO over a
persistent connection, plus /proc) and with ``--sample-interval 0``. Medians are compared as
a ratio. Pipelined (-P 16) so that the engine, not the client, is the bottleneck.
Target (issue 5): <= 1 % throughput loss. On a machine shared with other work the rounds vary by
tens of percent, so the engine's own account is printed too: the time it spent answering the
sampler's INFO (commandstats ``usec`` of ``info``), as a share of its time, is an upper bound of
the throughput the sampler can take from it.
Needs redis-benchmark (Debian: redis-tools).
Usage: python bench/sampling_throughput.py [--rounds 6] [--requests 2000000]
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import signal
import statistics
import subprocess
import sys
import time

from common import machine, server


def benchmark(address: str, requests: int) -> dict[str, float]:
    out = subprocess.run(
        ["redis-benchmark", "-h", address, "-p", "6379", "-c", "50", "-P", "16", "-n", str(requests), "-t", "set,get",
         "--csv"], capture_output=True, text=True, check=True,
    ).stdout
    rows = list(csv.reader(io.StringIO(out)))
    return {row[0]: float(row[1]) for row in rows[1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=2_000_000)
    args = parser.parse_args()
    if not shutil.which("redis-benchmark"):
        sys.exit("redis-benchmark is missing: apt-get install redis-tools")
    print(f"redis-benchmark -c 50 -P 16 -t set,get, {args.requests} requests per round, {args.rounds} rounds each; {machine()}")
    with server("127.94.0.0/24") as running:
        ec = running.client()
        ec.create_replication_group(ReplicationGroupId="sampled", ReplicationGroupDescription="bench", Engine="valkey",
                                    EngineVersion="8.1", CacheNodeType="cache.r7g.large", NumCacheClusters=1)
        while ec.describe_replication_groups(ReplicationGroupId="sampled")["ReplicationGroups"][0]["Status"] != "available":
            time.sleep(0.05)
        address = ec.describe_replication_groups(ReplicationGroupId="sampled")["ReplicationGroups"][0]["NodeGroups"][0][
            "PrimaryEndpoint"]["Address"]
        results: dict[str, dict[str, list[float]]] = {"sampled": {}, "not sampled": {}}
        for round_number in range(args.rounds * 2):
            sampled = round_number % 4 in (0, 3)  # ABBA order: drift in the machine's speed cancels out
            if round_number:
                previous = (round_number - 1) % 4 in (0, 3)
                if previous != sampled:
                    assert running.process is not None
                    running.process.send_signal(signal.SIGTERM)
                    running.process.wait(timeout=30)
                    running.start(*([] if sampled else ["--sample-interval", "0"]))
                    time.sleep(3)  # adopted (and sampled again)
            name = "sampled" if sampled else "not sampled"
            for test, rps in benchmark(address, args.requests).items():
                results[name].setdefault(test, []).append(rps)
        if running.process is None:
            running.start()
        time.sleep(5)
        import redis

        stats = redis.Redis(host=address, port=6379).info("commandstats")
        info = stats.get("cmdstat_info", {})
        per_call = float(info.get("usec_per_call", 0))
        print(f"  engine's own account: INFO takes {per_call:.0f} µs per call, once a second: "
              f"{per_call / 1e6 * 100:.3f} % of the engine's main thread (target <= 1 %: "
              f"{'met' if per_call / 1e6 * 100 <= 1 else 'NOT met'})")
        for test in results["sampled"]:
            print(f"  {test} rounds: sampled {[round(v / 1000) for v in results['sampled'][test]]} k rps, "
                  f"not sampled {[round(v / 1000) for v in results['not sampled'][test]]} k rps")
            ours = statistics.median(results["sampled"][test])
            theirs = statistics.median(results["not sampled"][test])
            loss = (1 - ours / theirs) * 100
            print(f"  {test}: sampled median {ours:,.0f} rps, not sampled {theirs:,.0f} rps, ratio {ours / theirs:.3f} "
                  f"(loss {loss:.1f} %; target <= 1 %: {'met' if loss <= 1 else 'NOT met'})")


if __name__ == "__main__":
    main()
