"""engine/relay.py against real engines: a relay takes a source's RDB (PSYNC), a target starts from
it, and every later write of the source reaches the target in order; a WAIT on the source counts
the relay only once the target holds the write; a target that refuses a relayed command stops it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import pytest

from cachefleet.engine.access import NodeAccess
from cachefleet.engine.relay import Relay, RelayFailed, parse_command
from cachefleet.engine.resp import encode
from datasets import compare, fill, read_back
from enginekit import EngineSet, installed


@pytest.fixture
def engines():
    running = EngineSet()
    yield running
    running.close()


class Loop:
    """An event loop on its own thread, for the relay, while the test drives engines with redis-py."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self, coroutine) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def loop():
    running = Loop()
    yield running
    running.close()


@pytest.mark.parametrize(("engine", "prefix", "diskless"), [
    ("valkey", "9.", "yes"), ("valkey", "8.", "no"), ("redis", "7.0", "no"),
])
def test_a_relayed_target_holds_every_write_of_the_source_in_order(engines, loop, tmp_path, engine, prefix, diskless):
    binary = installed(engine, prefix)
    source = engines.start(binary, extra={"repl-diskless-sync": diskless, "repl-diskless-sync-delay": "0"})
    client = source.client()
    keys = fill(client, 5_000, seed=21)
    relay = Relay(NodeAccess(source.address, source.port))
    rdb = tmp_path / "relay.rdb"
    with open(rdb, "wb") as out:
        point = loop.run(relay.full_sync(out.write))
    assert point.rdb.size == rdb.stat().st_size > 100_000 and point.offset == relay.offset
    # Written while the target is not up yet: it waits in the link and is applied once it is.
    client.set("during-seed", "kept")
    target = engines.start(binary, rdb=rdb)
    target_client = target.client()
    assert target_client.dbsize() == 5_000 and target_client.get("during-seed") is None

    applying = loop.start(relay.apply(NodeAccess(target.address, target.port)))
    confirmed: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        w = source.client()
        i = 0
        while not stop.is_set():
            w.incr("counter")
            w.set(f"w:{i}", i)
            if w.wait(1, 2000) >= 1:
                confirmed.append(f"w:{i}")
            i += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    # The stream's other shapes: a transaction, a second database, an expiry, deletes.
    pipe = client.pipeline(transaction=True)
    pipe.set("tx:a", "1").set("tx:b", "2").incrby("tx:n", 5)
    pipe.execute()
    client.expire(keys[0], 3600)
    client.delete(*keys[1:50])
    source.client(db=1).set("db1:key", "in db 1")
    time.sleep(1.0)
    stop.set()
    thread.join(10)
    # WAIT counts the relay only once the target has answered: a confirmed write is there at once.
    client.set("last", "confirmed")
    assert client.wait(1, 5000) == 1
    assert target_client.get("last") == b"confirmed"
    assert len(confirmed) > 20 and all(target_client.exists(k) for k in confirmed)
    every = client.keys("*")
    assert compare(read_back(client, every), read_back(target_client, every)) == []
    assert target_client.dbsize() == client.dbsize()
    assert target.client(db=1).get("db1:key") == b"in db 1" and target_client.get("during-seed") == b"kept"
    assert client.info("replication")["connected_slaves"] == 1  # the relay, as the source sees it
    assert not applying.done()

    applying.cancel()
    loop.run(relay.close())
    deadline = time.monotonic() + 10
    while client.info("replication")["connected_slaves"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.info("replication")["connected_slaves"] == 0  # the link is gone with the relay


def test_a_target_that_refuses_a_relayed_write_stops_the_relay_naming_it(engines, loop, tmp_path):
    binary = installed("valkey", "9.")
    source = engines.start(binary)
    source.client().set("k", "v")
    relay = Relay(NodeAccess(source.address, source.port))
    with open(tmp_path / "relay.rdb", "wb") as out:
        loop.run(relay.full_sync(out.write))
    target = engines.start(binary, rdb=tmp_path / "relay.rdb")
    target.client().config_set("maxmemory", "1")  # every write refused: OOM
    source.client().set("refused", "x")
    with pytest.raises(RelayFailed, match="the target refused SET: OOM"):
        loop.run(relay.apply(NodeAccess(target.address, target.port)), timeout=10)
    loop.run(relay.close())
    assert target.client().get("refused") is None


def test_the_stream_parser_takes_whole_commands_only():
    stream = encode("SET", "k", "v") + encode("SELECT", "1")
    first = parse_command(stream, 0)
    assert first is not None and first[0] == [b"SET", b"k", b"v"]
    assert parse_command(stream, first[1]) == ([b"SELECT", b"1"], len(stream))
    for cut in range(len(encode("SET", "k", "v"))):
        assert parse_command(stream[:cut], 0) is None  # an incomplete command is not taken
    with pytest.raises(RelayFailed, match="where a command was expected"):
        parse_command(b"+PONG\r\n", 0)
