"""The nodes the monitor watches, as the store and the provider know them (built by app.py per tick)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cachefleet.domain.logs import LogDelivery
from cachefleet.engine.access import NodeAccess
from cachefleet.monitor.timeseries import SeriesKey


@dataclass(frozen=True)
class MonitoredNode:
    """A running node: what the sampler reads and the log deliverer delivers."""

    key: str  # the provider's node key
    region: str
    cluster_id: str
    node_id: str
    access: NodeAccess
    pid: int | None
    engine_log: Path
    role: str = "primary"  # primary | replica
    memory_bytes: int = 0  # the node type's memory
    group_id: str = ""
    shard: str = ""
    engine: str = ""  # engine and version, e.g. "valkey 8.1.8": nodes of one build share a command table
    deliveries: tuple[LogDelivery, ...] = ()  # its group's log delivery configurations
    # When it became the member it is (its cache node record's creation, wall-clock seconds): a warm
    # node's engine is older than that (see sampler.counts_from_start).
    member_since: float | None = None

    @property
    def series_key(self) -> SeriesKey:
        return SeriesKey(self.region, self.cluster_id, self.node_id)

    @property
    def address(self) -> str:
        return self.access.address


NodeDirectory = Callable[[], Sequence[MonitoredNode]]
