"""What every group of use cases shares: its dependencies, lookups that raise NotFound, events."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from cachefleet.domain import identifiers
from cachefleet.domain.errors import InvalidState, NotFound
from cachefleet.domain.model import (
    CacheCluster,
    CacheSubnetGroup,
    Event,
    EventSourceType,
    GroupStatus,
    Region,
    ReplicationGroup,
    Subnet,
)
from cachefleet.domain.ports import (
    Clock,
    EngineCatalog,
    NoWarmNodes,
    Resource,
    StateStore,
    Transaction,
    WarmNodes,
)

ChangeListener = Callable[[type[Resource], str, str], None]
DEFAULT_SUBNET_GROUP = "default"
DEFAULT_VPC = "vpc-cachefleet"
DEFAULT_PORT = 6379
MAX_CLUSTERS_PER_GROUP = 6  # a primary and five replicas
MAX_REPLICAS = MAX_CLUSTERS_PER_GROUP - 1
MAX_NODES_PER_REGION = 300  # ElastiCache's default node quota per region
MAX_NODE_GROUPS = 500
MAX_NODES_PER_CLUSTER = 500


class UseCases:
    def __init__(
        self,
        *,
        store: StateStore,
        catalog: EngineCatalog,
        clock: Clock,
        node_network: ipaddress.IPv4Network,
        on_change: ChangeListener | None = None,
        warm: WarmNodes | None = None,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._clock = clock
        self._network = node_network
        self._on_change = on_change or (lambda kind, region, key: None)
        self._warm: WarmNodes = warm or NoWarmNodes()

    def default_subnet_group(self, region: Region) -> CacheSubnetGroup:
        return CacheSubnetGroup(
            region=region,
            name=DEFAULT_SUBNET_GROUP,
            description="default",
            subnets=tuple(Subnet(f"subnet-{zone}", zone) for zone in identifiers.default_availability_zones(region)),
            vpc_id=DEFAULT_VPC,
        )

    def _group(self, region: Region, group_id: str) -> ReplicationGroup:
        group = self._store.get(ReplicationGroup, region, group_id.lower())
        if group is None:
            raise NotFound(f"Replication group {group_id} not found.", resource="ReplicationGroup")
        return group

    def _cluster(self, region: Region, cluster_id: str) -> CacheCluster:
        cluster = self._store.get(CacheCluster, region, cluster_id.lower())
        if cluster is None:
            raise NotFound(f"Cache cluster {cluster_id} not found.", resource="CacheCluster")
        return cluster

    def _subnet_group(self, region: Region, name: str) -> CacheSubnetGroup:
        lowered = name.lower()
        if lowered == DEFAULT_SUBNET_GROUP:
            return self.default_subnet_group(region)
        group = self._store.get(CacheSubnetGroup, region, lowered)
        if group is None:
            raise NotFound(f"Cache subnet group {name} not found.", resource="CacheSubnetGroup")
        return group

    def _members(self, group: ReplicationGroup) -> list[CacheCluster]:
        found = []
        for cluster_id in group.member_cluster_ids:
            cluster = self._store.get(CacheCluster, group.region, cluster_id)
            if cluster is not None:
                found.append(cluster)
        return found

    def _all_clusters(self) -> list[CacheCluster]:
        return self._store.list(CacheCluster)

    def _used_addresses(self) -> set[str]:
        return used_addresses(self._store) | self._warm.addresses()

    @staticmethod
    def _require_group_status(group: ReplicationGroup, status: GroupStatus, *, action: str) -> None:
        if group.status != status:
            raise InvalidState(
                f"Replication group {group.group_id} is {group.status}; it can be {action} once it is {status}.",
                resource="ReplicationGroup",
            )

    def _event(self, tx: Transaction, resource: Resource, message: str) -> None:
        tx.add_event(event_for(resource, message, self._clock.now()))

    def _changed(self, resource: Resource) -> None:
        self._on_change(type(resource), resource.region, resource.key)

    def _start_modifying(self, group: ReplicationGroup, message: str, **changes: Any) -> ReplicationGroup:
        """Records the group as `modifying` with ``changes`` (the work the reconciler is to do),
        and an event saying what starts; the reconciler is told."""
        updated = replace(group, status=GroupStatus.MODIFYING, **changes)
        with self._store.transaction() as tx:
            tx.put(updated)
            self._event(tx, updated, message)
        self._changed(updated)
        return updated




def used_addresses(store: StateStore) -> set[str]:
    """Addresses of the node network taken by a node or an endpoint, in any region."""
    used = {cluster.node.address for cluster in store.list(CacheCluster)}
    for group in store.list(ReplicationGroup):
        for node_group in group.node_groups:
            used.update(a for a in (node_group.primary_endpoint, node_group.reader_endpoint) if a)
        if group.configuration_endpoint:
            used.add(group.configuration_endpoint)
    return used


def event_for(resource: Resource, message: str, when: dt.datetime) -> Event:
    if isinstance(resource, ReplicationGroup):
        return Event(resource.region, EventSourceType.REPLICATION_GROUP, resource.group_id, message, when)
    if isinstance(resource, CacheCluster):
        return Event(resource.region, EventSourceType.CACHE_CLUSTER, resource.cluster_id, message, when)
    return Event(resource.region, EventSourceType.CACHE_SUBNET_GROUP, resource.name, message, when)
