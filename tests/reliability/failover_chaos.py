"""A thousand failovers: the chaos run ``test_failover_chaos.py`` drives (RELIABILITY.md).

Two groups of one control plane: cluster mode disabled (1 primary + 2 replicas, automatic failover)
and cluster mode enabled (2 shards x (1 + 1)). Each round injects one fault into each group at once --
kill -9 or SIGSTOP (held 0.6-1.5 s, past the hang detector's ~0.5 s, then SIGCONT) of a primary or a
replica, chosen at random (seeded) from shuffled blocks of the four kinds -- and, every 40-60 faults,
SIGKILLs the control plane at a random moment after the round's faults and restarts it on the same
data dir. The next round starts once both groups are stable again (``stable``: every member
`available`, one primary per shard, the engines agreeing, every replica's link up).

Meanwhile:
- one writer per group (``Writer``), a client as an application would write it: cluster mode
  disabled, redis-py on the primary endpoint; enabled, redis-py's RedisCluster slot map (refreshed on
  MOVED and on connection errors) with SET then ``WAIT 1 100`` on one connection to the slot's
  primary. Keys go round the shards, and a key is retried until written, so a shard that is down
  holds the writer up: the time to its first acknowledged write after a fault is the shard's
  unavailability. Every acknowledged and every WAIT-confirmed write is recorded.
- a role sampler (``RoleSampler``) asks every node ``ROLE`` every 25 ms on raw connections. A sampled
  moment where one shard has two nodes saying ``master`` is a *two-master moment*; those masters are
  then each sent a probe SET of a key of that shard, and when two of them take it, that is a *two
  writable primaries* moment -- the zone-partition test's definition (RELIABILITY.md): a second
  master that refuses writes (fenced by min-replicas-to-write: NOREPLICAS; a fresh cluster node
  without slots: MOVED) or does not answer (stopped) is not a second writable primary.
- at every stable point: one engine process per node record, none of another (``processes``);
  after a control-plane restart, every node that ran at the kill and was not faulted has the same
  pid (adopted, not restarted).

Afterwards every confirmed and acknowledged key is read back from its shard's primary.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import random
import select
import signal
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import botocore.exceptions
import hiredis
import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from cachefleet.domain import slots as slotmath
from crashsteps import tag_for_slot
from helpers import Server, engine_pids, engine_processes

WAIT_MS = 100  # WAIT 1's timeout: a write is confirmed only when a replica has it within this
HOLD = (0.6, 1.5)  # SIGSTOP held this long (s): the hang detector fails a primary over after ~0.5 s
STUCK = 90.0  # a group not stable this long after a fault is stuck: the run fails
SAMPLE_EVERY = 0.025
ROLE_TIMEOUT = 0.15
KINDS = (("primary", "kill"), ("primary", "stop"), ("replica", "kill"), ("replica", "stop"))
NAMES = {("primary", "kill"): "kill -9 primary", ("primary", "stop"): "SIGSTOP primary",
         ("replica", "kill"): "kill -9 replica", ("replica", "stop"): "SIGSTOP replica"}
_API_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


def _client(host: str, port: int) -> redis.Redis:
    # No retry of redis-py's own (by default 3, with backoff): every failure is the writer's to see.
    return redis.Redis(host=host, port=port, socket_timeout=1, socket_connect_timeout=0.5,
                       single_connection_client=True, retry=Retry(NoBackoff(), 0))


# ---------------------------------------------------------------------------------- the groups

@dataclass
class Shard:
    node_group_id: str
    tag: str  # keys {tag}:... hash to a slot of this shard ("" for cluster mode disabled)
    primary: str  # cache cluster id
    members: dict[str, str]  # cache cluster id -> node address

    def key(self, name: str) -> str:
        return f"{{{self.tag}}}:{name}" if self.tag else name


@dataclass
class Group:
    group_id: str
    cluster_mode: bool
    endpoint: tuple[str, int]  # primary endpoint, or configuration endpoint
    shards: list[Shard]

    @property
    def addresses(self) -> dict[str, str]:
        return {cid: address for shard in self.shards for cid, address in shard.members.items()}


def read_group(ec: Any, group_id: str, tags: dict[str, str] | None = None) -> Group:
    """The group as the API describes it (``tags``: a shard's tag kept from before)."""
    described = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    clusters = ec.describe_cache_clusters(ShowCacheNodeInfo=True)["CacheClusters"]
    address = {c["CacheClusterId"]: c["CacheNodes"][0]["Endpoint"]["Address"] for c in clusters if c.get("CacheNodes")}
    shards = []
    for ng in described["NodeGroups"]:
        members = {m["CacheClusterId"]: address[m["CacheClusterId"]] for m in ng["NodeGroupMembers"]}
        primary = next(m["CacheClusterId"] for m in ng["NodeGroupMembers"] if m.get("CurrentRole") == "primary")
        if tags is not None and ng["NodeGroupId"] in tags:
            tag = tags[ng["NodeGroupId"]]
        else:
            tag = tag_for_slot(min(slotmath.parse(ng["Slots"]))) if described["ClusterEnabled"] else ""
        shards.append(Shard(ng["NodeGroupId"], tag, primary, members))
    if described["ClusterEnabled"]:
        endpoint = described["ConfigurationEndpoint"]
    else:
        endpoint = described["NodeGroups"][0]["PrimaryEndpoint"]
    return Group(group_id, described["ClusterEnabled"], (endpoint["Address"], endpoint["Port"]), shards)


def _replication(address: str) -> dict[str, Any] | None:
    try:
        with contextlib.closing(redis.Redis(host=address, socket_timeout=0.5, socket_connect_timeout=0.5,
                                            retry=Retry(NoBackoff(), 0))) as client:
            return dict(client.info("replication"))
    except (redis.RedisError, OSError):
        return None


def stable_problems(ec: Any, group_id: str) -> tuple[list[str], Group | None]:
    """Why the group is not stable now (nothing: it is), and the group as described."""
    try:
        described = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
        clusters = [c for c in ec.describe_cache_clusters()["CacheClusters"] if c.get("ReplicationGroupId") == group_id]
        group = read_group(ec, group_id)
    except (*_API_ERRORS, StopIteration, KeyError) as error:
        return [f"the API: {error!r}"[:200]], None
    problems = []
    if described["Status"] != "available":
        problems.append(f"group {described['Status']}")
    problems += [f"{c['CacheClusterId']} {c['CacheClusterStatus']}" for c in clusters if c["CacheClusterStatus"] != "available"]
    for shard in group.shards:
        primary = shard.members[shard.primary]
        for cid, address in shard.members.items():
            info = _replication(address)
            if info is None:
                problems.append(f"{cid} does not answer")
            elif cid == shard.primary and info["role"] != "master":
                problems.append(f"{cid} is the described primary, its engine says {info['role']}")
            elif cid != shard.primary and (info["role"] != "slave" or info.get("master_host") != primary
                                           or info.get("master_link_status") != "up"):
                problems.append(f"{cid} {info['role']} of {info.get('master_host')} link {info.get('master_link_status')}")
    return problems, group


# ---------------------------------------------------------------------------------- the writer

@dataclass
class Written:
    acknowledged: list[str] = field(default_factory=list)  # keys whose SET answered OK
    confirmed: list[str] = field(default_factory=list)  # and WAIT 1 answered >= 1
    # Per shard: (start, end) of every acknowledged write, in order.
    times: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)


