"""Data plane cost of Cachefleet's locks: redis-benchmark SET/GET (50 clients) side by side, medians.

1. AUTH + an ACL user: a node as Cachefleet locks it (its rendered config, an ACL file with
   ``default`` off, the control-plane user and the app user ``on ~* +@all`` with a hashed
   password) against the same engine binary started by hand with the same app user on the
   command line. Target (issue 12): ratio >= 0.98.
2. TLS: a node with Cachefleet's TLS settings and a CA-signed certificate against the same
   binary started by hand with TLS and the same certificate (``--tls --cacert``). Target: >= 0.98.
   Needs an engine build with TLS (Debian's redis-server).

Both sides of each pair run in one script, interleaved round by round (this machine is noisy).
Needs redis-benchmark (Debian: redis-tools).
Usage: python bench/auth_tls.py [--rounds 7] [--requests 100000]
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
from pathlib import Path

from common import machine

from cachefleet.engine import acl, tls
from cachefleet.engine.catalog import Catalog, EngineBinary
from cachefleet.engine.config import NodeConfig, render
from cachefleet.engine.files import atomic_write

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


def cachefleet_node(binary: EngineBinary, address: str, directory: Path, extra: dict[str, str]) -> subprocess.Popen[bytes]:
    """The node as Cachefleet renders and locks it."""
    (directory / "data").mkdir(parents=True, exist_ok=True)
    users = [acl.WantedUser("default", "off"), acl.control_plane_user(acl.new_password()),
             acl.WantedUser(APP_USER, "on ~* +@all", (acl.password_hash(APP_PASSWORD),))]
    aclfile = atomic_write(directory / "users.acl", "".join(u.acl_line() + "\n" for u in users))
    config = NodeConfig(address=address, port=PORT, directory=directory, maxmemory=2**30,
                        extra={"aclfile": str(aclfile), **extra})
    (directory / "engine.conf").write_text(render(config))
    process = subprocess.Popen([str(binary.server), str(directory / "engine.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(address, process)
    return process


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
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=100000)
    args = parser.parse_args()
    if not shutil.which("redis-benchmark"):
        sys.exit("redis-benchmark is missing: apt-get install redis-tools")
    binaries = Catalog.discover().binaries()
    valkey = next(b for b in binaries if b.release.engine == "valkey" and b.release.version.startswith("8."))
    with_tls = next((b for b in binaries if tls.tls_capable(b.server)), None)
    print(f"redis-benchmark -c 50 -t set,get --user {APP_USER}, {args.requests} requests per round, "
          f"{args.rounds} rounds; {machine()}")
    root = Path(tempfile.mkdtemp(prefix="bench-auth-tls-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for binary in [valkey, *([with_tls] if with_tls else [])]:
            print(f"AUTH + ACL user, {binary.release.engine} {binary.release.version}")
            net = "127.92.1" if binary is valkey else "127.92.2"
            processes.append(cachefleet_node(binary, f"{net}.1", root / f"{binary.release.engine}-ours", {}))
            processes.append(by_hand(binary, f"{net}.2", root / f"{binary.release.engine}-hand", []))
            compare("auth", {"cachefleet": f"{net}.1", "by hand": f"{net}.2"}, args.requests, args.rounds, [])
        if with_tls is None:
            print("TLS: skipped, no engine build with TLS is installed (apt-get install redis-server)")
            return
        print(f"TLS + AUTH + ACL user, {with_tls.release.engine} {with_tls.release.version}")
        ca = tls.CertificateAuthority.load_or_create(root / "tls")
        ours_files = ca.issue_files(root / "tls" / "ours", "ours", ["127.92.3.1"])
        hand_files = ca.issue_files(root / "tls" / "hand", "hand", ["127.92.3.2"])
        processes.append(cachefleet_node(with_tls, "127.92.3.1", root / "tls-ours", tls.tls_settings(ours_files, port=PORT)))
        processes.append(by_hand(with_tls, "127.92.3.2", root / "tls-hand",
                                 ["--port", "0", "--tls-port", str(PORT), "--tls-cert-file", str(hand_files.cert),
                                  "--tls-key-file", str(hand_files.key), "--tls-ca-cert-file", str(hand_files.ca),
                                  "--tls-auth-clients", "no"]))
        compare("tls", {"cachefleet": "127.92.3.1", "by hand": "127.92.3.2"}, args.requests, args.rounds,
                ["--tls", "--cacert", str(ca.cert_path)])
    finally:
        for process in processes:
            process.terminate()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
