"""The registry of resource kinds: one entry per kind.

Every kind Cachefleet stores is listed in ``STORED`` (its record class carries its ``Kind``:
names, ARN type, event source, error codes). ``FUTURE`` lists the ElastiCache kinds an ARN
can name whose family is not built yet, so that a request naming one gets that kind's
NotFound fault; ``VIEWS`` the kinds of the API stored as another kind's records. The store, tagging, the error mapping and the reconciler's routing read this
module; adding a family adds its class to ``STORED`` (and removes its line from ``FUTURE``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from cachefleet.domain.alarms import MetricAlarm
from cachefleet.domain.cache_clusters import CacheCluster
from cachefleet.domain.global_datastores import GlobalReplicationGroup
from cachefleet.domain.migrations import Migration
from cachefleet.domain.operations import Operation
from cachefleet.domain.parameter_groups import CacheNodeParameters, CacheParameterGroup
from cachefleet.domain.ports import StateStore
from cachefleet.domain.replication_groups import ReplicationGroup
from cachefleet.domain.reserved_nodes import ReservedCacheNode
from cachefleet.domain.resource import Kind
from cachefleet.domain.security_groups import CacheSecurityGroup
from cachefleet.domain.serverless import ServerlessCache
from cachefleet.domain.service_updates import ServiceUpdate, UpdateAction
from cachefleet.domain.snapshots import SERVERLESS_SNAPSHOT, Restore, Snapshot, serverless_key
from cachefleet.domain.subnet_groups import CacheSubnetGroup
from cachefleet.domain.users import User, UserGroup

STORED: tuple[type, ...] = (
    ReplicationGroup, CacheCluster, CacheSubnetGroup, MetricAlarm, Operation, CacheParameterGroup, CacheNodeParameters,
    CacheSecurityGroup, ServiceUpdate, UpdateAction, User, UserGroup, Snapshot, Restore, ServerlessCache,
    Migration, ReservedCacheNode, GlobalReplicationGroup,
)

FUTURE: tuple[Kind, ...] = (
)

# Kinds of the API whose records are another kind's: a serverless cache snapshot is a Snapshot
# record of its cache's hidden group (domain/serverless_snapshots.py). Their faults are theirs.
VIEWS: tuple[Kind, ...] = (SERVERLESS_SNAPSHOT,)
# For each: the stored class and the stored key of the id its ARN names (tagging finds it so).
VIEW_RECORDS: dict[str, tuple[type, Callable[[str], str]]] = {SERVERLESS_SNAPSHOT.name: (Snapshot, serverless_key)}


def kind_of(cls: type) -> Kind:
    kind: Kind = cls.KIND  # type: ignore[attr-defined]
    return kind


def all_kinds() -> Iterator[Kind]:
    for cls in STORED:
        yield kind_of(cls)
    yield from VIEWS
    yield from FUTURE


BY_NAME: dict[str, Kind] = {kind.name: kind for kind in all_kinds()}
BY_ARN_TYPE: dict[str, Kind] = {kind.arn_type: kind for kind in all_kinds() if kind.arn_type}
# ARN types that name no region: kinds spanning regions (a global replication group).
REGIONLESS_ARN_TYPES: frozenset[str] = frozenset(t for t, kind in BY_ARN_TYPE.items() if kind.store_region is not None)
STORED_BY_NAME: dict[str, type] = {kind_of(cls).name: cls for cls in STORED}


def used_addresses(store: StateStore) -> set[str]:
    """Addresses of the node network held by any stored resource (nodes and endpoints), in any region."""
    used: set[str] = set()
    for cls in STORED:
        if hasattr(cls, "addresses"):
            holders: list[Any] = store.list(cls)
            for resource in holders:
                used.update(resource.addresses)
    return used
