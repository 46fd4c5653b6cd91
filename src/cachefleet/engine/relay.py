"""A replication relay: follows a primary as a replica's link does, and applies what it receives
to another node over a client connection.

Why: a cluster mode node refuses ``REPLICAOF`` of a node outside its own cluster, so a cluster
mode enabled global datastore's secondary shard (and a serverless cache being migrated into)
cannot follow its source directly. The relay stands in for the replica's link, shard by shard:

1. ``full_sync``: ``REPLCONF capa eof capa psync2``, ``PSYNC ? -1``; the source answers
   ``+FULLRESYNC <replid> <offset>`` and sends its RDB (sized, or diskless with an end mark:
   ``snapshot.read_payload``) into a sink. The target starts from that RDB (a seeded start,
   ``engine/restore.py``), so it holds exactly the source's data as of ``offset``.
2. ``apply``: the command stream from that offset on, in order, to the target over one
   connection, pipelined (the stream's own bytes are forwarded; ``SELECT``, ``MULTI``/``EXEC``
   included). Once a batch is answered, ``REPLCONF ACK <offset>`` goes to the source, so the
   source counts the relay as a replica in sync only for writes the target holds: a ``WAIT`` on
   the source returns once they are on the target. The source's ``PING`` and ``REPLCONF GETACK``
   are the link's, not data: answered (GETACK) or skipped, never forwarded.

A target that refuses a relayed command (an error reply: ``MOVED``, ``READONLY``, ``OOM``...)
has diverged from the source: ``apply`` raises ``RelayFailed`` naming the command, and the
relay must sync again. Until the target has started from the RDB the stream waits in the
source's output buffer for this replica (``client-output-buffer-limit replica``): a seeding that
takes longer than that buffer allows under heavy writes ends the link, and the relay starts over.

Not wired into a workflow yet (see README, global datastores: "Not yet").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import hiredis

from cachefleet.engine.access import AccessDenied, NodeAccess, close_stream
from cachefleet.engine.rdb import RdbFacts, StreamVerifier
from cachefleet.engine.resp import encode
from cachefleet.engine.snapshot import CHUNK_SIZE, SnapshotFailed, read_payload

log = logging.getLogger(__name__)

ACK_INTERVAL = 1.0  # as a replica's replicationCron: the source's lag figure and min-replicas use it
HANDSHAKE_TIMEOUT = 10.0


class RelayFailed(Exception):
    """The relay cannot go on: the source or the target refused it, or the link ended."""


@dataclass(frozen=True)
class SyncPoint:
    """Where the relay stands in the source's replication stream after a full sync."""

    replication_id: str
    offset: int  # the source's offset the RDB holds everything up to
    rdb: RdbFacts


def parse_command(buffer: bytes | bytearray, start: int) -> tuple[list[bytes], int] | None:
    """The command (a RESP array of bulk strings, as a source propagates it) at ``start`` and the
    index right after it; None while it is incomplete. Raises RelayFailed on anything else."""
    end = buffer.find(b"\r\n", start)
    if end < 0:
        return None
    if buffer[start:start + 1] != b"*":
        raise RelayFailed(f"the source sent {bytes(buffer[start:start + 40])!r} where a command was expected")
    count = int(buffer[start + 1:end])
    position = end + 2
    args: list[bytes] = []
    for _ in range(count):
        end = buffer.find(b"\r\n", position)
        if end < 0:
            return None
        if buffer[position:position + 1] != b"$":
            raise RelayFailed(f"the source sent {bytes(buffer[position:position + 40])!r} inside a command")
        size = int(buffer[position + 1:end])
        data_start = end + 2
        if len(buffer) < data_start + size + 2:
            return None
        args.append(bytes(buffer[data_start:data_start + size]))
        position = data_start + size + 2
    return args, position


