"""What sampling every node every second costs the control plane, with 100 nodes.

100 single-node replication groups (100 engine processes). The control plane is then left
alone for --seconds at a time, alternately with sampling (the default) and without
(``--sample-interval 0``), restarting it in between (the nodes keep running and are adopted):
its whole CPU time (utime + stime from /proc: every task of the process) is measured in each
phase, in the order on, off, on, off, on. The cost of sampling is the difference; the sampler's
own count of its CPU time (the synchronous parts of its ticks) is shown next to it.
Target (issue 5): <= 5 % of one core.
Usage: python bench/sampling_cost.py [--groups 100] [--seconds 60]
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import time
import urllib.request

from common import cpu_seconds, machine, server, wait_all_available


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
        wait_all_available(ec, args.groups, interval=0.5)
        phases: dict[str, list[float]] = {"sampling": [], "no sampling": []}
        sampler_share: list[float] = []
        per_tick: list[float] = []
        for phase in range(5):
            sampling = phase % 2 == 0
            if phase:
                assert running.process is not None
                running.process.send_signal(signal.SIGTERM)
                running.process.wait(timeout=30)
                running.start(*([] if sampling else ["--sample-interval", "0"]))
            assert running.process is not None
            pid = running.process.pid
            if sampling:
                deadline = time.monotonic() + 30
                while scrape(running.url, "cachefleet_sampled_nodes") < args.groups and time.monotonic() < deadline:
                    time.sleep(0.5)
            time.sleep(5)
            cpu_before = cpu_seconds(pid)
            sampler_before = scrape(running.url, "cachefleet_sampler_cpu_seconds_total")
            ticks_before = scrape(running.url, "cachefleet_sampler_ticks_total")
            started = time.monotonic()
            time.sleep(args.seconds)
            wall = time.monotonic() - started
            total = (cpu_seconds(pid) - cpu_before) / wall * 100
            phases["sampling" if sampling else "no sampling"].append(total)
            if sampling:
                spent = scrape(running.url, "cachefleet_sampler_cpu_seconds_total") - sampler_before
                ticks = scrape(running.url, "cachefleet_sampler_ticks_total") - ticks_before
                sampler_share.append(spent / wall * 100)
                per_tick.append(spent / max(ticks, 1) * 1000)
                nodes = scrape(running.url, "cachefleet_sampled_nodes")
                print(f"  phase {phase + 1}, sampling {nodes:.0f} nodes: control plane {total:.2f} % of one core "
                      f"({ticks:.0f} ticks in {wall:.0f} s)", flush=True)
            else:
                print(f"  phase {phase + 1}, no sampling: control plane {total:.2f} % of one core", flush=True)
        on = statistics.median(phases["sampling"])
        off = statistics.median(phases["no sampling"])
        cost = on - off
        print(f"  median: {on:.2f} % with sampling, {off:.2f} % without: sampling costs {cost:.2f} % of one core "
              f"(target <= 5 %: {'met' if cost <= 5 else 'NOT met'})")
        print(f"  the sampler's own count: {statistics.median(sampler_share):.2f} % "
              f"({statistics.median(per_tick):.1f} ms per tick for {args.groups} nodes)")
        print(f"  control plane RSS: {running.rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
