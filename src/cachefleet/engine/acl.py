"""Engine ACL users: rendering ElastiCache users as ``ACL SETUSER``, reading ``ACL LIST``, the
plan that brings a node's users to the wanted ones, and Cachefleet's own control-plane user.

ElastiCache access strings are ACL syntax already ("on ~app:* +get"); a user is rendered as
``ACL SETUSER <name> reset <access string> #<sha256>...`` (or ``nopass``), so the result
never depends on what the user was before, and passwords reach the engine only as the
SHA-256 hashes it stores anyway (``#<hex>``), never in plain text.

Comparing a wanted user with the engine's is exact only in the engine's own words: Redis 7.0
rewrites command rules (``+@read +@hash -hset`` comes back as ``+@read +hincrby ...``,
``+GET +set`` as ``+set +get``), Valkey keeps them as given. So the sync renders each wanted
access string once on the node itself, on a scratch user that is ``off`` and has no
password, reads the engine's line back, and compares lines (``render_on_engine``). The plan
itself (``plan``) is pure.

The control-plane user (``CONTROL_PLANE_USER``) may run exactly the commands Cachefleet
sends to engines (``CONTROL_PLANE_COMMANDS``, each with where it is sent from), on every
key (MIGRATE and RESTORE move any key), on no pub/sub channel.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from cachefleet.domain.credentials import (
    CONTROL_PLANE_USER,
    DEFAULT_USER_NAME,
    RESERVED_USER_PREFIX,
    SLOT_IMPORT_USER,
)
from cachefleet.engine.admin import AdminClient, EngineError

__all__ = [
    "CONTROL_PLANE_COMMANDS",
    "CONTROL_PLANE_USER",
    "SLOT_IMPORT_USER",
    "EngineUser",
    "SyncPlan",
    "WantedUser",
    "control_plane_user",
    "slot_import_user",
    "new_password",
    "parse_acl_list",
    "password_hash",
    "plan",
    "render_on_engine",
    "sync",
]

PROBE_PREFIX = f"{RESERVED_USER_PREFIX}probe-"

# Every command the control plane sends to an engine, and who sends it. Subcommands are
# named one by one: "+cluster" would allow CLUSTER RESET and FLUSHSLOTS, "+config" CONFIG
# REWRITE, "+client" CLIENT NO-EVICT and friends.
CONTROL_PLANE_COMMANDS: tuple[tuple[str, str], ...] = (
    ("ping", "health probe (control/health.py), admin client ping (engine/admin.py)"),
    ("info", "health probe INFO replication, sampler INFO <9 sections> (monitor/sampler.py), "
             "reconciler/failover INFO replication|memory|persistence, drain INFO commandstats"),
    ("config|get", "admin client: bind, maxmemory (engine/admin.py)"),
    ("config|set", "bind (endpoints), maxmemory, cluster-node-timeout; TLS certificate renewal; "
                   "masteruser/masterauth/requirepass"),
    ("client|setname", "admin client (cachefleet-admin), sampler and log reader (cachefleet-monitor)"),
    ("client|pause", "planned failover: CLIENT PAUSE <ms> WRITE (control/failover.py)"),
    ("client|unpause", "planned failover (control/failover.py)"),
    ("client|list", "finding the connections of a removed user or of a fenced primary"),
    ("client|kill", "closing the connections of a removed user or of a fenced primary"),
    ("replicaof", "reconciler and failover: REPLICAOF host port / NO ONE"),
    ("cluster|nodes", "cluster view (engine/cluster.py)"),
    ("cluster|info", "cluster formation (control/sharded.py)"),
    ("cluster|slots", "every member in what clients see before it is available (control/sharded.py)"),
    ("cluster|meet", "cluster formation (control/sharded.py)"),
    ("cluster|replicate", "cluster replicas (control/sharded.py)"),
    ("cluster|addslotsrange", "initial slots, warm nodes (engine/cluster.py, control/sharded.py, control/warm.py)"),
    ("cluster|delslotsrange", "initial slots (control/sharded.py)"),
    ("cluster|setslot", "slot migration IMPORTING/MIGRATING/NODE (engine/cluster.py)"),
    ("cluster|getkeysinslot", "slot migration (engine/cluster.py)"),
    ("cluster|forget", "removing nodes and strangers (control/sharded.py)"),
    ("cluster|failover", "cluster-mode failover: CLUSTER FAILOVER TAKEOVER (control/failover.py)"),
    ("multi", "initial slot claim in one transaction (control/sharded.py)"),
    ("exec", "initial slot claim in one transaction (control/sharded.py)"),
    ("migrate", "slot migration MIGRATE ... AUTH2 ... KEYS (engine/cluster.py), on the source"),
    ("restore-asking", "what MIGRATE sends to the target in cluster mode"),
    ("restore", "what MIGRATE sends to the target outside cluster mode"),
    ("select", "what MIGRATE sends to the target before RESTORE (SELECT 0)"),
    ("slowlog|get", "slow-log delivery (monitor/logs.py)"),
    ("command", "command classification COMMAND / COMMAND INFO / COMMAND DOCS (monitor/sampler.py)"),
    ("psync", "replication: a replica's link to its primary authenticates as this user (masteruser)"),
    ("replconf", "replication (masteruser)"),
    ("sync", "replication fallback of old replicas (masteruser)"),
    ("acl|list", "user sync (engine/acl.py)"),
    ("acl|setuser", "user sync (engine/acl.py)"),
    ("acl|deluser", "user sync (engine/acl.py)"),
    # A first-argument rule: SHUTDOWN SAVE only (SHUTDOWN and SHUTDOWN NOSAVE, which drop the data, are
    # refused; measured on Redis OSS 7.0, Valkey 8.1 and 9.1).
    ("shutdown|save", "engine upgrade of a node without replicas: SHUTDOWN SAVE, then the new build loads the file "
                 "(control/nodes.py)"),
)


# Only on builds with atomic slot migration (Valkey 9+): an engine without the subcommand refuses
# the whole ACL line ("Unknown command or category name in ACL", Redis OSS 7.0).
ATOMIC_SLOT_MIGRATION_COMMANDS: tuple[tuple[str, str], ...] = (
    ("cluster|migrateslots", "atomic slot migration on the source (engine/cluster.py)"),
    ("cluster|getslotmigrations", "atomic slot migration progress (engine/cluster.py)"),
    ("cluster|countkeysinslot", "cutting an atomic slot migration into jobs of a bounded key count (engine/cluster.py)"),
)
# What a target applies as SLOT_IMPORT_USER: the handshake, then the slots' keys as write commands
# and the writes streamed after them (measured on Valkey 9.1: strings, lists, hashes, sets, sorted
# sets, streams, HyperLogLogs and TTLs). Nothing dangerous (no FLUSHALL, no RESTORE), no reads.
SLOT_IMPORT_RULES = ("on", "~*", "resetchannels", "-@all", "+@write", "-@dangerous", "+cluster|syncslots",
                     "+ping", "+select", "+multi", "+exec")


def new_password() -> str:
    """A random password for a node's control-plane user (256 bits)."""
    return secrets.token_urlsafe(32)


