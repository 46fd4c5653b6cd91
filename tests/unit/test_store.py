"""The SQLite store: round trips, atomic transactions, durability across reopen, events."""

from __future__ import annotations

import datetime as dt

import pytest

from cachefleet.domain import kinds
from cachefleet.domain.cache_clusters import CacheCluster, CacheNode, ClusterStatus, NodeStatus
from cachefleet.domain.events import Event, EventSourceType
from cachefleet.domain.identifiers import Region
from cachefleet.domain.operations import OperationKind, Resharding, begin
from cachefleet.domain.replication_groups import GroupStatus, NodeGroup, ReplicationGroup
from cachefleet.domain.subnet_groups import CacheSubnetGroup, Subnet
from cachefleet.domain.tags import Tag
from cachefleet.store.codec import decode, encode
from cachefleet.store.sqlite import SqliteStore

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def cluster(cluster_id="c1", region="us-east-1"):
    return CacheCluster(
        region=Region(region), cluster_id=cluster_id, status=ClusterStatus.CREATING, engine="valkey",
        engine_version="8.1.8", node_type="cache.t4g.micro", port=6379, availability_zone="us-east-1a",
        subnet_group_name="default", parameter_group_name="default.valkey8",
        node=CacheNode("0001", "127.80.0.1", 6379, "us-east-1a", NodeStatus.CREATING, NOW),
        create_time=NOW, replication_group_id="g", node_group_id="0001", tags=(Tag("a", "b"),),
    )


def group():
    return ReplicationGroup(
        region=Region("us-east-1"), group_id="g", description="d", status=GroupStatus.CREATING, engine="valkey",
        engine_version="8.1.8", node_type="cache.t4g.micro", port=6379, subnet_group_name="default",
        parameter_group_name="default.valkey8",
        node_groups=(NodeGroup("0001", "c1", ("c1", "c2"), "127.80.0.3", "127.80.0.4"),), create_time=NOW,
    )


def test_codec_round_trips_every_kind():
    subnet_group = CacheSubnetGroup(Region("us-east-1"), "sg", "d", (Subnet("subnet-us-east-1a", "us-east-1a"),), "vpc")
    operation = begin(group(), OperationKind.RESHARD, now=NOW, resharding=Resharding((("0001", "0-16383"),), 5, ("0002",)))
    for value in (cluster(), group(), subnet_group, operation):
        assert decode(type(value), encode(value)) == value


def test_every_kind_of_the_registry_is_stored_and_named_once(tmp_path):
    names = [kind.name for kind in kinds.all_kinds()]
    assert len(names) == len(set(names))
    arn_types = [kind.arn_type for kind in kinds.all_kinds() if kind.arn_type]
    assert len(arn_types) == len(set(arn_types))
    store = SqliteStore(tmp_path / "state.db")
    operation = begin(group(), OperationKind.CREATE, now=NOW)
    with store.transaction() as tx:
        tx.put(group())
        tx.put(operation)
    store.close()
    reopened = SqliteStore(tmp_path / "state.db")
    assert reopened.get(type(operation), "us-east-1", operation.key) == operation
    assert set(kinds.STORED_BY_NAME) == {
        "ReplicationGroup", "CacheCluster", "CacheSubnetGroup", "MetricAlarm", "Operation", "CacheParameterGroup",
        "CacheNodeParameters", "CacheSecurityGroup", "ServiceUpdate", "UpdateAction", "User", "UserGroup", "Snapshot",
        "Restore", "ServerlessCache", "Migration", "ReservedCacheNode", "GlobalReplicationGroup",
    }


def test_a_kind_outside_the_registry_is_refused_before_anything_is_written(tmp_path):
    from dataclasses import dataclass
    from typing import ClassVar

    from cachefleet.domain.resource import Kind

    @dataclass(frozen=True)
    class Stranger:
        KIND: ClassVar[Kind] = Kind("Stranger", "Stranger", "InvalidParameterValue")
        region: str = "us-east-1"
        key: str = "s"

    store = SqliteStore(tmp_path / "state.db")
    with pytest.raises(LookupError, match="domain/kinds.py"), store.transaction() as tx:
        tx.put(group())
        tx.put(Stranger())
    assert store.get(ReplicationGroup, "us-east-1", "g") is None


