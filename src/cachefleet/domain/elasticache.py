"""The ElastiCache use cases of one Cachefleet installation, one object per family, wired once."""

from __future__ import annotations

from dataclasses import replace

from cachefleet.domain import kinds
from cachefleet.domain.availability import Availability
from cachefleet.domain.base import Dependencies
from cachefleet.domain.cache_clusters import CacheClusters
from cachefleet.domain.engine_versions import EngineVersions
from cachefleet.domain.event_log import EventLog
from cachefleet.domain.global_datastores import GlobalDatastores
from cachefleet.domain.maintenance import Maintenance
from cachefleet.domain.migrations import Migrations
from cachefleet.domain.parameter_groups import Builds, ParameterGroups
from cachefleet.domain.replicas import Replicas
from cachefleet.domain.replication_groups import ReplicationGroups
from cachefleet.domain.reserved_nodes import ReservedNodes
from cachefleet.domain.security_groups import SecurityGroups
from cachefleet.domain.serverless import ServerlessCaches, SizingPolicy
from cachefleet.domain.serverless_snapshots import ServerlessSnapshots
from cachefleet.domain.service_updates import ServiceUpdates
from cachefleet.domain.shards import Shards
from cachefleet.domain.snapshots import NoStorage, Snapshots, SnapshotStorage
from cachefleet.domain.subnet_groups import SubnetGroups
from cachefleet.domain.tagging import Tagging
from cachefleet.domain.upgrades import Upgrades
from cachefleet.domain.users import UserGroups, Users


class ElastiCache:
    """Every family's use cases; the API's handlers call exactly one of them per request."""

    def __init__(
        self, deps: Dependencies, *, builds: Builds | None = None, snapshot_storage: SnapshotStorage | None = None,
        sizing: SizingPolicy | None = None,
    ) -> None:
        """``sizing``: how serverless caches size themselves (``cachefleet up --serverless-sizing``). ``builds``: what each installed engine build has (engine/config_probe.py, measured once at
        start-up); None offers every catalogue parameter (tests of the rules alone). ``snapshot_storage``:
        snapshot files and buckets (control/snapshot_files.py); None: no buckets (tests of the rules)."""
        if deps.used_addresses is None:
            store, warm = deps.store, deps.warm
            deps = replace(deps, used_addresses=lambda: kinds.used_addresses(store) | warm.addresses())
        self.deps = deps
        self.subnet_groups = SubnetGroups(deps)
        self.parameter_groups = ParameterGroups(deps, builds=builds)
        self.security_groups = SecurityGroups(deps)
        self.upgrades = Upgrades(deps, parameter_groups=self.parameter_groups)
        self.snapshots = Snapshots(deps, storage=snapshot_storage or NoStorage())
        self.replication_groups = ReplicationGroups(
            deps, subnet_groups=self.subnet_groups, parameter_groups=self.parameter_groups,
            security_groups=self.security_groups, upgrades=self.upgrades, backups=self.snapshots,
        )
        self.cache_clusters = CacheClusters(
            deps, subnet_groups=self.subnet_groups, membership=self.replication_groups,
            parameter_groups=self.parameter_groups, security_groups=self.security_groups, upgrades=self.upgrades,
            backups=self.snapshots,
        )
        self.global_datastores = GlobalDatastores(deps, groups=self.replication_groups)
        self.shards = Shards(deps, subnet_groups=self.subnet_groups, parameter_groups=self.parameter_groups)
        self.replicas = Replicas(deps, subnet_groups=self.subnet_groups)
        self.availability = Availability(deps)
        self.migrations = Migrations(deps)
        self.reserved_nodes = ReservedNodes(deps)
        self.engine_versions = EngineVersions(deps)
        self.tagging = Tagging(deps)
        self.service_updates = ServiceUpdates(deps, upgrades=self.upgrades)
        self.maintenance = Maintenance(
            deps, upgrades=self.upgrades, service_updates=self.service_updates, parameters=self.parameter_groups,
            access=self.replication_groups,
        )
        self.events = EventLog(deps)
        self.users = Users(deps)
        self.user_groups = UserGroups(deps, usage=self.replication_groups)
        # Its own ReplicationGroups instance: the only one that may name a serverless cache's group.
        self.serverless = ServerlessCaches(
            deps, subnet_groups=self.subnet_groups, parameter_groups=self.parameter_groups,
            groups=ReplicationGroups(
                deps, subnet_groups=self.subnet_groups, parameter_groups=self.parameter_groups,
                security_groups=self.security_groups, upgrades=self.upgrades, backups=self.snapshots,
            ),
            policy=sizing, backups=self.snapshots,
        )
        # Its own Snapshots instance too: the only one that may name serverless snapshots.
        self.serverless_snapshots = ServerlessSnapshots(
            deps, snapshots=Snapshots(deps, storage=snapshot_storage or NoStorage()),
        )
