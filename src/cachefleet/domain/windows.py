"""Weekly maintenance windows (``ddd:hh24:mi-ddd:hh24:mi``, UTC): when one opens next, and whether it is open.

Pure functions of a window and an instant; ``domain/validation.py`` checks the text first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
WEEK = 7 * 1440  # minutes


@dataclass(frozen=True)
class Window:
    """A weekly window: its start as minutes after Sunday 00:00 UTC, and its length in minutes."""

    start: int
    length: int

    @classmethod
    def parse(cls, text: str) -> Window:
        """A window from its (already validated) text, e.g. ``sun:05:00-sun:06:00``."""
        begin, end = text.lower().split("-")
        start, finish = _minute_of_week(begin), _minute_of_week(end)
        return cls(start, (finish - start) % WEEK)

    def opens_at_or_after(self, when: dt.datetime) -> dt.datetime:
        """The first instant at or after ``when`` at which the window opens."""
        week_start = _week_start(when)
        candidate = week_start + dt.timedelta(minutes=self.start)
        while candidate < when:
            candidate += dt.timedelta(days=7)
        return candidate

    def open_since(self, when: dt.datetime) -> dt.datetime | None:
        """When the window that is open at ``when`` opened (None: it is closed then)."""
        opened = self.opens_at_or_after(when)
        if opened == when:
            return opened
        opened -= dt.timedelta(days=7)
        if when < opened + dt.timedelta(minutes=self.length):
            return opened
        return None

    def is_open(self, when: dt.datetime) -> bool:
        return self.open_since(when) is not None

    def closes(self, opened: dt.datetime) -> dt.datetime:
        return opened + dt.timedelta(minutes=self.length)


def _minute_of_week(text: str) -> int:
    day, hour, minute = text.split(":")
    return DAYS.index(day) * 1440 + int(hour) * 60 + int(minute)


def _week_start(when: dt.datetime) -> dt.datetime:
    """Sunday 00:00 UTC of the week ``when`` is in."""
    utc = when.astimezone(dt.UTC)
    days_since_sunday = (utc.weekday() + 1) % 7  # Monday is 0 for Python, Sunday 6
    midnight = utc.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - dt.timedelta(days=days_since_sunday)


def describe(when: dt.datetime) -> str:
    """An instant as events and messages show it: ``2026-12-06 05:00 UTC``."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
