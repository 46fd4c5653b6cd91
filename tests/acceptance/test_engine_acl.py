"""The control plane behind the locks, on every installed engine (Valkey 8.1, Valkey 9.1, Redis 7.0).

Nodes start locked from their first instant: an ACL file (0600) with ``default`` off and the
control-plane user with a per-node random password. The control-plane user can send every
command Cachefleet sends (INFO of every section, CONFIG, CLIENT PAUSE/LIST/KILL, SLOWLOG,
COMMAND DOCS/INFO, REPLICAOF with masteruser/masterauth, the CLUSTER commands, MIGRATE ...
AUTH2 between two cluster nodes, the ACL sync) and nothing else; users synced from
ElastiCache access strings get exactly their rights.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
import redis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from cachefleet.engine import acl
from cachefleet.engine import cluster as engine_cluster
from cachefleet.engine.admin import AdminClient
from cachefleet.engine.files import atomic_write
from cachefleet.monitor.sampler import INFO_COMMAND
from engines import BINARIES, binary_id
from helpers import wait_for

CONTROL = acl.CONTROL_PLANE_USER
WRITER_PASSWORD = "writer-password-0123456789"
READER_PASSWORD = "reader-password-0123456789"
INSPECTOR_PASSWORD = "inspector-password-0123456789"
# Commands no control-plane code path sends, destructive or not: each must be refused.
REFUSED = [
    ("SET", "k", "v"), ("GET", "k"), ("DEL", "k"), ("FLUSHALL",), ("FLUSHDB",), ("KEYS", "*"), ("SCAN", "0"),
    ("SHUTDOWN", "NOSAVE"), ("SHUTDOWN",), ("DEBUG", "SLEEP", "0"), ("CONFIG", "REWRITE"), ("CONFIG", "RESETSTAT"),
    ("SAVE",), ("BGSAVE",), ("BGREWRITEAOF",), ("SWAPDB", "0", "1"), ("EVAL", "return 1", "0"),
    ("SCRIPT", "FLUSH"), ("FUNCTION", "FLUSH"), ("MONITOR",), ("ACL", "SAVE"), ("ACL", "LOAD"),
    ("ACL", "GETUSER", "default"), ("MODULE", "LIST"), ("CLIENT", "NO-EVICT", "on"), ("CLUSTER", "RESET"),
    ("CLUSTER", "FLUSHSLOTS"), ("SUBSCRIBE", "news"), ("PUBLISH", "news", "x"), ("FAILOVER",),
    ("LATENCY", "RESET"), ("MEMORY", "PURGE"), ("SLOWLOG", "RESET"),
]


def locked_engine(start_engine, binary, *, host: int, password: str, cluster: bool = False):
    """A node whose only way in is the control-plane user (plus a test-only inspector for ACL DRYRUN)."""
    directory = Path(tempfile.mkdtemp(prefix="cachefleet-engine-"))
    users = [
        acl.WantedUser("default", "off"),
        acl.control_plane_user(password),
        acl.WantedUser("inspector", "on +acl|dryrun", (acl.password_hash(INSPECTOR_PASSWORD),)),
    ]
    aclfile = atomic_write(directory / "users.acl", "".join(u.acl_line() + "\n" for u in users))
    assert aclfile.stat().st_mode & 0o777 == 0o600
    return start_engine(binary, host=host, directory=directory, cluster=cluster, extra={"aclfile": str(aclfile)})


def client(engine, user: str | None = None, password: str | None = None) -> redis.Redis:
    return redis.Redis(host=engine.address, port=engine.port, username=user, password=password,
                       socket_timeout=5, decode_responses=True)


def control(engine, password: str) -> redis.Redis:
    return client(engine, CONTROL, password)


def admin_for(engine, password: str) -> AdminClient:
    """The admin client, connected as the control-plane user (NodeAccess will do this)."""
    admin = AdminClient(engine.address, engine.port)
    admin._connection = Connection(
        host=engine.address, port=engine.port, username=CONTROL, password=password, socket_connect_timeout=2,
        socket_timeout=5, decode_responses=False, retry=Retry(NoBackoff(), 0), client_name="cachefleet-admin",
        lib_name=None, lib_version=None,
    )
    return admin


def refused(call, *args) -> str:
    """The error a call gets (a refused AUTH is an AuthenticationError, a refused command a ResponseError)."""
    with pytest.raises((redis.ResponseError, redis.AuthenticationError)) as caught:
        call(*args)
    # redis-py turns -NOPERM into NoPermissionError and drops the code from the text.
    return f"{type(caught.value).__name__}: {caught.value}"


def raw_reply(engine, command: bytes) -> bytes:
    """One inline command on a fresh connection that never authenticates."""
    import socket

    with socket.create_connection((engine.address, engine.port), timeout=5) as sock:
        sock.sendall(command + b"\r\n")
        return sock.recv(1024)


def synced_users():
    return [
        acl.WantedUser("default", "off"),
        acl.WantedUser("writer", "on ~* +@all", (acl.password_hash(WRITER_PASSWORD),)),
        acl.WantedUser("reader", "on ~app:* +get", (acl.password_hash(READER_PASSWORD),)),
    ]


async def _raw(engine, password, *command):
    admin = admin_for(engine, password)
    try:
        return await admin.execute(*command)
    finally:
        await admin.close()


async def _sync(engine, password, users, keep=(CONTROL, "inspector")):
    admin = admin_for(engine, password)
    try:
        return await acl.sync(admin, users, keep=keep)
    finally:
        await admin.close()


@pytest.mark.parametrize("binary", BINARIES, ids=binary_id)
def test_control_plane_user_does_its_commands_and_nothing_else(binary, start_engine):
    passwords = {"primary": acl.new_password(), "replica": acl.new_password()}
    primary = locked_engine(start_engine, binary, host=11, password=passwords["primary"])
    replica = locked_engine(start_engine, binary, host=12, password=passwords["replica"])

    # Locked from the first instant: no default user, and a wrong password is refused.
    assert raw_reply(primary, b"PING").startswith(b"-NOAUTH")
    assert "invalid username-password pair" in refused(client(primary, CONTROL, "wrong-password").ping)
    ctl = control(primary, passwords["primary"])
    # requirepass gives the default user a password; the default user stays off.
    ctl.config_set("requirepass", "Requirepass-Token-0123")
    assert "invalid username-password pair" in refused(client(primary, password="Requirepass-Token-0123").ping)

    # Everything the health probe, sampler, log reader, reconciler and failover send.
    assert ctl.ping()
    assert ctl.execute_command(*INFO_COMMAND)
    for section in ("everything", "all", "replication", "memory", "persistence", "commandstats", "keyspace", "cluster"):
        assert ctl.execute_command("INFO", section) is not None
    assert ctl.config_get("maxmemory") == {"maxmemory": str(2**26)}
    ctl.config_set("maxmemory", str(2**27))
    ctl.config_set("bind", f"{primary.address}")
    ctl.client_setname("cachefleet-admin")
    victim = control(primary, passwords["primary"])
    victim.client_setname("to-be-killed")
    listed = {c["name"]: c for c in ctl.client_list()}
    assert listed["to-be-killed"]["user"] == CONTROL
    assert ctl.execute_command("CLIENT", "KILL", "ID", listed["to-be-killed"]["id"]) == 1
    ctl.execute_command("CLIENT", "PAUSE", "100", "WRITE")
    ctl.execute_command("CLIENT", "UNPAUSE")
    assert isinstance(ctl.execute_command("SLOWLOG", "GET", "128"), list)
    assert len(ctl.execute_command("COMMAND")) > 100
    assert ctl.execute_command("COMMAND", "INFO", "get")
    assert asyncio.run(_raw(primary, passwords["primary"], "COMMAND", "DOCS", "get"))  # redis-py's parser trips on it
    assert ctl.command_count() > 100
    pipe = ctl.pipeline(transaction=True)
    pipe.ping()
    pipe.execute_command("INFO", "server")
    assert pipe.execute()[0] is True

    # Nothing else, destructive or not.
    for command in REFUSED:
        message = refused(ctl.execute_command, *command)
        # DEBUG is refused earlier by enable-debug-command; ACL DRYRUN below checks its rule.
        assert "NoPermissionError" in message or command[0] == "DEBUG", (command, message)

    # ElastiCache users as engine ACL users, synced declaratively on both nodes.
    for engine, name in ((primary, "primary"), (replica, "replica")):
        done = asyncio.run(_sync(engine, passwords[name], synced_users()))
        # requirepass gave the primary's default user a password: the sync takes it away again.
        assert {u.name for u, _ in done.setusers} == {"writer", "reader"} | ({"default"} if name == "primary" else set())
        assert not done.delusers
        assert asyncio.run(_sync(engine, passwords[name], synced_users())).empty  # converged: nothing to do
        listed_users = {line.split()[1] for line in control(engine, passwords[name]).execute_command("ACL", "LIST")}
        assert listed_users == {"default", CONTROL, "inspector", "writer", "reader"}  # no scratch users left

    # Replication authenticates as the control-plane user of the primary.
    rctl = control(replica, passwords["replica"])
    rctl.config_set("masteruser", CONTROL)
    rctl.config_set("masterauth", passwords["primary"])
    rctl.execute_command("REPLICAOF", primary.address, str(primary.port))
    wait_for(lambda: rctl.info("replication").get("master_link_status") == "up", timeout=20, what="replication link up")
    writer = client(primary, "writer", WRITER_PASSWORD)
    writer.set("app:1", "one")
    writer.set("other:1", "two")
    assert writer.wait(1, 5000) == 1
    reader = client(replica, "reader", READER_PASSWORD)
    assert reader.get("app:1") == "one"
    assert "NoPermissionError" in refused(reader.get, "other:1")
    assert "NoPermissionError" in refused(client(primary, "reader", READER_PASSWORD).set, "app:1", "x")
    rctl.execute_command("REPLICAOF", "NO", "ONE")
    assert rctl.info("replication")["role"] == "master"

    # A changed access string and a removed user take effect; the control user survives.
    narrowed = [u if u.name != "reader" else acl.WantedUser("reader", "on ~app:* +get +set", u.password_hashes)
                for u in synced_users() if u.name != "writer"]
    done = asyncio.run(_sync(primary, passwords["primary"], narrowed, keep=(CONTROL,)))
    assert [(u.name, why) for u, why in done.setusers] == [("reader", "access differs")]
    assert done.delusers == ("inspector", "writer")
    assert client(primary, "reader", READER_PASSWORD).set("app:2", "x")
    assert "invalid username-password pair" in refused(client(primary, "writer", WRITER_PASSWORD).ping)
    assert ctl.ping()


def _cluster_ready(ctl, nodes: int) -> bool:
    info = dict(line.split(":", 1) for line in ctl.execute_command("CLUSTER", "INFO").splitlines() if ":" in line)
    return info.get("cluster_known_nodes") == str(nodes) and info.get("cluster_state") == "ok"


def _myid(ctl) -> str:
    return next(line.split()[0] for line in ctl.execute_command("CLUSTER", "NODES").splitlines() if "myself" in line)


@pytest.mark.parametrize("binary", BINARIES, ids=binary_id)
def test_control_plane_user_runs_a_cluster_and_migrates_with_auth2(binary, start_engine):
    """Three locked cluster-mode nodes: MEET, slots, a replica by CLUSTER REPLICATE with
    masteruser/masterauth, MIGRATE ... AUTH2 of a slot's keys to the other primary, and a
    CLUSTER FAILOVER TAKEOVER, all as the control-plane user."""
    passwords = [acl.new_password() for _ in range(3)]
    nodes = [locked_engine(start_engine, binary, host=21 + i, password=p, cluster=True) for i, p in enumerate(passwords)]
    ctls = [control(n, p) for n, p in zip(nodes, passwords, strict=True)]
    for ctl in ctls:
        ctl.config_set("cluster-node-timeout", "1000")
    for engine in nodes[1:]:
        ctls[0].execute_command("CLUSTER", "MEET", engine.address, str(engine.port), str(engine.port + 10000))
    ids = [_myid(ctl) for ctl in ctls]
    ctls[0].execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "8191")
    ctls[1].execute_command("CLUSTER", "ADDSLOTSRANGE", "8192", "16383")
    for ctl in ctls:
        wait_for(lambda ctl=ctl: _cluster_ready(ctl, 3), timeout=30, what="cluster formed")
    # The third node replicates the first: its link authenticates with the first node's password.
    ctls[2].config_set("masteruser", CONTROL)
    ctls[2].config_set("masterauth", passwords[0])
    wait_for(lambda: ids[0] in ctls[2].execute_command("CLUSTER", "NODES"), what="replica knows its primary")
    ctls[2].execute_command("CLUSTER", "REPLICATE", ids[0])
    wait_for(lambda: ctls[2].info("replication").get("master_link_status") == "up", timeout=20, what="replica link up")

    for engine, password in zip(nodes, passwords, strict=True):
        asyncio.run(_sync(engine, password, synced_users()))
    writer = client(nodes[0], "writer", WRITER_PASSWORD)
    keys = [f"app:{{b}}:{n}" for n in range(5)]  # one hash tag: one slot (3300), owned by the first node
    slot = writer.execute_command("CLUSTER", "KEYSLOT", keys[0])
    assert slot <= 8191
    for n, key in enumerate(keys):
        writer.set(key, f"value-{n}")
    assert writer.wait(1, 5000) == 1

    # Slot migration as engine/cluster.py does it, with AUTH2 for the locked target.
    ctls[1].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[0])
    ctls[0].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[1])
    listed = ctls[0].execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
    assert sorted(listed) == sorted(keys)
    without_auth = refused(ctls[0].execute_command, "MIGRATE", nodes[1].address, nodes[1].port, "", 0, 5000,
                           "REPLACE", "KEYS", *listed)
    # A locked target refuses the keys of a MIGRATE without AUTH2; they stay where they were.
    assert "NOAUTH" in without_auth, without_auth
    assert sorted(ctls[0].execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)) == sorted(keys)
    assert ctls[0].execute_command("MIGRATE", nodes[1].address, nodes[1].port, "", 0, 5000, "REPLACE",
                                   "AUTH2", CONTROL, passwords[1], "KEYS", *listed) == "OK"
    for ctl in ctls[1::-1]:
        ctl.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[1])
    moved = client(nodes[1], "writer", WRITER_PASSWORD)
    assert [moved.get(k) for k in keys] == [f"value-{n}" for n in range(len(keys))]
    assert ctls[0].execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000) == []

    # A takeover by the replica, as control/failover.py does it.
    ctls[2].execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
    wait_for(lambda: ctls[2].info("replication")["role"] == "master", timeout=20, what="takeover")

    # The commands not run for real above, checked by the engine's own ACL DRYRUN.
    inspector = client(nodes[0], "inspector", INSPECTOR_PASSWORD)
    for command in (("CLUSTER", "FORGET", ids[2]), ("CLUSTER", "DELSLOTSRANGE", "0", "1"), ("RESTORE", "k", "0", "x"),
                    ("RESTORE-ASKING", "k", "0", "x"), ("SELECT", "0"), ("PSYNC", "?", "-1"), ("REPLCONF", "ack", "0"),
                    ("SYNC",), ("ACL", "LIST"), ("ACL", "SETUSER", "x"), ("ACL", "DELUSER", "x")):
        assert inspector.execute_command("ACL", "DRYRUN", CONTROL, *command) == "OK", command
    for command in REFUSED:
        assert inspector.execute_command("ACL", "DRYRUN", CONTROL, *command) != "OK", command


def test_the_control_plane_commands_are_the_ones_cachefleet_sends():
    """Every command literal in the code that talks to engines is in the control-plane rule:
    a new command added without a rule fails here, not in production behind a lock."""
    import re

    root = Path(__file__).resolve().parents[2] / "src" / "cachefleet"
    sources = ["engine/admin.py", "engine/cluster.py", "engine/resp.py", "engine/acl.py", "engine/access.py",
               "control/reconciler.py", "control/nodes.py", "control/health.py", "control/warm.py", "control/locks.py",
               "monitor/sampler.py", "monitor/logs.py"]
    sources += [f"control/workflows/{p.name}" for p in sorted((root / "control" / "workflows").glob("*.py"))]
    allowed = {c for c, _ in acl.CONTROL_PLANE_COMMANDS + acl.ATOMIC_SLOT_MIGRATION_COMMANDS}
    sent = set()
    for name in sources:
        text = (root / name).read_text()
        for match in re.finditer(r'\(\s*"([A-Z][A-Z-]+)"(?:\s*,\s*"([A-Z][A-Z-]+)")?', text):
            command, sub = match.group(1).lower(), (match.group(2) or "").lower()
            if command in {"cluster", "config", "client", "acl", "slowlog", "shutdown"} and sub:
                sent.add(f"{command}|{sub}")
            else:
                sent.add(command)
        sent.update(word.lower() for word in re.findall(r'b"([A-Z]+)[ \\]', text))  # the probe's inline commands
    sent -= {"replicaof|no", "no"}  # REPLICAOF NO ONE is REPLICAOF
    sent -= {"auth"}  # AUTH needs no rule: every connection may log in
    sent -= {"busy"}  # not a command: the BUSY reply parameters.py recognises
    assert sent - allowed == set(), f"commands sent without an ACL rule: {sorted(sent - allowed)}"
    assert {"info", "ping", "migrate", "cluster|setslot", "slowlog|get", "client|pause"} <= sent



ATOMIC_BINARIES = [b for b in BINARIES if engine_cluster.atomic_slot_migration(b.release.engine, b.release.version)]


def locked_atomic_engine(start_engine, binary, *, host: int, password: str):
    """A locked cluster-mode node with the users a build with atomic slot migration gets (locks.py)."""
    directory = Path(tempfile.mkdtemp(prefix="cachefleet-engine-"))
    users = [
        acl.WantedUser("default", "off"),
        acl.control_plane_user(password, atomic_slots=True),
        acl.slot_import_user(password),
        acl.WantedUser("inspector", "on +acl|dryrun", (acl.password_hash(INSPECTOR_PASSWORD),)),
        acl.WantedUser("writer", "on ~* +@all", (acl.password_hash(WRITER_PASSWORD),)),
    ]
    aclfile = atomic_write(directory / "users.acl", "".join(u.acl_line() + "\n" for u in users))
    return start_engine(binary, host=host, directory=directory, cluster=True,
                        extra={"aclfile": str(aclfile), "masteruser": CONTROL, "cluster-allow-replica-migration": "no"})


@pytest.mark.skipif(not ATOMIC_BINARIES, reason="no engine build with atomic slot migration is installed")
@pytest.mark.parametrize("binary", ATOMIC_BINARIES, ids=binary_id)
def test_atomic_slot_migration_between_locked_nodes(binary, start_engine):
    """Valkey 9+: the source logs in to the target as the slot-import user with the target's own
    password and hands every slot over with its keys (every type, TTLs) and its replica's copy; a
    source logged in with a wrong password fails the job and keeps its keys. The slot-import user
    may write keys and nothing dangerous; the control-plane user still writes no key."""
    passwords = [acl.new_password() for _ in range(3)]
    nodes = [locked_atomic_engine(start_engine, binary, host=41 + i, password=p) for i, p in enumerate(passwords)]
    ctls = [control(n, p) for n, p in zip(nodes, passwords, strict=True)]
    for ctl in ctls:
        ctl.config_set("cluster-node-timeout", "1000")
    ctls[0].execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
    for engine in nodes[1:]:
        ctls[0].execute_command("CLUSTER", "MEET", engine.address, str(engine.port), str(engine.port + 10000))
    wait_for(lambda: all(_cluster_ready(ctl, 3) for ctl in ctls), timeout=20, what="three nodes meet")
    ids = [_myid(ctl) for ctl in ctls]
    ctls[2].config_set("masterauth", passwords[1])
    ctls[2].execute_command("CLUSTER", "REPLICATE", ids[1])
    writer = client(nodes[0], "writer", WRITER_PASSWORD)
    pipe = writer.pipeline(transaction=False)
    for n in range(2000):
        pipe.set(f"s:{n}", n)
    pipe.rpush("{t}list", 1, 2, 3).hset("{t}hash", "f", "v").sadd("{t}set", "m").zadd("{t}zset", {"m": 2})
    pipe.xadd("{t}stream", {"f": "v"}).pfadd("{t}hll", "a").set("{t}ttl", "x", ex=1000)
    pipe.execute()

    async def move(password: str) -> None:
        admin = admin_for(nodes[0], passwords[0])
        try:
            await admin.execute("CONFIG", "SET", "masteruser", acl.SLOT_IMPORT_USER, "masterauth", password)
            await engine_cluster.migrate_slots_atomically(range(8192, 16384), source=admin, target_id=ids[1])
        finally:
            await admin.close()

    with pytest.raises(engine_cluster.SlotMigrationFailed):
        asyncio.run(move("a-wrong-password-for-the-target"))
    assert writer.dbsize() == 2007
    asyncio.run(move(passwords[1]))
    target = client(nodes[1], "writer", WRITER_PASSWORD)
    moved = {f"s:{n}" for n in range(2000) if writer.execute_command("CLUSTER", "KEYSLOT", f"s:{n}") >= 8192}
    tagged = writer.execute_command("CLUSTER", "KEYSLOT", "{t}") >= 8192
    wait_for(lambda: target.dbsize() == len(moved) + 7 * tagged and writer.dbsize() == 2007 - target.dbsize(),
             timeout=10, what="the source to drop the keys it handed over")
    assert all(target.get(k) == k[2:] for k in sorted(moved)[:200])
    if tagged:
        assert target.lrange("{t}list", 0, -1) == ["1", "2", "3"] and target.xlen("{t}stream") == 1
        assert 0 < target.ttl("{t}ttl") <= 1000 and target.pfcount("{t}hll") == 1
    replica = client(nodes[2], "writer", WRITER_PASSWORD)
    wait_for(lambda: replica.dbsize() == target.dbsize(), timeout=10, what="the target's replica to have the keys")
    source = next(line for line in ctls[0].execute_command("CLUSTER", "NODES").splitlines() if "myself" in line)
    assert "master" in source and source.split()[8:] == ["0-8191"]  # half its slots gone, still a primary

    inspector = client(nodes[1], "inspector", INSPECTOR_PASSWORD)
    for command in (("SET", "k", "v"), ("DEL", "k"), ("PEXPIREAT", "k", "1"), ("CLUSTER", "SYNCSLOTS", "ACK")):
        assert inspector.execute_command("ACL", "DRYRUN", acl.SLOT_IMPORT_USER, *command) == "OK", command
    for command in (("GET", "k"), ("FLUSHALL",), ("FLUSHDB",), ("RESTORE", "k", "0", "x"), ("CONFIG", "SET", "port", "0"),
                    ("KEYS", "*"), ("CLUSTER", "RESET"), ("SHUTDOWN", "NOSAVE")):
        assert inspector.execute_command("ACL", "DRYRUN", acl.SLOT_IMPORT_USER, *command) != "OK", command
    for command in (("CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", "0", "1", "NODE", ids[0]), ("CLUSTER", "GETSLOTMIGRATIONS")):
        assert inspector.execute_command("ACL", "DRYRUN", CONTROL, *command) == "OK", command
    assert inspector.execute_command("ACL", "DRYRUN", CONTROL, "SET", "k", "v") != "OK"
