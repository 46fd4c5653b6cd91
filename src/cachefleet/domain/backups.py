"""What the cache cluster and replication group families ask of the snapshots family, and the
backup settings they share.

Creating a group or cluster from a snapshot (``SnapshotName``, ``SnapshotArns``), deleting one
with a ``FinalSnapshotIdentifier``, and the backup settings of both families
(``SnapshotRetentionLimit``, ``SnapshotWindow`` against the maintenance window, ``KmsKeyId``)
are checked here; the work itself is the snapshots family's (``domain/snapshots.py``), reached
through the :class:`Backups` protocol so that neither family imports the other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cachefleet.domain.errors import InvalidParameterCombination, InvalidParameterValue
from cachefleet.domain.events import Event
from cachefleet.domain.identifiers import Region
from cachefleet.domain.resource import Resource

MAX_RETENTION_DAYS = 35  # ElastiCache's limit on SnapshotRetentionLimit
_S3_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:s3:::(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>[^\x00]+)$")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_WEEK = 7 * 1440


def retention_limit(value: Any) -> int:
    number = int(value)
    if not 0 <= number <= MAX_RETENTION_DAYS:
        raise InvalidParameterValue(
            f"Invalid SnapshotRetentionLimit {value}: keep automatic snapshots 0 (off) to {MAX_RETENTION_DAYS} days."
        )
    return number


def kms_key_id(value: Any) -> str:
    text = str(value)
    if not 1 <= len(text) <= 2048 or any(ord(ch) < 32 for ch in text):
        raise InvalidParameterValue(
            f"Invalid KmsKeyId '{text[:40]}': give a key id, alias or ARN of 1 to 2048 printable characters."
        )
    return text


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def window_span(window: str) -> tuple[int, int]:
    """A daily ``hh:mm-hh:mm`` window as (start minute of the day, length in minutes)."""
    start, end = window.split("-")
    return _minutes(start), (_minutes(end) - _minutes(start)) % 1440


def check_windows(snapshot_window: str, maintenance_window: str) -> None:
    """ElastiCache's rule: the daily snapshot window must not overlap the weekly maintenance window.

    Both are valid already (``validation.snapshot_window``, ``validation.maintenance_window``).
    """
    snap_start, snap_length = window_span(snapshot_window)
    first, last = maintenance_window.lower().split("-")
    start_day, start_time = first.split(":", 1)
    end_day, end_time = last.split(":", 1)
    m_start = _DAYS.index(start_day) * 1440 + _minutes(start_time)
    m_length = (_DAYS.index(end_day) * 1440 + _minutes(end_time) - m_start) % _WEEK
    for day in range(8):  # the eighth: a window crossing the week's end
        s = day * 1440 + snap_start
        for shift in (-_WEEK, 0, _WEEK):
            ms = m_start + shift
            if s < ms + m_length and ms < s + snap_length:
                raise InvalidParameterCombination(
                    f"SnapshotWindow {snapshot_window} overlaps PreferredMaintenanceWindow {maintenance_window}; "
                    "choose a snapshot window outside the maintenance window."
                )


def parse_s3_arn(value: str) -> tuple[str, str]:
    match = _S3_ARN.match(value)
    if match is None:
        raise InvalidParameterValue(
            f"Invalid SnapshotArns member '{value[:80]}': use the ARN of an RDB object, arn:aws:s3:::bucket/key.rdb."
        )
    return match.group("bucket"), match.group("key")


@dataclass(frozen=True)
class RestoreRequest:
    """Where a new group or cluster gets its data: a snapshot by name, or RDB objects by ARN."""

    snapshot_name: str | None = None
    objects: tuple[tuple[str, str], ...] = ()  # (bucket, key) of each SnapshotArns member

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> RestoreRequest | None:
        name = params.get("SnapshotName")
        arns = list(params.get("SnapshotArns") or [])
        if name is not None and arns:
            raise InvalidParameterCombination("Give SnapshotName or SnapshotArns, not both.")
        if name is not None:
            return cls(snapshot_name=str(name).lower())
        if arns:
            if len(arns) > 500:
                raise InvalidParameterValue(f"SnapshotArns lists {len(arns)} objects; at most 500 (one per shard).")
            objects = tuple(parse_s3_arn(str(arn)) for arn in arns)
            if len(set(objects)) != len(objects):
                raise InvalidParameterValue("SnapshotArns names an object twice; give each RDB object once.")
            return cls(objects=objects)
        return None


@dataclass(frozen=True)
class SnapshotDefaults:
    """What a restore takes from its snapshot where the request is silent (RDB objects say nothing
    of engines or shapes: only their number of shards)."""

    engine: str | None = None
    engine_version: str | None = None
    node_type: str | None = None
    port: int | None = None
    cluster_enabled: bool | None = None
    num_node_groups: int = 1
    replicas_per_node_group: int = 0
    at_rest_encryption: bool = False


@dataclass(frozen=True)
class Prepared:
    """Records and events the snapshots family adds to another family's transaction."""

    records: tuple[Resource, ...] = ()
    events: tuple[Event, ...] = field(default_factory=tuple)


class Backups(Protocol):
    """The snapshots family, as creating and deleting groups and clusters need it."""

    def restore_defaults(self, region: Region, request: RestoreRequest) -> SnapshotDefaults:
        """What the snapshot says (SnapshotNotFound, a snapshot not available, a missing object raise)."""
        ...

    def prepare_restore(
        self,
        region: Region,
        request: RestoreRequest,
        *,
        target: Resource,
        engine: str,
        version: str,
        used: Iterable[str],
    ) -> Prepared:
        """The restore plan of a new ``target``; raises before anything is created when the
        target's engine version cannot load the snapshot's RDB files."""
        ...

    def prepare_final_snapshot(self, region: Region, name: str, *, source: Resource) -> Prepared:
        """A snapshot of ``source`` to be taken before its nodes stop (FinalSnapshotIdentifier)."""
        ...


class NoBackups:
    """An installation without the snapshots family: every backup request is refused."""

    def restore_defaults(self, region: Region, request: RestoreRequest) -> SnapshotDefaults:
        raise InvalidParameterCombination("Restoring from a snapshot is not supported by this Cachefleet.")

    def prepare_restore(
        self, region: Region, request: RestoreRequest, *, target: Resource, engine: str, version: str,
        used: Iterable[str],
    ) -> Prepared:
        raise InvalidParameterCombination("Restoring from a snapshot is not supported by this Cachefleet.")

    def prepare_final_snapshot(self, region: Region, name: str, *, source: Resource) -> Prepared:
        raise InvalidParameterCombination("FinalSnapshotIdentifier is not supported by this Cachefleet.")
