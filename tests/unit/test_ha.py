"""High-availability pieces in isolation: the rendered cluster config, the health probe's
replication tracking (against a scripted fake engine), and the failover's choice of the
replica to promote when one will not take over."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from cachefleet.control.health import HealthMonitor
from cachefleet.control.workflows import failover as failover_module
from cachefleet.control.workflows.failover import Failover, PrimaryState, decide
from cachefleet.domain.operations import FailoverKind, FailoverRequest
from cachefleet.engine.access import NodeAccess
from cachefleet.engine.admin import EngineError
from cachefleet.engine.config import NodeConfig, render


def _settings(text: str) -> dict[str, str]:
    lines = [line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return {key: value for key, value in lines}


def test_cluster_nodes_leave_failover_to_the_control_plane():
    """Redis Cluster's own failover must never race the control plane's (which fences first)."""
    base = NodeConfig(address="127.0.0.9", port=6379, directory=Path("/tmp/n"), maxmemory=2**28)
    sharded = _settings(render(NodeConfig(**{**base.__dict__, "cluster": True})))
    assert sharded["cluster-enabled"] == "yes"
    assert sharded["cluster-replica-no-failover"] == "yes"
    # A replica must not migrate to another shard on its own either.
    assert sharded["cluster-allow-replica-migration"] == "no"
    assert "cluster-enabled" not in _settings(render(base))


# ---------------------------------------------------------------------- health monitor
class FakeEngine:
    """Answers PING, INFO replication and CLIENT SETNAME on a loopback port; can hang (stop answering)."""

    def __init__(self) -> None:
        self.role = "slave"
        self.link = "up"
        self.offset = 100
        self.hung = False
        self.infos = 0
        self.password: str | None = None
        self.logins: list[tuple[str, str]] = []
        self.names: list[str] = []
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        authenticated = self.password is None
        try:
            while line := await reader.readline():
                while self.hung:
                    await asyncio.sleep(0.01)
                if line.startswith(b"*"):  # a RESP array (AUTH, CLIENT SETNAME), as NodeAccess sends it
                    parts = [await reader.readline() for _ in range(2 * int(line[1:]))][1::2]
                    words = [p.strip().decode() for p in parts]
                    if words[0].upper() == "CLIENT" and authenticated:
                        self.names.append(words[2])
                        writer.write(b"+OK\r\n")
                    elif words[0].upper() == "CLIENT":
                        writer.write(b"-NOAUTH Authentication required.\r\n")
                    elif words[0].upper() == "AUTH" and len(words) == 3 and words[2] == self.password:
                        self.logins.append((words[1], words[2]))
                        authenticated = True
                        writer.write(b"+OK\r\n")
                    else:
                        writer.write(b"-WRONGPASS invalid username-password pair\r\n")
                elif not authenticated:
                    writer.write(b"-NOAUTH Authentication required.\r\n")
                elif line.upper().startswith(b"PING"):
                    writer.write(b"+PONG\r\n")
                elif line.upper().startswith(b"CLIENT SETNAME"):
                    writer.write(b"+OK\r\n")
                elif line.upper().startswith(b"INFO"):
                    self.infos += 1
                    body = (
                        f"# Replication\r\nrole:{self.role}\r\nmaster_host:127.0.0.1\r\n"
                        f"master_link_status:{self.link}\r\nslave_repl_offset:{self.offset}\r\n"
                    ).encode()
                    writer.write(b"$%d\r\n%s\r\n" % (len(body), body))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()


async def _until(predicate, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


class FakeTime:
    """A monotonic clock that moves only when told: the health monitor's timing without sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_health_monitor_tracks_replication_link_and_offset():
    engine = FakeEngine()
    port = await engine.start()
    changes: list[str] = []
    clock = FakeTime()
    monitor = HealthMonitor(on_change=changes.append, timeout=0.1, info_every=1, link_grace=2.0, clock=clock)
    monitor.watch("n1", NodeAccess("127.0.0.1", port))
    try:
        await monitor.check_all()
        state = monitor.replication("n1")
        assert (state.role, state.offset, state.link_up) == ("slave", 100, True)
        assert engine.infos == 1 and monitor.healthy("n1")

        engine.offset = 250
        await monitor.check_all()
        assert monitor.replication("n1").offset == 250

        # A blip shorter than the grace is not a link loss; a sustained one is, and is reported once.
        engine.link = "down"
        await monitor.check_all()
        assert monitor.replication("n1").link_up is False
        clock.now += 1.9
        await monitor.check_all()
        assert not monitor.link_lost("n1") and changes == []
        clock.now += 0.2
        await monitor.check_all()
        assert monitor.link_lost("n1") and changes == ["n1"]
        assert monitor.link_down_for("n1") == pytest.approx(2.1)
        clock.now += 5.0
        await monitor.check_all()
        assert changes == ["n1"]  # still down: not reported again

        engine.link = "up"
        await monitor.check_all()
        assert not monitor.link_lost("n1") and changes == ["n1", "n1"] and monitor.link_down_for("n1") == 0.0

        # A hang (the process alive, not answering) makes the node unhealthy after two missed probes.
        engine.hung = True
        clock.now += 0.2
        await monitor.check_all()
        assert monitor.healthy("n1") and changes == ["n1", "n1"]
        clock.now += 0.2
        await monitor.check_all()
        assert not monitor.healthy("n1") and changes == ["n1", "n1", "n1"]
        assert monitor.silent_for("n1") == pytest.approx(0.4)
        engine.hung = False
        await monitor.check_all()
        assert monitor.healthy("n1") and changes[-1] == "n1"
    finally:
        await monitor.stop()
        await engine.close()


