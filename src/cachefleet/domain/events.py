"""Events: what happened to a resource and why, as DescribeEvents shows it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from cachefleet.domain.resource import Resource


class EventSourceType(StrEnum):
    """ElastiCache's event source types (DescribeEvents SourceType)."""

    CACHE_CLUSTER = "cache-cluster"
    CACHE_PARAMETER_GROUP = "cache-parameter-group"
    CACHE_SECURITY_GROUP = "cache-security-group"
    CACHE_SUBNET_GROUP = "cache-subnet-group"
    REPLICATION_GROUP = "replication-group"
    SERVERLESS_CACHE = "serverless-cache"
    SERVERLESS_CACHE_SNAPSHOT = "serverless-cache-snapshot"
    USER = "user"
    USER_GROUP = "user-group"


@dataclass(frozen=True)
class Event:
    """Something that happened to a resource, with its reason, in the order it was recorded."""

    region: str
    source_type: EventSourceType
    source_id: str
    message: str
    date: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    sequence: int = 0  # the store's order of recording (0 until recorded)


def event_for(resource: Resource, message: str, when: dt.datetime) -> Event:
    """An event of ``resource``, under its kind's event source type."""
    source = resource.KIND.event_source
    if source is None:
        raise ValueError(f"{resource.KIND.name} records no events")
    return Event(resource.region, EventSourceType(source), resource.key, message, when)
