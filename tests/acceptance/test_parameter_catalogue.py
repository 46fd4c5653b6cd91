"""The parameter catalogue against every installed engine build, on real engine processes.

Each parameter that maps to an engine setting exists in the build's CONFIG GET * or is not
offered; every default starts the engine (static ones) or is accepted by CONFIG SET (dynamic
ones); and the dynamic parameters users rely on change what the engine does.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import redis

from cachefleet.domain import parameters as P
from cachefleet.engine.catalog import Catalog, EngineBinary
from cachefleet.engine.config_probe import EngineProbeFailed, TemporaryEngine, probe

NODE_TYPE = "cache.t4g.micro"
BINARIES = Catalog.discover().binaries()
ENGINES = [pytest.param(b, id=f"{b.release.engine}-{b.release.version}") for b in BINARIES]


def _offered(binary: EngineBinary, cluster_on: bool = False) -> tuple[P.Parameter, ...]:
    family = binary.release.family
    return P.offered(
        P.family_parameters(family, cluster_on), engine_version=binary.release.version, available=probe(binary.server).available()
    )


def _same(name: str, got: str, value: str) -> bool:
    """Whether the engine's CONFIG GET value shows the setting we gave it."""
    if name != "client-output-buffer-limit":
        return got == value
    # The engines print every class, the replica class under its old name; we may set only one.
    words = got.replace("slave", "replica").split()
    shown = {words[i]: words[i + 1 : i + 4] for i in range(0, len(words), 4)}
    given = value.split()
    return all(shown[given[i]] == given[i + 1 : i + 4] for i in range(0, len(given), 4))


def _settings_of(binary: EngineBinary, values: dict[str, str]) -> dict[str, str]:
    """The engine settings of the offered parameters, for a node of NODE_TYPE."""
    family = binary.release.family
    every = P.engine_settings(family, values, node_type=NODE_TYPE)
    mapped = (P.engine_setting(family, p.name, values, node_type=NODE_TYPE) for p in _offered(binary))
    return {setting.name: every[setting.name] for setting in mapped if setting is not None}


def apply(client: redis.Redis, binary: EngineBinary, name: str, value: str) -> None:
    """What the parameter workflow does for a dynamic change: validate, map, CONFIG SET."""
    family = binary.release.family
    assert P.parameter(family, name).change_type is P.ChangeType.IMMEDIATE
    values = {**P.default_values(family), name: P.validate(family, name, value)}
    setting = P.engine_setting(family, name, values, node_type=NODE_TYPE)
    assert setting is not None
    client.config_set(setting.name, setting.value)


def wait_until(predicate: Callable[[], Any], *, timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.01)


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> Iterator[tuple[EngineBinary, redis.Redis]]:
    binary: EngineBinary = request.param
    with TemporaryEngine(binary.server) as running:
        client = running.client()
        try:
            yield binary, client
        finally:
            client.close()


def test_engines_are_installed() -> None:
    assert {b.release.family for b in BINARIES} >= {"redis7", "valkey8", "valkey9"}


@pytest.mark.parametrize("binary", ENGINES)
def test_each_engine_mapped_parameter_exists_on_the_engine_or_is_not_offered(binary: EngineBinary) -> None:
    config = probe(binary.server)
    assert probe(binary.server) is config  # one probe per build
    parameters = P.family_parameters(binary.release.family)
    offered = _offered(binary)
    for parameter in offered:
        for setting in parameter.requires:
            assert setting in config.settings, f"{parameter.name}: the engine has no {setting}"
    # What the builds here lack: activedefrag (no jemalloc defrag support in any of them).
    defrag = {p.name for p in parameters if "activedefrag" in p.requires}
    expected = defrag if "activedefrag" in config.refused else set()
    assert {p.name for p in parameters} - {p.name for p in offered} == expected
    assert len(offered) >= len(parameters) - len(defrag)