async def test_health_monitor_reports_a_primarys_link_as_up():
    engine = FakeEngine()
    engine.role, engine.link = "master", "down"  # a primary has no master link: whatever it says
    port = await engine.start()
    clock = FakeTime()
    monitor = HealthMonitor(on_change=lambda key: None, timeout=0.1, info_every=1, link_grace=0.05, clock=clock)
    monitor.watch("p", NodeAccess("127.0.0.1", port))
    try:
        await monitor.check_all()
        clock.now += 1.0
        await monitor.check_all()
        assert monitor.replication("p").link_up and not monitor.link_lost("p")
    finally:
        await monitor.stop()
        await engine.close()


async def test_health_monitor_logs_in_with_the_nodes_credentials():
    """The probe opens its connection through NodeAccess: a node that wants a password gets it."""
    engine = FakeEngine()
    engine.password = "s3cret-token-0123"
    port = await engine.start()
    monitor = HealthMonitor(on_change=lambda key: None, timeout=0.1, info_every=1, clock=FakeTime())
    monitor.watch("a", NodeAccess("127.0.0.1", port, username="cachefleet", password="s3cret-token-0123"))
    monitor.watch("b", NodeAccess("127.0.0.1", port))
    try:
        await monitor.check_all()
        await monitor.check_all()
        assert monitor.healthy("a") and monitor.replication("a") is not None and monitor.refused("a") is None
        # Refused (NOAUTH) is an answer: the node is alive, never fenced as hung, and the refusal is known.
        assert monitor.healthy("b") and "NOAUTH" in monitor.refused("b")
        assert engine.logins == [("cachefleet", "s3cret-token-0123")]
    finally:
        await monitor.stop()
        await engine.close()


# ---------------------------------------------------------------------- failover: promotion
class FakeAdmin:
    def __init__(self, offset: int, *, takes_over: bool = True, refuses: bool = False) -> None:
        self.role = "slave"
        self.offset = offset
        self.takes_over = takes_over
        self.refuses = refuses
        self.commands: list[tuple[str, ...]] = []

    async def info(self, section: str = "default") -> dict[str, str]:
        return {"role": self.role, "slave_repl_offset": str(self.offset)}

    # What CLUSTER NODES answers: by default a replica that credits nobody with any slot.
    nodes_text = f"{'f' * 40} 127.0.0.9:6379@16379 myself,slave - 0 0 1 connected"

    async def text(self, *args: str) -> str:
        return self.nodes_text

    async def execute(self, *args: str) -> None:
        self.commands.append(args)
        if self.refuses:
            raise EngineError("ERR Takeover refused")
        if self.takes_over:
            self.role = "master"


class FakeNodes:
    """The node operations the failover uses (control/nodes.py), recording what was done."""

    def __init__(self, admins: dict[str, FakeAdmin]) -> None:
        self.admins = admins
        self.events: list[str] = []
        self.fenced: list[str] = []
        self.checked: list[str] = []
        self.observed = SimpleNamespace(synced={})

    async def fence(self, key: str) -> None:
        self.fenced.append(key)

    def admin(self, cluster) -> FakeAdmin:
        return self.admins[cluster.node.address]

    def members(self, group) -> dict:
        return {c.cluster_id: c for c in getattr(group, "clusters", ())}

    def mark_checked(self, cluster) -> None:
        self.checked.append(cluster.cluster_id)

    def record(self, resource, message: str) -> None:
        self.events.append(message)


