"""The clean-up process of ``cachefleet.testing.running``: run as a script, by path.

``python _reaper.py DATA_DIR REMOVE`` waits until its stdin reaches EOF (its owner closed the
pipe, or died however it died), then stops the control plane that holds DATA_DIR's lock and
every engine process of DATA_DIR, and removes REMOVE. Engines of a data dir that is kept get
SIGTERM (they save and shut down as on ``cachefleet down``), SIGKILL to their process group after
a grace period; those of a data dir about to be removed are killed at once (a replica's primary
would otherwise wait for it on shutdown, over a second, for data nobody keeps). Standard library only: it must start fast,
idle at no cost, and not depend on the state of the package it cleans up after.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import sys
import time
from pathlib import Path

GRACE = 5.0  # seconds a process has to stop on SIGTERM before its group is killed


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    return _state(pid) not in (None, "Z", "X")


def lock_holder(data_dir: Path) -> int | None:
    """The pid written in the data dir's lock file, if a process still holds the lock."""
    path = data_dir / "cachefleet.lock"
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = path.read_text().strip()
            return int(text) if text.isdigit() else None
        return None
    finally:
        os.close(handle)


def engine_leaders(data_dir: Path) -> list[int]:
    """Engine processes (each leads its own process group) started with a config under DATA_DIR/nodes."""
    prefix = str((data_dir / "nodes").resolve()) + os.sep
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            leader = os.getpgid(pid) == pid
        except OSError:
            continue
        if leader and _alive(pid) and any(a.decode(errors="replace").startswith(prefix) for a in argv[1:3]):
            found.append(pid)
    return found


def _living_groups() -> set[int]:
    """Process groups with a member that is not a zombie. Not kill(-pgid, 0): a killed engine whose
    parent (the stopped control plane) is gone stays a zombie until the machine's init reaps it,
    which here (a container's pid 1) took up to 2 s."""
    groups = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] not in ("Z", "X"):
                groups.add(int(fields[2]))
    return groups


def stop(pids: list[int], *, group: bool, graceful: bool = True) -> None:
    """SIGTERM, then (after GRACE) SIGKILL, or SIGKILL at once; returns once every one (and its
    group) is gone."""
    for pid in pids:
        try:
            (os.killpg if group else os.kill)(pid, signal.SIGTERM if graceful else signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + GRACE
    killed = not graceful
    while True:
        living = _living_groups() if group else set()
        left = [p for p in pids if (p in living if group else _alive(p))]
        if not left:
            return
        if time.monotonic() > deadline and not killed:
            for pid in left:
                try:
                    (os.killpg if group else os.kill)(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            killed = True
        time.sleep(0.01)


def reap(data_dir: Path, remove: Path | None) -> None:
    holder = lock_holder(data_dir)
    if holder is not None:
        stop([holder], group=False)
    stop(engine_leaders(data_dir), group=True, graceful=not _inside(data_dir, remove))
    if remove is not None:
        shutil.rmtree(remove, ignore_errors=True)


def _inside(path: Path, directory: Path | None) -> bool:
    return directory is not None and (path == directory or directory in path.parents)


def main() -> None:
    data_dir, remove = Path(sys.argv[1]), sys.argv[2]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C of the owner's terminal must not stop the clean-up
    sys.stdin.buffer.read()
    reap(data_dir, Path(remove) if remove else None)


if __name__ == "__main__":
    main()
