"""engine/restore.py against real engines: an RDB's keys moved by slot into clusters and
standalone nodes, every type, value and TTL kept; interrupted moves resumed; same-shape seeding."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from cachefleet.domain.slots import even
from cachefleet.engine import rdb
from cachefleet.engine.access import NodeAccess
from cachefleet.engine.admin import AdminClient
from cachefleet.engine.keyslot import key_slot
from cachefleet.engine.restore import RestoreFailed, RestoreTarget, move_all, move_keys, targets_of_cluster
from datasets import compare, count_by_type, fill, read_back
from enginekit import EngineSet, installed


@pytest.fixture
def engines():
    running = EngineSet()
    yield running
    running.close()


def snapshot(engines, binary, count, *, seed=1):
    """A standalone engine filled with ``count`` keys of every type, saved: (rdb path, keys, expected)."""
    source = engines.start(binary)
    client = source.client()
    keys = fill(client, count, seed=seed)
    expected = read_back(client, keys)
    assert client.save()
    path = engines.root / f"snapshot-{source.address}.rdb"
    shutil.copyfile(source.rdb, path)
    source.stop()
    rdb.verify(path)
    return path, keys, expected


def read_cluster(nodes, keys):
    """Each key read from the node owning its slot: a key on another node would answer MOVED."""
    owners = {}
    for node in nodes:
        for low, high in [tuple(r[:2]) for r in node.client().execute_command("CLUSTER", "SLOTS")
                          if r[2][0].decode() == node.address]:
            for slot in range(low, high + 1):
                owners[slot] = node
    result = {}
    by_node = {}
    for key in keys:
        by_node.setdefault(owners[key_slot(key)].address, []).append(key)
    for node in nodes:
        result.update(read_back(node.client(), by_node.get(node.address, [])))
    return result


async def restore(source_engine, targets, **options):
    return await move_keys(NodeAccess(source_engine.address, source_engine.port), targets, **options)


def test_100k_keys_of_every_type_restore_into_three_shards(engines):
    binary = installed("valkey", "8.")
    path, keys, expected = snapshot(engines, binary, 100_000)
    counts = count_by_type(expected.values())
    assert set(counts) == {b"string", b"hash", b"list", b"set", b"zset", b"stream"} and min(counts.values()) > 10_000
    assert sum(1 for _, _, expires in expected.values() if expires != -1) >= 33_000
    nodes = engines.cluster(binary, 3)
    temporary = engines.start(binary, rdb=path)
    assert temporary.client().dbsize() == len(keys)

    async def run():
        admin = AdminClient(nodes[0].address, nodes[0].port)
        targets = await targets_of_cluster(admin)
        await admin.close()
        return await restore(temporary, targets)

    result = asyncio.run(run())
    assert result.keys == len(keys) and result.passes == 1
    assert temporary.client().dbsize() == 0
    sizes = {f"{n.address}:{n.port}": n.client().dbsize() for n in nodes}
    assert sum(sizes.values()) == len(keys) and all(result.sent[name] >= size for name, size in sizes.items())
    assert compare(expected, read_cluster(nodes, keys)) == []


@pytest.mark.parametrize(("engine", "prefix"), [("redis", "7.0"), ("valkey", "9.")])
def test_dump_and_restore_into_a_standalone_node(engines, engine, prefix):
    binary = installed(engine, prefix)
    path, keys, expected = snapshot(engines, binary, 8_000, seed=2)
    target = engines.start(binary)
    temporary = engines.start(binary, rdb=path)
    result = asyncio.run(restore(temporary, [RestoreTarget(target.address, target.port)], method="dump", lanes=2, batch=100))
    assert result.keys == len(keys) and temporary.client().dbsize() == 0
    assert compare(expected, read_back(target.client(), keys)) == []


def test_three_snapshot_shards_into_two_in_parallel(engines):
    """A 3-shard snapshot: one RDB per shard holding its slots' keys, moved into 2 shards at once."""
    binary = installed("valkey", "8.")
    path, keys, expected = snapshot(engines, binary, 30_000, seed=3)
    # Split the one data set into three shard RDBs as a 3-shard group would have saved them.
    shards = [engines.start(binary, rdb=path) for _ in range(3)]
    for shard, slots in zip(shards, even(3), strict=True):
        client = shard.client()
        foreign = [k for k in keys if key_slot(k) not in slots]
        for start in range(0, len(foreign), 5000):
            client.delete(*foreign[start : start + 5000])
    assert sum(s.client().dbsize() for s in shards) == len(keys)
    nodes = engines.cluster(binary, 2)

    async def run():
        sources = [NodeAccess(s.address, s.port) for s in shards]
        targets = [RestoreTarget(n.address, n.port, slots=frozenset(s)) for n, s in zip(nodes, even(2), strict=True)]
        return await move_all(sources, targets)

    results = asyncio.run(run())
    assert sum(r.keys for r in results) == len(keys)
    assert compare(expected, read_cluster(nodes, keys)) == []


