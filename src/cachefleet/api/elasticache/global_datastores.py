"""Global datastore handlers and views: Create/Describe/Modify/Failover/Disassociate/Delete
GlobalReplicationGroup and the three shard operations (refused: cluster mode disabled only).
A secondary is created by CreateReplicationGroup with GlobalReplicationGroupId
(``replication_groups.create_replication_group`` hands it to ``global_datastores.create_secondary``)."""

from __future__ import annotations

from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.paging import paginate
from cachefleet.domain import identifiers
from cachefleet.domain.errors import InvalidParameterValue
from cachefleet.domain.global_datastores import GlobalReplicationGroup, ModifyGlobalRequest


def arn(global_id: str) -> str:
    """A global datastore belongs to no one region: its ARN has none (the one tagging takes)."""
    return identifiers.arn("", GlobalReplicationGroup.KIND.arn_type or "", global_id)


def view(ctx: Context, record: GlobalReplicationGroup, *, members: bool = True) -> dict[str, Any]:
    groups = ctx.elasticache.global_datastores.member_groups(record) if members else {}
    shown = []
    for member in record.members if members else ():
        group = groups.get((member.region, member.replication_group_id))
        shown.append({
            "ReplicationGroupId": member.replication_group_id,
            "ReplicationGroupRegion": member.region,
            "Role": member.role.value,
            "AutomaticFailover": group.automatic_failover if group is not None else None,
            "Status": member.status.value,
        })
    return {
        "GlobalReplicationGroupId": record.global_id,
        "GlobalReplicationGroupDescription": record.description,
        "Status": record.status.value,
        "CacheNodeType": record.node_type,
        "Engine": record.engine,
        "EngineVersion": record.engine_version,
        "Members": shown if members else None,
        "ClusterEnabled": record.cluster_enabled,
        "AuthTokenEnabled": record.auth_token_enabled,
        "TransitEncryptionEnabled": record.transit_encryption,
        "AtRestEncryptionEnabled": record.at_rest_encryption,
        "ARN": arn(record.global_id),
    }


def _one(ctx: Context, record: GlobalReplicationGroup) -> dict[str, Any]:
    return {"GlobalReplicationGroup": view(ctx, record)}


def create_global_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    record = ctx.elasticache.global_datastores.create(
        ctx.region, suffix=params["GlobalReplicationGroupIdSuffix"], primary_group_id=params["PrimaryReplicationGroupId"],
        description=params.get("GlobalReplicationGroupDescription", ""), raw_tags=params.get("Tags") or (),
    )
    return _one(ctx, record)


def describe_global_replication_groups(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    records = ctx.elasticache.global_datastores.describe(params.get("GlobalReplicationGroupId"))
    page, marker = paginate(records, params, key=lambda r: r.global_id)
    members = bool(params.get("ShowMemberInfo", False))
    return {"GlobalReplicationGroups": [view(ctx, r, members=members) for r in page], "Marker": marker}


def modify_global_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return _one(ctx, ctx.elasticache.global_datastores.modify(ModifyGlobalRequest.parse(params)))


def failover_global_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    record = ctx.elasticache.global_datastores.failover(
        params["GlobalReplicationGroupId"], primary_region=params["PrimaryRegion"],
        primary_group_id=params["PrimaryReplicationGroupId"],
    )
    return _one(ctx, record)


def disassociate_global_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    record = ctx.elasticache.global_datastores.disassociate(
        params["GlobalReplicationGroupId"], group_id=params["ReplicationGroupId"], region=params["ReplicationGroupRegion"],
    )
    return _one(ctx, record)


def delete_global_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    record = ctx.elasticache.global_datastores.delete(
        params["GlobalReplicationGroupId"], retain_primary=bool(params["RetainPrimaryReplicationGroup"]),
    )
    return _one(ctx, record)


def _node_group_count(params: dict[str, Any]) -> None:
    if params["NodeGroupCount"] < 1:
        raise InvalidParameterValue(f"Invalid NodeGroupCount {params['NodeGroupCount']}: use 1 or more node groups.")


def increase_node_groups_in_global_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _node_group_count(params)
    ctx.elasticache.global_datastores.refuse_shards(
        params["GlobalReplicationGroupId"], "IncreaseNodeGroupsInGlobalReplicationGroup"
    )
    raise AssertionError("refused above")


def decrease_node_groups_in_global_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _node_group_count(params)
    ctx.elasticache.global_datastores.refuse_shards(
        params["GlobalReplicationGroupId"], "DecreaseNodeGroupsInGlobalReplicationGroup"
    )
    raise AssertionError("refused above")


def rebalance_slots_in_global_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.elasticache.global_datastores.refuse_shards(params["GlobalReplicationGroupId"], "RebalanceSlotsInGlobalReplicationGroup")
    raise AssertionError("refused above")
