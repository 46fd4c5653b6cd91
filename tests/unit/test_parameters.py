"""The parameter catalogue: every parameter well-formed, validation, and how values reach a node."""

from __future__ import annotations

import re

import pytest

from cachefleet.domain import nodetypes
from cachefleet.domain import parameters as P
from cachefleet.domain.errors import InvalidParameterCombination, InvalidParameterValue

FAMILY_PARAMETERS = [(f, p) for f in P.FAMILIES for p in P.family_parameters(f)]
_ALLOWED_INTEGERS = re.compile(r"^(-|(-?[0-9]+)|(-?[0-9]+)?-(-?[0-9]+)?)(,(-?[0-9]+|(-?[0-9]+)?-(-?[0-9]+)?))*$")


def _id(item: tuple[str, P.Parameter]) -> str:
    return f"{item[0]}:{item[1].name}"


@pytest.mark.parametrize("family,parameter", FAMILY_PARAMETERS, ids=[_id(i) for i in FAMILY_PARAMETERS])
def test_every_parameter_is_well_formed(family: str, parameter: P.Parameter) -> None:
    assert re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", parameter.name)
    assert parameter.description.strip() and parameter.description[0].isupper()
    assert isinstance(parameter.data_type, P.DataType)
    assert isinstance(parameter.change_type, P.ChangeType)
    assert isinstance(parameter.effect, P.Effect)
    if parameter.data_type is P.DataType.INTEGER:
        assert _ALLOWED_INTEGERS.match(parameter.allowed_values), parameter.allowed_values
    elif parameter.allowed_values:
        assert parameter.default in parameter.allowed_values.split(",")
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", parameter.minimum_engine_version)
    assert parameter.minimum_engine_version.split(".")[0] == re.sub(r"[a-z]+", "", family)
    # Whatever touches the engine names the engine settings it needs; the rest need none.
    if parameter.effect in (P.Effect.ENGINE, P.Effect.OUTPUT_BUFFER, P.Effect.MEMORY, P.Effect.CLUSTER_MODE):
        assert parameter.requires
    else:
        assert not parameter.requires
    if parameter.only_while_unused:
        assert parameter.modifiable and parameter.change_type is P.ChangeType.REQUIRES_REBOOT
    assert P.validate(family, parameter.name, parameter.default) == parameter.default


@pytest.mark.parametrize("family", P.FAMILIES)
def test_families_list_each_parameter_once_by_name(family: str) -> None:
    names = [p.name for p in P.family_parameters(family)]
    assert names == sorted(set(names))
    assert len(names) > 55


@pytest.mark.parametrize("family", P.FAMILIES)
def test_cluster_on_defaults_differ_only_in_cluster_enabled(family: str) -> None:
    off = P.default_values(family)
    on = P.default_values(family, cluster_on=True)
    assert off["cluster-enabled"] == "no" and on["cluster-enabled"] == "yes"
    assert {k: v for k, v in off.items() if k != "cluster-enabled"} == {k: v for k, v in on.items() if k != "cluster-enabled"}
    assert P.default_group_name(family, cluster_on=True) == f"default.{family}.cluster.on"
    assert P.default_group_description(family) == f"Default parameter group for {family}"


def test_family_differences_follow_elasticache() -> None:
    redis7 = P.default_values("redis7")
    valkey8 = P.default_values("valkey8")
    valkey9 = P.default_values("valkey9")
    # Valkey 8.0 removed the lazyfree parameters and replica-lazy-flush, added extended-redis-compatibility.
    lazy = {"lazyfree-lazy-eviction", "lazyfree-lazy-expire", "lazyfree-lazy-server-del", "lazyfree-lazy-user-del"}
    assert lazy <= set(redis7) and not lazy & set(valkey8)
    assert "replica-lazy-flush" in redis7 and "replica-lazy-flush" not in valkey8
    assert valkey8["extended-redis-compatibility"] == "yes" and "extended-redis-compatibility" not in redis7
    assert (redis7["repl-backlog-size"], valkey8["repl-backlog-size"]) == ("1048576", "10485760")
    assert P.parameter("valkey8", "maxmemory-samples").allowed_values == "1-64"
    assert P.parameter("valkey8", "commandlog-large-reply-max-len").minimum_engine_version == "8.1.0"
    # Valkey 9 is Valkey 8's list plus cluster-databases.
    assert set(valkey9) - set(valkey8) == {"cluster-databases"}
    # Redis OSS 7 hid activerehashing and replaced the ziplist parameters by listpack ones.
    assert "activerehashing" not in redis7 and "hash-max-ziplist-entries" not in redis7
    assert redis7["hash-max-listpack-entries"] == "512"