FakeOps = FakeNodes


def _replica(cluster_id: str, zone: str = "us-east-1a"):
    return SimpleNamespace(cluster_id=cluster_id, availability_zone=zone, node=SimpleNamespace(address=cluster_id))


SHARDED = SimpleNamespace(cluster_enabled=True, group_id="g", node_groups=(), configuration_endpoint="", node_group_of=lambda cluster_id: None)


@pytest.fixture
def quick_takeover(monkeypatch):
    monkeypatch.setattr(failover_module, "TAKEOVER_TIMEOUT", 0.05)


async def test_a_replica_that_does_not_take_over_is_fenced_and_the_next_one_promoted(quick_takeover):
    admins = {"r1": FakeAdmin(500, takes_over=False), "r2": FakeAdmin(400), "r3": FakeAdmin(300)}
    ops = FakeOps(admins)
    old = _replica("old")
    chosen = await Failover(ops)._promote_best(SHARDED, [_replica("r3"), _replica("r2"), _replica("r1")], old)
    # Highest offset first: r1, which never became a primary; then r2, which did. r3 untouched.
    assert chosen.cluster_id == "r2"
    assert admins["r1"].commands == [("CLUSTER", "FAILOVER", "TAKEOVER")]
    assert admins["r2"].role == "master" and admins["r3"].commands == []
    assert ops.fenced == ["r1"]  # a late takeover of r1 must not make a second primary
    assert ops.events == [
        "Replica node r1 did not become a primary within 0.05 s of CLUSTER FAILOVER TAKEOVER; fenced it, trying the next replica"
    ]


async def test_when_no_replica_takes_over_nothing_is_promoted_and_the_last_is_kept(quick_takeover):
    admins = {"r1": FakeAdmin(500, refuses=True), "r2": FakeAdmin(400, takes_over=False)}
    ops = FakeOps(admins)
    chosen = await Failover(ops)._promote_best(SHARDED, [_replica("r1"), _replica("r2")], _replica("old"))
    assert chosen is None
    assert ops.fenced == ["r1"]  # the last candidate keeps running: a later attempt looks at it again
    assert ops.events[0].startswith("Replica node r1 could not be promoted (ERR Takeover refused); fenced it")
    assert ops.events[1] == "Replica node r2 did not become a primary within 0.05 s of CLUSTER FAILOVER TAKEOVER"


async def test_a_takeover_that_went_through_late_is_accepted_on_the_next_attempt(quick_takeover):
    late = FakeAdmin(500)
    late.role = "master"
    ops = FakeOps({"r1": late})
    chosen = await Failover(ops)._promote_best(SHARDED, [_replica("r1")], _replica("old"))
    assert chosen.cluster_id == "r1" and late.commands == [] and ops.fenced == []


async def test_candidates_rank_by_offset_then_other_zone_then_place():
    admins = {"a": FakeAdmin(10), "b": FakeAdmin(30), "c": FakeAdmin(30), "d": FakeAdmin(30)}
    ops = FakeOps(admins)
    old = _replica("old", "us-east-1a")
    candidates = [_replica("a", "us-east-1b"), _replica("b"), _replica("c"), _replica("d", "us-east-1c")]
    ranked = await Failover(ops)._ranked(candidates, old)
    assert [c.cluster_id for c in ranked] == ["d", "b", "c", "a"]


async def test_a_promoted_replica_stays_primary_when_the_endpoint_cannot_be_bound_yet():
    """Cluster mode disabled: REPLICAOF NO ONE went through, the endpoint bind failed (the address
    still in use): the promotion stands, and the reconciler binds the endpoint on its next pass."""
    admin = FakeAdmin(100)

    async def promote() -> None:
        admin.role = "master"

    admin.promote = promote  # type: ignore[method-assign]
    ops = FakeOps({"r1": admin})
    ops.observed.synced = {"r1": 7}

    async def set_binds(cluster, addresses) -> None:
        raise EngineError("CONFIG SET failed (possibly related to argument 'bind') - Failed to bind to specified addresses.")

    ops.set_binds = set_binds
    node_group = SimpleNamespace(member_cluster_ids=("old", "r1"), primary_endpoint="127.0.0.3")
    group = SimpleNamespace(cluster_enabled=False, group_id="g", node_group_of=lambda cluster_id: node_group,
                            global_role=None)
    chosen = await Failover(ops)._promote_best(group, [_replica("r1")], _replica("old"))
    assert chosen is not None and chosen.cluster_id == "r1"
    assert admin.role == "master" and ops.fenced == [] and ops.events == []
    assert "r1" not in ops.observed.synced  # as a primary it no longer counts as a synced replica
    assert ops.checked == ["r1"]


