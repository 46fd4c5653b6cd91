"""Parameter groups: the rules of the use cases (real store in a temp dir, fixed engine catalog), and
the pure decisions of what a node is told and what Describe shows as pending."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import replace

import pytest

from cachefleet.domain import errors
from cachefleet.domain import parameter_groups as G
from cachefleet.domain import parameters as P
from cachefleet.domain.base import Dependencies
from cachefleet.domain.cache_clusters import (
    CacheCluster,
    ClusterStatus,
    CreateCacheClusterRequest,
    ModifyCacheClusterRequest,
)
from cachefleet.domain.elasticache import ElastiCache
from cachefleet.domain.engines import EngineRelease
from cachefleet.domain.operations import Operation, OperationKind, operation_key
from cachefleet.domain.parameters import ApplyStatus, Source
from cachefleet.domain.replication_groups import (
    CreateReplicationGroupRequest,
    GroupStatus,
    ModifyReplicationGroupRequest,
)
from cachefleet.store.sqlite import SqliteStore

REGION = "us-east-1"
RELEASES = [
    EngineRelease("valkey", "8.1.8", "valkey8", "Valkey 8.1.8"),
    EngineRelease("redis", "7.0.15", "redis7", "Redis OSS 7.0.15"),
]
NODE_TYPE = "cache.t4g.micro"


class FixedClock:
    def now(self) -> dt.datetime:
        return dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


class Catalog:
    def releases(self) -> list[EngineRelease]:
        return RELEASES


def _builds() -> G.Builds:
    """Builds as the probe sees them: every setting, the engines' own defaults for a few, no defrag."""
    every = {r for f in ("valkey8", "redis7") for p in P.family_parameters(f) for r in p.requires}
    settings = {name: "?" for name in every} | {"timeout": "0", "maxmemory-policy": "noeviction"}
    build = G.BuildSettings(settings, frozenset({"activedefrag"}))
    return {("valkey", "8.1.8"): build, ("redis", "7.0.15"): build}


@pytest.fixture
def changes() -> list[tuple[str, str, str]]:
    return []


@pytest.fixture
def service(tmp_path, changes) -> ElastiCache:
    return ElastiCache(
        Dependencies(
            store=SqliteStore(tmp_path / "state.db"),
            catalog=Catalog(),
            clock=FixedClock(),
            node_network=ipaddress.IPv4Network("127.80.0.0/24"),
            on_change=lambda kind, region, key: changes.append((kind.KIND.name, region, key)),
        ),
        builds=_builds(),
    )


def create(service: ElastiCache, name: str = "my-params", family: str = "valkey8") -> G.CacheParameterGroup:
    request = G.CreateCacheParameterGroupRequest.parse(
        {"CacheParameterGroupName": name, "CacheParameterGroupFamily": family, "Description": "d"}
    )
    return service.parameter_groups.create(REGION, request)


def modify(service: ElastiCache, name: str, **values: str) -> G.CacheParameterGroup:
    request = G.ModifyCacheParameterGroupRequest.parse(
        {"CacheParameterGroupName": name,
         "ParameterNameValues": [{"ParameterName": k.replace("_", "-"), "ParameterValue": v} for k, v in values.items()]}
    )
    return service.parameter_groups.modify(REGION, request)


def cluster(service: ElastiCache, cluster_id: str = "c1", **params: object) -> CacheCluster:
    request = CreateCacheClusterRequest.parse(
        REGION, {"CacheClusterId": cluster_id, "CacheNodeType": NODE_TYPE, "Engine": "valkey", **params}
    )
    return service.cache_clusters.create(REGION, request)


# ---------------------------------------------------------------------------------------------- groups


