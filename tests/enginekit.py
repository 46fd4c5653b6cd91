"""Bare engine processes for engine-level acceptance tests (no control plane): start, cluster, stop.

Every engine is started here with our own config rendering, on an address of a /24 that
``fresh_network`` claimed, and is killed by pid by ``EngineSet.close`` (the fixtures call it).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import redis

from cachefleet.domain.slots import even
from cachefleet.engine.catalog import Catalog, EngineBinary
from cachefleet.engine.config import NodeConfig, render
from cachefleet.engine.restore import place_rdb
from helpers import fresh_network


def installed(engine: str, prefix: str) -> EngineBinary:
    for binary in Catalog.discover().binaries():
        if binary.release.engine == engine and binary.release.version.startswith(prefix):
            return binary
    raise LookupError(f"{engine} {prefix} is not installed")


@dataclass
class Engine:
    process: subprocess.Popen[bytes]
    address: str
    port: int
    directory: Path
    launched: float = 0.0  # perf_counter() right before the process was spawned
    ready: float = 0.0  # ... and when it first answered DBSIZE (its RDB loaded)

    def client(self, **options: object) -> redis.Redis:
        return redis.Redis(host=self.address, port=self.port, socket_timeout=60, **options)  # type: ignore[arg-type]

    @property
    def rdb(self) -> Path:
        return self.directory / "data" / "dump.rdb"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@dataclass
class EngineSet:
    """Engines of one test on addresses of one /24; all killed and their files removed by close()."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cachefleet-engines-")))
    network: str = field(default_factory=fresh_network)
    engines: list[Engine] = field(default_factory=list)
    _next: int = 10

    def address(self) -> str:
        self._next += 1
        return self.network.replace(".0/24", f".{self._next}")

    def start(
        self,
        binary: EngineBinary,
        *,
        cluster: bool = False,
        rdb: Path | None = None,
        extra: dict[str, str] | None = None,
        timeout: float = 60.0,
        seed: Callable[[Path], AbstractContextManager[object]] | None = None,
    ) -> Engine:
        """Starts an engine and waits until it serves; ``seed(data_dir)`` is entered around the start."""
        address = self.address()
        directory = self.root / address
        (directory / "data").mkdir(parents=True, mode=0o700)
        if rdb is not None:
            place_rdb(rdb, directory / "data")
        config = NodeConfig(address=address, port=6379, directory=directory, maxmemory=2**33, cluster=cluster,
                            extra=extra or {})
        (directory / "engine.conf").write_text(render(config))
        with seed(directory / "data") if seed is not None else nullcontext():
            return self._launch(binary, address, directory, timeout)

    def _launch(self, binary: EngineBinary, address: str, directory: Path, timeout: float) -> Engine:
        launched = time.perf_counter()
        process = subprocess.Popen([str(binary.server), str(directory / "engine.conf")],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        engine = Engine(process, address, 6379, directory, launched=launched)
        self.engines.append(engine)
        client = engine.client()
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                log = (directory / "engine.log").read_text(errors="replace")
                raise RuntimeError(f"engine exited at start-up: {log[-500:]}")
            try:
                client.dbsize()  # answers only once the RDB is loaded
                engine.ready = time.perf_counter()
                return engine
            except (redis.ConnectionError, redis.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def cluster(self, binary: EngineBinary, shards: int) -> list[Engine]:
        """``shards`` primaries without replicas, slots split evenly, the cluster state ok on each."""
        nodes = [self.start(binary, cluster=True) for _ in range(shards)]
        for node, slots in zip(nodes, even(shards), strict=True):
            node.client().execute_command("CLUSTER", "ADDSLOTSRANGE", min(slots), max(slots))
        for node in nodes[1:]:
            nodes[0].client().execute_command("CLUSTER", "MEET", node.address, node.port)
        deadline = time.monotonic() + 30
        while not all(
            b"cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO")
            and len(n.client().execute_command("CLUSTER", "NODES").splitlines()) == shards
            for n in nodes
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("the cluster did not form")
            time.sleep(0.02)
        return nodes

    def close(self) -> None:
        for engine in self.engines:
            engine.stop()
        shutil.rmtree(self.root, ignore_errors=True)