class Writer:
    """One group's writer, in a thread: key n goes to shard n % shards, each key retried until a SET
    of it is acknowledged, then WAIT 1 100 on the same connection."""

    def __init__(self, group: Group, *, pause: float = 0.004) -> None:
        self.group = group
        self.pause = pause
        self.written = Written(times={i: [] for i in range(len(group.shards))})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"writer-{group.group_id}", daemon=True)
        self._cluster: RedisCluster | None = None
        self._clients: dict[tuple[str, int], redis.Redis] = {}

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for client in self._clients.values():
            client.close()
        if self._cluster is not None:
            self._cluster.close()

    def _connection(self, key: str) -> redis.Redis:
        if not self.group.cluster_mode:
            target = self.group.endpoint
        else:
            if self._cluster is None:
                host, port = self.group.endpoint
                self._cluster = RedisCluster(host=host, port=port, socket_timeout=1, socket_connect_timeout=0.5,
                                             retry=Retry(NoBackoff(), 0))
            node = self._cluster.get_node_from_key(key)
            target = (node.host, node.port)
        if target not in self._clients:
            self._clients[target] = _client(*target)
        return self._clients[target]

    def _forget(self, key: str, *, topology: bool) -> None:
        """A failure: the connection goes (reconnected on the next try); the slot map is asked again."""
        for target, client in list(self._clients.items()):
            client.close()
            del self._clients[target]
        if topology and self._cluster is not None:
            try:
                self._cluster.nodes_manager.initialize()
            except (redis.RedisError, redis.exceptions.RedisClusterException, OSError, IndexError, KeyError):
                self._cluster.close()
                self._cluster = None  # built again from the configuration endpoint

    def _run(self) -> None:
        written, shards = self.written, self.group.shards
        n = 0
        while not self._stop.is_set():
            index = n % len(shards)
            key = shards[index].key(f"w:{n}")
            start = time.monotonic()
            try:
                client = self._connection(key)
                client.set(key, n)
                end = time.monotonic()
                written.acknowledged.append(key)
                written.times[index].append((start, end))
                n += 1
                if client.wait(1, WAIT_MS) >= 1:
                    written.confirmed.append(key)
            except redis.exceptions.MovedError:
                written.errors["MOVED"] += 1
                self._forget(key, topology=True)
                continue
            except (redis.RedisError, redis.exceptions.RedisClusterException, OSError, IndexError, AttributeError,
                    KeyError) as error:
                # RedisClusterException, IndexError...: redis-py's slot map while nodes are missing from it.
                written.errors[type(error).__name__] += 1
                self._forget(key, topology=True)
                self._stop.wait(0.01)
                continue
            self._stop.wait(self.pause)


