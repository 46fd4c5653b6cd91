"""Taking an RDB out of a node while the engine writes it.

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
from collections.abc import Callable
from pathlib import Path

from cachefleet.engine.admin import AdminClient, EngineError
from cachefleet.engine.rdb import RdbFacts, StreamVerifier

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
