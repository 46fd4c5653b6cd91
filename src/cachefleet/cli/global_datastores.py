"""``cachefleet global``: global datastores from the command line (create, ls, show, failover,
disassociate, delete), as ElastiCache API calls through ``cachefleet.client.Fleet``.

A global datastore spans regions; the command's region (``--region`` before the command) is the
one the call is signed for: the primary group's region for ``create``, any region otherwise. A
secondary is added with CreateReplicationGroup GlobalReplicationGroupId in its own region (boto3,
the AWS CLI or Terraform), as on ElastiCache.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click
from rich.table import Table

from cachefleet.cli.commands import err, fleet, out
from cachefleet.cli.output import output_option
from cachefleet.client import global_datastores
from cachefleet.client.fleet import ApiFailure, Fleet


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


_records = global_datastores.records
_members = global_datastores.members
_member_text = global_datastores.member_text
_primary = global_datastores.primary


def _summary(record: dict[str, Any]) -> str:
    primary = _primary(record)
    return f"{record['GlobalReplicationGroupId']} ({record['Status']}" + (
        f", primary {_member_text(primary)})" if primary else ")")


@click.group(name="global")
def global_command() -> None:
    """Global datastores: a primary group in one region, read-only secondaries in others."""


@global_command.command()
@click.argument("suffix")
@click.option("--primary", "primary", required=True, metavar="GROUP",
              help="The replication group (in the command's region) that becomes the primary.")
@click.option("--description", default="", help="GlobalReplicationGroupDescription.")
@output_option("the global datastore")
def create(suffix: str, primary: str, description: str, as_json: bool) -> None:
    """Create a global datastore named <prefix>-SUFFIX from replication group GROUP."""
    client = fleet()
    record = client.call("elasticache", "create_global_replication_group", GlobalReplicationGroupIdSuffix=suffix,
                         PrimaryReplicationGroupId=primary,
                         GlobalReplicationGroupDescription=description)["GlobalReplicationGroup"]
    if as_json:
        _print_json(record)
        return
    global_id = record["GlobalReplicationGroupId"]
    out.print(f"Created global datastore [bold]{global_id}[/bold] ({record['Status']}) with primary "
              f"{client.region}/{primary}. Add a secondary in another region with CreateReplicationGroup "
              f"--global-replication-group-id {global_id}.", soft_wrap=True)


@global_command.command(name="ls")
@output_option("the list")
def list_command(as_json: bool) -> None:
    """List global datastores with their members."""
    records = _records(fleet())
    if as_json:
        _print_json(records)
        return
    table = Table(title="Global datastores")
    for column in ("Id", "Status", "Engine", "Node type", "Primary", "Secondaries"):
        table.add_column(column)
    for record in records:
        primary = _primary(record)
        secondaries = [_member_text(m) for m in _members(record) if m["Role"] != "PRIMARY"]
        table.add_row(record["GlobalReplicationGroupId"], record["Status"],
                      f"{record['Engine']} {record['EngineVersion']}", record["CacheNodeType"],
                      _member_text(primary) if primary else "-", ", ".join(secondaries) or "-")
    out.print(table)


@global_command.command()
@click.argument("global_id")
@output_option("the description")
def show(global_id: str, as_json: bool) -> None:
    """Show global datastore GLOBAL_ID: its settings and every member with its role."""
    record = _records(fleet(), global_id)[0]
    if as_json:
        _print_json(record)
        return
    about = Table(show_header=False, title=f"Global datastore {record['GlobalReplicationGroupId']}")
    about.add_column(style="bold")
    about.add_column()
    for label, value in (
        ("Status", record["Status"]), ("Engine", f"{record['Engine']} {record['EngineVersion']}"),
        ("Node type", record["CacheNodeType"]), ("Cluster mode", "enabled" if record.get("ClusterEnabled") else "disabled"),
        ("Encryption in transit", "yes" if record.get("TransitEncryptionEnabled") else "no"),
        ("Description", record.get("GlobalReplicationGroupDescription") or "-"), ("ARN", record["ARN"]),
    ):
        about.add_row(label, str(value))
    out.print(about)
    members = Table(title="Members")
    for column in ("Region", "Replication group", "Role", "Status", "Automatic failover"):
        members.add_column(column)
    for member in _members(record):
        members.add_row(member["ReplicationGroupRegion"], member["ReplicationGroupId"], member["Role"],
                        member.get("Status") or "-", str(member.get("AutomaticFailover") or "-"))
    out.print(members)


def _wait_primary(client: Fleet, global_id: str, region: str, group_id: str, timeout: float) -> dict[str, Any]:
    """The record once ``region``/``group_id`` is its primary and it is available again."""
    deadline = time.monotonic() + timeout
    with err.status(f"Waiting for {region}/{group_id} to become the primary of {global_id}"):
        while True:
            record = _records(client, global_id)[0]
            primary = _primary(record)
            if (record["Status"] == "available" and primary is not None
                    and (primary["ReplicationGroupRegion"], primary["ReplicationGroupId"]) == (region, group_id)):
                return record
            if record["Status"] == "available" and primary is not None:
                # Settled with the old roles: the workflow called the failover off (its event says why).
                raise ApiFailure("FailoverCalledOff", f"The failover of {global_id} was called off: "
                                 f"{_member_text(primary)} is still the primary; see `cachefleet events`.")
            if time.monotonic() > deadline:
                raise ApiFailure("Timeout", f"{global_id} is still {record['Status']} after {timeout:.0f} s.")
            time.sleep(0.2)


@global_command.command()
@click.argument("global_id")
@click.option("--region", "region", required=True, help="PrimaryRegion: the region of the new primary group.")
@click.option("--group", "group_id", required=True, metavar="GROUP", help="PrimaryReplicationGroupId there.")
@click.option("--wait", is_flag=True, help="Wait until GROUP is the primary and the datastore is available.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait with --wait.")
@output_option("the global datastore")
def failover(global_id: str, region: str, group_id: str, wait: bool, timeout: float, as_json: bool) -> None:
    """Planned failover: GROUP in REGION becomes the primary; nothing acknowledged is lost."""
    client = fleet()
    started = time.monotonic()
    record = client.call("elasticache", "failover_global_replication_group", GlobalReplicationGroupId=global_id,
                         PrimaryRegion=region, PrimaryReplicationGroupId=group_id)["GlobalReplicationGroup"]
    if wait:
        record = _wait_primary(client, global_id, region, group_id, timeout)
    if as_json:
        _print_json(record)
    elif wait:
        out.print(f"{region}/{group_id} is the primary of {global_id} "
                  f"({time.monotonic() - started:.1f} s); writes go to its primary endpoint.")
    else:
        out.print(f"Failing {global_id} over to {region}/{group_id} ({record['Status']}): "
                  f"`cachefleet global show {global_id}` follows it, `--wait` waits for it.")


@global_command.command()
@click.argument("global_id")
@click.option("--region", "region", required=True, help="ReplicationGroupRegion: the secondary's region.")
@click.option("--group", "group_id", required=True, metavar="GROUP", help="The secondary replication group.")
@output_option("the global datastore")
def disassociate(global_id: str, region: str, group_id: str, as_json: bool) -> None:
    """Take secondary GROUP out of the datastore: it becomes a standalone, writable group."""
    record = fleet().call("elasticache", "disassociate_global_replication_group", GlobalReplicationGroupId=global_id,
                          ReplicationGroupId=group_id, ReplicationGroupRegion=region)["GlobalReplicationGroup"]
    if as_json:
        _print_json(record)
    else:
        out.print(f"Disassociating {region}/{group_id} from {_summary(record)}.")


@global_command.command()
@click.argument("global_id")
@click.option("--retain-primary/--delete-primary", default=True, show_default=True,
              help="Keep the primary replication group as a standalone group, or delete it too.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@output_option("the global datastore")
def delete(global_id: str, retain_primary: bool, yes: bool, as_json: bool) -> None:
    """Delete global datastore GLOBAL_ID (disassociate its secondaries first)."""
    if not yes and sys.stdin.isatty():
        what = "" if retain_primary else " and its primary replication group with all its data"
        click.confirm(f"Delete global datastore {global_id}{what}?", abort=True)
    record = fleet().call("elasticache", "delete_global_replication_group", GlobalReplicationGroupId=global_id,
                          RetainPrimaryReplicationGroup=retain_primary)["GlobalReplicationGroup"]
    if as_json:
        _print_json(record)
    else:
        kept = "the primary group is kept" if retain_primary else "the primary group is deleted too"
        out.print(f"Deleting global datastore {record['GlobalReplicationGroupId']} ({record['Status']}); {kept}.")
