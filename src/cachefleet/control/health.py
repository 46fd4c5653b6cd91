"""Hang detection: a persistent connection per watched node, PING every interval.

A process that exits is seen at once by the provider (pidfd); this catches the ones that
stay alive but stop answering (SIGSTOP, a stuck disk, an endless script). A node is
unhealthy after ``failures`` PINGs in a row got no answer within ``timeout``, and healthy
again after one answer; every change is reported to ``on_change`` so the owner reconciles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cachefleet.engine.admin import AdminClient, EngineError

log = logging.getLogger(__name__)

INTERVAL = 0.1
TIMEOUT = 0.25
FAILURES = 2


@dataclass
class _Watched:
    client: AdminClient
    failures: int = 0
    last_answer: float = field(default_factory=time.monotonic)


class HealthMonitor:
    def __init__(
        self,
        *,
        on_change: Callable[[str], None],
        interval: float = INTERVAL,
        timeout: float = TIMEOUT,
        failures: int = FAILURES,
    ) -> None:
        self._on_change = on_change
        self._interval = interval
        self._timeout = timeout
        self._failures = failures
        self._watched: dict[str, _Watched] = {}
        self._unhealthy: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def watch(self, key: str, address: str, port: int) -> None:
        if key not in self._watched:
            self._watched[key] = _Watched(AdminClient(address, port, timeout=self._timeout))

    def unwatch(self, key: str) -> None:
        watched = self._watched.pop(key, None)
        self._unhealthy.discard(key)
        if watched is not None:
            asyncio.get_running_loop().create_task(watched.client.close())

    def watching(self, key: str) -> bool:
        return key in self._watched

    def healthy(self, key: str) -> bool:
        return key not in self._unhealthy

    def silent_for(self, key: str) -> float:
        watched = self._watched.get(key)
        return 0.0 if watched is None else time.monotonic() - watched.last_answer

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="health-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for watched in self._watched.values():
            await watched.client.close()
        self._watched.clear()

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            if self._watched:
                await asyncio.gather(*(self._check(key) for key in list(self._watched)))
            await asyncio.sleep(max(0.0, self._interval - (time.monotonic() - started)))

    async def _check(self, key: str) -> None:
        watched = self._watched.get(key)
        if watched is None:
            return
        try:
            await watched.client.ping()
        except (EngineError, OSError):
            watched.failures += 1
            if watched.failures >= self._failures and key not in self._unhealthy and key in self._watched:
                self._unhealthy.add(key)
                log.warning("node %s does not answer PING (%.2f s without an answer)", key, self.silent_for(key))
                self._on_change(key)
            return
        watched.failures = 0
        watched.last_answer = time.monotonic()
        if key in self._unhealthy:
            self._unhealthy.discard(key)
            log.info("node %s answers PING again", key)
            self._on_change(key)
