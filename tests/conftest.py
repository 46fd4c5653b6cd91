from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import Server, free_port, fresh_network  # noqa: E402


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """One real control plane shared by the API tests; every test uses its own resource names."""
    root = Path(tempfile.mkdtemp(prefix="cachefleet-test-"))
    running = Server(data_dir=root / "data", network=fresh_network(), port=free_port()).start()
    try:
        yield running
    finally:
        running.down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ec(server: Server) -> Any:
    return server.client()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    """Starts extra servers with their own data dir; all are brought down at the end."""
    started: list[Server] = []

    def make(*extra: str, data_dir: Path | None = None, start: bool = True) -> Server:
        instance = Server(
            data_dir=data_dir or tmp_path / f"data{len(started)}",
            network=fresh_network(),
            port=free_port(),
            extra=list(extra),
        )
        started.append(instance)
        return instance.start() if start else instance

    yield make
    for instance in started:
        instance.down()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With `make test`'s two workers (pytest-xdist, --dist loadgroup), each test file runs whole on
    one worker, in order, with its module fixtures; the security package is one group, because its
    last module checks what every other module of the package left in their shared server."""
    root = Path(__file__).resolve().parent
    for item in items:
        if any(mark.name == "xdist_group" for mark in item.iter_markers()):
            continue
        path = Path(str(item.path)).resolve()
        relative = path.relative_to(root) if path.is_relative_to(root) else path
        group = "acceptance/security" if relative.parts[:2] == ("acceptance", "security") else str(relative)
        item.add_marker(pytest.mark.xdist_group(group))
