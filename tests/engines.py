"""Bare engine processes for engine-level tests (ACL, TLS): started from Cachefleet's own config
rendering on per-test loopback addresses (the ``start_engine`` fixture kills and removes them)."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cachefleet.engine.catalog import Catalog, EngineBinary

BINARIES = sorted(Catalog.discover().binaries(), key=lambda b: (b.release.engine, b.release.version))


def binary_id(binary: EngineBinary) -> str:
    return f"{binary.release.engine}-{binary.release.major_minor}"


@dataclass
class Engine:
    address: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    binary: EngineBinary

    def log(self) -> str:
        path = self.directory / "engine.log"
        return path.read_text(errors="replace") if path.exists() else ""


def wait_listening(address: str, port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Until the engine accepts connections (a locked engine answers nothing useful before AUTH)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"engine exited with {process.returncode}")
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex((address, port)) == 0:
                return
        time.sleep(0.005)
    raise TimeoutError(f"{address}:{port} does not listen after {timeout} s")


