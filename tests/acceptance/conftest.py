"""The ``start_engine`` fixture: bare engine processes, always killed and removed at the end."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cachefleet.engine.catalog import EngineBinary
from cachefleet.engine.config import NodeConfig, render
from engines import Engine, binary_id, wait_listening
from helpers import fresh_network


@pytest.fixture
def start_engine() -> Iterator[Any]:
    """start(binary, host=N, extra={...}, cluster=False, port=6379, files={name: text}) -> Engine."""
    network = fresh_network().removesuffix(".0/24")
    started: list[Engine] = []

    def start(
        binary: EngineBinary,
        *,
        host: int,
        extra: dict[str, str] | None = None,
        cluster: bool = False,
        port: int = 6379,
        directory: Path | None = None,
        wait_port: int | None = None,
    ) -> Engine:
        address = f"{network}.{host}"
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
        started.append(engine)
        try:
            wait_listening(address, wait_port or port, process)
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(f"{binary_id(binary)} on {address}: {error}\n{engine.log()[-2000:]}") from None
        return engine

    start.address = lambda host: f"{network}.{host}"  # type: ignore[attr-defined]
    yield start
    for engine in started:
        if engine.process.poll() is None:
            os.killpg(engine.process.pid, signal.SIGKILL)
        engine.process.wait()
        shutil.rmtree(engine.directory, ignore_errors=True)
