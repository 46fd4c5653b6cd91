"""The web console: static pages under ``/console`` and a thin JSON facade under ``/console/api``.

Why a same-origin facade, not the browser calling the Query API itself:

* One client stack. The facade is ``cachefleet.client.Fleet`` — the boto3 client the CLI
  uses — so the console does exactly what ``cachefleet create/scale/failover/delete`` do
  (including the scale fallback), and the CloudWatch charts speak whatever wire protocol
  boto3 speaks for CloudWatch (botocore now prefers smithy-rpc-v2-cbor there), with no
  SigV4, XML or CBOR code written again in JavaScript.
* Still the public API only: every facade call is a signed HTTP request to this server's
  own API endpoint, checked like any other client's; the facade holds no state and never
  touches the store (an import-linter contract says so).
* Credentials never live on the server. In dev mode (loopback, no credentials file) the
  facade signs with dummy keys, as the CLI does. Otherwise the browser keeps the user's
  access key and secret in sessionStorage and sends them with each facade call (headers
  ``X-Cachefleet-Access-Key``/``X-Cachefleet-Secret-Key``); the facade signs that one
  request with them, so the API's own authentication decides.
* Cross-site requests are refused: every facade call must carry ``X-Cachefleet-Console``
  (a custom header, which a foreign page cannot send without a CORS preflight that is never
  granted) and mutations must be JSON.

Pages are rendered in the browser from the JSON (they poll for live status), so there are no
server-side templates: the static files in ``static/`` ship in the package, no build step.
Errors reach the page as ``{"error": {"code", "message"}}`` with the API's message; an
unexpected failure is logged here and the page gets a short message, never a traceback.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from cachefleet.client import global_datastores, migrations, serverless
from cachefleet.client.fleet import ApiFailure, Fleet

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
CONSOLE_HEADER = "X-Cachefleet-Console"
DEV_KEYS = ("cachefleet-console", "cachefleet-console")
# The metrics the group page charts: (metric, statistic, unit), AWS/ElastiCache names.
CHART_METRICS = [
    ("EngineCPUUtilization", "Average", "Percent"),
    ("DatabaseMemoryUsagePercentage", "Average", "Percent"),
    ("CurrConnections", "Average", "Count"),
    ("GetTypeCmds", "Sum", "Count"),
    ("SetTypeCmds", "Sum", "Count"),
    ("CacheHitRate", "Average", "Percent"),
    ("ReplicationLag", "Average", "Seconds"),
]
# The serverless page's charts: the cache as a whole (dimension clusterId).
SERVERLESS_CHARTS = [
    ("ElastiCacheProcessingUnits", "Sum", "Count"),
    ("BytesUsedForCache", "Average", "Bytes"),
    ("CurrConnections", "Average", "Count"),
    ("GetTypeCmds", "Sum", "Count"),
    ("SetTypeCmds", "Sum", "Count"),
    ("CacheHitRate", "Average", "Percent"),
    ("SuccessfulReadRequestLatency", "Average", "Microseconds"),
]
MAX_METRIC_MINUTES = 24 * 60
# How long the facade waits for TestMigration's outcome event (the source probe times out in 2 s).
TEST_MIGRATION_WAIT = 20.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConsoleProblem(Exception):
    """A request the facade itself refuses (bad body, missing header)."""

    def __init__(self, message: str, *, status: int = 400, code: str = "InvalidRequest") -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


def _json(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=lambda v: json.dumps(v, default=str))


def _error(code: str, message: str, status: int) -> web.Response:
    return _json({"error": {"code": code, "message": message}}, status=status)


class Console:
    """The console's routes; ``api_url`` is this server's own API endpoint."""

    def __init__(self, *, api_url: str, region: str, dev_mode: bool) -> None:
        self.api_url = api_url
        self.region = region
        self.dev_mode = dev_mode
        self._fleets: dict[tuple[str, str, str], Fleet] = {}
        self._lock = threading.Lock()

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/console", self.redirect)
        app.router.add_get("/console/", self.index)
        app.router.add_static("/console/static/", STATIC, append_version=False)
        api = [
            ("GET", "/console/api/session", self.session),
            ("GET", "/console/api/engines", self.engines),
            ("GET", "/console/api/resources", self.list_resources),
            ("POST", "/console/api/resources", self.create),
            ("GET", "/console/api/resources/{name}", self.describe),
            ("DELETE", "/console/api/resources/{name}", self.delete),
            ("GET", "/console/api/resources/{name}/events", self.events),
            ("POST", "/console/api/resources/{name}/scale", self.scale),
            ("POST", "/console/api/resources/{name}/failover", self.failover),
            ("POST", "/console/api/resources/{name}/metrics", self.metrics),
            ("GET", "/console/api/parameter-groups", self.parameter_groups),
            ("GET", "/console/api/parameter-groups/{name}", self.parameter_group),
            ("POST", "/console/api/parameter-groups/{name}/parameters", self.set_parameters),
            ("POST", "/console/api/parameter-groups/{name}/reset", self.reset_parameters),
            ("GET", "/console/api/resources/{name}/snapshots", self.snapshots),
            ("POST", "/console/api/resources/{name}/snapshots", self.take_snapshot),
            ("POST", "/console/api/snapshots/{snapshot}/restore", self.restore),
            ("DELETE", "/console/api/snapshots/{snapshot}", self.delete_snapshot),
            ("GET", "/console/api/serverless", self.serverless_caches),
            ("GET", "/console/api/serverless/{name}", self.serverless_cache),
            ("POST", "/console/api/serverless/{name}/metrics", self.serverless_metrics),
            ("GET", "/console/api/global", self.global_datastores),
            ("POST", "/console/api/global", self.create_global),
            ("GET", "/console/api/global/{id}", self.global_datastore),
            ("DELETE", "/console/api/global/{id}", self.delete_global),
            ("POST", "/console/api/global/{id}/failover", self.failover_global),
            ("POST", "/console/api/global/{id}/disassociate", self.disassociate_global),
            ("GET", "/console/api/migrations", self.migration_targets),
            ("GET", "/console/api/migrations/{name}", self.migration),
            ("POST", "/console/api/migrations/{name}/test", self.test_migration),
            ("POST", "/console/api/migrations/{name}/start", self.start_migration),
            ("POST", "/console/api/migrations/{name}/complete", self.complete_migration),
        ]
        for method, path, handler in api:
            app.router.add_route(method, path, self._guarded(handler))

    # ------------------------------------------------------------------ plumbing
    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                self._check_same_origin(request)
                return await handler(request)
            except ApiFailure as failure:
                return _error(failure.code or "Error", failure.message, failure.status if failure.status >= 400 else 400)
            except ConsoleProblem as problem:
                return _error(problem.code, problem.message, problem.status)
            except Exception:
                log.exception("console request %s %s failed", request.method, request.path)
                return _error("InternalFailure", "The console could not complete this request; see the server log.", 500)

        return guarded

    @staticmethod
    def _check_same_origin(request: web.Request) -> None:
        if request.headers.get(CONSOLE_HEADER) != "1":
            raise ConsoleProblem(f"Console API calls must carry the {CONSOLE_HEADER} header.", status=403, code="Forbidden")
        origin = request.headers.get("Origin")
        if origin and origin != f"{request.scheme}://{request.host}":
            raise ConsoleProblem("Cross-origin console calls are refused.", status=403, code="Forbidden")
        if (request.method == "POST" or request.body_exists) and request.content_type != "application/json":
            raise ConsoleProblem("Send JSON (Content-Type: application/json).", status=415, code="UnsupportedMediaType")

    def _fleet(self, request: web.Request, region: str | None = None) -> Fleet:
        """The caller's fleet in the page's region (``?region=``), or in ``region`` when given."""
        region = region or request.query.get("region") or self.region
        access_key = request.headers.get("X-Cachefleet-Access-Key", "")
        secret_key = request.headers.get("X-Cachefleet-Secret-Key", "")
        if not (access_key and secret_key):
            if not self.dev_mode:
                raise ApiFailure(
                    "MissingAuthenticationToken",
                    "This Cachefleet checks credentials: sign in with an access key and secret key.",
                    status=403,
                )
            access_key, secret_key = DEV_KEYS
        key = (region, access_key, hashlib.sha256(secret_key.encode()).hexdigest())
        with self._lock:
            fleet = self._fleets.get(key)
            if fleet is None:
                if len(self._fleets) > 64:
                    self._fleets.clear()
                fleet = Fleet(self.api_url, region, access_key=access_key, secret_key=secret_key)
                self._fleets[key] = fleet
            return fleet

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConsoleProblem("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise ConsoleProblem("The request body must be a JSON object.")
        return body

    @staticmethod
    def _int(body: dict[str, Any], key: str, *, default: int | None = None) -> int | None:
        value = body.get(key, default)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConsoleProblem(f"{key} must be a whole number, not {value!r}.") from None

    # ------------------------------------------------------------------ pages
    async def redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/console/")

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    # ------------------------------------------------------------------ facade
    async def session(self, request: web.Request) -> web.StreamResponse:
        return _json({"region": self.region, "dev_mode": self.dev_mode, "endpoint": self.api_url})

    async def engines(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        return _json(await asyncio.to_thread(fleet.engines))

    async def list_resources(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        return _json({"region": fleet.region, "resources": await asyncio.to_thread(fleet.overview)})

    async def describe(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        return _json(await asyncio.to_thread(fleet.describe, request.match_info["name"]))

    async def events(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        minutes = self._int(dict(request.query), "minutes", default=24 * 60) or 60
        return _json(await asyncio.to_thread(fleet.events, request.match_info["name"], minutes=minutes))

    async def create(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        body = await self._body(request)
        name = str(body.get("name") or "").strip()
        if not name:
            raise ConsoleProblem("Give the replication group a name.", code="MissingParameter")
        created = await asyncio.to_thread(
            fleet.create,
            name,
            shards=self._int(body, "shards"),
            replicas=self._int(body, "replicas", default=0) or 0,
            engine=str(body.get("engine") or "valkey"),
            engine_version=str(body.get("engine_version") or "") or None,
            node_type=str(body.get("node_type") or "cache.t4g.micro"),
            description=str(body.get("description") or "") or None,
            automatic_failover=None if body.get("automatic_failover") is None else bool(body["automatic_failover"]),
            multi_az=bool(body.get("multi_az")),
        )
        return _json(created, status=201)

    async def delete(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        return _json(await asyncio.to_thread(fleet.delete, request.match_info["name"]))

    async def scale(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        body = await self._body(request)
        shards, replicas = self._int(body, "shards"), self._int(body, "replicas")
        name = request.match_info["name"]
        if (shards is None) == (replicas is None):
            raise ConsoleProblem("Give either a number of shards or a number of replicas.")
        if shards is not None:
            lines = await asyncio.to_thread(fleet.scale_shards, name, shards)
        else:
            lines = await asyncio.to_thread(fleet.scale_replicas, name, replicas or 0)
        return _json({"messages": lines})

    async def failover(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        body = await self._body(request)
        shard = str(body.get("shard") or "") or None
        return _json({"messages": await asyncio.to_thread(fleet.failover, request.match_info["name"], shard)})

    async def snapshots(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        return _json(await asyncio.to_thread(fleet.snapshots, request.match_info["name"]))

    async def take_snapshot(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        body = await self._body(request)
        name = str(body.get("snapshot_name") or "").strip() or None
        return _json(await asyncio.to_thread(fleet.snapshot, request.match_info["name"], name), status=201)

    async def restore(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        body = await self._body(request)
        name = str(body.get("name") or "").strip()
        if not name:
            raise ConsoleProblem("Give the new replication group a name.", code="MissingParameter")
        created = await asyncio.to_thread(
            fleet.restore, request.match_info["snapshot"], name, shards=self._int(body, "shards"),
            replicas=self._int(body, "replicas"),
        )
        return _json(created, status=201)

    async def delete_snapshot(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        return _json(await asyncio.to_thread(fleet.delete_snapshot, request.match_info["snapshot"]))

    def _window(self, body: dict[str, Any]) -> tuple[dt.datetime, dt.datetime, int]:
        """A chart request's time window (``minutes`` back from now, bounded) and its ``period``."""
        minutes = min(MAX_METRIC_MINUTES, max(1, self._int(body, "minutes", default=15) or 15))
        period = max(1, self._int(body, "period", default=10) or 10)
        end = dt.datetime.now(dt.UTC).replace(microsecond=0)
        return end - dt.timedelta(minutes=minutes), end, period

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        """The charted metrics of every node (GetMetricData on the same endpoint)."""
        fleet = self._fleet(request)
        start, end, period = self._window(await self._body(request))
        name = request.match_info["name"]
        pairs = [(metric, stat) for metric, stat, _ in CHART_METRICS]
        data = await asyncio.to_thread(fleet.metric_data, name, pairs, start=start, end=end, period=period)
        charts = []
        for metric, stat, unit in CHART_METRICS:
            series = [
                {"node": cluster_id, "points": points}
                for (m, s, cluster_id), points in data.items()
                if m == metric and s == stat
            ]
            charts.append({"metric": metric, "stat": stat, "unit": unit, "period": period, "series": series})
        return _json({"start": start.isoformat(), "end": end.isoformat(), "charts": charts})

    # ------------------------------------------------------------------ serverless caches
    async def serverless_caches(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        caches = await asyncio.to_thread(fleet.serverless_caches)
        return _json([{"name": c["ServerlessCacheName"], "status": c.get("Status"), "engine": c.get("Engine"),
                       "version": c.get("FullEngineVersion"), "endpoint": serverless._endpoint(c.get("Endpoint"))}
                      for c in caches])

    async def serverless_cache(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        return _json(await asyncio.to_thread(serverless.serverless_view, fleet, request.match_info["name"]))

    async def serverless_metrics(self, request: web.Request) -> web.StreamResponse:
        """The serverless page's charts: one series each, the cache as a whole."""
        fleet = self._fleet(request)
        start, end, period = self._window(await self._body(request))
        name = request.match_info["name"]
        data = await asyncio.to_thread(serverless.metric_series, fleet, name, [(m, s) for m, s, _ in SERVERLESS_CHARTS],
                                       start=start, end=end, period=period)
        charts = [{"metric": metric, "stat": stat, "unit": unit, "period": period,
                   "series": [{"node": name, "points": data[(metric, stat)]}]} for metric, stat, unit in SERVERLESS_CHARTS]
        return _json({"start": start.isoformat(), "end": end.isoformat(), "charts": charts})

    # ------------------------------------------------------------------ parameter groups
    async def parameter_groups(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        return _json(await asyncio.to_thread(fleet.parameter_groups))

    async def parameter_group(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        return _json(await asyncio.to_thread(fleet.parameter_group, request.match_info["name"]))

    async def set_parameters(self, request: web.Request) -> web.StreamResponse:
        """Sets ``{"values": {name: value}}`` (20 a call, as the API takes them)."""
        fleet = self._fleet(request)
        body = await self._body(request)
        values = body.get("values")
        if not isinstance(values, dict) or not values or not all(isinstance(v, str) for v in values.values()):
            raise ConsoleProblem('Give the parameters to set as {"values": {"name": "value"}}.')
        await asyncio.to_thread(fleet.set_parameters, request.match_info["name"], {str(k): v for k, v in values.items()})
        return _json({"messages": [f"Set {len(values)} parameter(s) of {request.match_info['name']}."]})

    async def reset_parameters(self, request: web.Request) -> web.StreamResponse:
        """Resets ``{"names": [...]}``, or every parameter when no names are given."""
        fleet = self._fleet(request)
        body = await self._body(request)
        names = body.get("names") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConsoleProblem('Give the parameters to reset as {"names": ["name"]}, or none to reset every one.')
        await asyncio.to_thread(fleet.reset_parameters, request.match_info["name"], names)
        what = ", ".join(names) if names else "every parameter"
        return _json({"messages": [f"Reset {what} of {request.match_info['name']}."]})

    # ------------------------------------------------------------------ global datastores
    @staticmethod
    def _text(body: dict[str, Any], key: str, what: str) -> str:
        value = str(body.get(key) or "").strip()
        if not value:
            raise ConsoleProblem(f"Give {what}.", code="MissingParameter")
        return value

    async def global_datastores(self, request: web.Request) -> web.StreamResponse:
        """Every global datastore (in every region, as the API lists them), and this region's groups
        that belong to none: the ones a datastore can be created from."""
        fleet = self._fleet(request)
        records = await asyncio.to_thread(global_datastores.records, fleet)
        candidates = await asyncio.to_thread(global_datastores.candidates, fleet)
        return _json({"region": fleet.region, "datastores": [global_datastores.global_view(r) for r in records],
                      "candidates": candidates})

    async def global_datastore(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        records = await asyncio.to_thread(global_datastores.records, fleet, request.match_info["id"])
        found = await asyncio.to_thread(global_datastores.events, lambda region: self._fleet(request, region), records[0])
        return _json(global_datastores.global_view(records[0]) | {"events": found})

    async def create_global(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        body = await self._body(request)
        primary = self._text(body, "primary", "the replication group that becomes the primary")
        suffix = self._text(body, "suffix", "the global datastore's name suffix")
        record = await asyncio.to_thread(
            fleet.call, "elasticache", "create_global_replication_group", GlobalReplicationGroupIdSuffix=suffix,
            PrimaryReplicationGroupId=primary, GlobalReplicationGroupDescription=str(body.get("description") or ""))
        return _json(global_datastores.global_view(record["GlobalReplicationGroup"]), status=201)

    async def failover_global(self, request: web.Request) -> web.StreamResponse:
        """Planned failover: the member ``group`` in ``region`` becomes the primary."""
        fleet = self._fleet(request)
        body = await self._body(request)
        region, group = self._text(body, "region", "the new primary's region"), self._text(body, "group", "the new primary")
        record = await asyncio.to_thread(
            fleet.call, "elasticache", "failover_global_replication_group",
            GlobalReplicationGroupId=request.match_info["id"], PrimaryRegion=region, PrimaryReplicationGroupId=group)
        view = global_datastores.global_view(record["GlobalReplicationGroup"])
        return _json(view | {"messages": [f"Failing {view['id']} over to {region}/{group} ({view['status']})."]})

    async def disassociate_global(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        body = await self._body(request)
        region, group = self._text(body, "region", "the member's region"), self._text(body, "group", "the member")
        record = await asyncio.to_thread(
            fleet.call, "elasticache", "disassociate_global_replication_group",
            GlobalReplicationGroupId=request.match_info["id"], ReplicationGroupId=group, ReplicationGroupRegion=region)
        view = global_datastores.global_view(record["GlobalReplicationGroup"])
        return _json(view | {"messages": [f"Disassociating {region}/{group} from {view['id']}: it becomes a "
                                          "standalone, writable replication group."]})

    async def delete_global(self, request: web.Request) -> web.StreamResponse:
        """DeleteGlobalReplicationGroup; ``{"retain_primary": false}`` deletes the primary group too."""
        fleet = self._fleet(request)
        body = await self._body(request) if request.body_exists else {}
        retain = body.get("retain_primary", True)
        if not isinstance(retain, bool):
            raise ConsoleProblem("retain_primary must be true or false.")
        record = await asyncio.to_thread(
            fleet.call, "elasticache", "delete_global_replication_group",
            GlobalReplicationGroupId=request.match_info["id"], RetainPrimaryReplicationGroup=retain)
        view = global_datastores.global_view(record["GlobalReplicationGroup"])
        kept = "the primary replication group is kept" if retain else "the primary replication group is deleted too"
        return _json(view | {"messages": [f"Deleting global datastore {view['id']} ({view['status']}); {kept}."]})

    # ------------------------------------------------------------------ online migration
    def _source(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        address = self._text(body, "address", "the source node's address")
        port = self._int(body, "port", default=6379)
        return migrations.endpoint(address, port if port is not None else 6379)

    async def migration_targets(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        return _json({"region": fleet.region, "groups": await asyncio.to_thread(migrations.targets, fleet)})

    async def migration(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        return _json(await asyncio.to_thread(migrations.migration_view, fleet, request.match_info["name"]))

    async def test_migration(self, request: web.Request) -> web.StreamResponse:
        """TestMigration, then its outcome: the first new event that ends it (the API answers before it checks)."""
        fleet = self._fleet(request)
        name = request.match_info["name"]
        source = self._source(await self._body(request))
        since = await asyncio.to_thread(migrations.seen, fleet, name)
        await asyncio.to_thread(fleet.call, "elasticache", "test_migration", ReplicationGroupId=name,
                                CustomerNodeEndpointList=source)
        deadline = asyncio.get_running_loop().time() + TEST_MIGRATION_WAIT
        while asyncio.get_running_loop().time() < deadline:
            found = await asyncio.to_thread(migrations.outcome, fleet, name, "test", since)
            if found is not None:
                return _json({"ok": found[0], "message": found[1]})
            await asyncio.sleep(0.25)
        return _json({"ok": None, "message": f"TestMigration of {name} has no outcome after {TEST_MIGRATION_WAIT:.0f} s "
                                             "yet; its event will appear under Migration events."})

    async def start_migration(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        name = request.match_info["name"]
        source = self._source(await self._body(request))
        group = (await asyncio.to_thread(fleet.call, "elasticache", "start_migration", ReplicationGroupId=name,
                                         CustomerNodeEndpointList=source))["ReplicationGroup"]
        where = f"{source[0]['Address']}:{source[0]['Port']}"
        return _json({"status": group.get("Status"),
                      "messages": [f"Migrating {group['ReplicationGroupId']} from {where} ({group.get('Status')})."]})

    async def complete_migration(self, request: web.Request) -> web.StreamResponse:
        fleet = self._fleet(request)
        name = request.match_info["name"]
        force = (await self._body(request)).get("force", False)
        if not isinstance(force, bool):
            raise ConsoleProblem("force must be true or false.")
        group = (await asyncio.to_thread(fleet.call, "elasticache", "complete_migration", ReplicationGroupId=name,
                                         Force=force))["ReplicationGroup"]
        return _json({"status": group.get("Status"), "messages": [
            f"Completing the migration of {group['ReplicationGroupId']}" + (" (forced)." if force else ".")]})
