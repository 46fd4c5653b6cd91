"""A cluster of many shards through Cachefleet (issue 18's 500 x 2, at the sizes a machine can hold).

For each S of --shards: a fresh server (`--max-nodes` 2S + 10, `--warm-nodes 0`) gets
CreateReplicationGroup NumNodeGroups=S, ReplicasPerNodeGroup=1 (2S engine processes), and:
- create: the call to the group `available` (--create-timeout at most; past it the run says so
  and goes on to the next size);
- a cluster client (redis-py RedisCluster on the configuration endpoint) writes and reads back
  --keys keys;
- failover: kill -9 of the primary of the shard owning one key, to the first write of that key
  answered through the cluster client (then the group recovers: the lost node back as a replica);
- reshard: ModifyReplicationGroupShardConfiguration to S + 1 node groups, to `available`, and
  every key still readable;
- the control plane's CPU (% of one core, /proc/PID/stat) and the engines' CPU (all 2S
  processes), over --window seconds with the group at rest.
The machine's load average is printed with each size.
Usage: python bench/many_shards.py [--shards 25,50,100] [--keys 2000] [--window 20] [--create-timeout 600]
"""

from __future__ import annotations

import argparse
import time

from common import cpu_seconds, load_average, machine, server
from failover import engine_pid, engine_pids, kill_until_written, primary, recovered, wait
from redis.cluster import RedisCluster

from cachefleet.domain import slots as slotmath

NETWORK = "127.119.0.0/20"
GROUP = "shards"


def status(ec) -> str:
    return ec.describe_replication_groups(ReplicationGroupId=GROUP)["ReplicationGroups"][0]["Status"]


def until_available(ec, timeout: float) -> float | None:
    started = time.perf_counter()
    while status(ec) != "available":
        if time.perf_counter() - started > timeout:
            return None
        time.sleep(0.1)
    return time.perf_counter() - started


def measure(shards: int, args: argparse.Namespace) -> None:
    print(f"S = {shards} shards x 2 ({2 * shards} nodes); load before {load_average()}", flush=True)
    with server(NETWORK, extra=["--warm-nodes", "0", "--max-nodes", str(2 * shards + 10)]) as running:
        assert running.process is not None
        ec = running.client()
        started = time.perf_counter()
        ec.create_replication_group(ReplicationGroupId=GROUP, ReplicationGroupDescription="bench", Engine="valkey",
                                    CacheNodeType="cache.t4g.micro", NumNodeGroups=shards, ReplicasPerNodeGroup=1)
        created = until_available(ec, args.create_timeout)
        if created is None:
            print(f"  not available after {args.create_timeout:.0f} s (status {status(ec)}; load {load_average()})", flush=True)
            return
        print(f"  create to available: {time.perf_counter() - started:.1f} s; load {load_average()}", flush=True)
        endpoint = ec.describe_replication_groups(ReplicationGroupId=GROUP)["ReplicationGroups"][0]["ConfigurationEndpoint"]
        client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], socket_timeout=2, socket_connect_timeout=2)
        keys = [f"key:{i}" for i in range(args.keys)]
        for key in keys:
            client.set(key, key)
        assert all(client.get(key) == key.encode() for key in keys)
        print(f"  cluster client: {len(keys)} keys written and read back", flush=True)

        pids = [running.process.pid]
        engines = list(engine_pids(running.root / "data").values())
        plane_before, engines_before, began = cpu_seconds(*pids), cpu_seconds(*engines), time.monotonic()
        time.sleep(args.window)
        elapsed = time.monotonic() - began
        plane = (cpu_seconds(*pids) - plane_before) / elapsed * 100
        engines_cpu = (cpu_seconds(*engines) - engines_before) / elapsed * 100
        print(f"  at rest: control plane {plane:.1f} % of one core, RSS {running.rss_mb():.0f} MB; "
              f"{len(engines)} engines {engines_cpu:.1f} % of one core; load {load_average()}", flush=True)

        group = ec.describe_replication_groups(ReplicationGroupId=GROUP)["ReplicationGroups"][0]
        key = keys[0]
        slot = client.keyslot(key)
        index = next(i for i, ng in enumerate(group["NodeGroups"]) if slot in slotmath.parse(ng["Slots"]))
        pid = engine_pid(running.root / "data", primary(group, index)["ReadEndpoint"]["Address"])
        failover = kill_until_written(pid, client, key)
        print(f"  failover (kill -9 to a write of the shard's key): {failover * 1000:.0f} ms", flush=True)
        wait(lambda: recovered(ec, GROUP), timeout=args.create_timeout)

        started = time.perf_counter()
        ec.modify_replication_group_shard_configuration(ReplicationGroupId=GROUP, NodeGroupCount=shards + 1,
                                                        ApplyImmediately=True)
        time.sleep(0.2)
        resharded = until_available(ec, args.create_timeout)
        if resharded is None:
            print(f"  reshard to {shards + 1}: not available after {args.create_timeout:.0f} s", flush=True)
        else:
            ok = sum(client.get(k) is not None for k in keys)
            print(f"  reshard to {shards + 1} node groups: {time.perf_counter() - started:.1f} s; {ok} of "
                  f"{len(keys)} keys readable", flush=True)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", default="25,50,100", help="comma-separated shard counts (2 nodes each)")
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--create-timeout", type=float, default=600.0)
    args = parser.parse_args()
    print(f"many shards x 1 replica through Cachefleet; {machine()}", flush=True)
    for shards in (int(s) for s in args.shards.split(",")):
        measure(shards, args)


if __name__ == "__main__":
    main()