class Relay:
    """One source's replication stream, relayed to one target; see the module docstring."""

    def __init__(self, source: NodeAccess, *, name: str = "cachefleet-relay") -> None:
        self.source = source
        self.name = name
        self.offset = 0  # the source's offset of everything the target has answered
        self.applied = 0  # commands applied to the target
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def full_sync(self, sink: Callable[[memoryview], object], *, timeout: float = 3600.0) -> SyncPoint:
        """Connects to the source as a replica and hands its RDB to ``sink``."""
        where = f"{self.source.address}:{self.source.port}"
        try:
            reader, writer = await self.source.stream(timeout=HANDSHAKE_TIMEOUT, limit=CHUNK_SIZE)
        except AccessDenied as error:
            raise RelayFailed(f"{where} refused the relay's credentials: {error}") from error
        except (OSError, TimeoutError) as error:
            raise RelayFailed(f"{where}: cannot connect: {error or type(error).__name__}") from error
        self._reader, self._writer = reader, writer
        try:
            for command in (("REPLCONF", "listening-port", "0"), ("REPLCONF", "capa", "eof", "capa", "psync2")):
                writer.write(encode(*command))
                reply = await asyncio.wait_for(reader.readline(), HANDSHAKE_TIMEOUT)
                if not reply.startswith(b"+"):
                    raise RelayFailed(f"{where} refused {' '.join(command)}: {reply.decode(errors='replace').strip()}")
            writer.write(encode("PSYNC", "?", "-1"))
            while True:
                line = await asyncio.wait_for(reader.readline(), HANDSHAKE_TIMEOUT)
                if not line:
                    raise RelayFailed(f"{where} closed the link before answering PSYNC")
                if line.strip():
                    break
            fields = line.decode(errors="replace").split()
            if len(fields) != 3 or fields[0] != "+FULLRESYNC":
                raise RelayFailed(f"{where} answered PSYNC with {line[:80]!r}")
            replication_id, offset = fields[1], int(fields[2])
            verifier = StreamVerifier()
            await read_payload(reader, sink, verifier, address=where, command="PSYNC",
                               deadline=time.monotonic() + timeout)
            facts = verifier.finish()
        except (SnapshotFailed, OSError, TimeoutError, ValueError) as error:
            await self.close()
            raise RelayFailed(f"{where}: the full sync failed: {error or type(error).__name__}") from error
        except BaseException:
            await self.close()
            raise
        self.offset = offset
        log.info("relay from %s: full sync at offset %d (%d RDB bytes)", where, offset, facts.size)
        return SyncPoint(replication_id, offset, facts)

    async def apply(self, target: NodeAccess) -> None:
        """Applies the stream to ``target`` until cancelled or the link fails (RelayFailed)."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            raise RelayFailed("apply needs a full sync first")
        where = f"{self.source.address}:{self.source.port}"
        try:
            to_reader, to_writer = await target.stream(timeout=HANDSHAKE_TIMEOUT, name=self.name)
        except (AccessDenied, OSError, TimeoutError) as error:
            raise RelayFailed(f"target {target.address}:{target.port}: cannot connect: {error}") from error
        replies = hiredis.Reader()
        buffer = bytearray()
        last_ack = 0.0
        try:
            while True:
                now = time.monotonic()
                if now - last_ack >= ACK_INTERVAL:
                    writer.write(encode("REPLCONF", "ACK", self.offset))
                    last_ack = now
                try:
                    data = await asyncio.wait_for(reader.read(CHUNK_SIZE), ACK_INTERVAL)
                except TimeoutError:
                    continue
                if not data:
                    raise RelayFailed(f"{where} ended the replication link at offset {self.offset}")
                buffer += data
                consumed = await self._apply_buffered(buffer, writer, to_reader, to_writer, replies)
                del buffer[:consumed]
                if consumed:
                    writer.write(encode("REPLCONF", "ACK", self.offset))
                    last_ack = time.monotonic()
        except (OSError, ValueError) as error:
            raise RelayFailed(f"relay from {where}: {error or type(error).__name__}") from error
        finally:
            await close_stream(to_writer)

    async def _apply_buffered(
        self, buffer: bytearray, source: asyncio.StreamWriter, to_reader: asyncio.StreamReader,
        to_writer: asyncio.StreamWriter, replies: hiredis.Reader,
    ) -> int:
        """Applies every complete command in ``buffer``; returns how many bytes they took."""
        position = batch_start = 0
        batch: list[bytes] = []
        while True:
            parsed = parse_command(buffer, position)
            if parsed is None:
                break
            args, end = parsed
            name = args[0].upper() if args else b""
            if name == b"PING" or (name == b"REPLCONF" and len(args) > 1 and args[1].upper() == b"GETACK"):
                # The link's own: answered where the source asks (its offset excludes the GETACK), not data.
                await self._flush(buffer, batch_start, position, batch, to_reader, to_writer, replies)
                if name == b"REPLCONF":
                    source.write(encode("REPLCONF", "ACK", self.offset))
                self.offset += end - position
                batch_start, batch, position = end, [], end
                continue
            batch.append(name)
            position = end
        await self._flush(buffer, batch_start, position, batch, to_reader, to_writer, replies)
        return position

    async def _flush(
        self, buffer: bytearray, start: int, end: int, names: list[bytes], to_reader: asyncio.StreamReader,
        to_writer: asyncio.StreamWriter, replies: hiredis.Reader,
    ) -> None:
        """Forwards ``buffer[start:end]`` (the commands ``names``) and waits for every reply."""
        if not names:
            return
        to_writer.write(bytes(buffer[start:end]))
        answered = 0
        while answered < len(names):
            reply = replies.gets()
            if reply is False:
                data = await to_reader.read(CHUNK_SIZE)
                if not data:
                    raise RelayFailed("the target closed the connection")
                replies.feed(data)
                continue
            if isinstance(reply, hiredis.ReplyError):
                raise RelayFailed(f"the target refused {names[answered].decode(errors='replace')}: {reply}")
            answered += 1
        self.offset += end - start
        self.applied += len(names)

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await close_stream(self._writer)
        self._reader = self._writer = None
