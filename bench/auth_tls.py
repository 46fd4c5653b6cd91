"""Data plane cost of Cachefleet's locks: redis-benchmark SET/GET (50 clients) side by side, medians.

1. AUTH + an ACL user: a replication group made through the API with a user group (``default``
   off, the app user ``on ~* +@all`` with a password), its primary as Cachefleet runs it (ACL file,
   the control-plane user, health probes and 1 s sampling over that user), against the same engine
   binary started by hand with the same app user on the command line. Valkey 8.1, and Redis 7.0.
   Target (issue 12): ratio >= 0.98.
2. TLS: a Redis 7.0 group with TransitEncryptionEnabled (required) and the same user group,
   against the same binary started by hand with TLS (a certificate of the same CA) and the same
   user (``--tls --cacert``). Target: >= 0.98. Needs an engine build with TLS (Debian's redis-server).

The machine is shared and has 2 cores, so the measurement is made robust, both sides alike:

- the engine started by hand is a session leader (``setsid``), as Cachefleet starts its engines:
  with the kernel's autogroup scheduling (``/proc/sys/kernel/sched_autogroup_enabled``) CPU is
  shared between sessions first, and a bare engine left in the benchmark's own session shared
  one session's share with redis-benchmark and the control plane, while the node had its own
  (measured: that alone moved the ratio by up to 1.3x under load);
- every thread of both engines is pinned to one core and redis-benchmark to another
  (``--engine-core``, ``--client-core``; ``taskset``'s system call);
- many short rounds, the order alternating (A B, B A, ...); the figure is the median of the
  per-round ratios;
- besides requests per second, the engine main thread's CPU time per request
  (``/proc/<pid>/schedstat``) of each side, which the other load on the machine barely moves, and
  each side's CPU time per second while idle (what the control plane's own traffic costs the node).

Before the rounds each pair prints how the two engines' ``CONFIG GET *`` differ (paths and
addresses left out), their clients and ACL users. ``--bare-config name=value`` (repeatable) sets a
parameter on the engine started by hand with CONFIG SET, and ``--node-config`` on the node: to
reproduce or remove a difference. ``--aa`` puts a second engine started by hand where the node
would be: the scatter of the method itself on this machine, with nothing different.
Needs redis-benchmark (Debian: redis-tools).
Usage: python bench/auth_tls.py [--rounds 21] [--requests 20000] [--pairs valkey,redis,tls]
       [--bare-config maxmemory=5gb ...] [--node-config ...] [--aa] [--no-pin] [--same-session]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import redis
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


SAME_SESSION = False  # --same-session: the bare engines stay in the benchmark's session (how this was measured before)


def by_hand(binary: EngineBinary, address: str, directory: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    """The same binary with the same app user, started the way its README says, in a session of its
    own as Cachefleet's engines are (see the module docstring: autogroup scheduling)."""
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [str(binary.server), "--bind", address, "--port", str(PORT), "--save", "", "--appendonly", "no",
         "--dir", str(directory), "--protected-mode", "no",
         "--user", "default", "off", "--user", APP_USER, "on", f"#{acl.password_hash(APP_PASSWORD)}", "~*", "+@all",
         *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=not SAME_SESSION,
    )
    wait_listening(address, process)
    return process


def tls_by_hand(binary: EngineBinary, ca: tls.CertificateAuthority, address: str, directory: Path) -> subprocess.Popen[bytes]:
    """The same, serving TLS only, with a certificate of the control plane's CA."""
    files = ca.issue_files(directory / "certs", "hand", [address])
    return by_hand(binary, address, directory, ["--port", "0", "--tls-port", str(PORT), "--tls-cert-file", str(files.cert),
                                                "--tls-key-file", str(files.key), "--tls-ca-cert-file", str(files.ca),
                                                "--tls-auth-clients", "no"])


# Parameters that name a path or an address of one side: they differ by construction, at no cost.
IDENTITY = {"bind", "bind-source-addr", "dir", "logfile", "pidfile", "aclfile", "replica-announce-ip",
            "slave-announce-ip", "masteruser", "primaryuser", "tls-cert-file", "tls-key-file", "tls-ca-cert-file",
            "tls-client-cert-file", "tls-client-key-file", "port", "tls-port"}


@dataclass(frozen=True)
class Side:
    """One engine of a pair: where redis-benchmark reaches it, and its process (for its CPU time)."""

    name: str
    address: str
    pid: int


def connect(address: str, ca_file: Path | None) -> redis.Redis:
    return redis.Redis(host=address, port=PORT, username=APP_USER, password=APP_PASSWORD, decode_responses=True,
                       ssl=ca_file is not None, ssl_ca_certs=str(ca_file) if ca_file else None)


