"""Hang detection and replication tracking: a persistent connection per node, probed every interval.

A process that exits is seen at once by the provider (pidfd); this catches the ones that
stay alive but stop answering (SIGSTOP, a stuck disk, an endless script). A node is
unhealthy after ``failures`` probes in a row got no answer within ``timeout``, and healthy
again after one answer.

Every ``info_every``-th probe is ``INFO replication`` instead of ``PING`` (an answer all the
same), so the role, the replication link state and the offset of every node are known
within about a second. A replica whose link has been down for ``link_grace`` seconds is a
*link loss*; its start and its end are reported too. Every change goes to ``on_change`` so
the owner reconciles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachefleet.engine.access import AccessDenied, NodeAccess, close_stream
from cachefleet.engine.admin import parse_info

log = logging.getLogger(__name__)

INTERVAL = 0.2
TIMEOUT = 0.25
FAILURES = 2
INFO_EVERY = 5  # one INFO replication a second at the default interval
LINK_GRACE = 2.0  # a replica reconnecting after a blip is not worth an event
PROBE_NAME = "cachefleet-health"


@dataclass(frozen=True)
class Replication:
    """What a node last said about its replication (``INFO replication``)."""

    role: str  # "master" or "slave"
    offset: int  # the replication stream it holds (slave_repl_offset, or master_repl_offset)
    link_up: bool  # a primary's link is always up; a replica's is master_link_status
    seen_at: float  # time.monotonic() of the answer

    @classmethod
    def parse(cls, info: dict[str, str], seen_at: float) -> Replication:
        role = info.get("role", "")
        offset = -1
        for name in ("slave_repl_offset", "master_repl_offset"):
            value = info.get(name, "")
            if value.lstrip("-").isdigit():
                offset = int(value)
                break
        link_up = role != "slave" or info.get("master_link_status") == "up"
        return cls(role=role, offset=offset, link_up=link_up, seen_at=seen_at)


class _Probe:
    """A bare connection that sends PING and expects +PONG: a fraction of a client's cost."""

    def __init__(self, access: NodeAccess, timeout: float) -> None:
        self.access = access
        self.timeout = timeout
        self.refused: str | None = None  # why the node refuses the control plane's credentials, if it does
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def ping(self) -> bool:
        """Whether the node answered in time. Any answer counts (a node that refuses our
        credentials is alive, not hung: see ``refused``)."""
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await self._connection()
                writer.write(b"PING\r\n")
                line = await reader.readline()
            if line.startswith(b"+PONG"):
                self.refused = None
                return True
            if line.startswith(b"-"):
                self.refused = line[1:].decode(errors="replace").strip()
                return True
        except AccessDenied as denied:
            self.refused = str(denied)
            await self.close()
            return True
        except (OSError, TimeoutError):
            pass
        await self.close()  # a late reply must never be read as the answer to the next PING
        return False

    async def replication(self) -> dict[str, str] | None:
        """``INFO replication`` as a dict ({} for an error reply: alive, but saying nothing);
        None if the node did not answer in time."""
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await self._connection()
                writer.write(b"INFO replication\r\n")
                header = await reader.readline()
                if header.startswith(b"$") and header[1:].strip().isdigit():
                    body = await reader.readexactly(int(header[1:]) + 2)
                    self.refused = None
                    return parse_info(body.decode(errors="replace"))
                if header.startswith(b"-"):
                    self.refused = header[1:].decode(errors="replace").strip()
                    return {}
        except AccessDenied as denied:
            self.refused = str(denied)
            await self.close()
            return {}
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        await self.close()
        return None

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._writer is None or self._reader is None:
            # Named, so that a drain (CLIENT LIST) counts the probe as the control plane's, not a client.
            self._reader, self._writer = await self.access.stream(timeout=self.timeout, name=PROBE_NAME)
        return self._reader, self._writer

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            await close_stream(writer)


@dataclass
class _Watched:
    probe: _Probe
    last_answer: float
    failures: int = 0
    probes: int = 0
    replication: Replication | None = None
    link_down_since: float | None = None


