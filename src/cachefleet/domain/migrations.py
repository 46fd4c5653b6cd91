"""Online migration from a self-hosted Valkey or Redis OSS node (StartMigration, TestMigration,
CompleteMigration): the ``Migration`` record, ElastiCache's preconditions and the use cases.

A migration is a ``Migration`` record stored under its replication group's id, written with the
group's ``migrating`` status in one transaction. While one is following (``following``), the
group's primary is a replica of the customer's node (control/workflows/replication_group.py
reads ``upstream``) and its own replicas replicate from it; the migration workflow
(control/workflows/migration.py) probes the source, records progress and completes. Only the
rules that need no engine are checked here; reachability, AUTH on the source and its version
are the workflow's (ElastiCache checks them asynchronously too, and says what failed in an
event).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, ClassVar

from cachefleet.domain.cache_clusters import ClusterStatus
from cachefleet.domain.errors import (
    AlreadyExists,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidState,
    NotFound,
)
from cachefleet.domain.identifiers import Region
from cachefleet.domain.replication_groups import GroupStatus, GroupUseCases, ReplicationGroup
from cachefleet.domain.resource import Kind


class MigrationPhase(StrEnum):
    """Where a migration is: the source being tested or probed, the primary following it, completing."""

    TESTING = "testing"  # TestMigration: the source is checked, nothing follows it
    STARTING = "starting"  # StartMigration: the source is checked before the primary follows it
    SYNCING = "syncing"  # the primary follows the source; its full sync has not caught up yet
    IN_SYNC = "in-sync"  # the primary holds the source's replication stream up to its offset
    COMPLETING = "completing"  # CompleteMigration: the primary is to stop following


FOLLOWING = frozenset({MigrationPhase.SYNCING, MigrationPhase.IN_SYNC, MigrationPhase.COMPLETING})
START_ATTEMPTS = 3  # ElastiCache "retries a few times" before it gives a start up


@dataclass(frozen=True)
class Migration:
    """A replication group's migration from a customer's node (one endpoint, as ElastiCache takes)."""

    KIND: ClassVar[Kind] = Kind(
        name="Migration", noun="Migration", not_found="ReplicationGroupNotUnderMigrationFault",
        already_exists="ReplicationGroupAlreadyUnderMigrationFault",
    )

    region: Region
    group_id: str
    address: str
    port: int
    phase: MigrationPhase
    started: dt.datetime
    force: bool = False  # CompleteMigration Force: complete without the data in sync
    attempts: int = 0  # failed checks of the source while starting
    primary_cluster_id: str = ""  # the member following the source (a failover changes it)
    resume: MigrationPhase | None = None  # the phase a CompleteMigration that fails returns to

    @property
    def key(self) -> str:
        return self.group_id

    @property
    def following(self) -> bool:
        return self.phase in FOLLOWING

    @property
    def source(self) -> str:
        return f"{self.address}:{self.port}"


def upstream(migration: Migration | None) -> tuple[str, int] | None:
    """What a migrating group's primary replicates from (None: it is a primary)."""
    if migration is None or not migration.following:
        return None
    return (migration.address, migration.port)


_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def customer_endpoint(endpoints: Sequence[Mapping[str, Any]] | None) -> tuple[str, int]:
    """The one customer node endpoint of a request (ElastiCache takes exactly one)."""
    if not endpoints:
        raise InvalidParameterValue("CustomerNodeEndpointList must contain exactly one endpoint.")
    if len(endpoints) != 1:
        raise InvalidParameterValue(
            f"CustomerNodeEndpointList must contain exactly one endpoint; {len(endpoints)} were given."
        )
    address = str(endpoints[0].get("Address") or "")
    port = endpoints[0].get("Port")
    if not address or not _HOST.match(address):
        raise InvalidParameterValue(f"Invalid Address '{address}' in CustomerNodeEndpointList: give an IP address or DNS name.")
    if port is None or not 1 <= int(port) <= 65535:
        raise InvalidParameterValue(f"Invalid Port {port} in CustomerNodeEndpointList: use a port between 1 and 65535.")
    return address, int(port)


