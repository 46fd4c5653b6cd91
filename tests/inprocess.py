"""A real Cachefleet control plane run inside the test process, on a clock the test moves.

The API, reconciler, maintenance scheduler and engine processes are the real ones (the engines
are child processes on their own loopback addresses, as with ``cachefleet up``); only time is the
test's: ``FakeClock`` runs at wall-clock speed from the instant last set, and moving it wakes
whatever sleeps until an instant of it (the maintenance scheduler).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from cachefleet.app import Cachefleet, Settings, down
from helpers import free_port, fresh_network


class FakeClock:
    """Time the test sets; it flows at wall-clock speed from there (deadlines still pass)."""

    def __init__(self, start: dt.datetime) -> None:
        self._base = start
        self._set_at = time.monotonic()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sleepers: set[asyncio.Event] = set()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._base + dt.timedelta(seconds=time.monotonic() - self._set_at)

    def set(self, when: dt.datetime) -> None:
        """Moves the clock (from any thread); sleepers look at it again."""
        with self._lock:
            self._base, self._set_at = when, time.monotonic()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        for event in list(self._sleepers):
            event.set()

    async def sleep_until(self, when: dt.datetime) -> None:
        self._loop = asyncio.get_running_loop()
        while (left := (when - self.now()).total_seconds()) > 0:
            event = asyncio.Event()
            self._sleepers.add(event)
            try:
                await asyncio.wait_for(event.wait(), timeout=left)
            except TimeoutError:
                pass
            finally:
                self._sleepers.discard(event)


class InProcessServer:
    """``Cachefleet`` on its own event loop thread; ``client()`` is a boto3 client of its API."""

    def __init__(self, data_dir: Path, clock: FakeClock, *, engine_paths: tuple[Path, ...] = ()) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.port = free_port()
        self.settings = Settings(
            data_dir=data_dir, listen=f"127.0.0.1:{self.port}", node_network=fresh_network(),
            engine_paths=engine_paths, warm_nodes=0, sample_interval=0,
        )
        self.fleet: Cachefleet | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="in-process cachefleet", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> InProcessServer:
        self._thread.start()
        self.fleet = Cachefleet(self.settings, clock=self.clock)
        asyncio.run_coroutine_threadsafe(self.fleet.start(), self._loop).result(timeout=60)
        return self

    def call(self, coroutine: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=timeout)

    def stop(self) -> None:
        if self.fleet is not None:
            self.call(self.fleet.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        asyncio.run(down(self.data_dir))

    def client(self) -> Any:
        return boto3.client(
            "elasticache", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="AKIDTEST",
            aws_secret_access_key="secret", config=Config(retries={"max_attempts": 1}, read_timeout=30),
        )
