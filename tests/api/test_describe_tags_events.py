"""Describe calls with Marker/MaxRecords, tags on every resource ARN, and the event log."""

from __future__ import annotations

import datetime as dt

import pytest

from helpers import events_of, wait_group, wait_group_gone


def _all_pages(call, key, **kwargs):
    items, marker, pages = [], None, 0
    while True:
        page = call(MaxRecords=20, **({"Marker": marker} if marker else {}), **kwargs)
        items += page[key]
        pages += 1
        marker = page.get("Marker")
        if not marker:
            return items, pages


def test_subnet_groups_paginate(ec):
    names = [f"page-{i:02d}" for i in range(45)]
    for name in names:
        ec.create_cache_subnet_group(CacheSubnetGroupName=name, CacheSubnetGroupDescription=name, SubnetIds=["subnet-us-east-1b"])
    try:
        items, pages = _all_pages(ec.describe_cache_subnet_groups, "CacheSubnetGroups")
        listed = [g["CacheSubnetGroupName"] for g in items]
        assert pages >= 3
        assert len(listed) == len(set(listed))  # no item twice across pages
        assert set(names) <= set(listed) and "default" in listed
        # The botocore paginator follows our markers too.
        paginated = [
            g["CacheSubnetGroupName"]
            for page in ec.get_paginator("describe_cache_subnet_groups").paginate(PaginationConfig={"PageSize": 20})
            for g in page["CacheSubnetGroups"]
        ]
        assert paginated == listed
    finally:
        for name in names:
            ec.delete_cache_subnet_group(CacheSubnetGroupName=name)


def test_replication_groups_and_clusters_paginate(ec):
    ids = [f"pg{i:02d}" for i in range(22)]
    for group_id in ids:
        ec.create_replication_group(
            ReplicationGroupId=group_id, ReplicationGroupDescription="p", Engine="valkey", CacheNodeType="cache.t4g.micro"
        )
    try:
        for group_id in ids:
            wait_group(ec, group_id)
        groups, pages = _all_pages(ec.describe_replication_groups, "ReplicationGroups")
        assert pages >= 2
        listed = [g["ReplicationGroupId"] for g in groups]
        assert len(listed) == len(set(listed)) and set(ids) <= set(listed)
        clusters, _ = _all_pages(ec.describe_cache_clusters, "CacheClusters", ShowCacheNodeInfo=True)
        cluster_ids = [c["CacheClusterId"] for c in clusters]
        assert len(cluster_ids) == len(set(cluster_ids))
        assert {f"{g}-001" for g in ids} <= set(cluster_ids)
        assert all(c["CacheNodes"][0]["Endpoint"]["Port"] == 6379 for c in clusters)
    finally:
        for group_id in ids:
            ec.delete_replication_group(ReplicationGroupId=group_id)
        for group_id in ids:
            wait_group_gone(ec, group_id)


def test_tags_on_every_resource_kind(ec):
    ec.create_replication_group(
        ReplicationGroupId="tagged", ReplicationGroupDescription="t", Engine="valkey", CacheNodeType="cache.t4g.micro",
        Tags=[{"Key": "env", "Value": "test"}],
    )
    ec.create_cache_subnet_group(CacheSubnetGroupName="tagged-sn", CacheSubnetGroupDescription="t",
                                 SubnetIds=["subnet-us-east-1a"], Tags=[{"Key": "env", "Value": "sub"}])
    group = wait_group(ec, "tagged")
    cluster = ec.describe_cache_clusters(CacheClusterId="tagged-001")["CacheClusters"][0]
    subnet_group = ec.describe_cache_subnet_groups(CacheSubnetGroupName="tagged-sn")["CacheSubnetGroups"][0]
    arns = {
        "group": group["ARN"],
        "cluster": cluster["ARN"],
        "subnet": subnet_group["ARN"],
    }
    assert arns == {
        "group": "arn:aws:elasticache:us-east-1:000000000000:replicationgroup:tagged",
        "cluster": "arn:aws:elasticache:us-east-1:000000000000:cluster:tagged-001",
        "subnet": "arn:aws:elasticache:us-east-1:000000000000:subnetgroup:tagged-sn",
    }
    assert ec.list_tags_for_resource(ResourceName=arns["group"])["TagList"] == [{"Key": "env", "Value": "test"}]
    assert ec.list_tags_for_resource(ResourceName=arns["cluster"])["TagList"] == [{"Key": "env", "Value": "test"}]
    for arn in arns.values():
        added = ec.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "owner", "Value": "me"}, {"Key": "env", "Value": "new"}])
        assert {t["Key"]: t["Value"] for t in added["TagList"]} == {"env": "new", "owner": "me"}
        assert {t["Key"]: t["Value"] for t in ec.list_tags_for_resource(ResourceName=arn)["TagList"]} == {"env": "new", "owner": "me"}
        left = ec.remove_tags_from_resource(ResourceName=arn, TagKeys=["env"])
        assert left["TagList"] == [{"Key": "owner", "Value": "me"}]
    ec.delete_replication_group(ReplicationGroupId="tagged")
    wait_group_gone(ec, "tagged")
    with pytest.raises(ec.exceptions.ReplicationGroupNotFoundFault):
        ec.list_tags_for_resource(ResourceName=arns["group"])
    ec.delete_cache_subnet_group(CacheSubnetGroupName="tagged-sn")


