"""CloudWatch Logs nouns for delivered engine logs, and the port that reads them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class LogStream:
    name: str
    first_event: int | None  # epoch milliseconds
    last_event: int | None
    stored_bytes: int
    created: int


@dataclass(frozen=True)
class LogEvent:
    stream: str
    timestamp: int  # epoch milliseconds
    message: str
    ingestion_time: int
    event_id: str


class LogReader(Protocol):
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