def password_hash(password: str) -> str:
    """The SHA-256 hex the engine stores for a password (``#<hex>`` in ACL rules)."""
    return hashlib.sha256(password.encode()).hexdigest()


def control_plane_rules(*, atomic_slots: bool = False) -> tuple[str, ...]:
    """The ACL rules of the control-plane user, without its password (``atomic_slots``: the
    build has atomic slot migration)."""
    commands = CONTROL_PLANE_COMMANDS + (ATOMIC_SLOT_MIGRATION_COMMANDS if atomic_slots else ())
    return ("on", "~*", "resetchannels", "-@all", *(f"+{command}" for command, _ in commands))


@dataclass(frozen=True)
class WantedUser:
    """A user as it should be on a node: its name, access string, and password hashes
    (hex; empty with ``nopass`` for a no-password-required user)."""

    name: str
    access_string: str
    password_hashes: tuple[str, ...] = field(default=(), repr=False)
    nopass: bool = False

    def rules(self) -> tuple[str, ...]:
        return tuple(_split(self.access_string))

    def setuser(self) -> tuple[str, ...]:
        secrets_rules = ("nopass",) if self.nopass else tuple(f"#{h}" for h in self.password_hashes)
        return ("ACL", "SETUSER", self.name, "reset", *self.rules(), *secrets_rules)

    def acl_line(self) -> str:
        """This user as a line of an ACL file (``aclfile``): a node starts with it in place."""
        secrets_rules = ["nopass"] if self.nopass else [f"#{h}" for h in self.password_hashes]
        return " ".join(["user", self.name, "reset", *self.rules(), *secrets_rules])


