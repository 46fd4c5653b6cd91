"""A serverless cache's metrics as a whole (dimension clusterId), with real engines and a known
workload: 1,000 SETs of 1 KiB and 1,000 GETs of them are ~2,000 ECPUs as ElastiCache documents
them (one per KiB transferred by a simple read or write), within 5 %, and within 0.5 % of the
formula on the workload's own bytes (the control plane's are not billed); also when the workload comes
right after `available`, before the monitor's first sample of nodes taken from the warm pool."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time

from redis.cluster import RedisCluster

from cachefleet.engine.resp import encode
from cachefleet.monitor.serverless import FRAMING_BYTES, KILOBYTE
from helpers import engine_processes, wait_for

NAME = "sl-ecpu"
CACHE = [{"Name": "clusterId", "Value": NAME}]
VALUE = "e" * 1024
DOCUMENTED = 2000  # 2,000 simple requests of 1 KiB each
# The same by Cachefleet's formula on the workload's own bytes (keys and framing beyond FRAMING_BYTES
# count as data): SET key:0000 <1 KiB> in, +OK out; GET key:0000 in, the bulk reply out.
WIRE = 1000 * (len(encode("SET", "key:0000", VALUE)) + 5 + len(encode("GET", "key:0000")) + len(f"$1024\r\n{VALUE}\r\n")
               - 2 * FRAMING_BYTES) / KILOBYTE


def series(cw, metric, start, end, stat="Sum"):
    result = cw.get_metric_data(
        MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": {"Namespace": "AWS/ElastiCache", "MetricName": metric,
                                                                  "Dimensions": CACHE}, "Period": 1, "Stat": stat}}],
        StartTime=start, EndTime=end)["MetricDataResults"]
    return {t: v for r in result for t, v in zip(r["Timestamps"], r["Values"], strict=True)}


def statistic(cw, metric, start, end, stat="Sum"):
    points = cw.get_metric_statistics(Namespace="AWS/ElastiCache", MetricName=metric, Dimensions=CACHE,
                                      StartTime=start, EndTime=end, Period=60, Statistics=[stat])["Datapoints"]
    return sum(p[stat] for p in points)


def test_ecpus_and_the_cache_metrics_of_a_known_workload(make_server):
    server = make_server()
    ec, cw = server.client(), server.client("cloudwatch")
    ec.create_serverless_cache(ServerlessCacheName=NAME, Engine="valkey")
    cache = wait_for(lambda: (c := ec.describe_serverless_caches(ServerlessCacheName=NAME)["ServerlessCaches"][0])[
        "Status"] == "available" and c, interval=0.05, what="serverless cache available")
    endpoint = cache["Endpoint"]
    client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], decode_responses=True)
    # The cache's own series exists once the sampler has seen its nodes twice.
    wait_for(lambda: series(cw, "BytesUsedForCache", dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30),
                            dt.datetime.now(dt.UTC)), timeout=15, interval=0.2, what="the cache's first samples")

    start = dt.datetime.fromtimestamp(int(time.time()), dt.UTC)  # this second's samples cover what follows
    for i in range(1000):
        client.set(f"key:{i:04d}", VALUE)
    for i in range(1000):
        assert client.get(f"key:{i:04d}") == VALUE
    done = time.time()
    # Every command is in a sample once the sampler has written two seconds past the last one.
    end = dt.datetime.fromtimestamp(int(done) + 3, dt.UTC)
    wait_for(lambda: max(series(cw, "BytesUsedForCache", start, end + dt.timedelta(seconds=5)), default=start) >= end,
             timeout=15, interval=0.2, what="samples past the workload")
    ecpus = sum(series(cw, "ElastiCacheProcessingUnits", start, end).values())
    print(f"ECPUs of 1,000 SETs + 1,000 GETs of 1 KiB: {ecpus:.1f} (documented {DOCUMENTED}, on the wire {WIRE:.1f})")
    assert abs(ecpus - DOCUMENTED) <= 0.05 * DOCUMENTED, ecpus
    # Nothing but the workload is billed: not the control plane's polling of a new cache nor its
    # health probes (engine/traffic.py; ~45 KB a creation, billed before: 1-6 % over).
    assert abs(ecpus - WIRE) <= 0.005 * WIRE, (ecpus, WIRE)

    assert sum(series(cw, "GetTypeCmds", start, end).values()) == 1000
    assert sum(series(cw, "SetTypeCmds", start, end).values()) == 1000
    assert sum(series(cw, "TotalCmdsCount", start, end).values()) == 2000
    assert sum(series(cw, "CacheHits", start, end).values()) == 1000
    assert sum(series(cw, "CacheMisses", start, end).values()) == 0
    assert 0 < max(series(cw, "SuccessfulReadRequestLatency", start, end, "Maximum").values()) < 1000
    assert 0 < max(series(cw, "SuccessfulWriteRequestLatency", start, end, "Maximum").values()) < 1000
    assert min(series(cw, "CacheHitRate", start, end, "Minimum").values()) == 100
    assert max(series(cw, "BytesUsedForCache", start, end, "Maximum").values()) > 1_000_000
    assert max(series(cw, "CurrItems", start, end, "Maximum").values()) == 1000
    assert max(series(cw, "CurrConnections", start, end, "Maximum").values()) >= 1
    # GetMetricStatistics reads the same series (per minute here), ListMetrics names it by clusterId only.
    minute_start = start - dt.timedelta(seconds=start.second)
    assert statistic(cw, "GetTypeCmds", minute_start, end + dt.timedelta(seconds=60)) >= 1000
    listed = cw.list_metrics(Namespace="AWS/ElastiCache", Dimensions=[{"Name": "clusterId", "Value": NAME}])["Metrics"]
    assert {"ElastiCacheProcessingUnits", "BytesUsedForCache", "CurrConnections", "SuccessfulReadRequestLatency"} <= {
        m["MetricName"] for m in listed}
    every = cw.list_metrics(Namespace="AWS/ElastiCache")["Metrics"]
    assert not [m for m in every if any("serverless--" in d["Value"] for d in m["Dimensions"])]
    client.close()


def _age(pid: int) -> float:
    """Seconds since a process started (from /proc, as the monitor reads it)."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        started = int(handle.read().rsplit(b")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime", "rb") as handle:
        return float(handle.read().split()[0]) - started


