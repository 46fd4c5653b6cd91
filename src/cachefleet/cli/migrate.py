"""``cachefleet migrate``: online migration of a self-hosted Valkey or Redis OSS node into a
replication group (test, start, complete, status), as ElastiCache API calls through
``cachefleet.client.Fleet``; progress is read from the group's events, as ElastiCache reports it."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from cachefleet.cli.commands import err, fleet, out
from cachefleet.client import migrations
from cachefleet.client.fleet import Fleet


def _endpoint(value: str) -> list[dict[str, Any]]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"'{value}': give the source as HOST:PORT, for example 10.0.0.241:6379.")
    return [{"Address": host, "Port": int(port)}]


def _wait_outcome(client: Fleet, group_id: str, step: str, since: set[migrations.EventKey], timeout: float) -> str:
    """The message of the event that ends ``step`` (one not in ``since``); exits 1 on a failure."""
    deadline = time.monotonic() + timeout
    with err.status(f"Waiting for {group_id}"):
        while time.monotonic() < deadline:
            found = migrations.outcome(client, group_id, step, since)
            if found is not None:
                succeeded, message = found
                if succeeded:
                    return message
                err.print(message, soft_wrap=True, markup=False)
                sys.exit(1)
            time.sleep(0.5)
    err.print(f"No outcome within {timeout:.0f} s; see `cachefleet migrate status {group_id}`.")
    sys.exit(1)


@click.group()
def migrate() -> None:
    """Online migration from a self-hosted Valkey or Redis OSS node (ElastiCache's StartMigration)."""


@migrate.command(name="test")
@click.argument("group_id")
@click.argument("source")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the outcome.")
def test_command(group_id: str, source: str, timeout: float) -> None:
    """Check that GROUP_ID can migrate from SOURCE (HOST:PORT) without migrating anything."""
    client = fleet()
    since = migrations.seen(client, group_id)
    client.call("elasticache", "test_migration", ReplicationGroupId=group_id, CustomerNodeEndpointList=_endpoint(source))
    out.print(_wait_outcome(client, group_id, "test", since, timeout), soft_wrap=True, markup=False)


@migrate.command()
@click.argument("group_id")
@click.argument("source")
@click.option("--wait", is_flag=True, help="Wait until the group is in sync with the source.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait with --wait.")
def start(group_id: str, source: str, wait: bool, timeout: float) -> None:
    """Make GROUP_ID's primary a replica of SOURCE (HOST:PORT); writes go to the source until complete."""
    client = fleet()
    since = migrations.seen(client, group_id)
    group = client.call("elasticache", "start_migration", ReplicationGroupId=group_id,
                        CustomerNodeEndpointList=_endpoint(source))["ReplicationGroup"]
    out.print(f"Migrating {group['ReplicationGroupId']} from {source} ({group['Status']}).")
    if wait:
        out.print(_wait_outcome(client, group_id, "start", since, timeout), soft_wrap=True, markup=False)


@migrate.command()
@click.argument("group_id")
@click.option("--force", is_flag=True, help="Complete even if the data is not in sync with the source.")
@click.option("--wait", is_flag=True, help="Wait until the group is writable.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait with --wait.")
def complete(group_id: str, force: bool, wait: bool, timeout: float) -> None:
    """Stop following the source: GROUP_ID's primary takes writes again."""
    client = fleet()
    since = migrations.seen(client, group_id)
    client.call("elasticache", "complete_migration", ReplicationGroupId=group_id, Force=force)
    out.print(f"Completing the migration of {group_id}" + (" (forced)." if force else "."))
    if wait:
        out.print(_wait_outcome(client, group_id, "complete", since, timeout), soft_wrap=True, markup=False)


@migrate.command()
@click.argument("group_id")
@click.option("--minutes", default=60, show_default=True, help="How far back to show the migration's events.")
def status(group_id: str, minutes: int) -> None:
    """GROUP_ID's status and its migration events."""
    client = fleet()
    group = client.call("elasticache", "describe_replication_groups", ReplicationGroupId=group_id)["ReplicationGroups"][0]
    out.print(f"{group['ReplicationGroupId']}: {group['Status']}", markup=False)
    # One line per event, unwrapped: a message is what a script greps for.
    for event in migrations.migration_events(client, group["ReplicationGroupId"], minutes=minutes):
        out.print(f"{event['date']}  {event['message']}", soft_wrap=True, markup=False)
