"""The ``start_engine`` fixture: bare engine processes, always killed and removed at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engines import BareEngines


@pytest.fixture
def start_engine() -> Iterator[BareEngines]:
    """start_engine(binary, host=N, extra={...}, cluster=False, port=6379, directory=..., wait_port=...) -> Engine;
    start_engine.address(N) is the address of host N of its /24."""
    engines = BareEngines()
    yield engines
    engines.close()
