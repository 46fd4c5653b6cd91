"""What the control plane itself sends to and reads from each node, counted per node address.

A serverless cache is billed by what its clients put on the wire (ElastiCache's ECPUs: a KiB per
command). The engine's counters (``total_net_input_bytes`` / ``total_net_output_bytes``) count every
connection, the control plane's too: the sampler's INFO, the health probe's PING, and what the
workflows send (CLUSTER NODES, CLUSTER INFO and INFO polled while a cache is created or scaled,
CONFIG SET, ...). Every connection Cachefleet opens to a node counts its bytes in that node's
``Meter``: the admin client (engine/admin.py), the lean RESP connections (engine/resp.py), the raw
streams' set-up (engine/access.py) and the health probe's link (control/health.py). The sampler
reads a node's meter when it sends its INFO and leaves the difference between two readings out of
a serverless cache's bytes (monitor/sampler.serverless_usage).

Bytes are counted as the engine counts them: the plain RESP, before TLS. One address is one node
(every node has its own address); a node reached on another address (a primary endpoint) is not
counted, nor are the engine's own connections (replication, MIGRATE between nodes).
"""

from __future__ import annotations


class Meter:
    """Bytes the control plane sent to (``sent``) and read from (``received``) one node."""

    __slots__ = ("sent", "received")

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0


_METERS: dict[str, Meter] = {}


def meter(address: str) -> Meter:
    """The meter of the node at ``address`` (made on first use)."""
    found = _METERS.get(address)
    if found is None:
        found = _METERS[address] = Meter()
    return found


def reading(address: str) -> tuple[int, int]:
    """(sent, received) so far to the node at ``address``."""
    found = _METERS.get(address)
    return (found.sent, found.received) if found is not None else (0, 0)


def forget(address: str) -> None:
    """Drops a node's meter (the sampler stopped watching it)."""
    _METERS.pop(address, None)