def control_plane_user(password: str, *, atomic_slots: bool = False) -> WantedUser:
    return WantedUser(CONTROL_PLANE_USER, " ".join(control_plane_rules(atomic_slots=atomic_slots)), (password_hash(password),))


def slot_import_user(password: str) -> WantedUser:
    """The user a source logs in to this node as to hand it slots (its password: the node's control-plane password)."""
    return WantedUser(SLOT_IMPORT_USER, " ".join(SLOT_IMPORT_RULES), (password_hash(password),))


def _split(access_string: str) -> list[str]:
    """ACL words, with a selector ``( ... )`` kept as one word (the engine takes it so)."""
    words: list[str] = []
    depth = 0
    current = ""
    for ch in access_string:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch.isspace() and depth <= 0:
            if current:
                words.append(current)
            current = ""
        else:
            current += ch
    if current:
        words.append(current)
    return words


@dataclass(frozen=True)
class EngineUser:
    """One line of ``ACL LIST``: ``user <name> on|off [nopass] [sanitize-payload] #<hash>... <rules>``."""

    name: str
    enabled: bool
    nopass: bool
    password_hashes: frozenset[str] = field(repr=False)
    rules: str  # the rest, in the engine's words and order ("~app:* resetchannels -@all +get")

    @classmethod
    def parse(cls, line: str) -> EngineUser:
        words = line.split(" ")
        if len(words) < 3 or words[0] != "user":
            raise ValueError(f"not an ACL LIST line: {line[:40]!r}")
        name = words[1]
        enabled = False
        nopass = False
        hashes: set[str] = set()
        rest: list[str] = []
        for word in words[2:]:
            if word in ("on", "off"):
                enabled = word == "on"
            elif word == "nopass":
                nopass = True
            elif word == "sanitize-payload":
                continue  # Valkey 8 and Redis 7 print it, Valkey 9 does not; ``reset`` sets it everywhere
            elif word.startswith("#") and len(word) == 65:
                hashes.add(word[1:])
            else:
                rest.append(word)
        return cls(name=name, enabled=enabled, nopass=nopass, password_hashes=frozenset(hashes), rules=" ".join(rest))

    def same_access(self, other: EngineUser) -> bool:
        return (self.enabled, self.rules) == (other.enabled, other.rules)


def parse_acl_list(reply: Iterable[str | bytes]) -> dict[str, EngineUser]:
    users = {}
    for raw in reply:
        line = raw.decode() if isinstance(raw, bytes) else raw
        user = EngineUser.parse(line)
        users[user.name] = user
    return users


@dataclass(frozen=True)
class SyncPlan:
    """What to send to a node so that its users are the wanted ones; each step with its reason."""

    setusers: tuple[tuple[WantedUser, str], ...] = ()
    delusers: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.setusers and not self.delusers

    def commands(self) -> list[tuple[str, ...]]:
        commands = [user.setuser() for user, _ in self.setusers]
        if self.delusers:
            # One DELUSER for all: the engine closes their connections at once.
            commands.append(("ACL", "DELUSER", *self.delusers))
        return commands