def first_write_after(written: Written, shard: int, at: float) -> float | None:
    """Seconds from ``at`` to the end of the first acknowledged write to ``shard`` begun at or after it."""
    times = written.times[shard]
    i = bisect.bisect_left(times, (at, 0.0))
    return times[i][1] - at if i < len(times) else None


def longest_gap(written: Written, since: float) -> tuple[float, float]:
    """The longest time without an acknowledged write (any shard), and when it began."""
    ends = sorted(end for times in written.times.values() for _, end in times if end >= since)
    best, began = 0.0, since
    for a, b in zip([since, *ends], ends, strict=False):
        if b - a > best:
            best, began = b - a, a
    return best, began


def written_at(writer: Writer, keys: list[str]) -> dict[str, float]:
    """When each of ``keys`` was acknowledged (time.monotonic()): the i-th acknowledged key of a shard
    is its shard's i-th time."""
    wanted, seen, found = set(keys), Counter[int](), {}
    count = len(writer.group.shards)
    for key in writer.written.acknowledged:
        index = int(key.rsplit(":", 1)[1]) % count
        if key in wanted:
            found[key] = writer.written.times[index][seen[index]][1]
        seen[index] += 1
    return found


def loss_context(writer: Writer, lost: list[str], faults: list[Fault]) -> dict[str, Any]:
    """For a diagnosis: the first and last lost key, when they were written, the faults of the group
    from 3 s before the last one's write to 3 s after."""
    if not lost:
        return {}
    times = written_at(writer, lost)
    last = max(lost, key=lambda k: times.get(k, 0.0))
    at = times.get(last, 0.0)
    return {"first": lost[0], "last": last, "last_written_at": at,
            "faults_around_last": [asdict(f) for f in faults
                                   if f.group == writer.group.group_id and at - 3 <= f.at <= at + 3]}


