"""``cachefleet params``: parameter groups from the command line (list, show, set, reset, create,
delete), as ElastiCache API calls through ``cachefleet.client.Fleet``."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from cachefleet.cli.commands import err, fleet, out
from cachefleet.cli.output import output_option

APPLY_STYLES = {"in-sync": "green", "applying": "yellow", "pending-reboot": "bold yellow"}


def _status(value: str) -> Text:
    return Text(value, style=APPLY_STYLES.get(value, ""))


def _users(users: Sequence[dict[str, Any]]) -> str:
    if not users:
        return "-"
    shown = [u["cache_cluster_id"] + ("" if u["status"] == "in-sync" else f" ({u['status']})") for u in users[:4]]
    return ", ".join(shown) + (f" +{len(users) - 4}" if len(users) > 4 else "")


@click.group()
def params() -> None:
    """Parameter groups: list them, show and change their parameters.

    Dynamic parameters reach every node of every cluster using the group at once; static ones
    (ChangeType requires-reboot) wait until each node is rebooted (cachefleet shows
    pending-reboot meanwhile).
    """


@params.command("list")
@output_option("the groups")
def list_groups(as_json: bool) -> None:
    """Every parameter group, the defaults included, and the clusters using each."""
    groups = fleet().parameter_groups()
    if as_json:
        click.echo(json.dumps(groups, indent=2))
        return
    table = Table(title="Parameter groups", title_justify="left")
    for column in ("Name", "Family", "Description", "Used by"):
        table.add_column(column)
    for group in groups:
        name = Text(group["name"], style="dim" if group["default"] else "bold")
        table.add_row(name, group["family"], group["description"], _users(group["users"]))
    out.print(table)


@params.command()
@click.argument("group")
@click.option("--user", "user_only", is_flag=True, help="Only the parameters set in this group (Source user).")
@output_option("the group and its parameters")
def show(group: str, user_only: bool, as_json: bool) -> None:
    """A group's parameters (values, sources, how they change) and the clusters using it."""
    found = fleet().parameter_group(group, source="user" if user_only else None)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    table = Table(title=f"{found['name']} ({found['family']}): {found['description']}", title_justify="left")
    for column in ("Parameter", "Value", "Source", "Change type", "Modifiable", "Allowed values"):
        table.add_column(column, overflow="fold")
    for parameter in found["parameters"]:
        value = parameter["value"]
        table.add_row(
            Text(parameter["name"], style="bold" if parameter["source"] == "user" else ""),
            '""' if value == "" else value,
            parameter["source"] or "-",
            parameter["change_type"] or "-",
            "yes" if parameter["modifiable"] else "no",
            parameter["allowed_values"] or "-",
        )
    out.print(table)
    if found["users"]:
        users = Table(title="Used by", title_justify="left")
        for column in ("Cache cluster", "Replication group", "Parameters", "Nodes to reboot"):
            users.add_column(column)
        for user in found["users"]:
            users.add_row(user["cache_cluster_id"], user["replication_group_id"] or "-", _status(user["status"]),
                          ", ".join(user["nodes_to_reboot"]) or "-")
        out.print(users)


def _pairs(assignments: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"'{item}': use NAME=VALUE, for example maxmemory-policy=allkeys-lru.")
        values[name.strip()] = value
    return values


def _wait_applied(group: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Until no cluster using the group is still applying it; the users as they are then."""
    client = fleet()
    deadline = time.monotonic() + timeout
    while True:
        users = client.parameter_group(group, source="user")["users"]
        if all(u["status"] != "applying" for u in users) or time.monotonic() > deadline:
            return list(users)
        time.sleep(0.2)


def _report(group: str, users: Sequence[dict[str, Any]]) -> None:
    if not users:
        err.print(f"No cluster uses {group} yet.")
        return
    waiting = [u for u in users if u["status"] == "pending-reboot"]
    applying = [u for u in users if u["status"] == "applying"]
    err.print(f"{len(users) - len(waiting) - len(applying)} of {len(users)} cluster(s) in sync.")
    if applying:
        err.print(f"[yellow]Still applying:[/yellow] {', '.join(u['cache_cluster_id'] for u in applying)}")
    if waiting:
        err.print(
            "[bold yellow]Waiting for a reboot[/bold yellow] (static parameters): "
            + ", ".join(u["cache_cluster_id"] for u in waiting)
            + " — reboot each with: aws elasticache reboot-cache-cluster --cache-cluster-id ID "
            "--cache-node-ids-to-reboot 0001"
        )


@params.command("set")
@click.argument("group")
@click.argument("assignments", nargs=-1, required=True, metavar="NAME=VALUE...")
@click.option("--wait", is_flag=True, help="Wait until every cluster using the group has applied it (or waits for a reboot).")
def set_parameters(group: str, assignments: tuple[str, ...], wait: bool) -> None:
    """Set parameters of GROUP (sent 20 a call, as the API takes them)."""
    values = _pairs(assignments)
    calls = fleet().set_parameters(group, values)
    err.print(f"Set {len(values)} parameter(s) of {group}" + (f" in {calls} calls" if calls > 1 else "") + ".")
    if wait:
        _report(group, _wait_applied(group))


@params.command()
@click.argument("group")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--wait", is_flag=True, help="Wait until every cluster using the group has applied it (or waits for a reboot).")
def reset(group: str, names: tuple[str, ...], wait: bool) -> None:
    """Reset the named parameters of GROUP to their defaults (every parameter without NAMEs)."""
    fleet().reset_parameters(group, list(names))
    err.print(f"Reset {', '.join(names) if names else 'every parameter'} of {group}.")
    if wait:
        _report(group, _wait_applied(group))


@params.command()
@click.argument("group")
@click.option("--family", required=True, help="Parameter group family: valkey8, valkey9, redis7 (as installed).")
@click.option("--description", default=None, help="Description (default: the group's name).")
def create(group: str, family: str, description: str | None) -> None:
    """Create parameter group GROUP of FAMILY (every parameter at the family's default)."""
    created = fleet().create_parameter_group(group, family, description or group)
    err.print(f"Created parameter group {created['name']} ({created['family']}).")


@params.command()
@click.argument("group")
def delete(group: str) -> None:
    """Delete parameter group GROUP (no cluster may use it)."""
    fleet().delete_parameter_group(group)
    err.print(f"Deleted parameter group {group}.")
