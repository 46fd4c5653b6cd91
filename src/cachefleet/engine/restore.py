"""Restoring an RDB's keys: into nodes of the same shape (the file placed before start-up), or
into any other shape (keys moved by hash slot from a temporary engine that loaded the file).

**Same shape.** Each shard's RDB goes into its new primary's data directory, named as the
engine's ``dbfilename`` (``dump.rdb``, the default Cachefleet never changes) in its ``dir``
(``<node>/data``), before the engine starts: the engine loads it at its own speed, before it
answers PING (``-LOADING`` meanwhile), and its replicas take a full sync from it. What has to
change for that, see ``place_rdb``.

**Another shape.** A temporary standalone engine of the *target's* build loads each snapshot
RDB (the target must read the DUMP payloads it sends, and a newer build's payloads are
refused by an older one); ``move_keys`` then SCANs it and sends each key to the primary
owning the key's slot with pipelined ``MIGRATE ... REPLACE KEYS k1 .. kn``, batched per target
over several lanes. MIGRATE carries each key's remaining TTL and serialized value (every type
DUMP knows: strings, hashes, lists, sets, sorted sets, streams with their consumer groups
and pending entries, HyperLogLogs, geo sets), and deletes it from the source once the target
has it: so an interrupted move is resumed by running it again against the same source (what
is left on the source is exactly what is still to move), and it is done when the source is
empty. ``method="dump"`` does the same with DUMP + PEXPIRETIME on the source and RESTORE
... ABSTTL REPLACE on the target through our own connections, for targets the source cannot
reach itself (TLS, credentials it should not hold).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from redis.exceptions import ResponseError

from cachefleet.engine.access import NodeAccess
from cachefleet.engine.admin import AdminClient, EngineError
from cachefleet.engine.cluster import view
from cachefleet.engine.keyslot import SLOTS, key_slot

log = logging.getLogger(__name__)

DBFILENAME = "dump.rdb"
SCAN_COUNT = 1000
BATCH = 500
LANES = 4
MIGRATE_TIMEOUT_MS = 60000
ALL_SLOTS = frozenset(range(SLOTS))


class RestoreFailed(Exception):
    """Keys could not be moved; the message names the target and the engine's answer."""


@dataclass(frozen=True)
class RestoreTarget:
    """A primary that receives keys, and the slots it owns (all of them when cluster mode is off).

    ``username``/``password`` are what the source presents to it (MIGRATE ... AUTH2), or what
    our own connection uses with ``method="dump"``; a target with a ``ca_file`` speaks TLS
    only, so it is always reached through our own connections (``method="dump"``).
    """

    address: str
    port: int
    slots: frozenset[int] = ALL_SLOTS
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None

    @classmethod
    def of(cls, access: NodeAccess, slots: frozenset[int] = ALL_SLOTS) -> RestoreTarget:
        return cls(access.address, access.port, slots, access.username, access.password, access.ca_file)

    @property
    def access(self) -> NodeAccess:
        return NodeAccess(self.address, self.port, self.ca_file, self.username, self.password)

    @property
    def name(self) -> str:
        return f"{self.address}:{self.port}"


@dataclass(frozen=True)
class RestoreResult:
    """What one source's move did, and how long it took.

    ``keys`` is how many keys the source no longer holds (moved, or expired meanwhile);
    ``sent`` counts the names sent to each target (``address:port``): SCAN may return a key
    twice, and MIGRATE skips a name already gone, so ``sent`` can exceed ``keys`` a little.
    """

    keys: int
    sent: dict[str, int]
    seconds: float
    passes: int


Progress = Callable[[int], None]  # called with the number of keys just moved
Batches = asyncio.Queue[tuple[int, list[bytes]] | None]  # (target index, keys); None: no more


def slot_owners(targets: Sequence[RestoreTarget]) -> list[int]:
    """For each of the 16384 slots, the index of the target owning it; ValueError unless each slot has exactly one."""
    owners = [-1] * SLOTS
    for index, target in enumerate(targets):
        for slot in target.slots:
            if owners[slot] != -1:
                raise ValueError(f"slot {slot} is owned by both {targets[owners[slot]].name} and {target.name}")
            owners[slot] = index
    missing = owners.count(-1)
    if missing:
        first = owners.index(-1)
        raise ValueError(f"{missing} slots have no target (the first is {first}): every slot must be owned to restore")
    return owners


def group_by_target(keys: Sequence[bytes], owners: Sequence[int], count: int) -> list[list[bytes]]:
    """The keys split by the index of the target owning their slot."""
    groups: list[list[bytes]] = [[] for _ in range(count)]
    if count == 1:
        groups[0].extend(keys)
        return groups
    for key in keys:
        groups[owners[key_slot(key)]].append(key)
    return groups


