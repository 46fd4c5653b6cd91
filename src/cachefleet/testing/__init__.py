"""A real Cachefleet for application tests: ``with cachefleet.testing.running() as fleet:``.

``running`` starts ``cachefleet up`` as a child process on a temporary data dir, a free port and
a /24 of loopback of its own, and yields a ``LocalFleet``: boto3 clients of the endpoint and
``replication_group(...)``, which creates a group, waits until it is available and returns a
ready redis-py client. On exit every process it started is stopped (the control plane and every
engine node) and the temporary directory is removed.

Clean-up does not depend on the caller getting to its ``finally``: a small reaper process is
started first and waits on a pipe from this process; when the pipe closes (the block ends, or
this process dies, even by SIGKILL), the reaper stops the control plane and every engine process
of the data dir, as ``cachefleet down`` does, and removes it (``_reaper.py``). The normal exit
closes the pipe itself and waits for the reaper, then checks by /proc that no engine process of
the data dir is left.

The fleet talks to the server through its public API only, like any application would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import redis
from botocore.config import Config

import cachefleet
from cachefleet.client import declared
from cachefleet.testing.network import claim_network, engine_pids, engine_processes, free_port, fresh_network

__all__ = [
    "FleetError",
    "LocalFleet",
    "claim_network",
    "engine_pids",
    "engine_processes",
    "free_port",
    "fresh_network",
    "running",
]

DEFAULT_ENGINE = "valkey"
DEFAULT_REGION = "us-east-1"
DEFAULT_NODE_TYPE = "cache.t4g.micro"
CREDENTIALS = ("cachefleet-test", "cachefleet-test")  # a Cachefleet on loopback accepts any
_FAILED = ("create-failed", "incompatible-network", "restore-failed", "deleted")

# The clean-up process, run by path (importing nothing of ours: it starts in milliseconds).
_REAPER = Path(__file__).with_name("_reaper.py")


class FleetError(RuntimeError):
    """The test fleet could not start, a resource did not become available, or processes were left."""


def _child_env() -> dict[str, str]:
    """The environment of our child processes: they import the very cachefleet this process runs."""
    env = dict(os.environ)
    source = str(Path(cachefleet.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([source, *filter(None, [env.get("PYTHONPATH")])])
    return env


@dataclass
class LocalFleet:
    """A running test server: where it is, clients of it, and helpers that make ready resources."""

    endpoint_url: str
    region: str
    data_dir: Path
    node_network: str
    engine: str
    engine_version: str | None
    pid: int  # the control plane's
    reaper_pid: int  # the process that stops everything when the block ends or its owner dies
    log_path: Path
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _connections: list[Any] = field(default_factory=list, repr=False)

    # ------------------------------------------------------------------ AWS API clients
    def client(self, service: str, **kwargs: Any) -> Any:
        """A new boto3 client of ``service`` (elasticache, cloudwatch, logs) on this endpoint."""
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=kwargs.pop("region_name", self.region),
            aws_access_key_id=CREDENTIALS[0],
            aws_secret_access_key=CREDENTIALS[1],
            config=kwargs.pop("config", Config(retries={"mode": "standard", "max_attempts": 3})),
            **kwargs,
        )

    @property
    def elasticache(self) -> Any:
        """The boto3 ElastiCache client of this fleet (made once)."""
        if "elasticache" not in self._clients:
            self._clients["elasticache"] = self.client("elasticache")
        return self._clients["elasticache"]

    @property
    def cloudwatch(self) -> Any:
        """The boto3 CloudWatch client of this fleet (made once)."""
        if "cloudwatch" not in self._clients:
            self._clients["cloudwatch"] = self.client("cloudwatch")
        return self._clients["cloudwatch"]

    # ------------------------------------------------------------------ ready resources
    def replication_group(
        self,
        group_id: str,
        *,
        timeout: float = 60.0,
        client_options: dict[str, Any] | None = None,
        **create: Any,
    ) -> Any:
        """CreateReplicationGroup(ReplicationGroupId=group_id, **create), waits until it is available and
        returns a redis-py client of it: ``RedisCluster`` on the configuration endpoint when cluster
        mode is enabled, else ``Redis`` on the primary endpoint (with the AuthToken as password and
        the fleet's CA when TransitEncryptionEnabled). ``client_options`` go to the redis-py client.

        Defaults: the fleet's engine and version, node type cache.t4g.micro, the id as description.
        """
        params = {
            "ReplicationGroupDescription": group_id,
            "Engine": self.engine,
            **({"EngineVersion": self.engine_version} if self.engine_version else {}),
            **({} if "CacheNodeType" in create else {"CacheNodeType": DEFAULT_NODE_TYPE}),
            **create,
        }
        self.elasticache.create_replication_group(ReplicationGroupId=group_id, **params)
        self.wait_replication_group(group_id, timeout=timeout)
        options = dict(client_options or {})
        if "AuthToken" in create:
            options.setdefault("password", create["AuthToken"])
        return self.connect(group_id, **options)

    def wait_replication_group(self, group_id: str, *, status: str = "available", timeout: float = 60.0) -> dict[str, Any]:
        """Polls DescribeReplicationGroups until the group has ``status``; raises FleetError when it
        fails (with its last events) or times out."""
        deadline = time.monotonic() + timeout
        interval = 0.05
        while True:
            group = self.elasticache.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
            if group["Status"] == status:
                return dict(group)
            if group["Status"] in _FAILED and status not in _FAILED:
                raise FleetError(f"replication group {group_id} is {group['Status']}: {self._events(group_id)}")
            if time.monotonic() > deadline:
                raise FleetError(f"replication group {group_id} is still {group['Status']} after {timeout:.0f} s")
            time.sleep(interval)
            interval = min(interval * 1.5, 0.5)  # most groups are ready in well under a second

    def connect(self, group_id: str, **options: Any) -> Any:
        """A redis-py client of an available replication group (closed when the fleet stops)."""
        group = self.elasticache.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
        if group.get("TransitEncryptionEnabled"):
            options.setdefault("ssl", True)
            options.setdefault("ssl_ca_data", self.ca_certificate())
        if group.get("ClusterEnabled"):
            endpoint = group["ConfigurationEndpoint"]
            client: Any = redis.RedisCluster(host=endpoint["Address"], port=endpoint["Port"], **options)
        else:
            endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]
            client = redis.Redis(host=endpoint["Address"], port=endpoint["Port"], **options)
        self._connections.append(client)
        return client

    def serverless_cache(
        self,
        name: str,
        *,
        timeout: float = 60.0,
        client_options: dict[str, Any] | None = None,
        **create: Any,
    ) -> Any:
        """CreateServerlessCache(ServerlessCacheName=name, **create), waits until it is available and
        returns a ``RedisCluster`` client of its Endpoint (with the fleet's CA where the engine build
        serves TLS: DescribeCacheEngineVersions says which). Default engine: the fleet's."""
        params = {"Engine": self.engine, **create}
        self.elasticache.create_serverless_cache(ServerlessCacheName=name, **params)
        cache = self.wait_serverless_cache(name, timeout=timeout)
        options = dict(client_options or {})
        versions = self.elasticache.describe_cache_engine_versions(
            Engine=cache["Engine"], EngineVersion=cache["FullEngineVersion"]
        )["CacheEngineVersions"]
        if any("TLS): supported" in v.get("CacheEngineVersionDescription", "") for v in versions):
            options.setdefault("ssl", True)
            options.setdefault("ssl_ca_data", self.ca_certificate())
        endpoint = cache["Endpoint"]
        client = redis.RedisCluster(host=endpoint["Address"], port=endpoint["Port"], **options)
        self._connections.append(client)
        return client

    def wait_serverless_cache(self, name: str, *, status: str = "available", timeout: float = 60.0) -> dict[str, Any]:
        """Polls DescribeServerlessCaches until the cache has ``status``; raises FleetError when it
        fails or times out."""
        deadline = time.monotonic() + timeout
        interval = 0.05
        while True:
            cache = self.elasticache.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]
            if cache["Status"] == status:
                return dict(cache)
            if cache["Status"] in _FAILED and status not in _FAILED:
                raise FleetError(f"serverless cache {name} is {cache['Status']}")
            if time.monotonic() > deadline:
                raise FleetError(f"serverless cache {name} is still {cache['Status']} after {timeout:.0f} s")
            time.sleep(interval)
            interval = min(interval * 1.5, 0.5)

    def ca_certificate(self) -> str:
        """The PEM of the CA that signs every node's TLS certificate."""
        with urllib.request.urlopen(f"{self.endpoint_url}/cachefleet/ca.pem", timeout=10) as response:
            return str(response.read().decode())

    def _events(self, source_id: str) -> str:
        try:
            events = self.elasticache.describe_events(SourceIdentifier=source_id, Duration=60)["Events"]
        except Exception as error:  # the reason is a courtesy; the failure is raised anyway
            return f"(no events: {error})"
        return " / ".join(str(e["Message"]) for e in events[-3:]) or "(no events)"

    # ------------------------------------------------------------------ the server itself
    def engine_pids(self) -> dict[str, int]:
        """Node dir name -> pid of the engine processes this fleet runs now."""
        return engine_pids(self.data_dir)

    def log(self) -> str:
        """What the control plane wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _close_connections(self) -> None:
        for connection in self._connections:
            with contextlib.suppress(Exception):
                connection.close()
        self._connections.clear()


def _wait_ready(process: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float) -> None:
    """Until this very process answers /healthz (not whatever else may have taken the port)."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise FleetError(f"cachefleet up exited with {process.returncode}:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if json.loads(response.read()).get("pid") == process.pid:
                    return
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise FleetError(f"cachefleet up did not answer within {timeout:.0f} s:\n{_tail(log_path)}")
        time.sleep(0.02)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running(
    *,
    engine: str = DEFAULT_ENGINE,
    engine_version: str | None = None,
    region: str = DEFAULT_REGION,
    data_dir: Path | str | None = None,
    node_network: str | None = None,
    port: int | None = None,
    warm_nodes: int = 0,
    sample_interval: int = 1,
    max_nodes: int | None = None,
    init: Path | str | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 60.0,
) -> Iterator[LocalFleet]:
    """Starts a Cachefleet server, yields a LocalFleet, and stops it with every node it started.

    ``engine``/``engine_version``: what ``replication_group`` creates by default (checked against
    the installed builds at start). ``data_dir``: kept after the block if given, else a temporary
    directory that is removed. ``node_network``: a loopback block (default: a free /24 claimed for
    the block). ``max_nodes``: the node quota of the region (``cachefleet up --max-nodes``; default
    ElastiCache's 300). ``init``: a declared-fleet file (as ``cachefleet up --init``), applied before the block starts. ``extra_args`` go to
    ``cachefleet up`` as they are.
    """
    root = Path(tempfile.mkdtemp(prefix="cachefleet-fleet-"))
    directory = Path(data_dir).resolve() if data_dir is not None else root / "data"
    log_path = root / "server.log"
    claim: int | None = None
    if node_network is None:
        node_network, claim = claim_network()
    port = port or free_port()
    env = _child_env()
    # In its own session: Ctrl-C in a terminal reaches the test run, not its clean-up.
    reaper = subprocess.Popen(
        [sys.executable, str(_REAPER), str(directory), str(root)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=env, cwd=tempfile.gettempdir(), start_new_session=True,
    )
    server: subprocess.Popen[bytes] | None = None
    fleet: LocalFleet | None = None
    try:
        with open(log_path, "ab") as log:
            server = subprocess.Popen(
                [
                    sys.executable, "-m", "cachefleet.cli.main", "up",
                    "--data-dir", str(directory),
                    "--listen", f"127.0.0.1:{port}",
                    "--node-network", node_network,
                    "--region", region,
                    "--warm-nodes", str(warm_nodes),
                    "--sample-interval", str(sample_interval),
                    *(["--max-nodes", str(max_nodes)] if max_nodes is not None else []),
                    *extra_args,
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=root,
            )
        url = f"http://127.0.0.1:{port}"
        _wait_ready(server, url, log_path, startup_timeout)
        fleet = LocalFleet(
            endpoint_url=url, region=region, data_dir=directory, node_network=node_network, engine=engine,
            engine_version=engine_version, pid=server.pid, reaper_pid=reaper.pid, log_path=log_path,
        )
        _check_engine(fleet)
        if init is not None:
            # What `cachefleet up --init` does, from here: the block starts once it is all ready,
            # and a mistake in the file fails the test that gave it.
            declared.apply(fleet.elasticache, declared.load(Path(init)))
        yield fleet
    finally:
        if fleet is not None:
            fleet._close_connections()
        if server is not None:
            _stop(server)
        if reaper.stdin is not None:
            reaper.stdin.close()  # the reaper stops every node of the data dir and removes the temp dir
        try:
            reaper.wait(timeout=60)
        except subprocess.TimeoutExpired:  # it goes on by itself; say so rather than hang
            pass
        if claim is not None:
            os.close(claim)
        left = engine_processes(directory)
        if left:
            raise FleetError(f"engine processes left behind under {directory}: {left}")


def _check_engine(fleet: LocalFleet) -> None:
    """Refuses an engine or version that is not installed, listing those that are."""
    versions = fleet.elasticache.describe_cache_engine_versions()["CacheEngineVersions"]
    installed = sorted({(v["Engine"], v["EngineVersion"]) for v in versions})
    wanted = [
        (name, version) for name, version in installed
        if name == fleet.engine and (fleet.engine_version is None or version == fleet.engine_version
                                     or version.startswith(fleet.engine_version + "."))
    ]
    if not wanted:
        choices = ", ".join(f"{name} {version}" for name, version in installed)
        raise FleetError(f"engine {fleet.engine} {fleet.engine_version or ''} is not installed here (installed: {choices})")
