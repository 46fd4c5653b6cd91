"""Serverless cache snapshots: Create/Describe/Copy/Delete/ExportServerlessCacheSnapshot.

A serverless cache snapshot is ElastiCache's own kind (ARN type ``serverlesscachesnapshot``, its
own faults and namespace: DescribeSnapshots never lists one), but what it holds is what a
snapshot of the cache's hidden replication group holds: one RDB per shard. So it IS a
``Snapshot`` record of that group (``domain/snapshots.py``), stored as ``serverless--<name>``
with ``serverless_cache_name`` set, and every step on files and engines is the snapshot
family's (take, copy, export, delete: ``control/workflows/snapshots.py``; restore into a new
serverless cache: ``workflows/restore.py``). This module owns the requests, the serverless view
of the statuses (``status``), and the use cases, which check what ElastiCache checks (with
its serverless faults) before they hand the work to a ``Snapshots`` instance of their own (the
only one that may name serverless snapshots and groups).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cachefleet.domain import backups, identifiers
from cachefleet.domain.base import Dependencies, UseCases
from cachefleet.domain.errors import (
    AlreadyExists,
    CachefleetError,
    InvalidParameterValue,
    InvalidState,
    NotFound,
)
from cachefleet.domain.identifiers import Region
from cachefleet.domain.replication_groups import GroupStatus, ReplicationGroup
from cachefleet.domain.serverless import ServerlessCache, ServerlessCacheStatus, status_of
from cachefleet.domain.snapshots import (
    SERVERLESS_SNAPSHOT,
    CopySnapshotRequest,
    CreateSnapshotRequest,
    Restore,
    Snapshot,
    Snapshots,
    SnapshotSource,
    SnapshotStatus,
    serverless_key,
    snapshot_name,
)
from cachefleet.domain.tags import Tag, tags

KIND = SERVERLESS_SNAPSHOT.name
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class SnapshotType(StrEnum):
    """ServerlessCacheSnapshot.SnapshotType, as ElastiCache writes it."""

    MANUAL = "manual"
    AUTOMATIC = "automatic"


def snapshot_type(snapshot: Snapshot) -> SnapshotType:
    return SnapshotType.AUTOMATIC if snapshot.source == SnapshotSource.AUTOMATED else SnapshotType.MANUAL


def status(snapshot: Snapshot, *, restoring: bool) -> str:
    """ElastiCache's serverless snapshot statuses (creating, available, restoring, copying,
    deleting). An export to S3 is shown as ``copying`` (ElastiCache's export is a copy to a
    bucket); a snapshot whose RDBs could not be taken is ``failed``."""
    if snapshot.status == SnapshotStatus.AVAILABLE and restoring:
        return "restoring"
    if snapshot.status == SnapshotStatus.EXPORTING:
        return "copying"
    return snapshot.status.value


def expiry_time(snapshot: Snapshot) -> dt.datetime | None:
    """An automatic snapshot expires after its cache's retention limit when it was taken."""
    if snapshot.source != SnapshotSource.AUTOMATED or snapshot.snapshot_retention_limit <= 0:
        return None
    return snapshot.create_time + dt.timedelta(days=snapshot.snapshot_retention_limit)


def major_version(snapshot: Snapshot) -> str:
    return snapshot.engine_version.split(".")[0]


def _name(value: Any, parameter: str) -> str:
    return snapshot_name(value, parameter=parameter)


def _tags(params: Mapping[str, Any]) -> tuple[Tag, ...]:
    return tags(params.get("Tags"))


# ---------------------------------------------------------------------- requests
@dataclass(frozen=True)
class CreateServerlessCacheSnapshotRequest:
    name: str
    cache_name: str
    kms_key_id: str | None
    tags: tuple[Tag, ...]

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> CreateServerlessCacheSnapshotRequest:
        return cls(
            name=_name(params["ServerlessCacheSnapshotName"], "ServerlessCacheSnapshotName"),
            cache_name=str(params["ServerlessCacheName"]).lower(),
            kms_key_id=backups.kms_key_id(params["KmsKeyId"]) if params.get("KmsKeyId") else None,
            tags=_tags(params),
        )


@dataclass(frozen=True)
class DescribeServerlessCacheSnapshotsRequest:
    cache_name: str | None = None
    snapshot_name: str | None = None
    snapshot_type: SnapshotType | None = None

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> DescribeServerlessCacheSnapshotsRequest:
        kind = params.get("SnapshotType")
        if kind is not None and kind not in {t.value for t in SnapshotType}:
            raise InvalidParameterValue(f"Invalid SnapshotType '{kind}': use manual or automatic.")
        return cls(
            cache_name=str(params["ServerlessCacheName"]).lower() if params.get("ServerlessCacheName") else None,
            snapshot_name=(
                str(params["ServerlessCacheSnapshotName"]).lower() if params.get("ServerlessCacheSnapshotName") else None
            ),
            snapshot_type=SnapshotType(kind) if kind is not None else None,
        )


@dataclass(frozen=True)
class CopyServerlessCacheSnapshotRequest:
    source_name: str
    target_name: str
    kms_key_id: str | None
    tags: tuple[Tag, ...]

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> CopyServerlessCacheSnapshotRequest:
        return cls(
            source_name=str(params["SourceServerlessCacheSnapshotName"]).lower(),
            target_name=_name(params["TargetServerlessCacheSnapshotName"], "TargetServerlessCacheSnapshotName"),
            kms_key_id=backups.kms_key_id(params["KmsKeyId"]) if params.get("KmsKeyId") else None,
            tags=_tags(params),
        )


