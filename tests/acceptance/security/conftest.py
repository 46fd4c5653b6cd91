"""One real control plane for the security acceptance tests (AUTH tokens, RBAC, TLS), and the
register of every token and password they use: the last module scans the data dir, the server
log and /metrics for them.

Node certificates live 17 seconds here (``--tls-certificate-days 0.0002``), so every TLS node
renews its certificate (a third before expiry, without a restart) several times during the tests.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Server, free_port, fresh_network

SECRETS: list[str] = []
CERTIFICATE_DAYS = "0.0002"


@pytest.fixture(scope="package")
def secrets_used() -> list[str]:
    """Every token and password the security tests used (the leak scan looks for each)."""
    return SECRETS


@pytest.fixture
def secret() -> Any:
    """secret(value) -> value, registered for the leak scan."""
    def register(value: str) -> str:
        SECRETS.append(value)
        return value

    return register


@pytest.fixture(scope="package")
def locked_server() -> Iterator[Server]:
    root = Path(tempfile.mkdtemp(prefix="cachefleet-security-"))
    running = Server(data_dir=root / "data", network=fresh_network(), port=free_port(),
                     extra=["--tls-certificate-days", CERTIFICATE_DAYS]).start()
    try:
        yield running
    finally:
        running.down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="package")
def lec(locked_server: Server) -> Any:
    return locked_server.client()


@pytest.fixture(scope="package")
def ca_file(locked_server: Server) -> str:
    """The server's CA, as `cachefleet ca-cert` prints it, for clients' ssl_ca_certs."""
    path = locked_server.data_dir.parent / "client-ca.pem"
    with urllib.request.urlopen(f"{locked_server.url}/cachefleet/ca.pem", timeout=10) as response:
        path.write_bytes(response.read())
    return str(path)
