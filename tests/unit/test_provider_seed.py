"""LocalProvider.start with a seed: it waits while the engine answers -LOADING (past its start-up
timeout), and a seed that fails fails the start with the engine stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import pytest

from cachefleet.engine.access import NodeAccess
from cachefleet.engine.catalog import Catalog
from cachefleet.engine.config import NodeConfig, render
from cachefleet.providers import local
from helpers import fresh_network


async def test_the_ready_check_waits_while_the_engine_answers_loading(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "START_TIMEOUT", 0.2)
    loading_until = time.monotonic() + 0.8

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"-LOADING the dataset is being loaded\r\n" if time.monotonic() < loading_until else b"+PONG\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    provider = local.LocalProvider(tmp_path)
    provider._pids["loading"] = os.getpid()  # a live process stands for the engine
    started = time.monotonic()
    try:
        await provider._wait_ready("loading", os.getpid(), NodeAccess("127.0.0.1", port), timeout=0.2)
    finally:
        server.close()
        await server.wait_closed()
    assert time.monotonic() - started >= 0.7  # four times its timeout: it waited for the load


async def test_a_seed_that_fails_fails_the_start_and_stops_the_engine(tmp_path):
    binary = next(b for b in Catalog.discover().binaries() if b.release.engine == "valkey")
    address = fresh_network().replace(".0/24", ".7")
    provider = local.LocalProvider(tmp_path)
    seen: list[Path] = []

    @contextlib.contextmanager
    def seed(data_dir: Path):
        assert data_dir.is_dir() and not any(data_dir.iterdir())  # emptied, before the engine starts
        seen.append(data_dir)
        yield
        raise OSError("the RDB's key is missing")

    config = render(NodeConfig(address=address, port=6379, directory=provider.node_dir(address), maxmemory=0))
    with pytest.raises(local.NodeStartFailed, match="could not be loaded: the RDB's key is missing"):
        await provider.start(address, binary=binary.server, config=config, access=NodeAccess(address, 6379), seed=seed)
    assert seen and provider.pid(address) is None and provider.scan() == {}
    provider.remove(address)
