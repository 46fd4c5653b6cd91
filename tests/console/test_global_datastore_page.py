"""The console's global datastore pages in real Chromium against a real `cachefleet up` and real
engines: create a datastore from a group of the console's region, see its members (a secondary
added in another region with the API), fail over to the secondary, disassociate, delete -- each
from the page, with what the page then shows checked against the API and the engines."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from helpers import engine, wait_for, wait_group, wait_group_gone

TIMEOUT = 30_000
SETTINGS = {"Engine": "valkey", "CacheNodeType": "cache.r6g.large", "NumCacheClusters": 1}


def _roles(ec, global_id):
    record = ec.describe_global_replication_groups(GlobalReplicationGroupId=global_id, ShowMemberInfo=True)
    return {m["ReplicationGroupRegion"]: m["Role"] for m in record["GlobalReplicationGroups"][0]["Members"]}


def _endpoint(ec, group_id):
    return wait_group(ec, group_id)["NodeGroups"][0]["PrimaryEndpoint"]["Address"]


def test_create_fail_over_disassociate_and_delete_a_global_datastore_from_the_page(server, page, screenshot):
    east, west = server.client(region="us-east-1"), server.client(region="us-west-2")
    east.create_replication_group(ReplicationGroupId="webgd-east", ReplicationGroupDescription="primary", **SETTINGS)
    wait_group(east, "webgd-east")

    # Created from the page, from a group of the console's region (us-east-1).
    page.goto(f"{server.url}/console/")
    page.click("#nav-global")
    expect(page).to_have_url(re.compile(r"#/global$"))
    expect(page.locator('#global-primary option[value="webgd-east"]')).to_have_count(1, timeout=TIMEOUT)
    page.select_option("#global-primary", "webgd-east")
    page.fill("#global-suffix", "webcart")
    page.fill("#global-description", "carts everywhere")
    page.click("#global-create")
    expect(page).to_have_url(re.compile(r"#/g/[a-z]{5}-webcart$"), timeout=TIMEOUT)
    global_id = page.locator("#global-name").inner_text()
    record = east.describe_global_replication_groups(GlobalReplicationGroupId=global_id)["GlobalReplicationGroups"][0]
    assert record["GlobalReplicationGroupDescription"] == "carts everywhere"
    expect(page.locator(".flash.notice")).to_contain_text(f"Creating global datastore {global_id}")
    expect(page.locator('#summary [data-field="Node type"]')).to_have_text("cache.r6g.large")
    primary_row = page.locator('#members-table tr[data-member="us-east-1/webgd-east"]')
    expect(primary_row).to_have_attribute("data-role", "PRIMARY")
    expect(page.locator("#status [data-status]")).to_have_attribute("data-status", "primary-only")

    # A group refused by the API: its code and message on the page (a t4g.micro is too small).
    east.create_replication_group(ReplicationGroupId="webgd-small", ReplicationGroupDescription="small",
                                  Engine="valkey", CacheNodeType="cache.t4g.micro", NumCacheClusters=1)
    wait_group(east, "webgd-small")
    page.click("text=← All global datastores")
    expect(page.locator('#global-primary option[value="webgd-small"]')).to_have_count(1, timeout=TIMEOUT)
    expect(page.locator('#global-primary option[value="webgd-east"]')).to_have_count(0)  # a member now
    page.select_option("#global-primary", "webgd-small")
    page.fill("#global-suffix", "websmall")
    page.click("#global-create")
    expect(page.locator(".flash.error")).to_contain_text("cache.t4g.micro")
    expect(page.locator(".flash.error .code")).to_have_text("(InvalidParameterValue)")
    east.delete_replication_group(ReplicationGroupId="webgd-small")

    # The list shows it with its member; a secondary added in us-west-2 appears with its region and role.
    row = page.locator(f'#global-table tr[data-global="{global_id}"]')
    expect(row.locator('[data-member="us-east-1/webgd-east"]')).to_contain_text("PRIMARY")
    west.create_replication_group(ReplicationGroupId="webgd-west", ReplicationGroupDescription="secondary",
                                  GlobalReplicationGroupId=global_id, NumCacheClusters=1)
    expect(row.locator('[data-member="us-west-2/webgd-west"]')).to_contain_text("SECONDARY", timeout=TIMEOUT)
    wait_group(west, "webgd-west")
    expect(row.locator("td [data-status]").first).to_have_attribute("data-status", "available", timeout=TIMEOUT)
    screenshot(page, "global-list")
    row.locator("a").click()
    secondary_row = page.locator('#members-table tr[data-member="us-west-2/webgd-west"]')
    expect(secondary_row).to_have_attribute("data-role", "SECONDARY")
    expect(secondary_row.locator(".member-status [data-status]")).to_have_attribute("data-status", "associated")

    # Deleting while it has a secondary: refused, in the API's words.
    page.click("#global-delete")
    page.click("#global-delete-confirm-yes")
    expect(page.locator(".flash.error .code")).to_have_text("(InvalidGlobalReplicationGroupState)")

    # Planned failover to us-west-2 from the page: the roles swap, and the engines follow.
    secondary_row.locator(".member-failover").click()
    expect(page.locator(".flash.notice")).to_contain_text(f"Failing {global_id} over to us-west-2/webgd-west")
    expect(secondary_row).to_have_attribute("data-role", "PRIMARY", timeout=TIMEOUT)
    expect(primary_row).to_have_attribute("data-role", "SECONDARY")
    expect(page.locator("#status [data-status]")).to_have_attribute("data-status", "available", timeout=TIMEOUT)
    assert _roles(east, global_id) == {"us-east-1": "SECONDARY", "us-west-2": "PRIMARY"}
    engine(_endpoint(west, "webgd-west")).set("from-the-west", "1")
    wait_for(lambda: engine(_endpoint(east, "webgd-east")).get("from-the-west") == "1", timeout=5,
             what="us-east-1 following us-west-2")
    screenshot(page, "global-after-failover")
    # The group's own page names its datastore and role, and links back to it.
    page.goto(f"{server.url}/console/#/r/webgd-east")
    expect(page.locator('#summary [data-field="Global datastore"]')).to_have_text(f"{global_id} (SECONDARY)",
                                                                                timeout=TIMEOUT)
    page.click("#global-datastore-link")
    expect(secondary_row).to_have_attribute("data-role", "PRIMARY", timeout=TIMEOUT)

    # Disassociate the old primary, now the secondary: it leaves, and is a standalone, writable group.
    primary_row.locator(".member-disassociate").click()
    expect(page.locator(".flash.notice")).to_contain_text(f"Disassociating us-east-1/webgd-east from {global_id}")
    expect(primary_row).to_have_count(0, timeout=TIMEOUT)
    wait_for(lambda: "GlobalReplicationGroupInfo" not in wait_group(east, "webgd-east"), timeout=10,
             what="webgd-east standalone")
    assert _roles(east, global_id) == {"us-west-2": "PRIMARY"}
    engine(_endpoint(east, "webgd-east")).set("mine", "again")

    # Delete, keeping the primary group: the page says it is gone; the group stays.
    expect(page.locator("#global-retain-primary")).to_be_checked()
    page.click("#global-delete")
    expect(page.locator("#global-delete-confirm")).to_contain_text("its primary replication group is kept")
    page.click("#global-delete-confirm-yes")
    expect(page.locator(".flash.notice")).to_contain_text(f"Deleting global datastore {global_id}")
    expect(page.locator("#global-gone")).to_contain_text(f"{global_id} does not exist", timeout=TIMEOUT)
    assert not [g for g in east.describe_global_replication_groups()["GlobalReplicationGroups"]
                if g["GlobalReplicationGroupId"] == global_id]
    assert "GlobalReplicationGroupInfo" not in wait_group(west, "webgd-west")
    page.click("text=Back to the list")
    expect(page.locator("#global-table")).not_to_contain_text(global_id)
    for ec, group_id in ((east, "webgd-east"), (west, "webgd-west")):
        ec.delete_replication_group(ReplicationGroupId=group_id)
    for ec, group_id in ((east, "webgd-east"), (west, "webgd-west"), (east, "webgd-small")):
        wait_group_gone(ec, group_id)


def test_deleting_a_global_datastore_without_retaining_its_primary_deletes_the_group_too(server, page):
    east = server.client(region="us-east-1")
    east.create_replication_group(ReplicationGroupId="webgd-solo", ReplicationGroupDescription="alone", **SETTINGS)
    wait_group(east, "webgd-solo")
    global_id = east.create_global_replication_group(GlobalReplicationGroupIdSuffix="websolo",
                                                     PrimaryReplicationGroupId="webgd-solo")[
        "GlobalReplicationGroup"]["GlobalReplicationGroupId"]
    page.goto(f"{server.url}/console/#/g/{global_id}")
    expect(page.locator('#members-table tr[data-member="us-east-1/webgd-solo"]')).to_have_attribute("data-role", "PRIMARY")
    page.uncheck("#global-retain-primary")
    page.click("#global-delete")
    expect(page.locator("#global-delete-confirm")).to_contain_text("and its primary replication group with all its data")
    page.click("#global-delete-confirm-yes")
    expect(page.locator(".flash.notice")).to_contain_text("the primary replication group is deleted too")
    expect(page.locator("#global-gone")).to_be_visible(timeout=TIMEOUT)
    wait_group_gone(east, "webgd-solo")


def test_the_page_shows_the_events_of_every_member_in_its_own_region(server, page):
    east, west = server.client(region="us-east-1"), server.client(region="us-west-2")
    east.create_replication_group(ReplicationGroupId="webgd-ev-east", ReplicationGroupDescription="primary", **SETTINGS)
    wait_group(east, "webgd-ev-east")
    global_id = east.create_global_replication_group(GlobalReplicationGroupIdSuffix="webevents",
                                                     PrimaryReplicationGroupId="webgd-ev-east")[
        "GlobalReplicationGroup"]["GlobalReplicationGroupId"]
    page.goto(f"{server.url}/console/#/g/{global_id}")
    events = page.locator("#global-events-table")
    primary_event = events.locator("tr", has_text=f"is the primary of global replication group {global_id}")
    expect(primary_event).to_have_count(1, timeout=TIMEOUT)
    expect(primary_event.locator("td").nth(1)).to_have_text("us-east-1/webgd-ev-east")
    # A secondary joins in us-west-2 (whose events the console's region, us-east-1, does not list):
    # its association appears on the page as it happens, under its own region.
    west.create_replication_group(ReplicationGroupId="webgd-ev-west", ReplicationGroupDescription="secondary",
                                  GlobalReplicationGroupId=global_id, NumCacheClusters=1)
    joined = events.locator("tr", has_text=f"is associated with global replication group {global_id}")
    expect(joined).to_have_count(1, timeout=TIMEOUT)
    expect(joined.locator("td").nth(1)).to_have_text("us-west-2/webgd-ev-west")
    assert not [e for e in east.describe_events(Duration=60)["Events"] if e["SourceIdentifier"] == "webgd-ev-west"]
    wait_group(west, "webgd-ev-west")
    west.disassociate_global_replication_group(GlobalReplicationGroupId=global_id, ReplicationGroupId="webgd-ev-west",
                                               ReplicationGroupRegion="us-west-2")
    wait_for(lambda: "GlobalReplicationGroupInfo" not in wait_group(west, "webgd-ev-west"), timeout=10,
             what="webgd-ev-west standalone")
    east.delete_global_replication_group(GlobalReplicationGroupId=global_id, RetainPrimaryReplicationGroup=False)
    west.delete_replication_group(ReplicationGroupId="webgd-ev-west")
    wait_group_gone(east, "webgd-ev-east")
    wait_group_gone(west, "webgd-ev-west")