def test_unknown_family_and_engine_families() -> None:
    with pytest.raises(InvalidParameterValue, match="redis7, valkey8, valkey9"):
        P.family_parameters("redis6.x")
    assert P.family_of("redis", "7.0.15") == "redis7"
    assert P.family_of("valkey", "9.1.2") == "valkey9"


@pytest.mark.parametrize("family", P.FAMILIES)
def test_node_type_specific_values_cover_every_node_type(family: str) -> None:
    specific = {p.name: p for p in P.node_type_specific_parameters(family)}
    assert set(specific) == {
        "maxmemory", "client-output-buffer-limit-replica-hard-limit", "client-output-buffer-limit-replica-soft-limit",
    }
    for found in specific.values():
        assert not found.modifiable
        assert [t for t, _ in found.values] == sorted(nodetypes.NODE_TYPES)
    # ElastiCache's published figures.
    assert specific["maxmemory"].value_for("cache.r6g.large") == "14037181030"
    assert specific["maxmemory"].value_for("cache.t4g.micro") == "536870912"
    hard = specific["client-output-buffer-limit-replica-hard-limit"]
    assert hard.value_for("cache.m5.large") == str(round(6854542746 / 10))
    with pytest.raises(InvalidParameterValue, match="cache.m9.huge"):
        hard.value_for("cache.m9.huge")


@pytest.mark.parametrize(
    "name,value,allowed",
    [
        ("maxmemory-policy", "lru", "volatile-lru,allkeys-lru,volatile-lfu,allkeys-lfu,volatile-random,allkeys-random,volatile-ttl,noeviction"),
        ("timeout", "5", "0,20-"),
        ("timeout", "-1", "0,20-"),
        ("active-defrag-cycle-max", "76", "1-75"),
        ("reserved-memory-percent", "101", "0-100"),
        ("maxmemory-samples", "1mb", "1-"),
        ("cluster-allow-reads-when-down", "true", "yes,no"),
        ("lua-time-limit", "6000", "5000"),
        ("notify-keyspace-events", "KEX", "any combination of the characters KEg$lshzxeAtmdn"),
        ("cluster-preferred-endpoint-type", "hostname", "ip,tls-dynamic"),
    ],
)
def test_validate_refuses_bad_values_naming_the_allowed_ones(name: str, value: str, allowed: str) -> None:
    with pytest.raises(InvalidParameterValue) as raised:
        P.validate("redis7", name, value)
    assert name in raised.value.message and f"'{value}'" in raised.value.message
    assert allowed in raised.value.message


@pytest.mark.parametrize(
    "name,value",
    [("timeout", "0"), ("timeout", "20"), ("timeout", "86400"), ("slowlog-log-slower-than", "-1"),
     ("notify-keyspace-events", "AKE"), ("notify-keyspace-events", "lK"), ("maxmemory-policy", "allkeys-lfu"),
     ("maxmemory", "1024"), ("reserved-memory", "1048576")],
)
def test_validate_accepts_allowed_values(name: str, value: str) -> None:
    assert P.validate("redis7", name, value) == value


def test_valkey8_bounds_maxmemory_samples() -> None:
    assert P.validate("redis7", "maxmemory-samples", "65") == "65"
    with pytest.raises(InvalidParameterValue, match="1-64"):
        P.validate("valkey8", "maxmemory-samples", "65")


def test_unknown_parameters_are_named_with_the_closest_one() -> None:
    with pytest.raises(InvalidParameterValue, match=r"Parameter maxmemory-polcy doesn't exist\. Did you mean maxmemory-policy\?"):
        P.validate("redis7", "maxmemory-polcy", "allkeys-lru")
    # Valkey 8 has no lazyfree parameters.
    with pytest.raises(InvalidParameterValue, match="lazyfree-lazy-eviction doesn't exist"):
        P.parameter("valkey8", "lazyfree-lazy-eviction")


def test_check_modifiable() -> None:
    assert P.check_modifiable("redis7", "maxmemory-policy").name == "maxmemory-policy"
    with pytest.raises(InvalidParameterValue, match="maxmemory is not modifiable"):
        P.check_modifiable("redis7", "maxmemory")
    with pytest.raises(InvalidParameterValue, match="appendonly is not modifiable"):
        P.check_modifiable("valkey8", "appendonly")
    assert P.check_modifiable("redis7", "cluster-enabled").only_while_unused
    with pytest.raises(InvalidParameterValue, match="no cluster uses"):
        P.check_modifiable("redis7", "databases", group_in_use=True)


def test_modify_takes_one_to_twenty_parameters() -> None:
    P.check_modify_count(1)
    P.check_modify_count(20)
    with pytest.raises(InvalidParameterCombination, match="Cannot modify more than 20 parameters in a single request"):
        P.check_modify_count(21)
    with pytest.raises(InvalidParameterValue):
        P.check_modify_count(0)


