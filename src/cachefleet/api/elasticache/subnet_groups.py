"""Cache subnet group handlers and views."""

from __future__ import annotations

from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.paging import paginate
from cachefleet.domain import identifiers
from cachefleet.domain.subnet_groups import CacheSubnetGroup


def view(group: CacheSubnetGroup) -> dict[str, Any]:
    return {
        "CacheSubnetGroupName": group.name,
        "CacheSubnetGroupDescription": group.description,
        "VpcId": group.vpc_id,
        "Subnets": [
            {
                "SubnetIdentifier": subnet.subnet_id,
                "SubnetAvailabilityZone": {"Name": subnet.availability_zone},
                "SupportedNetworkTypes": ["ipv4"],
            }
            for subnet in group.subnets
        ],
        "ARN": identifiers.arn(group.region, "subnetgroup", group.name),
        "SupportedNetworkTypes": ["ipv4"],
    }


def create_cache_subnet_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"CacheSubnetGroup": view(ctx.elasticache.subnet_groups.create(ctx.region, params))}


def modify_cache_subnet_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"CacheSubnetGroup": view(ctx.elasticache.subnet_groups.modify(ctx.region, params))}


def delete_cache_subnet_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.elasticache.subnet_groups.delete(ctx.region, params["CacheSubnetGroupName"])
    return {}


def describe_cache_subnet_groups(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    groups = ctx.elasticache.subnet_groups.describe(ctx.region, params.get("CacheSubnetGroupName"))
    page, marker = paginate(groups, params, key=lambda g: g.name)
    return {"CacheSubnetGroups": [view(g) for g in page], "Marker": marker}
