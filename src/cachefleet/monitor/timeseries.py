"""Bounded metric storage: two fixed-size ring files per node under ``<data-dir>/metrics``.

``seconds.ring`` keeps one row of every metric per second for 3 hours (+ 1 minute), and
``minutes.ring`` one row of (count, sum, min, max) per metric per minute for 15 days. A
sample of time ``t`` goes to slot ``t // step % slots``; a slot also stores its timestamp, so
stale rows (from a lap ago) are recognised and skipped. Files are created sparse and mapped
in memory: a write is a slice assignment, nothing grows, nothing needs pruning. Size per node
(all metrics): see :func:`bytes_per_node`. Files of a node nobody wrote for 15 days are removed.

Layout: a 4 KiB header (magic, version, step, slots, width, fingerprint of the metric list,
last write), then ``slots`` float64 timestamps, then ``slots * width`` float32 values.
"""

from __future__ import annotations

import array
import logging
import math
import mmap
import os
import shutil
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cachefleet.domain import identifiers
from cachefleet.domain.metrics import MetricId, Samples
from cachefleet.monitor import catalog

log = logging.getLogger(__name__)

MAGIC = b"CFTS"
VERSION = 1
HEADER = 4096
_HEADER = struct.Struct("<4sIIIIId")  # magic, version, step, slots, width, fingerprint, last write
SECOND_SLOTS = 3 * 3600 + 60
MINUTE_SLOTS = 15 * 1440 + 60
KEEP_INACTIVE = 15 * 86400
NAN = math.nan


