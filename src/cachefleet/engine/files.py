"""Writing the files an engine reads at start-up or on a CONFIG SET (keys, certificates, ACL
files, include files with secrets): atomically, and private from their first byte.

An engine that reads a half-written certificate or ACL file fails to start, or worse, a
``CONFIG SET tls-cert-file`` loads a key that does not match; so every write goes to a
temporary file in the same directory, is flushed to disk, and is renamed over the old one.
The temporary file is created with its final mode (0600 for secrets), never chmod-ed after
the bytes are in: there is no moment when another user could read a key.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE = 0o600
PUBLIC = 0o644
PRIVATE_DIR = 0o700


def private_dir(path: Path) -> Path:
    """Creates ``path`` (and parents) 0700; an existing one is tightened to 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    if path.stat().st_mode & 0o777 != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)
    return path


def atomic_write(path: Path, data: bytes | str, *, mode: int = PRIVATE) -> Path:
    """Replaces ``path`` with ``data`` in one rename; readers see the old file or the new one."""
    payload = data.encode() if isinstance(data, str) else data
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)  # O_CREAT's mode is filtered by the umask; the final mode is not
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    # The rename itself is durable once the directory is synced.
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path
