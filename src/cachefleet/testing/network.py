"""Free ports, loopback node networks and the engine processes of a data dir, for tests.

One copy, used by ``cachefleet.testing.running`` and by Cachefleet's own test suite
(tests/helpers.py re-exports it). Linux only: engine processes are found through /proc.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import random
import socket
from pathlib import Path

# Shared by every process of the machine (this run, a parallel one, another user's pytest):
# an flock on one file per /24 says who uses it.
LOCK_DIR = Path("/tmp/cachefleet-test-networks")

_networks = itertools.count()
_held_networks: list[int] = []


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listened on a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def claim_network() -> tuple[str, int]:
    """A /24 of loopback no other test server uses, and the descriptor of the flock claiming it
    (closing it gives the network back)."""
    LOCK_DIR.mkdir(exist_ok=True)
    rng = random.Random(os.getpid() * 7919 + next(_networks))
    while True:
        network = f"127.{rng.randint(100, 199)}.{rng.randint(0, 255)}.0/24"
        handle = os.open(LOCK_DIR / network.replace("/", "_"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            continue
        return network, handle


def fresh_network() -> str:
    """A /24 of loopback that no other test server, of this run or of a parallel one, uses.

    The claim is held until this process ends (use ``claim_network`` to give it back earlier).
    """
    network, handle = claim_network()
    _held_networks.append(handle)
    return network


def _leads_its_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def engine_processes(data_dir: Path) -> list[tuple[str, int]]:
    """(node dir name, pid) of every engine process whose command line names a config file under
    ``data_dir``/nodes; a node running twice shows twice."""
    prefix = str((data_dir / "nodes").resolve()) + os.sep
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state in ("Z", "X") or not _leads_its_group(int(entry.name)):
            continue  # an engine's forked child (a background save) has the same command line
        for raw in argv[1:3]:
            text = raw.decode(errors="replace")
            if text.startswith(prefix):
                found.append((text[len(prefix) :].removesuffix("/engine.conf"), int(entry.name)))
                break
    return sorted(found)


def engine_pids(data_dir: Path) -> dict[str, int]:
    """Node dir name -> pid of the engine processes of ``data_dir``."""
    return dict(engine_processes(data_dir))