async def test_a_replica_not_marked_available_is_a_candidate_once_it_holds_the_shards_data():
    """A lost primary's replicas that are not ``available`` (recovering, being added) are candidates
    only if they hold data: a replication backlog (master_repl_offset > 0), not a fresh node mid-sync."""
    from cachefleet.domain.cache_clusters import ClusterStatus

    class InfoAdmin:
        def __init__(self, offset: str | None) -> None:
            self.offset = offset

        async def info(self, section: str = "default") -> dict[str, str]:
            if self.offset is None:
                raise EngineError("Connection refused")
            return {"role": "slave", "master_repl_offset": self.offset}

    def member(cluster_id: str, status: ClusterStatus):
        return SimpleNamespace(cluster_id=cluster_id, status=status, node=SimpleNamespace(address=cluster_id))

    ops = FakeOps({"synced": InfoAdmin("1402"), "fresh": InfoAdmin("0"), "gone": InfoAdmin(None),  # type: ignore[dict-item]
                   "leaving": InfoAdmin("900"), "stopped": InfoAdmin("900"), "listed": InfoAdmin("900")})
    ops.running = lambda cluster: cluster.cluster_id != "stopped"  # type: ignore[attr-defined]
    members = {
        "synced": member("synced", ClusterStatus.MODIFYING), "fresh": member("fresh", ClusterStatus.CREATING),
        "gone": member("gone", ClusterStatus.MODIFYING), "leaving": member("leaving", ClusterStatus.DELETING),
        "stopped": member("stopped", ClusterStatus.MODIFYING), "listed": member("listed", ClusterStatus.AVAILABLE),
    }
    node_group = SimpleNamespace(replica_cluster_ids=tuple(members) + ("unknown",))
    found = await Failover(ops)._holders(node_group, members)  # type: ignore[arg-type]
    # An available one is the ordinary candidates' business (they were none: it is unhealthy).
    assert [c.cluster_id for c in found] == ["synced"]


def test_a_lost_primary_is_started_again_in_place_only_once_the_failover_gave_up_on_it():
    """Nodes._failover_first: a pass under way when an available primary of a group with automatic
    failover and replicas exited must leave it to the failover (which promotes a replica, or finds
    none and lets it start: ``may_restart``); a primary stopped on purpose is not ``available``."""
    from cachefleet.control.nodes import Nodes
    from cachefleet.domain.cache_clusters import ClusterStatus

    shard = SimpleNamespace(primary_cluster_id="g-001", replica_cluster_ids=("g-002",))
    alone = SimpleNamespace(primary_cluster_id="g-001", replica_cluster_ids=())
    groups = {
        "ha": SimpleNamespace(automatic_failover="enabled", node_group_of=lambda cid: shard),
        "manual": SimpleNamespace(automatic_failover="disabled", node_group_of=lambda cid: shard),
        "alone": SimpleNamespace(automatic_failover="enabled", node_group_of=lambda cid: alone),
    }
    fake = SimpleNamespace(store=SimpleNamespace(get=lambda kind, region, group_id: groups.get(group_id)),
                           observed=SimpleNamespace(may_restart=set()))

    def cluster(group_id, status=ClusterStatus.AVAILABLE, cluster_id="g-001"):
        return SimpleNamespace(cluster_id=cluster_id, status=status, replication_group_id=group_id, region="r",
                               node=SimpleNamespace(address=f"{group_id}-{cluster_id}"))

    first = Nodes._failover_first
    assert first(fake, cluster("ha"))  # type: ignore[arg-type]
    assert not first(fake, cluster("ha", ClusterStatus.REBOOTING))  # type: ignore[arg-type]
    assert not first(fake, cluster("ha", ClusterStatus.MODIFYING))  # type: ignore[arg-type]
    assert not first(fake, cluster("ha", cluster_id="g-002"))  # type: ignore[arg-type]  # a replica
    assert not first(fake, cluster("manual"))  # type: ignore[arg-type]
    assert not first(fake, cluster("alone"))  # type: ignore[arg-type]
    assert not first(fake, cluster(None))  # type: ignore[arg-type]
    fake.observed.may_restart.add("ha-g-001")
    assert not first(fake, cluster("ha"))  # type: ignore[arg-type]


