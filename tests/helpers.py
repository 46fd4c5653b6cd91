"""Starting real Cachefleet servers for tests, and waiting on them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import redis
from botocore.config import Config

# One copy of the port, network and process look-ups, shared with cachefleet.testing (the public testing API).
from cachefleet.testing.network import engine_pids, engine_processes, free_port, fresh_network  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
CACHEFLEET = [sys.executable, "-m", "cachefleet.cli.main"]


@dataclass
class Server:
    data_dir: Path
    network: str
    port: int
    extra: list[str] = field(default_factory=list)
    # Variables added to this server's environment (the crash tests' CACHEFLEET_CRASH_AFTER).
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True) -> Server:
        if self.log_path is not None:
            # A restart takes a new port: the old one may have been taken by another process meanwhile.
            self.port = free_port()
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                *CACHEFLEET, "up",
                "--data-dir", str(self.data_dir),
                "--listen", f"127.0.0.1:{self.port}",
                "--node-network", self.network,
                *([] if "--warm-nodes" in self.extra else ["--warm-nodes", "0"]),
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, **self.env} if self.env else None,
        )
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until this very process answers /healthz (not whatever else listens on the port)."""
        import json

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"cachefleet up exited with {self.process.returncode}:\n{self.log()}")
            # An HTTP answer, not just a TCP connect: right after the previous server on this
            # port was killed, a connect can succeed with nobody listening (seen here ~1 in 4).
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if json.loads(response.read()).get("pid") == self.process.pid:
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        raise TimeoutError(f"cachefleet up did not listen within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stops the control plane only (engine nodes keep running)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def down(self) -> None:
        """Stops the control plane and every node of the data dir, and checks none is left."""
        self.stop()
        subprocess.run([*CACHEFLEET, "down", "--data-dir", str(self.data_dir)], check=True, capture_output=True, cwd=ROOT)
        left = engine_pids(self.data_dir)
        assert not left, f"engine processes left behind: {left}"

    def client(self, service: str = "elasticache", region: str = "us-east-1", **kwargs: Any) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=kwargs.pop("access_key", "AKIDTEST"),
            aws_secret_access_key=kwargs.pop("secret_key", "secret"),
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
            **kwargs,
        )


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.02, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def group_status(ec: Any, group_id: str) -> str | None:
    try:
        return str(ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]["Status"])
    except ec.exceptions.ReplicationGroupNotFoundFault:
        return None


def wait_group(ec: Any, group_id: str, status: str = "available", timeout: float = 30.0) -> dict[str, Any]:
    wait_for(lambda: group_status(ec, group_id) == status, timeout=timeout, what=f"{group_id} to be {status}")
    return dict(ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0])


def wait_group_gone(ec: Any, group_id: str, timeout: float = 30.0) -> None:
    wait_for(lambda: group_status(ec, group_id) is None, timeout=timeout, what=f"{group_id} to be deleted")


def cluster_status(ec: Any, cluster_id: str) -> str | None:
    try:
        return str(ec.describe_cache_clusters(CacheClusterId=cluster_id)["CacheClusters"][0]["CacheClusterStatus"])
    except ec.exceptions.CacheClusterNotFoundFault:
        return None


def wait_cluster(ec: Any, cluster_id: str, status: str = "available", timeout: float = 30.0) -> dict[str, Any]:
    wait_for(lambda: cluster_status(ec, cluster_id) == status, timeout=timeout, what=f"{cluster_id} to be {status}")
    return dict(
        ec.describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)["CacheClusters"][0]
    )


def data_memory(node_type: str, reserved_percent: int = 25) -> int:
    """The engine's maxmemory on a node of ``node_type``: ElastiCache's maxmemory of the node type less
    reserved-memory-percent (25 in the default parameter groups)."""
    from cachefleet.domain import parameters

    return parameters.data_maxmemory(node_type, {"reserved-memory-percent": str(reserved_percent)})


def wait_writable(client: redis.Redis, *, timeout: float = 10.0, what: str) -> None:
    """Until ``client``'s node takes a write: it answers READONLY while it follows another node, then
    NOREPLICAS (min-replicas-to-write) until its own replica has reconnected to it."""

    def takes_writes() -> bool:
        try:
            return bool(client.set("cachefleet:writable", "yes"))
        except redis.ResponseError:
            return False

    wait_for(takes_writes, timeout=timeout, what=what)


def replicates_read_only(writer: redis.Redis, reader: redis.Redis, key: str, value: str) -> None:
    """A write of ``key`` on ``writer`` is read on ``reader`` within a second (a global datastore's
    secondary), and ``reader`` refuses writes with READONLY."""
    writer.set(key, value)
    started = time.monotonic()
    wait_for(lambda: reader.get(key) == value, timeout=5, what=f"{key}={value} on the reader")
    assert time.monotonic() - started < 1.0
    try:
        reader.set(key, "from the reader")
    except redis.ReadOnlyError:
        return
    raise AssertionError("the reader took a write")


def engine(address: str, port: int = 6379) -> redis.Redis:
    return redis.Redis(host=address, port=port, socket_timeout=5, socket_connect_timeout=5, decode_responses=True)


def exporting(*sources: redis.Redis) -> bool:
    """Whether an atomic slot migration job (Valkey 9+ CLUSTER GETSLOTMIGRATIONS) of one of these
    source primaries is running now: a move that lasts ~0.2 s here, caught by polling this."""
    from cachefleet.engine.cluster import FINISHED

    return any(job["operation"] == "EXPORT" and job["state"] not in FINISHED
               for source in sources for job in source.execute_command("CLUSTER", "GETSLOTMIGRATIONS"))


