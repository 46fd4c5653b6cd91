"""What a Cachefleet node's settings cost per request, counted in instructions (deterministic).

Wall-clock ratios on this shared 2-core machine scatter by +-5-10 % even between two identical
engines (``bench/auth_tls.py --aa``), more than issue 12's 2 % budget. Instructions executed do
not depend on the machine's load: this runs the engine under valgrind's callgrind and counts the
instructions of every thread per redis-benchmark request (``callgrind_control -z`` before a run,
``-d`` after it, the run's ``totals``).

1. A replication group is made through the API with the app's user group (``default`` off, the
   app user ``on ~* +@all``), as bench/auth_tls.py makes it; its primary's ``CONFIG GET *`` and
   ``ACL LIST`` are read as it runs.
2. The same engine binary is started by hand under callgrind with the app user on the command
   line (what auth_tls.py compares the node with), and measured.
3. Each parameter in which the node differs (paths and addresses aside) is then CONFIG SET on that
   engine, one at a time and cumulatively, then the node's ACL users (the control plane's user,
   ``default`` off with a hash, the app user as the API made it), each step measured again.

Per step: SET and GET (the key exists: a warm-up SET run comes first), ``--runs`` runs of ``--requests`` requests with 50 clients (each run's 50
connections and AUTHs included), the median instructions per request. The engine then runs with
the node's settings and users, but without the control plane's own traffic on it (a PING every
200 ms, INFO every second): that costs per second, not per request, and auth_tls.py measures it
(the main thread's CPU time while idle).
Needs valgrind (Debian: valgrind) and redis-benchmark (redis-tools).
TLS (``--tls``) works but counts mostly the 50 handshakes of each run at this size (~63k instructions
per request with -n 5000): use far more requests for a per-request figure.
Usage: python bench/auth_instructions.py [--engine valkey|redis] [--tls] [--runs 3] [--requests 5000] [--ends-only]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from auth_tls import APP_PASSWORD, APP_USER, IDENTITY, PORT, connect, locked_group, user_groups
from common import machine, server

from cachefleet.engine import acl, tls
from cachefleet.engine.catalog import Catalog, EngineBinary

ADDRESS = "127.92.5.2"


def node_state(binary: EngineBinary, tls_dir: Path | None) -> tuple[dict[str, str], list[str], tls.NodeFiles | None]:
    """The running node's parameters and ACL users, as Cachefleet configures them. With ``tls_dir``:
    a TLS (required) group, and a certificate of the same CA for the engine by hand, written there."""
    release = binary.release
    with server("127.92.4.0/24", extra=["--warm-nodes", "0"]) as running:
        ec = running.client()
        user_groups(ec)
        address = locked_group(ec, f"auth-{release.engine}", engine=release.engine, version=release.version,
                               tls_enabled=tls_dir is not None)
        files = None
        if tls_dir is not None:
            issued = tls.CertificateAuthority.load_or_create(running.root / "data" / "tls").issue_files(
                tls_dir, "hand", [ADDRESS])
            ca_copy = tls_dir / "ca.pem"  # the server's data dir goes with it
            shutil.copyfile(issued.ca, ca_copy)
            files = tls.NodeFiles(cert=issued.cert, key=issued.key, ca=ca_copy.resolve())
        with connect(address, files.ca if files else None) as node:
            return dict(node.config_get("*")), list(node.acl_list()), files


class Counted:
    """The engine started by hand under callgrind: instructions per request of a redis-benchmark run."""

    def __init__(self, binary: EngineBinary, directory: Path, files: tls.NodeFiles | None) -> None:
        self.directory = directory
        self.ca_file = files.ca if files is not None else None
        self.tls_args = ["--tls", "--cacert", str(files.ca)] if files is not None else []
        served = (["--port", "0", "--tls-port", str(PORT), "--tls-cert-file", str(files.cert), "--tls-key-file",
                   str(files.key), "--tls-ca-cert-file", str(files.ca), "--tls-auth-clients", "no"]
                  if files is not None else [])
        self.process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={directory}/callgrind.out.%p",
             str(binary.server), "--bind", ADDRESS, "--port", str(PORT), "--save", "", "--appendonly", "no",
             "--dir", str(directory), "--protected-mode", "no",
             "--user", "default", "off", "--user", APP_USER, "on", f"#{acl.password_hash(APP_PASSWORD)}", "~*",
             "+@all", *served],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with connect(ADDRESS, self.ca_file) as engine:
                    engine.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    sys.exit("the engine under valgrind does not answer")
                time.sleep(0.2)

    def control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(self.process.pid)], capture_output=True, check=True)

    def instructions(self, test: str, requests: int) -> float:
        for old in self.directory.glob("callgrind.out.*"):
            old.unlink()
        self.control("-z")
        subprocess.run(["redis-benchmark", "-h", ADDRESS, "-p", str(PORT), "-c", "50", "-n", str(requests), "-t", test,
                        "-q", "--user", APP_USER, "-a", APP_PASSWORD, *self.tls_args], capture_output=True, check=True)
        self.control("-d")
        total = 0
        for dump in self.directory.glob("callgrind.out.*"):  # one dump per thread with instructions
            for line in dump.read_text().splitlines():
                if line.startswith("totals:"):
                    total += int(line.split()[1])
        return total / requests

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", choices=["valkey", "redis"], default="valkey")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--tls", action="store_true", help="a TLS group, and TLS by hand (an engine build with TLS)")
    parser.add_argument("--ends-only", action="store_true",
                        help="two steps only: the engine as started by hand, then every setting and user of the node at "
                             "once (for --tls with many --requests, where each step takes minutes)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # the finally blocks stop the engines
    for tool in ("valgrind", "callgrind_control", "redis-benchmark"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install valgrind redis-tools")
    binaries = Catalog.discover().binaries()
    binary = next((b for b in binaries if b.release.engine == args.engine and (not args.tls or b.release.tls)
                   and (args.engine == "redis" or b.release.version.startswith("8."))), None)
    if binary is None:
        sys.exit(f"no {args.engine} build{' with TLS' if args.tls else ''} is installed")
    print(f"{binary.release.engine} {binary.release.version} under callgrind; redis-benchmark -c 50 -n {args.requests}"
          f" -t set / -t get --user {APP_USER}{' --tls' if args.tls else ''}, median of {args.runs} runs; {machine()}")
    directory = Path(tempfile.mkdtemp(prefix="bench-auth-instructions-"))
    try:
        node_config, node_users, files = node_state(binary, directory / "tls" if args.tls else None)
        engine = Counted(binary, directory, files)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    try:
        with connect(ADDRESS, engine.ca_file) as admin:
            bare = dict(admin.config_get("*"))
            steps: list[tuple[str, list[list[str]]]] = [("started by hand", [])]
            for name in sorted(set(node_config) | set(bare)):
                if name not in IDENTITY and node_config.get(name) != bare.get(name) and name in node_config:
                    steps.append((f"+ {name} {node_config[name]}", [["CONFIG", "SET", name, node_config[name]]]))
            steps.append(("+ the node's ACL users",
                          [["ACL", "SETUSER", *line.split()[1:2], "reset", *line.split()[2:]] for line in node_users]))
            if args.ends_only:
                steps = [steps[0], ("+ every setting and user of the node", [c for _, cs in steps[1:] for c in cs])]
            engine.instructions("set", args.requests)  # GET finds the key from here on (a miss costs less)
            first: dict[str, float] = {}
            previous: dict[str, float] = {}
            for label, commands in steps:
                try:
                    for command in commands:
                        try:
                            admin.execute_command(*command)
                        except redis.ResponseError as error:
                            if not args.ends_only:
                                raise
                            print(f"  (left out of the last step: {' '.join(command[:3])}: {error})")
                except redis.ResponseError as error:
                    print(f"  {label}: not settable at run time ({error})")
                    continue
                row = []
                for test in ("set", "get"):
                    count = statistics.median(engine.instructions(test, args.requests) for _ in range(args.runs))
                    first.setdefault(test, count)
                    row.append(f"{test.upper()} {count:,.0f} ({count / previous.get(test, count) - 1:+.2%} this step, "
                               f"{count / first[test] - 1:+.2%} in all)")
                    previous[test] = count
                print(f"  {label}: instructions per request {', '.join(row)}", flush=True)
    finally:
        engine.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
