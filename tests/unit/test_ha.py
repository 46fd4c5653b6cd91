"""High-availability pieces in isolation: the health probe's replication tracking
(against a scripted fake engine)."""

from __future__ import annotations

import asyncio

from cachefleet.control.health import HealthMonitor


# ---------------------------------------------------------------------- health monitor
class FakeEngine:
    """Answers PING and INFO replication on a loopback port; can hang (stop answering)."""

    def __init__(self) -> None:
        self.role = "slave"
        self.link = "up"
        self.offset = 100
        self.hung = False
        self.infos = 0
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                while self.hung:
                    await asyncio.sleep(0.01)
                if line.upper().startswith(b"PING"):
                    writer.write(b"+PONG\r\n")
                elif line.upper().startswith(b"INFO"):
                    self.infos += 1
                    body = (
                        f"# Replication\r\nrole:{self.role}\r\nmaster_host:127.0.0.1\r\n"
                        f"master_link_status:{self.link}\r\nslave_repl_offset:{self.offset}\r\n"
                    ).encode()
                    writer.write(b"$%d\r\n%s\r\n" % (len(body), body))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()


async def _until(predicate, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_health_monitor_tracks_replication_link_and_offset():
    engine = FakeEngine()
    port = await engine.start()
    changes: list[str] = []
    monitor = HealthMonitor(on_change=changes.append, interval=0.02, timeout=0.1, info_every=2, link_grace=0.2)
    monitor.watch("n1", "127.0.0.1", port)
    monitor.start()
    try:
        await _until(lambda: monitor.replication("n1") is not None)
        state = monitor.replication("n1")
        assert (state.role, state.offset, state.link_up) == ("slave", 100, True)
        assert engine.infos >= 1 and monitor.healthy("n1")

        engine.offset = 250
        await _until(lambda: monitor.replication("n1").offset == 250)

        # A blip shorter than the grace is not a link loss; a sustained one is, and is reported once.
        engine.link = "down"
        await _until(lambda: monitor.replication("n1").link_up is False)
        assert not monitor.link_lost("n1") and changes == []
        await _until(lambda: monitor.link_lost("n1"))
        assert changes == ["n1"] and monitor.link_down_for("n1") >= 0.2
        await asyncio.sleep(0.1)
        assert changes == ["n1"]

        engine.link = "up"
        await _until(lambda: not monitor.link_lost("n1"))
        assert changes == ["n1", "n1"] and monitor.link_down_for("n1") == 0.0

        # A hang (the process alive, not answering) makes the node unhealthy.
        engine.hung = True
        await _until(lambda: not monitor.healthy("n1"))
        assert changes[-1] == "n1" and monitor.silent_for("n1") > 0.1
        engine.hung = False
        await _until(lambda: monitor.healthy("n1"))
    finally:
        await monitor.stop()
        await engine.close()


async def test_health_monitor_reports_a_primarys_link_as_up():
    engine = FakeEngine()
    engine.role, engine.link = "master", "down"  # a primary has no master link: whatever it says
    port = await engine.start()
    monitor = HealthMonitor(on_change=lambda key: None, interval=0.02, timeout=0.1, info_every=1, link_grace=0.05)
    monitor.watch("p", "127.0.0.1", port)
    monitor.start()
    try:
        await _until(lambda: monitor.replication("p") is not None)
        await asyncio.sleep(0.15)
        assert monitor.replication("p").link_up and not monitor.link_lost("p")
    finally:
        await monitor.stop()
        await engine.close()
