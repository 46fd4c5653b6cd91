"""The ElastiCache API: one module of handlers and views per resource family.

A handler is named as botocore's snake_case operation name, takes the request context and the
parsed parameters, calls one use case and returns a dict shaped like the operation's output.
"""

from __future__ import annotations

from cachefleet.api.elasticache import (
    cache_clusters,
    engine_versions,
    events,
    replication_groups,
    snapshots,
    subnet_groups,
    tags,
)

FAMILIES = (replication_groups, cache_clusters, subnet_groups, engine_versions, tags, events, snapshots)
