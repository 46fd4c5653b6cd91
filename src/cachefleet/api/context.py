"""What a handler is given besides the request's parameters: the use cases and who asked, where."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cachefleet.domain.elasticache import ElastiCache
from cachefleet.domain.identifiers import Region


@dataclass(frozen=True)
class Context:
    """What a handler is given besides the parameters: the use cases, the caller's region, the request id."""

    elasticache: ElastiCache
    region: Region
    request_id: str
    cloudwatch: Any = None  # domain.cloudwatch.CloudWatch, for the monitoring service
    log_reader: Any = None  # domain.logs.LogReader, for the logs service
