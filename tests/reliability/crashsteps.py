"""Crash at every persisted step: the driver the reliability tests share.

A ``Workflow`` is a starting group (``setup``), the request or fault that starts the work
(``action``) and the shape the group must end in. ``enumerate_steps`` runs it once with
CACHEFLEET_STEP_LOG and returns the labels of the commits it made (store/crashpoints.py);
``crash_at`` runs it again with CACHEFLEET_CRASH_AFTER naming one of them, under a writer that
records every WAIT-confirmed key, waits for the control plane to SIGKILL itself, restarts it on
the same data dir and checks the promise: the operation converges, one engine process per node
record (no orphan, no duplicate), every node running at the crash adopted (same pid), and every
confirmed key present.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import redis
from redis.crc import key_slot

from cachefleet.domain import slots as slotmath
from helpers import Server, engine, engine_pids, engine_processes, free_port, fresh_network

CONVERGE_TIMEOUT = 90.0


@dataclass(frozen=True)
class Shape:
    """What the group must look like once the workflow is done."""

    node_groups: int
    replicas: int
    node_type: str = "cache.t4g.micro"


@dataclass(frozen=True)
class Workflow:
    """One workflow to crash in: how to get to its start, how to start it, where it must end."""

    name: str
    group_id: str
    cluster_mode: bool
    setup: Callable[[Any], None]  # ec -> the starting group exists and is available (or nothing, for create)
    # (ec, server) -> the work is asked for (a request, a kill); it may return one more condition of
    # convergence, ec -> bool (a failover: the killed primary is no longer the primary).
    action: Callable[[Any, Server], Callable[[Any], bool] | None]
    shape: Shape
    writer: bool = True  # create has no group to write to before it starts
    # An engine upgrade starts nodes anew by design: given, it tells (by pid) whether a process runs
    # the new build. A node already on it at the crash must be adopted; the others may be new.
    upgraded: Callable[[int], bool] | None = None
    # The regions whose groups' nodes the process checks count (a global datastore spans two).
    regions: tuple[str, ...] = ("us-east-1",)
    # ec -> problems a user would see once the workflow converged (a migration: the source's keys on the group).
    check: Callable[[Any], list[str]] | None = None
    # ec -> the writer, when it is not ConfirmedWriter(the group) (a global datastore's moves region).
    make_writer: Callable[[Any], ConfirmedWriter] | None = None
    # What a run needs of its own outside the control plane (a migration's source engine): given the
    # run's ExitStack, closed once the run is over, the workflow as this run runs it.
    bind: Callable[[contextlib.ExitStack[Any]], Workflow] | None = None


@dataclass(frozen=True)
class Step:
    """A crash point: the n-th commit with this label since the control plane started."""

    label: str
    n: int

    @property
    def crash_after(self) -> str:
        return f"{self.label}#{self.n}"

    @classmethod
    def parse(cls, text: str) -> Step:
        label, _, n = text.rpartition("#")
        return cls(label, int(n))


@dataclass
class Outcome:
    """What one crash did and what the restart made of it."""

    workflow: str
    step: Step
    crashed: bool = False
    converged: bool = False
    seconds_to_converge: float | None = None
    confirmed: int = 0
    lost_count: int = 0
    lost: list[str] = field(default_factory=list)  # the first few lost keys
    orphans: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)  # running at the crash, a new process afterwards
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (self.crashed and self.converged and not (self.lost_count or self.orphans or self.duplicates or self.missing
                or self.restarted or self.problems))

    def summary(self) -> str:
        state = "ok" if self.ok else "FAILED"
        found = {
            "lost": self.lost_count, "orphans": self.orphans, "duplicates": self.duplicates, "missing": self.missing,
            "restarted": self.restarted, "problems": self.problems,
        }
        details = {name: value for name, value in found.items() if value}
        return (f"{self.workflow} @ {self.step.crash_after!r}: {state} in {self.seconds:.1f} s"
                f" (crashed {self.crashed}, converged {self.converged}, {self.confirmed} confirmed) {details or ''}")


# ---------------------------------------------------------------------------------- the group

def describe(ec: Any, group_id: str) -> dict[str, Any] | None:
    try:
        return dict(ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0])
    except ec.exceptions.ReplicationGroupNotFoundFault:
        return None


_REGION_CLIENTS: dict[tuple[str, str], Any] = {}
_REGION_LOCK = threading.Lock()


def in_region(ec: Any, region: str) -> Any:
    """A client of the same control plane as ``ec`` in another region (a global datastore's second)."""
    if ec.meta.region_name == region:
        return ec
    key = (ec.meta.endpoint_url, region)
    with _REGION_LOCK:
        if key not in _REGION_CLIENTS:
            # Server.client's credentials and settings, at the same endpoint.
            _REGION_CLIENTS[key] = boto3.client(
                "elasticache", endpoint_url=ec.meta.endpoint_url, region_name=region,
                aws_access_key_id="AKIDTEST", aws_secret_access_key="secret", config=ec.meta.config,
            )
        return _REGION_CLIENTS[key]


def member_addresses(ec: Any, group_id: str | None) -> dict[str, str]:
    """Cache cluster id -> node address of every member of the group (of every group and cluster: None)."""
    clusters = ec.describe_cache_clusters(ShowCacheNodeInfo=True)["CacheClusters"]
    return {
        c["CacheClusterId"]: c["CacheNodes"][0]["Endpoint"]["Address"]
        for c in clusters if group_id in (None, c.get("ReplicationGroupId")) and c.get("CacheNodes")
    }


def shape_reached(ec: Any, workflow: Workflow, done: Callable[[Any], bool] | None = None) -> bool:
    if done is not None and not done(ec):
        return False
    group = describe(ec, workflow.group_id)
    if group is None or group["Status"] != "available" or group.get("PendingModifiedValues"):
        return False
    shape = workflow.shape
    if group["CacheNodeType"] != shape.node_type or len(group["NodeGroups"]) != shape.node_groups:
        return False
    for node_group in group["NodeGroups"]:
        roles = [m.get("CurrentRole") for m in node_group["NodeGroupMembers"]]
        if len(roles) != 1 + shape.replicas or roles.count("primary") != 1:
            return False
    if workflow.cluster_mode and sum(len(slotmath.parse(ng["Slots"])) for ng in group["NodeGroups"]) != slotmath.SLOTS:
        return False
    clusters = ec.describe_cache_clusters()["CacheClusters"]
    members = [c for c in clusters if c.get("ReplicationGroupId") == workflow.group_id]
    return len(members) == shape.node_groups * (1 + shape.replicas) and all(
        c["CacheClusterStatus"] == "available" for c in members
    )


def engines_agree(group: dict[str, Any]) -> list[str]:
    """Problems with what the engines say of their roles: one master per shard, replicas linked to it.
    A global datastore's secondary has no master: its primary is a replica of the primary region's."""
    problems = []
    secondary = group.get("GlobalReplicationGroupInfo", {}).get("GlobalReplicationGroupMemberRole") == "SECONDARY"
    for node_group in group["NodeGroups"]:
        masters = []
        for member in node_group["NodeGroupMembers"]:
            info = engine(member["ReadEndpoint"]["Address"]).info("replication")
            if info["role"] == "master":
                masters.append(member["CacheClusterId"])
            elif info.get("master_link_status") != "up":
                problems.append(f"{member['CacheClusterId']} replica link {info.get('master_link_status')}")
        described = [m["CacheClusterId"] for m in node_group["NodeGroupMembers"]
                     if m["CurrentRole"] == "primary" and not secondary]
        if masters != described:
            problems.append(f"shard {node_group['NodeGroupId']}: engines' masters {masters}, described {described}")
    return problems


# ---------------------------------------------------------------------------------- the writer

class ShardWriter:
    """Writes keys of one hash slot to whichever node serves it, confirming each with WAIT 1.

    It follows MOVED and ASK (cluster mode) and reconnects to its address on errors (the primary
    endpoint moves on failover), so it keeps writing through reshards, failovers and while the
    control plane is down. ``confirmed`` holds every key a replica acknowledged.
    """

    def __init__(self, address: str, tag: str, *, standby: tuple[str, ...] = (),
                 counting: threading.Event | None = None) -> None:
        self.address = address
        self.tag = tag
        # Where to go on READONLY, in turn (an application's endpoints of each region of a global datastore).
        self.addresses = (address, *standby) if standby else ()
        # Keys count as confirmed only if written once this is set (a migration's full sync replaces the data).
        self.counting = counting
        self.confirmed: list[str] = []
        self.errors = 0

    def _connect(self, address: str) -> redis.Redis:
        # single_connection_client connects at once: a node that is down raises here.
        return redis.Redis(host=address, socket_timeout=1, socket_connect_timeout=0.5, single_connection_client=True)

    def run(self, stop: threading.Event) -> None:
        client: redis.Redis | None = None
        n = 0
        while not stop.is_set():
            key = f"{{{self.tag}}}:{n}"
            counts = self.counting is None or self.counting.is_set()
            try:
                if client is None:
                    client = self._connect(self.address)
                try:
                    client.set(key, n)
                    target = client
                except redis.exceptions.MovedError as moved:
                    client.close()
                    self.address = moved.host
                    client = self._connect(moved.host)
                    continue
                except redis.exceptions.AskError as ask:
                    target = self._connect(ask.host)
                    target.execute_command("ASKING")
                    target.set(key, n)
                if target.wait(1, 200) >= 1 and counts:
                    self.confirmed.append(key)
                if target is not client:
                    target.close()
                n += 1
            except redis.exceptions.ReadOnlyError:
                self.errors += 1
                if client is not None:
                    client.close()
                client = None
                if self.addresses:
                    self.address = self.addresses[(self.addresses.index(self.address) + 1) % len(self.addresses)]
                stop.wait(0.01)
            except (redis.RedisError, OSError):
                self.errors += 1
                if client is not None:
                    client.close()
                client = None  # connected again on the next round (the node may be down a while)
                stop.wait(0.01)
        if client is not None:
            client.close()


class ConfirmedWriter:
    """One ShardWriter per shard of the group (one for cluster mode disabled), in threads."""

    def __init__(self, group: dict[str, Any], *, standby: tuple[str, ...] = (),
                 counting: threading.Event | None = None) -> None:
        self.writers: list[ShardWriter] = []
        self.standby = standby
        self.counting = counting
        if group["ClusterEnabled"]:
            for node_group in group["NodeGroups"]:
                primary = next(m for m in node_group["NodeGroupMembers"] if m["CurrentRole"] == "primary")
                slot = min(slotmath.parse(node_group["Slots"]))
                self.writers.append(ShardWriter(primary["ReadEndpoint"]["Address"], tag_for_slot(slot)))
        else:
            self.writers.append(ShardWriter(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"], "w",
                                            standby=standby, counting=counting))
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=w.run, args=(self._stop,), daemon=True) for w in self.writers]

    def __enter__(self) -> ConfirmedWriter:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    @property
    def confirmed(self) -> list[str]:
        return [key for w in self.writers for key in w.confirmed]

    def lost(self, group: dict[str, Any]) -> list[str]:
        """The confirmed keys the group no longer holds; a writer that moves region reads from where it writes."""
        address = self.writers[0].address if self.standby else None
        return lost_keys(group, self.confirmed, address=address)

    def wait_confirmed(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while min(len(w.confirmed) for w in self.writers) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"writers confirmed only {[len(w.confirmed) for w in self.writers]}")
            time.sleep(0.01)


