"""A few cluster-mode engine processes kept warm, so that new shards start serving at once.

A freshly started Redis Cluster primary refuses to report ``cluster_state:ok`` for two
seconds (the engine's writable delay), and a primary that sat alone without slots waits
its rejoin delay once it joins. A warm node has been running past the first delay and,
owning every slot of its own one-node cluster, is never "alone without slots"; when a new
primary is needed, the domain gives it the warm node's address and the reconciler adopts
the running process (see control/sharded.py for how it then takes its share of slots).

Warm nodes live under ``nodes/<address>/`` like any node, with a ``warm`` marker naming
their engine build, so a restarted control plane finds them again. They are locked like any
node (control/locks.py): the control-plane user with the node's own password, which the node
keeps when a cluster takes it; that cluster's users replace the open default user at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from cachefleet.control.locks import Locks
from cachefleet.domain import nodetypes
from cachefleet.domain.engines import EngineRelease
from cachefleet.domain.errors import InsufficientCapacity
from cachefleet.domain.kinds import used_addresses
from cachefleet.domain.ports import StateStore
from cachefleet.domain.validation import allocate_addresses
from cachefleet.engine import cluster as engine_cluster
from cachefleet.engine.admin import EngineError
from cachefleet.engine.config import NodeConfig, render
from cachefleet.providers.local import LocalProvider, NodeStartFailed

log = logging.getLogger(__name__)

PORT = 6379
READY_AFTER = 2.2  # the engine's writable delay is 2 s from its start
MARKER = "warm"
WARM_NODE_TYPE = "cache.t4g.micro"


class _Binaries(Protocol):
    def binary(self, engine: str, version: str) -> object: ...


class WarmPool:
    """The warm nodes: started ahead of need, handed out by address, adopted after a restart."""

    def __init__(
        self,
        *,
        store: StateStore,
        provider: LocalProvider,
        binaries: _Binaries,
        network: ipaddress.IPv4Network,
        release: EngineRelease | None,
        size: int,
        locks: Locks | None = None,
    ) -> None:
        self._store = store
        self._locks = locks or Locks(store=store, node_dir=provider.node_dir)
        self._provider = provider
        self._binaries = binaries
        self._network = network
        self._release = release
        self._size = size if release is not None else 0
        self._ready: dict[str, float] = {}
        self._starting: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def release(self) -> EngineRelease | None:
        return self._release

    # ------------------------------------------------------------------ the domain's view (WarmNodes)
    def addresses(self) -> set[str]:
        return set(self._ready) | self._starting

    def take(self, engine: str, version: str, count: int) -> list[str]:
        if self._release is None or (engine, version) != (self._release.engine, self._release.version):
            return []
        alive = [a for a in sorted(self._ready, key=self._ready.__getitem__) if self._provider.pid(a) is not None]
        taken = alive[:count]
        for address in taken:
            del self._ready[address]
        if taken:
            self._wake.set()
        return taken

    def give_back(self, addresses: Sequence[str]) -> None:
        for address in addresses:
            self._ready[address] = time.monotonic()

    # ------------------------------------------------------------------ lifecycle
    async def adopt(self, running: dict[str, int]) -> None:
        """Takes back the warm nodes a previous control plane left running."""
        if self._release is None:
            return
        mark = f"{self._release.engine} {self._release.version}"
        for address, _pid in running.items():
            marker = self._provider.node_dir(address) / MARKER
            with contextlib.suppress(OSError):
                if marker.read_text().strip() == mark and len(self.addresses()) < self._size:
                    self._ready[address] = time.monotonic()

    def start(self) -> None:
        if self._size > 0 and self._task is None:
            self._task = asyncio.create_task(self._maintain(), name="warm-pool")

    async def stop(self) -> None:
        """Stops refilling; warm nodes keep running and are adopted next time."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _maintain(self) -> None:
        while True:
            for address in [a for a in self._ready if self._provider.pid(a) is None]:
                del self._ready[address]
                self._provider.remove(address)
            missing = self._size - len(self.addresses())
            if missing > 0:
                try:
                    await asyncio.gather(*(self._start_one() for _ in range(missing)))
                except InsufficientCapacity as error:
                    log.warning("warm pool: %s", error.message)
                    await asyncio.sleep(30)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 5.0)

    async def _start_one(self) -> None:
        release = self._release
        assert release is not None
        used = used_addresses(self._store) | self.addresses() | set(self._provider.running())
        (address,) = allocate_addresses(self._network, used, 1)
        self._starting.add(address)
        try:
            binary = self._binaries.binary(release.engine, release.version)
            self._locks.write_aclfile(address, self._locks.unclaimed_users(address, release.engine, release.version))
            config = render(
                NodeConfig(
                    address=address,
                    port=PORT,
                    directory=self._provider.node_dir(address),
                    maxmemory=nodetypes.maxmemory_bytes(WARM_NODE_TYPE),
                    cluster=True,
                    label=f"warm node ({release.engine} {release.version}), waiting to become a primary",
                    extra=self._locks.unclaimed_settings(address),
                )
            )
            started = time.monotonic()
            access = self._locks.unclaimed_access(address, PORT)
            await self._provider.start(address, binary=binary.server, config=config, access=access)  # type: ignore[attr-defined]
            admin = access.admin()
            try:
                await engine_cluster.add_slots(admin, range(engine_cluster.SLOTS))
            finally:
                await admin.close()
            (self._provider.node_dir(address) / MARKER).write_text(f"{release.engine} {release.version}\n")
            await asyncio.sleep(max(0.0, READY_AFTER - (time.monotonic() - started)))
            self._ready[address] = time.monotonic()
            log.info("warm node %s ready", address)
        except (NodeStartFailed, EngineError, OSError) as error:
            log.warning("warm node %s failed: %s", address, error)
            await self._provider.stop(address)
            self._provider.remove(address)
            await asyncio.sleep(5)
        finally:
            self._starting.discard(address)
