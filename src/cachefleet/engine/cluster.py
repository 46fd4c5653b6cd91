"""Redis Cluster mechanics: reading a node's view of the cluster, and moving slots with their keys.

Slot ranges are written as ElastiCache writes them: ``0-5461,10923-16383``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cachefleet.engine.admin import AdminClient

SLOTS = 16384
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
            slots.update(expand(item))
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


def expand(ranges: str) -> set[int]:
    """``"0-5,9"`` -> {0, 1, 2, 3, 4, 5, 9}"""
    slots: set[int] = set()
    for part in ranges.replace(" ", ",").split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        slots.update(range(int(low), int(high or low) + 1))
    return slots


def compress(slots: Iterable[int]) -> str:
    """{0, 1, 2, 9} -> ``"0-2,9"``"""
    ordered = sorted(set(slots))
    ranges: list[str] = []
    start = previous = None
    for slot in ordered:
        if start is None:
            start = previous = slot
        elif slot == previous + 1:  # type: ignore[operator]
            previous = slot
        else:
            ranges.append(f"{start}-{previous}" if start != previous else str(start))
            start = previous = slot
    if start is not None:
        ranges.append(f"{start}-{previous}" if start != previous else str(start))
    return ",".join(ranges)


def ranges_of(slots: Iterable[int]) -> list[tuple[int, int]]:
    return [
        (int(low), int(high or low))
        for part in compress(slots).split(",")
        if part
        for low, _, high in [part.partition("-")]
    ]


def even_split(count: int) -> list[set[int]]:
    """ElastiCache's default: slots spread evenly, lower shards taking the remainder."""
    base, extra = divmod(SLOTS, count)
    result = []
    start = 0
    for index in range(count):
        size = base + (1 if index < extra else 0)
        result.append(set(range(start, start + size)))
        start += size
    return result


async def view(admin: AdminClient) -> ClusterView:
    return parse_nodes(str(await admin.execute("CLUSTER", "NODES")))


async def add_slots(admin: AdminClient, slots: Iterable[int]) -> None:
    args: list[str] = []
    for low, high in ranges_of(slots):
        args += [str(low), str(high)]
    if args:
        await admin.execute("CLUSTER", "ADDSLOTSRANGE", *args)


async def migrate_slot(
    slot: int,
    *,
    source: AdminClient,
    source_id: str,
    target: AdminClient,
    target_id: str,
    others: Sequence[AdminClient] = (),
) -> int:
    """Moves one slot and its keys from ``source`` to ``target``; returns the keys moved.

    Idempotent: running it again after an interruption (at any step) finishes the move.
    """
    await target.execute("CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id)
    await source.execute("CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id)
    moved = 0
    while True:
        keys = await source.execute("CLUSTER", "GETKEYSINSLOT", str(slot), str(MIGRATE_BATCH))
        if not keys:
            break
        await source.execute(
            "MIGRATE", target.address, str(target.port), "", "0", str(MIGRATE_TIMEOUT_MS), "REPLACE", "KEYS", *keys
        )
        moved += len(keys)
    # The target first, so that it serves the slot before the source stops redirecting to it.
    await target.execute("CLUSTER", "SETSLOT", str(slot), "NODE", target_id)
    await source.execute("CLUSTER", "SETSLOT", str(slot), "NODE", target_id)
    for other in others:
        try:
            await other.execute("CLUSTER", "SETSLOT", str(slot), "NODE", target_id)
        except Exception:  # noqa: BLE001 - gossip will tell the others anyway
            pass
    return moved