@dataclass(frozen=True)
class ExportServerlessCacheSnapshotRequest:
    name: str
    bucket: str

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ExportServerlessCacheSnapshotRequest:
        bucket = str(params["S3BucketName"])
        if not _BUCKET.match(bucket):
            raise InvalidParameterValue(
                f"Invalid S3BucketName '{bucket[:70]}': an S3 bucket name has 3 to 63 lower-case letters, digits, dots "
                "and hyphens."
            )
        return cls(name=str(params["ServerlessCacheSnapshotName"]).lower(), bucket=bucket)


# ---------------------------------------------------------------------- use cases
@contextmanager
def _as_serverless() -> Iterator[None]:
    """The snapshot family's errors, told with this family's kinds (their faults are the client's)."""
    try:
        yield
    except CachefleetError as error:
        renamed = {"Snapshot": KIND, "ReplicationGroup": ServerlessCache.KIND.name}.get(error.resource)
        if renamed is None:
            raise
        message = error.message.replace(identifiers.SERVERLESS_GROUP_PREFIX, "")
        raise type(error)(message, resource=renamed) from error


class ServerlessSnapshots(UseCases):
    """The serverless snapshot operations, on top of their own ``Snapshots`` instance."""

    def __init__(self, deps: Dependencies, *, snapshots: Snapshots) -> None:
        """``snapshots``: this family's own instance (it may name serverless groups and snapshots)."""
        super().__init__(deps)
        self._snapshots = snapshots
        self._snapshots.serves_serverless = True

    def _snapshot(self, region: Region, name: str) -> Snapshot:
        found = self._store.get(Snapshot, region, serverless_key(name.lower()))
        if found is None:
            raise NotFound(f"Serverless cache snapshot {name} not found.", resource="ServerlessCacheSnapshot")
        return found

    def _check_new(self, region: Region, name: str) -> None:
        if self._store.get(Snapshot, region, serverless_key(name)) is not None:
            raise AlreadyExists(f"Serverless cache snapshot {name} already exists.", resource="ServerlessCacheSnapshot")

    def restoring(self, snapshot: Snapshot) -> bool:
        return any(r.snapshot_name == snapshot.name for r in self._store.list(Restore, snapshot.region))

    def _require(self, snapshot: Snapshot, *allowed: SnapshotStatus, action: str) -> None:
        if snapshot.status not in allowed:
            raise InvalidState(
                f"Serverless cache snapshot {snapshot.user_name} is {status(snapshot, restoring=False)}; it can be "
                f"{action} once it is available.",
                resource="ServerlessCacheSnapshot",
            )

    def create(self, region: Region, request: CreateServerlessCacheSnapshotRequest) -> Snapshot:
        cache = self._get(ServerlessCache, region, request.cache_name)
        group: ReplicationGroup | None = self._store.get(ReplicationGroup, region, cache.group_id)
        current = status_of(cache, group)
        if current != ServerlessCacheStatus.AVAILABLE or group is None or group.status != GroupStatus.AVAILABLE:
            doing = "being snapshotted" if group is not None and group.status == GroupStatus.SNAPSHOTTING else current
            raise InvalidState(
                f"Serverless cache {cache.name} is {doing}; it can be snapshotted once it is available.",
                resource="ServerlessCache",
            )
        self._check_new(region, request.name)
        with _as_serverless():
            return self._snapshots.create(region, CreateSnapshotRequest(
                name=serverless_key(request.name), replication_group_id=cache.group_id, cache_cluster_id=None,
                kms_key_id=request.kms_key_id or cache.kms_key_id, tags=request.tags,
            ))

    def describe(self, region: Region, request: DescribeServerlessCacheSnapshotsRequest) -> list[Snapshot]:
        if request.snapshot_name is not None:
            found = [self._snapshot(region, request.snapshot_name)]
        else:
            found = sorted(
                (s for s in self._store.list(Snapshot, region) if s.is_serverless), key=lambda s: s.name
            )
        if request.cache_name is not None:
            found = [s for s in found if s.serverless_cache_name == request.cache_name]
            if not found:
                self._get(ServerlessCache, region, request.cache_name)  # ServerlessCacheNotFoundFault
        if request.snapshot_type is not None:
            found = [s for s in found if snapshot_type(s) == request.snapshot_type]
        return found

    def delete(self, region: Region, name: str) -> Snapshot:
        snapshot = self._snapshot(region, name)
        self._require(snapshot, SnapshotStatus.AVAILABLE, SnapshotStatus.FAILED, action="deleted")
        if self.restoring(snapshot):
            raise InvalidState(
                f"Serverless cache snapshot {snapshot.user_name} is being restored; delete it once that is done.",
                resource="ServerlessCacheSnapshot",
            )
        with _as_serverless():
            return self._snapshots.delete(region, snapshot.name)

    def copy(self, region: Region, request: CopyServerlessCacheSnapshotRequest) -> Snapshot:
        source = self._snapshot(region, request.source_name)
        self._require(source, SnapshotStatus.AVAILABLE, action="copied")
        self._check_new(region, request.target_name)
        with _as_serverless():
            return self._snapshots.copy(region, CopySnapshotRequest(
                source_name=source.name, target_name=serverless_key(request.target_name), target_bucket=None,
                kms_key_id=request.kms_key_id, tags=request.tags,
            ))

    def export(self, region: Region, request: ExportServerlessCacheSnapshotRequest) -> Snapshot:
        """Its RDBs to ``<bucket>/<name>-<shard>.rdb``, as CopySnapshot with a TargetBucket writes them."""
        snapshot = self._snapshot(region, request.name)
        self._require(snapshot, SnapshotStatus.AVAILABLE, action="exported")
        with _as_serverless():
            return self._snapshots.copy(region, CopySnapshotRequest(
                source_name=snapshot.name, target_name=snapshot.user_name, target_bucket=request.bucket,
                kms_key_id=None, tags=(),
            ))
