"""The small protocols the domain needs from the outside world.

``store/`` implements :class:`StateStore`; ``engine/`` provides an :class:`EngineCatalog`;
the monitor's time series is a :class:`MetricSource`. The wiring happens once, at start-up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, TypeVar

from cachefleet.domain.engines import EngineRelease
from cachefleet.domain.events import Event, EventSourceType
from cachefleet.domain.metrics import MetricId, Samples
from cachefleet.domain.resource import Resource

R = TypeVar("R", bound=Resource)


class Transaction(Protocol):
    """Writes made inside one transaction become visible together, or not at all."""

    def put(self, resource: Resource) -> None: ...

    def delete(self, resource: Resource) -> None: ...

    def add_event(self, event: Event) -> None: ...


class StateStore(Protocol):
    """Durable desired state and events.

    Contract: reads see every committed transaction; a transaction that raises is rolled
    back entirely; a crash never leaves part of a transaction behind. Every kind listed in
    ``domain/kinds.py`` can be stored. A transaction the store cannot write (its storage locked,
    read-only or full) raises ``StoreUnavailable`` soon, with nothing written, rather than waiting;
    reads keep answering meanwhile.
    """

    def get(self, kind: type[R], region: str, key: str) -> R | None: ...

    def list(self, kind: type[R], region: str | None = None) -> list[R]: ...

    def transaction(self) -> AbstractContextManager[Transaction]: ...

    def events(
        self,
        region: str,
        *,
        start: dt.datetime,
        end: dt.datetime,
        source_type: EventSourceType | None = None,
        source_id: str | None = None,
        hidden_prefix: str | None = None,
        after: tuple[float, int] | None = None,
        limit: int | None = None,
    ) -> Iterator[Event]:
        """Events of the window in the order of recording (date, then sequence): those whose
        source id starts with ``hidden_prefix`` left out, from the one at or after ``after``
        (timestamp, sequence) on, at most ``limit``."""
        ...


class EngineCatalog(Protocol):
    """The engine builds installed on this machine."""

    def releases(self) -> Sequence[EngineRelease]: ...


class Clock(Protocol):
    """Tells the time (UTC); tests give a fake one."""

    def now(self) -> dt.datetime: ...


class WarmNodes(Protocol):
    """Engine processes started ahead of need, each on an address of its own.

    A new cluster-mode primary can be given the address of a warm node: the node is
    already past the engine's start-up delays, which makes provisioning near instant.
    """

    def addresses(self) -> set[str]:
        """Every address the pool holds (taken by no resource yet)."""
        ...

    def take(self, engine: str, version: str, count: int) -> list[str]:
        """Up to ``count`` addresses of ready warm nodes of that engine build."""
        ...

    def give_back(self, addresses: Sequence[str]) -> None: ...


class NoWarmNodes:
    """The warm pool of an installation that keeps none."""

    def addresses(self) -> set[str]:
        return set()

    def take(self, engine: str, version: str, count: int) -> list[str]:
        return []

    def give_back(self, addresses: Sequence[str]) -> None:
        return None


class MetricSource(Protocol):
    """Where metric samples come from (the monitor's time series).

    ``samples`` returns the samples of ``metric`` between ``start`` and ``end`` (epoch seconds)
    at ``step`` 1 (1-second samples) or 60 (1-minute aggregates), or None if the metric is unknown.
    """

    def metrics(self, region: str) -> list[MetricId]: ...

    def samples(self, region: str, metric: MetricId, start: float, end: float, *, step: int) -> Samples | None: ...
