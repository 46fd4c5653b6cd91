"""An asyncio admin connection to one engine process (Valkey or Redis OSS)."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError


class EngineError(Exception):
    """The engine could not be reached or refused an admin command."""


class AdminClient:
    def __init__(self, address: str, port: int, *, timeout: float = 2.0) -> None:
        self.address = address
        self.port = port
        self._client = redis.Redis(
            host=address,
            port=port,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            decode_responses=True,
            single_connection_client=True,
            retry=Retry(NoBackoff(), 0),
            client_name="cachefleet-admin",
            lib_name=None,
            lib_version=None,
        )
        # Parse INFO ourselves so that every value is the engine's own text.
        self._client.set_response_callback("INFO", lambda response, **_: response)
        self._lock = asyncio.Lock()

    async def _call(self, *args: Any) -> Any:
        # single_connection_client shares one connection: one command at a time.
        async with self._lock:
            try:
                return await self._client.execute_command(*args)  # type: ignore[no-untyped-call]
            except (RedisError, OSError) as error:
                if self._client.connection is not None:
                    await self._client.connection.disconnect()
                raise EngineError(f"{self.address}:{self.port}: {error}") from error

    async def execute(self, *args: str) -> Any:
        """Any command; the reply as redis-py decodes it (strings, lists, ints)."""
        return await self._call(*args)

    async def ping(self) -> bool:
        return bool(await self._call("PING"))

    async def info(self, section: str = "default") -> dict[str, Any]:
        raw = await self._call("INFO", section)
        return parse_info(raw.decode() if isinstance(raw, bytes) else str(raw))

    async def replicate(self, host: str, port: int) -> None:
        await self._call("REPLICAOF", host, str(port))

    async def promote(self) -> None:
        await self._call("REPLICAOF", "NO", "ONE")

    async def bound_addresses(self) -> list[str]:
        reply = await self._call("CONFIG", "GET", "bind")
        if isinstance(reply, list) and len(reply) == 2:
            return str(reply[1]).split()
        if isinstance(reply, dict):
            return str(reply.get("bind", "")).split()
        return []

    async def bind(self, addresses: list[str]) -> None:
        await self._call("CONFIG", "SET", "bind", " ".join(addresses))

    async def config_set(self, name: str, value: str) -> None:
        await self._call("CONFIG", "SET", name, value)

    async def close(self) -> None:
        try:
            await self._client.aclose()
        except (RedisError, OSError):
            pass


def parse_info(text: str) -> dict[str, Any]:
    """INFO's ``key:value`` lines as a flat dict (values stay strings)."""
    result: dict[str, Any] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        result[key] = value
    return result
