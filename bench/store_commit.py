"""What a durable commit costs: the state store's transaction with SQLite's synchronous=FULL
(every commit on disk before the request is answered; what Cachefleet runs) beside NORMAL (what it
ran before: WAL commits left in the page cache until a checkpoint, lost on a disk error or a
power cut), in one run, interleaved, on the same file system.

Each commit is what a pass writes when a node changes: a cache cluster record and an event.
Usage: python bench/store_commit.py [--commits 500] [--dir DIR]  (DIR: a file system to measure;
default: a temporary directory)
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from common import machine, percentile

from cachefleet.domain.events import Event, EventSourceType
from cachefleet.domain.identifiers import Region
from cachefleet.domain.subnet_groups import CacheSubnetGroup
from cachefleet.store import sqlite


def store(directory: Path, mode: str) -> sqlite.SqliteStore:
    sqlite.SYNCHRONOUS = mode
    try:
        return sqlite.SqliteStore(directory / f"state-{mode}.db")
    finally:
        sqlite.SYNCHRONOUS = "FULL"


def commit(target: sqlite.SqliteStore, n: int) -> float:
    record = CacheSubnetGroup(region=Region("us-east-1"), name=f"bench-{n % 50}", description=f"commit {n}",
                              subnets=(), vpc_id="vpc-bench")
    started = time.perf_counter()
    with target.transaction() as tx:
        tx.put(record)
        tx.add_event(Event(Region("us-east-1"), EventSourceType.CACHE_SUBNET_GROUP, record.name,
                           f"Cache subnet group {record.name} modified", dt.datetime.now(dt.UTC)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as root:
        stores = {mode: store(Path(root), mode) for mode in ("NORMAL", "FULL")}
        spent: dict[str, list[float]] = {mode: [] for mode in stores}
        for n in range(args.commits):
            for mode, target in stores.items():  # interleaved: both see the same moment of the machine
                spent[mode].append(commit(target, n))
        for target in stores.values():
            target.close()
    print(f"state store commit (a record and an event), {args.commits} each, interleaved; {machine()}")
    for mode, values in spent.items():
        print(f"  synchronous={mode:6}  median {statistics.median(values) * 1e3:.3f} ms  "
              f"p90 {percentile(values, 0.9) * 1e3:.3f} ms  p99 {percentile(values, 0.99) * 1e3:.3f} ms")
    ratio = statistics.median(spent["FULL"]) / statistics.median(spent["NORMAL"])
    print(f"  FULL / NORMAL median: {ratio:.1f}x")


if __name__ == "__main__":
    main()
