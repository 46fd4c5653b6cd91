"""Serverless caches: the rules of their requests and limits, and the sizing decision, by outcome."""

from __future__ import annotations

import datetime as dt

import pytest

from cachefleet.domain import errors, identifiers
from cachefleet.domain.replication_groups import GroupStatus
from cachefleet.domain.serverless import (
    CacheUsageLimits,
    CreateServerlessCacheRequest,
    ModifyServerlessCacheRequest,
    Scale,
    ServerlessCache,
    ServerlessCacheStatus,
    ShardRange,
    ShardSample,
    SizingPolicy,
    check_limits,
    decide,
    is_quiet,
    shard_maxmemory,
    shard_range,
    status_of,
)

MIB = 1 << 20
POLICY = SizingPolicy(shard_capacity_bytes=8 * MIB, gigabyte_bytes=4 * MIB, scale_in_after=30.0, max_shards=6)


def _create(**params):
    return CreateServerlessCacheRequest.parse("us-east-1", {"ServerlessCacheName": "c1", "Engine": "valkey", **params})


# ---------------------------------------------------------------------- requests
def test_names_follow_elasticaches_identifier_rules():
    assert _create(ServerlessCacheName="My-Cache").name == "my-cache"
    for bad in ("1cache", "a--b", "ends-", "x" * 41, "under_score"):
        with pytest.raises(errors.InvalidParameterValue, match="ServerlessCacheName"):
            _create(ServerlessCacheName=bad)
    # No user name can be the name of a serverless cache's own group.
    assert identifiers.is_serverless_group(identifiers.serverless_group_id("c1"))
    with pytest.raises(errors.InvalidParameterValue):
        identifiers.replication_group_id(identifiers.serverless_group_id("c1"))


@pytest.mark.parametrize(
    ("limits", "error", "says"),
    [
        ({"DataStorage": {"Maximum": 10}}, errors.InvalidParameterValue, "Unit must be GB"),
        ({"DataStorage": {"Unit": "GB"}}, errors.InvalidParameterValue, "Maximum or a Minimum"),
        ({"DataStorage": {"Maximum": 0, "Unit": "GB"}}, errors.InvalidParameterValue, "1 to 5000 GB"),
        ({"DataStorage": {"Maximum": 5001, "Unit": "GB"}}, errors.InvalidParameterValue, "1 to 5000 GB"),
        ({"DataStorage": {"Minimum": 5, "Maximum": 2, "Unit": "GB"}}, errors.InvalidParameterCombination,
         "lower the Minimum"),
        ({"ECPUPerSecond": {"Maximum": 999}}, errors.InvalidParameterValue, "1000 to 15000000"),
        ({"ECPUPerSecond": {"Minimum": 9000, "Maximum": 5000}}, errors.InvalidParameterCombination, "raise the Maximum"),
    ],
)
def test_cache_usage_limits_refused_say_what_to_change(limits, error, says):
    with pytest.raises(error, match=says):
        _create(CacheUsageLimits=limits)


def test_cache_usage_limits_kept_and_replaced_one_part_at_a_time():
    limits = CacheUsageLimits.parse({"DataStorage": {"Minimum": 1, "Maximum": 3, "Unit": "GB"},
                                     "ECPUPerSecond": {"Maximum": 5000}})
    assert limits == CacheUsageLimits(1, 3, None, 5000)
    changed = CacheUsageLimits.parse({"DataStorage": {"Maximum": 4, "Unit": "GB"}}, existing=limits)
    assert changed == CacheUsageLimits(None, 4, None, 5000)


def test_create_rules():
    with pytest.raises(errors.InvalidParameterValue, match="memcached is not supported"):
        _create(Engine="memcached")
    with pytest.raises(errors.InvalidParameterValue, match="major version only"):
        _create(MajorEngineVersion="8.1")
    with pytest.raises(errors.InvalidParameterValue, match="second availability zone"):
        _create(SubnetIds=["subnet-us-east-1a", "subnet-us-east-1a-private"])
    assert _create(SubnetIds=["subnet-us-east-1a", "subnet-us-east-1c"]).zones == ("us-east-1a", "us-east-1c")
    with pytest.raises(errors.InvalidParameterValue, match="DailySnapshotTime"):
        _create(DailySnapshotTime="25:00")
    assert _create(SnapshotArnsToRestore=["arn:aws:s3:::bkt/k.rdb"]).restore.objects == (("bkt", "k.rdb"),)
    with pytest.raises(errors.InvalidParameterValue, match="at most 255"):
        _create(Description="d" * 256)


def test_modify_changes_the_user_group_alone():
    with pytest.raises(errors.InvalidParameterCombination, match="on its own; send Description"):
        ModifyServerlessCacheRequest.parse({"ServerlessCacheName": "c1", "UserGroupId": "ug", "Description": "x"})
    with pytest.raises(errors.InvalidParameterCombination, match="RemoveUserGroup and UserGroupId"):
        ModifyServerlessCacheRequest.parse({"ServerlessCacheName": "c1", "UserGroupId": "ug", "RemoveUserGroup": True})



def test_modify_upgrades_the_engine_alone():
    request = ModifyServerlessCacheRequest.parse({"ServerlessCacheName": "c1", "MajorEngineVersion": "9"})
    assert (request.engine, request.major_engine_version) == (None, "9")
    request = ModifyServerlessCacheRequest.parse({"ServerlessCacheName": "c1", "Engine": "Valkey", "MajorEngineVersion": "8"})
    assert (request.engine, request.major_engine_version) == ("valkey", "8")
    with pytest.raises(errors.InvalidParameterCombination, match="Upgrade the engine on its own; send Description"):
        ModifyServerlessCacheRequest.parse({"ServerlessCacheName": "c1", "MajorEngineVersion": "9", "Description": "x"})
    with pytest.raises(errors.InvalidParameterCombination, match="give MajorEngineVersion with Engine"):
        ModifyServerlessCacheRequest.parse({"ServerlessCacheName": "c1", "Engine": "valkey"})


