"""DescribeEvents: a region's event log (14 days), filtered by time, source type and source."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from cachefleet.domain import identifiers
from cachefleet.domain.base import UseCases
from cachefleet.domain.errors import InvalidParameterCombination, InvalidParameterValue
from cachefleet.domain.events import Event, EventSourceType
from cachefleet.domain.identifiers import Region

MAX_EVENT_AGE = dt.timedelta(days=14)
MAX_DURATION_MINUTES = 20160  # 14 days
_LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)
_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)


def _shifted(when: dt.datetime, minutes: int) -> dt.datetime:
    """``when`` moved by ``minutes``, held at the ends of the calendar instead of overflowing."""
    try:
        return when + dt.timedelta(minutes=minutes)
    except OverflowError:
        return _LATEST if minutes > 0 else _EARLIEST


class EventLog(UseCases):
    """DescribeEvents over the store's event log."""

    def describe(
        self, region: Region, params: Mapping[str, Any], *, after: tuple[float, int] | None = None, limit: int | None = None
    ) -> list[Event]:
        """The window's events in the order of recording, from ``after`` (a timestamp and sequence)
        on, at most ``limit`` (a page is read, not the window)."""
        now = self._clock.now()
        start: dt.datetime | None = params.get("StartTime")
        end: dt.datetime = params.get("EndTime", now)
        if "Duration" in params:
            duration = int(params["Duration"])
            if not 0 <= duration <= MAX_DURATION_MINUTES:
                raise InvalidParameterValue(
                    f"Invalid Duration {duration}: use 0 to {MAX_DURATION_MINUTES} minutes (14 days)."
                )
            if start is None:
                start = _shifted(end, -duration)
            elif "EndTime" not in params:
                end = _shifted(start, duration)
        if start is None:
            start = _shifted(end, -60)
        if start > end:
            raise InvalidParameterCombination("StartTime must be earlier than EndTime.")
        start = max(start, now - MAX_EVENT_AGE)
        if start > end:
            return []
        source_type = EventSourceType(params["SourceType"]) if "SourceType" in params else None
        source_id = params.get("SourceIdentifier")
        # A serverless cache's hidden group and its nodes are not shown (the cache's own events are).
        return list(self._store.events(
            region, start=start, end=end, source_type=source_type, source_id=source_id.lower() if source_id else None,
            hidden_prefix=identifiers.SERVERLESS_GROUP_PREFIX, after=after, limit=limit,
        ))