@pytest.mark.parametrize("name", ["my-params", "A1", "x" * 255])
def test_group_names_are_kept_lower_case(name: str) -> None:
    assert P.group_name(name) == name.lower()


@pytest.mark.parametrize("name", ["", "1abc", "my.params", "my_params", "ends-", "two--hyphens", "x" * 256])
def test_group_names_elasticache_refuses(name: str) -> None:
    with pytest.raises(InvalidParameterValue, match="CacheParameterGroupName"):
        P.group_name(name)
    assert P.is_default_group("default.redis7.cluster.on") and not P.is_default_group("my-params")


def test_reserve_sets_the_engines_maxmemory() -> None:
    defaults = P.default_values("valkey8")
    assert P.data_maxmemory("cache.r6g.large", defaults) == round(14037181030 * 0.75)
    assert P.data_maxmemory("cache.r6g.large", {**defaults, "reserved-memory-percent": "50"}) == 7018590515
    # A group switched to reserved-memory reserves that many bytes instead.
    switched = {**defaults, "reserved-memory": "1000"}
    switched.pop(P.memory_switch("reserved-memory") or "")
    assert P.data_maxmemory("cache.r6g.large", switched) == 14037181030 - 1000
    setting = P.engine_setting("valkey8", "reserved-memory-percent", {**defaults, "reserved-memory-percent": "0"},
                               node_type="cache.t4g.micro")
    assert setting == P.EngineSetting("maxmemory", "536870912")
    assert P.memory_switch("reserved-memory-percent") == "reserved-memory" and P.memory_switch("timeout") is None


def test_values_map_to_engine_settings() -> None:
    values = {**P.default_values("redis7"), "maxmemory-policy": "allkeys-lru", "client-output-buffer-limit-pubsub-hard-limit": "1000"}
    assert P.engine_setting("redis7", "maxmemory-policy", values, node_type="cache.t4g.micro") == P.EngineSetting(
        "maxmemory-policy", "allkeys-lru"
    )
    # ElastiCache's tls-dynamic is not an engine value: nodes have addresses, so ip.
    assert P.engine_setting("redis7", "cluster-preferred-endpoint-type", values, node_type="cache.t4g.micro") == (
        P.EngineSetting("cluster-preferred-endpoint-type", "ip")
    )
    assert P.engine_setting("redis7", "client-output-buffer-limit-pubsub-hard-limit", values,
                            node_type="cache.t4g.micro") == P.EngineSetting("client-output-buffer-limit", "pubsub 1000 8388608 60")
    for name in ("close-on-replica-write", "cluster-enabled", "maxclients", "replica-allow-chaining"):
        assert P.engine_setting("redis7", name, values, node_type="cache.t4g.micro") is None
    settings = P.engine_settings("redis7", values, node_type="cache.t4g.micro")
    assert settings["client-output-buffer-limit"] == "normal 0 0 0 replica 53687091 53687091 60 pubsub 1000 8388608 60"
    assert settings["maxmemory"] == str(round(536870912 * 0.75))
    assert settings["latency-tracking"] == "no" and "cluster-enabled" not in settings and "maxclients" not in settings


def test_changes_split_into_now_and_after_reboot() -> None:
    before = P.default_values("valkey9")
    after = {**before, "timeout": "300", "databases": "32", "reserved-memory-percent": "50", "close-on-replica-write": "no"}
    now, reboot = P.changed_settings("valkey9", before, after, node_type="cache.t4g.micro")
    assert now == {"timeout": "300", "maxmemory": str(536870912 - round(536870912 * 0.5))}
    assert reboot == ("databases",)


def test_offered_drops_what_the_engine_lacks_or_is_too_new_for() -> None:
    parameters = P.family_parameters("valkey8")
    everything = {r for p in parameters for r in p.requires}
    assert P.offered(parameters, engine_version="8.1.8", available=everything) == parameters
    without_defrag = everything - {"activedefrag"}
    dropped = set(parameters) - set(P.offered(parameters, engine_version="8.1.8", available=without_defrag))
    assert {p.name for p in dropped} == {"activedefrag"} | {p.name for p in parameters if p.name.startswith("active-defrag-")}
    # Valkey 8.0 has no command log.
    older = {p.name for p in parameters} - {p.name for p in P.offered(parameters, engine_version="8.0.2", available=everything)}
    assert older == {p.name for p in parameters if p.name.startswith("commandlog-")}
    # Parameters Cachefleet itself carries out need nothing from the engine.
    kept = {p.name for p in P.offered(parameters, engine_version="8.1.8", available=set())}
    assert kept == {"close-on-replica-write", "maxclients", "replica-allow-chaining"}