def test_an_interrupted_move_finishes_when_run_again(engines):
    binary = installed("valkey", "8.")
    path, keys, expected = snapshot(engines, binary, 20_000, seed=4)
    nodes = engines.cluster(binary, 2)
    temporary = engines.start(binary, rdb=path)
    targets = [RestoreTarget(n.address, n.port, slots=frozenset(s)) for n, s in zip(nodes, even(2), strict=True)]
    moved = []

    def stop_halfway(count):
        moved.append(count)
        if sum(moved) >= 6_000:
            raise KeyboardInterrupt  # as a control plane killed mid-restore (nothing catches it)

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(restore(temporary, targets, progress=stop_halfway, batch=200))
    left = temporary.client().dbsize()
    assert 0 < left < len(keys) - 5_000
    result = asyncio.run(restore(temporary, targets))
    assert result.keys == left and temporary.client().dbsize() == 0
    assert compare(expected, read_cluster(nodes, keys)) == []


def test_a_target_owning_too_few_slots_is_refused_before_any_key_moves(engines):
    binary = installed("valkey", "8.")
    source = engines.start(binary)
    source.client().set("k", "v")
    with pytest.raises(ValueError, match="no target"):
        asyncio.run(restore(source, [RestoreTarget("127.0.0.1", 1, slots=frozenset(range(100)))]))
    assert source.client().get("k") == b"v"


def test_a_failing_target_fails_the_move_with_its_answer(engines):
    binary = installed("valkey", "8.")
    source = engines.start(binary)
    source.client().set("k", "v")
    target = engines.start(binary)
    target.client().execute_command("CONFIG", "SET", "maxmemory", "1")
    target.client().execute_command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    with pytest.raises(RestoreFailed, match="MIGRATE to .* failed"):
        asyncio.run(restore(source, [RestoreTarget(target.address, target.port)], lanes=1))
    assert source.client().get("k") == b"v"  # a failed MIGRATE keeps the key on the source


def test_same_shape_seeding_and_what_cluster_nodes_do_with_a_seed(engines):
    """A standalone node loads a placed RDB before it answers; a cluster-mode node also takes
    every slot it holds keys for (so the workflow may add only the other slots of its range)."""
    binary = installed("valkey", "8.")
    path, keys, expected = snapshot(engines, binary, 2_000, seed=5)
    standalone = engines.start(binary, rdb=path)
    assert compare(expected, read_back(standalone.client(), keys)) == []
    assert standalone.rdb.stat().st_mode & 0o777 == 0o600 and path.exists()
    clustered = engines.start(binary, rdb=path, cluster=True)
    claimed = {s for r in clustered.client().execute_command("CLUSTER", "SLOTS") for s in range(r[0], r[1] + 1)}
    assert claimed == {key_slot(k) for k in keys}
    with pytest.raises(Exception, match="already busy"):
        clustered.client().execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)


def test_dump_payloads_move_only_where_the_rdb_format_loads(engines):
    """Why the temporary engine runs the target's build: a DUMP payload carries its writer's RDB
    version, and RESTORE refuses one its own RDB loader would (measured: the same matrix)."""
    builds = {(e, p): installed(e, p) for e, p in (("valkey", "8."), ("valkey", "9."), ("redis", "7.0"))}
    clients = {key: engines.start(binary).client() for key, binary in builds.items()}
    for client in clients.values():
        client.set("s", "v")
        client.xadd("x", {"a": 1})
        client.xgroup_create("x", "g", id="0")
    for source, binary in builds.items():
        written = rdb.SUPPORT[(binary.release.engine, binary.release.major_minor)].writes
        for target, target_binary in builds.items():
            try:
                rdb.check_loadable(written, target_binary.release.engine, target_binary.release.version)
                allowed = True
            except rdb.RdbIncompatible:
                allowed = False
            restored = True
            for key in ("s", "x"):
                try:
                    clients[target].restore(key, 0, clients[source].dump(key), replace=True)
                except Exception:  # noqa: BLE001 - the engine's refusal is the measurement
                    restored = False
            assert restored is allowed, f"DUMP of {source} into {target}"