def tag_for_slot(slot: int) -> str:
    candidate = 0
    while key_slot(str(candidate).encode()) != slot:
        candidate += 1
    return str(candidate)


def lost_keys(group: dict[str, Any], keys: list[str], *, address: str | None = None) -> list[str]:
    """The confirmed keys that no longer hold their value, read from the node serving each (or ``address``)."""
    if not keys:
        return []
    if address is not None:
        client: Any = engine(address)
    elif group["ClusterEnabled"]:
        endpoint = group["ConfigurationEndpoint"]
        client = redis.RedisCluster(host=endpoint["Address"], port=endpoint["Port"], socket_timeout=5)
    else:
        client = engine(group["NodeGroups"][0]["PrimaryEndpoint"]["Address"])
    try:
        lost = []
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            pipe = client.pipeline(transaction=False)
            for key in chunk:
                pipe.get(key)
            for key, value in zip(chunk, pipe.execute(), strict=True):
                if value is None or str(value if isinstance(value, str) else value.decode()) != key.rsplit(":", 1)[1]:
                    lost.append(key)
        return lost
    finally:
        client.close()


# ---------------------------------------------------------------------------------- running

_NO_ANSWER = (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError,
              botocore.exceptions.ReadTimeoutError)


class _Unanswered:
    """The client an action calls through. The crash point may be a request's own commit: its answer
    never comes, and the call returns None once the control plane is seen dead of its SIGKILL, so
    that the action still returns its condition of convergence (without it a restore, a snapshot or
    a global failover crashed at its request would be checked for the group's shape only)."""

    def __init__(self, ec: Any, server: Server) -> None:
        self._ec = ec
        self._server = server

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._ec, name)
        if name.startswith("_") or name in ("meta", "exceptions") or not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except _NO_ANSWER:
                process = self._server.process
                assert process is not None and process.wait(timeout=10) == -signal.SIGKILL
                return None

        return call


