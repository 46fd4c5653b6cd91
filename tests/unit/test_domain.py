"""Use cases and rules of the domain, with a real store in a temp dir and a fixed engine catalog."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest

from cachefleet.domain import errors, identifiers, validation
from cachefleet.domain.model import (
    CacheCluster,
    ClusterStatus,
    EngineRelease,
    GroupStatus,
    ReplicationGroup,
    Tag,
)
from cachefleet.domain.service import ElastiCache
from cachefleet.store.sqlite import SqliteStore

RELEASES = [
    EngineRelease("valkey", "8.1.8", "valkey8", "Valkey 8.1.8"),
    EngineRelease("valkey", "9.1.2", "valkey9", "Valkey 9.1.2"),
    EngineRelease("redis", "7.0.15", "redis7", "Redis OSS 7.0.15"),
]


class FixedClock:
    def now(self):
        return dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


class Catalog:
    def __init__(self, releases):
        self._releases = releases

    def releases(self):
        return self._releases


@pytest.fixture
def changes():
    return []


@pytest.fixture
def service(tmp_path, changes):
    return ElastiCache(
        store=SqliteStore(tmp_path / "state.db"),
        catalog=Catalog(RELEASES),
        clock=FixedClock(),
        node_network=ipaddress.IPv4Network("127.80.0.0/24"),
        on_change=lambda kind, region, key: changes.append((kind.__name__, region, key)),
    )


def test_identifiers():
    assert identifiers.replication_group_id("My-Group1") == "my-group1"
    for bad in ("", "1a", "a--b", "a-", "a_b", "x" * 41):
        with pytest.raises(errors.InvalidParameterValue):
            identifiers.replication_group_id(bad)
    assert identifiers.cache_cluster_id("x" * 50) == "x" * 50
    assert identifiers.member_cluster_id("demo", 2) == "demo-002"
    assert identifiers.subnet_zone("us-east-1", "subnet-us-east-1c-private") == "us-east-1c"
    with pytest.raises(errors.InvalidSubnet):
        identifiers.subnet_zone("us-east-1", "subnet-0123abcd")
    parsed = identifiers.parse_arn("arn:aws:elasticache:us-east-1:000000000000:cluster:c1", region="us-east-1")
    assert (parsed.resource_type, parsed.resource_id) == ("cluster", "c1")
    with pytest.raises(errors.InvalidArn):
        identifiers.parse_arn("arn:aws:s3:::bucket", region="us-east-1")


def test_engine_resolution():
    assert validation.resolve_engine(RELEASES, "valkey", None).version == "9.1.2"
    for asked in ("8.1", "8.1.8", "8", "8.x"):
        assert validation.resolve_engine(RELEASES, "valkey", asked).version == "8.1.8"
    assert validation.resolve_engine(RELEASES, None, None).engine == "redis"  # ElastiCache's default
    assert validation.resolve_engine(RELEASES[:2], None, None).engine == "valkey"  # when Redis OSS is absent
    with pytest.raises(errors.InvalidParameterValue, match="Installed: valkey 8.1.8, valkey 9.1.2, redis 7.0.15"):
        validation.resolve_engine(RELEASES, "valkey", "7.2")
    with pytest.raises(errors.InvalidParameterValue, match="not installed"):
        validation.resolve_engine(RELEASES[:2], "redis", None)


def test_tags_and_windows():
    merged = validation.tags([{"Key": "a", "Value": "2"}], existing=(Tag("a", "1"), Tag("b", "1")))
    assert merged == (Tag("a", "2"), Tag("b", "1"))
    with pytest.raises(errors.QuotaExceeded):
        validation.tags([{"Key": str(i)} for i in range(51)])
    with pytest.raises(errors.InvalidParameterValue):
        validation.tags([{"Value": "no key"}])
    assert validation.maintenance_window("SAT:23:30-SUN:00:30") == "sat:23:30-sun:00:30"  # wraps the week
    with pytest.raises(errors.InvalidParameterValue):
        validation.maintenance_window("sun:05:00-sun:05:59")
    assert validation.snapshot_window("23:30-00:30") == "23:30-00:30"


def test_address_allocation():
    network = ipaddress.IPv4Network("127.80.0.0/29")
    assert validation.allocate_addresses(network, {"127.80.0.1", "127.80.0.3"}, 2) == ["127.80.0.2", "127.80.0.4"]
    with pytest.raises(errors.InsufficientCapacity, match="--node-network"):
        validation.allocate_addresses(network, set(), 7)


def test_create_replication_group_records_desired_state(service, changes):
    group = service.create_replication_group(
        "us-east-1", {"ReplicationGroupId": "Demo", "ReplicationGroupDescription": "d", "Engine": "valkey",
                      "EngineVersion": "8.1", "CacheNodeType": "cache.t4g.micro", "NumCacheClusters": 4}
    )
    assert group.status == GroupStatus.CREATING and group.group_id == "demo"
    assert group.member_cluster_ids == ("demo-001", "demo-002", "demo-003", "demo-004")
    clusters = service.describe_cache_clusters("us-east-1")
    assert [c.availability_zone for c in clusters] == ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1a"]
    addresses = [c.node.address for c in clusters] + [group.node_groups[0].primary_endpoint, group.node_groups[0].reader_endpoint]
    assert len(set(addresses)) == 6
    assert all(c.status == ClusterStatus.CREATING and c.engine_version == "8.1.8" for c in clusters)
    assert changes == [("ReplicationGroup", "us-east-1", "demo")]
    events = service.describe_events("us-east-1", {"StartTime": FixedClock().now() - dt.timedelta(minutes=1)})
    assert [e.source_id for e in events] == ["demo"]


def test_failed_validation_writes_nothing(service, changes):
    with pytest.raises(errors.InvalidParameterValue):
        service.create_replication_group(
            "us-east-1", {"ReplicationGroupId": "demo", "ReplicationGroupDescription": "d", "Engine": "valkey",
                          "CacheNodeType": "cache.t4g.micro", "Tags": [{"Key": "aws:x", "Value": "y"}]}
        )
    assert service.describe_replication_groups("us-east-1") == []
    assert service.describe_cache_clusters("us-east-1") == []
    assert changes == []


def test_the_node_network_limits_capacity(tmp_path):
    small = ElastiCache(store=SqliteStore(tmp_path / "s.db"), catalog=Catalog(RELEASES), clock=FixedClock(),
                        node_network=ipaddress.IPv4Network("127.80.0.0/30"))
    with pytest.raises(errors.InsufficientCapacity):
        small.create_replication_group(
            "us-east-1", {"ReplicationGroupId": "g", "ReplicationGroupDescription": "d", "Engine": "valkey",
                          "CacheNodeType": "cache.t4g.micro"}
        )
    assert small.describe_replication_groups("us-east-1") == []


def test_deleting_a_primary_cluster_is_refused(service):
    service.create_replication_group(
        "us-east-1", {"ReplicationGroupId": "g", "ReplicationGroupDescription": "d", "Engine": "valkey",
                      "CacheNodeType": "cache.t4g.micro", "NumCacheClusters": 2}
    )
    store = service._store
    group = store.get(ReplicationGroup, "us-east-1", "g")
    with store.transaction() as tx:
        from dataclasses import replace

        tx.put(replace(group, status=GroupStatus.AVAILABLE))
        for c in store.list(CacheCluster):
            tx.put(replace(c, status=ClusterStatus.AVAILABLE))
    with pytest.raises(errors.InvalidState, match="primary"):
        service.delete_cache_cluster("us-east-1", {"CacheClusterId": "g-001"})
    deleting = service.delete_cache_cluster("us-east-1", {"CacheClusterId": "g-002"})
    assert deleting.status == ClusterStatus.DELETING
    assert service.describe_replication_groups("us-east-1", "g")[0].status == GroupStatus.MODIFYING