def missing(group: Group, keys: list[str]) -> list[str]:
    """The keys (written with value = their number) that do not hold it, read from each shard's primary."""
    by_shard: dict[int, list[str]] = {}
    for key in keys:
        index = next(i for i, s in enumerate(group.shards) if not s.tag or key.startswith(f"{{{s.tag}}}:"))
        by_shard.setdefault(index, []).append(key)
    lost = []
    for index, shard_keys in by_shard.items():
        shard = group.shards[index]
        with contextlib.closing(_client(shard.members[shard.primary], group.endpoint[1])) as client:
            for start in range(0, len(shard_keys), 1000):
                chunk = shard_keys[start:start + 1000]
                pipe = client.pipeline(transaction=False)
                for key in chunk:
                    pipe.get(key)
                for key, value in zip(chunk, pipe.execute(), strict=True):
                    if value is None or value.decode() != key.rsplit(":", 1)[1]:
                        lost.append(key)
    return lost


# ---------------------------------------------------------------------------------- the sampler

class _Conn:
    def __init__(self, address: str, port: int) -> None:
        self.sock = socket.create_connection((address, port), timeout=0.1)
        self.sock.setblocking(False)
        self.reader = hiredis.Reader()


class RoleSampler:
    """Every node's ROLE every SAMPLE_EVERY seconds; two masters of one shard are probed with a SET."""

    def __init__(self, groups: Callable[[], list[Group]], port: int = 6379) -> None:
        self.groups = groups  # the current view of the groups (refreshed at stable points)
        self.port = port
        self.samples = 0
        self.two_masters: list[dict[str, Any]] = []  # moments where a shard had two masters
        self.two_writable: list[dict[str, Any]] = []  # ... and two of them took the probe write
        self.masters_seen = 0  # (shard, sample) with exactly one master: the sampler sees the roles
        self._conns: dict[str, _Conn] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="role-sampler", daemon=True)

    def __enter__(self) -> RoleSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self._conns.values():
            conn.sock.close()

    def _ask(self, requests: dict[str, bytes]) -> dict[str, Any]:
        """Sends each address its request at once; the answers within ROLE_TIMEOUT (None: no answer)."""
        answers: dict[str, Any] = {}
        waiting: dict[socket.socket, str] = {}
        for address, request in requests.items():
            try:
                if address not in self._conns:
                    self._conns[address] = _Conn(address, self.port)
                self._conns[address].sock.send(request)
                waiting[self._conns[address].sock] = address
            except OSError:
                self._drop(address)
                answers[address] = None
        deadline = time.monotonic() + ROLE_TIMEOUT
        while waiting and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(waiting), [], [], left)
            for sock in ready:
                address = waiting[sock]
                conn = self._conns[address]
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    del waiting[sock]
                    self._drop(address)
                    answers[address] = None
                    continue
                conn.reader.feed(data)
                reply = conn.reader.gets()
                if reply is not False:
                    del waiting[sock]
                    answers[address] = reply
        for address in waiting.values():  # no answer in time: a late reply must not be read as the next one
            self._drop(address)
            answers[address] = None
        return answers

    def _drop(self, address: str) -> None:
        conn = self._conns.pop(address, None)
        if conn is not None:
            conn.sock.close()

    def sample(self) -> None:
        groups = self.groups()
        addresses = {a for g in groups for s in g.shards for a in s.members.values()}
        roles = self._ask({a: b"*1\r\n$4\r\nROLE\r\n" for a in addresses})
        at = time.time()
        self.samples += 1
        for group in groups:
            for shard in group.shards:
                masters = [a for a in shard.members.values()
                           if isinstance(roles.get(a), list) and roles[a] and roles[a][0] == b"master"]
                if len(masters) == 1:
                    self.masters_seen += 1
                if len(masters) < 2:
                    continue
                key = shard.key("chaos-probe").encode()
                probe = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n1\r\n" % (len(key), key)
                answers = self._ask(dict.fromkeys(masters, probe))
                took = [a for a in masters if answers.get(a) == b"OK"]
                moment = {"at": at, "group": group.group_id, "shard": shard.node_group_id, "masters": masters,
                          "probe": {a: str(answers.get(a))[:60] for a in masters}}
                self.two_masters.append(moment)
                if len(took) >= 2:
                    self.two_writable.append(moment)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.sample()
            self._stop.wait(max(0.0, SAMPLE_EVERY - (time.monotonic() - began)))


