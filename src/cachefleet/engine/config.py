"""Renders an engine's configuration file from what a node is and does.

Defaults follow ElastiCache's default parameter groups: no persistence, ``volatile-lru``
eviction, ``tcp-keepalive 300``. Replication is made fast to start and to catch up: see
the comments on the replication settings below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class NodeConfig:
    """What a node's engine configuration is rendered from."""

    address: str
    port: int
    directory: Path
    maxmemory: int
    replica_of: tuple[str, int] | None = None
    cluster: bool = False
    label: str = ""
    maxmemory_policy: str = "volatile-lru"
    extra: dict[str, str] = field(default_factory=dict)


def cluster_bus_port(port: int) -> int:
    """The cluster bus port of a node listening on ``port``.

    The engines' default is ``port + 10000``, which does not exist above 55535; ElastiCache
    users pick any client port and never see the bus, so such nodes use ``port - 10000``
    (each node has an address of its own, so neither can collide with another node's).
    """
    return port + 10000 if port + 10000 <= 65535 else port - 10000


def _quote(value: str) -> str:
    if value == "" or any(ch in value for ch in ' "\\'):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def render(config: NodeConfig) -> str:
    directory = config.directory.resolve()
    settings: list[tuple[str, str]] = [
        ("bind", config.address),
        ("port", str(config.port)),
        ("protected-mode", "no"),
        ("daemonize", "no"),
        # The command line keeps naming the config file: that is how a restarted control
        # plane finds (and adopts) the processes of its data directory.
        ("set-proc-title", "no"),
        ("dir", str(directory / "data")),
        ("logfile", str(directory / "engine.log")),
        ("pidfile", str(directory / "engine.pid")),
        ("save", ""),
        ("appendonly", "no"),
        ("maxmemory", str(config.maxmemory)),
        ("maxmemory-policy", config.maxmemory_policy),
        ("tcp-keepalive", "300"),
        ("timeout", "0"),
        # Disk-based full sync: with diskless sync the primary starts streaming to a new
        # replica only on its first REPLCONF ACK, which often comes a full second later
        # (measured; see BENCHMARKS.md, "Create a 3-node replication group"). The sync file
        # is deleted once sent.
        ("repl-diskless-sync", "no"),
        ("rdb-del-sync-files", "yes"),
        # An empty replica loads straight from the socket: no RDB file, no waiting for
        # the next cron tick to notice that the file is complete (Valkey 9 waits ~1 s).
        ("repl-diskless-load", "on-empty-db"),
        # Every node has its own address: say so to peers, and connect from it.
        ("replica-announce-ip", config.address),
        ("bind-source-addr", config.address),
        ("repl-backlog-size", "1mb"),
        ("replica-read-only", "yes"),
        # ElastiCache's slow log defaults (what log delivery reads).
        ("slowlog-log-slower-than", "10000"),
        ("slowlog-max-len", "128"),
    ]
    if config.cluster:
        settings += [
            ("cluster-enabled", "yes"),
            ("cluster-config-file", str(directory / "data" / "nodes.conf")),
            ("cluster-port", str(cluster_bus_port(config.port))),
            # Peers must see this node under its own address, not 127.0.0.1.
            ("cluster-announce-ip", config.address),
            ("cluster-node-timeout", "15000"),
            # Cachefleet decides failovers (and fences first); the cluster must not race it.
            ("cluster-replica-no-failover", "yes"),
            ("cluster-require-full-coverage", "no"),
            ("cluster-allow-replica-migration", "no"),
        ]
    if config.replica_of is not None:
        host, port = config.replica_of
        settings.append(("replicaof", f"{host} {port}"))
    for key, value in config.extra.items():
        settings.append((key, value))
    lines = ["# Written by Cachefleet; changes are overwritten when the node is (re)started."]
    if config.label:
        lines.append(f"# {config.label}")
    for key, value in settings:
        if key == "replicaof":
            lines.append(f"{key} {value}")
        else:
            lines.append(f"{key} {_quote(value)}")
    return "\n".join(lines) + "\n"
