"""Cache parameter group handlers and views: create, modify, reset, delete, describe the groups,
their parameters and the families' engine defaults."""

from __future__ import annotations

from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.paging import paginate
from cachefleet.domain import identifiers
from cachefleet.domain.parameter_groups import (
    CacheParameterGroup,
    CreateCacheParameterGroupRequest,
    GroupParameters,
    ModifyCacheParameterGroupRequest,
    ParameterValue,
    ResetCacheParameterGroupRequest,
    source_filter,
)
from cachefleet.domain.parameters import NodeTypeSpecificParameter


def view(group: CacheParameterGroup) -> dict[str, Any]:
    return {
        "CacheParameterGroupName": group.name,
        "CacheParameterGroupFamily": group.family,
        "Description": group.description,
        "IsGlobal": False,
        "ARN": identifiers.arn(group.region, "parametergroup", group.name),
    }


def parameter_view(item: ParameterValue) -> dict[str, Any]:
    parameter = item.parameter
    return {
        "ParameterName": parameter.name,
        "ParameterValue": item.value,
        "Description": parameter.description,
        "Source": item.source.value,
        "DataType": parameter.data_type.value,
        "AllowedValues": parameter.allowed_values or None,
        "IsModifiable": parameter.modifiable,
        "MinimumEngineVersion": parameter.minimum_engine_version,
        "ChangeType": parameter.change_type.value,
    }


def node_type_specific_view(parameter: NodeTypeSpecificParameter) -> dict[str, Any]:
    return {
        "ParameterName": parameter.name,
        "Description": parameter.description,
        "Source": "system",
        "DataType": parameter.data_type.value,
        "AllowedValues": parameter.allowed_values or None,
        "IsModifiable": parameter.modifiable,
        "MinimumEngineVersion": parameter.minimum_engine_version,
        "CacheNodeTypeSpecificValues": [{"CacheNodeType": t, "Value": v} for t, v in parameter.values],
        "ChangeType": parameter.change_type.value,
    }


def _page(listed: GroupParameters, params: dict[str, Any]) -> dict[str, Any]:
    """One page of parameters; the node-type-specific ones come with the first page."""
    page, marker = paginate(listed.parameters, params, key=lambda p: p.parameter.name)
    first = not params.get("Marker")
    return {
        "Marker": marker,
        "Parameters": [parameter_view(p) for p in page],
        "CacheNodeTypeSpecificParameters": [node_type_specific_view(p) for p in listed.node_type_specific] if first else [],
    }


def create_cache_parameter_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = CreateCacheParameterGroupRequest.parse(params)
    return {"CacheParameterGroup": view(ctx.elasticache.parameter_groups.create(ctx.region, request))}


def modify_cache_parameter_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = ModifyCacheParameterGroupRequest.parse(params)
    return {"CacheParameterGroupName": ctx.elasticache.parameter_groups.modify(ctx.region, request).name}


def reset_cache_parameter_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    request = ResetCacheParameterGroupRequest.parse(params)
    return {"CacheParameterGroupName": ctx.elasticache.parameter_groups.reset(ctx.region, request).name}


def delete_cache_parameter_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.elasticache.parameter_groups.delete(ctx.region, params["CacheParameterGroupName"])
    return {}


def describe_cache_parameter_groups(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    groups = ctx.elasticache.parameter_groups.describe(ctx.region, params.get("CacheParameterGroupName"))
    page, marker = paginate(groups, params, key=lambda g: g.name)
    return {"CacheParameterGroups": [view(g) for g in page], "Marker": marker}


def describe_cache_parameters(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    listed = ctx.elasticache.parameter_groups.parameters(
        ctx.region, params["CacheParameterGroupName"], source_filter(params.get("Source"))
    )
    return _page(listed, params)


def describe_engine_default_parameters(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    listed = ctx.elasticache.parameter_groups.engine_defaults(params["CacheParameterGroupFamily"])
    return {"EngineDefaults": {"CacheParameterGroupFamily": listed.family, **_page(listed, params)}}
