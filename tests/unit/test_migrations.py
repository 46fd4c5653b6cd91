"""Online migration and reserved nodes: the rules that need no engine, by outcome."""

from __future__ import annotations

import datetime as dt

import pytest

from cachefleet.domain import errors
from cachefleet.domain.cache_clusters import ClusterStatus
from cachefleet.domain.credentials import TransitEncryptionMode
from cachefleet.domain.migrations import (
    Migration,
    MigrationPhase,
    check_target,
    customer_endpoint,
    upstream,
    version_problem,
)
from cachefleet.domain.nodetypes import NODE_TYPES
from cachefleet.domain.replication_groups import GroupStatus, NodeGroup, ReplicationGroup
from cachefleet.domain.reserved_nodes import (
    OFFERINGS,
    ReservedCacheNode,
    ReservedFilters,
    offering_id,
    offering_types,
)
from cachefleet.domain.security import Security

NOW = dt.datetime(2026, 12, 2, 6, 0, tzinfo=dt.UTC)


def _group(**changes) -> ReplicationGroup:
    fields = dict(
        region="us-east-1", group_id="g", description="", status=GroupStatus.AVAILABLE, engine="valkey",
        engine_version="8.1.8", node_type="cache.t4g.micro", port=6379, subnet_group_name="default",
        parameter_group_name="default.valkey8", create_time=NOW, multi_az="enabled", automatic_failover="enabled",
        node_groups=(NodeGroup("0001", "g-001", ("g-001", "g-002")),),
    )
    fields.update(changes)
    return ReplicationGroup(**fields)  # type: ignore[arg-type]


def test_exactly_one_well_formed_endpoint():
    assert customer_endpoint([{"Address": "10.0.0.241", "Port": 6379}]) == ("10.0.0.241", 6379)
    for bad in ([], None, [{"Address": "a", "Port": 1}, {"Address": "b", "Port": 2}], [{"Address": "", "Port": 1}],
                [{"Address": "a b", "Port": 1}], [{"Address": "h", "Port": 70000}], [{"Address": "h"}]):
        with pytest.raises(errors.InvalidParameterValue):
            customer_endpoint(bad)


@pytest.mark.parametrize(("changes", "error", "words"), [
    ({"status": GroupStatus.MODIFYING}, errors.InvalidState, "is not in available state"),
    ({"cluster_enabled": True}, errors.InvalidParameterCombination, "cluster mode enabled"),
    ({"security": Security(transit_encryption_mode=TransitEncryptionMode.REQUIRED)}, errors.InvalidParameterCombination,
     "encryption in-transit"),
    ({"security": Security(auth_token_hashes=("x",))}, errors.InvalidParameterCombination, "AUTH enabled"),
    ({"security": Security(user_group_ids=("ug",))}, errors.InvalidParameterCombination, "AUTH enabled"),
    ({"multi_az": "disabled"}, errors.InvalidParameterCombination, "Multi-AZ enabled"),
])
def test_target_preconditions_are_elasticaches(changes, error, words):
    with pytest.raises(error, match=words):
        check_target(_group(**changes), [ClusterStatus.AVAILABLE])


def test_a_target_with_a_busy_member_is_refused_and_a_ready_one_passes():
    with pytest.raises(errors.InvalidState) as caught:
        check_target(_group(), [ClusterStatus.AVAILABLE, ClusterStatus.MODIFYING])
    assert caught.value.resource == "CacheCluster"
    check_target(_group(), [ClusterStatus.AVAILABLE, ClusterStatus.AVAILABLE])


def test_source_versions():
    assert version_problem(source_engine="redis", source_version="7.0.15", target_engine="valkey",
                           target_version="8.1.8") is None
    assert version_problem(source_engine="redis", source_version="2.8.21", target_engine="redis",
                           target_version="7.0.15") is None
    assert "2.8.21 or later" in str(version_problem(source_engine="redis", source_version="2.8.19",
                                                    target_engine="valkey", target_version="8.1.8"))
    newer = version_problem(source_engine="valkey", source_version="9.1.2", target_engine="valkey",
                            target_version="8.1.8")
    assert newer == "the source runs Valkey 9.1.2, newer than the target's Valkey 8.1.8"
    assert version_problem(source_engine="valkey", source_version="8.1.8", target_engine="redis",
                           target_version="7.0.15") is not None


def test_only_a_following_migration_points_the_primary_at_the_source():
    base = Migration("us-east-1", "g", "10.0.0.1", 6380, MigrationPhase.TESTING, NOW)
    assert upstream(None) is None
    for phase in MigrationPhase:
        expected = ("10.0.0.1", 6380) if phase in (MigrationPhase.SYNCING, MigrationPhase.IN_SYNC,
                                                   MigrationPhase.COMPLETING) else None
        assert upstream(Migration("us-east-1", "g", "10.0.0.1", 6380, phase, NOW)) == expected
    assert base.source == "10.0.0.1:6380"


def test_offerings_every_type_term_and_option_with_stable_ids():
    assert {o.node_type for o in OFFERINGS} == set(NODE_TYPES)
    assert offering_types("cache.r7g.large") == ("No Upfront", "Partial Upfront", "All Upfront")
    assert offering_types("cache.t2.micro") == ("Light Utilization", "Medium Utilization", "Heavy Utilization")
    assert len(OFFERINGS) == len(NODE_TYPES) * 2 * 3 * 2
    assert offering_id("cache.t4g.micro", 31536000, "No Upfront", "redis") == \
        offering_id("cache.t4g.micro", 31536000, "No Upfront", "redis")
    assert all(o.fixed_price is None and o.usage_price is None for o in OFFERINGS)  # no price found: none invented


def test_filters_take_years_or_seconds_and_refuse_others():
    assert ReservedFilters.parse({"Duration": "3"}).duration == 94608000
    assert ReservedFilters.parse({"Duration": "31536000"}).duration == 31536000
    for bad in ({"Duration": "2"}, {"OfferingType": "Some Upfront"}):
        with pytest.raises(errors.InvalidParameterValue):
            ReservedFilters.parse(bad)
    chosen = ReservedFilters.parse({"CacheNodeType": "cache.m7g.large", "ProductDescription": "Valkey"})
    assert {o.product_description for o in OFFERINGS if chosen.matches(o)} == {"valkey"}


def test_reservation_state_follows_the_clock():
    node = ReservedCacheNode("us-east-1", "ri-1", "o", "cache.t4g.micro", 31536000, "valkey", "No Upfront", 1, NOW)
    assert node.state(NOW) == "payment-pending"
    assert node.state(NOW + dt.timedelta(seconds=3)) == "active"
    assert node.state(NOW + dt.timedelta(days=366)) == "retired"