def _start_work(workflow: Workflow, ec: Any, server: Server) -> Callable[[Any], bool] | None:
    return workflow.action(_Unanswered(ec, server), server)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def start_server(root: Path, env: dict[str, str]) -> Server:
    """A control plane on a fresh data dir under ``root``, with ``env`` added to its environment."""
    data_dir = Path(tempfile.mkdtemp(prefix="data-", dir=root))
    return Server(data_dir=data_dir, network=fresh_network(), port=free_port(), env=env).start()


def teardown(server: Server) -> None:
    """Kills the control plane and the engines it started (by pid), faster than `cachefleet down`."""
    server.stop(signal.SIGKILL)
    for _, pid in engine_processes(server.data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not engine_processes(server.data_dir), 10, "the engines to exit")
    shutil.rmtree(server.data_dir, ignore_errors=True)


def enumerate_steps(root: Path, workflow: Workflow) -> list[Step]:
    """Every commit the workflow made after its setup, in order, each as the n-th of its label
    since the control plane started (the setup runs under the same counts in ``crash_at``)."""
    with contextlib.ExitStack() as stack:
        return _enumerate_steps(root, workflow.bind(stack) if workflow.bind else workflow)


def _enumerate_steps(root: Path, workflow: Workflow) -> list[Step]:
    log = root / f"{workflow.name}-steps.log"
    log.unlink(missing_ok=True)
    server = start_server(root, {"CACHEFLEET_STEP_LOG": str(log)})
    try:
        ec = server.client()
        workflow.setup(ec)
        before = log.read_text().splitlines() if log.exists() else []
        done = _start_work(workflow, ec, server)
        wait_until(lambda: shape_reached(ec, workflow, done), CONVERGE_TIMEOUT, f"{workflow.name} to converge")
        lines = log.read_text().splitlines()
    finally:
        teardown(server)
    seen: Counter[str] = Counter(before)
    steps = []
    for line in lines[len(before):]:
        seen[line] += 1
        steps.append(Step(line, seen[line]))
    return steps