def side(name: str, address: str, ca_file: Path | None) -> Side:
    with connect(address, ca_file) as engine:
        return Side(name, address, int(engine.info("server")["process_id"]))


def pin(pid: int, core: int) -> None:
    """Every thread of the engine on one core (threads it starts later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {core})


def cpu_ns(pid: int) -> int:
    """The engine main thread's time on a CPU (the thread that runs every command)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def set_config(address: str, ca_file: Path | None, settings: list[str]) -> None:
    with connect(address, ca_file) as engine:
        for setting in settings:
            name, _, value = setting.partition("=")
            engine.config_set(name, value)


def describe_pair(sides: tuple[Side, Side], ca_file: Path | None) -> None:
    """What differs between the two engines, as they run: parameters, clients, ACL users."""
    (ours, theirs), configs, clients, users = sides, [], [], []
    for one in sides:
        with connect(one.address, ca_file) as engine:
            configs.append(engine.config_get("*"))
            clients.append(sorted(str(c.get("name") or "-") + "/" + str(c.get("user")) for c in engine.client_list()
                                  if c.get("cmd") != "client|list"))
            users.append(engine.acl_list())
    names = sorted(set(configs[0]) | set(configs[1]))
    differ = [n for n in names if n not in IDENTITY and configs[0].get(n) != configs[1].get(n)]
    print(f"  CONFIG GET * differs in {len(differ)} parameters besides paths and addresses:")
    for name in differ:
        print(f"    {name}: {ours.name} {configs[0].get(name)!r}, {theirs.name} {configs[1].get(name)!r}")
    for one, found, acls in zip(sides, clients, users, strict=True):
        print(f"  {one.name}: other clients {found or 'none'}; {len(acls)} ACL users: {'; '.join(acls)}")


def idle_cost(sides: tuple[Side, Side], seconds: float) -> dict[str, float]:
    """Each engine's main-thread CPU time per second while no client but the control plane talks to it."""
    before = {one.name: cpu_ns(one.pid) for one in sides}
    time.sleep(seconds)
    return {one.name: (cpu_ns(one.pid) - before[one.name]) / seconds / 1e6 for one in sides}


def benchmark(one: Side, test: str, requests: int, extra: list[str], client_core: int | None) -> tuple[float, float]:
    """One redis-benchmark run of one test: requests per second, and the engine's CPU ns per request."""
    taskset = ["taskset", "-c", str(client_core)] if client_core is not None else []
    started = cpu_ns(one.pid)
    out = subprocess.run(
        [*taskset, "redis-benchmark", "-h", one.address, "-p", str(PORT), "-c", "50", "-n", str(requests), "-t", test,
         "--csv", "--user", APP_USER, "-a", APP_PASSWORD, *extra],
        capture_output=True, text=True, check=True,
    ).stdout
    spent = cpu_ns(one.pid) - started
    rows = list(csv.reader(io.StringIO(out)))
    return float(rows[1][1]), spent / requests


def compare(label: str, sides: tuple[Side, Side], args: argparse.Namespace, extra: list[str]) -> None:
    ours, theirs = sides
    idle = idle_cost(sides, args.idle_seconds)
    print(f"  idle, main thread: {ours.name} {idle[ours.name]:.2f} ms CPU/s, {theirs.name} {idle[theirs.name]:.2f} ms CPU/s")
    rps: dict[tuple[str, str], list[float]] = {}
    cost: dict[tuple[str, str], list[float]] = {}
    for round_number in range(args.rounds):
        for one in sides if round_number % 2 == 0 else sides[::-1]:
            for test in ("set", "get"):
                rate, ns = benchmark(one, test, args.requests, extra, args.client_core)
                rps.setdefault((one.name, test), []).append(rate)
                cost.setdefault((one.name, test), []).append(ns)
    for test in ("set", "get"):
        a, b = rps[ours.name, test], rps[theirs.name, test]
        ca, cb = cost[ours.name, test], cost[theirs.name, test]
        ratios = [x / y for x, y in zip(a, b, strict=True)]
        ratio = statistics.median(ratios)
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratio, ratio, ratio]
        cpu_ratio = statistics.median(x / y for x, y in zip(ca, cb, strict=True))
        print(f"  {label} {test.upper()}: rps median {ours.name} {statistics.median(a):,.0f}, {theirs.name} "
              f"{statistics.median(b):,.0f}; median of per-round ratios {ratio:.3f} "
              f"(target >= 0.98: {'met' if ratio >= 0.98 else 'NOT met'}; quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f});"
              f" engine CPU per request "
              f"{statistics.median(ca):,.0f} vs {statistics.median(cb):,.0f} ns, median ratio {cpu_ratio:.3f}")