def test_default_groups_exist_per_installed_family_and_cannot_change(service: ElastiCache) -> None:
    names = [g.name for g in service.parameter_groups.describe(REGION)]
    assert names == ["default.redis7", "default.redis7.cluster.on", "default.valkey8", "default.valkey8.cluster.on"]
    on = service.parameter_groups.get(REGION, "default.valkey8.cluster.on")
    assert on.cluster_enabled and on.description == "Customized default parameter group for valkey8 with cluster mode on"
    for action in (
        lambda: modify(service, "default.valkey8", timeout="30"),
        lambda: service.parameter_groups.delete(REGION, "default.valkey8"),
    ):
        with pytest.raises(errors.InvalidParameterValue, match="default parameter group"):
            action()
    with pytest.raises(errors.InvalidParameterValue, match="CacheParameterGroupName"):
        create(service, "default.valkey8")  # periods are for the default groups' names


def test_families_are_those_installed(service: ElastiCache) -> None:
    with pytest.raises(errors.InvalidParameterValue, match="redis7, valkey8"):
        create(service, family="valkey9")
    with pytest.raises(errors.InvalidParameterValue, match="CacheParameterGroupFamily"):
        service.parameter_groups.engine_defaults("redis6.x")


def test_create_modify_describe_reset_delete(service: ElastiCache, changes) -> None:
    create(service)
    with pytest.raises(errors.AlreadyExists):
        create(service, "My-Params")
    modify(service, "My-Params", maxmemory_policy="allkeys-lru", notify_keyspace_events="lK")
    assert changes[-1] == ("CacheParameterGroup", REGION, "my-params")
    listed = service.parameter_groups.parameters(REGION, "my-params", Source.USER)
    assert [(p.parameter.name, p.value) for p in listed.parameters] == [
        ("maxmemory-policy", "allkeys-lru"), ("notify-keyspace-events", "lK")
    ]
    assert listed.node_type_specific == ()  # they are system values
    every = service.parameter_groups.parameters(REGION, "my-params")
    sources = {p.parameter.name: p.source for p in every.parameters}
    # engine-default: the installed engine's own default; system: ElastiCache sets another one.
    assert sources["timeout"] is Source.ENGINE_DEFAULT and sources["repl-backlog-size"] is Source.SYSTEM
    assert "activedefrag" not in sources  # the builds refuse it: not offered
    assert {p.name for p in every.node_type_specific} >= {"maxmemory"}
    reset = G.ResetCacheParameterGroupRequest.parse(
        {"CacheParameterGroupName": "my-params", "ParameterNameValues": [{"ParameterName": "maxmemory-policy"}]}
    )
    assert service.parameter_groups.reset(REGION, reset).user_values == {"notify-keyspace-events": "lK"}
    everything = G.ResetCacheParameterGroupRequest.parse({"CacheParameterGroupName": "my-params", "ResetAllParameters": True})
    assert service.parameter_groups.reset(REGION, everything).user_values == {}
    service.parameter_groups.delete(REGION, "my-params")
    with pytest.raises(errors.NotFound, match="CacheParameterGroup not found: my-params"):
        service.parameter_groups.get(REGION, "my-params")


@pytest.mark.parametrize(
    ("values", "error", "match"),
    [
        ({"maxmemory-polcy": "allkeys-lru"}, errors.InvalidParameterValue, "Did you mean maxmemory-policy"),
        ({"timeout": "5"}, errors.InvalidParameterValue, "allowed values are 0,20-"),
        ({"maxmemory": "1000"}, errors.InvalidParameterValue, "not modifiable"),
        ({"activedefrag": "yes"}, errors.InvalidParameterValue, "not available on the installed valkey8"),
        ({"lazyfree-lazy-expire": "yes"}, errors.InvalidParameterValue, "doesn't exist"),
        ({"close-on-replica-write": "no"}, errors.InvalidParameterCombination, "cannot be honoured"),
    ],
)
def test_modify_refuses_what_elasticache_refuses(service: ElastiCache, values, error, match) -> None:
    create(service)
    with pytest.raises(error, match=match):
        modify(service, "my-params", **values)
    assert service.parameter_groups.get(REGION, "my-params").user_values == {}


