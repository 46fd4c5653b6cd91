"""Nodes as local child processes, each on its own loopback (or local) address.

A node lives in ``<data-dir>/nodes/<key>/`` (the key is the node's address):
``engine.conf``, ``data/``, ``engine.log``.
A node of an availability zone given a network namespace (``cachefleet up --zone``) is started
under ``ip netns exec`` (which execs the engine: the pid stays the engine's) and listens on an
address of its zone's subnet; the namespaces and their routes are set up beforehand.
Engines run in their own session so they outlive the control plane. Their command line
names their config file, which is how a restarted control plane finds and adopts them
(``/proc/*/cmdline``) instead of starting duplicates. Exits are seen at once through a
pidfd, for children and adopted processes alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from cachefleet.engine.access import NodeAccess, close_stream

log = logging.getLogger(__name__)

CONFIG_NAME = "engine.conf"
START_TIMEOUT = 15.0
# How fast a node is assumed to load its RDB at start-up at worst: the start-up timeout grows by
# the file's size at this rate (~480 MB/s measured on an idle machine; a busy one is slower).
LOAD_RATE = 50e6

# What a node's start can be seeded with: entered with the node's (empty) data dir right before
# the engine is spawned and left once it answers PING (or failed): it puts an RDB there (a hard
# link, or a FIFO fed while the engine loads). Its exit may raise: the seed failed.
Seed = Callable[[Path], AbstractContextManager[object]]


NETNS_DIR = "/run/netns"  # where `ip netns add` keeps its named namespaces


@dataclass(frozen=True)
class Zone:
    """An availability zone whose nodes run in a network namespace of their own, on its subnet."""

    availability_zone: str
    namespace: str
    network: ipaddress.IPv4Network


class NodeStartFailed(Exception):
    """The engine process exited or never answered; the message says why, from its log."""


ExitListener = Callable[[str, int], None]


def check_network_usable(address: str) -> None:
    """Raises OSError with a clear message if this machine cannot listen on ``address``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as error:
            raise OSError(
                error.errno,
                f"cannot listen on {address} ({error.strerror}). Use a block of 127.0.0.0/8 "
                "(every address there reaches the loopback device) or add the addresses to an interface, "
                f"for example: ip route add local {address}/32 dev lo",
            ) from error


