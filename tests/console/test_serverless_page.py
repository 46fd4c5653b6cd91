"""The console's serverless cache page in real Chromium against a real `cachefleet up`: its shards
(what its endpoint answers to CLUSTER SHARDS), its usage against its limits, its charts (the
cache's metrics as a whole) and its scaling decisions as they happen."""

from __future__ import annotations

import datetime as dt

import redis
from playwright.sync_api import expect
from redis.cluster import RedisCluster

from helpers import wait_for

NAME = "sl-page"
TIMEOUT = 30_000
# The ECPU chart's number of data points.
ECPU_POINTS = """() => {
  const chart = document.querySelector('#metrics .chart[data-metric="ElastiCacheProcessingUnits"]');
  return chart ? Number(chart.dataset.points) : -1;
}"""


def test_the_serverless_page_shows_shards_usage_charts_and_scaling(make_server, page, screenshot):
    server = make_server("--warm-nodes", "2")
    ec, cw = server.client(), server.client("cloudwatch")
    ec.create_serverless_cache(ServerlessCacheName=NAME, Engine="valkey", CacheUsageLimits={
        "DataStorage": {"Maximum": 10, "Unit": "GB"}, "ECPUPerSecond": {"Maximum": 5000}})
    cache = wait_for(lambda: (c := ec.describe_serverless_caches(ServerlessCacheName=NAME)["ServerlessCaches"][0])[
        "Status"] == "available" and c, interval=0.05, what="serverless cache available")
    endpoint = cache["Endpoint"]
    client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], decode_responses=True)
    for i in range(300):
        client.set(f"k:{i}", "x" * 1000)

    def ecpus() -> float:
        now = dt.datetime.now(dt.UTC)
        results = cw.get_metric_data(StartTime=now - dt.timedelta(minutes=2), EndTime=now, MetricDataQueries=[
            {"Id": "e", "MetricStat": {"Metric": {"Namespace": "AWS/ElastiCache", "MetricName": "ElastiCacheProcessingUnits",
                                                   "Dimensions": [{"Name": "clusterId", "Value": NAME}]},
                                        "Period": 60, "Stat": "Sum"}}])["MetricDataResults"]
        return sum(v for r in results for v in r["Values"])

    wait_for(lambda: ecpus() >= 300, timeout=15, interval=0.3, what="the writes' ECPUs in the cache's metrics")

    # The list names it; its page shows it.
    page.goto(f"{server.url}/console/")
    row = page.locator(f'#serverless-table tr[data-name="{NAME}"]')
    expect(row.locator("[data-status]")).to_have_attribute("data-status", "available", timeout=TIMEOUT)
    row.locator("a").click()
    expect(page.locator("#status [data-status]")).to_have_attribute("data-status", "available", timeout=TIMEOUT)
    expect(page.locator('#summary [data-field="Endpoint"]')).to_have_text(f"{endpoint['Address']}:{endpoint['Port']}")

    # Its shards are what its endpoint answers: one shard, all 16,384 slots, its primary and replica.
    primary = client.get_primaries()[0]
    replica = client.get_replicas()[0]
    shard = page.locator("#serverless-shards tbody tr")
    expect(shard).to_have_count(1)
    expect(shard).to_have_attribute("data-primary", f"{primary.host}:{primary.port}")
    expect(shard).to_contain_text("16384")
    expect(shard).to_contain_text(f"{replica.host}:{replica.port}")

    # Usage against limits: data against 10 GB, ECPUs against 5,000 a second.
    used = sum(redis.Redis(host=p.host, port=p.port).info("memory")["used_memory"] for p in client.get_primaries())
    assert used > 300_000
    expect(page.locator('#usage-table tr[data-usage="data"] .usage-limit')).to_have_text("10 GB")
    expect(page.locator('#usage-table tr[data-usage="data"] .usage-used')).to_contain_text("MiB")
    expect(page.locator('#usage-table tr[data-usage="ecpu"] .usage-limit')).to_contain_text("5000")

    # The ECPU chart has the cache's points (the 1,000-byte SETs above).
    wait_for(lambda: page.evaluate(ECPU_POINTS) > 0, timeout=25, interval=0.5, what="points on the ECPU chart")
    expect(page.locator('#metrics .chart[data-metric="BytesUsedForCache"]')).to_be_visible()
    expect(page.locator("#events-table")).to_contain_text("Creating serverless cache sl-page")
    screenshot(page, "serverless-available")

    # A scaling decision shows up with its reason while the step runs.
    ec.modify_serverless_cache(ServerlessCacheName=NAME, CacheUsageLimits={
        "DataStorage": {"Minimum": 2, "Maximum": 10, "Unit": "GB"}})  # 2 GB: 2 shards of 1 GiB
    expect(page.locator("#events-table")).to_contain_text(
        "scale-out 1 -> 2 shard(s): 1 shard(s) is below the 2 the DataStorage minimum keeps ready", timeout=TIMEOUT)
    # The step itself takes well under a second with atomic slot migration (Valkey 9+), faster than
    # the page refreshes, so its outcome is what the page is checked on: two shards of 8,192 slots.
    expect(page.locator("#serverless-shards tbody tr")).to_have_count(2, timeout=TIMEOUT)
    expect(page.locator("#serverless-shards tbody tr").first).to_contain_text("8192", timeout=TIMEOUT)
    expect(page.locator("#status [data-status]")).to_have_attribute("data-status", "available", timeout=TIMEOUT)
    expect(page.locator('#usage-table tr[data-usage="data"] .usage-limit')).to_have_text("10 GB (minimum 2 GB)",
                                                                                          timeout=TIMEOUT)
    screenshot(page, "serverless-scaling")
    client.close()