def test_modify_takes_twenty_parameters_at_most_and_each_once() -> None:
    pairs = [{"ParameterName": f"p{i}", "ParameterValue": "1"} for i in range(21)]
    with pytest.raises(errors.InvalidParameterCombination, match="Cannot modify more than 20"):
        G.ModifyCacheParameterGroupRequest.parse({"CacheParameterGroupName": "g", "ParameterNameValues": pairs})
    twice = [{"ParameterName": "timeout", "ParameterValue": "20"}] * 2
    with pytest.raises(errors.InvalidParameterCombination, match="twice"):
        G.ModifyCacheParameterGroupRequest.parse({"CacheParameterGroupName": "g", "ParameterNameValues": twice})
    with pytest.raises(errors.InvalidParameterValue, match="ResetAllParameters"):
        G.ResetCacheParameterGroupRequest.parse({"CacheParameterGroupName": "g"})


def test_reserved_memory_and_percent_exclude_each_other(service: ElastiCache) -> None:
    create(service)
    reset = G.ResetCacheParameterGroupRequest.parse(
        {"CacheParameterGroupName": "my-params", "ParameterNameValues": [{"ParameterName": "reserved-memory"}]}
    )
    # ElastiCache's answer while the group uses reserved-memory-percent (Terraform's provider relies on it).
    with pytest.raises(errors.InvalidParameterValue, match="Parameter reserved-memory doesn't exist"):
        service.parameter_groups.reset(REGION, reset)
    modify(service, "my-params", reserved_memory="1000000")
    group = service.parameter_groups.get(REGION, "my-params")
    assert "reserved-memory-percent" not in group.effective()
    names = [p.parameter.name for p in service.parameter_groups.parameters(REGION, "my-params").parameters]
    assert "reserved-memory" in names and "reserved-memory-percent" not in names
    assert P.data_maxmemory(NODE_TYPE, group.effective()) == 536870912 - 1000000
    modify(service, "my-params", reserved_memory_percent="50")
    assert service.parameter_groups.get(REGION, "my-params").user_values == {"reserved-memory-percent": "50"}
    both = [{"ParameterName": "reserved-memory", "ParameterValue": "1"}, {"ParameterName": "reserved-memory-percent", "ParameterValue": "1"}]
    with pytest.raises(errors.InvalidParameterCombination, match="exclude each other"):
        G.ModifyCacheParameterGroupRequest.parse({"CacheParameterGroupName": "g", "ParameterNameValues": both})


def test_a_group_in_use_cannot_be_deleted_nor_change_what_needs_an_unused_group(service: ElastiCache) -> None:
    create(service)
    modify(service, "my-params", databases="32")  # only while no cluster uses the group
    cluster(service, CacheParameterGroupName="my-params")
    with pytest.raises(errors.InvalidState, match="in use by cache cluster"):
        service.parameter_groups.delete(REGION, "my-params")
    with pytest.raises(errors.InvalidParameterValue, match="no cluster uses"):
        modify(service, "my-params", databases="64")
    # Resetting everything keeps what cannot change while the group is in use.
    everything = G.ResetCacheParameterGroupRequest.parse({"CacheParameterGroupName": "my-params", "ResetAllParameters": True})
    assert service.parameter_groups.reset(REGION, everything).user_values == {"databases": "32"}


def test_a_cluster_names_a_group_of_its_family_and_cluster_mode(service: ElastiCache) -> None:
    create(service, "redis-params", family="redis7")
    with pytest.raises(errors.InvalidParameterCombination, match="Expected a parameter group of family valkey8"):
        cluster(service, CacheParameterGroupName="redis-params")
    with pytest.raises(errors.NotFound):
        cluster(service, CacheParameterGroupName="nope")
    with pytest.raises(errors.InvalidParameterCombination, match="cluster-enabled yes"):
        cluster(service, CacheParameterGroupName="default.valkey8.cluster.on")
    assert cluster(service).parameter_group_name == "default.valkey8"


