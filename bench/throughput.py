"""redis-benchmark SET/GET (50 clients) through a group's PrimaryEndpoint vs. the same engine binary started by hand.

Both run side by side in one script, interleaved round by round, and we compare medians as a
ratio (this machine is noisy). Target (issue 2): ratio >= 0.98.
Needs redis-benchmark (Debian: redis-tools).
Usage: python bench/throughput.py [--rounds 5] [--requests 200000]
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, server

from cachefleet.engine.catalog import Catalog


def benchmark(address: str, requests: int) -> dict[str, float]:
    out = subprocess.run(
        ["redis-benchmark", "-h", address, "-p", "6379", "-c", "50", "-n", str(requests), "-t", "set,get", "--csv"],
        capture_output=True, text=True, check=True,
    ).stdout
    rows = list(csv.reader(io.StringIO(out)))
    return {row[0]: float(row[1]) for row in rows[1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--requests", type=int, default=200000)
    args = parser.parse_args()
    if not shutil.which("redis-benchmark"):
        sys.exit("redis-benchmark is missing: apt-get install redis-tools")
    binary = next(b for b in Catalog.discover().binaries() if b.release.engine == "valkey" and b.release.version.startswith("8."))
    print(f"redis-benchmark -c 50 -t set,get, {args.requests} requests per round, {args.rounds} rounds; {machine()}")
    print(f"engine: {binary.release.engine} {binary.release.version}")
    with server("127.91.0.0/24") as running:
        ec = running.client()
        ec.create_replication_group(ReplicationGroupId="tput", ReplicationGroupDescription="bench", Engine="valkey",
                                    EngineVersion=binary.release.major_minor, CacheNodeType="cache.r7g.large",
                                    NumCacheClusters=1)
        while ec.describe_replication_groups(ReplicationGroupId="tput")["ReplicationGroups"][0]["Status"] != "available":
            time.sleep(0.01)
        endpoint = ec.describe_replication_groups(ReplicationGroupId="tput")["ReplicationGroups"][0]["NodeGroups"][0][
            "PrimaryEndpoint"]["Address"]
        workdir = Path(tempfile.mkdtemp(prefix="bench-by-hand-"))
        by_hand = subprocess.Popen(
            [str(binary.server), "--bind", "127.91.1.1", "--port", "6379", "--save", "", "--appendonly", "no",
             "--dir", str(workdir), "--protected-mode", "no"],
            # A session of its own, as Cachefleet's engines have: with autogroup scheduling the
            # kernel shares CPU between sessions first (see bench/auth_tls.py).
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            time.sleep(0.3)
            results: dict[str, dict[str, list[float]]] = {"cachefleet": {}, "by hand": {}}
            for round_number in range(args.rounds):
                order = [("cachefleet", endpoint), ("by hand", "127.91.1.1")]
                if round_number % 2:
                    order.reverse()
                for name, address in order:
                    for test, rps in benchmark(address, args.requests).items():
                        results[name].setdefault(test, []).append(rps)
            for test in results["cachefleet"]:
                ours = statistics.median(results["cachefleet"][test])
                theirs = statistics.median(results["by hand"][test])
                print(f"  {test}: cachefleet median {ours:,.0f} rps, by hand {theirs:,.0f} rps, ratio {ours / theirs:.3f}"
                      f" (target >= 0.98: {'met' if ours / theirs >= 0.98 else 'NOT met'})")
        finally:
            by_hand.terminate()
            by_hand.wait()
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