# ---------------------------------------------------------------------- failover: the decision
GROUP = SimpleNamespace(automatic_failover="enabled")
NODE_GROUP = SimpleNamespace(node_group_id="0001")
PRIMARY = SimpleNamespace(cluster_id="g-001", status="available")
UP = PrimaryState(running=True, healthy=True, silent_for=0.0)


def test_a_healthy_primary_is_left_alone():
    assert decide(GROUP, NODE_GROUP, PRIMARY, None, UP) is None


def test_an_exited_or_silent_primary_is_failed_over_unplanned():
    exited = decide(GROUP, NODE_GROUP, PRIMARY, None, PrimaryState(running=False, healthy=True, silent_for=0.0))
    assert exited is not None and not exited.planned and "exited" in exited.reason
    silent = decide(GROUP, NODE_GROUP, PRIMARY, None, PrimaryState(running=True, healthy=False, silent_for=0.6))
    assert silent is not None and not silent.planned and "0.6 s without a PING reply" in silent.reason


def test_without_automatic_failover_nothing_is_failed_over_unless_asked():
    manual = SimpleNamespace(automatic_failover="disabled")
    assert decide(manual, NODE_GROUP, PRIMARY, None, PrimaryState(running=False, healthy=False, silent_for=9.0)) is None
    asked = FailoverRequest("0001", FailoverKind.SWITCHOVER, "g-002")
    trouble = decide(manual, NODE_GROUP, PRIMARY, asked, UP)
    assert trouble is not None and trouble.planned and trouble.target == "g-002"


def test_a_request_for_another_node_group_does_not_concern_this_one():
    other = FailoverRequest("0002", FailoverKind.TEST)
    assert decide(GROUP, NODE_GROUP, PRIMARY, other, UP) is None
    creating = SimpleNamespace(cluster_id="g-001", status="creating")
    assert decide(GROUP, NODE_GROUP, creating, None, PrimaryState(running=False, healthy=False, silent_for=1.0)) is None


def test_replication_fields_are_read_as_info_parses_them():
    """The probe's own reading of INFO replication agrees with the full parser on what Replication uses."""
    from cachefleet.control.health import replication_fields
    from cachefleet.engine.admin import parse_info

    replica = (b"# Replication\r\nrole:slave\r\nmaster_host:127.80.0.2\r\nmaster_port:6379\r\n"
               b"master_link_status:down\r\nslave_repl_offset:-1\r\nslave_priority:100\r\nconnected_slaves:0\r\n"
               b"master_repl_offset:0\r\n")
    primary = (b"# Replication\r\nrole:master\r\nconnected_slaves:1\r\n"
               b"slave0:ip=127.80.0.3,port=6379,state=online,offset=4242,lag=0\r\nmaster_repl_offset:4242\r\n")
    for body in (replica, primary, b"role:master\r\nmaster_repl_offset:7"):
        full = parse_info(body.decode())
        assert replication_fields(body) == {k: v for k, v in full.items() if k in (
            "role", "master_link_status", "slave_repl_offset", "master_repl_offset")}, body


async def test_health_monitor_opens_a_bounded_number_of_connections_at_once():
    """Many nodes watched at once (a control plane starting with a thousand) are logged in a few
    at a time, and waiting for a turn is not a missed probe: every node ends healthy."""
    from cachefleet.control import health

    state = {"now": 0, "most": 0}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        logging_in = True
        try:
            header = await reader.readline()  # CLIENT SETNAME as a RESP array
            for _ in range(2 * int(header[1:] or b"0")):
                await reader.readline()
            await asyncio.sleep(0.01)
            state["now"] -= 1
            logging_in = False
            writer.write(b"+OK\r\n")
            while line := await reader.readline():
                writer.write(b"+PONG\r\n" if line.startswith(b"PING") else b"$12\r\nrole:master\r\n\r\n")
        finally:
            state["now"] -= logging_in
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # A timeout far above the 10 ms a login takes here: a loaded machine must not make a login miss it.
    monitor = HealthMonitor(on_change=lambda key: None, timeout=2.0, clock=FakeTime())
    nodes = [f"n{i}" for i in range(3 * health.OPEN_AT_ONCE)]
    for key in nodes:
        monitor.watch(key, NodeAccess("127.0.0.1", port))
    try:
        await monitor.check_all()
        await monitor.check_all()
        assert state["most"] <= health.OPEN_AT_ONCE
        assert all(monitor.healthy(key) and monitor._watched[key].failures == 0 for key in nodes)
    finally:
        await monitor.stop()
        server.close()


