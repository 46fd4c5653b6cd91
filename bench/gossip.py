"""The cluster bus's own cost (issue 18): CPU and messages of gossip alone, by cluster size and
``cluster-node-timeout``.

For each N of --nodes, N engine processes rendered as Cachefleet renders a cluster node
(``engine/config.py``; hz 10 as rendered, unless --hz) form one cluster of N/2 shards of a primary
and one replica, the slots split evenly: the shape of ``NumNodeGroups=N/2,
ReplicasPerNodeGroup=1``. No control plane and no client traffic: what is measured is the
engines' cluster bus. Once every node knows all N and says ``cluster_state:ok``, for each hz of
--hz and timeout of --timeouts, ``CONFIG SET hz`` and ``cluster-node-timeout`` on every node, a
settling pause of --settle seconds, then over --window seconds:
- the engines' CPU (utime + stime of all N processes from /proc/PID/stat), % of one core;
- bus messages sent per second, summed (``CLUSTER INFO cluster_stats_messages_sent``);
- how many PFAIL/FAIL flags the nodes' CLUSTER NODES show (a node taken for failing: 0 at rest).

A node pings each peer it has not heard from in ``cluster-node-timeout / 2`` (plus one random
peer a second), each message carries gossip about a tenth of the cluster, and the engine's cluster
cron walks every peer every 100 ms (at most ``hz`` times a second): the table says what a size costs
at rest. For a timeout of 60 s, --settle and --window should be 30 s or more (a peer heard from
recently is pinged only after half the timeout).
On 2 cores, 300 nodes did not form in reasonable time (BENCHMARKS.md): the default stops at 200.
Usage: python bench/gossip.py [--nodes 100,200] [--meet all|star] [--timeouts 15000,60000] [--hz 10,1]
                              [--window 10] [--settle 5]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from common import cpu_seconds, load_average, machine

from cachefleet.domain import slots as slotmath
from cachefleet.engine.catalog import Catalog
from cachefleet.engine.config import NodeConfig, render


def address(index: int) -> str:
    return f"127.122.{index // 250}.{index % 250 + 1}"


def info_field(client: redis.Redis, name: str) -> int:
    for line in client.execute_command("CLUSTER", "INFO").decode().splitlines():
        if line.startswith(name + ":"):
            return int(line.split(":", 1)[1])
    raise KeyError(name)


def wait_for(what: str, check, timeout: float) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(what)
        time.sleep(0.2)
    return time.monotonic() - started


class Cluster:
    def __init__(self, binary, nodes: int) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bench-gossip-"))
        self.addresses = [address(i) for i in range(nodes)]
        self.processes: list[subprocess.Popen[bytes]] = []
        for where in self.addresses:
            directory = self.root / where
            (directory / "data").mkdir(parents=True)
            config = directory / "engine.conf"
            config.write_text(render(NodeConfig(address=where, port=6379, directory=directory, maxmemory=2**26,
                                                cluster=True)))
            self.processes.append(subprocess.Popen([str(binary.server), str(config)],
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.clients = [redis.Redis(host=where, socket_timeout=30) for where in self.addresses]

    def form(self, meet: str) -> float:
        """Slots, meets and replicas as a hand-made cluster; seconds until all agree. ``meet``:
        "all", every node meets every other (as control/workflows/sharded.py does), or "star",
        every node meets the first and gossip spreads the rest."""
        started = time.monotonic()
        for client in self.clients:
            wait_for("engine up", lambda c=client: _pings(c), 30)
        shards = len(self.clients) // 2
        primaries, replicas = self.clients[:shards], self.clients[shards:]
        for client, owned in zip(primaries, slotmath.even(shards), strict=True):
            for first, last in slotmath.ranges_of(owned):
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        if meet == "star":
            for client in self.clients[1:]:
                client.execute_command("CLUSTER", "MEET", self.addresses[0], 6379)
        else:
            for index, client in enumerate(self.clients):
                pipe = client.pipeline(transaction=False)
                for other in self.addresses[index + 1:]:
                    pipe.execute_command("CLUSTER", "MEET", other, 6379)
                pipe.execute()
        count = len(self.clients)
        wait_for("every node knows every node",
                 lambda: all(info_field(c, "cluster_known_nodes") == count for c in self.clients), 1800)
        for primary, replica in zip(primaries, replicas, strict=True):
            replica.execute_command("CLUSTER", "REPLICATE", primary.execute_command("CLUSTER", "MYID").decode())
        wait_for("cluster_state:ok everywhere",
                 lambda: all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in self.clients), 1800)
        return time.monotonic() - started

    def failing(self) -> int:
        """Nodes flagged fail? or fail in anyone's CLUSTER NODES (each pair counted once per viewer)."""
        seen = 0
        for client in self.clients:
            for line in client.execute_command("CLUSTER", "NODES").decode().splitlines():
                flags = line.split()[2].split(",")
                if "fail" in flags or "fail?" in flags:
                    seen += 1
        return seen

    def measure(self, timeout_ms: int, hz: int, window: float, settle: float) -> dict[str, float]:
        for client in self.clients:
            client.config_set("cluster-node-timeout", timeout_ms)
            client.config_set("hz", hz)
        time.sleep(settle)
        pids = [p.pid for p in self.processes]
        sent_before = sum(info_field(c, "cluster_stats_messages_sent") for c in self.clients)
        cpu_before, started = cpu_seconds(*pids), time.monotonic()
        time.sleep(window)
        cpu_after, elapsed = cpu_seconds(*pids), time.monotonic() - started
        sent_after = sum(info_field(c, "cluster_stats_messages_sent") for c in self.clients)
        return {"cpu": 100 * (cpu_after - cpu_before) / elapsed, "messages": (sent_after - sent_before) / elapsed,
                "failing": self.failing()}

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        for process in self.processes:
            process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="100,200", help="comma-separated even node counts")
    parser.add_argument("--timeouts", default="15000,60000", help="comma-separated cluster-node-timeout values (ms)")
    parser.add_argument("--hz", default="10", help="comma-separated hz values (the engine's cron: clusterCron runs "
                        "every 100 ms, at most hz times a second)")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--meet", choices=("all", "star"), default="all", help="how the cluster is formed")
    parser.add_argument("--engine", default="valkey", help="valkey or redis (the newest build of it)")
    args = parser.parse_args()
    builds = sorted((b for b in Catalog.discover().binaries() if b.release.engine == args.engine),
                    key=lambda b: b.release.version)
    binary = builds[-1]
    print(f"gossip cost; {binary.release.engine} {binary.release.version}; {machine()}", flush=True)
    print("| nodes | hz | cluster-node-timeout | engines' CPU (% of one core) | bus messages sent / s | fail flags seen |")
    print("|---|---|---|---|---|---|", flush=True)
    for nodes in (int(n) for n in args.nodes.split(",")):
        cluster = Cluster(binary, nodes)
        try:
            formed = cluster.form(args.meet)
            print(f"<!-- {nodes} nodes formed ({args.meet} meet) in {formed:.1f} s; load {load_average()} -->",
                  flush=True)
            for hz in (int(h) for h in args.hz.split(",")):
                for timeout_ms in (int(t) for t in args.timeouts.split(",")):
                    figures = cluster.measure(timeout_ms, hz, args.window, args.settle)
                    print(f"| {nodes} | {hz} | {timeout_ms} ms | {figures['cpu']:.1f} % | {figures['messages']:,.0f} "
                          f"| {figures['failing']:.0f} |", flush=True)
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
