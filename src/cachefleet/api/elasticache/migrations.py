"""Online migration handlers: StartMigration, TestMigration, CompleteMigration (each answers with
the replication group), and the serverless path of the model (PrepareMigration, StopMigration,
ServerlessCacheName), which Cachefleet does not offer: ElastiCache's serverless faults say so."""

from __future__ import annotations

from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.elasticache.replication_groups import _one
from cachefleet.api.errors import ApiError
from cachefleet.domain.errors import InvalidParameterValue


def _no_serverless(ctx: Context, name: str) -> ApiError:
    """A serverless cache has no migration here: its own fault, or NotFound for a name that does not exist."""
    ctx.elasticache.serverless.describe(ctx.region, name)  # ServerlessCacheNotFoundFault for an unknown name
    return ApiError(
        "ServerlessCacheNotUnderMigrationFault",
        f"Serverless cache {name} is not under migration: Cachefleet migrates into node-based replication groups only "
        "(ReplicationGroupId, not ServerlessCacheName).",
    )


def start_migration(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("ServerlessCacheName") and not params.get("ReplicationGroupId"):
        raise _no_serverless(ctx, params["ServerlessCacheName"])
    # Neither can be honoured, so neither is accepted and dropped: the cutover is CompleteMigration's, and
    # the target's primary replicates the source with a full sync, which always replaces the target's data.
    if params.get("AutoCutover"):
        raise InvalidParameterValue(
            "AutoCutover is not supported by Cachefleet: complete the migration with CompleteMigration."
        )
    if params.get("ClearTargetCacheData") is False:
        raise InvalidParameterValue(
            "ClearTargetCacheData=false is not supported by Cachefleet: the target replicates the source with a "
            "full sync, which replaces the target's data; omit ClearTargetCacheData or set it to true."
        )
    group = ctx.elasticache.migrations.start(ctx.region, params.get("ReplicationGroupId"),
                                             params.get("CustomerNodeEndpointList"),
                                             serverless_cache_name=params.get("ServerlessCacheName"))
    return _one(ctx, group)


def test_migration(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = ctx.elasticache.migrations.test(ctx.region, params["ReplicationGroupId"], params["CustomerNodeEndpointList"])
    return _one(ctx, group)


def complete_migration(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("ServerlessCacheName") and not params.get("ReplicationGroupId"):
        raise _no_serverless(ctx, params["ServerlessCacheName"])
    group = ctx.elasticache.migrations.complete(ctx.region, params.get("ReplicationGroupId"),
                                                force=bool(params.get("Force", False)),
                                                serverless_cache_name=params.get("ServerlessCacheName"))
    return _one(ctx, group)


def prepare_migration(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params["ServerlessCacheName"]
    ctx.elasticache.serverless.describe(ctx.region, name)
    raise ApiError(
        "InvalidServerlessCacheStateFault",
        f"Serverless cache {name} cannot be prepared for migration: PrepareMigration is not offered by Cachefleet, "
        "which migrates into node-based replication groups only (StartMigration with ReplicationGroupId).",
    )


def stop_migration(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    raise _no_serverless(ctx, params["ServerlessCacheName"])