@pytest.mark.parametrize("cluster_on", [False, True], ids=["cluster-off", "cluster-on"])
@pytest.mark.parametrize("binary", ENGINES)
def test_every_default_starts_the_engine_and_reads_back(binary: EngineBinary, cluster_on: bool) -> None:
    family = binary.release.family
    settings = _settings_of(binary, P.default_values(family, cluster_on))
    if cluster_on:
        settings["cluster-enabled"] = "yes"
    # The static ones cannot be CONFIG SET (databases, cluster-databases): they go in the config file.
    assert {p.name for p in _offered(binary) if p.change_type is P.ChangeType.REQUIRES_REBOOT} & set(settings)
    with TemporaryEngine(binary.server, settings) as running:
        client = running.client()
        got = client.config_get("*")
        assert client.info("cluster")["cluster_enabled"] == (1 if cluster_on else 0)
        client.close()
    for name, value in settings.items():
        if cluster_on and name == "databases" and binary.release.family == "valkey8":
            # Valkey 8 reports one database in cluster mode (Valkey 9 has cluster-databases for it).
            assert got[name] == "1"
            continue
        assert _same(name, got[name], value), (name, got[name], value)


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_every_dynamic_default_and_choice_is_accepted_by_config_set(engine: tuple[EngineBinary, redis.Redis]) -> None:
    binary, client = engine
    family = binary.release.family
    defaults = P.default_values(family)
    checked = 0
    for parameter in _offered(binary):
        if parameter.change_type is not P.ChangeType.IMMEDIATE:
            continue
        choices = [parameter.default]
        if parameter.data_type is P.DataType.STRING and parameter.allowed_values:
            choices = parameter.allowed_values.split(",")
        for value in choices:
            setting = P.engine_setting(family, parameter.name, {**defaults, parameter.name: value}, node_type=NODE_TYPE)
            if setting is None:
                continue
            client.config_set(setting.name, setting.value)
            assert _same(setting.name, client.config_get(setting.name)[setting.name], setting.value), setting
            checked += 1
    assert checked > 50


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_maxmemory_policy_refuses_writes_or_evicts(engine: tuple[EngineBinary, redis.Redis]) -> None:
    binary, client = engine
    apply(client, binary, "maxmemory-policy", "noeviction")
    client.config_set("maxmemory", int(client.info("memory")["used_memory"]) + 512 * 1024)
    value = "x" * 1024
    with pytest.raises(redis.exceptions.OutOfMemoryError, match="maxmemory"):
        for i in range(5000):
            client.set(f"key:{i}", value)
    assert client.info("stats")["evicted_keys"] == 0
    apply(client, binary, "maxmemory-policy", "allkeys-lru")
    for i in range(5000, 6000):
        client.set(f"key:{i}", value)
    assert client.info("stats")["evicted_keys"] > 0


def _hot_key_survival(client: redis.Redis, binary: EngineBinary, samples: str) -> float:
    """Share of often-read keys left after evicting a third of the data under allkeys-lfu."""
    client.flushall()
    client.config_set("maxmemory", 0)
    apply(client, binary, "maxmemory-policy", "allkeys-lfu")
    apply(client, binary, "lfu-log-factor", "1")
    apply(client, binary, "maxmemory-samples", samples)
    value = "x" * 1024
    pipe = client.pipeline(transaction=False)
    for i in range(2000):
        pipe.set(f"cold:{i}", value)
        pipe.set(f"hot:{i}", value)
    pipe.execute()
    for _ in range(20):
        for i in range(2000):
            pipe.get(f"hot:{i}")
        pipe.execute()
    client.config_set("maxmemory", int(client.info("memory")["used_memory"]))
    for start in range(0, 2000, 200):
        for i in range(start, start + 200):
            pipe.set(f"new:{i}", value)
        pipe.execute()
    assert client.info("stats")["evicted_keys"] >= 1500
    for i in range(2000):
        pipe.exists(f"hot:{i}")
    return sum(pipe.execute()) / 2000


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_maxmemory_samples_decide_how_well_victims_are_chosen(engine: tuple[EngineBinary, redis.Redis]) -> None:
    binary, client = engine
    careful = _hot_key_survival(client, binary, "64")
    careless = _hot_key_survival(client, binary, "1")
    assert careful >= 0.95, careful
    assert careless <= careful - 0.15, (careless, careful)


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_notify_keyspace_events_publish_what_is_asked_for(engine: tuple[EngineBinary, redis.Redis]) -> None:
    binary, client = engine
    listener = client.pubsub()
    listener.psubscribe("__key*@0__:*")
    assert wait_until(lambda: listener.get_message(timeout=0.1), what="psubscribe")["type"] == "psubscribe"

    def first_message() -> tuple[str, str]:
        message = wait_until(lambda: listener.get_message(timeout=0.1), what="a keyspace message")
        return message["channel"], message["data"]

    # Off (the default): a write publishes nothing, so the marker published after it comes first.
    apply(client, binary, "notify-keyspace-events", "")
    client.set("k", "1")
    client.publish("__keyevent@0__:marker", "m")
    assert first_message() == ("__keyevent@0__:marker", "m")
    apply(client, binary, "notify-keyspace-events", "E$")
    client.set("k", "2")
    assert first_message() == ("__keyevent@0__:set", "k")
    # The community Terraform module's example value: keyspace events of list commands.
    apply(client, binary, "notify-keyspace-events", "lK")
    client.set("k", "3")
    client.rpush("l", "a")
    assert first_message() == ("__keyspace@0__:l", "rpush")
    listener.close()


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_activedefrag_runs_or_is_not_offered(engine: tuple[EngineBinary, redis.Redis]) -> None:
    binary, client = engine
    offered = {p.name for p in _offered(binary)}
    if "activedefrag" in probe(binary.server).refused:
        assert "activedefrag" not in offered
        with pytest.raises(redis.ResponseError, match="Jemalloc"):
            client.config_set("activedefrag", "yes")
    else:
        apply(client, binary, "activedefrag", "yes")
        assert client.config_get("activedefrag") == {"activedefrag": "yes"}


def _lazyfreed(client: redis.Redis) -> int:
    return int(client.info("stats").get("lazyfreed_objects", client.info("memory").get("lazyfreed_objects", 0)))