def test_status_is_the_groups():
    cache = ServerlessCache("us-east-1", "c1", "", "valkey", "9", "9.1.2", dt.datetime.now(dt.UTC))

    class Group:
        status = GroupStatus.MODIFYING

    assert status_of(cache, Group()) == ServerlessCacheStatus.MODIFYING  # type: ignore[arg-type]
    Group.status = GroupStatus.SNAPSHOTTING
    assert status_of(cache, Group()) == ServerlessCacheStatus.AVAILABLE  # type: ignore[arg-type]
    assert status_of(cache, None) == ServerlessCacheStatus.DELETING


# ---------------------------------------------------------------------- limits
def test_limits_give_the_shard_range_and_each_shards_maxmemory():
    # 1 "GB" = 4 MiB here; a shard holds 8 MiB.
    assert shard_range(CacheUsageLimits(), POLICY) == ShardRange(1, 6)
    assert shard_range(CacheUsageLimits(data_storage_minimum=5), POLICY) == ShardRange(3, 6)  # 20 MiB -> 3 shards
    assert shard_range(CacheUsageLimits(data_storage_maximum=4), POLICY) == ShardRange(1, 2)
    assert shard_range(CacheUsageLimits(data_storage_maximum=500), POLICY).maximum == 6  # never past max_shards
    assert shard_maxmemory(CacheUsageLimits(), POLICY, 3) == 0
    assert shard_maxmemory(CacheUsageLimits(data_storage_maximum=3), POLICY, 2) == 6 * MIB
    with pytest.raises(errors.InvalidParameterCombination, match="lower the Minimum to 12 GB"):
        check_limits(CacheUsageLimits(data_storage_minimum=13), POLICY)


def test_sizing_policy_parses_and_refuses():
    policy = SizingPolicy.parse("shard_capacity_bytes=4194304, scale_out_at=0.5,scale_in_after=2")
    assert (policy.shard_capacity_bytes, policy.scale_out_at, policy.scale_in_after) == (4 * MIB, 0.5, 2.0)
    for bad in ("nonsense=1", "scale_out_at", "scale_in_below=0.9", "shard_capacity_bytes=10"):
        with pytest.raises(ValueError):
            SizingPolicy.parse(bad)


# ---------------------------------------------------------------------- the decision
def _samples(*mib: float, cpu: float = 0.05) -> list[ShardSample]:
    return [ShardSample(f"{i + 1:04d}", int(m * MIB), cpu) for i, m in enumerate(mib)]


ANY = ShardRange(1, 6)


def test_scales_out_when_a_shard_passes_its_memory_threshold():
    decision = decide(shards=1, samples=_samples(6.1), allowed=ANY, policy=POLICY, quiet_for=0)
    assert decision.action == Scale.OUT and decision.shards == 2
    assert "shard 0001 uses 6.1 MiB" in decision.reason and "75%" in decision.reason
    # Enough shards for all the data at once, not one at a time.
    assert decide(shards=2, samples=_samples(6.5, 6.5), allowed=ANY, policy=POLICY, quiet_for=0).shards == 3
    assert decide(shards=1, samples=_samples(20), allowed=ANY, policy=POLICY, quiet_for=0).shards == 4


def test_scales_out_on_engine_cpu():
    decision = decide(shards=2, samples=_samples(1, 1, cpu=0.9), allowed=ANY, policy=POLICY, quiet_for=0)
    assert decision.action == Scale.OUT and decision.shards == 3 and "engine CPU" in decision.reason


def test_never_outside_the_limits():
    held = decide(shards=2, samples=_samples(7, 7), allowed=ShardRange(1, 2), policy=POLICY, quiet_for=0)
    assert held.action == Scale.HOLD and "the most the limits allow" in held.reason
    assert decide(shards=1, samples=_samples(20), allowed=ShardRange(1, 3), policy=POLICY, quiet_for=0).shards == 3
    # A minimum keeps capacity ready even with no data at all.
    ready = decide(shards=1, samples=[], allowed=ShardRange(3, 6), policy=POLICY, quiet_for=0)
    assert (ready.action, ready.shards) == (Scale.OUT, 3)
    kept = decide(shards=3, samples=_samples(0, 0, 0), allowed=ShardRange(3, 6), policy=POLICY, quiet_for=999)
    assert kept.action == Scale.HOLD


def test_scales_in_only_when_well_below_for_a_while():
    quiet = _samples(1, 1, 1)
    assert is_quiet(quiet, POLICY) and not is_quiet(_samples(1, 3), POLICY)
    waiting = decide(shards=3, samples=quiet, allowed=ANY, policy=POLICY, quiet_for=10)
    assert waiting.action == Scale.HOLD and "quiet for 10 s of 30 s" in waiting.reason
    decision = decide(shards=3, samples=quiet, allowed=ANY, policy=POLICY, quiet_for=31)
    assert (decision.action, decision.shards) == (Scale.IN, 2)
    # Not when the data would not fit in one shard fewer at half the scale-out threshold (hysteresis).
    assert decide(shards=2, samples=_samples(2.3, 2.3), allowed=ANY, policy=POLICY, quiet_for=99).action == Scale.HOLD
    # A lowered maximum brings the shards down when the data fits.
    assert decide(shards=4, samples=_samples(1, 1, 1, 1), allowed=ShardRange(1, 2), policy=POLICY,
                  quiet_for=0).shards == 2
