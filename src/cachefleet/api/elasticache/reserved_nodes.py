"""Reserved cache node handlers and views (bookkeeping only: domain/reserved_nodes.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.paging import paginate
from cachefleet.domain.reserved_nodes import ReservedCacheNode, ReservedCacheNodesOffering, ReservedFilters


def _prices(fixed: float | None, usage: float | None) -> dict[str, Any]:
    # No published price was found for any offering (see domain/reserved_nodes.py): absent, not invented.
    return {"FixedPrice": fixed, "UsagePrice": usage, "RecurringCharges": []}


def offering_view(offering: ReservedCacheNodesOffering) -> dict[str, Any]:
    return {
        "ReservedCacheNodesOfferingId": offering.offering_id,
        "CacheNodeType": offering.node_type,
        "Duration": offering.duration,
        "ProductDescription": offering.product_description,
        "OfferingType": offering.offering_type,
        **_prices(offering.fixed_price, offering.usage_price),
    }


def node_view(node: ReservedCacheNode, now: dt.datetime) -> dict[str, Any]:
    return {
        "ReservedCacheNodeId": node.reserved_id,
        "ReservedCacheNodesOfferingId": node.offering_id,
        "CacheNodeType": node.node_type,
        "StartTime": node.start_time,
        "Duration": node.duration,
        "CacheNodeCount": node.node_count,
        "ProductDescription": node.product_description,
        "OfferingType": node.offering_type,
        "State": node.state(now),
        "ReservationARN": node.arn,
        **_prices(node.fixed_price, node.usage_price),
    }


def describe_reserved_cache_nodes_offerings(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    offerings = ctx.elasticache.reserved_nodes.offerings(ReservedFilters.parse(params))
    page, marker = paginate(offerings, params)
    return {"ReservedCacheNodesOfferings": [offering_view(o) for o in page], "Marker": marker}


def purchase_reserved_cache_nodes_offering(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    use_cases = ctx.elasticache.reserved_nodes
    node = use_cases.purchase(ctx.region, params)
    return {"ReservedCacheNode": node_view(node, use_cases.now())}


def describe_reserved_cache_nodes(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    use_cases = ctx.elasticache.reserved_nodes
    nodes = use_cases.describe(ctx.region, params.get("ReservedCacheNodeId"), ReservedFilters.parse(params))
    page, marker = paginate(nodes, params, key=lambda n: n.reserved_id)
    now = use_cases.now()
    return {"ReservedCacheNodes": [node_view(n, now) for n in page], "Marker": marker}
