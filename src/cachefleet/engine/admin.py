"""An asyncio admin connection to one engine process (Valkey or Redis OSS).

One connection per node, one request at a time; a request may be a pipeline of many
commands sent in a single write (slot migration sends hundreds). Replies are raw (bytes),
since keys need not be text; ``text`` decodes for commands whose replies are.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from cachefleet.engine import traffic

Command = Sequence[str | bytes | int]
# Every connection the control plane opens to a node names itself so (CLIENT SETNAME), so that
# CLIENT LIST tells its own connections from clients'.
CONTROL_PLANE_PREFIX = "cachefleet-"


@dataclass(frozen=True)
class ClientConnection:
    """One line of ``CLIENT LIST``: a connection to the node and how long it has been idle."""

    client_id: int
    name: str
    flags: str  # e.g. "N" (normal), "M" (this replica's link to its primary), "S" (a replica's link)
    idle: int  # whole seconds since its last command
    command: str  # its last command

    @property
    def is_client(self) -> bool:
        """A user's connection: neither the control plane's own nor a replication link."""
        return not self.name.startswith(CONTROL_PLANE_PREFIX) and not set(self.flags) & {"M", "S"}


class EngineError(Exception):
    """The engine could not be reached or refused an admin command."""


@functools.lru_cache(maxsize=16)
def client_context(ca_file: str) -> ssl.SSLContext:
    """One TLS client context per CA file, verifying the node's certificate (its IP SAN) against it."""
    return ssl.create_default_context(cafile=ca_file)


class _MeteredConnection(Connection):
    """A redis-py connection that counts its bytes in the node's traffic meter (engine/traffic.py):
    what it writes (every command goes through the writer's ``writelines``) and what the reader is
    fed, the hello and the login included, so that a serverless cache's ECPUs leave them out."""

    async def _connect(self) -> None:
        await super()._connect()  # type: ignore[no-untyped-call]
        meter = traffic.meter(self.host)
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        feed, writelines = reader.feed_data, writer.writelines

        def fed(data: bytes) -> None:
            meter.received += len(data)
            feed(data)

        def written(chunks: Any) -> None:
            chunks = list(chunks)
            meter.sent += sum(len(chunk) for chunk in chunks)
            writelines(chunks)

        reader.feed_data = fed  # type: ignore[method-assign,assignment]
        writer.writelines = written  # type: ignore[method-assign,assignment]


class _TlsConnection(_MeteredConnection):
    """TLS with a shared SSLContext. redis-py's SSLConnection builds a context per connection and
    loads the system's CA store into it first: ~100 ms of the event loop for every admin connection
    (slot migration opens two per lane), for a store that a node's certificate never needs."""

    def __init__(self, *, ssl_context: ssl.SSLContext, **kwargs: Any) -> None:
        self._ssl_context = ssl_context
        super().__init__(**kwargs)

    def _connection_arguments(self) -> Mapping[str, Any]:
        arguments = dict(super()._connection_arguments())
        arguments["ssl"] = self._ssl_context
        return arguments


