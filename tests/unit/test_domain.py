"""Use cases and rules of the domain, with a real store in a temp dir and a fixed engine catalog."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest

from cachefleet.domain import engines, errors, identifiers, tags, validation
from cachefleet.domain.base import Dependencies
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus
from cachefleet.domain.elasticache import ElastiCache
from cachefleet.domain.engines import EngineRelease
from cachefleet.domain.operations import Operation, OperationKind
from cachefleet.domain.replication_groups import CreateReplicationGroupRequest, GroupStatus, ReplicationGroup
from cachefleet.domain.tags import Tag
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


def use_cases(path, *, network="127.80.0.0/24", changes=None):
    return ElastiCache(
        Dependencies(
            store=SqliteStore(path),
            catalog=Catalog(RELEASES),
            clock=FixedClock(),
            node_network=ipaddress.IPv4Network(network),
            on_change=lambda kind, region, key: changes.append((kind.KIND.name, region, key)) if changes is not None else None,
        )
    )


@pytest.fixture
def service(tmp_path, changes):
    return use_cases(tmp_path / "state.db", changes=changes)


def create(service, **params):
    request = CreateReplicationGroupRequest.parse("us-east-1", {"ReplicationGroupDescription": "d", **params})
    return service.replication_groups.create("us-east-1", request)


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
    # A global replication group spans regions: its ARN names none, and one that names a region is refused.
    grg = "arn:aws:elasticache::000000000000:globalreplicationgroup:abcde-g"
    parsed = identifiers.parse_arn(grg, region="us-west-2", regionless={"globalreplicationgroup"})
    assert (parsed.region, parsed.resource_id, str(parsed)) == ("", "abcde-g", grg)
    with pytest.raises(errors.InvalidArn, match="names none"):
        identifiers.parse_arn(grg.replace("::", ":us-west-2:"), region="us-west-2", regionless={"globalreplicationgroup"})
    with pytest.raises(errors.InvalidArn, match="region"):
        identifiers.parse_arn(grg, region="us-west-2")  # a caller that takes regional ARNs only


def test_engine_resolution():
    assert engines.resolve_engine(RELEASES, "valkey", None).version == "9.1.2"
    for asked in ("8.1", "8.1.8", "8", "8.x"):
        assert engines.resolve_engine(RELEASES, "valkey", asked).version == "8.1.8"
    assert engines.resolve_engine(RELEASES, None, None).engine == "redis"  # ElastiCache's default
    assert engines.resolve_engine(RELEASES[:2], None, None).engine == "valkey"  # when Redis OSS is absent
    with pytest.raises(errors.InvalidParameterValue, match="Installed: valkey 8.1.8, valkey 9.1.2, redis 7.0.15"):
        engines.resolve_engine(RELEASES, "valkey", "7.2")
    with pytest.raises(errors.InvalidParameterValue, match="not installed"):
        engines.resolve_engine(RELEASES[:2], "redis", None)


def test_tags_and_windows():
    merged = tags.tags([{"Key": "a", "Value": "2"}], existing=(Tag("a", "1"), Tag("b", "1")))
    assert merged == (Tag("a", "2"), Tag("b", "1"))
    with pytest.raises(errors.QuotaExceeded):
        tags.tags([{"Key": str(i)} for i in range(51)])
    with pytest.raises(errors.InvalidParameterValue):
        tags.tags([{"Value": "no key"}])
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
    group = create(service, ReplicationGroupId="Demo", Engine="valkey", EngineVersion="8.1",
                   CacheNodeType="cache.t4g.micro", NumCacheClusters=4)
    assert group.status == GroupStatus.CREATING and group.group_id == "demo"
    assert group.member_cluster_ids == ("demo-001", "demo-002", "demo-003", "demo-004")
    clusters = service.cache_clusters.describe("us-east-1")
    assert [c.availability_zone for c in clusters] == ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1a"]
    addresses = [c.node.address for c in clusters] + [group.node_groups[0].primary_endpoint, group.node_groups[0].reader_endpoint]
    assert len(set(addresses)) == 6
    assert all(c.status == ClusterStatus.CREATING and c.engine_version == "8.1.8" for c in clusters)
    assert changes == [("ReplicationGroup", "us-east-1", "demo")]
    events = service.events.describe("us-east-1", {"StartTime": FixedClock().now() - dt.timedelta(minutes=1)})
    assert [e.source_id for e in events] == ["demo"]
    # The work to do is an operation record, due within its allowance.
    operations = service.replication_groups.operations(group)
    assert list(operations) == [OperationKind.CREATE]
    assert operations[OperationKind.CREATE].deadline == FixedClock().now() + dt.timedelta(minutes=10)


def test_a_request_is_checked_before_anything_is_looked_up():
    """CreateReplicationGroup's parameters are parsed once, into a typed request."""
    request = CreateReplicationGroupRequest.parse(
        "us-east-1",
        {"ReplicationGroupId": "Shards", "ReplicationGroupDescription": "d", "CacheNodeType": "cache.t4g.micro",
         "NumNodeGroups": 3, "ReplicasPerNodeGroup": 1, "Tags": [{"Key": "team", "Value": "a"}]},
    )
    assert request.cluster_mode and request.group_id == "shards" and request.tags == (Tag("team", "a"),)
    assert [len(spec.slots) for spec in request.shards] == [5462, 5461, 5461]
    assert [spec.replicas for spec in request.shards] == [1, 1, 1]
    with pytest.raises(errors.InvalidParameterCombination, match="AutomaticFailoverEnabled"):
        CreateReplicationGroupRequest.parse(
            "us-east-1", {"ReplicationGroupId": "g", "ReplicationGroupDescription": "d", "CacheNodeType": "cache.t4g.micro",
                          "NumNodeGroups": 2, "AutomaticFailoverEnabled": False},
        )
    with pytest.raises(errors.InvalidParameterValue, match="CacheNodeType must be provided"):
        CreateReplicationGroupRequest.parse("us-east-1", {"ReplicationGroupId": "g", "ReplicationGroupDescription": "d"})