def _big_set(client: redis.Redis, key: str) -> None:
    # Above the engines' lazy free threshold (64 allocations), so a lazy delete goes to the background.
    client.sadd(key, *[f"member:{i}" for i in range(1000)])


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_lazyfree_parameters_free_in_the_background(engine: tuple[EngineBinary, redis.Redis]) -> None:
    binary, client = engine
    family = binary.release.family
    lazy = ("lazyfree-lazy-user-del", "lazyfree-lazy-server-del", "lazyfree-lazy-expire", "lazyfree-lazy-eviction")
    if family != "redis7":
        # ElastiCache removed them from Valkey 8 and later families.
        assert not {p.name for p in P.family_parameters(family)} & set(lazy)
        return
    for name in lazy:
        apply(client, binary, name, "no")
    _big_set(client, "a")
    client.delete("a")
    assert _lazyfreed(client) == 0
    freed = 0

    def lazily_freed() -> bool:
        return _lazyfreed(client) > freed

    apply(client, binary, "lazyfree-lazy-user-del", "yes")
    _big_set(client, "b")
    client.delete("b")
    wait_until(lazily_freed, what="DEL freed in the background")
    freed = _lazyfreed(client)
    apply(client, binary, "lazyfree-lazy-server-del", "yes")
    _big_set(client, "c")
    client.set("c", "overwritten")
    wait_until(lazily_freed, what="an overwritten value freed in the background")
    freed = _lazyfreed(client)
    apply(client, binary, "lazyfree-lazy-expire", "yes")
    _big_set(client, "d")
    client.pexpire("d", 1)
    wait_until(lambda: client.exists("d") == 0, what="d to expire")
    wait_until(lazily_freed, what="an expired key freed in the background")


@pytest.mark.parametrize("binary", ENGINES)
def test_cluster_allow_reads_when_down_on_a_cluster_mode_node(binary: EngineBinary) -> None:
    with TemporaryEngine(binary.server, {"cluster-enabled": "yes"}) as running:
        client = running.client()
        apply(client, binary, "cluster-require-full-coverage", "yes")
        apply(client, binary, "cluster-allow-reads-when-down", "no")
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        wait_until(lambda: client.cluster("info")["cluster_state"] == "ok", what="cluster state ok")
        client.set("k", "v")  # slot 7629
        client.execute_command("CLUSTER", "DELSLOTS", 0)
        wait_until(lambda: client.cluster("info")["cluster_state"] == "fail", what="cluster state fail")
        with pytest.raises(redis.exceptions.ClusterDownError):
            client.get("k")
        apply(client, binary, "cluster-allow-reads-when-down", "yes")
        assert client.get("k") == "v"
        with pytest.raises(redis.exceptions.ClusterDownError):
            client.set("k", "w")
        client.close()


@pytest.mark.slow
def test_timeout_closes_idle_clients_on_every_engine() -> None:
    """ElastiCache allows 0 or at least 20 seconds; every engine closes a client idle that long."""
    assert BINARIES
    with ExitStack() as stack:
        idle: dict[socket.socket, str] = {}
        busy: list[tuple[socket.socket, str]] = []
        for binary in BINARIES:
            running = stack.enter_context(TemporaryEngine(binary.server))
            client = running.client()
            apply(client, binary, "timeout", "20")
            client.close()
            for sockets in (idle, None):
                sock = stack.enter_context(socket.create_connection((running.address, running.port)))
                if sockets is None:
                    busy.append((sock, binary.release.version))
                else:
                    sockets[sock] = binary.release.version
        started = time.monotonic()
        closed: dict[str, float] = {}
        while idle and time.monotonic() - started < 40:
            for sock, _ in busy:
                sock.sendall(b"PING\r\n")
                assert sock.recv(64).startswith(b"+PONG")
            readable, _, _ = select.select(list(idle), [], [], 1.0)
            for sock in readable:
                if sock.recv(64) == b"":
                    closed[idle.pop(sock)] = time.monotonic() - started
        assert not idle, f"idle clients still open after 40 s on {sorted(idle.values())}"
        assert all(19 <= seconds <= 32 for seconds in closed.values()), closed
        for sock, _ in busy:  # kept busy, never idle for 20 s: still open
            sock.sendall(b"PING\r\n")
            assert sock.recv(64).startswith(b"+PONG")


@pytest.mark.parametrize("binary", ENGINES[:1])
def test_a_temporary_engine_leaves_nothing_behind(binary: EngineBinary) -> None:
    with TemporaryEngine(binary.server) as running:
        pid, directory = running.pid, running.directory
        assert directory is not None and (directory / "engine.conf").exists()
        assert running.client().ping()
    assert not os.path.exists(f"/proc/{pid}") and not directory.exists()
    # A setting the engine refuses: the failure says why, from the engine, and cleans up too.
    failing = TemporaryEngine(binary.server, {"maxmemory-policy": "sometimes"})
    with pytest.raises(EngineProbeFailed, match="maxmemory-policy"):
        failing.start()
    assert failing.directory is None
