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

Cost: a round writes every node's probe at once and reads each answer in its connection's
protocol callback (``_Link``): no task, timeout or read coroutine per probe, one timer per
round, and only the four fields of INFO replication it uses are read. What is left per probe is
mostly the kernel's (a send and a receive on loopback): bench/health_probes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachefleet.engine import traffic
from cachefleet.engine.access import AccessDenied, NodeAccess

log = logging.getLogger(__name__)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

INTERVAL = 0.2
TIMEOUT = 0.25
FAILURES = 2
INFO_EVERY = 5  # one INFO replication a second at the default interval
LINK_GRACE = 2.0  # a replica reconnecting after a blip is not worth an event
PROBE_NAME = "cachefleet-health"
OPEN_AT_ONCE = 32  # connections being opened (logged in, named) at one time


REPLICATION_FIELDS = (b"role", b"master_link_status", b"slave_repl_offset", b"master_repl_offset")


def replication_fields(body: bytes) -> dict[str, str]:
    """The fields of an ``INFO replication`` answer that ``Replication`` reads, found without
    parsing the rest (a replica's answer lists every sub-replica and backlog figure)."""
    found = {}
    for name in REPLICATION_FIELDS:
        at = body.find(b"\n" + name + b":")
        start = at + len(name) + 2 if at >= 0 else (len(name) + 1 if body.startswith(name + b":") else -1)
        if start < 0:
            continue
        end = body.find(b"\r", start)
        found[name.decode()] = body[start:end if end >= 0 else len(body)].decode(errors="replace")
    return found


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


PING, INFO = b"PING\r\n", b"INFO replication\r\n"


