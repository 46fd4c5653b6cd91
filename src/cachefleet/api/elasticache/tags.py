"""ListTagsForResource, AddTagsToResource, RemoveTagsFromResource."""

from __future__ import annotations

from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.elasticache.common import tag_list


def add_tags_to_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"TagList": tag_list(ctx.elasticache.tagging.add(ctx.region, params["ResourceName"], params["Tags"]))}


def list_tags_for_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"TagList": tag_list(ctx.elasticache.tagging.tags_of(ctx.region, params["ResourceName"]))}


def remove_tags_from_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"TagList": tag_list(ctx.elasticache.tagging.remove(ctx.region, params["ResourceName"], params["TagKeys"]))}