def check_target(group: ReplicationGroup, member_statuses: Sequence[ClusterStatus]) -> None:
    """ElastiCache's preconditions on the target group (Migration-Prepare), in its words."""
    if group.status != GroupStatus.AVAILABLE:
        raise InvalidState(
            f"Replication group {group.group_id} is not in available state (it is {group.status}).",
            resource="ReplicationGroup",
        )
    if any(status != ClusterStatus.AVAILABLE for status in member_statuses):
        raise InvalidState(
            f"Not all cache clusters of replication group {group.group_id} are in available state.",
            resource="CacheCluster",
        )
    if group.cluster_enabled:
        raise InvalidParameterCombination(
            f"Replication group {group.group_id} has cluster mode enabled: Cachefleet migrates into cluster mode "
            "disabled replication groups only."
        )
    if group.security.transit_encryption:
        raise InvalidParameterCombination(
            f"Online migration is not supported for replication group {group.group_id}: it has encryption in-transit "
            "enabled."
        )
    if group.security.auth_token_enabled or group.security.user_group_ids:
        raise InvalidParameterCombination(
            f"Online migration is not supported for replication group {group.group_id}: it has AUTH enabled."
        )
    if group.multi_az != "enabled":
        raise InvalidParameterCombination(
            f"Replication group {group.group_id} must have Multi-AZ enabled for online migration."
        )


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def version_problem(*, source_engine: str, source_version: str, target_engine: str, target_version: str) -> str | None:
    """Why a source's engine version cannot replicate into the target (None: it can).

    ElastiCache takes Valkey, or Redis OSS 2.8.21 onward, as a source, and never a source newer
    than its target (a replica cannot load a newer engine's RDB).
    """
    version = parse_version(source_version)
    if source_engine == "redis" and version < (2, 8, 21):
        return f"the source runs Redis OSS {source_version}; online migration needs Redis OSS 2.8.21 or later"
    # Valkey 7.2 is Redis OSS 7.2's successor: compare as one line of versions.
    if version[:2] > parse_version(target_version)[:2]:
        return (
            f"the source runs {engine_name(source_engine)} {source_version}, newer than the target's "
            f"{engine_name(target_engine)} {target_version}"
        )
    return None


def engine_name(engine: str) -> str:
    return "Valkey" if engine == "valkey" else "Redis OSS"


class Migrations(GroupUseCases):
    """StartMigration, TestMigration, CompleteMigration on cluster-mode-disabled replication groups."""

    def _target(self, region: Region, group_id: str | None, serverless_cache_name: str | None = None) -> ReplicationGroup:
        if not group_id:
            raise InvalidParameterCombination("Either ReplicationGroupId or ServerlessCacheName must be specified.")
        if serverless_cache_name:
            raise InvalidParameterCombination(
                "Either ReplicationGroupId or ServerlessCacheName must be specified, not both: this request gives "
                f"ReplicationGroupId {group_id} and ServerlessCacheName {serverless_cache_name}."
            )
        return self._group(region, group_id)

    def _check_new(self, group: ReplicationGroup) -> None:
        existing = self._store.get(Migration, group.region, group.group_id)
        if existing is not None:
            what = "tested for migration" if existing.phase == MigrationPhase.TESTING else "under migration"
            raise AlreadyExists(f"Replication group {group.group_id} is already {what}.", resource="Migration")
        check_target(group, [c.status for c in self._members(group)])

    def start(self, region: Region, group_id: str | None, endpoints: Sequence[Mapping[str, Any]] | None, *,
              serverless_cache_name: str | None = None) -> ReplicationGroup:
        group = self._target(region, group_id, serverless_cache_name)
        address, port = customer_endpoint(endpoints)
        self._check_new(group)
        migration = Migration(
            region=region, group_id=group.group_id, address=address, port=port, phase=MigrationPhase.STARTING,
            started=self._clock.now(), primary_cluster_id=group.node_groups[0].primary_cluster_id,
        )
        updated = replace(group, status=GroupStatus.MIGRATING)
        with self._store.transaction() as tx:
            tx.put(migration)
            tx.put(updated)
            self._event(tx, updated, f"Starting migration of replication group {group.group_id} from {address}:{port}")
        self._changed(updated)
        return updated

    def test(self, region: Region, group_id: str, endpoints: Sequence[Mapping[str, Any]] | None) -> ReplicationGroup:
        group = self._target(region, group_id)
        address, port = customer_endpoint(endpoints)
        self._check_new(group)
        migration = Migration(
            region=region, group_id=group.group_id, address=address, port=port, phase=MigrationPhase.TESTING,
            started=self._clock.now(), primary_cluster_id=group.node_groups[0].primary_cluster_id,
        )
        with self._store.transaction() as tx:
            tx.put(migration)
            self._event(tx, group, f"Testing migration of replication group {group.group_id} from {address}:{port}")
        self._changed(group)
        return group

    def complete(self, region: Region, group_id: str | None, *, force: bool,
                 serverless_cache_name: str | None = None) -> ReplicationGroup:
        group = self._target(region, group_id, serverless_cache_name)
        migration = self._store.get(Migration, region, group.group_id)
        if migration is None or not (migration.following or migration.phase == MigrationPhase.STARTING):
            raise NotFound(f"Replication group {group.group_id} is not under migration.", resource="Migration")
        if migration.phase == MigrationPhase.COMPLETING:
            raise InvalidState(
                f"Replication group {group.group_id} is already completing its migration.", resource="ReplicationGroup"
            )
        if migration.phase == MigrationPhase.STARTING:
            raise InvalidState(
                f"Replication group {group.group_id} is still starting its migration: complete it once its primary "
                "follows the source.", resource="ReplicationGroup",
            )
        with self._store.transaction() as tx:
            tx.put(replace(migration, phase=MigrationPhase.COMPLETING, force=force, resume=migration.phase))
            self._event(
                tx, group, f"Completing migration of replication group {group.group_id}" + (" (forced)" if force else "")
            )
        self._changed(group)
        return group

    def of(self, region: Region, group_id: str) -> Migration | None:
        """The group's migration (for `cachefleet migrate status` and the views)."""
        found: Migration | None = self._store.get(Migration, region, group_id.lower())
        return found