def test_cluster_enabled_in_a_custom_group_makes_a_sharded_group(service: ElastiCache) -> None:
    create(service, "sharded")
    modify(service, "sharded", cluster_enabled="yes")
    request = CreateReplicationGroupRequest.parse(
        REGION, {"ReplicationGroupId": "rg", "ReplicationGroupDescription": "d", "Engine": "valkey",
                 "CacheNodeType": NODE_TYPE, "CacheParameterGroupName": "sharded", "ReplicasPerNodeGroup": 1},
    )
    group = service.replication_groups.create(REGION, request)
    assert group.cluster_enabled and len(group.node_groups) == 1 and len(group.member_cluster_ids) == 2
    assert group.parameter_group_name == "sharded"
    disabled = CreateReplicationGroupRequest.parse(
        REGION, {"ReplicationGroupId": "rg2", "ReplicationGroupDescription": "d", "Engine": "valkey",
                 "CacheNodeType": NODE_TYPE, "CacheParameterGroupName": "sharded", "NumCacheClusters": 2},
    )
    with pytest.raises(errors.InvalidParameterCombination, match="NumCacheClusters asks for cluster mode disabled"):
        service.replication_groups.create(REGION, disabled)
    # Switching a group to a group of the other cluster mode is refused.
    switch = ModifyReplicationGroupRequest.parse({"ReplicationGroupId": "rg", "CacheParameterGroupName": "default.valkey8"})
    with service.deps.store.transaction() as tx:
        tx.put(replace(group, status=GroupStatus.AVAILABLE))
    with pytest.raises(errors.InvalidParameterCombination, match="cluster-enabled no"):
        service.replication_groups.modify(REGION, switch)


# ---------------------------------------------------------------------------------------------- ModifyCacheCluster


def _available(service: ElastiCache, found: CacheCluster) -> CacheCluster:
    store = service.deps.store
    ready = replace(found, status=ClusterStatus.AVAILABLE)
    with store.transaction() as tx:
        tx.put(ready)
        tx.delete(store.get(Operation, REGION, operation_key("CacheCluster", found.cluster_id, OperationKind.CREATE)))
    return ready


def test_modify_cache_cluster_stores_settings_and_defers_a_node_type_change(service: ElastiCache) -> None:
    found = _available(service, cluster(service))
    request = ModifyCacheClusterRequest.parse({
        "CacheClusterId": "c1", "CacheNodeType": "cache.t4g.small", "SnapshotRetentionLimit": 7,
        "SnapshotWindow": "02:00-03:00", "PreferredMaintenanceWindow": "Mon:03:00-Mon:04:00",
        "NotificationTopicArn": "arn:aws:sns:us-east-1:123456789012:topic", "SecurityGroupIds": ["sg-0123abcd"],
    })
    updated = service.cache_clusters.modify(REGION, request)
    assert updated.status is ClusterStatus.AVAILABLE and updated.node_type == found.node_type
    assert updated.pending.node_type == "cache.t4g.small"
    assert (updated.snapshot_retention_limit, updated.snapshot_window) == (7, "02:00-03:00")
    assert updated.preferred_maintenance_window == "mon:03:00-mon:04:00"
    assert updated.notification_topic_arn == "arn:aws:sns:us-east-1:123456789012:topic"
    assert updated.security_group_ids == ("sg-0123abcd",)
    now = service.cache_clusters.modify(REGION, ModifyCacheClusterRequest.parse(
        {"CacheClusterId": "c1", "CacheNodeType": "cache.t4g.medium", "ApplyImmediately": True}
    ))
    assert now.status is ClusterStatus.MODIFYING and now.pending.node_type is None
    assert service.cache_clusters.operation(now, OperationKind.NODE_TYPE).node_type == "cache.t4g.medium"


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"NumCacheNodes": 2}, errors.InvalidParameterValue, "exactly one node"),
        ({"NotificationTopicStatus": "on"}, errors.InvalidParameterValue, "active or inactive"),
        ({"SnapshotRetentionLimit": 36}, errors.InvalidParameterValue, "35 days"),
        ({"SecurityGroupIds": ["default"]}, errors.InvalidParameterValue, "sg-"),
        ({"NotificationTopicArn": "topic"}, errors.InvalidParameterValue, "SNS topic ARN"),
    ],
)
def test_modify_cache_cluster_refusals(params, error, match) -> None:
    with pytest.raises(error, match=match):
        ModifyCacheClusterRequest.parse({"CacheClusterId": "c1", **params})


