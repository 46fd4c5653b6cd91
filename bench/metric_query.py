"""GetMetricStatistics over 3 hours of 1-second data for one metric.

3 hours of 1-second samples of every metric of one node are synthesized straight into the
node's ring file, then the server answers signed AWS JSON requests (what boto3 and the AWS
CLI send), timed without botocore's response parsing. Target (issue 5): p99 <= 50 ms.
Usage: python bench/metric_query.py [--calls 300]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
import urllib.request

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from common import BenchServer, machine, percentile, summary

from cachefleet.monitor import catalog
from cachefleet.monitor.timeseries import SeriesKey, TimeSeriesStore

HOURS = 3
DIMENSIONS = [{"Name": "CacheClusterId", "Value": "synthetic-001"}, {"Name": "CacheNodeId", "Value": "0001"}]


def call(url: str, operation: str, body: dict) -> dict:
    request = AWSRequest(method="POST", url=url + "/", data=json.dumps(body).encode(), headers={
        "X-Amz-Target": f"GraniteServiceVersion20100801.{operation}", "Content-Type": "application/x-amz-json-1.0"})
    SigV4Auth(Credentials("bench", "bench"), "monitoring", "us-east-1").add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST")
    with urllib.request.urlopen(raw, timeout=30) as response:
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    print(f"{HOURS} h of 1-second samples of one node; {args.calls} calls per query; {machine()}")
    bench = BenchServer("127.95.0.0/24")
    now = int(time.time())
    store = TimeSeriesStore(bench.root / "data" / "metrics")
    rng = random.Random(5)
    started = time.perf_counter()
    for second in range(now - HOURS * 3600, now):
        store.write(SeriesKey("us-east-1", "synthetic-001", "0001"), second,
                    [math.nan if i in catalog.LATENCY_COLUMNS[-3:] else rng.random() * 1000 for i in range(catalog.WIDTH)])
        if second % 60 == 59:
            store.roll_up(second - 59)
    store.close()
    print(f"  synthesized {HOURS * 3600} rows in {time.perf_counter() - started:.1f} s")
    bench.start()
    try:
        start, end = now - HOURS * 3600, now
        queries = {
            "GetMetricStatistics, Period 60 (180 datapoints, all 5 statistics)": ("GetMetricStatistics", {
                "Namespace": "AWS/ElastiCache", "MetricName": "GetTypeCmds", "Dimensions": DIMENSIONS, "StartTime": start,
                "EndTime": end, "Period": 60, "Statistics": ["SampleCount", "Average", "Sum", "Minimum", "Maximum"]}),
            "GetMetricStatistics, Period 10 (1,080 datapoints, Average + p99)": ("GetMetricStatistics", {
                "Namespace": "AWS/ElastiCache", "MetricName": "GetTypeCmds", "Dimensions": DIMENSIONS, "StartTime": start,
                "EndTime": end, "Period": 10, "Statistics": ["Average"], "ExtendedStatistics": ["p99"]}),
            "GetMetricData, Period 1 (10,800 datapoints)": ("GetMetricData", {
                "StartTime": start, "EndTime": end, "MetricDataQueries": [{"Id": "m1", "MetricStat": {"Metric": {
                    "Namespace": "AWS/ElastiCache", "MetricName": "GetTypeCmds", "Dimensions": DIMENSIONS},
                    "Period": 1, "Stat": "Sum"}}]}),
        }
        for label, (operation, body) in queries.items():
            first = call(bench.url, operation, body)
            count = len(first.get("Datapoints", [])) or len(first["MetricDataResults"][0]["Values"])
            times = []
            for _ in range(args.calls):
                begun = time.perf_counter()
                call(bench.url, operation, body)
                times.append(time.perf_counter() - begun)
            p99 = percentile(times, 0.99)
            print(f"  {label}: {count} datapoints returned; {summary(times)}, p99 {p99 * 1000:.1f} ms"
                  f" (target <= 50 ms: {'met' if p99 <= 0.05 else 'NOT met'})")
    finally:
        bench.stop()


if __name__ == "__main__":
    main()
