"""The replication relay (engine/relay.py) beside the engine's own replication, in one run.

One Valkey source takes a redis-benchmark SET load. Two copies follow it: a native replica
(REPLICAOF) and a relayed target (a relay in its own process: PSYNC from the source, the target
started from the relay's RDB, the stream applied to it). A marker writer SETs a counter on the
source and polls each copy until it reads it back: the time from the SET's reply to the first
read that sees it is one lag sample of that copy; the copies are polled alternately, marker by
marker, so both see the same load. The ratio relay / native is what to compare (issue 14's
target for cross-region lag: p99 <= 10 ms on loopback).
Usage: python bench/relay.py [--markers 1000] [--clients 20] [--engine valkey] [--version 9.]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from common import machine, percentile

from cachefleet.engine.access import NodeAccess
from cachefleet.engine.catalog import Catalog, EngineBinary
from cachefleet.engine.config import NodeConfig, render
from cachefleet.engine.relay import Relay
from cachefleet.engine.restore import place_rdb

NETWORK = "127.94.0"


def binary_of(engine: str, version: str) -> EngineBinary:
    return next(b for b in Catalog.discover().binaries()
                if b.release.engine == engine and b.release.version.startswith(version))


def start(binary: EngineBinary, root: Path, address: str, *, replica_of: tuple[str, int] | None = None,
          rdb: Path | None = None) -> subprocess.Popen[bytes]:
    directory = root / address
    (directory / "data").mkdir(parents=True)
    if rdb is not None:
        place_rdb(rdb, directory / "data")
    config = NodeConfig(address=address, port=6379, directory=directory, maxmemory=2**31, replica_of=replica_of)
    (directory / "engine.conf").write_text(render(config))
    process = subprocess.Popen([str(binary.server), str(directory / "engine.conf")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    client = redis.Redis(host=address, socket_timeout=5)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.dbsize()
            return process
        except (redis.ConnectionError, redis.BusyLoadingError):
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.01)


def relay_process(source: str, target: str, rdb: Path, synced, go, stop) -> None:
    """The relay, in its own process (its own interpreter, as in the control plane)."""

    async def run() -> None:
        relay = Relay(NodeAccess(source, 6379))
        with open(rdb, "wb") as out:
            await relay.full_sync(out.write)
        synced.set()
        while not go.is_set():
            await asyncio.sleep(0.01)
        applying = asyncio.create_task(relay.apply(NodeAccess(target, 6379)))
        while not stop.is_set() and not applying.done():
            await asyncio.sleep(0.05)
        applying.cancel()
        await relay.close()

    asyncio.run(run())


def lag(writer: redis.Redis, reader: redis.Redis, value: bytes) -> float:
    written = time.perf_counter()
    while reader.get("bench:marker") != value:
        pass
    return time.perf_counter() - written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markers", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--engine", default="valkey")
    parser.add_argument("--version", default="9.")
    args = parser.parse_args()
    binary = binary_of(args.engine, args.version)
    root = Path(tempfile.mkdtemp(prefix="cachefleet-bench-relay-"))
    source, native, relayed = f"{NETWORK}.11", f"{NETWORK}.12", f"{NETWORK}.13"
    processes: list[subprocess.Popen[bytes]] = []
    context = multiprocessing.get_context("spawn")
    synced, go, stop = context.Event(), context.Event(), context.Event()
    relay = None
    load = None
    try:
        processes.append(start(binary, root, source))
        src = redis.Redis(host=source, socket_timeout=5)
        pipe = src.pipeline(transaction=False)
        for i in range(100_000):
            pipe.set(f"seed:{i}", "x" * 64)
        pipe.execute()
        processes.append(start(binary, root, native, replica_of=(source, 6379)))
        relay = context.Process(target=relay_process, args=(source, relayed, root / "relay.rdb", synced, go, stop))
        relay.start()
        if not synced.wait(60):
            raise TimeoutError("the relay's full sync")
        processes.append(start(binary, root, relayed, rdb=root / "relay.rdb"))
        go.set()
        copies = {"native replica": redis.Redis(host=native, socket_timeout=5),
                  "relay": redis.Redis(host=relayed, socket_timeout=5)}
        for copy in copies.values():
            deadline = time.monotonic() + 30
            while copy.dbsize() < 100_000 and time.monotonic() < deadline:
                time.sleep(0.05)
        load = subprocess.Popen(
            [shutil.which("redis-benchmark") or "redis-benchmark", "-h", source, "-p", "6379", "-t", "set",
             "-n", "100000000", "-c", str(args.clients), "-r", "100000", "-d", "64", "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        samples: dict[str, list[float]] = {name: [] for name in copies}
        for i in range(args.markers):
            value = str(i).encode()
            src.set("bench:marker", value)
            for name, copy in (copies.items() if i % 2 == 0 else reversed(copies.items())):
                samples[name].append(lag(src, copy, value))
            time.sleep(0.002)
        ops = int(src.info("stats")["instantaneous_ops_per_sec"])
        offsets = src.info("replication")
    finally:
        if load is not None:
            load.terminate()
            load.wait(10)
        stop.set()
        if relay is not None:
            relay.join(10)
        for process in processes:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)
    print(f"replication lag under ~{ops} SET/s ({args.clients} clients, {args.engine} {binary.release.version}), "
          f"{args.markers} markers; {machine()}")
    for name, values in samples.items():
        print(f"  {name:15} p50 {percentile(values, 0.5) * 1e3:.3f} ms  p99 {percentile(values, 0.99) * 1e3:.3f} ms  "
              f"max {max(values) * 1e3:.3f} ms")
    ratio = percentile(samples["relay"], 0.99) / percentile(samples["native replica"], 0.99)
    print(f"  relay / native p99: {ratio:.1f}x; source offsets at the end: "
          f"{ {k: v for k, v in offsets.items() if k.startswith('slave')} }")


if __name__ == "__main__":
    main()