def plan(
    wanted: Sequence[WantedUser],
    current: Mapping[str, EngineUser],
    *,
    rendered: Mapping[str, EngineUser] | None = None,
    keep: Iterable[str] = (CONTROL_PLANE_USER,),
) -> SyncPlan:
    """The steps from ``current`` (ACL LIST) to ``wanted``. ``rendered`` is the engine's own
    rendering of each wanted access string (``render_on_engine``); a user without one is
    re-applied, never assumed equal. Users neither wanted nor kept are deleted, except
    ``default``, which the engine cannot delete (a group without a default user of its own
    leaves it as it is). Scratch users of an interrupted sync are deleted too."""
    kept = set(keep)
    rendered = rendered or {}
    setusers: list[tuple[WantedUser, str]] = []
    for user in wanted:
        have = current.get(user.name)
        if have is None:
            setusers.append((user, "missing"))
            continue
        if user.nopass != have.nopass or frozenset(user.password_hashes) != have.password_hashes:
            setusers.append((user, "passwords differ"))
            continue
        expected = rendered.get(user.name)
        if expected is None:
            setusers.append((user, "access string not rendered on the engine"))
        elif not expected.same_access(have):
            setusers.append((user, "access differs"))
    wanted_names = {user.name for user in wanted}
    delusers = tuple(
        sorted(
            name
            for name in current
            if name not in wanted_names and name not in kept and name != DEFAULT_USER_NAME
        )
    )
    return SyncPlan(tuple(setusers), delusers)


async def render_on_engine(admin: AdminClient, wanted: Sequence[WantedUser]) -> dict[str, EngineUser]:
    """The engine's own words for each wanted access string, from scratch users that are
    ``off`` and passwordless (nobody can log in as them), deleted in the same round trip."""
    if not wanted:
        return {}
    probes = [f"{PROBE_PREFIX}{i}" for i in range(len(wanted))]
    commands: list[tuple[str, ...]] = [
        ("ACL", "SETUSER", probe, "reset", *user.rules()) for probe, user in zip(probes, wanted, strict=True)
    ]
    commands.append(("ACL", "LIST"))
    commands.append(("ACL", "DELUSER", *probes))
    replies = await admin.pipeline(commands)
    for user, reply in zip(wanted, replies, strict=False):
        if isinstance(reply, ResponseError):
            raise EngineError(f"{admin.address}:{admin.port}: the access string of user {user.name} is refused: {reply}")
    listed = parse_acl_list(_lines(replies[-2]))
    rendered = {}
    for probe, user in zip(probes, wanted, strict=True):
        engine_user = listed[probe]
        rendered[user.name] = EngineUser(
            name=user.name,
            enabled=engine_user.enabled,
            nopass=user.nopass,
            password_hashes=frozenset(user.password_hashes),
            rules=engine_user.rules,
        )
    return rendered


def _lines(reply: Any) -> list[str]:
    if isinstance(reply, ResponseError):
        raise EngineError(f"ACL LIST failed: {reply}")
    return [line.decode() if isinstance(line, bytes) else str(line) for line in reply]


async def sync(admin: AdminClient, wanted: Sequence[WantedUser], *, keep: Iterable[str] = (CONTROL_PLANE_USER,)) -> SyncPlan:
    """Brings the node's users to ``wanted`` (idempotent); returns what it did. Declarative:
    every user that is not wanted, kept, or ``default`` is deleted (scratch users of an
    interrupted sync included)."""
    rendered = await render_on_engine(admin, wanted)
    current = parse_acl_list(_lines(await admin.execute("ACL", "LIST")))
    steps = plan(wanted, current, rendered=rendered, keep=keep)
    if steps.empty:
        return steps
    replies = await admin.pipeline(steps.commands())
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise EngineError(f"{admin.address}:{admin.port}: user sync failed: {reply}")
    return steps
