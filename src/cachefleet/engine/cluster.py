"""Redis Cluster mechanics: reading a node's view of the cluster, and moving slots with their keys.

Slot ranges are written as ElastiCache writes them: ``0-5461,10923-16383``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from cachefleet.domain.slots import SLOTS, parse, ranges_of
from cachefleet.engine.admin import AdminClient, EngineError

__all__ = ["SLOTS", "ClusterNode", "ClusterView", "add_slots", "migrate_slots", "parse_nodes", "view"]
MIGRATE_BATCH = 1000
MIGRATE_TIMEOUT_MS = 10000


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


async def migrate_slots(
    slots: Sequence[int],
    *,
    source: AdminClient,
    source_id: str,
    target: AdminClient,
    target_id: str,
    gate: AbstractAsyncContextManager[object] | None = None,
    target_auth: tuple[str, str] | None = None,
) -> int:
    """Moves slots and their keys from ``source`` to ``target``; returns the keys moved.

    MIGRATE blocks the source's event loop until the target has the keys, so the key moves of
    lanes working on the same source are limited by ``gate`` (a semaphore per source): other
    clients' commands -- and the health probe's PING -- wait for a few batches, not for every
    lane's batches queued behind each other (64 lanes made a busy source look hung for seconds).

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
    moved = 0
    pending = moving
    while pending:
        async with gate or contextlib.nullcontext():
            listed = await source.pipeline([("CLUSTER", "GETKEYSINSLOT", slot, MIGRATE_BATCH) for slot in pending])
            batch = [(slot, keys) for slot, keys in zip(pending, listed, strict=True) if isinstance(keys, list) and keys]
            if not batch:
                break
            replies = await source.pipeline(
                [
                    ("MIGRATE", target.address, target.port, "", 0, MIGRATE_TIMEOUT_MS, "REPLACE", *auth, "KEYS", *keys)
                    for _, keys in batch
                ]
            )
        _raise_errors(source, "MIGRATE", [slot for slot, _ in batch], replies)
        moved += sum(len(keys) for _, keys in batch)
        pending = [slot for slot, keys in batch if len(keys) >= MIGRATE_BATCH]
    # The target first, so that it serves the slots before the source stops redirecting to it.
    finalize = [("CLUSTER", "SETSLOT", slot, "NODE", target_id) for slot in ordered]
    _raise_errors(target, "SETSLOT NODE", ordered, await target.pipeline(finalize))
    # The other primaries learn it from the target, which broadcasts its new epoch at once.
    _raise_errors(source, "SETSLOT NODE", ordered, await source.pipeline(finalize))
    return moved
