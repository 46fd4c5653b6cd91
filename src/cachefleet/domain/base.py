"""What every family's use cases share: their dependencies, lookups that raise NotFound, events,
operation records and the "tell the reconciler" hook.

Use cases validate a request, record desired state (and an operation and an event) in one
transaction, tell the reconciler through ``on_change`` and return. Nothing here waits for an
engine.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from cachefleet.domain import operations, validation
from cachefleet.domain.errors import NotFound, not_found_message
from cachefleet.domain.events import event_for
from cachefleet.domain.operations import (
    AccessChange,
    EngineUpgrade,
    FailoverRequest,
    Operation,
    OperationKind,
    Resharding,
    operation_key,
)
from cachefleet.domain.ports import Clock, EngineCatalog, NoWarmNodes, StateStore, Transaction, WarmNodes
from cachefleet.domain.resource import Resource

ChangeListener = Callable[[type[Resource], str, str], None]
R = TypeVar("R", bound=Resource)

DEFAULT_PORT = 6379
MAX_NODES_PER_REGION = 300  # ElastiCache's default node quota per region


def _ignore(kind: type[Resource], region: str, key: str) -> None:
    return None


@dataclass(frozen=True)
class Dependencies:
    """What use cases need from the outside world (wired once, at start-up)."""

    store: StateStore
    catalog: EngineCatalog
    clock: Clock
    node_network: ipaddress.IPv4Network
    on_change: ChangeListener = _ignore
    warm: WarmNodes = field(default_factory=NoWarmNodes)
    # Addresses of the node network taken by any resource (nodes, endpoints) or warm node
    # (None: domain/elasticache.py asks the registry of kinds).
    used_addresses: Callable[[], set[str]] | None = None
    max_nodes: int = MAX_NODES_PER_REGION  # the node quota per region (`cachefleet up --max-nodes`)
    # Availability zones placed in a network of their own (`cachefleet up --zone`): a node of
    # such a zone gets its address from the zone's subnet; other zones' nodes and every endpoint
    # from the node network.
    zone_networks: Mapping[str, ipaddress.IPv4Network] = field(default_factory=dict)


class UseCases:
    """Base of every family's use cases."""

    def __init__(self, deps: Dependencies) -> None:
        self._deps = deps
        self._store = deps.store
        self._catalog = deps.catalog
        self._clock = deps.clock
        self._network = deps.node_network
        self._warm = deps.warm

    def _get(self, kind: type[R], region: str, key: str) -> R:
        """The resource, or its kind's NotFound error (ElastiCache keeps identifiers lower case)."""
        found = self._store.get(kind, region, key.lower())
        if found is None:
            raise NotFound(not_found_message(kind.KIND.name, kind.KIND.noun, key), resource=kind.KIND.name)
        return found

    def _event(self, tx: Transaction, resource: Resource, message: str) -> None:
        tx.add_event(event_for(resource, message, self._clock.now()))

    def _changed(self, resource: Resource) -> None:
        self._deps.on_change(type(resource), resource.region, resource.key)

    def _allocate(self, count: int, *, also_used: Iterable[str] = ()) -> list[str]:
        """The lowest ``count`` free addresses of the node network."""
        used = self._deps.used_addresses() if self._deps.used_addresses is not None else set()
        return validation.allocate_addresses(self._network, used | set(also_used), count)

    def _allocate_in(self, zones: Sequence[str], *, also_used: Iterable[str] = ()) -> list[str]:
        """One free address for a node of each zone, in order: from the zone's own subnet where it
        has one (``--zone``), else from the node network."""
        zone_networks = self._deps.zone_networks
        if not any(zone in zone_networks for zone in zones):
            return self._allocate(len(zones), also_used=also_used)
        used = self._deps.used_addresses() if self._deps.used_addresses is not None else set()
        used |= set(also_used)
        found: list[str] = []
        for zone in zones:
            (address,) = validation.allocate_addresses(zone_networks.get(zone, self._network), used, 1)
            used.add(address)
            found.append(address)
        return found

    def _operation(self, resource: Resource, kind: OperationKind) -> Operation | None:
        return self._store.get(Operation, resource.region, operation_key(resource.KIND.name, resource.key, kind))

    def _begin(
        self,
        resource: Resource,
        kind: OperationKind,
        *,
        resharding: Resharding | None = None,
        node_type: str | None = None,
        failover: FailoverRequest | None = None,
        upgrade: EngineUpgrade | None = None,
        access: AccessChange | None = None,
    ) -> Operation:
        return operations.begin(
            resource, kind, now=self._clock.now(), resharding=resharding, node_type=node_type, failover=failover,
            upgrade=upgrade, access=access,
        )