def node_update_statuses(found: Any) -> set[str]:
    """Every NodeUpdateStatus anywhere in update actions (node groups' members, cache nodes): a
    BatchStopUpdateAction sent before any is "in-progress" or "complete" rightly updates none."""
    if isinstance(found, dict):
        own = {found["NodeUpdateStatus"]} if "NodeUpdateStatus" in found else set()
        return own.union(*(node_update_statuses(v) for v in found.values()))
    if isinstance(found, list):
        return set().union(*(node_update_statuses(v) for v in found))
    return set()


def events_of(ec: Any, source_id: str) -> list[str]:
    events = ec.describe_events(SourceIdentifier=source_id, Duration=60)["Events"]
    return [str(e["Message"]) for e in events]


def wait_event(ec: Any, source_id: str, text: str, *, timeout: float = 30.0) -> list[str]:
    """Waits until an event of ``source_id`` contains ``text``: an event is recorded once the
    control plane has finished its step, which can be after a client already sees the outcome."""
    return wait_for(lambda: [m for m in events_of(ec, source_id) if text in m], timeout=timeout,
                    interval=0.1, what=f"an event of {source_id} saying {text!r}")


def raw_call(
    url: str,
    params: dict[str, str],
    *,
    service: str = "elasticache",
    region: str = "us-east-1",
    access_key: str | None = "AKIDTEST",
    secret_key: str = "secret",
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Sends a Query-protocol request as it is, signed with SigV4 unless ``access_key`` is None."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = urllib.parse.urlencode(params)
    if method == "GET":
        request = AWSRequest(method="GET", url=f"{url}/?{body}", headers=dict(headers or {}))
    else:
        request = AWSRequest(
            method="POST",
            url=url + "/",
            data=body.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", **(headers or {})},
        )
    if access_key is not None:
        SigV4Auth(Credentials(access_key, secret_key), service, region).add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method=method)
    try:
        with urllib.request.urlopen(raw, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def error_code(xml: str) -> str:
    import re

    match = re.search(r"<Code>([^<]*)</Code>", xml)
    return match.group(1) if match else ""


def write_replicated(address: str, key: str, value: str, replicas: int, port: int = 6379) -> None:
    """SET on the primary, then WAIT on the same connection until ``replicas`` have it."""
    client = engine(address, port)
    client.set(key, value)
    acknowledged = client.wait(replicas, 5000)
    assert acknowledged >= replicas, f"only {acknowledged} of {replicas} replicas acknowledged {key}"


def node_addresses(ec: Any, cluster_ids: list[str]) -> dict[str, str]:
    """Cache cluster id -> its node's address."""
    found = {}
    for cluster_id in cluster_ids:
        cluster = ec.describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)["CacheClusters"][0]
        found[cluster_id] = cluster["CacheNodes"][0]["Endpoint"]["Address"]
    return found


@contextlib.contextmanager
def moto_s3_server(directory: Path) -> Iterator[str]:
    """moto_server (a real S3 API over HTTP) on a free port, its log in ``directory``; yields its
    URL once it answers, stopped by pid at the end."""
    port = free_port()
    log = directory / "moto.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(url + "/moto-api/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def expect(code: str, call: Callable[..., Any], /, *, status: int | None = None, says: str | None = None,
           **kwargs: Any) -> None:
    """``call(**kwargs)`` fails with ElastiCache error ``code`` (and that HTTP status, and a message
    containing ``says``, when given)."""
    import pytest
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    assert error["Code"] == code, f"{call.__name__}({kwargs}) -> {error}"
    if status is not None:
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    if says is not None:
        assert says in error["Message"], error["Message"]


class GlideLoad:
    """valkey-glide's cluster client in a thread: writes a new key and reads it back (with
    ``known``, also reads one of the keys ``known:0`` .. ``known:N-1`` each round), again and again
    until the block ends; every failure counts, with its time."""

    def __init__(self, endpoint: dict[str, Any], *, value: str = "v", known: int = 0) -> None:
        self.endpoint = endpoint
        self.value = value
        self.known = known
        self.errors: list[str] = []
        self.error_times: list[float] = []  # time.monotonic() of each error
        self.written = 0
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()))

    async def _run(self) -> None:
        from glide import GlideClusterClient, GlideClusterClientConfiguration, NodeAddress

        client = await GlideClusterClient.create(GlideClusterClientConfiguration(
            [NodeAddress(self.endpoint["Address"], self.endpoint["Port"])], request_timeout=10000))
        try:
            while not self._stop.is_set():
                key = f"glide:{self.written}"
                try:
                    await client.set(key, self.value)
                    if await client.get(key) != self.value.encode():
                        self.errors.append(f"{key} read back wrong")
                    self.written += 1
                    if self.known:
                        known = self.reads % self.known
                        if await client.get(f"known:{known}") != str(known).encode():
                            self.errors.append(f"known:{known} read wrong")
                        self.reads += 1
                except Exception as error:  # noqa: BLE001 - every failure counts
                    self.errors.append(f"{time.strftime('%H:%M:%S')} {key}: {error!r}")
                    self.error_times.append(time.monotonic())
        finally:
            await client.close()

    def __enter__(self) -> GlideLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
