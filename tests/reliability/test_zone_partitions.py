"""Zone partitions: availability zones as network namespaces (tests/zones.py), a zone cut off.

A cluster-mode-disabled group has its primary in zone a and a replica in each of b and c. A
writer in the root namespace confirms its writes with WAIT 1; a writer inside zone a's namespace
(a client next to the primary) records every write the primary acknowledges. Zone a is cut off
from the other zones and from the control plane. On one machine the control plane's fence is
SIGKILL, which no network cut stops, so the control plane is paused for the cut's first seconds:
what stops the isolated primary then is min-replicas-to-write / min-replicas-max-lag alone, as it
would be for a primary on a host of its own. Then the control plane resumes, fails over to a
reachable zone, and the partition heals: the old primary's node is back as a replica of the new
one, and no WAIT-confirmed write is lost. RELIABILITY.md (Zone partitions) has the figures.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from helpers import engine, wait_for, wait_group, wait_group_gone
from zones import IP, Zones

REGION = "us-east-1"
A, B, C = f"{REGION}a", f"{REGION}b", f"{REGION}c"
MAX_LAG = 5  # Cachefleet's min-replicas-max-lag on groups with replicas (domain/parameter_groups.py)
# Replicas acknowledge once a second and the engine recounts its good replicas once a second: a
# primary cut off from them refuses writes at most about MAX_LAG + 2 s after the cut (measured: 5.9
# to 7.0 s), one more second of slack for a busy machine.
BOUND = MAX_LAG + 3

ZONE_WRITER = """
import json, sys, time, redis
address, out = sys.argv[1], sys.argv[2]
client = redis.Redis(host=address, socket_timeout=0.5, socket_connect_timeout=0.5)
n = 0
with open(out, "a", buffering=1) as log:
    while True:
        try:
            client.set(f"zone:{n}", n)
            log.write(json.dumps(["ok", n, time.time()]) + "\\n")
            n += 1
        except redis.RedisError as error:
            log.write(json.dumps(["error", n, time.time(), str(error)[:80]]) + "\\n")
            client = redis.Redis(host=address, socket_timeout=0.5, socket_connect_timeout=0.5)
            time.sleep(0.02)
        time.sleep(0.002)
"""


@pytest.fixture
def zones() -> Iterator[Zones]:
    if os.geteuid() != 0 or not Path(IP).exists():
        pytest.skip("network namespaces need root and iproute2 (ip)")
    made = Zones(REGION)
    try:
        yield made
    finally:
        made.close()


def primary_of(group: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in group["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "primary")


def address_of(member: dict[str, Any]) -> str:
    return str(member["ReadEndpoint"]["Address"])


class PrimaryWriter:
    """Writes k:N to whichever node the API names primary, confirming each with WAIT 1 (root namespace)."""

    def __init__(self, ec: Any, group_id: str) -> None:
        self.ec, self.group_id = ec, group_id
        self.confirmed: list[tuple[int, str]] = []  # (n, the primary's address that confirmed it)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> PrimaryWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _primary(self) -> str:
        group = self.ec.describe_replication_groups(ReplicationGroupId=self.group_id)["ReplicationGroups"][0]
        return address_of(primary_of(group))

    def _run(self) -> None:
        address = self._primary()
        client = redis.Redis(host=address, socket_timeout=0.5, socket_connect_timeout=0.5)
        n = 0
        while not self._stop.is_set():
            try:
                client.set(f"k:{n}", n)
                if client.wait(1, 200) >= 1:
                    self.confirmed.append((n, address))
                n += 1
            except redis.RedisError:
                time.sleep(0.05)
                try:
                    address = self._primary()
                except Exception:  # noqa: BLE001 - the API paused with the control plane: ask again
                    continue
                client = redis.Redis(host=address, socket_timeout=0.5, socket_connect_timeout=0.5)


def zone_log(path: Path) -> list[list[Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("]")]


ROLE_POLLER = """
import json, sys, time, redis
out, addresses = sys.argv[1], sys.argv[2:]
clients = {a: redis.Redis(host=a, socket_timeout=0.3, socket_connect_timeout=0.3) for a in addresses}
with open(out, "a", buffering=1) as log:
    while True:
        roles = {}
        for address, client in clients.items():
            try:
                roles[address] = client.info("replication")["role"]
            except redis.RedisError:
                roles[address] = None
        log.write(json.dumps([time.time(), roles]) + "\\n")
        time.sleep(0.05)
