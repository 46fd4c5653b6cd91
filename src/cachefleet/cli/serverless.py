"""``cachefleet serverless``: serverless caches from the command line (create, ls, show, delete),
as ElastiCache API calls through ``cachefleet.client.Fleet``."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click
from rich.table import Table

from cachefleet.cli.commands import err, fleet, out


def _limit(cache: dict[str, Any]) -> str:
    storage = (cache.get("CacheUsageLimits") or {}).get("DataStorage") or {}
    low, high = storage.get("Minimum"), storage.get("Maximum")
    if low is None and high is None:
        return "-"
    return f"{low or 0}-{high if high is not None else '∞'} GB"


def _endpoint(cache: dict[str, Any], member: str) -> str:
    endpoint = cache.get(member)
    return f"{endpoint['Address']}:{endpoint['Port']}" if endpoint else "-"


@click.group()
def serverless() -> None:
    """Serverless caches: one endpoint, sized by Cachefleet itself."""


@serverless.command()
@click.argument("name")
@click.option("--engine", type=click.Choice(["valkey", "redis"]), default="valkey", show_default=True)
@click.option("--max-data", "max_data", type=click.IntRange(1, 5000), default=None, metavar="GB",
              help="CacheUsageLimits.DataStorage.Maximum: writes past it fail with OOM.")
@click.option("--description", default=None)
@click.option("--wait", is_flag=True, help="Wait until it is available.")
def create(name: str, engine: str, max_data: int | None, description: str | None, wait: bool) -> None:
    """Create serverless cache NAME."""
    client = fleet()
    started = time.monotonic()
    cache = client.create_serverless_cache(name, engine=engine, max_data_gb=max_data, description=description)
    if wait:
        with err.status(f"Creating {cache['ServerlessCacheName']}"):
            cache = client.wait_serverless(cache["ServerlessCacheName"], until="available") or cache
        out.print(f"[bold]{cache['ServerlessCacheName']}[/bold] is available in {time.monotonic() - started:.1f} s: "
                  f"endpoint {_endpoint(cache, 'Endpoint')} (a cluster client: redis-cli -c, RedisCluster, glide).")
    else:
        out.print(f"Creating serverless cache [bold]{cache['ServerlessCacheName']}[/bold] ({cache['Status']}).")


@serverless.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def list_command(as_json: bool) -> None:
    """List serverless caches."""
    caches = fleet().serverless_caches()
    if as_json:
        click.echo(json.dumps(caches, indent=2, default=str))
        return
    table = Table(title="Serverless caches")
    for column in ("Name", "Status", "Engine", "Data limit", "Endpoint"):
        table.add_column(column)
    for cache in caches:
        table.add_row(cache["ServerlessCacheName"], cache["Status"], f"{cache['Engine']} {cache['FullEngineVersion']}",
                      _limit(cache), _endpoint(cache, "Endpoint"))
    out.print(table)


@serverless.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def show(name: str, as_json: bool) -> None:
    """Show serverless cache NAME."""
    cache = fleet().serverless_caches(name)[0]
    if as_json:
        click.echo(json.dumps(cache, indent=2, default=str))
        return
    table = Table(show_header=False, title=f"Serverless cache {cache['ServerlessCacheName']}")
    table.add_column(style="bold")
    table.add_column()
    for label, value in (
        ("Status", cache["Status"]), ("Engine", f"{cache['Engine']} {cache['FullEngineVersion']}"),
        ("Endpoint", _endpoint(cache, "Endpoint")), ("Reader endpoint", _endpoint(cache, "ReaderEndpoint")),
        ("Data limit", _limit(cache)), ("User group", cache.get("UserGroupId") or "-"),
        ("Description", cache.get("Description") or "-"), ("ARN", cache["ARN"]),
    ):
        table.add_row(label, str(value))
    out.print(table)


@serverless.command()
@click.argument("name")
@click.option("--wait", is_flag=True, help="Wait until it is gone.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete(name: str, wait: bool, yes: bool) -> None:
    """Delete serverless cache NAME and all its data."""
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete serverless cache {name} and all its data?", abort=True)
    client = fleet()
    cache = client.delete_serverless_cache(name)
    out.print(f"Deleting serverless cache {cache['ServerlessCacheName']} ({cache['Status']}).")
    if wait:
        client.wait_serverless(name, until="deleted")
        out.print(f"{cache['ServerlessCacheName']} is deleted.")