def representative(steps: list[Step]) -> list[Step]:
    """Each label's first, middle and last occurrence, in the order of the run: the full
    enumeration (sixteen "moving slots" commits of a reshard differ only in how many slots moved)."""
    by_label: dict[str, list[Step]] = {}
    for step in steps:
        by_label.setdefault(step.label, []).append(step)
    picked = set()
    for occurrences in by_label.values():
        picked.update({occurrences[0], occurrences[len(occurrences) // 2], occurrences[-1]})
    return [step for step in steps if step in picked]


def crash_at(root: Path, workflow: Workflow, step: Step) -> Outcome:
    """Runs the workflow until the control plane kills itself after ``step``, restarts it, checks."""
    with contextlib.ExitStack() as stack:
        return _crash_at(root, workflow.bind(stack) if workflow.bind else workflow, step)


def _crash_at(root: Path, workflow: Workflow, step: Step) -> Outcome:
    began = time.monotonic()
    outcome = Outcome(workflow.name, step)
    steps_log = Path(tempfile.mkstemp(prefix="steps-", suffix=".log", dir=root)[1])
    server = start_server(root, {"CACHEFLEET_CRASH_AFTER": step.crash_after, "CACHEFLEET_STEP_LOG": str(steps_log)})
    ec = server.client()
    try:
        workflow.setup(ec)
    except botocore.exceptions.BotoCoreError as error:
        outcome.problems.append(f"the control plane died during the setup: {error}")
        teardown(server)
        return outcome
    group = describe(ec, workflow.group_id)
    writer = None
    if workflow.writer and group:
        writer = workflow.make_writer(ec) if workflow.make_writer else ConfirmedWriter(group)
    try:
        if writer:
            writer.__enter__()
            if writer.counting is None:  # else the workflow says when its writes start to count
                writer.wait_confirmed(20)
        done = _start_work(workflow, ec, server)
        assert server.process is not None
        process = server.process

        def dead_or_done() -> bool:
            if process.poll() is not None:
                return True
            try:
                return shape_reached(ec, workflow, done)
            except botocore.exceptions.BotoCoreError:
                return process.poll() is not None

        try:
            wait_until(dead_or_done, CONVERGE_TIMEOUT, f"the control plane to crash after {step.crash_after}")
        except TimeoutError as error:
            outcome.problems.append(str(error))
        outcome.crashed = process.poll() == -signal.SIGKILL
        if not outcome.crashed:
            outcome.problems.append(f"the step was not reached (exit {process.poll()}); the steps were:"
                                    f" {steps_log.read_text().splitlines()}")
            return outcome
        at_crash = dict(engine_pids(server.data_dir))
        server.process = None
        server.env = {}
        restarted_at = time.monotonic()
        server.start()
        ec = server.client()
        try:
            wait_until(lambda: shape_reached(ec, workflow, done), CONVERGE_TIMEOUT,
                  f"{workflow.name} to converge after the crash")
            outcome.converged = True
            outcome.seconds_to_converge = time.monotonic() - restarted_at
        except TimeoutError as error:
            outcome.problems.append(f"{error}: {describe(ec, workflow.group_id)}")
            return outcome
        group = describe(ec, workflow.group_id)
        assert group is not None
        outcome.problems.extend(engines_agree(group))
        if workflow.check is not None:
            outcome.problems.extend(workflow.check(ec))
        if writer:
            # A few more confirmed writes through the converged group, then stop the writer.
            counts = [len(w.confirmed) for w in writer.writers]
            wait_until(lambda: all(len(w.confirmed) > c + 5 for w, c in zip(writer.writers, counts, strict=True)),
                  20, "confirmed writes after convergence")
            writer.__exit__()
            outcome.confirmed = len(writer.confirmed)
            lost = writer.lost(group)
            outcome.lost_count, outcome.lost = len(lost), lost[:10]
            writer = None
        if workflow.upgraded is not None:
            at_crash = {address: pid for address, pid in at_crash.items() if workflow.upgraded(pid)}
        members = {c: a for region in workflow.regions for c, a in member_addresses(in_region(ec, region), None).items()}
        _check_processes(outcome, server, members, at_crash)
        return outcome
    finally:
        if writer:
            writer.__exit__()
        outcome.seconds = time.monotonic() - began
        if not outcome.ok:
            outcome.problems.append(f"server log: {server.log()[-3000:]}")
        teardown(server)


def _check_processes(outcome: Outcome, server: Server, members: dict[str, str], at_crash: dict[str, int]) -> None:
    processes = engine_processes(server.data_dir)
    per_address = Counter(address for address, _ in processes)
    addresses = set(members.values())
    outcome.duplicates = sorted(a for a, count in per_address.items() if count > 1)
    outcome.orphans = sorted(a for a in per_address if a not in addresses)
    outcome.missing = sorted(a for a in addresses if a not in per_address)
    now = dict(processes)
    outcome.restarted = sorted(
        address for address, pid in at_crash.items() if address in addresses and now.get(address) not in (None, pid)
    )


def primary_id(ec: Any, group_id: str) -> str | None:
    group = describe(ec, group_id)
    if group is None:
        return None
    return next((str(m["CacheClusterId"]) for m in group["NodeGroups"][0]["NodeGroupMembers"]
                 if m["CurrentRole"] == "primary"), None)


def kill_primary(ec: Any, server: Server, group_id: str) -> Callable[[Any], bool]:
    """SIGKILL of the first shard's primary engine process (not through the control plane); the
    failover is done once another member is the primary."""
    old = primary_id(ec, group_id)
    addresses = member_addresses(ec, group_id)
    assert old is not None
    os.kill(engine_pids(server.data_dir)[addresses[old]], signal.SIGKILL)
    return lambda ec: primary_id(ec, group_id) not in (None, old)