class HealthMonitor:
    """Probes every watched node on one persistent connection: hangs, role, replication link and offset."""

    def __init__(
        self,
        *,
        on_change: Callable[[str], None],
        interval: float = INTERVAL,
        timeout: float = TIMEOUT,
        failures: int = FAILURES,
        info_every: int = INFO_EVERY,
        link_grace: float = LINK_GRACE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_change = on_change
        self._interval = interval
        self._timeout = timeout
        self._failures = failures
        self._info_every = info_every
        self._link_grace = link_grace
        self._clock = clock  # monotonic seconds; tests give a fake one
        self._watched: dict[str, _Watched] = {}
        self._unhealthy: set[str] = set()
        self._alarms: dict[str, asyncio.Event] = {}  # set while the node is unhealthy
        self._link_lost: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def watch(self, key: str, access: NodeAccess) -> None:
        watched = self._watched.get(key)
        if watched is None or watched.probe.access != access:
            if watched is not None:
                asyncio.get_running_loop().create_task(watched.probe.close())
            self._watched[key] = _Watched(_Probe(access, self._timeout), last_answer=self._clock())

    def unwatch(self, key: str) -> None:
        watched = self._watched.pop(key, None)
        self._unhealthy.discard(key)
        self._alarms.pop(key, None)
        self._link_lost.discard(key)
        if watched is not None:
            asyncio.get_running_loop().create_task(watched.probe.close())

    def watching(self, key: str) -> bool:
        return key in self._watched

    def alarm(self, key: str) -> asyncio.Event:
        """An event set as soon as the node is found not answering (a pass waiting on it gives up)."""
        event = self._alarms.get(key)
        if event is None:
            event = self._alarms[key] = asyncio.Event()
            if key in self._unhealthy:
                event.set()
        return event

    def healthy(self, key: str) -> bool:
        return key not in self._unhealthy

    def replication(self, key: str) -> Replication | None:
        """The node's replication as of its last INFO answer (None before the first)."""
        watched = self._watched.get(key)
        return None if watched is None else watched.replication

    def link_lost(self, key: str) -> bool:
        """Whether this replica's replication link has been down for ``link_grace`` seconds or more."""
        return key in self._link_lost

    def link_down_for(self, key: str) -> float:
        watched = self._watched.get(key)
        if watched is None or watched.link_down_since is None:
            return 0.0
        return self._clock() - watched.link_down_since

    def refused(self, key: str) -> str | None:
        """Why the node refuses the control plane's credentials (None: it does not)."""
        watched = self._watched.get(key)
        return None if watched is None else watched.probe.refused

    def silent_for(self, key: str) -> float:
        watched = self._watched.get(key)
        return 0.0 if watched is None else self._clock() - watched.last_answer

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="health-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for watched in self._watched.values():
            await watched.probe.close()
        self._watched.clear()

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            await self.check_all()
            await asyncio.sleep(max(0.0, self._interval - (time.monotonic() - started)))

    async def check_all(self) -> None:
        """One round: every watched node probed once (the loop runs one per interval)."""
        if self._watched:
            await asyncio.gather(*(self._check(key) for key in list(self._watched)))

    async def _check(self, key: str) -> None:
        watched = self._watched.get(key)
        if watched is None:
            return
        watched.probes += 1
        info: dict[str, str] | None = None
        if (watched.probes - 1) % self._info_every == 0:
            info = await watched.probe.replication()
            answered = info is not None
        else:
            answered = await watched.probe.ping()
        if not answered:
            watched.failures += 1
            if watched.failures >= self._failures and key not in self._unhealthy and key in self._watched:
                self._unhealthy.add(key)
                self.alarm(key).set()
                log.warning("node %s does not answer PING (%.2f s without an answer)", key, self.silent_for(key))
                self._on_change(key)
            return
        watched.failures = 0
        watched.last_answer = self._clock()
        if info and key in self._watched:
            self._observe(key, watched, Replication.parse(info, watched.last_answer))
        if key in self._unhealthy:
            self._unhealthy.discard(key)
            self._alarms.pop(key, None)
            log.info("node %s answers PING again", key)
            self._on_change(key)

    def _observe(self, key: str, watched: _Watched, replication: Replication) -> None:
        watched.replication = replication
        if replication.link_up:
            watched.link_down_since = None
            if key in self._link_lost:
                self._link_lost.discard(key)
                log.info("replica %s: replication link up again", key)
                self._on_change(key)
            return
        if watched.link_down_since is None:
            watched.link_down_since = replication.seen_at
        if key not in self._link_lost and replication.seen_at - watched.link_down_since >= self._link_grace:
            self._link_lost.add(key)
            log.warning("replica %s: replication link down for %.1f s", key, self.link_down_for(key))
            self._on_change(key)
