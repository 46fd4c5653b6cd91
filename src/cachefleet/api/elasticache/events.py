"""DescribeEvents."""

from __future__ import annotations

import math
from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.paging import encode_marker, invalid_marker, marker_of, page_size
from cachefleet.domain.events import Event


def view(item: Event) -> dict[str, Any]:
    return {
        "SourceIdentifier": item.source_id,
        "SourceType": item.source_type.value,
        "Message": item.message,
        "Date": item.date,
    }


def describe_events(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    # One page read from the store (a Describe of a busy window read every event of it: the load
    # test's latency climbed with the window). The Marker names the first event of the next page by
    # its place in the order of recording, so a page boundary stays put while events come and go.
    size = page_size(params)
    after = _first_of_page(params)
    events = ctx.elasticache.events.describe(ctx.region, params, after=after, limit=size + 1)
    marker = None
    if len(events) > size:
        following = events[size]
        marker = encode_marker("e", f"{following.date.timestamp()!r}:{following.sequence}")
    return {"Events": [view(e) for e in events[:size]], "Marker": marker}


def _first_of_page(params: dict[str, Any]) -> tuple[float, int] | None:
    marker = marker_of(params)
    if marker is None:
        return None
    kind, value = marker
    date, _, sequence = value.partition(":")
    try:
        when = float(date)
    except ValueError:
        when = math.nan
    # Bounded: SQLite takes a 64-bit integer, and a non-finite date would compare as NULL.
    if kind == "e" and sequence.isdigit() and len(sequence) <= 18 and math.isfinite(when):
        return when, int(sequence)
    raise invalid_marker(params["Marker"])
