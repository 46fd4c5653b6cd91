"""The ElastiCache API: one module of handlers and views per resource family.

A handler is named as botocore's snake_case operation name, takes the request context and the
parsed parameters, calls one use case and returns a dict shaped like the operation's output.
"""

from __future__ import annotations

from cachefleet.api.elasticache import (
    cache_clusters,
    engine_versions,
    events,
    global_datastores,
    migrations,
    parameter_groups,
    replication_groups,
    reserved_nodes,
    security_groups,
    serverless,
    serverless_snapshots,
    service_updates,
    snapshots,
    subnet_groups,
    tags,
    users,
)

FAMILIES = (
    replication_groups, cache_clusters, subnet_groups, engine_versions, tags, events, parameter_groups, security_groups,
    service_updates, users, snapshots, serverless, serverless_snapshots, migrations, reserved_nodes, global_datastores,
)