def test_events_record_every_state_change_and_filter(ec):
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    ec.create_replication_group(
        ReplicationGroupId="evented", ReplicationGroupDescription="e", Engine="valkey",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=2,
    )
    wait_group(ec, "evented")
    ec.delete_replication_group(ReplicationGroupId="evented")
    wait_group_gone(ec, "evented")
    group_events = ec.describe_events(SourceIdentifier="evented", SourceType="replication-group", StartTime=start)["Events"]
    messages = [e["Message"] for e in group_events]
    assert [m.split(":")[0] for m in messages] == [
        "Creating replication group evented",
        "Replication group evented created and available",
        "Deleting replication group evented",
        "Replication group evented deleted",
    ]
    assert all(e["SourceType"] == "replication-group" for e in group_events)
    dates = [e["Date"] for e in group_events]
    assert dates == sorted(dates)
    cluster_messages = events_of(ec, "evented-002")
    assert any("created" in m and "replica" in m for m in cluster_messages)
    assert any("deleted" in m for m in cluster_messages)
    # Filters: by type, and by time window.
    cluster_events = ec.describe_events(SourceType="cache-cluster", StartTime=start)["Events"]
    assert {"evented-001", "evented-002"} <= {e["SourceIdentifier"] for e in cluster_events}
    assert all(e["SourceType"] == "cache-cluster" for e in cluster_events)
    past = ec.describe_events(SourceIdentifier="evented", StartTime=start - dt.timedelta(hours=2),
                              EndTime=start - dt.timedelta(hours=1))["Events"]
    assert past == []
    assert ec.describe_events(SourceIdentifier="evented", Duration=0)["Events"] == []


def test_modify_subnet_group_and_page_through_its_events(ec):
    """ModifyCacheSubnetGroup changes description and subnets; its events page without gaps or repeats."""
    ec.create_cache_subnet_group(
        CacheSubnetGroupName="growing", CacheSubnetGroupDescription="one zone", SubnetIds=["subnet-us-east-1a"]
    )
    try:
        modified = ec.modify_cache_subnet_group(
            CacheSubnetGroupName="growing",
            CacheSubnetGroupDescription="two zones",
            SubnetIds=["subnet-us-east-1a", "subnet-us-east-1d"],
        )["CacheSubnetGroup"]
        assert modified["CacheSubnetGroupDescription"] == "two zones"
        described = ec.describe_cache_subnet_groups(CacheSubnetGroupName="growing")["CacheSubnetGroups"][0]
        zones = sorted(s["SubnetAvailabilityZone"]["Name"] for s in described["Subnets"])
        assert zones == ["us-east-1a", "us-east-1d"]
        assert described["CacheSubnetGroupDescription"] == "two zones"

        for i in range(30):
            ec.modify_cache_subnet_group(CacheSubnetGroupName="growing", CacheSubnetGroupDescription=f"round {i}")
        # Page through while more events are recorded between the pages.
        seen, marker, pages = [], None, 0
        while True:
            page = ec.describe_events(
                SourceIdentifier="growing", SourceType="cache-subnet-group", MaxRecords=20,
                **({"Marker": marker} if marker else {}),
            )
            seen += [(e["Date"], e["Message"]) for e in page["Events"]]
            pages += 1
            marker = page.get("Marker")
            if not marker:
                break
            ec.modify_cache_subnet_group(CacheSubnetGroupName="growing", CacheSubnetGroupDescription=f"between {pages}")
        messages = [m for _, m in seen]
        assert pages >= 2
        assert messages[0] == "Cache subnet group growing created with zones us-east-1a"
        assert messages.count("Cache subnet group growing modified") == 31 + pages - 1
        assert len(seen) == 1 + 31 + pages - 1  # every event once: none twice, none left out
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    finally:
        ec.delete_cache_subnet_group(CacheSubnetGroupName="growing")
