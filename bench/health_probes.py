"""What watching N nodes for hangs costs the control plane: the health monitor alone, two builds side by side.

N bare Valkey processes (no persistence, hz 1) on addresses of 127.78.0.0/16. The health monitor
(control/health.py: a PING every 200 ms per node, one of five an INFO replication) of the working
tree and of a baseline revision (``git show REV:src/cachefleet/control/health.py``, loaded as a
module) watch all of them in turn, --rounds times each, alternately (base, new, base, new ...), in
this one process; each phase's process CPU time (time.process_time: every thread of the process)
over --seconds is divided by the probes the monitor sent, and healthy nodes it called
unhealthy (false hangs) are counted. Also measured: the time from SIGSTOP of
one node to the monitor calling it unhealthy (detection must stay ~0.45 s), per build.
Usage: python bench/health_probes.py [--nodes 300] [--seconds 10] [--rounds 3] [--baseline REV]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cachefleet.control import health as new_health  # noqa: E402
from cachefleet.engine.access import NodeAccess  # noqa: E402
from cachefleet.engine.catalog import Catalog  # noqa: E402


def baseline(rev: str, directory: Path) -> ModuleType:
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:src/cachefleet/control/health.py"],
                            check=True, capture_output=True, text=True).stdout
    path = directory / "health_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("health_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["health_baseline"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def start_engines(count: int, directory: Path) -> list[tuple[str, subprocess.Popen[bytes]]]:
    binary = next(b for b in Catalog.discover().binaries() if b.release.engine == "valkey").server
    engines = []
    for index in range(count):
        address = f"127.78.{index // 250}.{index % 250 + 1}"
        process = subprocess.Popen(
            [str(binary), "--bind", address, "--port", "6379", "--save", "", "--appendonly", "no", "--hz", "1",
             "--dir", str(directory), "--dbfilename", f"{index}.rdb", "--logfile", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        engines.append((address, process))
    return engines


async def ready(address: str) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection(address, 6379)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{address} did not start")


async def phase(module: ModuleType, addresses: list[str], seconds: float) -> tuple[float, float, int]:
    """(µs of CPU per probe, % of one core, nodes wrongly called unhealthy) while watching every address."""
    monitor = module.HealthMonitor(on_change=lambda key: None)
    for address in addresses:
        monitor.watch(address, NodeAccess(address, 6379))
    monitor.start()
    await asyncio.sleep(1.5)  # connections made
    probes_before = sum(w.probes for w in monitor._watched.values())
    wrong: set[str] = set()
    cpu, wall = time.process_time(), time.monotonic()
    for _ in range(int(seconds * 10)):
        await asyncio.sleep(0.1)
        wrong.update(a for a in addresses if not monitor.healthy(a))
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    probes = sum(w.probes for w in monitor._watched.values()) - probes_before
    await monitor.stop()
    return 1e6 * cpu / max(probes, 1), 100.0 * cpu / wall, len(wrong)


async def detection(module: ModuleType, address: str, process: subprocess.Popen[bytes]) -> float:
    """Seconds from SIGSTOP of the node to the monitor saying it is unhealthy."""
    found = asyncio.Event()
    monitor = module.HealthMonitor(on_change=lambda key: found.set())
    monitor.watch(address, NodeAccess(address, 6379))
    monitor.start()
    await asyncio.sleep(1.0)
    os.kill(process.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        await asyncio.wait_for(found.wait(), 5)
        return time.monotonic() - stopped
    finally:
        os.kill(process.pid, signal.SIGCONT)
        await monitor.stop()


async def run(args: argparse.Namespace, directory: Path) -> None:
    base = baseline(args.baseline, directory)
    engines = start_engines(args.nodes, directory)
    try:
        await asyncio.gather(*(ready(a) for a, _ in engines))
        addresses = [a for a, _ in engines]
        per_probe: dict[str, list[float]] = {"baseline": [], "new": []}
        share: dict[str, list[float]] = {"baseline": [], "new": []}
        detect: dict[str, list[float]] = {"baseline": [], "new": []}
        wrongs: dict[str, list[int]] = {"baseline": [], "new": []}
        for round_ in range(args.rounds):
            for name, module in (("baseline", base), ("new", new_health)):
                micro, percent, wrong = await phase(module, addresses, args.seconds)
                wrongs[name].append(wrong)
                per_probe[name].append(micro)
                share[name].append(percent)
                detect[name].append(await detection(module, *engines[round_ % len(engines)]))
                print(f"round {round_ + 1} {name:8s}: {micro:6.1f} µs/probe, {percent:5.1f} % of a core, "
                      f"hang seen in {detect[name][-1]:.3f} s, {wrong} healthy nodes called unhealthy", flush=True)
        b, n = statistics.median(per_probe["baseline"]), statistics.median(per_probe["new"])
        print(f"\n{args.nodes} nodes, medians of {args.rounds} rounds of {args.seconds:.0f} s:")
        print(f"  baseline {args.baseline}: {b:.1f} µs/probe, {statistics.median(share['baseline']):.1f} % of a core, "
              f"hang seen in {statistics.median(detect['baseline']):.3f} s, healthy nodes called unhealthy {wrongs['baseline']}")
        print(f"  new:              {n:.1f} µs/probe, {statistics.median(share['new']):.1f} % of a core, "
              f"hang seen in {statistics.median(detect['new']):.3f} s, healthy nodes called unhealthy {wrongs['new']}")
        print(f"  new/baseline CPU per probe: {n / b:.2f}")
    finally:
        for _, process in engines:
            process.kill()
        for _, process in engines:
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default="HEAD")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cachefleet-bench-health-") as directory:
        asyncio.run(run(args, Path(directory)))


if __name__ == "__main__":
    main()
