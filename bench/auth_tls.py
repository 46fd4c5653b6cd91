"""Data plane cost of Cachefleet's locks: redis-benchmark SET/GET (50 clients) side by side, medians.

1. AUTH + an ACL user: a replication group made through the API with a user group (``default``
   off, the app user ``on ~* +@all`` with a password), its primary as Cachefleet runs it (ACL file,
   the control-plane user, health probes and 1 s sampling over that user), against the same engine
   binary started by hand with the same app user on the command line. Valkey 8.1, and Redis 7.0.
   Target (issue 12): ratio >= 0.98.
2. TLS: a Redis 7.0 group with TransitEncryptionEnabled (required) and the same user group,
   against the same binary started by hand with TLS (a certificate of the same CA) and the same
   user (``--tls --cacert``). Target: >= 0.98. Needs an engine build with TLS (Debian's redis-server).

Both sides of each pair run in one script, interleaved round by round (this machine is noisy).
Needs redis-benchmark (Debian: redis-tools).
Usage: python bench/auth_tls.py [--rounds 9] [--requests 100000]
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import machine, server

from cachefleet.engine import acl, tls
from cachefleet.engine.catalog import Catalog, EngineBinary

APP_USER = "app"
APP_PASSWORD = "app-password-for-the-benchmark"
PORT = 6379


def wait_listening(address: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"engine on {address} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex((address, PORT)) == 0:
                return
        time.sleep(0.01)
    sys.exit(f"engine on {address} does not listen")


def locked_group(ec, group_id: str, *, engine: str, version: str, tls_enabled: bool) -> str:
    """A 1-node group made through the API with the app's user group; its primary endpoint."""
    ec.create_replication_group(
        ReplicationGroupId=group_id, ReplicationGroupDescription="bench", Engine=engine, EngineVersion=version,
        CacheNodeType="cache.m7g.large", NumCacheClusters=1, UserGroupIds=[f"{engine}-users"],
        **({"TransitEncryptionEnabled": True} if tls_enabled else {}),
    )
    while True:
        group = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
        if group["Status"] == "available":
            return str(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"])
        time.sleep(0.1)


def user_groups(ec) -> None:
    """The app user (and default off) for each engine, as the ElastiCache API makes them."""
    ec.create_user(UserId="lock", UserName="default", Engine="redis", AccessString="off",
                   Passwords=["never-used-0123456789"])
    ec.create_user(UserId="app", UserName=APP_USER, Engine="redis", AccessString="on ~* +@all", Passwords=[APP_PASSWORD])
    for engine in ("valkey", "redis"):
        ec.create_user_group(UserGroupId=f"{engine}-users", Engine=engine, UserIds=["lock", "app"])
    while any(g["Status"] != "active" for g in ec.describe_user_groups()["UserGroups"]):
        time.sleep(0.1)


def by_hand(binary: EngineBinary, address: str, directory: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    """The same binary with the same app user, started the way its README says."""
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [str(binary.server), "--bind", address, "--port", str(PORT), "--save", "", "--appendonly", "no",
         "--dir", str(directory), "--protected-mode", "no",
         "--user", "default", "off", "--user", APP_USER, "on", f"#{acl.password_hash(APP_PASSWORD)}", "~*", "+@all",
         *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_listening(address, process)
    return process


def benchmark(address: str, requests: int, extra: list[str]) -> dict[str, float]:
    out = subprocess.run(
        ["redis-benchmark", "-h", address, "-p", str(PORT), "-c", "50", "-n", str(requests), "-t", "set,get", "--csv",
         "--user", APP_USER, "-a", APP_PASSWORD, *extra],
        capture_output=True, text=True, check=True,
    ).stdout
    rows = list(csv.reader(io.StringIO(out)))
    return {row[0]: float(row[1]) for row in rows[1:]}


def compare(label: str, sides: dict[str, str], requests: int, rounds: int, extra: list[str]) -> None:
    results: dict[str, dict[str, list[float]]] = {name: {} for name in sides}
    names = list(sides)
    for round_number in range(rounds):
        for name in names if round_number % 2 == 0 else names[::-1]:
            for test, rps in benchmark(sides[name], requests, extra).items():
                results[name].setdefault(test, []).append(rps)
    ours, theirs = names
    for test in results[ours]:
        a, b = statistics.median(results[ours][test]), statistics.median(results[theirs][test])
        print(f"  {label} {test}: cachefleet median {a:,.0f} rps, by hand {b:,.0f} rps, ratio {a / b:.3f}"
              f" (target >= 0.98: {'met' if a / b >= 0.98 else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--requests", type=int, default=100000)
    args = parser.parse_args()
    if not shutil.which("redis-benchmark"):
        sys.exit("redis-benchmark is missing: apt-get install redis-tools")
    binaries = Catalog.discover().binaries()
    valkey = next(b for b in binaries if b.release.engine == "valkey" and b.release.version.startswith("8."))
    with_tls = next((b for b in binaries if b.release.tls), None)
    print(f"redis-benchmark -c 50 -t set,get --user {APP_USER}, {args.requests} requests per round, "
          f"{args.rounds} rounds; {machine()}")
    root = Path(tempfile.mkdtemp(prefix="bench-auth-tls-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with server("127.92.0.0/24", extra=["--warm-nodes", "0"]) as running:
            ec = running.client()
            user_groups(ec)
            for binary in [valkey, *([with_tls] if with_tls else [])]:
                release = binary.release
                print(f"AUTH + ACL user, {release.engine} {release.version}")
                ours = locked_group(ec, f"auth-{release.engine}", engine=release.engine, version=release.version,
                                    tls_enabled=False)
                hand = f"127.92.{1 if binary is valkey else 2}.2"
                processes.append(by_hand(binary, hand, root / f"{release.engine}-hand", []))
                compare("auth", {"cachefleet": ours, "by hand": hand}, args.requests, args.rounds, [])
            if with_tls is None:
                print("TLS: skipped, no engine build with TLS is installed (apt-get install redis-server)")
                return
            print(f"TLS + AUTH + ACL user, {with_tls.release.engine} {with_tls.release.version}")
            ca_path = root / "ca.pem"
            with urllib.request.urlopen(f"{running.url}/cachefleet/ca.pem", timeout=10) as response:
                ca_path.write_bytes(response.read())
            ca = tls.CertificateAuthority.load_or_create(running.root / "data" / "tls")  # the server's CA, for the bare engine
            hand_files = ca.issue_files(root / "tls-hand-certs", "hand", ["127.92.3.2"])
            ours = locked_group(ec, "tls-redis", engine="redis", version=with_tls.release.version, tls_enabled=True)
            processes.append(by_hand(with_tls, "127.92.3.2", root / "tls-hand",
                                     ["--port", "0", "--tls-port", str(PORT), "--tls-cert-file", str(hand_files.cert),
                                      "--tls-key-file", str(hand_files.key), "--tls-ca-cert-file", str(hand_files.ca),
                                      "--tls-auth-clients", "no"]))
            compare("tls", {"cachefleet": ours, "by hand": "127.92.3.2"}, args.requests, args.rounds,
                    ["--tls", "--cacert", str(ca_path)])
    finally:
        for process in processes:
            process.terminate()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
