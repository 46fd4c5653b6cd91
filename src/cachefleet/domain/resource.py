"""What every stored resource kind declares about itself: its ``Kind``.

Each record class carries its ``KIND`` (a class variable): the name the store and the error
mapping know it by, its ARN resource type, the event source type of its events and the
ElastiCache error codes of its faults. ``domain/kinds.py`` lists every kind in one table; the
store, events, tagging, error mapping and the reconciler's routing read it from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol


@dataclass(frozen=True)
class Kind:
    """A resource kind: how it is named, addressed and reported."""

    name: str  # the store's and the error mapping's name, e.g. "ReplicationGroup"
    noun: str  # how messages name one, e.g. "Replication group"
    not_found: str  # ElastiCache's error code when one does not exist
    arn_type: str | None = None  # "replicationgroup" in arn:aws:elasticache:<region>:<account>:replicationgroup:<id>
    event_source: str | None = None  # the SourceType of its events, an EventSourceType value (None: it records none)
    already_exists: str | None = None
    invalid_state: str | None = None
    quota_exceeded: str | None = None
    taggable: bool = False
    # Set for a kind that spans regions: its records are stored under this pseudo region whatever the
    # request's, and its ARN names no region (arn:aws:elasticache::<account>:<type>:<id>).
    store_region: str | None = None


class Resource(Protocol):
    """A stored record: one region's resource of one kind, known by its key."""

    KIND: ClassVar[Kind]

    @property
    def region(self) -> str: ...

    @property
    def key(self) -> str: ...
