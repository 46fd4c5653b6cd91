"""A dynamic parameter change reaching every node of a 9-node cluster (3 shards x 2 replicas).

Each run sends ModifyCacheParameterGroup (timeout=<new value>) and then polls CONFIG GET timeout
on the 9 nodes at once (asyncio, one connection each) until every node shows the new value;
the figure is the time from just before the API call to the last node seen. Also reported: the
API call alone. Target (issue 11): median <= 100 ms from the API call.
Usage: python bench/parameter_fanout.py [--runs 30]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import redis.asyncio as aioredis
from common import machine, server, summary


async def _seen(clients: list[aioredis.Redis], value: str, started: float) -> float:
    """Seconds from ``started`` until every node answers CONFIG GET timeout with ``value``."""
    pending = set(range(len(clients)))
    last = started
    while pending:
        answers = await asyncio.gather(*(clients[i].config_get("timeout") for i in sorted(pending)))
        now = time.perf_counter()
        for i, answer in zip(sorted(pending), answers, strict=True):
            if answer.get("timeout") == value:
                pending.discard(i)
                last = now
        if now - started > 10:
            raise TimeoutError(f"{len(pending)} node(s) never showed timeout {value}")
    return last - started


async def run(ec, addresses: list[str], runs: int) -> tuple[list[float], list[float]]:
    clients = [aioredis.Redis(host=a, port=6379, decode_responses=True) for a in addresses]
    totals, calls = [], []
    try:
        for run_number in range(runs):
            value = str(20 + run_number)
            started = time.perf_counter()
            await asyncio.to_thread(
                ec.modify_cache_parameter_group, CacheParameterGroupName="fanout",
                ParameterNameValues=[{"ParameterName": "timeout", "ParameterValue": value}],
            )
            calls.append(time.perf_counter() - started)
            totals.append(await _seen(clients, value, started))
            await asyncio.sleep(0.3)
    finally:
        for client in clients:
            await client.aclose()
    return totals, calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with server("127.97.0.0/24", ["--warm-nodes", "0"]) as running:
        ec = running.client()
        ec.create_cache_parameter_group(CacheParameterGroupName="fanout", CacheParameterGroupFamily="valkey9", Description="bench")
        ec.modify_cache_parameter_group(CacheParameterGroupName="fanout",
                                        ParameterNameValues=[{"ParameterName": "cluster-enabled", "ParameterValue": "yes"}])
        ec.create_replication_group(ReplicationGroupId="fanout", ReplicationGroupDescription="bench", Engine="valkey",
                                    CacheNodeType="cache.t4g.micro", NumNodeGroups=3, ReplicasPerNodeGroup=2,
                                    CacheParameterGroupName="fanout")
        while True:
            group = ec.describe_replication_groups(ReplicationGroupId="fanout")["ReplicationGroups"][0]
            if group["Status"] == "available":
                break
            time.sleep(0.2)
        addresses = [m["ReadEndpoint"]["Address"] for ng in group["NodeGroups"] for m in ng["NodeGroupMembers"]]
        assert len(addresses) == 9, addresses
        totals, calls = asyncio.run(run(ec, addresses, args.runs))
    print(f"machine: {machine()}")
    print(f"visible on all 9 nodes: {summary(totals)}")
    print(f"ModifyCacheParameterGroup call alone: {summary(calls)}")


if __name__ == "__main__":
    main()
