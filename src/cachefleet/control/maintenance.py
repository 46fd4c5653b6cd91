"""The maintenance scheduler: wakes at the start of the next maintenance window that has work waiting.

It owns no rules: the domain says when to look next (``Maintenance.next_wake``) and starts what
waits in the windows open at that instant (``Maintenance.run``). The scheduler sleeps until then
on its clock, or until it is poked (a change was recorded that may add waiting work), and looks
again. The clock is injectable: tests give one whose time they move, and the scheduler wakes at
the window's start of that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

LONGEST_SLEEP = 60.0  # the wall clock can jump (NTP, suspend): look at it again at least this often
POKE_DELAY = 0.1  # a burst of changes (many API calls) makes one look, not one look each


class WakingClock(Protocol):
    """A clock that can also sleep until an instant of its own time."""

    def now(self) -> dt.datetime: ...

    async def sleep_until(self, when: dt.datetime) -> None: ...


class SystemWakingClock:
    """The wall clock (UTC), sleeping in pieces so that a jump of the clock is noticed within a minute."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def sleep_until(self, when: dt.datetime) -> None:
        while (left := (when - self.now()).total_seconds()) > 0:
            await asyncio.sleep(min(left, LONGEST_SLEEP))


class MaintenanceScheduler:
    """Runs the maintenance windows' work when they open (see the module docstring)."""

    def __init__(
        self,
        *,
        clock: WakingClock,
        next_wake: Callable[[dt.datetime], dt.datetime | None],
        run: Callable[[dt.datetime], list[str]],
    ) -> None:
        self._clock = clock
        self._next_wake = next_wake
        self._run = run
        self._poked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.woken = 0  # looks taken (for tests and /metrics)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="maintenance windows")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def poke(self) -> None:
        """Something changed that may add or remove waiting work: look again now."""
        self._poked.set()

    async def _loop(self) -> None:
        while True:
            self._poked.clear()
            wake: dt.datetime | None = None
            try:
                now = self._clock.now()
                for message in self._run(now):
                    log.info("maintenance: %s", message)
                self.woken += 1
                wake = self._next_wake(self._clock.now())
            except Exception:  # noqa: BLE001 - a bug: logged, looked at again in a minute
                log.exception("maintenance windows: looking at waiting work failed")
                wake = self._clock.now() + dt.timedelta(seconds=LONGEST_SLEEP)
            waits: set[asyncio.Task[object]] = {asyncio.create_task(self._poked.wait())}
            if wake is not None:
                waits.add(asyncio.create_task(self._clock.sleep_until(wake)))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waits:
                    task.cancel()
                for task in waits:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if self._poked.is_set():
                await asyncio.sleep(POKE_DELAY)
