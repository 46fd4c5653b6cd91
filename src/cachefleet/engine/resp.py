"""A lean, pipelined RESP connection for sampling engines every second.

The admin client (redis-py) costs ~100 µs of Python per command; the monitor sends one
INFO per node per second to every node, so it uses this instead: an asyncio protocol that
writes encoded commands and parses replies with hiredis as they arrive (no task, no
coroutine per command). Replies are resolved in order on futures.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from typing import Any

import hiredis

from cachefleet.engine import traffic


class ReplyError(Exception):
    """The engine answered a command with an error."""


def encode(*args: str | bytes | int) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RespConnection(asyncio.Protocol):
    """A pipelined RESP connection: replies resolve futures in order, parsed by hiredis as they arrive."""

    def __init__(self, meter: traffic.Meter | None = None) -> None:
        self._meter = meter or traffic.Meter()  # the node's (engine/traffic.py): the control plane's bytes
        self._reader = hiredis.Reader(encoding="utf-8", errors="replace")
        self._waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self.closed = False
        self.received = 0  # bytes read so far on this connection

    @classmethod
    async def open(
        cls,
        address: str,
        port: int,
        *,
        timeout: float = 1.0,
        name: str = "cachefleet-monitor",
        ssl_context: ssl.SSLContext | None = None,
        auth: tuple[str, ...] | None = None,
    ) -> RespConnection:
        """Connects (TLS when ``ssl_context``), logs in with ``auth`` (an AUTH command) and names the
        connection. Use ``NodeAccess.resp()`` (engine/access.py), which knows the node's settings."""
        loop = asyncio.get_running_loop()
        meter = traffic.meter(address)
        _, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: cls(meter), address, port, ssl=ssl_context), timeout
        )
        try:
            if auth is not None:
                await asyncio.wait_for(protocol.call(*auth), timeout)
            if name:
                await asyncio.wait_for(protocol.call("CLIENT", "SETNAME", name), timeout)
        except BaseException:
            protocol.close()
            raise
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self._meter.received += len(data)
        self._reader.feed(data)
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError:
                self.close()
                return
            if reply is False:
                return
            if not self._waiting:
                continue
            future = self._waiting.popleft()
            if future.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(ReplyError(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(ConnectionError(f"connection lost: {exc}"))

    def send(self, *args: str | bytes | int) -> asyncio.Future[Any]:
        """Writes one command; the future resolves with its reply."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.closed or self._transport is None:
            future.set_exception(ConnectionError("connection closed"))
            return future
        self._waiting.append(future)
        request = encode(*args)
        self._meter.sent += len(request)
        self._transport.write(request)
        return future

    async def call(self, *args: str | bytes | int) -> Any:
        return await self.send(*args)

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()
