"""Taking an RDB out of a node: streamed while the engine writes it, or with no file at all.

``BGSAVE`` forks a child that writes ``temp-<child pid>.rdb`` in the engine's ``dir`` and renames
it to ``dbfilename`` when done. ``follow_bgsave`` reads that file as it grows and hands every
byte, in order, to a sink (an encrypting writer, a copy, a hash), so the copy-out and the
encryption overlap the save instead of following it; the RDB is verified (``StreamVerifier``)
in the same pass, and the file is removed from the node's dir once done, so a plain RDB
stays in the node's own directory only while it is being saved. A file is only ever
appended to until the rename, and our open descriptor keeps reading the same inode after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from cachefleet.engine.access import AccessDenied, NodeAccess, close_stream
from cachefleet.engine.admin import AdminClient, EngineError
from cachefleet.engine.rdb import RdbFacts, StreamVerifier
from cachefleet.engine.resp import encode

CHUNK_SIZE = 4 << 20
POLL = 0.005


class SnapshotFailed(Exception):
    """The engine could not save (its reason from INFO), or the saved file is not a whole RDB."""


async def _save_state(admin: AdminClient) -> tuple[bool, str]:
    info = await admin.info("persistence")
    return info.get("rdb_bgsave_in_progress") == "1", info.get("rdb_last_bgsave_status", "")


async def follow_bgsave(
    admin: AdminClient,
    data_dir: Path,
    sink: Callable[[memoryview], object],
    *,
    dbfilename: str = "dump.rdb",
    timeout: float = 3600.0,
    keep: bool = False,
) -> RdbFacts:
    """Runs BGSAVE on the node and streams the RDB to ``sink`` as it is written; its facts.

    ``data_dir`` is the engine's ``dir``. Raises SnapshotFailed (and removes what the save left)
    when the engine reports the save failed (a full disk, say) or the bytes do not verify.
    BGSAVE forks before it answers, so from its reply on, "no save in progress" means done.
    """
    existing = set(data_dir.glob("temp-*.rdb"))
    try:
        await admin.execute("BGSAVE")
    except EngineError as error:
        raise SnapshotFailed(f"BGSAVE refused: {error}") from error
    deadline = time.monotonic() + timeout
    verifier = StreamVerifier()
    handle = None
    try:
        # The child's file appears right after the fork; a tiny data set may be saved and
        # renamed before we look, in which case the finished file is read instead.
        while handle is None:
            in_progress, status = await _save_state(admin)
            candidates = sorted(set(data_dir.glob("temp-*.rdb")) - existing)
            if candidates:
                with contextlib.suppress(FileNotFoundError):
                    handle = open(candidates[0], "rb", buffering=0)  # noqa: SIM115 - closed in finally
            elif not in_progress:
                if status != "ok":
                    raise SnapshotFailed(f"the engine's background save failed (rdb_last_bgsave_status:{status})")
                handle = open(data_dir / dbfilename, "rb", buffering=0)  # noqa: SIM115
            if handle is None:
                if time.monotonic() > deadline:
                    raise SnapshotFailed(f"the background save did not finish within {timeout:.0f} s")
                await asyncio.sleep(POLL)
        buffer = bytearray(CHUNK_SIZE)
        view = memoryview(buffer)
        finished = False
        while True:
            count = handle.readinto(view)
            if count:
                verifier.update(view[:count])
                sink(view[:count])
                continue
            if finished:
                break
            in_progress, status = await _save_state(admin)
            if not in_progress:
                if status != "ok":
                    raise SnapshotFailed(f"the engine's background save failed (rdb_last_bgsave_status:{status})")
                finished = True  # read what is left, then stop at end of file
                continue
            if time.monotonic() > deadline:
                raise SnapshotFailed(f"the background save did not finish within {timeout:.0f} s")
            await asyncio.sleep(POLL)
        return verifier.finish()
    finally:
        if handle is not None:
            handle.close()
        if not keep:
            for leftover in [data_dir / dbfilename, *(set(data_dir.glob("temp-*.rdb")) - existing)]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)


class _EofMarkStream:
    """The payload of a diskless transfer: ``$EOF:<40-byte mark>\\r\\n`` + RDB + the same mark."""

    MARK_SIZE = 40

    def __init__(self, mark: bytes, sink: Callable[[memoryview], object], verifier: StreamVerifier) -> None:
        self._mark = mark
        self._sink = sink
        self._verifier = verifier
        self._held = bytearray()
        self.size = 0

    def feed(self, data: bytes) -> bool:
        """Takes the next bytes; True once the closing mark has arrived (nothing may follow)."""
        self._held += data
        if len(self._held) >= self.MARK_SIZE and self._held.endswith(self._mark):
            self._emit(len(self._held) - self.MARK_SIZE)
            self._held.clear()
            return True
        self._emit(len(self._held) - self.MARK_SIZE)
        return False

    def _emit(self, count: int) -> None:
        if count <= 0:
            return
        view = memoryview(self._held)[:count]
        self._verifier.update(view)
        self._sink(view)
        self.size += count
        view.release()
        del self._held[:count]


async def read_payload(
    reader: asyncio.StreamReader, sink: Callable[[memoryview], object], verifier: StreamVerifier, *,
    address: str, command: str, deadline: float,
) -> None:
    """Reads the RDB a node sends after SYNC or a PSYNC's +FULLRESYNC into ``sink`` (and ``verifier``):
    sized (``$<n>``, a disk-based sync) or diskless (``$EOF:<mark>`` ... mark). Raises SnapshotFailed."""
    while True:
        # Newlines are keep-alives sent while the fork prepares the payload.
        line = await asyncio.wait_for(reader.readline(), max(1.0, deadline - time.monotonic()))
        if not line:
            raise SnapshotFailed(f"{address} closed the connection before sending a snapshot")
        if line.strip():
            break
    if line.startswith(b"-"):
        raise SnapshotFailed(f"{address} refused {command}: {line.decode(errors='replace').strip()}")
    if line.startswith(b"$EOF:"):
        stream = _EofMarkStream(line[5:].strip(), sink, verifier)
        while True:
            data = await asyncio.wait_for(reader.read(CHUNK_SIZE), max(1.0, deadline - time.monotonic()))
            if not data:
                raise SnapshotFailed(f"{address} ended the snapshot after {stream.size} bytes, before its end mark")
            if stream.feed(data):
                break
    elif line.startswith(b"$"):
        # Disk-based sync (repl-diskless-sync no): the node saved a file and sends it sized.
        remaining = int(line[1:].strip())
        while remaining:
            data = await asyncio.wait_for(reader.read(min(CHUNK_SIZE, remaining)), max(1.0, deadline - time.monotonic()))
            if not data:
                raise SnapshotFailed(f"{address} ended the snapshot {remaining} bytes early")
            verifier.update(data)
            sink(memoryview(data))
            remaining -= len(data)
    else:
        raise SnapshotFailed(f"{address} answered {command} with {line[:60]!r}")


async def stream_rdb(
    access: NodeAccess,
    sink: Callable[[memoryview], object],
    *,
    timeout: float = 3600.0,
) -> RdbFacts:
    """A snapshot of the node streamed to ``sink`` without the node writing any file.

    Connects through the node's ``NodeAccess`` (its TLS and credentials) as an "rdb-only"
    replica (``REPLCONF capa eof``, ``REPLCONF rdb-only 1``, ``SYNC``, as ``valkey-cli --rdb``
    does): with ``repl-diskless-sync yes`` on the node (see ``diskless``) the engine
    forks as for BGSAVE and its child writes the RDB into our socket, so an encrypted
    snapshot costs one disk write (ours, encrypted) instead of two. Verified in the same pass.
    A replica node serves it only while its link to its primary is up. An exception raised
    by ``sink`` (a full disk, say) ends the stream and is raised as SnapshotFailed.
    """
    address, port = access.address, access.port
    try:
        reader, writer = await access.stream(timeout=10, limit=CHUNK_SIZE)
    except AccessDenied as error:
        raise SnapshotFailed(f"{address}:{port} refused the control plane's credentials: {error}") from error
    except (OSError, TimeoutError) as error:
        raise SnapshotFailed(f"{address}:{port}: cannot connect: {error or type(error).__name__}") from error
    verifier = StreamVerifier()
    try:
        commands: list[tuple[str, ...]] = []
        commands += [("REPLCONF", "capa", "eof"), ("REPLCONF", "rdb-only", "1"), ("SYNC",)]
        for command in commands[:-1]:
            writer.write(encode(*command))
            reply = await asyncio.wait_for(reader.readline(), 10)
            if not reply.startswith(b"+"):
                raise SnapshotFailed(f"{address}:{port} refused {command[0]}: {reply.decode(errors='replace').strip()}")
        writer.write(encode(*commands[-1]))
        await read_payload(reader, sink, verifier, address=f"{address}:{port}", command="SYNC",
                           deadline=time.monotonic() + timeout)
        return verifier.finish()
    except (OSError, TimeoutError) as error:
        raise SnapshotFailed(f"{address}:{port}: the snapshot stream failed: {error or type(error).__name__}") from error
    finally:
        await close_stream(writer)


@contextlib.asynccontextmanager
async def diskless(admin: AdminClient) -> AsyncIterator[None]:
    """``repl-diskless-sync yes`` with no delay on the node for the duration, then as it was.

    Meant for the node a snapshot is taken from (an in-sync replica, which serves no replica
    of its own): a replica that syncs from it meanwhile would get a diskless sync too.
    """
    before = {name: await admin.config_get(name) for name in ("repl-diskless-sync", "repl-diskless-sync-delay")}
    await admin.config_set("repl-diskless-sync", "yes")
    await admin.config_set("repl-diskless-sync-delay", "0")
    try:
        yield
    finally:
        for name, value in before.items():
            await admin.config_set(name, value)