def _migrate(target: RestoreTarget, keys: Sequence[bytes], timeout_ms: int) -> tuple[Any, ...]:
    auth: tuple[str, ...] = ()
    if target.password is not None:
        auth = ("AUTH2", target.username or "default", target.password)
    return ("MIGRATE", target.address, target.port, "", 0, timeout_ms, "REPLACE", *auth, "KEYS", *keys)


async def move_keys(
    source_access: NodeAccess,
    targets: Sequence[RestoreTarget],
    *,
    method: Literal["migrate", "dump"] = "migrate",
    lanes: int = LANES,
    batch: int = BATCH,
    timeout_ms: int = MIGRATE_TIMEOUT_MS,
    progress: Progress | None = None,
    max_passes: int = 3,
) -> RestoreResult:
    """Moves every key of ``source`` to the target owning its slot; returns the counts.

    ``source_access`` reaches a standalone engine nobody else writes to. Opens ``lanes`` + 1
    connections to it (and, with ``method="dump"``, one per lane to each target) through
    NodeAccess; closes them all.
    """
    owners = slot_owners(targets)
    if method == "migrate" and any(t.ca_file is not None for t in targets):
        method = "dump"  # the source engine would have to speak TLS to the target itself
    started = time.perf_counter()
    source = source_access.admin(timeout=timeout_ms / 1000 + 5, name="cachefleet-restore")
    try:
        before = int(await source.execute("DBSIZE"))
        if method == "migrate":
            # The source is a throw-away engine: its DUMP payloads need not be compressed, and
            # without LZF the source spent half as long per MIGRATE of 1 KB values (measured with
            # INFO commandstats: ~20 -> ~10 µs per key).
            await source.config_set("rdbcompression", "no")
    except BaseException:
        await source.close()
        raise
    by_target = [0] * len(targets)
    passes = 0
    lane_clients = [
        source_access.admin(timeout=timeout_ms / 1000 + 5, name="cachefleet-restore") for _ in range(lanes)
    ]
    target_clients: list[list[AdminClient]] = []
    if method == "dump":
        # Logged in by NodeAccess (TLS and credentials of each target).
        target_clients = [
            [t.access.admin(timeout=timeout_ms / 1000 + 5, name="cachefleet-restore") for t in targets]
            for _ in range(lanes)
        ]

    async def send(number: int, index: int, keys: list[bytes]) -> None:
        if method == "migrate":
            await _send_migrate(lane_clients[number], targets[index], keys, timeout_ms)
        else:
            await _send_dump(lane_clients[number], target_clients[number][index], targets[index], keys)
        by_target[index] += len(keys)
        if progress is not None:
            progress(len(keys))

    try:
        while True:
            passes += 1
            queue: Batches = asyncio.Queue(maxsize=lanes * 2)
            workers = [asyncio.create_task(_lane(queue, number, send)) for number in range(lanes)]
            try:
                await _scan_into(source, queue, owners, len(targets), batch, workers)
                await asyncio.gather(*workers)
            except BaseException:
                for worker in workers:
                    worker.cancel()
                done = await asyncio.gather(*workers, return_exceptions=True)
                failed = [d for d in done if isinstance(d, Exception)]
                if failed:
                    raise failed[0] from None
                raise
            left = int(await source.execute("DBSIZE"))
            if left == 0:
                break
            if passes >= max_passes:
                raise RestoreFailed(f"{left} keys are still on {source.address}:{source.port} after {passes} passes")
            log.info("%d keys left on %s:%s after pass %d; scanning again", left, source.address, source.port, passes)
    finally:
        await source.close()
        for client in lane_clients:
            await client.close()
        for per_lane in target_clients:
            for client in per_lane:
                await client.close()
    return RestoreResult(
        keys=before,
        sent={t.name: n for t, n in zip(targets, by_target, strict=True)},
        seconds=time.perf_counter() - started,
        passes=passes,
    )


async def _lane(queue: Batches, number: int, send: Callable[[int, int, list[bytes]], Awaitable[None]]) -> None:
    while True:
        item = await queue.get()
        if item is None:
            return
        await send(number, *item)


