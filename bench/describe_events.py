"""DescribeEvents latency against the number of events in the window it asks about.

The load test's mix asks DescribeEvents(Duration=10, MaxRecords=50): a window that fills for the
first 10 minutes of a busy run. This measures, in one run, the server's answer (raw signed requests)
and the store's two ways of reading it -- the whole window (what DescribeEvents did before it read a
page) and one page (limit) -- at each window size; the ratios are what to compare.
Events are added to the running server's store from this process (the same SqliteStore, WAL).
Usage: python bench/describe_events.py [--sizes 100,1000,10000,30000] [--calls 100]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

from common import machine, percentile, raw_request, server

from cachefleet.domain.events import Event, EventSourceType
from cachefleet.domain.identifiers import Region
from cachefleet.store.sqlite import SqliteStore


def timed(call, times: int) -> list[float]:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        spent.append(time.perf_counter() - started)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,1000,10000,30000")
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"DescribeEvents(Duration=10, MaxRecords=50) against the events of the window; {machine()}")
    with server("127.93.0.0/24") as running:
        store = SqliteStore(running.root / "data" / "state.db")
        params = {"Action": "DescribeEvents", "Version": "2015-02-02", "Duration": "10", "MaxRecords": "50"}
        added = 0
        medians: dict[int, tuple[float, float, float]] = {}
        for size in sizes:
            now = dt.datetime.now(dt.UTC)
            with store.transaction() as tx:
                for n in range(added, size):  # spread over the last 9 minutes
                    when = now - dt.timedelta(seconds=540 * (1 - n / size))
                    tx.add_event(Event(Region("us-east-1"), EventSourceType.CACHE_SUBNET_GROUP, f"bench-{n % 50}",
                                       f"Cache subnet group bench-{n % 50} modified", when))
            added = size
            window = {"start": now - dt.timedelta(minutes=10), "end": now + dt.timedelta(minutes=1)}
            body = raw_request(running.url, params)
            assert body.count(b"<Event>") == 50, body[:300]
            served = timed(lambda: raw_request(running.url, params), args.calls)
            whole = timed(lambda w=window: list(store.events("us-east-1", **w)), max(5, args.calls // 10))
            page = timed(lambda w=window: list(store.events("us-east-1", **w, limit=51)), args.calls)
            medians[size] = (statistics.median(served), statistics.median(whole), statistics.median(page))
            print(f"  {size:>6} events: DescribeEvents median {medians[size][0] * 1000:.2f} ms, "
                  f"p99 {percentile(served, 0.99) * 1000:.2f} ms; store: whole window "
                  f"{medians[size][1] * 1000:.2f} ms, one page {medians[size][2] * 1000:.3f} ms")
        store.close()
    first, last = sizes[0], sizes[-1]
    print(f"  {last} vs {first} events: DescribeEvents x{medians[last][0] / medians[first][0]:.2f}; "
          f"whole window x{medians[last][1] / medians[first][1]:.1f}, one page x{medians[last][2] / medians[first][2]:.2f}")


if __name__ == "__main__":
    main()