def run_pair(label: str, ours: str, theirs: str, args: argparse.Namespace, ca_file: Path | None,
             extra: list[str]) -> None:
    sides = (side("second by hand" if args.aa else "cachefleet", ours, ca_file), side("by hand", theirs, ca_file))
    if args.engine_core is not None:
        for one in sides:
            pin(one.pid, args.engine_core)
    set_config(ours, ca_file, args.node_config)
    set_config(theirs, ca_file, args.bare_config)
    describe_pair(sides, ca_file)
    compare(label, sides, args, extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--requests", type=int, default=20000, help="per test and round")
    parser.add_argument("--pairs", default="valkey,redis,tls", help="which pairs: valkey, redis, tls")
    two = (os.cpu_count() or 1) >= 2
    parser.add_argument("--engine-core", type=int, default=1 if two else None)
    parser.add_argument("--client-core", type=int, default=0 if two else None)
    parser.add_argument("--no-pin", action="store_true", help="leave the scheduler to place both")
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--bare-config", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--node-config", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--aa", action="store_true",
                        help="control run: a second engine started by hand in the node's place (the method's own scatter)")
    parser.add_argument("--same-session", action="store_true",
                        help="start the bare engines in this script's session, as before (to measure what that did)")
    args = parser.parse_args()
    global SAME_SESSION
    SAME_SESSION = args.same_session
    if args.no_pin:
        args.engine_core = args.client_core = None
    pairs = set(args.pairs.split(","))
    if not shutil.which("redis-benchmark"):
        sys.exit("redis-benchmark is missing: apt-get install redis-tools")
    binaries = Catalog.discover().binaries()
    valkey = next(b for b in binaries if b.release.engine == "valkey" and b.release.version.startswith("8."))
    with_tls = next((b for b in binaries if b.release.tls), None)
    plain = [b for b, name in ((valkey, "valkey"), (with_tls, "redis")) if b is not None and name in pairs]
    with open("/proc/loadavg") as loadavg:
        load = loadavg.read().split()[0]
    print(f"redis-benchmark -c 50 -t set / -t get --user {APP_USER}, {args.requests} requests per test and round, "
          f"{args.rounds} rounds; engines on core {args.engine_core}, redis-benchmark on core {args.client_core}; "
          f"{machine()}, load average {load}; bare engine CONFIG SET {args.bare_config}, node {args.node_config}"
          f"{'; A/A control' if args.aa else ''}{'; bare engines in this session' if args.same_session else ''}")
    root = Path(tempfile.mkdtemp(prefix="bench-auth-tls-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with server("127.92.0.0/24", extra=["--warm-nodes", "0"]) as running:
            ec = running.client()
            user_groups(ec)
            for binary in plain:
                release = binary.release
                print(f"AUTH + ACL user, {release.engine} {release.version}")
                hand = f"127.92.{1 if binary is valkey else 2}.2"
                if args.aa:  # the control: a second engine by hand where the node would be
                    ours = hand[:-1] + "3"
                    processes.append(by_hand(binary, ours, root / f"{release.engine}-second", []))
                else:
                    ours = locked_group(ec, f"auth-{release.engine}", engine=release.engine, version=release.version,
                                        tls_enabled=False)
                processes.append(by_hand(binary, hand, root / f"{release.engine}-hand", []))
                run_pair("auth", ours, hand, args, None, [])
            if "tls" not in pairs:
                return
            if with_tls is None:
                print("TLS: skipped, no engine build with TLS is installed (apt-get install redis-server)")
                return
            print(f"TLS + AUTH + ACL user, {with_tls.release.engine} {with_tls.release.version}")
            ca_path = root / "ca.pem"
            with urllib.request.urlopen(f"{running.url}/cachefleet/ca.pem", timeout=10) as response:
                ca_path.write_bytes(response.read())
            ca = tls.CertificateAuthority.load_or_create(running.root / "data" / "tls")  # the server's CA, for the bare engine
            if args.aa:
                ours = "127.92.3.3"
                processes.append(tls_by_hand(with_tls, ca, ours, root / "tls-second"))
            else:
                ours = locked_group(ec, "tls-redis", engine="redis", version=with_tls.release.version, tls_enabled=True)
            processes.append(tls_by_hand(with_tls, ca, "127.92.3.2", root / "tls-hand"))
            run_pair("tls", ours, "127.92.3.2", args, ca_path, ["--tls", "--cacert", str(ca_path)])
    finally:
        for process in processes:
            process.terminate()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
