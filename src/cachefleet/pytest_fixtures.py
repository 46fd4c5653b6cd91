"""The ``cachefleet`` fixture: one real Cachefleet server for a test session.

Registered by ``cachefleet.pytest_plugin`` when the run asks for it (``-p cachefleet``), or
directly with ``pytest_plugins = ["cachefleet.pytest_fixtures"]``. The server is
``cachefleet.testing.running``: a temporary data dir, a free port, its own loopback network,
and every process it started gone when the session ends, whatever the tests' outcome.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cachefleet.testing import LocalFleet, running


def _setting(config: pytest.Config, option: str, ini: str) -> str | None:
    value = config.getoption(option, default=None)
    if value:
        return str(value)
    try:
        return str(config.getini(ini)) or None
    except ValueError:  # the options module is not loaded (this module was named in pytest_plugins)
        return None


@pytest.fixture(scope="session")
def cachefleet(pytestconfig: pytest.Config) -> Iterator[LocalFleet]:
    """A running Cachefleet: ``.elasticache``/``.cloudwatch`` boto3 clients, ``.endpoint_url``, and
    ``.replication_group(id, **CreateReplicationGroup params)`` returning a ready redis-py client."""
    engine = _setting(pytestconfig, "cachefleet_engine", "cachefleet_engine") or "valkey"
    version = _setting(pytestconfig, "cachefleet_engine_version", "cachefleet_engine_version")
    max_nodes = _setting(pytestconfig, "cachefleet_max_nodes", "cachefleet_max_nodes")
    if max_nodes is not None and not (max_nodes.isdigit() and int(max_nodes) >= 1):
        raise pytest.UsageError(f"--cachefleet-max-nodes {max_nodes}: give a whole number of nodes, 1 or more.")
    with running(engine=engine, engine_version=version,
                 max_nodes=int(max_nodes) if max_nodes is not None else None) as fleet:
        yield fleet
