"""Rich renderings of the client's views: tables of groups, shards, nodes, events and metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group as Stack
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

STATUS_STYLES = {
    "available": "green",
    "creating": "yellow",
    "modifying": "yellow",
    "snapshotting": "yellow",
    "migrating": "yellow",
    "copying": "yellow",
    "exporting": "yellow",
    "deleting": "magenta",
    "deleted": "dim",
    "create-failed": "bold red",
}


def status(value: str | None) -> Text:
    return Text(value or "-", style=STATUS_STYLES.get(value or "", "red" if value and "fail" in value else ""))


def _or_dash(value: Any) -> str:
    return "-" if value in (None, "") else str(value)


def overview(items: Sequence[Mapping[str, Any]], region: str) -> RenderableType:
    if not items:
        return Text(f"No replication groups or cache clusters in {region}.")
    table = Table(title=f"Replication groups and cache clusters ({region})", title_justify="left")
    for column in ("Name", "Kind", "Status", "Engine", "Node type", "Cluster mode", "Shards", "Nodes", "Endpoint"):
        table.add_column(column, justify="right" if column in ("Shards", "Nodes") else "left")
    for item in items:
        table.add_row(
            str(item["id"]),
            "replication group" if item["kind"] == "group" else "cache cluster",
            status(item["status"]),
            f"{item['engine']} {_or_dash(item['engine_version'])}",
            _or_dash(item["node_type"]),
            "enabled" if item["cluster_mode"] else "disabled",
            str(item["shards"]) if item["kind"] == "group" else "-",
            str(item["nodes"]),
            _or_dash(item["endpoint"]),
        )
    return table


def security_rows(view: Mapping[str, Any]) -> list[tuple[str, str]]:
    """In-transit encryption, AUTH token and user groups, as the group page shows them (never a secret)."""
    mode = view.get("tls_mode")
    pending = view.get("locks_pending") or {}
    tls = {"required": "required (TLS only)", "preferred": "preferred (TLS on port + 1, plain text on the port)"}.get(
        str(mode), "disabled"
    )
    if pending.get("tls_mode"):
        tls += f" -> {pending['tls_mode']} (applying)"
    auth = "enabled" if view.get("auth_token_enabled") else "disabled"
    if view.get("auth_token_last_modified"):
        auth += f" (last changed {view['auth_token_last_modified']})"
    if pending.get("auth_token"):
        auth += f", {pending['auth_token']}"
    groups = ", ".join(view.get("user_group_ids") or []) or "none"
    if pending.get("user_groups"):
        change = pending["user_groups"]
        groups += " (applying: " + ", ".join([f"+{g}" for g in change["add"]] + [f"-{g}" for g in change["remove"]]) + ")"
    return [("In-transit encryption", tls), ("AUTH token", auth), ("User groups (RBAC)", groups)]


def users(items: Sequence[Mapping[str, Any]]) -> RenderableType:
    table = Table(title="Users", title_justify="left")
    for column in ("User id", "User name", "Status", "Engine", "Access string", "Authentication", "User groups"):
        table.add_column(column)
    for user in items:
        table.add_row(
            str(user["id"]), str(user["name"]), status(user["status"]), _or_dash(user["engine"]),
            _or_dash(user["access_string"]),
            f"{user['authentication']} ({user['passwords']})" if user["authentication"] == "password"
            else _or_dash(user["authentication"]),
            ", ".join(user["user_groups"]) or "-",
        )
    return table


def resource(view: Mapping[str, Any]) -> RenderableType:
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    kind = "Replication group" if view["kind"] == "group" else "Cache cluster"
    header.add_row(kind, Text(str(view["id"]), style="bold cyan"))
    header.add_row("Status", status(view["status"]))
    if view.get("description"):
        header.add_row("Description", str(view["description"]))
    header.add_row("Engine", f"{view['engine']} {_or_dash(view['engine_version'])}")
    header.add_row("Node type", _or_dash(view["node_type"]))
    header.add_row("Cluster mode", "enabled" if view["cluster_mode"] else "disabled")
    if view["kind"] == "group":
        header.add_row("Automatic failover", _or_dash(view.get("automatic_failover")))
        header.add_row("Multi-AZ", _or_dash(view.get("multi_az")))
    for label, value in security_rows(view):
        header.add_row(label, value)
    if view.get("configuration_endpoint"):
        header.add_row("Configuration endpoint", str(view["configuration_endpoint"]))
    if view.get("replication_group_id"):
        header.add_row("Replication group", str(view["replication_group_id"]))
    if view.get("parameter_group"):
        header.add_row("Parameter group", str(view["parameter_group"]))
    upgrade = view.get("upgrade")
    if upgrade:
        header.add_row("Engine upgrade", Text(
            f"to {upgrade['target']}: {upgrade['done']}/{upgrade['total']} nodes ({upgrade['state']})", style="yellow"))
    header.add_row("ARN", _or_dash(view.get("arn")))
    header.add_row("Created", _or_dash(view.get("created")))
    parts: list[RenderableType] = [header]

    if view["shards"]:
        shards = Table(title="Shards", title_justify="left")
        for column in ("Shard", "Status", "Slots", "Primary endpoint", "Reader endpoint", "Nodes"):
            shards.add_column(column)
        for shard in view["shards"]:
            shards.add_row(
                str(shard["id"]),
                status(shard["status"]),
                _or_dash(shard["slots"]),
                _or_dash(shard["primary_endpoint"]),
                _or_dash(shard["reader_endpoint"]),
                str(len(shard["nodes"])),
            )
        parts.append(shards)

    nodes = Table(title="Nodes", title_justify="left")
    for column in ("Cache cluster", "Node", "Shard", "Role", "Status", "Endpoint", "Zone", "Engine version"):
        nodes.add_column(column, no_wrap=column in ("Endpoint", "Status"))
    for node in view["nodes"]:
        version = _or_dash(node.get("engine_version"))
        if node.get("pending_engine_version"):
            version += f" → {node['pending_engine_version']}"
        nodes.add_row(
            str(node["cache_cluster_id"]),
            _or_dash(node["cache_node_id"]),
            _or_dash(node["shard"]),
            Text(_or_dash(node["role"]), style="bold" if node["role"] == "primary" else ""),
            status(node["status"]),
            _or_dash(node["endpoint"]),
            _or_dash(node["zone"]),
            Text(version, style="yellow" if node.get("pending_engine_version") else ""),
        )
    parts.append(nodes)
    if view.get("pending"):
        pending = Table(title="Pending changes", title_justify="left")
        for column in ("Change", "Value", "Where"):
            pending.add_column(column)
        for item in view["pending"]:
            pending.add_row(str(item["what"]), Text(str(item["value"]), style="yellow"), _or_dash(item["where"]))
        parts.append(pending)
    return Stack(*parts)


def events(items: Sequence[Mapping[str, Any]], title: str) -> RenderableType:
    if not items:
        return Text(f"No events {title}.")
    table = Table(title=f"Events {title}", title_justify="left")
    table.add_column("Date (UTC)", no_wrap=True)
    table.add_column("Source")
    table.add_column("Message")
    for event in items:
        table.add_row(str(event["date"]).replace("T", " ")[:19], str(event["source"]), str(event["message"]))
    return table


def snapshots(items: Sequence[Mapping[str, Any]], title: str) -> RenderableType:
    if not items:
        return Text(f"{title}: none.")
    table = Table(title=title, title_justify="left")
    for column in ("Snapshot", "Of", "Status", "Type", "Shards", "Size", "Engine", "Encrypted", "Created (UTC)"):
        table.add_column(column, justify="right" if column in ("Shards", "Size") else "left", no_wrap=True)
    for item in items:
        table.add_row(
            str(item["name"]),
            str(item["of"]),
            status(str(item["status"])),
            str(item["source"]),
            str(item["shards"]),
            f"{item['size_mb']} MB",
            str(item["engine"]),
            str(item.get("kms_key_id") or ("yes" if item.get("encrypted") else "no")),
            _or_dash(str(item["created"]).replace("T", " ").removesuffix("Z") if item.get("created") else None),
        )
    return table


def number(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "Bytes":
        size = float(value)
        for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(size) < 1024 or suffix == "TiB":
                return f"{size:.0f} {suffix}" if suffix == "B" else f"{size:.1f} {suffix}"
            size /= 1024
    if unit == "Percent":
        return f"{value:.1f} %"
    if float(value).is_integer() or abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.2f}"


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    if not values:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(SPARKS[min(len(SPARKS) - 1, int((v - low) / span * (len(SPARKS) - 1)))] for v in values)