class RingFile:
    """A fixed-size file of fixed-width rows, written in place in a ring."""

    def __init__(self, path: Path, *, step: int, slots: int, width: int, fingerprint: int) -> None:
        self.path = path
        self.step, self.slots, self.width = step, slots, width
        size = HEADER + slots * 8 + slots * width * 4
        fresh = True
        if path.exists() and path.stat().st_size == size:
            with open(path, "rb") as handle:
                header = _HEADER.unpack(handle.read(_HEADER.size))
            fresh = header[:6] != (MAGIC, VERSION, step, slots, width, fingerprint)
        if fresh:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            temporary = path.with_suffix(".tmp")
            with open(temporary, "wb") as handle:
                handle.truncate(size)  # sparse: pages take disk space once written
                handle.write(_HEADER.pack(MAGIC, VERSION, step, slots, width, fingerprint, 0.0))
            os.replace(temporary, path)
        self._file = open(path, "r+b")  # noqa: SIM115 - kept open with the mapping
        self._map = mmap.mmap(self._file.fileno(), size)
        self._view = memoryview(self._map)
        self._times = self._view[HEADER : HEADER + slots * 8].cast("d")
        self._values = self._view[HEADER + slots * 8 :].cast("f")

    @property
    def last_write(self) -> float:
        return float(_HEADER.unpack_from(self._map, 0)[6])

    def write(self, stamp: int, values: Sequence[float]) -> None:
        slot = (stamp // self.step) % self.slots
        start = slot * self.width
        self._values[start : start + self.width] = array.array("f", values)
        self._times[slot] = float(stamp)
        struct.pack_into("<d", self._map, _HEADER.size - 8, float(stamp))

    def rows(self, start: float, end: float) -> Iterator[tuple[int, float]]:
        """(slot, timestamp) of the stored rows with start <= timestamp < end, in time order."""
        step = self.step
        first = max(math.ceil(start / step), math.floor(end / step) - self.slots + 1)
        last = math.ceil(end / step)  # exclusive
        times = self._times
        slots = self.slots
        for index in range(first, last):
            slot = index % slots
            stamp = times[slot]
            if stamp == index * step and start <= stamp < end:
                yield slot, stamp

    def column(self, offset: int, start: float, end: float) -> tuple[list[float], list[float]]:
        """Timestamps and values of column ``offset`` between ``start`` and ``end`` (NaN skipped)."""
        step, slots, width = self.step, self.slots, self.width
        first = max(math.ceil(start / step), math.floor((end - 1) / step) - slots + 1)
        last = math.ceil(end / step)
        if last <= first:
            return [], []
        low, high = first * step, end
        stamps: list[float] = []
        values: list[float] = []
        # The window is at most one lap: one or two contiguous runs of slots. A slot holds the
        # expected time, an older one (a lap ago) or a newer one (after ``end``): keep the first.
        begin = first % slots
        count = last - first
        runs = [(begin, min(slots, begin + count))]
        if begin + count > slots:
            runs.append((0, begin + count - slots))
        index = first
        for a, b in runs:
            times = self._times[a:b].tolist()
            column = self._values[a * width + offset : b * width : width].tolist()
            expected = [float(t) for t in range(index * step, (index + b - a) * step, step)]
            index += b - a
            if times == expected and expected[-1] < high and _no_nan(column):
                # Every second present, no gap: the common case, taken whole (C-level checks).
                stamps += times
                values += column
                continue
            for stamp, value in zip(times, column, strict=True):
                if low <= stamp < high and value == value:
                    stamps.append(stamp)
                    values.append(value)
        return stamps, values

    def aggregates(
        self, offset: int, start: float, end: float
    ) -> tuple[list[float], list[float], list[float], list[float], list[float]]:
        """(timestamps, counts, sums, mins, maxs) of a (count, sum, min, max) column group; empty rows skipped."""
        stamps: list[float] = []
        counts: list[float] = []
        sums: list[float] = []
        mins: list[float] = []
        maxs: list[float] = []
        values = self._values
        for slot, stamp in self.rows(start, end):
            base = slot * self.width + offset
            count, total, low, high = values[base : base + 4].tolist()
            if count:
                stamps.append(stamp)
                counts.append(count)
                sums.append(total)
                mins.append(low)
                maxs.append(high)
        return stamps, counts, sums, mins, maxs

    def row_block(self, start: float, end: float) -> list[list[float]]:
        """Rows stored between ``start`` and ``end``, each a list of ``width`` values."""
        width = self.width
        rows: list[list[float]] = [self._values[slot * width : (slot + 1) * width].tolist() for slot, _ in self.rows(start, end)]  # type: ignore[misc]
        return rows

    def flush(self) -> None:
        self._map.flush()

    def close(self) -> None:
        self._times.release()
        self._values.release()
        self._view.release()
        self._map.close()
        self._file.close()


def _no_nan(values: Sequence[float]) -> bool:
    try:
        return not math.isnan(math.fsum(values))
    except (OverflowError, ValueError):
        return False


def bytes_per_node() -> int:
    width = catalog.WIDTH
    return (2 * HEADER + SECOND_SLOTS * (8 + width * 4) + MINUTE_SLOTS * (8 + 4 * width * 4))


@dataclass(frozen=True)
class SeriesKey:
    """Which node's series: region, cache cluster, cache node."""

    region: str
    cluster_id: str
    node_id: str


class NodeSeries:
    """The two ring files of one node (or of one serverless cache: its own metric list)."""

    def __init__(self, directory: Path, *, width: int = catalog.WIDTH, fingerprint: int = catalog.FINGERPRINT) -> None:
        self.directory = directory
        self.width = width
        self.seconds = RingFile(directory / "seconds.ring", step=1, slots=SECOND_SLOTS, width=width,
                                fingerprint=fingerprint)
        self.minutes = RingFile(directory / "minutes.ring", step=60, slots=MINUTE_SLOTS, width=4 * width,
                                fingerprint=fingerprint)

    def close(self) -> None:
        self.seconds.close()
        self.minutes.close()

    def roll_up(self, minute: int) -> None:
        """Aggregates the seconds of ``minute`` (its start, epoch seconds) into the minute file."""
        rows = self.seconds.row_block(minute, minute + 60)
        if not rows:
            return
        aggregate: list[float] = []
        for column in range(self.width):
            values = [row[column] for row in rows if row[column] == row[column]]
            if values:
                aggregate += [float(len(values)), math.fsum(values), min(values), max(values)]
            else:
                aggregate += [0.0, NAN, NAN, NAN]
        self.minutes.write(minute, aggregate)


# A serverless cache's series is kept as the node "<name>" of this pseudo cluster (no cluster id
# starts with "@"), with the serverless metric list (monitor/serverless.py).
SERVERLESS_CLUSTER = "@serverless"


class TimeSeriesStore:
    """All nodes' series and serverless caches' series; implements the domain's MetricSource for
    the CloudWatch API (a serverless cache's metrics under the dimension ``clusterId``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._open: dict[SeriesKey, NodeSeries] = {}
        self._known: set[SeriesKey] = set()
        for region_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for cluster_dir in sorted(p for p in region_dir.iterdir() if p.is_dir()):
                for node_dir in sorted(p for p in cluster_dir.iterdir() if p.is_dir()):
                    self._known.add(SeriesKey(region_dir.name, cluster_dir.name, node_dir.name))

    def directory(self, key: SeriesKey) -> Path:
        return self.root / key.region / key.cluster_id / key.node_id

    def series(self, key: SeriesKey, *, create: bool = True) -> NodeSeries | None:
        found = self._open.get(key)
        if found is None:
            if not create and key not in self._known:
                return None
            if key.cluster_id == SERVERLESS_CLUSTER:
                found = NodeSeries(self.directory(key), width=catalog.SERVERLESS_WIDTH,
                                   fingerprint=catalog.SERVERLESS_FINGERPRINT)
            else:
                found = NodeSeries(self.directory(key))
            self._open[key] = found
            self._known.add(key)
        return found

    def write(self, key: SeriesKey, stamp: int, values: Sequence[float]) -> None:
        series = self.series(key)
        assert series is not None
        series.seconds.write(stamp, values)

    def write_cache(self, region: str, name: str, stamp: int, values: Sequence[float]) -> None:
        """One second of a serverless cache's metrics (catalog ``SERVERLESS_METRICS`` order)."""
        self.write(SeriesKey(region, SERVERLESS_CLUSTER, name), stamp, values)

    def roll_up(self, minute: int) -> None:
        """Aggregates ``minute`` for every node written to; closes the files of nodes no longer written."""
        for _ in self.roll_up_steps(minute):
            pass

    def roll_up_steps(self, minute: int) -> Iterator[None]:
        """``roll_up``, one node at a time: yields after each, so that a caller on the event loop can
        let other work in between (the sampler). A node's roll-up takes ~0.25 ms, and ~25 ms the first
        time its minute file is written (its pages are faulted in: measured with 1,000 new nodes, the
        whole roll-up held the event loop for 24.9 s in one go). Meanwhile the store's other users only
        open series (queries): ``prune`` runs after the tick."""
        for key, series in list(self._open.items()):
            if series.seconds.last_write < minute - 120:
                series.close()  # reopened on demand by a query
                del self._open[key]
            else:
                series.roll_up(minute)
            yield

    def prune(self, now: float | None = None) -> list[SeriesKey]:
        """Removes the files of nodes that nobody wrote for 15 days (deleted long ago)."""
        now = time.time() if now is None else now
        removed = []
        for key in sorted(self._known, key=lambda k: (k.region, k.cluster_id, k.node_id)):
            series = self.series(key, create=False)
            if series is None:
                continue
            last = max(series.seconds.last_write, series.minutes.last_write)
            if last and now - last > KEEP_INACTIVE:
                series.close()
                self._open.pop(key, None)
                self._known.discard(key)
                shutil.rmtree(self.directory(key), ignore_errors=True)
                removed.append(key)
        return removed

    def close(self) -> None:
        for series in self._open.values():
            series.close()
        self._open.clear()

    # ------------------------------------------------------------------ MetricSource
    def metrics(self, region: str) -> list[MetricId]:
        found = []
        now = time.time()
        for key in self._known:
            if key.region != region:
                continue
            series = self.series(key, create=False)
            if series is None or now - max(series.seconds.last_write, series.minutes.last_write) > KEEP_INACTIVE:
                continue
            if key.cluster_id == SERVERLESS_CLUSTER:
                cache = ((catalog.SERVERLESS_DIMENSION, key.node_id),)
                found += [MetricId.of(catalog.NAMESPACE, name, cache) for name in catalog.SERVERLESS_NAMES]
                continue
            if identifiers.SERVERLESS_GROUP_PREFIX in key.cluster_id:
                continue  # a serverless cache's nodes are its own business, as on ElastiCache
            dimensions = (("CacheClusterId", key.cluster_id), ("CacheNodeId", key.node_id))
            found += [MetricId.of(catalog.NAMESPACE, name, dimensions) for name in catalog.NAMES]
        return found

    def samples(self, region: str, metric: MetricId, start: float, end: float, *, step: int) -> Samples | None:
        if metric.namespace == catalog.NAMESPACE and [n for n, _ in metric.dimensions] == [catalog.SERVERLESS_DIMENSION]:
            return self._cache_samples(region, metric, start, end, step=step)
        column = catalog.INDEX.get(metric.name)
        if metric.namespace != catalog.NAMESPACE or column is None:
            return None
        names = {name for name, _ in metric.dimensions}
        cluster = metric.dimension("CacheClusterId")
        if cluster is None or not names <= {"CacheClusterId", "CacheNodeId"}:
            return None
        # A cache cluster of Valkey/Redis has one node: CacheClusterId alone names it too.
        node = metric.dimension("CacheNodeId") or "0001"
        series = self.series(SeriesKey(region, cluster, node), create=False)
        if series is None:
            return None
        unit = catalog.UNITS[metric.name]
        if step == 1:
            stamps, values = series.seconds.column(column, start, end)
            return Samples(step=1, timestamps=stamps, sums=values, unit=unit)
        stamps, counts, sums, mins, maxs = series.minutes.aggregates(4 * column, start, end)
        return Samples(step=60, timestamps=stamps, sums=sums, counts=counts, mins=mins, maxs=maxs, unit=unit)

    def _cache_samples(self, region: str, metric: MetricId, start: float, end: float, *, step: int) -> Samples | None:
        column = catalog.SERVERLESS_INDEX.get(metric.name)
        name = metric.dimension(catalog.SERVERLESS_DIMENSION)
        series = self.series(SeriesKey(region, SERVERLESS_CLUSTER, name or ""), create=False) if name else None
        if column is None or series is None:
            return None
        unit = catalog.SERVERLESS_UNITS[metric.name]
        if step == 1:
            stamps, values = series.seconds.column(column, start, end)
            return Samples(step=1, timestamps=stamps, sums=values, unit=unit)
        stamps, counts, sums, mins, maxs = series.minutes.aggregates(4 * column, start, end)
        return Samples(step=60, timestamps=stamps, sums=sums, counts=counts, mins=mins, maxs=maxs, unit=unit)
