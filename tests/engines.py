"""Bare engine processes for engine-level tests (ACL, TLS) and for the sources an online migration
follows: started from Cachefleet's own config rendering on loopback addresses of one fresh /24
(``BareEngines``; the ``start_engine`` fixture and the member sweep kill and remove them)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cachefleet.engine.catalog import Catalog, EngineBinary
from cachefleet.engine.config import NodeConfig, render
from cachefleet.testing.network import fresh_network

BINARIES = sorted(Catalog.discover().binaries(), key=lambda b: (b.release.engine, b.release.version))


def _wrapper(directory: Path, *, version: str, build: str, comment: str, run: str) -> Path:
    """``directory/valkey-server``: a script that reports ``version`` (build label ``build``) to the
    catalog's ``--version`` and otherwise runs the shell lines ``run``. Returns ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "valkey-server"
    script.write_text(
        "#!/bin/sh\n"
        f"# Valkey {version} for {comment}\n"
        'if [ "$1" = "--version" ]; then\n'
        f'  echo "Valkey server v={version} sha=00000000:0 malloc=libc bits=64 build={build}"\n'
        "  exit 0\n"
        "fi\n"
        + run
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return directory


def marked_build(directory: Path, binary: EngineBinary, *, version: str, mark: str) -> Path:
    """A second build of ``binary``'s engine minor, made honestly for service update tests: a wrapper
    ``directory/valkey-server`` that reports ``version`` to the catalog (``cachefleet up --engine-path
    directory``) and runs ``binary``, passing ``mark`` (``--proc-title-template``, inert while
    ``set-proc-title`` is off) by which a test sees which build a node's process was started from --
    INFO says the wrapped build's version, since it is the same engine code. Returns ``directory``."""
    return _wrapper(directory, version=version, build="cachefleet-test-wrapper",
                    comment=f"Cachefleet's service update tests: the {binary.release.version} engine, marked.",
                    run=f'exec "{binary.server}" "$@" --proc-title-template "{mark}"\n')


def failing_build(directory: Path, *, version: str, reason: str) -> Path:
    """An engine build that reports ``version`` to the catalog and exits 1 at start with ``reason`` on stderr."""
    return _wrapper(directory, version=version, build="cachefleet-test-exits",
                    comment="Cachefleet's resource fault tests: it exits at start.",
                    run=f'echo "# {reason}" >&2\nexit 1\n')


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




class BareEngines:
    """``engines(binary, host=N, extra={...}, cluster=False, port=6379, directory=..., wait_port=...)``
    starts an engine on address ``.N`` of this set's /24 and waits until it listens; ``close()``
    kills every one of them (by its process group) and removes their files."""

    def __init__(self) -> None:
        self.network = fresh_network().removesuffix(".0/24")
        self.started: list[Engine] = []

    def address(self, host: int) -> str:
        return f"{self.network}.{host}"

    def __call__(
        self,
        binary: EngineBinary,
        *,
        host: int,
        extra: dict[str, str] | None = None,
        cluster: bool = False,
        port: int = 6379,
        directory: Path | None = None,
        wait_port: int | None = None,
    ) -> Engine:
        address = self.address(host)
        directory = directory or Path(tempfile.mkdtemp(prefix="cachefleet-engine-"))
        (directory / "data").mkdir(exist_ok=True)
        config = NodeConfig(address=address, port=port, directory=directory, maxmemory=2**26, cluster=cluster,
                            extra={"repl-diskless-sync-delay": "0", **(extra or {})})
        (directory / "engine.conf").write_text(render(config))
        process = subprocess.Popen(
            [str(binary.server), str(directory / "engine.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        engine = Engine(address, port, directory, process, binary)
        self.started.append(engine)
        try:
            wait_listening(address, wait_port or port, process)
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(f"{binary_id(binary)} on {address}: {error}\n{engine.log()[-2000:]}") from None
        return engine

    def close(self) -> None:
        for engine in self.started:
            if engine.process.poll() is None:
                os.killpg(engine.process.pid, signal.SIGKILL)
            engine.process.wait()
            shutil.rmtree(engine.directory, ignore_errors=True)
