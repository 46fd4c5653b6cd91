"""The admin client against a real engine process (the replies' shapes differ by protocol)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from pathlib import Path

from cachefleet.engine.admin import AdminClient
from cachefleet.engine.catalog import Catalog
from cachefleet.engine.config import NodeConfig, render
from helpers import fresh_network


def test_admin_client_reads_settings_info_and_pipelines():
    binary = Catalog.discover().binaries()[0]
    directory = Path(tempfile.mkdtemp())
    address = fresh_network().replace(".0/24", ".9")
    (directory / "data").mkdir()
    (directory / "engine.conf").write_text(render(NodeConfig(address=address, port=6379, directory=directory, maxmemory=2**28)))
    process = subprocess.Popen([str(binary.server), str(directory / "engine.conf")])

    async def scenario():
        admin = AdminClient(address, 6379)
        for _ in range(200):
            try:
                await admin.ping()
                break
            except Exception:  # noqa: BLE001 - still starting
                await asyncio.sleep(0.01)
        try:
            assert await admin.bound_addresses() == [address]
            assert await admin.config_get("maxmemory") == str(2**28)
            assert (await admin.info("replication"))["role"] == "master"
            replies = await admin.pipeline([("SET", "k", b"\xff\x00binary"), ("GET", "k"), ("INCR", "k")])
            assert replies[:2] == [b"OK", b"\xff\x00binary"]
            assert "not an integer" in str(replies[2])  # an error reply comes back in place, the rest still read
            assert await admin.transaction([("SET", "a", "1"), ("INCR", "a")]) == [b"OK", 2]
        finally:
            await admin.close()

    try:
        asyncio.run(scenario())
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def test_drain_counts_client_commands_only():
    """A leaving node is quiet when clients stop; our own probes, samples and log reads don't count."""
    from cachefleet.control.workflows.sharded import client_commands

    stats = {
        "cmdstat_get": "calls=7,usec=10,usec_per_call=1.43,rejected_calls=0,failed_calls=0",
        "cmdstat_set": "calls=3,usec=5,usec_per_call=1.67,rejected_calls=4,failed_calls=0",
        "cmdstat_ping": "calls=500,usec=100,usec_per_call=0.2,rejected_calls=0,failed_calls=0",
        "cmdstat_info": "calls=120,usec=9000,usec_per_call=75,rejected_calls=0,failed_calls=0",
        "cmdstat_slowlog|get": "calls=60,usec=60,usec_per_call=1,rejected_calls=0,failed_calls=0",
        "cmdstat_cluster|shards": "calls=4,usec=60,usec_per_call=15,rejected_calls=0,failed_calls=0",
        "cmdstat_replconf": "calls=30,usec=30,usec_per_call=1,rejected_calls=0,failed_calls=0",
        "cmdstat_mget": "calls=2,usec=4,usec_per_call=2,rejected_calls=0,failed_calls=0",
        "errorstat_MOVED": "count=5",
    }
    assert client_commands(stats) == 16  # SETs answered with MOVED count too
    assert client_commands({**stats, "cmdstat_ping": "calls=900,usec=1"}) == 16


def test_a_drained_node_tells_clients_from_the_control_plane_and_closes_them():
    """CLIENT LIST on a real engine: a user's connection is a client (busy while used), the admin
    connection and the health probe are not; closing the clients leaves the admin connection and
    refuses new connections."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from cachefleet.control.health import _Probe
    from cachefleet.control.workflows.sharded import ShardedTopology, busy_clients
    from cachefleet.engine.access import NodeAccess

    binary = Catalog.discover().binaries()[0]
    directory = Path(tempfile.mkdtemp())
    address = fresh_network().replace(".0/24", ".9")
    (directory / "data").mkdir()
    (directory / "engine.conf").write_text(render(NodeConfig(address=address, port=6379, directory=directory, maxmemory=2**28)))
    process = subprocess.Popen([str(binary.server), str(directory / "engine.conf")])
    user = redis.Redis(host=address, port=6379, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))

    async def scenario():
        admin = AdminClient(address, 6379)
        probe = _Probe(NodeAccess(address, 6379), 1.0)
        for _ in range(200):
            try:
                await admin.ping()
                break
            except Exception:  # noqa: BLE001 - still starting
                await asyncio.sleep(0.01)
        try:
            assert await probe.open() and probe.connected  # the health probe's connection, logged in and named
            user.set("k", "v")
            connections = await admin.clients()
            names = {c.name for c in connections}
            assert {"cachefleet-admin", "cachefleet-health"} <= names
            clients = [c for c in connections if c.is_client]
            assert len(clients) == 1 and clients[0].command == "set"
            assert busy_clients(connections) == clients  # used within the last DRAIN_IDLE seconds
            await ShardedTopology._close_clients(admin)
            assert [c for c in await admin.clients() if c.is_client] == []
            assert await admin.ping()  # the control plane's own connection stays
            try:
                user.get("k")
                raise AssertionError("the closed node still took a new connection")
            except redis.ConnectionError:
                pass
        finally:
            await probe.close()
            await admin.close()

    try:
        asyncio.run(scenario())
    finally:
        user.close()
        process.kill()
        process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def test_client_list_lines_are_parsed_and_replication_links_are_not_clients():
    from cachefleet.engine.admin import parse_client_list

    text = (
        "id=7 addr=127.0.0.1:5000 laddr=127.9.0.1:6379 fd=8 name= age=9 idle=3 flags=N db=0 cmd=get user=default\n"
        "id=8 addr=127.9.0.2:6379 laddr=127.9.0.1:41000 fd=9 name= age=9 idle=0 flags=M db=0 cmd=set user=default\n"
        "id=9 addr=127.9.0.3:40000 laddr=127.9.0.1:6379 fd=10 name= age=9 idle=0 flags=S db=0 cmd=replconf\n"
        "id=10 addr=127.0.0.1:5001 laddr=127.9.0.1:6379 fd=11 name=cachefleet-monitor age=9 idle=0 flags=N cmd=info\n"
    )
    connections = parse_client_list(text)
    assert [(c.client_id, c.idle, c.command, c.is_client) for c in connections] == [
        (7, 3, "get", True), (8, 0, "set", False), (9, 0, "replconf", False), (10, 0, "info", False)
    ]