def test_a_replica_that_still_credits_its_primary_with_a_moved_slot_is_not_taken_over_yet():
    """A reshard finalized slot 100 on the new shard B while A's replica had not heard of it: a
    TAKEOVER by that replica would claim 100 with a newer epoch, and B would drop the slot's keys."""
    from cachefleet.control.workflows.failover import stale_claims
    from cachefleet.engine.cluster import parse_nodes

    a1, a2, b1 = "a" * 40, "c" * 40, "b" * 40

    def line(node_id: str, flags: str, master: str, epoch: int, *slots: str) -> str:
        return f"{node_id} 127.80.0.{ord(node_id[0])}:6379@16379 {flags} {master} 0 0 {epoch} connected {' '.join(slots)}"

    stale_replica = parse_nodes("\n".join([
        line(a2, "myself,slave", a1, 2), line(a1, "master,fail", "-", 2, "0-100"), line(b1, "master", "-", 3, "101-200"),
    ]))
    current_replica = parse_nodes("\n".join([
        line(a2, "myself,slave", a1, 2), line(a1, "master,fail", "-", 2, "0-99"), line(b1, "master", "-", 4, "100-200"),
    ]))
    b_view = parse_nodes("\n".join([line(b1, "myself,master", "-", 4, "100-200"), line(a1, "master,fail", "-", 2, "0-99")]))
    assert stale_claims(stale_replica, [b_view]) == {100}
    assert stale_claims(current_replica, [b_view]) == set()
    # The candidate's own view and its failed primary's are not "another primary".
    assert stale_claims(stale_replica, []) == set()


async def test_a_takeover_waits_while_the_replica_credits_its_primary_with_a_moved_slot(monkeypatch):
    """The candidate's view never catches up within the wait: nothing is taken over, the failover is
    retried on a later pass, and an event says why."""
    from cachefleet.control.scheduler import Retry

    monkeypatch.setattr(failover_module, "STALE_VIEW_WAIT", 0.05)
    a1, a2, b1 = "a" * 40, "c" * 40, "b" * 40
    replica, other = FakeAdmin(500), FakeAdmin(0)
    replica.nodes_text = "\n".join([
        f"{a2} 127.0.0.2:6379@16379 myself,slave {a1} 0 0 2 connected",
        f"{a1} 127.0.0.1:6379@16379 master,fail - 0 0 2 connected 0-100",
        f"{b1} 127.0.0.3:6379@16379 master - 0 0 3 connected 101-200",
    ])
    other.nodes_text = f"{b1} 127.0.0.3:6379@16379 myself,master - 0 0 4 connected 100-200"
    ops = FakeOps({"r1": replica, "b": other})
    b_primary = _replica("b")
    group = SimpleNamespace(cluster_enabled=True, group_id="g", clusters=(b_primary,), configuration_endpoint="",
                            node_groups=(SimpleNamespace(primary_cluster_id="b"),),
                            node_group_of=lambda cluster_id: SimpleNamespace(node_group_id="0001"))
    events: list[str] = []
    failover = Failover(ops)
    failover.call_off = lambda group, message, keep_request=False: events.append(message)  # type: ignore[method-assign]
    with pytest.raises(Retry):
        await failover._promote_best(group, [_replica("r1")], _replica("old"))
    assert replica.commands == [] and ops.fenced == []
    assert "credits its old primary with 1 slot(s) another shard serves now (from 100)" in events[0]
    # Once its view has caught up, it takes over.
    replica.nodes_text = replica.nodes_text.replace("0-100", "0-99").replace("101-200", "100-200")
    chosen = await failover._promote_best(group, [_replica("r1")], _replica("old"))
    assert chosen is not None and replica.commands == [("CLUSTER", "FAILOVER", "TAKEOVER")]
