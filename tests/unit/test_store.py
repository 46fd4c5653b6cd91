"""The SQLite store: round trips, atomic transactions, durability across reopen, events."""

from __future__ import annotations

import datetime as dt

import pytest

from cachefleet.domain.model import (
    CacheCluster,
    CacheNode,
    CacheSubnetGroup,
    ClusterStatus,
    Event,
    EventSourceType,
    GroupStatus,
    NodeGroup,
    NodeStatus,
    Region,
    ReplicationGroup,
    Subnet,
    Tag,
)
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
    for value in (cluster(), group(), subnet_group):
        assert decode(type(value), encode(value)) == value


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
