"""The web console in real Chromium against a real `cachefleet up` and real engines."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from helpers import engine, wait_group, wait_group_gone

AVAILABLE_TIMEOUT = 30_000
# The CurrConnections chart's number of data points and newest timestamp (ISO, so strings compare in time order).
CHART_STATE = """() => {
  const chart = document.querySelector('#metrics .chart[data-metric="CurrConnections"]');
  return JSON.stringify({points: Number(chart.dataset.points), last: chart.dataset.last});
}"""


def test_create_a_group_see_it_available_with_nodes_and_endpoints_then_delete_it(server, ec, page, screenshot):
    page.goto(f"{server.url}/console/")
    page.fill("#create-name", "webflow")
    page.fill("#create-replicas", "1")
    page.click("#create-submit")
    expect(page).to_have_url(re.compile(r"#/r/webflow$"))
    expect(page.locator(".flash.notice")).to_contain_text("Creating replication group webflow")
    expect(page.locator("#status [data-status]")).to_have_attribute("data-status", "available", timeout=AVAILABLE_TIMEOUT)

    # What the page shows is what the API says, and the endpoints are real engines.
    group = wait_group(ec, "webflow")
    node_group = group["NodeGroups"][0]
    primary = node_group["PrimaryEndpoint"]
    expect(page.locator("#shards-table .primary-endpoint")).to_have_text(f"{primary['Address']}:{primary['Port']}")
    reader = node_group["ReaderEndpoint"]
    expect(page.locator("#shards-table .reader-endpoint")).to_have_text(f"{reader['Address']}:{reader['Port']}")
    expect(page.locator("#nodes-table tbody tr")).to_have_count(2)
    for member in node_group["NodeGroupMembers"]:
        row = page.locator(f'#nodes-table tr[data-node="{member["CacheClusterId"]}"]')
        expect(row).to_have_attribute("data-role", member["CurrentRole"])
        expect(row.locator(".endpoint")).to_have_text(f"{member['ReadEndpoint']['Address']}:6379")
        expect(row).to_contain_text(member["PreferredAvailabilityZone"])
        expect(row.locator("[data-status]")).to_have_attribute("data-status", "available")
    shown = page.locator("#shards-table .primary-endpoint").inner_text()
    host, port = shown.rsplit(":", 1)
    writer = engine(host, int(port))
    assert writer.set("from-the-console", "yes") and writer.info("replication")["role"] == "master"
    expect(page.locator("#summary")).to_contain_text(f"valkey-cli -h {primary['Address']} -p 6379")
    expect(page.locator("#events-table")).to_contain_text("created and available")
    screenshot(page, "group-available")

    # The list shows it with its status and endpoint.
    page.click("text=← All groups and clusters")
    row = page.locator('#resources tr[data-name="webflow"]')
    expect(row.locator("[data-status]")).to_have_attribute("data-status", "available")
    expect(row).to_contain_text(f"{primary['Address']}:6379")
    screenshot(page, "list")

    # Delete it from its page (with a confirmation), and watch it go without reloading.
    row.locator("a").click()
    page.click("#delete")
    expect(page.locator("#delete-confirm")).to_contain_text("Delete webflow and all its data?")
    page.click("#delete-confirm-yes")
    expect(page.locator(".flash.notice")).to_contain_text("Deleting webflow")
    expect(page.locator("#gone")).to_contain_text("webflow does not exist", timeout=AVAILABLE_TIMEOUT)
    # The events are fetched once the page knows it is gone: on a loaded machine, more than expect's 5 s.
    expect(page.locator("#events-table")).to_contain_text("Replication group webflow deleted", timeout=AVAILABLE_TIMEOUT)
    screenshot(page, "deleted")
    wait_group_gone(ec, "webflow")
    page.click("text=Back to the list")
    expect(page.locator("#resource-rows")).not_to_contain_text("webflow")


def test_scale_and_fail_over_from_the_page(server, page, screenshot):
    # TestFailover is limited to 15 calls a day per region: this test uses a region of its own, chosen
    # with the console's region field.
    ec = server.client(region="eu-central-1")
    ec.create_replication_group(
        ReplicationGroupId="webscale", ReplicationGroupDescription="scale", Engine="valkey",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=2, AutomaticFailoverEnabled=True,
    )
    wait_group(ec, "webscale")
    page.goto(f"{server.url}/console/")
    page.fill("#region", "eu-central-1")
    page.press("#region", "Enter")
    page.click('#resources tr[data-name="webscale"] a')
    expect(page.locator("#nodes-table tbody tr")).to_have_count(2)
    expect(page.locator("#scale-replicas")).to_have_value("1")
    expect(page.locator("#summary")).to_contain_text("Automatic failover")

    page.fill("#scale-replicas", "2")
    page.click("#scale-replicas-submit")
    expect(page.locator(".flash.notice")).to_contain_text("webscale")
    # The new replica appears live and becomes available.
    replicas = page.locator('#nodes-table tr[data-role="replica"]')
    expect(replicas).to_have_count(2, timeout=AVAILABLE_TIMEOUT)
    for i in range(2):
        expect(replicas.nth(i).locator("[data-status]")).to_have_attribute("data-status", "available", timeout=AVAILABLE_TIMEOUT)
    wait_group(ec, "webscale")
    assert len(wait_group(ec, "webscale")["MemberClusters"]) == 3

    # Fail over from the page: the roles change live and the event shows.
    page.click("#failover-submit")
    expect(page.locator(".flash.notice")).to_contain_text("Failing over shard 0001 of webscale (TestFailover)")
    expect(page.locator('#nodes-table tr[data-node="webscale-001"]')).to_have_attribute("data-role", "replica", timeout=60_000)
    expect(page.locator("#events-table")).to_contain_text("Failover from primary node webscale-001", timeout=AVAILABLE_TIMEOUT)
    group = wait_group(ec, "webscale", timeout=60)
    primary = next(m for m in group["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "primary")
    expect(page.locator(f'#nodes-table tr[data-node="{primary["CacheClusterId"]}"]')).to_have_attribute("data-role", "primary")
    screenshot(page, "failed-over")

    # Refused by the API: its message is shown (a cluster-mode-disabled group has no shards to add).
    page.fill("#scale-shards", "2")
    page.click("#scale-shards-submit")
    expect(page.locator(".flash.error")).to_contain_text("cluster mode disabled")
    expect(page.locator(".flash.error")).to_contain_text("InvalidParameterCombination")
    # The metric charts have data points (CloudWatch, sampled every second).
    chart = page.locator('#metrics .chart[data-metric="CurrConnections"]')
    expect(chart).to_be_visible(timeout=30_000)
    page.wait_for_function(
        """() => Number(document.querySelector('#metrics .chart[data-metric="CurrConnections"]')?.dataset.points || 0) > 0""",
        timeout=60_000,
    )
    # ... and update live: a later poll brings a newer data point, without reloading the page.
    first = json.loads(page.evaluate(CHART_STATE))
    page.wait_for_function(f"() => JSON.parse(({CHART_STATE})()).last > {json.dumps(first['last'])}", timeout=45_000)
    later = json.loads(page.evaluate(CHART_STATE))
    assert later["points"] > first["points"] and later["last"] > first["last"]
    screenshot(page, "metrics")
    assert "Traceback" not in page.content()
    ec.delete_replication_group(ReplicationGroupId="webscale")
    wait_group_gone(ec, "webscale")


def test_sharded_group_created_and_resharded_from_the_page(server, ec, page, screenshot):
    page.goto(f"{server.url}/console/")
    page.fill("#create-name", "websharded")
    page.fill("#create-replicas", "1")
    page.check("#create-cluster-mode")
    page.fill("#create-shards", "2")
    page.click("#create-submit")
    expect(page).to_have_url(re.compile(r"#/r/websharded$"))
    expect(page.locator("#status [data-status]")).to_have_attribute("data-status", "available", timeout=60_000)
    group = wait_group(ec, "websharded")
    assert group["ClusterEnabled"] and len(group["NodeGroups"]) == 2
    configuration = group["ConfigurationEndpoint"]
    expect(page.locator("#summary")).to_contain_text(f"valkey-cli -h {configuration['Address']} -p 6379 -c")
    expect(page.locator("#shards-table tbody tr")).to_have_count(2)
    expect(page.locator('#shards-table tr[data-shard="0001"]')).to_contain_text("0-8191")
    expect(page.locator("#nodes-table tbody tr")).to_have_count(4)

    page.fill("#scale-shards", "3")
    page.click("#scale-shards-submit")
    expect(page.locator(".flash.notice")).to_contain_text("Resharding websharded from 2 to 3 shard(s)")
    expect(page.locator("#shards-table tbody tr")).to_have_count(3, timeout=60_000)
    expect(page.locator("#status [data-status]")).to_have_attribute("data-status", "available", timeout=120_000)
    assert len(wait_group(ec, "websharded", timeout=120)["NodeGroups"]) == 3
    screenshot(page, "resharded")
    ec.delete_replication_group(ReplicationGroupId="websharded")
    wait_group_gone(ec, "websharded", timeout=60)


def test_api_errors_show_their_message_never_a_stack_trace(server, ec, page, screenshot):
    ec.create_replication_group(
        ReplicationGroupId="webdup", ReplicationGroupDescription="dup", Engine="valkey",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=1,
    )
    page.goto(f"{server.url}/console/")
    page.fill("#create-name", "webdup")
    page.click("#create-submit")
    error = page.locator(".flash.error")
    expect(error).to_contain_text("Replication group webdup already exists.")
    expect(error).to_contain_text("ReplicationGroupAlreadyExists")
    screenshot(page, "already-exists")

    page.fill("#create-name", "no_underscores!")
    page.click("#create-submit")
    expect(error).to_contain_text("InvalidParameterValue")
    expect(page).not_to_have_url(re.compile(r"#/r/"))

    page.goto(f"{server.url}/console/#/r/nosuchgroup")
    expect(page.locator("#gone")).to_contain_text("nosuchgroup does not exist")
    assert "Traceback" not in page.content()
    ec.delete_replication_group(ReplicationGroupId="webdup")
    wait_group_gone(ec, "webdup")


def _facade(url: str, path: str, *, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None):
    request = urllib.request.Request(f"{url}/console/api{path}", data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_facade_refuses_cross_site_and_malformed_calls(server):
    console = {"X-Cachefleet-Console": "1"}
    status, answer = _facade(server.url, "/resources")
    assert status == 403 and "X-Cachefleet-Console" in answer["error"]["message"]
    status, answer = _facade(server.url, "/resources", headers={**console, "Origin": "http://evil.example"})
    assert status == 403 and answer["error"]["code"] == "Forbidden"
    status, answer = _facade(server.url, "/resources", method="POST", body=b"name=x", headers={
        **console, "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    status, answer = _facade(server.url, "/resources", method="POST", body=b"{nope", headers={
        **console, "Content-Type": "application/json"})
    assert status == 400 and "not valid JSON" in answer["error"]["message"]
    status, answer = _facade(server.url, "/resources/nosuch", headers=console)
    assert status == 404 and "No replication group or cache cluster named nosuch" in answer["error"]["message"]
    status, answer = _facade(server.url, "/resources?region=eu-west-3", headers=console)
    assert status == 200 and answer == {"region": "eu-west-3", "resources": []}


def test_sign_in_when_the_server_checks_credentials(make_server, tmp_path, page, screenshot):
    credentials = tmp_path / "credentials"
    credentials.write_text("[ops]\naws_access_key_id = AKIDOPS\naws_secret_access_key = ops-secret\n")
    checked = make_server("--credentials-file", str(credentials))
    page.goto(f"{checked.url}/console/")
    expect(page.locator("#mode")).to_have_text("credentials checked")
    page.fill("#access-key", "AKIDOPS")
    page.fill("#secret-key", "wrong")
    page.click("#sign-in")
    expect(page.locator("#sign-in-reason")).to_contain_text("does not match the signature you provided")
    expect(page.locator("#sign-in-reason")).to_contain_text("(SignatureDoesNotMatch)")
    screenshot(page, "wrong-secret")
    page.fill("#access-key", "AKIDOPS")
    page.fill("#secret-key", "ops-secret")
    page.click("#sign-in")
    expect(page.locator("#resource-rows")).to_contain_text("No replication groups or cache clusters in us-east-1")

    # A key whose policy allows describing only: the page lists, and shows IAM's refusal of a create.
    with credentials.open("a") as handle:
        handle.write('[viewer]\naws_access_key_id = AKIDVIEW\naws_secret_access_key = view-secret\n'
                     'policy = {"Statement": [{"Effect": "Allow", "Action": "elasticache:Describe*", "Resource": "*"}]}\n')
    page.click("#sign-out")
    page.fill("#access-key", "AKIDVIEW")
    page.fill("#secret-key", "view-secret")
    page.click("#sign-in")
    expect(page.locator("#resource-rows")).to_contain_text("No replication groups or cache clusters in us-east-1")
    page.fill("#create-name", "not-allowed")
    page.click("#create-submit")
    flash = page.locator(".flash.error")
    expect(flash).to_contain_text(
        "User: arn:aws:iam::000000000000:user/viewer is not authorized to perform: elasticache:CreateReplicationGroup"
    )
    expect(flash).to_contain_text("(AccessDenied)")
    screenshot(page, "access-denied")


@pytest.mark.parametrize("path", ["/console", "/console/"])
def test_console_pages_are_served_by_cachefleet_up(server, path):
    with urllib.request.urlopen(f"{server.url}{path}", timeout=10) as response:
        assert response.status == 200 and "Cachefleet console" in response.read().decode()
    for asset in ("app.js", "chart.js", "style.css"):
        with urllib.request.urlopen(f"{server.url}/console/static/{asset}", timeout=10) as response:
            assert response.status == 200 and len(response.read()) > 500


def test_chart_component_draws_one_line_per_node_from_get_metric_data_series(server, page, screenshot):
    """The chart the group page uses once GetMetricData answers (fed here the facade's chart format)."""
    page.goto(f"{server.url}/console/")
    expect(page.locator("#create-form")).to_be_visible()
    drawn = page.evaluate(
        """() => {
            const start = Date.parse("2026-01-01T00:00:00Z");
            const points = (scale) => Array.from({length: 30}, (_, i) => [new Date(start + i * 10000).toISOString(), scale * (i % 7)]);
            const chart = window.renderChart({metric: "GetTypeCmds", stat: "Sum", unit: "Count", period: 10,
                series: [{node: "g-001", points: points(10)}, {node: "g-002", points: points(20)}]});
            const box = document.createElement("div");
            box.className = "charts";
            box.style.margin = "0 20px";
            box.append(chart);
            document.body.append(box);
            const lines = [...chart.querySelectorAll("polyline")];
            return {title: chart.querySelector("h3").textContent, lines: lines.map((l) => l.getAttribute("points").split(" ").length),
                    legend: [...chart.querySelectorAll(".legend > span")].map((item) => item.textContent)};
        }"""
    )
    assert drawn["title"] == "GetTypeCmds /s"  # sums per period are shown per second
    assert drawn["lines"] == [30, 30]
    assert drawn["legend"] == ["g-001 1", "g-002 2"]  # the last points, per second: 10 * (29 % 7) / 10 s, 20 * 1 / 10 s
    screenshot(page, "chart")


def test_standalone_cluster_is_listed_shown_and_deleted(server, ec, page, screenshot):
    ec.create_cache_cluster(CacheClusterId="websolo", Engine="valkey", CacheNodeType="cache.t4g.micro")
    page.goto(f"{server.url}/console/")
    row = page.locator('#resources tr[data-name="websolo"]')
    expect(row).to_contain_text("cache cluster")
    expect(row.locator("[data-status]")).to_have_attribute("data-status", "available", timeout=AVAILABLE_TIMEOUT)
    row.locator("a").click()
    node = ec.describe_cache_clusters(CacheClusterId="websolo", ShowCacheNodeInfo=True)["CacheClusters"][0]["CacheNodes"][0]
    expect(page.locator('#nodes-table tr[data-node="websolo"] .endpoint')).to_have_text(f"{node['Endpoint']['Address']}:6379")
    expect(page.locator("#shards")).to_contain_text("A standalone cache cluster has one node")
    expect(page.locator("#scale-replicas")).to_have_count(0)  # groups only
    screenshot(page, "standalone")
    page.click("#delete")
    page.click("#delete-confirm-yes")
    expect(page.locator("#gone")).to_contain_text("websolo does not exist", timeout=AVAILABLE_TIMEOUT)
    with pytest.raises(ec.exceptions.CacheClusterNotFoundFault):
        ec.describe_cache_clusters(CacheClusterId="websolo")


def test_group_page_shows_its_locks_and_the_connect_line(server, ec, page, screenshot):
    """TLS required and an AUTH token (Redis OSS, the build with TLS): the page says so, never the token,
    and its connect line has --tls --cacert and --askpass."""
    token = "Console-Token-0123456789"
    ec.create_replication_group(ReplicationGroupId="locked-page", ReplicationGroupDescription="locks", Engine="redis",
                                CacheNodeType="cache.t4g.micro", NumCacheClusters=1, TransitEncryptionEnabled=True,
                                AuthToken=token)
    try:
        group = wait_group(ec, "locked-page")
        primary = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
        page.goto(f"{server.url}/console/#/r/locked-page")
        expect(page.locator("#status [data-status]")).to_have_attribute("data-status", "available", timeout=AVAILABLE_TIMEOUT)
        expect(page.locator('[data-field="In-transit encryption"]')).to_have_text("required (TLS only)")
        expect(page.locator('[data-field="AUTH token"]')).to_contain_text("enabled (last changed")
        expect(page.locator('[data-field="User groups (RBAC)"]')).to_have_text("none")
        expect(page.locator('[data-field="Connect"]')).to_have_text(
            f"redis-cli -h {primary} -p 6379 --tls --cacert ca.pem --askpass")
        assert token not in page.content()
        screenshot(page, "locked")
    finally:
        ec.delete_replication_group(ReplicationGroupId="locked-page")
        wait_group_gone(ec, "locked-page")


def test_take_a_snapshot_see_its_size_and_status_and_restore_it_from_the_page(server, ec, page, screenshot):
    ec.create_replication_group(ReplicationGroupId="websnap", ReplicationGroupDescription="console snapshots",
                                Engine="valkey", CacheNodeType="cache.t4g.micro", NumCacheClusters=1)
    group = wait_group(ec, "websnap")
    engine(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]).mset({f"web:{n}": "x" * 2000 for n in range(1500)})
    page.goto(f"{server.url}/console/#/r/websnap")
    expect(page.locator("#no-snapshots")).to_be_visible()
    page.fill("#snapshot-name", "websnap-one")
    page.click("#snapshot-take")
    expect(page.locator(".flash.notice")).to_contain_text("Taking snapshot websnap-one of websnap")
    row = page.locator('#snapshots-table tr[data-snapshot="websnap-one"]')
    expect(row).to_have_attribute("data-status", "available", timeout=AVAILABLE_TIMEOUT)
    size = ec.describe_snapshots(SnapshotName="websnap-one")["Snapshots"][0]["NodeSnapshots"][0]["CacheSize"]
    expect(row.locator(".snapshot-size")).to_have_text(size)  # what the API says
    expect(row).to_contain_text("manual")
    screenshot(page, "snapshots")

    row.locator(".restore-name").fill("websnap-two")
    row.locator(".restore-shards").fill("2")
    row.locator(".restore-submit").click()
    expect(page).to_have_url(re.compile(r"#/r/websnap-two$"))
    expect(page.locator("#status [data-status]")).to_have_attribute("data-status", "available", timeout=AVAILABLE_TIMEOUT)
    restored = wait_group(ec, "websnap-two")
    assert restored["ClusterEnabled"] and len(restored["NodeGroups"]) == 2
    assert sum(engine(ng["NodeGroupMembers"][0]["ReadEndpoint"]["Address"]).dbsize() for ng in restored["NodeGroups"]) == 1500
    expect(page.locator("#events-table")).to_contain_text("Restore into websnap-two finished")
    for name in ("websnap", "websnap-two"):
        ec.delete_replication_group(ReplicationGroupId=name)
        wait_group_gone(ec, name)
    page.goto(f"{server.url}/console/#/r/websnap")
    page.locator('#snapshots-table tr[data-snapshot="websnap-one"] .snapshot-delete').click()
    expect(page.locator('#snapshots-table tr[data-snapshot="websnap-one"]')).to_have_count(0, timeout=AVAILABLE_TIMEOUT)
