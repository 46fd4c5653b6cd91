"""Engine logs: where a replication group delivers them (LogDeliveryConfigurations), the
CloudWatch Logs nouns they are read back as, and the port that reads them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cachefleet.domain.errors import InvalidParameterCombination, InvalidParameterValue


@dataclass(frozen=True)
class LogDelivery:
    """Where a replication group's slow log or engine log goes (LogDeliveryConfigurations)."""

    log_type: str  # slow-log | engine-log
    destination_type: str  # cloudwatch-logs | kinesis-firehose
    destination: str  # the log group, or the delivery stream
    log_format: str  # text | json
    status: str = "active"


LOG_TYPES = ("slow-log", "engine-log")
# DestinationType -> (its member of DestinationDetails, that member's field, the field's rule,
# what the rule asks for); the other type's member is refused beside it.
_DESTINATIONS: dict[str, tuple[str, str, re.Pattern[str], str]] = {
    "cloudwatch-logs": (
        "CloudWatchLogsDetails", "LogGroup", re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$"),
        "a log group (letters, digits and . - _ / #, at most 512 characters)",
    ),
    "kinesis-firehose": (
        "KinesisFirehoseDetails", "DeliveryStream", re.compile(r"^[a-zA-Z0-9_.\-]{1,64}$"),
        "a delivery stream (letters, digits and _ . -, at most 64 characters)",
    ),
}


def log_deliveries(
    raw: Sequence[Mapping[str, Any]] | None, *, existing: Sequence[LogDelivery] = (), operation: str
) -> tuple[LogDelivery, ...]:
    """Applies LogDeliveryConfigurations to ``existing`` (Enabled false removes a log type)."""
    current = {item.log_type: item for item in existing}
    seen: set[str] = set()
    for index, item in enumerate(raw or (), 1):
        where = f"{operation}: LogDeliveryConfigurations.member.{index}"
        log_type = item.get("LogType")
        if log_type not in LOG_TYPES:
            raise InvalidParameterValue(f"{where}: LogType must be slow-log or engine-log.")
        if log_type in seen:
            raise InvalidParameterCombination(f"{where}: {log_type} is configured twice; give each LogType once.")
        seen.add(log_type)
        if item.get("Enabled") is False:
            current.pop(log_type, None)
            continue
        before = current.get(log_type)
        destination_type = item.get("DestinationType") or (before.destination_type if before else None)
        log_format = item.get("LogFormat") or (before.log_format if before else None)
        if destination_type is None or log_format is None:
            raise InvalidParameterValue(
                f"{where}: give DestinationType (cloudwatch-logs or kinesis-firehose), DestinationDetails and LogFormat "
                "(text or json)."
            )
        details = item.get("DestinationDetails") or {}
        member, field_name, rule, wanted = _DESTINATIONS[destination_type]
        destination = (details.get(member) or {}).get(field_name)
        if destination is None and before is not None and before.destination_type == destination_type:
            destination = before.destination
        if not destination or not rule.match(destination):
            raise InvalidParameterValue(f"{where}: DestinationDetails.{member}.{field_name} must name {wanted}.")
        for other_type, (other, *_) in _DESTINATIONS.items():
            if other != member and details.get(other):
                raise InvalidParameterCombination(f"{where}: {other} goes with DestinationType {other_type}.")
        current[log_type] = LogDelivery(log_type, destination_type, destination, log_format)
    return tuple(current[t] for t in LOG_TYPES if t in current)




@dataclass(frozen=True)
class LogStream:
    """A CloudWatch Logs stream of delivered engine log lines."""

    name: str
    first_event: int | None  # epoch milliseconds
    last_event: int | None
    stored_bytes: int
    created: int


@dataclass(frozen=True)
class LogEvent:
    """One delivered log line, as CloudWatch Logs shows it."""

    stream: str
    timestamp: int  # epoch milliseconds
    message: str
    ingestion_time: int
    event_id: str


class LogReader(Protocol):
    """Reads delivered logs back (monitor/logs.py), for the CloudWatch Logs API."""

    def groups(self, region: str) -> list[tuple[str, int, int]]:
        """(log group name, creation time ms, stored bytes) of every log group of ``region``."""
        ...

    def streams(self, region: str, group: str) -> list[LogStream] | None:
        """The streams of a log group; None if there is no such group."""
        ...

    def events(
        self, region: str, group: str, streams: list[str] | None, *, start: int | None, end: int | None
    ) -> list[LogEvent]:
        """Events of the group (of ``streams`` only, if given) between ``start`` and ``end`` (ms), oldest first."""
        ...
