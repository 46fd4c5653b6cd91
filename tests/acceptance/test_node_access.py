"""NodeAccess is the one way to reach a node: with a node that requires a user and password, the
provider's ready check, the admin client, the sampler's RESP connection and the health probe all
log in through it, and none of them gets in without it."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from cachefleet.control.health import HealthMonitor
from cachefleet.engine.access import NodeAccess
from cachefleet.engine.admin import EngineError
from cachefleet.engine.catalog import Catalog
from cachefleet.engine.config import NodeConfig, render
from cachefleet.providers.local import LocalProvider, NodeStartFailed
from helpers import fresh_network

USER = "cachefleet-control"
PASSWORD = "a-long-control-plane-secret-0123"


@pytest.fixture
def locked_node():
    """A real Valkey node whose default user is off; only USER/PASSWORD gets in."""
    binary = next(b for b in Catalog.discover().binaries() if b.release.engine == "valkey")
    root = Path(tempfile.mkdtemp(prefix="cachefleet-access-"))
    address = fresh_network().split("/")[0].rsplit(".", 1)[0] + ".7"
    provider = LocalProvider(root)
    config = render(NodeConfig(address=address, port=6379, directory=provider.node_dir(address), maxmemory=2**26))
    config += f"user {USER} on >{PASSWORD} ~* &* +@all\nuser default off\n"
    yield provider, binary.server, config, address
    for pid in provider.scan().values():  # whatever a failed assertion left running
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)


async def test_every_connection_logs_in_through_node_access(locked_node):
    provider, server, config, address = locked_node
    access = NodeAccess(address, 6379, username=USER, password=PASSWORD)
    anonymous = NodeAccess(address, 6379)
    # The ready check: without credentials the node never answers PING, so the start fails.
    with pytest.raises(NodeStartFailed):
        await asyncio.wait_for(_start_quickly(provider, server, config, anonymous), 30)
    await provider.start(address, binary=server, config=config, access=access)
    try:
        admin = access.admin()
        assert await admin.ping()
        assert (await admin.info("server"))["tcp_port"] == "6379"
        await admin.close()
        with pytest.raises(EngineError, match="authenticated|NOAUTH"):
            locked = anonymous.admin()
            try:
                await locked.execute("PING")
            finally:
                await locked.close()

        resp = await access.resp()
        assert "role:master" in await resp.call("INFO", "replication")
        assert await resp.call("CLIENT", "GETNAME") == "cachefleet-monitor"
        resp.close()

        monitor = HealthMonitor(on_change=lambda key: None, info_every=1)
        monitor.watch("ok", access)
        monitor.watch("anonymous", anonymous)
        await monitor.check_all()
        assert monitor.replication("ok").role == "master" and monitor.refused("ok") is None
        assert monitor.healthy("anonymous") and "NOAUTH" in (monitor.refused("anonymous") or "")
        await monitor.stop()
        assert access.cli_arguments() == ["-h", address, "-p", "6379", "--user", USER]
        assert PASSWORD not in " ".join(access.cli_arguments()) and PASSWORD not in repr(access)
    finally:
        await provider.stop(address)


async def _start_quickly(provider, server, config, access):
    from cachefleet.providers import local

    saved = local.START_TIMEOUT
    local.START_TIMEOUT = 2.0
    try:
        await provider.start(access.address, binary=server, config=config, access=access)
    finally:
        local.START_TIMEOUT = saved
