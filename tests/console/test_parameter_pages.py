"""The console's parameter-group page and the pending changes on a resource's page, in real Chromium
against a real `cachefleet up` and real engines."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from helpers import engine, wait_cluster, wait_for

TIMEOUT = 30_000


def test_parameter_group_page_sets_parameters_and_the_resource_page_shows_what_waits(server, ec, page, screenshot):
    ec.create_cache_parameter_group(CacheParameterGroupName="webparams", CacheParameterGroupFamily="valkey8", Description="web")
    ec.create_cache_parameter_group(CacheParameterGroupName="webparams-db", CacheParameterGroupFamily="valkey8", Description="db")
    ec.modify_cache_parameter_group(CacheParameterGroupName="webparams-db",
                                    ParameterNameValues=[{"ParameterName": "databases", "ParameterValue": "32"}])
    ec.create_cache_cluster(CacheClusterId="webparam-c", Engine="valkey", EngineVersion="8.1",
                            CacheNodeType="cache.t4g.micro", CacheParameterGroupName="webparams")
    cluster = wait_cluster(ec, "webparam-c")
    node = engine(cluster["CacheNodes"][0]["Endpoint"]["Address"])

    page.goto(f"{server.url}/console/")
    row = page.locator('#parameter-groups-table tr[data-group="webparams"]')
    expect(row).to_contain_text("webparam-c")
    row.locator("a").click()
    expect(page).to_have_url(re.compile(r"#/p/webparams$"))
    expect(page.locator('#users-table tr[data-user="webparam-c"] [data-apply]')).to_have_attribute("data-apply", "in-sync")
    policy = page.locator('#parameters-table tr[data-parameter="maxmemory-policy"]')
    expect(policy).to_have_attribute("data-source", "system")
    policy.locator("input").fill("allkeys-lru")
    page.click("#parameters-save")
    expect(page.locator(".flash.notice")).to_contain_text("Set 1 parameter(s) of webparams.")
    wait_for(lambda: node.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru", timeout=5,
             what="the value on the node")
    expect(policy).to_have_attribute("data-source", "user", timeout=TIMEOUT)
    screenshot(page, "parameter-group")

    # A value the API refuses shows the API's message; nothing changes.
    page.locator('#parameters-table tr[data-parameter="timeout"] input').fill("5")
    page.click("#parameters-save")
    expect(page.locator(".flash.error")).to_contain_text("allowed values are 0,20-")
    assert node.config_get("timeout")["timeout"] == "0"

    # Switched to a group whose databases differ: the resource page shows the reboot it waits for.
    ec.modify_cache_cluster(CacheClusterId="webparam-c", CacheParameterGroupName="webparams-db", ApplyImmediately=True)
    page.goto(f"{server.url}/console/#/r/webparam-c")
    expect(page.locator("#parameter-group-link")).to_have_text("webparams-db")
    expect(page.locator('#pending-table tr[data-pending="CacheParameterGroup"]')).to_contain_text(
        "webparams-db: pending-reboot", timeout=TIMEOUT
    )
    expect(page.locator('#nodes-table tr[data-node="webparam-c"] [data-apply]')).to_have_attribute("data-apply", "pending-reboot")
    screenshot(page, "pending-reboot")
    ec.reboot_cache_cluster(CacheClusterId="webparam-c", CacheNodeIdsToReboot=["0001"])
    expect(page.locator("#no-pending")).to_be_visible(timeout=TIMEOUT)
    assert node.config_get("databases")["databases"] == "32"

    # A default group is shown, not editable.
    page.goto(f"{server.url}/console/#/p/default.valkey8")
    expect(page.locator("#parameter-actions")).to_contain_text("cannot be changed")
    expect(page.locator('#parameters-table tr[data-parameter="maxmemory-policy"] input')).to_have_count(0)
    ec.delete_cache_cluster(CacheClusterId="webparam-c")
    ec.get_waiter("cache_cluster_deleted").wait(CacheClusterId="webparam-c", WaiterConfig={"Delay": 1})
    for name in ("webparams", "webparams-db"):
        ec.delete_cache_parameter_group(CacheParameterGroupName=name)


def test_the_resource_page_shows_an_upgrade_waiting_and_its_progress(server, ec, page, screenshot):
    ec.create_replication_group(ReplicationGroupId="webupg", ReplicationGroupDescription="upgrade", Engine="valkey",
                                EngineVersion="8.1", CacheNodeType="cache.t4g.micro", NumCacheClusters=2,
                                AutomaticFailoverEnabled=True)
    wait_for(lambda: ec.describe_replication_groups(ReplicationGroupId="webupg")["ReplicationGroups"][0]["Status"]
             == "available", what="webupg available")
    ec.modify_replication_group(ReplicationGroupId="webupg", EngineVersion="9.1")  # waits for the window
    page.goto(f"{server.url}/console/#/r/webupg")
    progress = page.locator("#upgrade-progress")
    expect(progress).to_have_attribute("data-state", "waiting for the maintenance window", timeout=TIMEOUT)
    expect(progress).to_contain_text("0/2 nodes")
    expect(page.locator('#pending-table tr[data-pending="EngineVersion"]').first).to_contain_text("9.1.")
    expect(page.locator('#nodes-table tr[data-node="webupg-001"] .engine-version')).to_contain_text("→ 9.1.")
    screenshot(page, "upgrade-pending")
    # ApplyImmediately alone starts what waits: the page follows it to the end.
    ec.modify_replication_group(ReplicationGroupId="webupg", ApplyImmediately=True)
    expect(progress).to_have_count(0, timeout=TIMEOUT)
    for member in ("webupg-001", "webupg-002"):
        cell = page.locator(f'#nodes-table tr[data-node="{member}"] .engine-version')
        expect(cell).to_have_text(re.compile(r"^9\.1\.\d+$"), timeout=TIMEOUT)
    expect(page.locator("#no-pending")).to_be_visible()
    ec.delete_replication_group(ReplicationGroupId="webupg")