class _Link(asyncio.Protocol):
    """A logged-in probe connection: the reply to the one request in flight is parsed as its bytes
    arrive (``data_received``), and handed to ``on_reply`` -- no task, timer or read coroutine per probe."""

    def __init__(self, transport: asyncio.BaseTransport, on_reply: Callable[[bytes | None, bool], None],
                 meter: traffic.Meter) -> None:
        self.transport = transport
        self._meter = meter  # the node's (engine/traffic.py): a serverless cache's ECPUs leave probes out
        self._on_reply = on_reply  # (payload or None for no answer, whether it is an error line)
        self._buffer = bytearray()
        self._expect: bytes | None = None  # the request in flight, if any
        self.lost = False

    @property
    def usable(self) -> bool:
        return not self.lost and not self.transport.is_closing()

    def send(self, request: bytes) -> None:
        self._expect = request
        self._buffer.clear()
        self._meter.sent += len(request)
        self.transport.write(request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self._meter.received += len(data)
        if self._expect is None:
            self.abort()  # nothing was asked: never read stray bytes as a later answer
            return
        self._buffer += data
        buffer = self._buffer
        end = buffer.find(b"\r\n")
        if end < 0:
            return
        if buffer[:1] == b"-":
            self._done(bytes(buffer[1:end]), error=True)
        elif self._expect is PING:
            self._done(bytes(buffer[:end]), error=False)
        elif buffer[:1] == b"$" and buffer[1:end].isdigit():
            length = int(buffer[1:end])
            if len(buffer) >= end + 2 + length + 2:
                self._done(bytes(buffer[end + 2:end + 2 + length]), error=False)
        else:
            self._done(None, error=False)

    def _done(self, payload: bytes | None, *, error: bool) -> None:
        self._expect = None
        self._buffer.clear()
        self._on_reply(payload, error)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._expect is not None:
            self._done(None, error=False)  # an exited node is no answer at once, not after the timeout

    def abort(self) -> None:
        self.lost = True
        self._expect = None
        self.transport.abort()  # type: ignore[attr-defined]


class _Probe:
    """One node's probe: PING (expects +PONG) or INFO replication on a bare, persistent connection,
    opened through NodeAccess (logged in, named) and then read by ``_Link``: a fraction of a client's cost."""

    def __init__(self, access: NodeAccess, timeout: float) -> None:
        self.access = access
        self.timeout = timeout
        self.refused: str | None = None  # why the node refuses the control plane's credentials, if it does
        self._link: _Link | None = None
        self._writer: asyncio.StreamWriter | None = None  # kept: a collected StreamWriter closes its transport
        self._reply: Callable[[bool, dict[str, str] | None], None] | None = None
        self._request = PING

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.usable

    def send(self, request: bytes, reply: Callable[[bool, dict[str, str] | None], None]) -> None:
        """Sends ``request`` on the open connection; ``reply(answered, info)`` is called once, on the
        answer or by ``expire``. ``info``: INFO's fields ({} for an error reply), None for PING."""
        assert self._link is not None
        self._request, self._reply = request, reply
        self._link.send(request)

    async def open(self) -> bool:
        """Opens the connection (the node's answer to logging in counts as an answer); False if it did not answer."""
        await self.close()
        try:
            _, writer = await self.access.stream(timeout=self.timeout, name=PROBE_NAME)
        except AccessDenied as denied:
            self.refused = str(denied)
            return True
        except (OSError, TimeoutError):
            return False
        self._writer = writer
        self._link = _Link(writer.transport, self._on_reply, traffic.meter(self.access.address))
        writer.transport.set_protocol(self._link)
        return True

    def _on_reply(self, payload: bytes | None, error: bool) -> None:
        reply, self._reply = self._reply, None
        info: dict[str, str] | None = None
        answered = payload is not None
        if error:
            self.refused = (payload or b"").decode(errors="replace").strip()
            info = {} if self._request is INFO else None
        elif payload is not None:
            if self._request is PING:
                answered = payload.startswith(b"+PONG")
            else:
                info = replication_fields(payload)
            self.refused = None if answered else self.refused
        if not answered:
            self._drop()
        if reply is not None:
            reply(answered, info)

    def expire(self) -> None:
        """The answer did not come in time: the connection is dropped (a late reply must never be
        read as the answer to the next probe) and the probe counts as unanswered."""
        if self._reply is not None:
            reply, self._reply = self._reply, None
            self._drop()
            reply(False, None)

    def _drop(self) -> None:
        link, self._link, self._writer = self._link, None, None
        if link is not None and not link.lost:
            link.abort()

    async def close(self) -> None:
        # The transport is closed, not awaited: its protocol is the _Link now, so the StreamWriter's
        # wait_closed() would never hear of it.
        link, self._link, self._writer = self._link, None, None
        if link is not None and not link.lost:
            link.lost = True
            link.transport.close()


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
        self._opening: asyncio.Semaphore | None = None  # made in the loop that uses it

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
        """One round: every watched node probed once; it ends when every answer is in or the timeout
        has passed (the loop runs one per interval). Open connections get their probe written at once
        and answer through their ``_Link``; only a node without a connection costs a task (to open one)."""
        if not self._watched:
            return
        loop = asyncio.get_running_loop()
        waiting: set[str] = set()
        round_over = loop.create_future()
        openings = []
        for key, watched in list(self._watched.items()):
            watched.probes += 1
            request = INFO if (watched.probes - 1) % self._info_every == 0 else PING
            if watched.probe.connected:
                waiting.add(key)
                watched.probe.send(request, self._replied(key, watched, waiting, round_over))
            else:
                openings.append(self._open_and_probe(key, watched, request))
        timer = loop.call_later(self._timeout, _settle, round_over) if waiting else None
        if openings:
            await asyncio.gather(*openings)
        if waiting:
            await round_over
        if timer is not None:
            timer.cancel()
        for key in list(waiting):  # no answer in time
            late = self._watched.get(key)
            if late is not None:
                late.probe.expire()

    def _replied(
        self, key: str, watched: _Watched, waiting: set[str], round_over: asyncio.Future[None]
    ) -> Callable[[bool, dict[str, str] | None], None]:
        def reply(answered: bool, info: dict[str, str] | None) -> None:
            waiting.discard(key)
            if not waiting:
                _settle(round_over)
            self._outcome(key, watched, answered, info)
        return reply

    async def _open_and_probe(self, key: str, watched: _Watched, request: bytes) -> None:
        """A node without a connection: opening it (logged in) is this round's probe's first half.
        At most OPEN_AT_ONCE are opened at a time, and the wait for a turn is not the node's: a
        thousand nodes watched at start-up would otherwise all miss the timeout, every round."""
        if self._opening is None:
            self._opening = asyncio.Semaphore(OPEN_AT_ONCE)
        async with self._opening:
            opened = await watched.probe.open()
        if not opened:
            self._outcome(key, watched, False, None)
            return
        if not watched.probe.connected:  # refused our credentials: alive, saying nothing
            self._outcome(key, watched, True, {} if request is INFO else None)
            return
        answer: asyncio.Future[tuple[bool, dict[str, str] | None]] = asyncio.get_running_loop().create_future()

        def reply(answered: bool, info: dict[str, str] | None) -> None:
            if not answer.done():
                answer.set_result((answered, info))

        watched.probe.send(request, reply)
        try:
            answered, info = await asyncio.wait_for(asyncio.shield(answer), self._timeout)
        except TimeoutError:
            watched.probe.expire()
            answered, info = await answer
        self._outcome(key, watched, answered, info)

    def _outcome(self, key: str, watched: _Watched, answered: bool, info: dict[str, str] | None) -> None:
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