async def _scan_into(
    source: AdminClient,
    queue: Batches,
    owners: Sequence[int],
    count: int,
    batch: int,
    workers: Sequence[asyncio.Task[None]],
) -> None:
    """SCANs the source once, feeding full batches per target to the lanes, then the remainders."""
    pending: list[list[bytes]] = [[] for _ in range(count)]
    cursor = b"0"
    while True:
        reply = await source.execute("SCAN", cursor, "COUNT", SCAN_COUNT)
        cursor, keys = reply[0], reply[1]
        for index, keys_of_target in enumerate(group_by_target(keys, owners, count)):
            bucket = pending[index]
            bucket.extend(keys_of_target)
            while len(bucket) >= batch:
                await _put(queue, (index, bucket[:batch]), workers)
                del bucket[:batch]
        if cursor in (b"0", 0, "0"):
            break
    for index, bucket in enumerate(pending):
        if bucket:
            await _put(queue, (index, bucket), workers)
    for _ in workers:
        await _put(queue, None, workers)


async def _put(queue: asyncio.Queue[Any], item: Any, workers: Sequence[asyncio.Task[None]]) -> None:
    """queue.put, unless a lane has failed (the caller raises its error)."""
    while True:
        if any(w.done() and not w.cancelled() and w.exception() is not None for w in workers):
            raise RestoreFailed("a lane failed")
        try:
            await asyncio.wait_for(queue.put(item), 1.0)
            return
        except TimeoutError:
            continue


async def _send_migrate(lane: AdminClient, target: RestoreTarget, keys: Sequence[bytes], timeout_ms: int) -> None:
    (reply,) = await lane.pipeline([_migrate(target, keys, timeout_ms)])
    if isinstance(reply, ResponseError):
        raise RestoreFailed(f"MIGRATE to {target.name} failed: {reply}")
    # OK, or NOKEY when every key of the batch expired (or was moved by an earlier pass) meanwhile.


async def _send_dump(lane: AdminClient, client: AdminClient, target: RestoreTarget, keys: Sequence[bytes]) -> None:
    commands: list[tuple[Any, ...]] = []
    for key in keys:
        commands += [("DUMP", key), ("PEXPIRETIME", key)]
    replies = await lane.pipeline(commands)
    restores: list[tuple[Any, ...]] = []
    present: list[bytes] = []
    for key, payload, expires in zip(keys, replies[0::2], replies[1::2], strict=True):
        if isinstance(payload, ResponseError) or isinstance(expires, ResponseError):
            raise RestoreFailed(f"DUMP of a key on {lane.address}:{lane.port} failed: {payload}")
        if payload is None or expires == -2:
            continue  # expired meanwhile
        restores.append(("RESTORE", key, max(int(expires), 0), payload, "REPLACE", "ABSTTL"))
        present.append(key)
    for key, reply in zip(present, await client.pipeline(restores), strict=True):
        if isinstance(reply, ResponseError):
            raise RestoreFailed(f"RESTORE of {key!r} on {target.name} failed: {reply}")
    if present:
        await lane.pipeline([("UNLINK", *present)])


async def move_all(
    sources: Sequence[NodeAccess],
    targets: Sequence[RestoreTarget],
    **options: Any,
) -> list[RestoreResult]:
    """``move_keys`` from every source at once (one temporary engine per snapshot shard)."""
    return list(await asyncio.gather(*(move_keys(source, targets, **options) for source in sources)))


async def targets_of_cluster(admin: AdminClient, access: NodeAccess | None = None) -> list[RestoreTarget]:
    """The primaries of a cluster as one of its nodes sees them, with their slots; ``access``
    gives their TLS and credentials (every node of a cluster has the same)."""
    seen = await view(admin)
    return [
        RestoreTarget(
            address=node.address, port=node.port, slots=node.slots,
            username=access.username if access else None, password=access.password if access else None,
            ca_file=access.ca_file if access else None,
        )
        for node in seen.nodes.values()
        if node.is_primary and node.slots
    ]


def plan_seeds(
    sources: Sequence[frozenset[int]], targets: Sequence[frozenset[int]], *, sizes: Sequence[int] | None = None
) -> dict[int, int]:
    """Which snapshot shard each new shard can start from: {target index: source index}.

    A target can load a source's RDB at start-up (the fast path) when it owns every slot of
    that source: a cluster-mode node takes the slots of the keys it loads, so it must not
    load another shard's keys. Each target loads at most one RDB, the biggest by ``sizes``
    (RDB bytes); every source not chosen goes through a temporary engine and ``move_keys``.
    3 shards into 2 seed both new shards and move one third of the keys; 2 into 3 seed none.
    """
    weights = list(sizes) if sizes is not None else [len(s) for s in sources]
    plan: dict[int, int] = {}
    for source_index, slots in enumerate(sources):
        for target_index, owned in enumerate(targets):
            if slots and slots <= owned:
                chosen = plan.get(target_index)
                if chosen is None or weights[source_index] > weights[chosen]:
                    plan[target_index] = source_index
                break
    return plan