# ---------------------------------------------------------------------------------------------- pure decisions


def _record(values: dict[str, str], refused: dict[str, str] | None = None) -> G.CacheNodeParameters:
    return G.CacheNodeParameters(REGION, "c1", "g", tuple(sorted(values.items())), tuple(sorted((refused or {}).items())))


DEFAULTS = G.effective_values("valkey8", {})
OFFERED = G.offered_names("valkey8", RELEASES[0], None)


def test_plan_sets_dynamic_changes_and_leaves_static_ones_for_the_reboot() -> None:
    desired = {**DEFAULTS, "timeout": "300", "databases": "32", "client-output-buffer-limit-pubsub-hard-limit": "1000"}
    found = G.plan("valkey8", desired, _record(DEFAULTS), node_type=NODE_TYPE, offered=OFFERED)
    assert {c.name: c.value for c in found.changes} == {
        "timeout": "300", "client-output-buffer-limit": "pubsub 1000 8388608 60"
    }
    assert found.pending_reboot == ("databases",)
    assert found.applied["timeout"] == "300" and found.applied["databases"] == "16"
    assert G.apply_status("valkey8", desired, _record(DEFAULTS)) == (ApplyStatus.APPLYING, ("databases",))
    assert G.apply_status("valkey8", desired, _record(found.applied)) == (ApplyStatus.PENDING_REBOOT, ("databases",))
    assert G.apply_status("valkey8", desired, _record(desired)) == (ApplyStatus.IN_SYNC, ())
    assert G.apply_status("valkey8", desired, None) == (ApplyStatus.IN_SYNC, ())  # not started yet


def test_plan_of_a_node_without_a_record_sets_every_dynamic_setting() -> None:
    found = G.plan("valkey8", DEFAULTS, None, node_type=NODE_TYPE, offered=OFFERED)
    names = {c.name for c in found.changes}
    assert {"maxmemory", "maxmemory-policy", "repl-backlog-size", "client-output-buffer-limit"} <= names
    assert "databases" not in names and not found.pending_reboot
    assert {c.value for c in found.changes if c.name == "maxmemory"} == {str(round(536870912 * 0.75))}


def test_plan_skips_what_the_build_lacks_and_values_the_engine_refused() -> None:
    desired = {**DEFAULTS, "timeout": "300", "maxmemory-policy": "allkeys-lfu"}
    found = G.plan("valkey8", desired, _record(DEFAULTS, {"timeout": "300"}), node_type=NODE_TYPE,
                   offered=OFFERED - {"maxmemory-policy"})
    assert found.changes == ()
    assert found.applied["maxmemory-policy"] == "allkeys-lfu" and found.applied["timeout"] == "0"
    assert G.apply_status("valkey8", desired, _record({**DEFAULTS, "maxmemory-policy": "allkeys-lfu"}, {"timeout": "300"})) == (
        ApplyStatus.IN_SYNC, ()
    )


def test_reserved_memory_percent_sets_the_engines_maxmemory() -> None:
    desired = {**DEFAULTS, "reserved-memory-percent": "50"}
    found = G.plan("valkey8", desired, _record(DEFAULTS), node_type="cache.r7g.large", offered=OFFERED)
    assert [(c.name, c.value) for c in found.changes] == [("maxmemory", str(14037181030 - round(14037181030 * 0.5)))]
    settings = G.node_settings("valkey8", desired, node_type="cache.r7g.large", offered=OFFERED)
    assert settings["maxmemory"] == str(7018590515) and "cluster-enabled" not in settings
