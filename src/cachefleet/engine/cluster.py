"""Redis Cluster mechanics: reading a node's view of the cluster, and moving slots with their keys.

Slot ranges are written as ElastiCache writes them: ``0-5461,10923-16383``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from cachefleet.domain.slots import SLOTS, parse, ranges_of
from cachefleet.engine.admin import AdminClient, EngineError

__all__ = [
    "SLOTS", "ClusterNode", "ClusterView", "MigrateBudget", "SlotMigration", "SlotMigrationFailed", "SlotMigrationRefused",
    "add_slots", "atomic_slot_migration", "migrate_slots", "migrate_slots_atomically", "parse_nodes", "slot_migrations", "view",
    "atomic_jobs", "wait_for_exports",
]
MIGRATE_BATCH = 1000
MIGRATE_TIMEOUT_MS = 10000
# The MIGRATE work one source has in flight at once, in seconds of its own time (see MigrateBudget).
MIGRATE_BUDGET = 0.05
# Keys of a source's first MIGRATE pipeline, before its cost per key is known: small, so that a
# source of large values is not blocked by the very first guess.
FIRST_KEYS = 16
MAX_KEYS = 16 * MIGRATE_BATCH
# How often a budget reads its source's own MIGRATE time (INFO commandstats).
CALIBRATE_EVERY = 0.2
# The first Valkey release that moves slots by itself (atomic slot migration, CLUSTER MIGRATESLOTS).
ATOMIC_SLOT_MIGRATION_MAJOR = 9
# How often the control plane reads a source's slot migration jobs (CLUSTER GETSLOTMIGRATIONS).
SLOT_MIGRATION_POLL = 0.05
FINISHED = frozenset({"success", "failed", "cancelled"})
# Keys one atomic slot migration job moves at most. When a job ends, the source deletes the keys it
# handed over in its main thread: measured on Valkey 9.1, 500,000 keys of 1 KB held it 0.86 s (a
# health probe calls a node hung after 0.5 s without a PING reply); jobs of ~31,000 keys, 0.1 s. Each
# job costs ~0.4 s beyond its keys: 0.5 GB moved in 8.9 s as 21 jobs of 25,000 keys, in 6.4 s as 11 of
# 50,000 (bench/serverless_scale.py, no failover either way).
ATOMIC_JOB_KEYS = 50_000


@dataclass(frozen=True)
class ClusterNode:
    """One line of ``CLUSTER NODES``."""

    node_id: str
    address: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    config_epoch: int
    connected: bool
    slots: frozenset[int]
    migrating: dict[int, str] = field(default_factory=dict)  # slot -> destination id
    importing: dict[int, str] = field(default_factory=dict)  # slot -> source id

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags

    @property
    def healthy(self) -> bool:
        return self.connected and not (self.flags & {"fail", "fail?", "handshake", "noaddr"})


@dataclass(frozen=True)
class ClusterView:
    """What one node believes about the cluster."""

    myself: ClusterNode
    nodes: dict[str, ClusterNode]

    def knows(self, node_id: str) -> bool:
        node = self.nodes.get(node_id)
        return node is not None and not (node.flags & {"handshake", "noaddr"})


def parse_nodes(text: str) -> ClusterView:
    nodes: dict[str, ClusterNode] = {}
    myself: ClusterNode | None = None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        node_id, endpoint, flags_text, master, _, _, epoch, link = parts[:8]
        hostport = endpoint.split("@", 1)[0].split(",", 1)[0]
        host, _, port = hostport.rpartition(":")
        slots: set[int] = set()
        migrating: dict[int, str] = {}
        importing: dict[int, str] = {}
        for item in parts[8:]:
            if item.startswith("["):
                body = item.strip("[]")
                if "->-" in body:
                    slot, other = body.split("->-")
                    migrating[int(slot)] = other
                elif "-<-" in body:
                    slot, other = body.split("-<-")
                    importing[int(slot)] = other
                continue
            slots.update(parse(item))
        flags = frozenset(flags_text.split(","))
        node = ClusterNode(
            node_id=node_id,
            address=host,
            port=int(port) if port.isdigit() else 0,
            flags=flags,
            master_id=None if master == "-" else master,
            config_epoch=int(epoch) if epoch.isdigit() else 0,
            connected=link == "connected",
            slots=frozenset(slots),
            migrating=migrating,
            importing=importing,
        )
        nodes[node_id] = node
        if "myself" in flags:
            myself = node
    if myself is None:
        raise ValueError("CLUSTER NODES has no 'myself' line")
    return ClusterView(myself=myself, nodes=nodes)


async def view(admin: AdminClient) -> ClusterView:
    return parse_nodes(await admin.text("CLUSTER", "NODES"))


async def slot_map_node_ids(admin: AdminClient) -> set[str]:
    """The ids of the nodes the node's ``CLUSTER SLOTS`` lists: what a cluster client learns from it.
    An engine leaves out a replica it has not yet seen hold data (replication offset 0 in the
    cluster bus), which it sees a moment after the replica's sync, and a primary without slots."""
    found: set[str] = set()
    for entry in await admin.execute("CLUSTER", "SLOTS"):
        for node in entry[2:]:
            if len(node) > 2:
                found.add(_text(node[2]))
    return found