# ---------------------------------------------------------------------------- same shape


def place_rdb(rdb: Path, data_dir: Path, *, dbfilename: str = DBFILENAME) -> Path:
    """Puts an RDB where a node's engine loads it at start-up: ``<data_dir>/<dbfilename>``, 0600.

    Call it after the provider has emptied ``data_dir`` and before the engine starts. A hard
    link when the snapshot is on the same file system (instant, and safe: engines never write
    an RDB in place, they write a temporary file and rename it, or unlink it), else a copy
    that appears under its name only once complete. An encrypted snapshot is decrypted
    straight to that path instead (``encryption.decrypt_file``): the plain RDB then exists
    only in the node's own directory.

    Today ``LocalProvider.start`` removes ``data/`` and creates it empty right before it
    spawns the engine, so there is no moment to place the file: ``start`` needs a
    ``seed: Callable[[Path], None] | None`` (or a path) run between that mkdir and
    ``posix_spawn``. Its START_TIMEOUT (15 s) then has to allow for loading (~480 MB/s here:
    a 7 GB RDB needs ~15 s): while loading the engine answers PING with ``-LOADING``, so
    ``_wait_ready`` should keep waiting as long as that reply comes (or INFO
    persistence shows ``loading:1`` with a growing ``loading_loaded_bytes``).
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    destination = data_dir / dbfilename
    temporary = data_dir / f".{dbfilename}.placing"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    try:
        os.link(rdb, temporary)
    except OSError:
        shutil.copyfile(rdb, temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
    os.chmod(temporary, 0o600)
    os.replace(temporary, destination)
    return destination


async def wait_loaded(admin: AdminClient, *, timeout: float = 600.0) -> int:
    """Until the engine has loaded its RDB and serves; its key count (DBSIZE)."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            return int(await admin.execute("DBSIZE"))
        except EngineError as error:
            if "LOADING" not in str(error) and "Connection" not in str(error) and "connect" not in str(error):
                raise
        if time.monotonic() > deadline:
            raise RestoreFailed(f"{admin.address}:{admin.port} did not finish loading within {timeout:.0f} s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


class StreamedSeed:
    """Feeds an RDB to an engine at start-up through a FIFO named ``<data_dir>/<dbfilename>``.

    For an encrypted snapshot: the decryption writes straight into the engine's loading, so
    the two overlap (instead of decrypting to disk first) and the plain RDB never reaches a
    disk at all. Use: ``with StreamedSeed(data_dir, produce):`` around the engine's start;
    ``produce(writer)`` writes the whole RDB (``decrypt_stream(..., writer, ...)``). If it
    fails, the engine sees a short file and exits at start-up (it never serves half a file);
    the error is raised from ``__exit__``.

    Measured: Valkey 8.1 opens the file once more after loading it, Redis 7.0 after failing
    to (it checks the file before it exits), and each blocks in that open until a writer
    appears; the seed answers such opens with an empty write side until it is closed (once
    the engine answers, or has exited), then removes the FIFO.
    """

    def __init__(self, data_dir: Path, produce: Callable[[Any], object], *, dbfilename: str = DBFILENAME) -> None:
        self.path = data_dir / dbfilename
        self._produce = produce
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rdb-seed", daemon=True)

    def __enter__(self) -> StreamedSeed:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.mkfifo(self.path, 0o600)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            descriptor = self._open_writer(block=True)
            if descriptor is None:
                return
            # Opened non-blocking (to poll for the reader); the writes themselves must block.
            os.set_blocking(descriptor, True)
            with open(descriptor, "wb", buffering=0) as writer:
                self._produce(writer)
        except BaseException as error:  # noqa: BLE001 - handed to the caller in __exit__
            self._error = error
        # Further opens by the engine get an empty file (end of file at once): Valkey 8.1
        # opens it again after a load, and Redis 7.0 after a failed one (to check the file).
        while not self._done.is_set():
            descriptor = self._open_writer(block=False)
            if descriptor is not None:
                os.close(descriptor)
            self._done.wait(0.001)

    def _open_writer(self, *, block: bool) -> int | None:
        while not self._done.is_set():
            try:
                return os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as error:
                if error.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
            if not block:
                return None
            self._done.wait(0.001)
        return None

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join(timeout=30)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self._error is not None and exc_info[0] is None:
            raise RestoreFailed(f"the RDB could not be streamed into {self.path.parent}: {self._error}") from self._error
