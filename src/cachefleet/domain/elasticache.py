"""The ElastiCache use cases of one Cachefleet installation, one object per family, wired once."""

from __future__ import annotations

from dataclasses import replace

from cachefleet.domain import kinds
from cachefleet.domain.availability import Availability
from cachefleet.domain.base import Dependencies
from cachefleet.domain.cache_clusters import CacheClusters
from cachefleet.domain.engine_versions import EngineVersions
from cachefleet.domain.event_log import EventLog
from cachefleet.domain.replicas import Replicas
from cachefleet.domain.replication_groups import ReplicationGroups
from cachefleet.domain.shards import Shards
from cachefleet.domain.snapshots import NoStorage, Snapshots, SnapshotStorage
from cachefleet.domain.subnet_groups import SubnetGroups
from cachefleet.domain.tagging import Tagging


class ElastiCache:
    """Every family's use cases; the API's handlers call exactly one of them per request."""

    def __init__(self, deps: Dependencies, *, snapshot_storage: SnapshotStorage | None = None) -> None:
        if deps.used_addresses is None:
            store, warm = deps.store, deps.warm
            deps = replace(deps, used_addresses=lambda: kinds.used_addresses(store) | warm.addresses())
        self.deps = deps
        self.subnet_groups = SubnetGroups(deps)
        self.snapshots = Snapshots(deps, storage=snapshot_storage or NoStorage())
        self.replication_groups = ReplicationGroups(deps, subnet_groups=self.subnet_groups, backups=self.snapshots)
        self.cache_clusters = CacheClusters(
            deps, subnet_groups=self.subnet_groups, membership=self.replication_groups, backups=self.snapshots
        )
        self.shards = Shards(deps, subnet_groups=self.subnet_groups)
        self.replicas = Replicas(deps, subnet_groups=self.subnet_groups)
        self.availability = Availability(deps)
        self.engine_versions = EngineVersions(deps)
        self.tagging = Tagging(deps)
        self.events = EventLog(deps)
