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
import collections
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
_LINK = (None, b"GETACK")  # the pending entries of the link's own commands (no reply from the target)


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
        self._parsed = 0  # the source's offset of everything read and sent on to the target
        self._pending: collections.deque[tuple[bytes | None, int]] = collections.deque()
        self._acked, self._acked_at = -1, 0.0
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
        """Applies the stream to ``target`` until cancelled or the link fails (RelayFailed).

        Two halves, pipelined: ``_forward`` reads the source, parses whole commands and writes them
        to the target as they come; ``_acknowledge`` reads the target's replies in order, moves
        ``offset`` past each answered command and acknowledges it to the source. Neither waits for
        the other, so a burst of writes costs one round trip to the target, not one per read."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            raise RelayFailed("apply needs a full sync first")
        try:
            to_reader, to_writer = await target.stream(timeout=HANDSHAKE_TIMEOUT, name=self.name)
        except (AccessDenied, OSError, TimeoutError) as error:
            raise RelayFailed(f"target {target.address}:{target.port}: cannot connect: {error}") from error
        # What the target has yet to answer, in order: (command name, the source's offset after it);
        # a name of None is the link's own (PING, GETACK: no reply), b"GETACK" to be acknowledged.
        self._pending = collections.deque()
        self._parsed = self.offset
        halves = [asyncio.create_task(self._forward(reader, writer, to_writer)),
                  asyncio.create_task(self._acknowledge(writer, to_reader))]
        try:
            done, _ = await asyncio.wait(halves, return_when=asyncio.FIRST_EXCEPTION)
            for half in done:
                half.result()
        except (OSError, ValueError) as error:
            where = f"{self.source.address}:{self.source.port}"
            raise RelayFailed(f"relay from {where}: {error or type(error).__name__}") from error
        finally:
            for half in halves:
                half.cancel()
            await asyncio.gather(*halves, return_exceptions=True)
            await close_stream(to_writer)

    async def _forward(
        self, reader: asyncio.StreamReader, source: asyncio.StreamWriter, to_writer: asyncio.StreamWriter,
    ) -> None:
        where = f"{self.source.address}:{self.source.port}"
        buffer = bytearray()
        while True:
            try:
                data = await asyncio.wait_for(reader.read(CHUNK_SIZE), ACK_INTERVAL)
            except TimeoutError:
                self._ack(source)  # as a replica's cron: the source's lag figure and min-replicas use it
                continue
            if not data:
                raise RelayFailed(f"{where} ended the replication link at offset {self.offset}")
            buffer += data
            position = start = 0
            while (parsed := parse_command(buffer, position)) is not None:
                args, end = parsed
                name = args[0].upper() if args else b""
                if name == b"PING" or (name == b"REPLCONF" and len(args) > 1 and args[1].upper() == b"GETACK"):
                    # The link's own, not data: never forwarded. A GETACK is answered with the offset of
                    # what the target has answered before it (the offset excludes the GETACK itself).
                    if position > start:
                        to_writer.write(bytes(buffer[start:position]))
                    start = end
                    marker = b"GETACK" if name == b"REPLCONF" else None
                    if not self._pending:
                        if marker is not None:
                            self._ack(source, force=True)
                        self.offset = self._parsed = self._parsed + end - position
                    else:
                        self._parsed += end - position
                        self._pending.append((marker, self._parsed))
                else:
                    self._parsed += end - position
                    self._pending.append((name, self._parsed))
                position = end
            if position > start:
                to_writer.write(bytes(buffer[start:position]))
            del buffer[:position]
            await to_writer.drain()

    async def _acknowledge(self, source: asyncio.StreamWriter, to_reader: asyncio.StreamReader) -> None:
        replies = hiredis.Reader()
        while True:
            reply = replies.gets()
            if reply is False:
                self._ack(source)  # everything read so far is answered: say so before waiting for more
                data = await to_reader.read(CHUNK_SIZE)
                if not data:
                    raise RelayFailed("the target closed the connection")
                replies.feed(data)
                continue
            if not self._pending or self._pending[0][0] in _LINK:
                raise RelayFailed(f"the target answered a command the relay did not send: {reply!r}")
            name, after = self._pending.popleft()
            assert name is not None
            if isinstance(reply, hiredis.ReplyError):
                raise RelayFailed(f"the target refused {name.decode(errors='replace')}: {reply}")
            self.offset = after
            self.applied += 1
            while self._pending and self._pending[0][0] in _LINK:
                marker, after = self._pending.popleft()
                if marker is not None:
                    self._ack(source, force=True)
                self.offset = after

    def _ack(self, source: asyncio.StreamWriter, *, force: bool = False) -> None:
        """REPLCONF ACK of ``offset``: when it moved, a second after the last, or asked (GETACK)."""
        if force or self.offset != self._acked or time.monotonic() - self._acked_at >= ACK_INTERVAL:
            source.write(encode("REPLCONF", "ACK", self.offset))
            self._acked, self._acked_at = self.offset, time.monotonic()

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await close_stream(self._writer)
        self._reader = self._writer = None