class AdminClient:
    """One admin connection to a node. Build it with ``NodeAccess.admin()`` (engine/access.py),
    which knows the node's TLS and credentials."""

    def __init__(
        self,
        address: str,
        port: int,
        *,
        timeout: float = 2.0,
        name: str = "cachefleet-admin",
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.address = address
        self.port = port
        options: dict[str, Any] = dict(
            host=address,
            port=port,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            decode_responses=False,
            retry=Retry(NoBackoff(), 0),
            client_name=name,
            driver_info=None,  # no CLIENT SETINFO: one round trip less per connection
            username=username,
            password=password,
        )
        if ca_file is not None:
            self._connection: Connection = _TlsConnection(ssl_context=client_context(ca_file), **options)
        else:
            self._connection = _MeteredConnection(**options)
        self._lock = asyncio.Lock()

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Sends the commands in one write; each reply, or the ResponseError the engine gave."""
        if not commands:
            return []
        async with self._lock:
            try:
                await self._connection.connect()  # type: ignore[no-untyped-call]
                await self._connection.send_packed_command(self._connection.pack_commands(commands))
                replies: list[Any] = []
                for _ in commands:
                    try:
                        replies.append(await self._connection.read_response(disconnect_on_error=False))
                    except ResponseError as error:
                        replies.append(error)
                return replies
            except (TimeoutError, RedisError, OSError) as error:
                await self._connection.disconnect()
                raise EngineError(f"{self.address}:{self.port}: {error or type(error).__name__}") from error
            except BaseException:
                # Cancelled mid-way: replies still on their way must never be read as the next ones'.
                await asyncio.shield(self._connection.disconnect())
                raise

    async def execute(self, *args: str | bytes | int) -> Any:
        """One command; its raw reply. An error reply raises EngineError."""
        (reply,) = await self.pipeline([args])
        if isinstance(reply, ResponseError):
            raise EngineError(f"{self.address}:{self.port}: {reply}")
        return reply

    async def text(self, *args: str | bytes | int) -> str:
        reply = await self.execute(*args)
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    async def transaction(self, commands: Sequence[Command]) -> list[Any]:
        """Runs the commands in one MULTI/EXEC: the engine applies them together, or none."""
        replies = await self.pipeline([("MULTI",), *commands, ("EXEC",)])
        errors = [r for r in replies if isinstance(r, ResponseError)]
        if errors or replies[-1] is None:
            raise EngineError(f"{self.address}:{self.port}: transaction failed: {errors[0] if errors else 'aborted'}")
        result: list[Any] = replies[-1]
        return result

    async def ping(self) -> bool:
        return bool(await self.execute("PING"))

    async def info(self, section: str = "default") -> dict[str, str]:
        return parse_info(await self.text("INFO", section))

    async def replicate(self, host: str, port: int) -> None:
        await self.execute("REPLICAOF", host, str(port))

    async def promote(self) -> None:
        await self.execute("REPLICAOF", "NO", "ONE")

    async def config_get(self, name: str) -> str:
        """One setting's value (CONFIG GET answers a flat list or a map, by protocol and parser)."""
        reply = await self.execute("CONFIG", "GET", name)
        if isinstance(reply, dict):
            values = list(reply.values())
        elif isinstance(reply, list):
            values = reply[1::2]
        else:
            values = []
        if not values:
            return ""
        value = values[0]
        return value.decode() if isinstance(value, bytes) else str(value)

    async def bound_addresses(self) -> list[str]:
        return (await self.config_get("bind")).split()

    async def forking(self) -> bool:
        """Whether a child process (background save, AOF rewrite) is running."""
        info = await self.info("persistence")
        return any(info.get(f) == "1" for f in ("rdb_bgsave_in_progress", "aof_rewrite_in_progress", "module_fork_in_progress"))

    async def clients(self) -> list[ClientConnection]:
        return parse_client_list(await self.text("CLIENT", "LIST"))

    async def bind(self, addresses: list[str]) -> None:
        await self.execute("CONFIG", "SET", "bind", " ".join(addresses))

    async def config_set(self, name: str, value: str) -> None:
        await self.execute("CONFIG", "SET", name, value)

    async def close(self) -> None:
        try:
            await self._connection.disconnect()
        except (RedisError, OSError):
            pass


def parse_info(text: str) -> dict[str, str]:
    """INFO's ``key:value`` lines as a flat dict (values stay strings)."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        result[key] = value
    return result


def parse_client_list(text: str) -> list[ClientConnection]:
    """``CLIENT LIST``'s lines (``id=3 addr=... name=x ... idle=0 flags=N ... cmd=get ...``)."""
    connections = []
    for line in text.splitlines():
        fields = dict(item.partition("=")[::2] for item in line.split(" ") if "=" in item)
        if not fields.get("id", "").isdigit():
            continue
        idle = fields.get("idle", "0")
        connections.append(
            ClientConnection(
                client_id=int(fields["id"]),
                name=fields.get("name", ""),
                flags=fields.get("flags", ""),
                idle=int(idle) if idle.isdigit() else 0,
                command=fields.get("cmd", ""),
            )
        )
    return connections