async def add_slots(admin: AdminClient, slots: Iterable[int]) -> None:
    args: list[str] = []
    for low, high in ranges_of(slots):
        args += [str(low), str(high)]
    if args:
        await admin.execute("CLUSTER", "ADDSLOTSRANGE", *args)


def _raise_errors(admin: AdminClient, what: str, slots: Sequence[int], replies: Sequence[Any], *, tolerate: str = "") -> None:
    for slot, reply in zip(slots, replies, strict=True):
        if isinstance(reply, ResponseError) and not (tolerate and tolerate in str(reply)):
            raise EngineError(f"{admin.address}:{admin.port}: {what} of slot {slot}: {reply}")


class MigrateBudget:
    """The key moves of one source primary, kept to ``seconds`` of its time in flight.

    MIGRATE blocks the source until the target has the keys, and an engine runs the whole
    pipeline a connection sent before it reads the next connection, so a client's command -- and
    the health probe's PING -- waits behind every MIGRATE already sent to that source. Counting
    pipelines does not bound that wait: 8 pipelines of 16 slots of 1 KB values kept a source
    silent for 0.6-0.9 s on a loaded box (the hang detector failed it over, RELIABILITY.md known
    failure 3), while dense small keys need several pipelines in flight to keep the source busy.
    So the budget learns what a key costs this source and lets the lanes have at most
    ``seconds`` of that work in flight, one pipeline carrying at most that much (at least one key).
    The cost comes from the source's own account of its MIGRATE time (INFO commandstats, read
    every CALIBRATE_EVERY s: microseconds spent in MIGRATE per key answered since the last read);
    until the first such read, from the time the replies took (not counting time queued behind
    the lanes' other pipelines). Reply times alone also count the control plane's delay in reading
    64 lanes' replies, which on a loaded box made the budget throttle a source that was idle.
    """

    def __init__(self, seconds: float = MIGRATE_BUDGET, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self.per_key: float | None = None  # seconds of the source's time a key takes, learnt
        self._in_flight = 0.0  # estimated seconds of the pipelines sent and not answered
        self._pipelines = 0  # how many: a float sum need not come back to exactly 0.0
        self._last_reply = 0.0
        self._changed = asyncio.Condition()
        self._answered = 0  # keys of the pipelines answered
        self._calibration: tuple[float, int] | None = None  # (MIGRATE usec, keys answered) at the last read
        self._calibrated_at: float | None = None
        self._calibrating = False
        self._from_source = False
        self.sent = 0  # pipelines sent, keys in them, and the most in flight at once (for the log)
        self.sent_keys = 0
        self.most_in_flight = 0

    def summary(self) -> str:
        per_key = "unknown" if self.per_key is None else f"{self.per_key * 1e6:.1f} us"
        return (f"{self.sent} MIGRATE pipelines of {self.sent_keys / max(1, self.sent):.0f} keys on average, "
                f"at most {self.most_in_flight} at once; last cost per key {per_key}")

    def keys(self) -> int:
        """How many keys the next pipeline may carry."""
        if self.per_key is None:
            return FIRST_KEYS
        return max(1, min(MAX_KEYS, int(self.seconds / self.per_key)))

    def cost(self, keys: int) -> float:
        """The estimated time of a pipeline of ``keys`` (unknown cost: the whole budget)."""
        return self.seconds if self.per_key is None else keys * self.per_key

    def learn(self, keys: int, service: float) -> None:
        observed = service / max(1, keys)
        # Moves up at once (a heavier slot must not block the source twice) and down gently.
        self.per_key = observed if self.per_key is None or observed > self.per_key else 0.7 * self.per_key + 0.3 * observed

    def learn_from_source(self, migrate_usec: float, answered: int) -> None:
        """One reading of the source's total MIGRATE time against the keys answered so far."""
        if self._calibration is not None:
            usec, keys = self._calibration
            if answered > keys and migrate_usec >= usec:
                if not self._from_source:
                    self.per_key = None  # the reply-time estimate is biased up: the first reading replaces it
                    self._from_source = True
                self.learn(answered - keys, (migrate_usec - usec) / 1e6)
        self._calibration = (migrate_usec, answered)

    async def calibrate(self, source: AdminClient) -> None:
        """Reads the source's own MIGRATE time when CALIBRATE_EVERY has passed since the last read."""
        now = self._clock()
        if self._calibrating or (self._calibrated_at is not None and now - self._calibrated_at < CALIBRATE_EVERY):
            return
        self._calibrating = True
        try:
            answered = self._answered
            stats = (await source.info("commandstats")).get("cmdstat_migrate", "")
        finally:
            self._calibrating = False
        self._calibrated_at = now
        fields = dict(item.partition("=")[::2] for item in stats.split(","))
        if fields.get("usec", "").isdigit():
            self.learn_from_source(float(fields["usec"]), answered)

    @contextlib.asynccontextmanager
    async def moving(self, keys: int) -> AsyncIterator[None]:
        """Holds ``keys``' share of the budget while their MIGRATE pipeline runs."""
        cost = self.cost(keys)
        async with self._changed:
            # Alone, a pipeline goes whatever its cost (its cost per key may have been learnt after
            # its keys were counted): waiting for a budget it can never fit would wait for ever.
            await self._changed.wait_for(lambda: self._pipelines == 0 or self._in_flight + cost <= self.seconds)
            self._in_flight += cost
            self._pipelines += 1
            self.sent += 1
            self.sent_keys += keys
            self.most_in_flight = max(self.most_in_flight, self._pipelines)
        sent = self._clock()
        try:
            yield
            replied = self._clock()
            self._answered += keys
            if self._calibration is None:
                # The source serves pipelines one after another: this one's own time started when
                # it was sent or when the one before it was answered, whichever came last.
                self.learn(keys, replied - max(sent, self._last_reply))
            self._last_reply = max(self._last_reply, replied)
        finally:
            async with self._changed:
                self._pipelines -= 1
                self._in_flight = self._in_flight - cost if self._pipelines else 0.0
                self._changed.notify_all()


async def migrate_slots(
    slots: Sequence[int],
    *,
    source: AdminClient,
    source_id: str,
    target: AdminClient,
    target_id: str,
    budget: MigrateBudget | None = None,
    target_auth: tuple[str, str] | None = None,
) -> int:
    """Moves slots and their keys from ``source`` to ``target``; returns the keys moved.

    MIGRATE blocks the source's event loop until the target has the keys, so the key moves of
    lanes working on the same source share one ``budget`` (per source): other clients' commands
    -- and the health probe's PING -- wait for about the budget's seconds, not for every lane's
    batches queued behind each other (64 lanes made a busy source look hung for seconds).

    Every step is one pipelined round trip for the whole batch of slots (MIGRATE itself
    takes one slot's keys per command). Idempotent: running it again after an
    interruption at any step finishes the move. ``target_auth`` (user, password) logs MIGRATE's
    own connection in to a locked target (``AUTH2``).

    Clients learn a new shard's primary from a MOVED naming it or from a full refresh, not
    from an ASK (redis-py 8.1 fails an ASK to a primary it has not seen, redis/redis-py#4015).
    Handing a new shard one key-less slot first (so that a MOVED introduces it) was tried and
    not kept: a client learns it only if it happens to ask for that slot before its first ASK;
    redis-py writer + reader during a 3 -> 4 scale-out of a bare cluster failed in 1 of 7 runs
    that way, 2 of 7 without (every key-less slot first: 0 of 7, but dense data has none).
    """
    auth: tuple[str, ...] = ("AUTH2", *target_auth) if target_auth is not None else ()
    ordered = sorted(slots)
    replies = await target.pipeline([("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id) for slot in ordered])
    # A slot the target already owns was finalized on the target before an interruption.
    done = {slot for slot, r in zip(ordered, replies, strict=True) if isinstance(r, ResponseError) and "already the owner" in str(r)}
    _raise_errors(target, "IMPORTING", ordered, replies, tolerate="already the owner")
    moving = [slot for slot in ordered if slot not in done]
    replies = await source.pipeline([("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id) for slot in moving])
    _raise_errors(source, "MIGRATING", moving, replies)
    budget = budget or MigrateBudget()
    moved = 0
    pending = moving
    while pending:
        allowance = budget.keys()
        count = min(MIGRATE_BATCH, allowance)
        listed = await source.pipeline([("CLUSTER", "GETKEYSINSLOT", slot, count) for slot in pending])
        found = [(slot, keys) for slot, keys in zip(pending, listed, strict=True) if isinstance(keys, list) and keys]
        batch: list[tuple[int, list[Any]]] = []
        total = 0
        for slot, keys in found:
            if batch and total + len(keys) > allowance:
                break
            batch.append((slot, keys))
            total += len(keys)
        if not batch:
            break
        async with budget.moving(total):
            replies = await source.pipeline(
                [
                    ("MIGRATE", target.address, target.port, "", 0, MIGRATE_TIMEOUT_MS, "REPLACE", *auth, "KEYS", *keys)
                    for _, keys in batch
                ]
            )
        _raise_errors(source, "MIGRATE", [slot for slot, _ in batch], replies)
        moved += total
        await budget.calibrate(source)
        # Slots left out of this pipeline, and slots that may hold more keys than were listed.
        sent = len(batch)
        pending = [slot for slot, keys in batch if len(keys) >= count] + [slot for slot, _ in found[sent:]]
    # The target first, so that it serves the slots before the source stops redirecting to it.
    finalize = [("CLUSTER", "SETSLOT", slot, "NODE", target_id) for slot in ordered]
    _raise_errors(target, "SETSLOT NODE", ordered, await target.pipeline(finalize))
    # The other primaries learn it from the target, which broadcasts its new epoch at once.
    _raise_errors(source, "SETSLOT NODE", ordered, await source.pipeline(finalize))
    return moved


# ------------------------------------------------------------------ atomic slot migration (Valkey 9+)
def atomic_slot_migration(engine: str, version: str) -> bool:
    """Whether a build moves slots by itself: Valkey 9.0 and later (``CLUSTER MIGRATESLOTS``).

    The source forks and sends a snapshot of the slots' keys to the target, then streams their
    writes until the target has caught up; the source pauses writes for a moment and the target
    takes the slots over (a new config epoch). Clients see no ASK and no key-by-key redirection:
    a slot answers on the source until it answers on the target, and a MOVED then names the target.
    Measured here: 500,000 keys of 1 KB (0.5 GB) moved in 2.8 s, against ~7 MB/s for MIGRATE.
    """
    major = version.split(".", 1)[0]
    return engine == "valkey" and major.isdigit() and int(major) >= ATOMIC_SLOT_MIGRATION_MAJOR


class SlotMigrationRefused(Exception):
    """The source refused CLUSTER MIGRATESLOTS (a build or an ACL without it): move keys one by one."""


class SlotMigrationFailed(Exception):
    """An atomic slot migration job ended failed or cancelled (the engine's message says why)."""


@dataclass(frozen=True)
class SlotMigration:
    """One job of ``CLUSTER GETSLOTMIGRATIONS``."""

    name: str
    operation: str  # EXPORT (on the source) or IMPORT (on the target)
    slot_ranges: str
    source_node: str
    target_node: str
    state: str
    message: str

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def slot_migrations(admin: AdminClient) -> list[SlotMigration]:
    """The node's slot migration jobs, the finished ones it still remembers included."""
    jobs: list[SlotMigration] = []
    for raw in await admin.execute("CLUSTER", "GETSLOTMIGRATIONS"):
        # A map (RESP3) or a flat list of names and values (RESP2).
        pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
        fields = {_text(k): _text(v) for k, v in pairs}
        jobs.append(
            SlotMigration(
                name=fields.get("name", ""), operation=fields.get("operation", "").upper(),
                slot_ranges=fields.get("slot_ranges", ""), source_node=fields.get("source_node", ""),
                target_node=fields.get("target_node", ""), state=fields.get("state", ""), message=fields.get("message", "").strip(),
            )
        )
    return jobs


async def wait_for_exports(source: AdminClient, *, poll: float = SLOT_MIGRATION_POLL) -> bool:
    """Waits until no export job of the source is running; whether one was (a job the engine
    went on with while the control plane restarted, or while it re-planned after a failover)."""
    waited = False
    while any(job.operation == "EXPORT" and not job.finished for job in await slot_migrations(source)):
        waited = True
        await asyncio.sleep(poll)
    return waited


async def atomic_jobs(source: AdminClient, slots: Sequence[int], *, max_keys: int = ATOMIC_JOB_KEYS) -> list[list[int]]:
    """``slots`` (sorted) cut into runs of at most ``max_keys`` keys (a slot with more is a job alone),
    counted with CLUSTER COUNTKEYSINSLOT in one pipeline."""
    ordered = sorted(slots)
    counts = await source.pipeline([("CLUSTER", "COUNTKEYSINSLOT", slot) for slot in ordered])
    jobs: list[list[int]] = []
    current: list[int] = []
    keys = 0
    for slot, count in zip(ordered, counts, strict=True):
        if isinstance(count, ResponseError):
            raise EngineError(f"{source.address}:{source.port}: COUNTKEYSINSLOT {slot}: {count}")
        if current and keys + int(count) > max_keys:
            jobs.append(current)
            current, keys = [], 0
        current.append(slot)
        keys += int(count)
    if current:
        jobs.append(current)
    return jobs


async def migrate_slots_atomically(
    slots: Sequence[int], *, source: AdminClient, target_id: str, poll: float = SLOT_MIGRATION_POLL
) -> None:
    """Moves ``slots`` (all owned by ``source``) with their keys to the node ``target_id`` in one
    atomic slot migration job, and waits for it to end.

    The source logs in to the target as its ``masteruser`` with its ``masterauth`` (set by the
    caller). Raises SlotMigrationRefused if the source refuses the command, SlotMigrationFailed
    if the job fails (a node gone, the target out of memory): the slots not handed over stay
    the source's, so the caller can plan again from the nodes' views.
    """
    known = {job.name for job in await slot_migrations(source)}
    ranges = [bound for r in ranges_of(sorted(slots)) for bound in r]
    (reply,) = await source.pipeline([("CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", *ranges, "NODE", target_id)])
    if isinstance(reply, ResponseError):
        raise SlotMigrationRefused(f"{source.address}:{source.port}: {reply}")
    while True:
        jobs = [j for j in await slot_migrations(source) if j.name not in known and j.operation == "EXPORT" and j.target_node == target_id]
        if jobs and all(job.finished for job in jobs):
            failed = [job for job in jobs if job.state != "success"]
            if failed:
                raise SlotMigrationFailed(
                    f"{source.address}:{source.port}: slot migration to {target_id} {failed[0].state}: {failed[0].message}"
                )
            return
        await asyncio.sleep(poll)