def test_transactions_are_atomic_and_durable(tmp_path):
    store = SqliteStore(tmp_path / "state.db")
    with store.transaction() as tx:
        tx.put(group())
        tx.put(cluster())
        tx.add_event(Event(Region("us-east-1"), EventSourceType.REPLICATION_GROUP, "g", "created", NOW))
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.put(cluster("c2"))
        tx.delete(group())
        raise RuntimeError("boom")
    assert store.get(CacheCluster, "us-east-1", "c2") is None
    assert store.get(ReplicationGroup, "us-east-1", "g") == group()
    store.close()
    reopened = SqliteStore(tmp_path / "state.db")
    assert reopened.get(ReplicationGroup, "us-east-1", "g") == group()
    assert reopened.list(CacheCluster) == [cluster()]
    assert reopened.list(CacheCluster, "eu-west-1") == []
    events = list(reopened.events("us-east-1", start=NOW - dt.timedelta(minutes=1), end=NOW + dt.timedelta(minutes=1)))
    assert [e.message for e in events] == ["created"]
    assert list(reopened.events("us-east-1", start=NOW, end=NOW, source_id="other")) == []
    with reopened.transaction() as tx:
        tx.delete(cluster())
    assert reopened.get(CacheCluster, "us-east-1", "c1") is None


def test_regions_are_separate(tmp_path):
    store = SqliteStore(tmp_path / "state.db")
    with store.transaction() as tx:
        tx.put(cluster("c1", "us-east-1"))
        tx.put(cluster("c1", "eu-west-1"))
    assert len(store.list(CacheCluster)) == 2
    assert store.get(CacheCluster, "eu-west-1", "c1").region == "eu-west-1"


def test_a_store_locked_by_another_process_refuses_a_write_soon_and_keeps_what_it_had(tmp_path):
    import sqlite3
    import time

    from cachefleet.domain.errors import StoreUnavailable

    store = SqliteStore(tmp_path / "state.db")
    with store.transaction() as tx:
        tx.put(group())
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    start = time.monotonic()
    with pytest.raises(StoreUnavailable, match="locked by another process"), store.transaction() as tx:
        tx.put(cluster())
        tx.delete(group())
    assert time.monotonic() - start < 2  # the event loop waits at most the busy timeout, not 5 s
    assert store.get(CacheCluster, "us-east-1", "c1") is None  # the mirror has none of it either
    assert store.get(ReplicationGroup, "us-east-1", "g") == group()
    other.execute("ROLLBACK")
    other.close()
    with store.transaction() as tx:
        tx.put(cluster())
    assert SqliteStore(tmp_path / "state.db").get(CacheCluster, "us-east-1", "c1") == cluster()


def test_events_are_read_a_page_at_a_time_in_the_order_of_recording(tmp_path):
    """DescribeEvents reads one page (``limit``) from the first event of it (``after``: a date and
    sequence, so events of the same instant split across pages neither repeat nor go missing),
    a serverless cache's hidden group's events left out by the query (a page stays full)."""
    store = SqliteStore(tmp_path / "state.db")
    later = NOW + dt.timedelta(microseconds=1)
    with store.transaction() as tx:
        for n in range(9):  # three to an instant; every third one of a hidden group
            source = "serverless--c_x" if n % 3 == 1 else "g"
            tx.add_event(Event(Region("us-east-1"), EventSourceType.REPLICATION_GROUP, source, f"e{n}",
                               NOW if n < 6 else later))
    window = {"start": NOW - dt.timedelta(minutes=1), "end": NOW + dt.timedelta(minutes=1)}
    everything = list(store.events("us-east-1", **window))
    assert [e.message for e in everything] == [f"e{n}" for n in range(9)]
    shown = list(store.events("us-east-1", **window, hidden_prefix="serverless--"))
    assert [e.message for e in shown] == ["e0", "e2", "e3", "e5", "e6", "e8"]
    pages, after = [], None
    while True:
        page = list(store.events("us-east-1", **window, hidden_prefix="serverless--", after=after, limit=3))
        pages.append([e.message for e in page[:2]])
        if len(page) < 3:
            break
        after = (page[2].date.timestamp(), page[2].sequence)
    assert pages == [["e0", "e2"], ["e3", "e5"], ["e6", "e8"]]
    # An id's '_' is no wildcard: a source id that only looks like the prefix is shown.
    assert [e.message for e in store.events("us-east-1", **window, hidden_prefix="serverless-_")] == [
        f"e{n}" for n in range(9)]
    store.close()
