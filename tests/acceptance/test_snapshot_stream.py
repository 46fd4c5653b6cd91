"""engine/snapshot.follow_bgsave against a real engine: the RDB streamed while it is written,
encrypted on the way, verified, and gone from the node's dir afterwards."""

from __future__ import annotations

import asyncio
import io
import time

import pytest

from cachefleet.engine import encryption, rdb
from cachefleet.engine.access import NodeAccess
from cachefleet.engine.admin import AdminClient
from cachefleet.engine.restore import StreamedSeed
from cachefleet.engine.snapshot import SnapshotFailed, diskless, follow_bgsave, stream_rdb
from datasets import compare, fill, read_back
from enginekit import EngineSet, installed


@pytest.fixture
def engines():
    running = EngineSet()
    yield running
    running.close()


def test_a_followed_bgsave_is_the_engines_own_file_encrypted_on_the_way(engines, tmp_path):
    binary = installed("valkey", "8.")
    node = engines.start(binary)
    keys = fill(node.client(), 30_000, seed=9)
    expected = read_back(node.client(), keys)
    ring = encryption.KeyRing(tmp_path / "keys")
    sealed = io.BytesIO()
    writer = encryption.EncryptingWriter(sealed, key=ring.ensure(), key_id=ring.DEFAULT_KEY_ID, chunk_size=64 << 10)

    async def run():
        admin = AdminClient(node.address, node.port)
        try:
            return await follow_bgsave(admin, node.directory / "data", writer.write)
        finally:
            await admin.close()

    facts = asyncio.run(run())
    encrypted = writer.close()
    assert facts.size == encrypted.plaintext_size > 1_000_000 and encrypted.chunks > 10
    assert not list((node.directory / "data").glob("*.rdb"))  # no plain RDB left in the node's dir
    plain = tmp_path / "restored.rdb"
    sealed.seek(0)
    with open(plain, "wb") as out:
        encryption.decrypt_stream(sealed, out, keys=ring)
    assert rdb.verify(plain).checksum == facts.checksum
    restored = engines.start(binary, rdb=plain)
    assert compare(expected, read_back(restored.client(), keys)) == []


def test_a_failing_save_is_reported_and_the_node_keeps_serving(engines):
    node = engines.start(installed("valkey", "8."))
    node.client().set("k", "v")
    # The engine's dir removed under it (its cwd): the save's child cannot create its file,
    # as on a full disk.
    (node.directory / "data").rmdir()

    async def run():
        admin = AdminClient(node.address, node.port)
        try:
            await follow_bgsave(admin, node.directory / "data", lambda chunk: None, timeout=30)
        finally:
            await admin.close()

    with pytest.raises(SnapshotFailed, match="background save failed"):
        asyncio.run(run())
    assert node.client().get("k") == b"v"


@pytest.mark.parametrize(("engine", "prefix"), [("valkey", "8."), ("valkey", "9."), ("redis", "7.0")])
def test_an_encrypted_snapshot_streams_into_a_starting_engine_without_a_plain_file(engines, tmp_path, engine, prefix):
    binary = installed(engine, prefix)
    node = engines.start(binary)
    keys = fill(node.client(), 5_000, seed=11)
    expected = read_back(node.client(), keys)
    assert node.client().save()
    ring = encryption.KeyRing(tmp_path / "keys")
    ring.create()
    sealed = tmp_path / "0001.rdb.enc"
    encryption.encrypt_file(node.rdb, sealed, ring)

    def decrypting(data_dir):
        def produce(writer):
            with open(sealed, "rb") as reader:
                encryption.decrypt_stream(reader, writer, keys=ring)

        return StreamedSeed(data_dir, produce)

    restored = engines.start(binary, seed=decrypting)
    assert compare(expected, read_back(restored.client(), keys)) == []
    assert not (restored.directory / "data" / "dump.rdb").exists()

    cut = tmp_path / "cut.rdb.enc"
    cut.write_bytes(sealed.read_bytes()[: sealed.stat().st_size * 2 // 3])
    sealed = cut
    with pytest.raises(RuntimeError, match="exited at start-up"):
        engines.start(binary, seed=decrypting)


@pytest.mark.parametrize(("engine", "prefix"), [("valkey", "8."), ("valkey", "9."), ("redis", "7.0")])
def test_an_rdb_only_sync_snapshots_a_replica_without_a_file_on_the_node(engines, tmp_path, engine, prefix):
    binary = installed(engine, prefix)
    primary = engines.start(binary)
    keys = fill(primary.client(), 5_000, seed=12)
    expected = read_back(primary.client(), keys)
    replica = engines.start(binary)
    replica.client().execute_command("REPLICAOF", primary.address, primary.port)
    while replica.client().info("replication").get("master_link_status") != "up" or replica.client().dbsize() != len(keys):
        time.sleep(0.01)
    for name in replica.rdb.parent.iterdir():
        name.unlink()  # the replica's own sync file (a disk-based sync leaves none with rdb-del-sync-files, but be sure)
    received = bytearray()

    async def run():
        admin = AdminClient(replica.address, replica.port)
        try:
            async with diskless(admin):
                assert await admin.config_get("repl-diskless-sync") == "yes"
                facts = await stream_rdb(NodeAccess(replica.address, replica.port), received.extend)
            assert await admin.config_get("repl-diskless-sync") == "no"  # as Cachefleet renders it
            return facts
        finally:
            await admin.close()

    facts = asyncio.run(run())
    assert facts.size == len(received) and list(replica.rdb.parent.iterdir()) == []
    assert replica.client().info("replication")["master_link_status"] == "up"  # still replicating
    (tmp_path / "dump.rdb").write_bytes(bytes(received))
    restored = engines.start(binary, rdb=tmp_path / "dump.rdb")
    assert compare(expected, read_back(restored.client(), keys)) == []


def test_a_disk_based_rdb_only_sync_is_read_as_well(engines):
    binary = installed("valkey", "8.")
    node = engines.start(binary)
    node.client().set("k", "v")
    received = bytearray()
    facts = asyncio.run(stream_rdb(NodeAccess(node.address, node.port), received.extend))
    assert facts.size == len(received) and b"k" in bytes(received)