"""


def three_zone_group(ec: Any, group_id: str) -> dict[str, Any]:
    """A cluster-mode-disabled group: its primary in zone a, a replica in each of b and c."""
    ec.create_replication_group(
        ReplicationGroupId=group_id, ReplicationGroupDescription="zone partition", Engine="valkey",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=3, PreferredCacheClusterAZs=[A, B, C],
        AutomaticFailoverEnabled=True, MultiAZEnabled=True,
    )
    return wait_group(ec, group_id, timeout=60)


def test_a_zone_cut_off_fails_over_and_its_old_primary_stops_writes_then_rejoins(zones, make_server, tmp_path):
    server = make_server(*zones.options())
    ec = server.client()
    group = three_zone_group(ec, "zp")
    old = primary_of(group)
    old_address = address_of(old)
    by_zone = {m["PreferredAvailabilityZone"]: address_of(m) for m in group["NodeGroups"][0]["NodeGroupMembers"]}
    for zone, address in by_zone.items():  # each node on its zone's subnet, in its namespace
        assert ipaddress.IPv4Address(address) in zones[zone].subnet, (zone, address)
    assert old["PreferredAvailabilityZone"] == A
    # Cachefleet's write fencing on a group with replicas (README, High availability: Write fencing).
    wait_for(lambda: engine(old_address).config_get("min-replicas-*") == {
        "min-replicas-to-write": "1", "min-replicas-max-lag": str(MAX_LAG),
    }, timeout=10, what="min-replicas 1 / 5 on the primary, its replicas online")

    log_path = tmp_path / "zone-a-writes.jsonl"
    with open(tmp_path / "zone-a.err", "w") as errors:
        inside = zones.python_in(A, ZONE_WRITER, old_address, str(log_path), stdout=subprocess.DEVNULL, stderr=errors)
    try:
        with PrimaryWriter(ec, "zp") as writer:
            wait_for(lambda: len(writer.confirmed) > 100 and sum(e[0] == "ok" for e in zone_log(log_path)) > 100,
                     timeout=30, what="writes confirmed in the root namespace and acknowledged in zone a")
            assert server.process is not None
            os.kill(server.process.pid, signal.SIGSTOP)  # its SIGKILL fence must not act first (docstring)
            try:
                cut = time.time()
                zones.isolate(A)
                # From inside zone a: the isolated primary refuses writes (NOREPLICAS) within the bound.
                refused = wait_for(
                    lambda: next((e for e in zone_log(log_path) if e[0] == "error" and e[2] > cut
                                  and "NOREPLICAS" in e[3]), None),
                    timeout=BOUND + 5, interval=0.05, what="NOREPLICAS from the isolated primary",
                )
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            resumed = time.time()
            entries = zone_log(log_path)
            acknowledged = [e for e in entries if e[0] == "ok" and e[2] > cut]
            refused_after = refused[2] - cut
            assert refused_after <= BOUND, f"the isolated primary took writes for {refused_after:.1f} s"
            assert all(e[2] <= refused[2] for e in acknowledged), "a write acknowledged after NOREPLICAS"

            # The control plane fails over to a reachable zone.
            def failed_over() -> dict[str, Any] | None:
                described = ec.describe_replication_groups(ReplicationGroupId="zp")["ReplicationGroups"][0]
                primary = primary_of(described)
                return primary if primary["CacheClusterId"] != old["CacheClusterId"] else None

            new = wait_for(failed_over, timeout=30, interval=0.05, what="a failover to a reachable zone")
            failover_seconds = time.time() - resumed
            assert new["PreferredAvailabilityZone"] in (B, C)
            new_address = address_of(new)
            before = sum(1 for _, address in writer.confirmed if address == new_address)
            wait_for(lambda: sum(1 for _, address in writer.confirmed if address == new_address) > before + 100,
                     timeout=30, what="writes confirmed by the new primary")
            # Still inside zone a: nothing there takes a write any more (the old primary is fenced).
            time.sleep(0.5)
            assert not [e for e in zone_log(log_path) if e[0] == "ok" and e[2] > refused[2]]

            healed = time.time()
            zones.heal()

            def rejoined() -> bool:
                described = ec.describe_replication_groups(ReplicationGroupId="zp")["ReplicationGroups"][0]
                roles = {m["CacheClusterId"]: m["CurrentRole"] for m in described["NodeGroups"][0]["NodeGroupMembers"]}
                if described["Status"] != "available" or roles.get(old["CacheClusterId"]) != "replica":
                    return False
                try:
                    info = engine(old_address).info("replication")
                except redis.RedisError:
                    return False
                return info.get("role") == "slave" and info.get("master_host") == new_address and (
                    info.get("master_link_status") == "up"
                )

            wait_for(rejoined, timeout=60, interval=0.1, what="the old primary back as a replica of the new one")
            rejoin_seconds = time.time() - healed
            after = len(writer.confirmed)
            wait_for(lambda: len(writer.confirmed) > after + 50, timeout=30, what="writes confirmed after the heal")
        inside.kill()
        inside.wait()

        primary = engine(new_address)
        assert primary.info("replication")["role"] == "master"
        missing = [n for n, _ in writer.confirmed if primary.get(f"k:{n}") is None]
        assert missing == [], f"{len(missing)} WAIT-confirmed writes lost, e.g. {missing[:5]}"
        lost_isolated = [e[1] for e in acknowledged if primary.get(f"zone:{e[1]}") is None]
        # One primary: the old node follows the new one.
        assert engine(old_address).info("replication")["role"] == "slave"
        report = {
            "refused_writes_after_s": round(refused_after, 2), "acknowledged_by_isolated_side": len(acknowledged),
            "of_which_lost": len(lost_isolated), "failover_after_resume_s": round(failover_seconds, 2),
            "rejoined_after_heal_s": round(rejoin_seconds, 2), "confirmed_writes": len(writer.confirmed),
            "confirmed_lost": len(missing),
        }
        print("zone partition:", json.dumps(report))
    finally:
        if inside.poll() is None:
            inside.kill()
            inside.wait()
    ec.delete_replication_group(ReplicationGroupId="zp")
    wait_group_gone(ec, "zp", timeout=60)


def test_the_control_plane_cut_off_from_the_primarys_zone_never_makes_two_primaries(zones, make_server, tmp_path):
    """The control plane loses zone a, the zones still reach each other. The control plane cannot
    tell a cut from a hang: it fails over, fencing the old primary first (SIGKILL, which reaches a
    process in any namespace of this machine; on a host of its own, min-replicas-to-write would stop
    it once its replicas follow the new primary). At no sampled moment do two nodes say they are
    primary (roles polled from inside zone b, which reaches all three), no write is acknowledged by
    the old primary once the new one is primary, and after the heal the old node is a replica."""
    server = make_server(*zones.options())
    ec = server.client()
    group = three_zone_group(ec, "zc")
    old = primary_of(group)
    old_address = address_of(old)
    assert old["PreferredAvailabilityZone"] == A
    addresses = [address_of(m) for m in group["NodeGroups"][0]["NodeGroupMembers"]]
    roles_path, writes_path = tmp_path / "roles.jsonl", tmp_path / "zone-b-writes.jsonl"
    with open(tmp_path / "zone-b.err", "w") as errors:
        poller = zones.python_in(B, ROLE_POLLER, str(roles_path), *addresses, stdout=subprocess.DEVNULL, stderr=errors)
        writer = zones.python_in(B, ZONE_WRITER, old_address, str(writes_path), stdout=subprocess.DEVNULL,
                                 stderr=errors)
    try:
        wait_for(lambda: sum(e[0] == "ok" for e in zone_log(writes_path)) > 50 and len(zone_log_roles(roles_path)) > 20,
                 timeout=30, what="writes from zone b acknowledged by the primary in zone a, roles sampled")
        cut = time.time()
        zones.cut_from_control_plane(A)

        def failed_over() -> dict[str, Any] | None:
            described = ec.describe_replication_groups(ReplicationGroupId="zc")["ReplicationGroups"][0]
            primary = primary_of(described)
            return primary if primary["CacheClusterId"] != old["CacheClusterId"] else None

        new = wait_for(failed_over, timeout=30, interval=0.05, what="a failover")
        failover_seconds = time.time() - cut
        new_address = address_of(new)
        wait_for(lambda: any(roles.get(new_address) == "master" for _, roles in zone_log_roles(roles_path)),
                 timeout=10, what="the new primary seen as primary from zone b")
        time.sleep(1)
        healed = time.time()
        zones.heal()

        def rejoined() -> bool:
            described = ec.describe_replication_groups(ReplicationGroupId="zc")["ReplicationGroups"][0]
            roles = {m["CacheClusterId"]: m["CurrentRole"] for m in described["NodeGroups"][0]["NodeGroupMembers"]}
            return described["Status"] == "available" and roles.get(old["CacheClusterId"]) == "replica" and (
                _role(old_address) == "slave")

        wait_for(rejoined, timeout=90, interval=0.1, what="the old primary's node back as a replica")
        rejoin_seconds = time.time() - healed
    finally:
        for process in (poller, writer):
            process.kill()
            process.wait()
    samples = zone_log_roles(roles_path)
    two = [roles for _, roles in samples if list(roles.values()).count("master") > 1]
    assert len(samples) > 20 and not two, two[:3]
    promoted_at = min(t for t, roles in samples if roles.get(new_address) == "master")
    late = [e for e in zone_log(writes_path) if e[0] == "ok" and e[2] >= promoted_at]
    assert not late, late[:3]  # the old primary took no write once the new one was primary
    acknowledged = [e for e in zone_log(writes_path) if e[0] == "ok" and e[2] > cut]
    print("control plane cut:", json.dumps({
        "role_samples": len(samples), "two_primary_samples": len(two), "failover_s": round(failover_seconds, 2),
        "acknowledged_by_old_primary_after_cut": len(acknowledged), "rejoined_after_heal_s": round(rejoin_seconds, 2),
    }))
    ec.delete_replication_group(ReplicationGroupId="zc")
    wait_group_gone(ec, "zc", timeout=60)


def _role(address: str) -> str | None:
    try:
        return str(engine(address).info("replication")["role"])
    except redis.RedisError:
        return None


def zone_log_roles(path: Path) -> list[tuple[float, dict[str, str | None]]]:
    return [tuple(json.loads(line)) for line in path.read_text().splitlines() if line.endswith("}]")]  # type: ignore[misc]