def address_in_use(address: str, port: int) -> bool:
    """Whether some process listens on ``address``:``port`` (a bind of our own there fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the engines do: a port left in TIME_WAIT by a closed connection is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return True
    return False


class LocalProvider:
    """Runs nodes as child processes on their own addresses, adopts them after a restart, fences by signal."""

    def __init__(self, data_dir: Path, *, on_exit: ExitListener | None = None, zones: Sequence[Zone] = ()) -> None:
        self._zones = tuple(zones)
        self._ip = shutil.which("ip") or "/usr/sbin/ip"
        self.nodes_dir = (data_dir / "nodes").resolve()
        self.nodes_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._pids: dict[str, int] = {}
        self._pidfds: dict[str, int] = {}
        self.on_exit = on_exit
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ discovery
    def namespace(self, key: str) -> str | None:
        """The network namespace the node runs in (None: this one); a node's key is its address."""
        try:
            address = ipaddress.IPv4Address(key)
        except ValueError:
            return None
        for zone in self._zones:
            if address in zone.network:
                return zone.namespace
        return None

    def node_dir(self, key: str) -> Path:
        return self.nodes_dir / key

    def scan(self) -> dict[str, int]:
        """Engine processes of this data directory, by node key, found in /proc."""
        found: dict[str, int] = {}
        prefix = str(self.nodes_dir) + os.sep
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                    argv = handle.read().split(b"\0")
            except OSError:
                continue
            # The config file is the engine's first argument (later for a script engine:
            # "/bin/sh script config").
            for raw in argv[1:3]:
                config = raw.decode(errors="replace")
                if config.startswith(prefix) and config.endswith(os.sep + CONFIG_NAME) and _is_leader(int(entry.name)):
                    found[config[len(prefix) : -len(CONFIG_NAME) - 1]] = int(entry.name)
                    break
        return found

    def adopt_all(self) -> dict[str, int]:
        """Takes over every running engine of this data directory; returns them by key."""
        self._loop = asyncio.get_running_loop()
        for key, pid in self.scan().items():
            self._track(key, pid)
        return dict(self._pids)

    def pid(self, key: str) -> int | None:
        return self._pids.get(key)

    def running(self) -> dict[str, int]:
        return dict(self._pids)

    # ------------------------------------------------------------------ lifecycle
    async def start(
        self,
        key: str,
        *,
        binary: Path,
        config: str,
        access: NodeAccess,
        keep_data: bool = False,
        seed: Seed | None = None,
        load_bytes: int = 0,
    ) -> int:
        """Starts the node (or returns the pid of the one already running) once it answers PING.

        A node starts empty, unless ``keep_data`` (the engine loads what its previous process
        saved: a node restarted in place on another build) or ``seed`` puts an RDB of
        ``load_bytes`` bytes into its data dir: it is entered after the dir is emptied and before
        the engine is spawned, and held until the engine answers (it loads the file before that,
        answering ``-LOADING``). A seed that fails, or an engine that exits while loading (a
        corrupt or cut RDB), fails the start: the engine is stopped and NodeStartFailed says why.
        """
        self._loop = asyncio.get_running_loop()
        existing = self._pids.get(key)
        if existing is not None:
            return existing
        directory = self.node_dir(key)
        # A node starts empty, as ElastiCache nodes without persistence do: never from a
        # file a previous run left behind (a replication sync file, say).
        if not keep_data:
            shutil.rmtree(directory / "data", ignore_errors=True)
        (directory / "data").mkdir(parents=True, exist_ok=True, mode=0o700)
        config_path = self.write_config(key, config)
        timeout = START_TIMEOUT + load_bytes / LOAD_RATE
        if seed is None:
            return await self._spawn(key, binary, config_path, access, timeout)
        try:
            with seed(directory / "data"):
                return await self._spawn(key, binary, config_path, access, timeout)
        except NodeStartFailed:
            raise
        except Exception as error:  # noqa: BLE001 - the seed's own failure, reported as the start's
            await self.stop(key)
            raise NodeStartFailed(f"the node's data could not be loaded: {error}") from error

    async def _spawn(self, key: str, binary: Path, config_path: Path, access: NodeAccess, timeout: float) -> int:
        directory = self.node_dir(key)
        stdout_path = directory / "stdout.log"
        with contextlib.suppress(FileNotFoundError):
            (directory / "engine.log").unlink()
        argv = [str(binary), str(config_path)]
        namespace = self.namespace(key)
        if namespace is not None:
            argv = [self._ip, "netns", "exec", namespace, *argv]  # it execs the engine: same pid
        pid = os.posix_spawn(
            argv[0],
            argv,
            {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(stdout_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
        self._track(key, pid)
        try:
            await self._wait_ready(key, pid, access, timeout)
        except NodeStartFailed:
            await self.stop(key)
            raise
        return pid

    def write_config(self, key: str, config: str) -> Path:
        """Writes the node's config file atomically (read by the engine at its next start)."""
        config_path = self.node_dir(key) / CONFIG_NAME
        config_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = config_path.with_suffix(".tmp")
        temporary.write_text(config)
        os.replace(temporary, config_path)
        return config_path

    async def _wait_ready(self, key: str, pid: int, access: NodeAccess, timeout: float = START_TIMEOUT) -> None:
        """Until the engine answers PING with PONG. While it loads an RDB it answers ``-LOADING``
        (and does not accept connections for a moment before that): both mean wait."""
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            if self._pids.get(key) != pid or not _alive(pid):
                raise NodeStartFailed(self._why_dead(key))
            try:
                reader, writer = await access.stream(timeout=1.0)
            except (OSError, TimeoutError) as error:  # not listening yet (or refusing the credentials yet)
                if "LOADING" in str(error):  # AUTH answered while loading
                    deadline = max(deadline, time.monotonic() + START_TIMEOUT)
            else:
                try:
                    writer.write(b"PING\r\n")
                    reply = await asyncio.wait_for(reader.readline(), 2.0)
                except (OSError, TimeoutError):
                    reply = b""
                finally:
                    await close_stream(writer)
                if reply.startswith(b"+PONG"):
                    return
                if reply.startswith(b"-LOADING"):
                    # Loading makes progress or fails (and the engine exits): keep waiting.
                    deadline = max(deadline, time.monotonic() + START_TIMEOUT)
            if time.monotonic() > deadline:
                raise NodeStartFailed(
                    f"the engine did not answer PING on {access.address}:{access.port} within {timeout:.0f} s"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _why_dead(self, key: str) -> str:
        directory = self.node_dir(key)
        lines: list[str] = []
        for name in ("engine.log", "stdout.log"):
            try:
                lines += (directory / name).read_text(errors="replace").splitlines()
            except OSError:
                continue
        # The engine's warnings are "#" lines, but not every one says why it stopped: a deprecation
        # warning about an ACL rule of ours is no reason.
        lines = [line for line in lines if "Deprecation warning" not in line]
        interesting = [line for line in lines if "#" in line or "rror" in line or "FATAL" in line or "Fatal" in line]
        detail = (interesting or lines)[-3:]
        return "the engine exited during start-up" + (": " + " | ".join(s.strip() for s in detail) if detail else "")

    async def stop(self, key: str, *, graceful: bool = False, timeout: float = 5.0) -> None:
        """Stops the node's process and waits until it is gone. SIGKILL unless ``graceful``."""
        pid = self._pids.get(key)
        if pid is None:
            return
        self._forget(key)
        await terminate(pid, graceful=graceful, timeout=timeout, engine=True)

    def fence(self, key: str) -> None:
        """Kills the node at once (SIGKILL) so that it cannot take another write."""
        pid = self._pids.get(key)
        if pid is not None:
            kill_engine(pid, signal.SIGKILL)

    def remove(self, key: str) -> None:
        shutil.rmtree(self.node_dir(key), ignore_errors=True)
        parent = self.node_dir(key).parent
        with contextlib.suppress(OSError):
            if parent != self.nodes_dir:
                parent.rmdir()

    def close(self) -> None:
        """Stops watching; the engine processes keep running."""
        for key in list(self._pidfds):
            self._unwatch(key)

    # ------------------------------------------------------------------ exit watching
    def _track(self, key: str, pid: int) -> None:
        self._pids[key] = pid
        if self._loop is None:
            return
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._exited(key, pid)
            return
        self._pidfds[key] = pidfd
        self._loop.add_reader(pidfd, self._exited, key, pid)

    def _unwatch(self, key: str) -> None:
        pidfd = self._pidfds.pop(key, None)
        if pidfd is not None:
            if self._loop is not None:
                self._loop.remove_reader(pidfd)
            os.close(pidfd)

    def _forget(self, key: str) -> None:
        self._unwatch(key)
        self._pids.pop(key, None)

    def _exited(self, key: str, pid: int) -> None:
        status = _reap(pid)
        if self._pids.get(key) != pid:
            return
        self._forget(key)
        log.warning("node %s (pid %s) exited with status %s", key, pid, status)
        if self.on_exit is not None:
            self.on_exit(key, status)


def _alive(pid: int) -> bool:
    """Whether the process still holds its resources (its listening sockets above all).

    A killed multi-threaded engine shows as a zombie as soon as its main thread is done, while
    its other threads still exit: its files stay open until the last of them has.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
        if state not in (b"Z", b"X"):
            return True
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except (OSError, IndexError):
        return False


def _reap(pid: int) -> int:
    """Collects a child's exit status; adopted processes are reaped by their own parent."""
    try:
        waited, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return -1
    if waited == 0:
        return -1
    return os.waitstatus_to_exitcode(status)


def _is_leader(pid: int) -> bool:
    """Engines lead their process group; their forked children (same command line) do not."""
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def kill_engine(pid: int, signum: int) -> None:
    """Signals an engine and, for SIGKILL, the children it forked (a background save).

    Engines run as session leaders (started with setsid), so their process group holds them
    and their children only. A child outliving its killed engine would keep the listening
    sockets it inherited, and the next node given that address could not bind it.
    """
    try:
        if signum == signal.SIGKILL and os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


async def terminate(pid: int, *, graceful: bool, timeout: float = 5.0, engine: bool = False) -> None:
    """Ends a process we started and waits until it is gone (escalating to SIGKILL)."""
    if not _alive(pid):
        _reap(pid)
        return
    signum = signal.SIGTERM if graceful else signal.SIGKILL
    if engine:
        kill_engine(pid, signum)
    else:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + timeout
    while _alive(pid):
        _reap(pid)
        if not _alive(pid):
            break
        if time.monotonic() > deadline:
            if engine:
                kill_engine(pid, signal.SIGKILL)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        await asyncio.sleep(0.002)
    _reap(pid)
    if engine:
        # Its killed children (a background save) may still hold the sockets they inherited.
        deadline = time.monotonic() + timeout
        while _group_alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.002)


def _group_alive(pgid: int) -> bool:
    """Whether a process of this engine's group (it leads one: started with setsid) is still there."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True

