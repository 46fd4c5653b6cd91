"""Availability zones as network namespaces, for the partition tests (set up and torn down here).

Each zone is a namespace with a /24 of its own (``ip route add local SUBNET dev lo``: its nodes
bind any address of it). The root namespace (the control plane and the tests' clients) reaches a
zone through a veth pair of its own; zones reach each other through direct veth pairs, not
through the root namespace. So a zone can be cut off from everything (all its links down), or
from the control plane only (its root link down) while it still reaches the other zones.

Links that go down lose their routes; ``heal`` brings them up and routes everything again.
Namespaces, veths and routes are removed by ``close`` (the fixture calls it whatever happens).
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

IP = shutil.which("ip") or "/usr/sbin/ip"
LOCK = Path("/tmp/cachefleet-test-zones.lock")  # one set of zones at a time on this machine (same block)
BLOCK = "10.251"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([IP, *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


@dataclass(frozen=True)
class TestZone:
    letter: str  # a, b, c
    index: int  # 1, 2, 3
    namespace: str
    root_link: str  # the root namespace's end of its veth to this zone

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{BLOCK}.{self.index}.0/24")

    @property
    def root_side(self) -> str:
        return f"{BLOCK}.{100 + self.index}.1"

    @property
    def zone_side(self) -> str:
        return f"{BLOCK}.{100 + self.index}.2"

    @property
    def source(self) -> str:
        """The address the zone's own connections to other zones leave from (on its lo)."""
        return f"{BLOCK}.{self.index}.254"


class Zones:
    """Namespaces for availability zones ``{region}a``, ``b``, ``c``...; see the module docstring."""

    def __init__(self, region: str = "us-east-1", letters: Sequence[str] = ("a", "b", "c")) -> None:
        self.region = region
        self._lock = open(LOCK, "w")  # noqa: SIM115 - held until close
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        tag = f"{os.getpid() % 100000}"
        self.zones = {
            f"{region}{letter}": TestZone(letter, index, f"cfz{tag}{letter}", f"cfz{tag}{letter}")
            for index, letter in enumerate(letters, start=1)
        }
        try:
            self._create()
        except BaseException:
            self.close()
            raise

    def __getitem__(self, availability_zone: str) -> TestZone:
        return self.zones[availability_zone]

    def options(self) -> list[str]:
        """`cachefleet up` options placing each zone in its namespace."""
        found: list[str] = []
        for name, zone in self.zones.items():
            found += ["--zone", f"{name}={zone.namespace}:{zone.subnet}"]
        return found

    def _create(self) -> None:
        for zone in self.zones.values():
            ip("netns", "add", zone.namespace)
            ip("-n", zone.namespace, "link", "set", "lo", "up")
            ip("-n", zone.namespace, "addr", "add", f"{zone.source}/32", "dev", "lo")
            ip("link", "add", zone.root_link, "type", "veth", "peer", "name", "ctl", "netns", zone.namespace)
            ip("addr", "add", f"{zone.root_side}/30", "dev", zone.root_link)
            ip("-n", zone.namespace, "addr", "add", f"{zone.zone_side}/30", "dev", "ctl")
        for one in self.zones.values():
            for other in self.zones.values():
                if one.index < other.index:
                    ip("-n", one.namespace, "link", "add", f"to-{other.letter}", "type", "veth",
                       "peer", "name", f"to-{one.letter}", "netns", other.namespace)
        self.heal()

    def heal(self) -> None:
        """Every link up, every route in place (idempotent)."""
        for zone in self.zones.values():
            ip("link", "set", zone.root_link, "up")
            ip("-n", zone.namespace, "link", "set", "ctl", "up")
            for other in self.zones.values():
                if other is not zone:
                    ip("-n", zone.namespace, "link", "set", f"to-{other.letter}", "up")
        for zone in self.zones.values():
            ip("-n", zone.namespace, "route", "replace", "local", str(zone.subnet), "dev", "lo")
            ip("route", "replace", str(zone.subnet), "via", zone.zone_side, "dev", zone.root_link)
            for other in self.zones.values():
                if other is not zone:
                    ip("-n", zone.namespace, "route", "replace", str(other.subnet), "dev", f"to-{other.letter}",
                       "src", zone.source)

    def isolate(self, availability_zone: str) -> None:
        """Cuts the zone off from the other zones and from the root namespace (the control plane)."""
        zone = self.zones[availability_zone]
        self.cut_from_control_plane(availability_zone)
        for other in self.zones.values():
            if other is not zone:
                ip("-n", zone.namespace, "link", "set", f"to-{other.letter}", "down")

    def cut_from_control_plane(self, availability_zone: str) -> None:
        """Cuts the zone off from the root namespace only; it still reaches the other zones."""
        ip("link", "set", self.zones[availability_zone].root_link, "down")

    def run_in(self, availability_zone: str, *argv: str, **kwargs: object) -> subprocess.Popen[str]:
        """A process in the zone's namespace (a client next to its nodes)."""
        return subprocess.Popen(
            [IP, "netns", "exec", self.zones[availability_zone].namespace, *argv], text=True, **kwargs,  # type: ignore[call-overload]
        )

    def python_in(self, availability_zone: str, code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
        """Python code run in the zone's namespace (this interpreter: redis-py is there)."""
        return self.run_in(availability_zone, sys.executable, "-u", "-c", code, *args, **kwargs)

    def close(self) -> None:
        for zone in self.zones.values():
            ip("link", "del", zone.root_link, check=False)  # its peer in the namespace goes with it
            ip("route", "del", str(zone.subnet), check=False)
            ip("netns", "del", zone.namespace, check=False)  # its veths to other zones go with it
        self._lock.close()
