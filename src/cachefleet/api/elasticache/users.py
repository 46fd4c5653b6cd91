"""RBAC handlers and views: users and user groups. A user's view says how it authenticates and how
many passwords it has, never the passwords (nor their hashes)."""

from __future__ import annotations

from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.paging import paginate
from cachefleet.domain import identifiers
from cachefleet.domain.users import (
    MINIMUM_ENGINE_VERSION,
    CreateUserGroupRequest,
    CreateUserRequest,
    ModifyUserGroupRequest,
    ModifyUserRequest,
    User,
    UserGroup,
    user_filters,
)


def user_view(ctx: Context, user: User) -> dict[str, Any]:
    groups = ctx.elasticache.users.groups_of(user)
    return {
        "UserId": user.user_id,
        "UserName": user.user_name,
        "Status": user.status.value,
        "Engine": user.engine,
        "MinimumEngineVersion": MINIMUM_ENGINE_VERSION,
        "AccessString": user.access_string,
        "UserGroupIds": [g.user_group_id for g in groups],
        "Authentication": {"Type": user.authentication, "PasswordCount": len(user.password_hashes)},
        "ARN": identifiers.arn(user.region, "user", user.user_id),
    }


def user_group_view(ctx: Context, group: UserGroup) -> dict[str, Any]:
    using = ctx.elasticache.user_groups.replication_groups_using(group)
    pending = None
    if group.user_ids_to_add or group.user_ids_to_remove:
        pending = {"UserIdsToAdd": list(group.user_ids_to_add), "UserIdsToRemove": list(group.user_ids_to_remove)}
    return {
        "UserGroupId": group.user_group_id,
        "Status": group.status.value,
        "Engine": group.engine,
        "UserIds": list(group.user_ids),
        "MinimumEngineVersion": MINIMUM_ENGINE_VERSION,
        "PendingChanges": pending,
        "ReplicationGroups": [g for g in using if not identifiers.is_serverless_group(g)],
        # A serverless cache's user group is its replication group's (domain/serverless.py).
        "ServerlessCaches": [g.removeprefix(identifiers.SERVERLESS_GROUP_PREFIX) for g in using
                             if identifiers.is_serverless_group(g)],
        "ARN": identifiers.arn(group.region, "usergroup", group.user_group_id),
    }


def create_user(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return user_view(ctx, ctx.elasticache.users.create(ctx.region, CreateUserRequest.parse(params)))


def modify_user(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return user_view(ctx, ctx.elasticache.users.modify(ctx.region, ModifyUserRequest.parse(params)))


def delete_user(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return user_view(ctx, ctx.elasticache.users.delete(ctx.region, params["UserId"]))


def describe_users(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    users = ctx.elasticache.users.describe(
        ctx.region, user_id=params.get("UserId"), engine=params.get("Engine"), filters=user_filters(params.get("Filters"))
    )
    page, marker = paginate(users, params, key=lambda u: u.user_id, maximum=100)
    return {"Users": [user_view(ctx, u) for u in page], "Marker": marker}


def create_user_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return user_group_view(ctx, ctx.elasticache.user_groups.create(ctx.region, CreateUserGroupRequest.parse(params)))


def modify_user_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return user_group_view(ctx, ctx.elasticache.user_groups.modify(ctx.region, ModifyUserGroupRequest.parse(params)))


def delete_user_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return user_group_view(ctx, ctx.elasticache.user_groups.delete(ctx.region, params["UserGroupId"]))


def describe_user_groups(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    groups = ctx.elasticache.user_groups.describe(ctx.region, params.get("UserGroupId"))
    page, marker = paginate(groups, params, key=lambda g: g.user_group_id, maximum=100)
    return {"UserGroups": [user_group_view(ctx, g) for g in page], "Marker": marker}
