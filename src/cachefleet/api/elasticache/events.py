"""DescribeEvents."""

from __future__ import annotations

from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.paging import paginate
from cachefleet.domain.events import Event


def view(item: Event) -> dict[str, Any]:
    return {
        "SourceIdentifier": item.source_id,
        "SourceType": item.source_type.value,
        "Message": item.message,
        "Date": item.date,
    }


def describe_events(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    events = ctx.elasticache.events.describe(ctx.region, params)
    # Keyed by the order of recording: a page boundary stays put while events come and go.
    page, marker = paginate(events, params, key=lambda e: f"{e.date.timestamp():020.6f}:{e.sequence:015d}")
    return {"Events": [view(e) for e in page], "Marker": marker}