def test_commands_sent_before_a_warm_nodes_first_sample_are_metered(make_server):
    server = make_server("--warm-nodes", "2")
    ec, cw = server.client(), server.client("cloudwatch")
    # The cache's nodes come from the warm pool, older than a fresh node (the monitor's 10 s): nodes the
    # monitor has never sampled, whose counters since their start are not all a client's.
    wait_for(lambda: len(warm := engine_processes(server.data_dir)) >= 2 and min(_age(pid) for _, pid in warm) > 11,
             timeout=40, interval=0.2, what="two warm nodes older than 10 s")
    start = dt.datetime.fromtimestamp(int(time.time()), dt.UTC)
    ec.create_serverless_cache(ServerlessCacheName=NAME, Engine="valkey")
    cache = wait_for(lambda: (c := ec.describe_serverless_caches(ServerlessCacheName=NAME)["ServerlessCaches"][0])[
        "Status"] == "available" and c, interval=0.02, what="serverless cache available")
    endpoint = cache["Endpoint"]
    client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], decode_responses=True)
    pipe = client.pipeline(transaction=False)  # in a few round trips: before the monitor's next tick
    for i in range(1000):
        pipe.set(f"key:{i:04d}", VALUE)
    for i in range(1000):
        pipe.get(f"key:{i:04d}")
    replies = pipe.execute()
    assert replies[:1000] == [True] * 1000 and replies[1000:] == [VALUE] * 1000
    done = time.time()
    end = dt.datetime.fromtimestamp(int(done) + 3, dt.UTC)
    wait_for(lambda: max(series(cw, "BytesUsedForCache", start, end + dt.timedelta(seconds=5)), default=start) >= end,
             timeout=15, interval=0.2, what="samples past the workload")
    by_second = {metric: {t.strftime("%S"): v for t, v in sorted(series(cw, metric, start, end).items()) if v}
                 for metric in ("ElastiCacheProcessingUnits", "TotalCmdsCount", "SetTypeCmds", "GetTypeCmds")}
    ecpus = sum(by_second["ElastiCacheProcessingUnits"].values())
    print(f"ECPUs of 1,000 SETs + 1,000 GETs of 1 KiB right after available: {ecpus:.1f} (documented {DOCUMENTED})")
    # Each second's figures in the message: a mismatch shows which period (a node's first or a later one) holds it.
    assert sum(by_second["TotalCmdsCount"].values()) == 2000, by_second
    assert sum(by_second["SetTypeCmds"].values()) == 1000, by_second
    assert sum(by_second["GetTypeCmds"].values()) == 1000, by_second
    assert abs(ecpus - DOCUMENTED) <= 0.05 * DOCUMENTED, by_second
    client.close()

    # A control plane that comes back adopts the nodes: what they served was metered by the run before.
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    server.start()
    cw = server.client("cloudwatch")
    restarted = dt.datetime.fromtimestamp(int(time.time()) + 3, dt.UTC)
    wait_for(lambda: max(series(cw, "BytesUsedForCache", start, restarted + dt.timedelta(seconds=5)), default=start)
             >= restarted, timeout=20, interval=0.2, what="samples after the restart")
    assert sum(series(cw, "TotalCmdsCount", start, restarted).values()) == 2000
    assert sum(series(cw, "ElastiCacheProcessingUnits", start, restarted).values()) == ecpus
