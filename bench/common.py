"""Shared by the benchmarks: a throw-away Cachefleet server, signed raw requests, statistics."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BenchServer:
    def __init__(self, network: str, extra: list[str] | None = None) -> None:
        self.extra = extra or []
        self.root = Path(tempfile.mkdtemp(prefix="cachefleet-bench-"))
        self.port = free_port()
        self.network = network
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cachefleet.cli.main", "up", "--data-dir", str(self.root / "data"),
             "--listen", f"127.0.0.1:{self.port}", "--node-network", self.network, "--log-level", "WARNING",
             *self.extra, *extra],
            stdout=subprocess.DEVNULL, stderr=open(self.root / "server.log", "wb"), cwd=ROOT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), urllib.request.urlopen(self.url + "/healthz", timeout=1):
                return
            time.sleep(0.02)
        raise RuntimeError((self.root / "server.log").read_text())

    def client(self):
        return boto3.client("elasticache", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="bench",
                            aws_secret_access_key="bench", config=Config(retries={"max_attempts": 1}))

    def rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        subprocess.run([sys.executable, "-m", "cachefleet.cli.main", "down", "--data-dir", str(self.root / "data")],
                       capture_output=True, cwd=ROOT, check=False)
        if self.process is not None:
            self.process.wait(timeout=30)
        keep = os.environ.get("CACHEFLEET_BENCH_LOG")  # a path to keep the server's log at
        if keep:
            shutil.copyfile(self.root / "server.log", keep)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def server(network: str, extra: list[str] | None = None) -> Iterator[BenchServer]:
    running = BenchServer(network, extra)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def raw_request(url: str, params: dict[str, str]) -> bytes:
    """One signed Query request, without botocore's response parsing (measures the server)."""
    body = urllib.parse.urlencode(params).encode()
    request = AWSRequest(method="POST", url=url + "/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    SigV4Auth(Credentials("bench", "bench"), "elasticache", "us-east-1").add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST")
    with urllib.request.urlopen(raw, timeout=30) as response:
        return response.read()


def wait_all_available(ec, count: int, *, interval: float = 0.5) -> None:
    """Until the region has ``count`` replication groups, every one of them `available` (all pages)."""
    while True:
        groups, marker = [], None
        while True:
            page = ec.describe_replication_groups(**({"Marker": marker} if marker else {}))
            groups += page["ReplicationGroups"]
            marker = page.get("Marker")
            if not marker:
                break
        if len(groups) == count and all(g["Status"] == "available" for g in groups):
            return
        time.sleep(interval)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    return (f"median {statistics.median(values) * scale:.1f} {unit}, p90 {percentile(values, 0.9) * scale:.1f} {unit}, "
            f"min {min(values) * scale:.1f} {unit}, max {max(values) * scale:.1f} {unit} (n={len(values)})")


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(*pids: int) -> float:
    """utime + stime of the processes ``pids`` together, in seconds (/proc/PID/stat)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def load_average() -> str:
    """The machine's load averages over 1, 5 and 15 minutes."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    return f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
