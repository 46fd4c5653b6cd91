"""A CloudWatch Logs subset over the log files Cachefleet delivers (slow log, engine log).

Log delivery to ``cloudwatch-logs`` writes one file per log stream under the data dir; these
handlers read them back through the CloudWatch Logs API (``aws logs filter-log-events``,
``cachefleet logs``), so the files never have to be reached on the server's disk.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.errors import ApiError
from cachefleet.domain import identifiers
from cachefleet.domain.errors import NotFound
from cachefleet.domain.logs import LogReader

MAX_EVENTS = 10_000


def _reader(ctx: Context) -> LogReader:
    if ctx.log_reader is None:
        raise ApiError("InvalidAction", "Log delivery is not enabled on this Cachefleet server.")
    reader: LogReader = ctx.log_reader
    return reader


def _group_name(params: dict[str, Any]) -> str:
    name = params.get("logGroupName") or params.get("logGroupIdentifier")
    if not name:
        raise ApiError("InvalidParameterException", "Give logGroupName (or logGroupIdentifier).")
    return str(name).split(":log-group:")[-1].removesuffix(":*")


def _missing_group(name: str) -> NotFound:
    return NotFound(
        f"The specified log group does not exist: {name}. Log groups appear when a replication group delivers logs "
        "to it (LogDeliveryConfigurations with DestinationType cloudwatch-logs).",
        resource="LogGroup",
    )


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().rpartition("/")[2])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError("InvalidParameterException", f"Invalid nextToken '{token}': pass the token of a previous response.") from None


def _token(kind: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}/{offset}".encode()).decode()


def describe_log_groups(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    prefix = params.get("logGroupNamePrefix", "")
    groups = [g for g in _reader(ctx).groups(ctx.region) if g[0].startswith(prefix)]
    return {
        "logGroups": [
            {
                "logGroupName": name,
                "creationTime": created,
                "storedBytes": stored,
                "arn": f"arn:aws:logs:{ctx.region}:{identifiers.account_id()}:log-group:{name}:*",
                "logGroupClass": "STANDARD",
            }
            for name, created, stored in groups
        ]
    }


def describe_log_streams(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = _group_name(params)
    streams = _reader(ctx).streams(ctx.region, group)
    if streams is None:
        raise _missing_group(group)
    prefix = params.get("logStreamNamePrefix", "")
    chosen = [s for s in streams if s.name.startswith(prefix)]
    if params.get("orderBy") == "LastEventTime":
        chosen.sort(key=lambda s: s.last_event or 0)
    if params.get("descending"):
        chosen.reverse()
    return {
        "logStreams": [
            {
                "logStreamName": s.name,
                "creationTime": s.created,
                "firstEventTimestamp": s.first_event,
                "lastEventTimestamp": s.last_event,
                "lastIngestionTime": s.last_event,
                "storedBytes": s.stored_bytes,
            }
            for s in chosen
        ]
    }


def filter_log_events(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = _group_name(params)
    reader = _reader(ctx)
    streams = reader.streams(ctx.region, group)
    if streams is None:
        raise _missing_group(group)
    names = params.get("logStreamNames")
    prefix = params.get("logStreamNamePrefix")
    if names and prefix:
        raise ApiError("InvalidParameterException", "Give logStreamNames or logStreamNamePrefix, not both.")
    if prefix:
        names = [s.name for s in streams if s.name.startswith(prefix)]
    events = reader.events(ctx.region, group, names, start=params.get("startTime"), end=params.get("endTime"))
    pattern = params.get("filterPattern", "").strip().strip('"')
    if pattern:
        terms = pattern.split()
        events = [e for e in events if all(term in e.message for term in terms)]
    limit = min(params.get("limit", MAX_EVENTS), MAX_EVENTS)
    start = _offset(params.get("nextToken"))
    page = events[start : start + limit]
    following = _token("f", start + limit) if start + limit < len(events) else None
    return {
        "events": [
            {
                "logStreamName": e.stream,
                "timestamp": e.timestamp,
                "message": e.message,
                "ingestionTime": e.ingestion_time,
                "eventId": e.event_id,
            }
            for e in page
        ],
        "searchedLogStreams": [{"logStreamName": s.name, "searchedCompletely": True} for s in streams
                               if names is None or s.name in names],
        "nextToken": following,
    }


def get_log_events(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = _group_name(params)
    reader = _reader(ctx)
    streams = reader.streams(ctx.region, group)
    if streams is None:
        raise _missing_group(group)
    stream = params["logStreamName"]
    if stream not in {s.name for s in streams}:
        raise NotFound(f"The specified log stream does not exist: {stream}.", resource="LogStream")
    events = reader.events(ctx.region, group, [stream], start=params.get("startTime"), end=params.get("endTime"))
    limit = min(params.get("limit", MAX_EVENTS), MAX_EVENTS)
    start = _offset(params.get("nextToken"))
    if not params.get("nextToken") and not params.get("startFromHead"):
        start = max(0, len(events) - limit)
    page = events[start : start + limit]
    return {
        "events": [{"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion_time} for e in page],
        "nextForwardToken": _token("f", start + len(page)),
        "nextBackwardToken": _token("b", max(0, start - limit)),
    }