# ---------------------------------------------------------------------------------- faults

@dataclass
class Fault:
    number: int
    group: str
    shard: str
    cluster_id: str
    address: str
    role: str  # primary / replica, as described when injected
    kind: str  # kill / stop
    at: float  # time.monotonic()
    hold: float | None = None
    control_plane_killed: bool = False
    failed_over: bool | None = None  # primary faults: another member is the primary afterwards
    write_recovery: float | None = None  # s to the first acknowledged write to the shard begun after it
    node_back: float | None = None  # s until the node is available and in sync again (Describe + INFO)
    stable_after: float | None = None  # s until the whole group was stable again

    @property
    def name(self) -> str:
        return NAMES[(self.role, self.kind)]


def _signal(pidfd: int, sig: int) -> bool:
    try:
        signal.pidfd_send_signal(pidfd, sig)
        return True
    except ProcessLookupError:
        return False


@dataclass
class Report:
    seed: int
    planned: int
    faults: list[Fault] = field(default_factory=list)
    control_plane_kills: int = 0
    not_adopted: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    missing_processes: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))], 3)


def _spread(values: list[float]) -> dict[str, float | None]:
    return {"median": round(statistics.median(values), 3) if values else None, "p99": _percentile(values, 99),
            "max": round(max(values), 3) if values else None, "count": len(values)}


