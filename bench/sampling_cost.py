"""What sampling every node every second costs the control plane, with 100 nodes.

100 single-node replication groups (100 engine processes), then the control plane is left
alone for --seconds: its whole CPU time (utime + stime from /proc, every task of the process:
sampler, alarm evaluation, reconciler resync, API) is measured, and the sampler's own share is
read from its counter on /metrics. Target (issue 5): <= 5 % of one core.
Usage: python bench/sampling_cost.py [--groups 100] [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import re
import time
import urllib.request
from pathlib import Path

from common import machine, server

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def scrape(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    print(f"{args.groups} single-node groups sampled every second, measured over {args.seconds} s; {machine()}")
    with server("127.93.0.0/20") as running:
        ec = running.client()
        for index in range(args.groups):
            ec.create_replication_group(ReplicationGroupId=f"cost-{index:03d}", ReplicationGroupDescription="bench",
                                        Engine="valkey", CacheNodeType="cache.t4g.micro")
        while True:
            groups, marker = [], None
            while True:
                page = ec.describe_replication_groups(**({"Marker": marker} if marker else {}))
                groups += page["ReplicationGroups"]
                marker = page.get("Marker")
                if not marker:
                    break
            if len(groups) == args.groups and all(g["Status"] == "available" for g in groups):
                break
            time.sleep(0.5)
        assert running.process is not None
        pid = running.process.pid
        deadline = time.monotonic() + 30
        while scrape(running.url, "cachefleet_sampled_nodes") < args.groups and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(5)
        cpu_before, sampler_before, ticks_before = (cpu_seconds(pid), scrape(running.url, "cachefleet_sampler_cpu_seconds_total"),
                                                    scrape(running.url, "cachefleet_sampler_ticks_total"))
        started = time.monotonic()
        time.sleep(args.seconds)
        wall = time.monotonic() - started
        cpu_after, sampler_after, ticks_after = (cpu_seconds(pid), scrape(running.url, "cachefleet_sampler_cpu_seconds_total"),
                                                 scrape(running.url, "cachefleet_sampler_ticks_total"))
        nodes = scrape(running.url, "cachefleet_sampled_nodes")
        total = (cpu_after - cpu_before) / wall * 100
        sampler = (sampler_after - sampler_before) / wall * 100
        ticks = ticks_after - ticks_before
        print(f"  nodes sampled per tick: {nodes:.0f}; ticks: {ticks:.0f} in {wall:.0f} s")
        print(f"  control plane CPU, whole process: {total:.2f} % of one core (target <= 5 %: {'met' if total <= 5 else 'NOT met'})")
        print(f"  of which sampling ticks (INFO to every node, /proc, derive, write): {sampler:.2f} % "
              f"({(sampler_after - sampler_before) / max(ticks, 1) * 1000:.1f} ms per tick)")
        print(f"  control plane RSS: {running.rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
