from __future__ import annotations

import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import Server, free_port, fresh_network  # noqa: E402

FAILED_LOGS = Path(tempfile.gettempdir()) / "cachefleet-failed-logs"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test keeps what its control plane logged: a copy of the whole log in FAILED_LOGS
    (the data dir is removed with the fixture) and its warnings in the report, so that a failure
    seen once in CI can be read afterwards."""
    report = yield
    if report.when == "call" and report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, Server) and value.log_path is not None and value.log_path.exists():
                FAILED_LOGS.mkdir(exist_ok=True)
                kept = FAILED_LOGS / (re.sub(r"[^\w.-]+", "_", item.nodeid) + f"-{name}.log")
                shutil.copyfile(value.log_path, kept)
                warnings = [line for line in value.log().splitlines() if " WARNING " in line or " ERROR " in line]
                report.sections.append((f"control plane warnings ({name}; whole log kept in {kept})",
                                        "\n".join(warnings[-60:])))
    return report


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


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test`'s two workers (pytest-xdist, --dist loadfile): each test file runs whole on one
    worker, in order, with its module fixtures -- and the security package as one unit, because its
    last module checks what every other module of the package left in their shared server."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "tests/acceptance/security" if path.startswith("tests/acceptance/security/") else path

    return ByFile(config, log)