class Chaos:
    """The run: see the module docstring. ``run()`` returns the report; the test asserts on it."""

    def __init__(self, server: Server, faults: int, seed: int, *, cp_every: tuple[int, int] = (40, 60),
                 log: Callable[[str], None] = print) -> None:
        self.server = server
        self.ec = server.client()
        self.rng = random.Random(seed)
        self.report = Report(seed=seed, planned=faults)
        self.cp_every = cp_every
        self.log = log
        self.groups: dict[str, Group] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self._continued: list[threading.Thread] = []
        self._kinds: dict[str, list[tuple[str, str]]] = {}

    # ---------------------------------------------------------------- set-up
    def create(self) -> None:
        base = {"ReplicationGroupDescription": "chaos", "Engine": "valkey", "CacheNodeType": "cache.t4g.micro",
                "AutomaticFailoverEnabled": True}
        self.ec.create_replication_group(ReplicationGroupId="chaos-off", NumCacheClusters=3, **base)
        self.ec.create_replication_group(ReplicationGroupId="chaos-on", NumNodeGroups=2, ReplicasPerNodeGroup=1,
                                         ClusterMode="enabled", **base)
        problems = self._wait_stable({"chaos-off": [], "chaos-on": []}, timeout=120)
        assert not problems, problems
        for group_id in ("chaos-off", "chaos-on"):
            group = read_group(self.ec, group_id)
            self.groups[group_id] = group
            self.tags[group_id] = {s.node_group_id: s.tag for s in group.shards}

    def current(self) -> list[Group]:
        return list(self.groups.values())

    # ---------------------------------------------------------------- faults
    def _next_kind(self, group_id: str) -> tuple[str, str]:
        queue = self._kinds.setdefault(group_id, [])
        if not queue:
            block = list(KINDS)
            self.rng.shuffle(block)
            queue.extend(block)
        return queue.pop(0)

    def inject(self, group: Group, number: int) -> Fault:
        role, kind = self._next_kind(group.group_id)
        shard = self.rng.choice(group.shards)
        if role == "primary":
            cluster_id = shard.primary
        else:
            cluster_id = self.rng.choice(sorted(c for c in shard.members if c != shard.primary))
        address = shard.members[cluster_id]
        pid = engine_pids(self.server.data_dir)[address]
        pidfd = os.pidfd_open(pid)
        if engine_pids(self.server.data_dir).get(address) != pid:  # the pid was reused meanwhile: impossible here
            os.close(pidfd)
            raise AssertionError(f"{address}'s process changed while it was being faulted")
        fault = Fault(number, group.group_id, shard.node_group_id, cluster_id, address, role, kind, time.monotonic())
        if kind == "kill":
            _signal(pidfd, signal.SIGKILL)
            os.close(pidfd)
        else:
            fault.hold = round(self.rng.uniform(*HOLD), 3)
            _signal(pidfd, signal.SIGSTOP)

            def resume(pidfd: int = pidfd, hold: float = fault.hold) -> None:
                time.sleep(hold)
                _signal(pidfd, signal.SIGCONT)  # the control plane may have fenced it (SIGKILL) meanwhile
                os.close(pidfd)

            thread = threading.Thread(target=resume, daemon=True)
            thread.start()
            self._continued.append(thread)
        return fault

    def _kill_control_plane(self, round_faults: list[Fault]) -> None:
        time.sleep(self.rng.uniform(0.0, 1.0))  # while the faults are being handled, or just after
        at_kill = engine_pids(self.server.data_dir)
        self.server.stop(signal.SIGKILL)
        for fault in round_faults:
            fault.control_plane_killed = True
        self.report.control_plane_kills += 1
        time.sleep(self.rng.uniform(0.2, 1.5))
        self.server.start()
        self.ec = self.server.client()
        self._at_kill = {a: pid for a, pid in at_kill.items() if a not in {f.address for f in round_faults}}

    # ---------------------------------------------------------------- stability
    def _wait_stable(self, faults: dict[str, list[Fault]], timeout: float = STUCK) -> dict[str, list[str]]:
        """Until every group of ``faults`` is stable (each recorded when first seen so), each fault's
        node_back on the way. The problems of the groups that never were."""
        deadline = time.monotonic() + timeout
        pending = dict(faults)
        problems: dict[str, list[str]] = {}
        while pending and time.monotonic() < deadline:
            resumed = not any(t.is_alive() for t in self._continued)
            for group_id, group_faults in list(pending.items()):
                found, group = stable_problems(self.ec, group_id)
                problems[group_id] = found
                now = time.monotonic()
                for fault in group_faults:
                    if fault.node_back is None and group is not None and not any(
                            p.startswith(f"{fault.cluster_id} ") for p in found):
                        fault.node_back = round(now - fault.at, 3)
                if found or not resumed:
                    continue
                assert group is not None
                for fault in group_faults:
                    fault.stable_after = round(now - fault.at, 3)
                    if fault.role == "primary":
                        shard = next(s for s in group.shards if s.node_group_id == fault.shard)
                        fault.failed_over = shard.primary != fault.cluster_id
                if group_id in self.groups:
                    self.groups[group_id] = read_group(self.ec, group_id, self.tags[group_id])
                del pending[group_id]
                del problems[group_id]
            if pending:
                time.sleep(0.05)
        return problems

    def _check_processes(self) -> None:
        processes = engine_processes(self.server.data_dir)
        per_address = Counter(address for address, _ in processes)
        known = {a for g in self.groups.values() for a in g.addresses.values()}
        report = self.report
        report.duplicates += [a for a, n in per_address.items() if n > 1]
        report.orphans += [a for a in per_address if a not in known]
        report.missing_processes += [a for a in known if a not in per_address]

    # ---------------------------------------------------------------- the run
    def run(self) -> Report:
        report = self.report
        next_kill = self.rng.randint(*self.cp_every)
        number = 0
        started = time.monotonic()
        while number < report.planned:
            round_faults = []
            for group in self.current():
                if number < report.planned:
                    number += 1
                    round_faults.append(self.inject(group, number))
            self._at_kill: dict[str, int] | None = None
            if number >= next_kill:
                self._kill_control_plane(round_faults)
                next_kill = number + self.rng.randint(*self.cp_every)
            report.faults += round_faults
            problems = self._wait_stable({g: [f for f in round_faults if f.group == g] for g in self.groups})
            if problems:
                report.stuck.append(f"faults {[asdict(f) for f in round_faults]}: not stable after {STUCK:.0f} s: "
                                    f"{problems}")
                return report
            self._check_processes()
            if self._at_kill is not None:
                now = engine_pids(self.server.data_dir)
                report.not_adopted += [f"{a} (pid {pid} -> {now.get(a)})" for a, pid in self._at_kill.items()
                                       if now.get(a) != pid]
            if number % 50 < len(round_faults) or number == report.planned:
                self.log(f"{number}/{report.planned} faults, {report.control_plane_kills} control-plane kills, "
                         f"{time.monotonic() - started:.0f} s")
        return report


