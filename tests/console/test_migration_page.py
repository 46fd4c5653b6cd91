"""The console's migration page in real Chromium against a real `cachefleet up`, with a bare
valkey-server as the self-hosted source: test the source (a refused one, then a good one), start,
see the group migrating and in sync, complete with Force -- each from the page, with what the page
then shows checked against the API and the engines."""

from __future__ import annotations

import re

import pytest
import redis
from playwright.sync_api import expect

from enginekit import EngineSet, installed
from helpers import engine, wait_for, wait_group

TIMEOUT = 30_000
NAME = "webmig"


@pytest.fixture
def source():
    engines = EngineSet()
    try:
        yield engines.start(installed("valkey", "8.1"), extra={"repl-diskless-sync-delay": "0"})
    finally:
        engines.close()


def test_test_start_and_complete_a_migration_from_the_page(server, ec, source, page, screenshot):
    vk = redis.Redis(host=source.address, port=source.port, decode_responses=True)
    vk.mset({"a": "1", "b": "2", "c": "3"})
    ec.create_replication_group(ReplicationGroupId=NAME, ReplicationGroupDescription="migration target", Engine="valkey",
                                CacheNodeType="cache.t4g.micro", NumCacheClusters=2, AutomaticFailoverEnabled=True,
                                MultiAZEnabled=True)
    group = wait_group(ec, NAME)
    primary = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]

    # The migrations page lists the group; its page shows it available.
    page.goto(f"{server.url}/console/")
    page.click("#nav-migrations")
    row = page.locator(f'#migrations-table tr[data-name="{NAME}"]')
    expect(row.locator("[data-status]")).to_have_attribute("data-status", "available", timeout=TIMEOUT)
    row.locator("a").click()
    expect(page).to_have_url(re.compile(rf"#/m/{NAME}$"))
    expect(page.locator('#summary [data-field="Primary endpoint"]')).to_have_text(f"{primary}:6379")

    # Completing a group that is not migrating: the API's code and message.
    page.click("#migration-complete")
    expect(page.locator(".flash.error")).to_contain_text(f"Replication group {NAME} is not under migration")
    expect(page.locator(".flash.error .code")).to_have_text("(ReplicationGroupNotUnderMigrationFault)")

    # TestMigration of a port nobody listens on, then of the source: the page shows each outcome.
    result = page.locator("#migration-test-result")
    page.fill("#migration-address", source.address)
    page.fill("#migration-port", "6390")
    page.click("#migration-test")
    expect(result).to_have_attribute("data-outcome", "failed", timeout=TIMEOUT)
    expect(result).to_contain_text(f"Test Migration failed for {NAME}: the source {source.address}:6390 is not reachable")
    page.fill("#migration-port", str(source.port))
    page.click("#migration-test")
    expect(result).to_have_attribute("data-outcome", "successful", timeout=TIMEOUT)
    expect(result).to_contain_text(f"Test Migration successful for {NAME}: the source {source.address}:{source.port} "
                                   "(Valkey 8.1")
    assert ec.describe_replication_groups(ReplicationGroupId=NAME)["ReplicationGroups"][0]["Status"] == "available"
    screenshot(page, "tested")

    # Start: the group migrates, follows the source and refuses writes; the page shows it in sync.
    page.click("#migration-start")
    expect(page.locator(".flash.notice")).to_contain_text(f"Migrating {NAME} from {source.address}:{source.port}")
    expect(page.locator("#status [data-status]")).to_have_attribute("data-status", "migrating", timeout=TIMEOUT)
    events = page.locator("#migration-events-table")
    expect(events).to_contain_text(f"Migration of replication group {NAME} is in sync with the source", timeout=TIMEOUT)
    assert ec.describe_replication_groups(ReplicationGroupId=NAME)["ReplicationGroups"][0]["Status"] == "migrating"
    assert engine(primary).mget("a", "b", "c") == ["1", "2", "3"]
    with pytest.raises(redis.exceptions.ReadOnlyError):
        engine(primary).set("mine", "no")
    vk.set("later", "follows")
    wait_for(lambda: engine(primary).get("later") == "follows", timeout=10, what="a source write on the group")
    screenshot(page, "migrating")

    # Complete with Force: the group is available and writable, and stops following the source.
    page.check("#migration-force")
    page.click("#migration-complete")
    expect(page.locator(".flash.notice")).to_contain_text(f"Completing the migration of {NAME} (forced).")
    expect(events).to_contain_text(f"Complete Migration successful for {NAME}", timeout=TIMEOUT)
    expect(page.locator("#status [data-status]")).to_have_attribute("data-status", "available", timeout=TIMEOUT)
    wait_group(ec, NAME)
    assert engine(primary).info("replication")["role"] == "master"
    engine(primary).set("mine", "yes")
    vk.set("after", "complete")
    assert engine(primary).get("after") is None and vk.get("mine") is None
    screenshot(page, "completed")
    # The group's own page links to its migration page.
    page.goto(f"{server.url}/console/#/r/{NAME}")
    page.click("#migrate-link")
    expect(page.locator("#migration-events-table")).to_contain_text(f"Complete Migration successful for {NAME}")
    ec.delete_replication_group(ReplicationGroupId=NAME)
