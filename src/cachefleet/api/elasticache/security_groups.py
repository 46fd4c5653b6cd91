"""Cache security group (EC2-Classic) handlers and views: create, describe, delete, authorize and
revoke ingress."""

from __future__ import annotations

from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.paging import paginate
from cachefleet.domain import identifiers
from cachefleet.domain.security_groups import CacheSecurityGroup, IngressRequest


def view(group: CacheSecurityGroup) -> dict[str, Any]:
    return {
        "OwnerId": group.owner_id,
        "CacheSecurityGroupName": group.name,
        "Description": group.description,
        "EC2SecurityGroups": [
            {"Status": e.status, "EC2SecurityGroupName": e.name, "EC2SecurityGroupOwnerId": e.owner_id}
            for e in group.ec2_security_groups
        ],
        "ARN": identifiers.arn(group.region, "securitygroup", group.name),
    }


def create_cache_security_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"CacheSecurityGroup": view(ctx.elasticache.security_groups.create(ctx.region, params))}


def delete_cache_security_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.elasticache.security_groups.delete(ctx.region, params["CacheSecurityGroupName"])
    return {}


def describe_cache_security_groups(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    groups = ctx.elasticache.security_groups.describe(ctx.region, params.get("CacheSecurityGroupName"))
    page, marker = paginate(groups, params, key=lambda g: g.name)
    return {"CacheSecurityGroups": [view(g) for g in page], "Marker": marker}


def authorize_cache_security_group_ingress(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = ctx.elasticache.security_groups.authorize(ctx.region, IngressRequest.parse(params))
    return {"CacheSecurityGroup": view(group)}


def revoke_cache_security_group_ingress(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = ctx.elasticache.security_groups.revoke(ctx.region, IngressRequest.parse(params))
    return {"CacheSecurityGroup": view(group)}
