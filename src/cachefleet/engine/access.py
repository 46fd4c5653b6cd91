"""How to reach one node: its address and port, the TLS it speaks and the credentials to log in with.

``NodeAccess`` is the only way Cachefleet opens a connection to a node: the admin client, the
metric sampler's and the log reader's lean RESP connections, the health probe and the
provider's ready check all get theirs from it, and ``cachefleet connect`` turns it into
valkey-cli arguments. Credentials and TLS settings therefore live in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from cachefleet.engine import traffic
from cachefleet.engine.admin import AdminClient, client_context
from cachefleet.engine.resp import RespConnection, encode


class AccessDenied(ConnectionError):
    """The node refused the credentials (or asked for some and none were given)."""


@dataclass(frozen=True)
class NodeAccess:
    """How to reach one node: address, port, TLS (the CA to verify it with) and credentials."""

    address: str
    port: int
    ca_file: Path | None = None  # TLS: the CA that signed the node's certificate (None: plain TCP)
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def tls(self) -> bool:
        return self.ca_file is not None

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return client_context(str(self.ca_file)) if self.ca_file is not None else None

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(user, password) to log in with, where the node has a user for us."""
        if self.username is None or self.password is None:
            return None
        return self.username, self.password

    def auth_command(self) -> tuple[str, ...] | None:
        if self.password is None:
            return None
        if self.username is None:
            return ("AUTH", self.password)
        return ("AUTH", self.username, self.password)

    # ------------------------------------------------------------------ connections
    def admin(self, *, timeout: float = 2.0, name: str = "cachefleet-admin") -> AdminClient:
        """A (lazily connecting) admin client of this node."""
        return AdminClient(
            self.address,
            self.port,
            timeout=timeout,
            name=name,
            username=self.username,
            password=self.password,
            ca_file=str(self.ca_file) if self.ca_file else None,
        )

    async def resp(self, *, timeout: float = 1.0, name: str = "cachefleet-monitor") -> RespConnection:
        """A lean pipelined RESP connection, logged in and named."""
        return await RespConnection.open(
            self.address, self.port, timeout=timeout, name=name, ssl_context=self.ssl_context, auth=self.auth_command()
        )

    async def stream(
        self, *, timeout: float, name: str | None = None, limit: int = 2**16
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A raw stream to the node, logged in and (with ``name``) named with CLIENT SETNAME: the
        health probe, the ready check, a snapshot's SYNC. A refusal of the credentials raises
        AccessDenied. Its set-up counts in the node's traffic meter (engine/traffic.py); what is sent
        on the stream afterwards is the caller's to count. ``limit`` is the reader's buffer size
        (asyncio's default is 64 KiB; a snapshot stream reads more at once).
        """
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.address, self.port, ssl=self.ssl_context, limit=limit), timeout
        )
        commands = [c for c in (self.auth_command(), ("CLIENT", "SETNAME", name) if name else None) if c is not None]
        meter = traffic.meter(self.address)
        for command in commands:
            try:
                request = encode(*command)
                meter.sent += len(request)
                writer.write(request)
                reply = await asyncio.wait_for(reader.readline(), timeout)
                meter.received += len(reply)
            except BaseException:
                await close_stream(writer)
                raise
            if not reply.startswith(b"+OK"):
                await close_stream(writer)
                text = reply.decode(errors="replace").strip()
                if not text or not text.startswith(("-NOAUTH", "-WRONGPASS", "-NOPERM")):
                    raise ConnectionError(f"{self.address}:{self.port}: {command[0]} answered {text or 'nothing'}")
                raise AccessDenied(f"{self.address}:{self.port}: {text.lstrip('-')}")
        return reader, writer

    def cli_arguments(self) -> list[str]:
        """valkey-cli / redis-cli arguments that reach this node (never the password: argv is readable by all)."""
        arguments = ["-h", self.address, "-p", str(self.port)]
        if self.ca_file is not None:
            arguments += ["--tls", "--cacert", str(self.ca_file)]
        if self.username is not None:
            arguments += ["--user", self.username]
        return arguments


async def close_stream(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