def figures(report: Report, writers: dict[str, Writer], sampler: RoleSampler, lost: dict[str, dict[str, list[str]]],
            since: float, seconds: float) -> dict[str, Any]:
    faults = report.faults
    for fault in faults:
        writer = writers[fault.group]
        shard = next(i for i, s in enumerate(writer.group.shards) if s.node_group_id == fault.shard)
        recovery = first_write_after(writer.written, shard, fault.at)
        fault.write_recovery = None if recovery is None else round(recovery, 3)
    by_kind = Counter(f.name for f in faults)
    streaks = {}
    for group_id, writer in writers.items():
        gap, began = longest_gap(writer.written, since)
        during = [f.number for f in faults if f.group == group_id and began - 0.01 <= f.at <= began + gap]
        streaks[group_id] = {"seconds": round(gap, 3), "faults": during[:5]}
    return {
        "seed": report.seed,
        "seconds": round(seconds, 1),
        "faults": len(faults),
        "faults_by_kind": {**dict(sorted(by_kind.items())), "control-plane SIGKILL": report.control_plane_kills},
        "faults_by_group": dict(Counter(f.group for f in faults)),
        "primary_faults_failed_over": sum(1 for f in faults if f.failed_over),
        "acknowledged_writes": sum(len(w.written.acknowledged) for w in writers.values()),
        "confirmed_writes": sum(len(w.written.confirmed) for w in writers.values()),
        "confirmed_lost": sum(len(v["confirmed"]) for v in lost.values()),
        "acknowledged_unconfirmed_lost": sum(len(v["unconfirmed"]) for v in lost.values()),
        "write_recovery_s": _spread([f.write_recovery for f in faults if f.write_recovery is not None]),
        "write_recovery_s_by_kind": {
            kind: _spread([f.write_recovery for f in faults if f.name == kind and f.write_recovery is not None])
            for kind in sorted(by_kind)},
        "node_back_in_sync_s_by_kind": {
            kind: _spread([f.node_back for f in faults if f.name == kind and f.node_back is not None])
            for kind in sorted(by_kind)},
        "longest_write_unavailability": streaks,
        "writer_errors": {g: dict(w.written.errors) for g, w in writers.items()},
        "role_samples": sampler.samples,
        "two_master_moments": len(sampler.two_masters),
        "two_writable_primary_moments": len(sampler.two_writable),
        "orphans": len(report.orphans), "duplicates": len(report.duplicates),
        "missing_processes": len(report.missing_processes), "not_adopted": len(report.not_adopted),
        "stuck": len(report.stuck),
    }


@contextlib.contextmanager
def running(chaos: Chaos) -> Iterator[tuple[dict[str, Writer], RoleSampler]]:
    writers = {g.group_id: Writer(g) for g in chaos.current()}
    sampler = RoleSampler(chaos.current)
    with contextlib.ExitStack() as stack:
        for writer in writers.values():
            stack.enter_context(writer)
        stack.enter_context(sampler)
        yield writers, sampler


def write_report(name: str, data: dict[str, Any]) -> None:
    directory = os.environ.get("CACHEFLEET_CHAOS_REPORT")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / f"{name}.json").write_text(json.dumps(data, indent=1, default=str))