def test_resharding_zones_without_a_node_group_id_are_refused_not_dropped():
    from cachefleet.domain.shards import ShardConfigurationRequest

    base = {"ReplicationGroupId": "g", "NodeGroupCount": 2, "ApplyImmediately": True}
    with pytest.raises(errors.InvalidParameterCombination, match="PreferredAvailabilityZones without a NodeGroupId"):
        ShardConfigurationRequest.parse("us-east-1", {**base, "ReshardingConfiguration": [
            {"NodeGroupId": "0001"}, {"PreferredAvailabilityZones": ["us-east-1b"]}]})
    named = ShardConfigurationRequest.parse("us-east-1", {**base, "ReshardingConfiguration": [
        {"NodeGroupId": "0001"}, {"NodeGroupId": "0002", "PreferredAvailabilityZones": ["us-east-1b"]}]})
    assert named.zones == (("0001", ()), ("0002", ("us-east-1b",)))


def test_failed_validation_writes_nothing(service, changes):
    with pytest.raises(errors.InvalidParameterValue):
        create(service, ReplicationGroupId="demo", Engine="valkey", CacheNodeType="cache.t4g.micro",
               Tags=[{"Key": "aws:x", "Value": "y"}])
    assert service.replication_groups.describe("us-east-1") == []
    assert service.cache_clusters.describe("us-east-1") == []
    assert service.deps.store.list(Operation) == []
    assert changes == []


def test_the_node_network_limits_capacity(tmp_path):
    small = use_cases(tmp_path / "s.db", network="127.80.0.0/30")
    with pytest.raises(errors.InsufficientCapacity):
        create(small, ReplicationGroupId="g", Engine="valkey", CacheNodeType="cache.t4g.micro")
    assert small.replication_groups.describe("us-east-1") == []


def test_deleting_a_primary_cluster_is_refused(service):
    create(service, ReplicationGroupId="g", Engine="valkey", CacheNodeType="cache.t4g.micro", NumCacheClusters=2)
    store = service.deps.store
    group = store.get(ReplicationGroup, "us-east-1", "g")
    with store.transaction() as tx:
        from dataclasses import replace

        tx.put(replace(group, status=GroupStatus.AVAILABLE))
        for c in store.list(CacheCluster):
            tx.put(replace(c, status=ClusterStatus.AVAILABLE))
    with pytest.raises(errors.InvalidState, match="primary"):
        service.cache_clusters.delete("us-east-1", "g-001")
    deleting = service.cache_clusters.delete("us-east-1", "g-002")
    assert deleting.status == ClusterStatus.DELETING
    assert service.replication_groups.describe("us-east-1", "g")[0].status == GroupStatus.MODIFYING
    assert OperationKind.MODIFY in service.replication_groups.operations(group)


def test_tagging_reads_the_registry(service):
    """Every ARN type ElastiCache has is known; one whose family Cachefleet has not built yet is
    that family's NotFound, not an unknown type."""
    for arn_type, resource in (("serverlesscache", "ServerlessCache"), ("reserved-instance", "ReservedCacheNode"),
                               ("snapshot", "Snapshot"), ("usergroup", "UserGroup")):
        with pytest.raises(errors.NotFound) as raised:
            service.tagging.tags_of("us-east-1", f"arn:aws:elasticache:us-east-1:000000000000:{arn_type}:x")
        assert raised.value.resource == resource
    with pytest.raises(errors.InvalidArn, match="unknown resource type"):
        service.tagging.tags_of("us-east-1", "arn:aws:elasticache:us-east-1:000000000000:widget:x")


def test_describe_events_far_in_the_future_is_empty_not_an_overflow(service):
    end_of_time = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    assert service.events.describe("us-east-1", {"StartTime": end_of_time, "Duration": 60}) == []
    assert service.events.describe("us-east-1", {"EndTime": dt.datetime(1, 1, 1, 0, 1, tzinfo=dt.UTC), "Duration": 60}) == []
