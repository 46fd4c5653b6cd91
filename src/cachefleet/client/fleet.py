"""Everyday operations on a Cachefleet endpoint, as ElastiCache and CloudWatch API calls.

``Fleet`` wraps boto3 clients of one endpoint and region. Its methods return plain,
JSON-friendly dicts (a normalized view of groups, shards and nodes) so the CLI renders them
with rich and the console hands them to the browser unchanged. API errors surface as
``ApiFailure`` carrying the API's error code and message, never botocore's exception zoo.

Credentials: real ones are used when configured (environment, shared files, explicit keys);
when none are configured, dummy keys are supplied, which a Cachefleet listening on loopback
(dev mode) accepts. The EC2 instance-metadata provider is left out of the lookup: it would
send a request to 169.254.169.254 every time nothing is configured, and a Cachefleet
endpoint never issues instance-role credentials.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

DEFAULT_ENDPOINT = "http://127.0.0.1:8379"
DEFAULT_REGION = "us-east-1"
DEFAULT_NODE_TYPE = "cache.t4g.micro"
DUMMY_CREDENTIALS = ("cachefleet-dev", "cachefleet-dev")
NAMESPACE = "AWS/ElastiCache"
CA_PATH = "/cachefleet/ca.pem"
_AVAILABLE = "available"
_FAILED = ("create-failed", "incompatible-network", "restore-failed")
_XML_CODE = re.compile(r"<Code>([^<]*)</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")


class ApiFailure(Exception):
    """The API (or the way to it) said no; ``message`` is what to show the user."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"{self.message} ({self.code})" if self.code else self.message


class NotFound(ApiFailure):
    """The named resource does not exist (the server said so)."""

    def __init__(self, message: str) -> None:
        super().__init__("NotFound", message, status=404)


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'").replace("&amp;", "&")


def translate(error: Exception, endpoint: str) -> ApiFailure:
    """botocore's exceptions -> ApiFailure with the server's own code and message."""
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        code = str(info.get("Code", ""))
        message = str(info.get("Message", "")) or str(error)
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
        # A service whose protocol botocore could not parse the error of (for example an XML
        # error answering a CBOR request) leaves the raw body in Message: dig the code out.
        if "<Code>" in message:
            found_code, found_message = _XML_CODE.search(message), _XML_MESSAGE.search(message)
            code = found_code.group(1) if found_code else code
            message = _unescape(found_message.group(1)) if found_message else message
        elif code.isdigit() and message.lstrip().startswith("<"):
            message = f"HTTP {code} from {endpoint}"
        return ApiFailure(code, message, status=status)
    if isinstance(error, EndpointConnectionError):
        return ApiFailure(
            "ConnectionFailed", f"Cannot reach Cachefleet at {endpoint}: is `cachefleet up` running there?", status=502
        )
    if isinstance(error, ReadTimeoutError):
        return ApiFailure("Timeout", f"Cachefleet at {endpoint} did not answer in time.", status=504)
    if isinstance(error, NoCredentialsError):
        return ApiFailure("NoCredentials", "No AWS credentials are configured.", status=401)
    return ApiFailure(type(error).__name__, str(error), status=502)


def _endpoint(value: dict[str, Any] | None) -> str | None:
    if not value or not value.get("Address"):
        return None
    return f"{value['Address']}:{value['Port']}"


def _iso(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return None if value is None else str(value)


class Fleet:
    """The replication groups and cache clusters of one region of one Cachefleet endpoint."""

    def __init__(
        self,
        endpoint_url: str = DEFAULT_ENDPOINT,
        region: str | None = None,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        if access_key and secret_key:
            session = boto3.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key)
        else:
            core = botocore.session.Session()
            core.get_component("credential_provider").remove("iam-role")
            session = boto3.Session(botocore_session=core)
            if session.get_credentials() is None:
                session = boto3.Session(
                    aws_access_key_id=DUMMY_CREDENTIALS[0],
                    aws_secret_access_key=DUMMY_CREDENTIALS[1],
                    region_name=session.region_name,
                )
        self.region = region or session.region_name or DEFAULT_REGION
        self._session = session
        self._config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=timeout)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()  # boto3 sessions are not thread-safe; the clients they make are

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(
                    service, endpoint_url=self.endpoint_url, region_name=self.region, config=self._config
                )
            return self._clients[service]

    def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return dict(getattr(self.client(service), operation)(**params))
        except (ClientError, BotoCoreError) as error:
            raise translate(error, self.endpoint_url) from None

    def pages(self, service: str, operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every ``key`` item of an operation that pages with Marker."""
        items: list[dict[str, Any]] = []
        marker: str | None = None
        while True:
            page = self.call(service, operation, **params, **({"Marker": marker} if marker else {}))
            items.extend(page.get(key, []))
            marker = page.get("Marker")
            if not marker:
                return items

    # ------------------------------------------------------------------ serverless caches
    def serverless_caches(self, name: str | None = None) -> list[dict[str, Any]]:
        """DescribeServerlessCaches, every page (or the one named)."""
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self.call("elasticache", "describe_serverless_caches", **({"ServerlessCacheName": name} if name else {}),
                             **({"NextToken": token} if token else {}))
            found.extend(dict(c) for c in page.get("ServerlessCaches", []))
            token = page.get("NextToken")
            if not token:
                return found

    def create_serverless_cache(
        self, name: str, *, engine: str = "valkey", max_data_gb: int | None = None, description: str | None = None
    ) -> dict[str, Any]:
        limits = {"DataStorage": {"Maximum": max_data_gb, "Unit": "GB"}} if max_data_gb is not None else None
        created = self.call(
            "elasticache", "create_serverless_cache", ServerlessCacheName=name, Engine=engine,
            **({"CacheUsageLimits": limits} if limits else {}), **({"Description": description} if description else {}),
        )
        return dict(created["ServerlessCache"])

    def delete_serverless_cache(self, name: str) -> dict[str, Any]:
        return dict(self.call("elasticache", "delete_serverless_cache", ServerlessCacheName=name)["ServerlessCache"])

    def wait_serverless(self, name: str, *, until: str, interval: float = 0.25, timeout: float = 600.0) -> dict[str, Any] | None:
        """Polls until the cache has status ``until`` (or is gone, for ``deleted``); None once gone."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                cache = self.serverless_caches(name)[0]
            except ApiFailure as failure:
                if until == "deleted" and failure.code == "ServerlessCacheNotFoundFault":
                    return None
                raise
            if cache["Status"] == until:
                return cache
            if cache["Status"] == "create-failed" and until == "available":
                raise ApiFailure("CreateFailed", f"Serverless cache {name} is create-failed: see `cachefleet events {name}`.")
            if time.monotonic() > deadline:
                raise ApiFailure("Timeout", f"Serverless cache {name} is still {cache['Status']} after {timeout:.0f} s.")
            time.sleep(interval)

    # ------------------------------------------------------------------ reading
    def _raw_group(self, name: str) -> dict[str, Any] | None:
        try:
            groups = self.call("elasticache", "describe_replication_groups", ReplicationGroupId=name)["ReplicationGroups"]
            return dict(groups[0])
        except ApiFailure as failure:
            if failure.code == "ReplicationGroupNotFoundFault":
                return None
            raise

    def _raw_cluster(self, name: str) -> dict[str, Any] | None:
        try:
            clusters = self.call("elasticache", "describe_cache_clusters", CacheClusterId=name, ShowCacheNodeInfo=True)
            return dict(clusters["CacheClusters"][0])
        except ApiFailure as failure:
            if failure.code in ("CacheClusterNotFound", "CacheClusterNotFoundFault"):
                return None
            raise

    def _all_clusters(self, **params: Any) -> list[dict[str, Any]]:
        return self.pages("elasticache", "describe_cache_clusters", "CacheClusters", ShowCacheNodeInfo=True, **params)

    def overview(self) -> list[dict[str, Any]]:
        """Every replication group and standalone cache cluster, summarized, sorted by name."""
        groups = self.pages("elasticache", "describe_replication_groups", "ReplicationGroups")
        clusters = self._all_clusters()
        summaries = [_summary(_group_view(group, clusters)) for group in groups]
        summaries += [_summary(_cluster_view(c)) for c in clusters if not c.get("ReplicationGroupId")]
        return sorted(summaries, key=lambda s: str(s["id"]))

    def describe(self, name: str) -> dict[str, Any]:
        """A replication group, or else a cache cluster, of that name, with shards and nodes."""
        name = name.lower()
        group = self._raw_group(name)
        if group is not None:
            members = set(group.get("MemberClusters", []))
            clusters = [c for c in self._all_clusters() if c["CacheClusterId"] in members]
            return _group_view(group, clusters)
        cluster = self._raw_cluster(name)
        if cluster is not None:
            return _cluster_view(cluster)
        raise NotFound(f"No replication group or cache cluster named {name} in {self.region}.")

    def ca_certificate(self) -> str:
        """The PEM of the CA that signs the nodes' certificates (served by the endpoint, unsigned: it is public)."""
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.endpoint_url}{CA_PATH}", timeout=10) as response:
                return str(response.read().decode())
        except urllib.error.HTTPError as error:
            raise ApiFailure(f"HTTP{error.code}", f"{self.endpoint_url}{CA_PATH} answered HTTP {error.code}.") from None
        except OSError:
            raise ApiFailure(
                "ConnectionFailed", f"Cannot reach Cachefleet at {self.endpoint_url}: is `cachefleet up` running there?",
                status=502,
            ) from None

    # ------------------------------------------------------------------ users (RBAC)
    def users(self) -> list[dict[str, Any]]:
        return [_user_view(u) for u in self.pages("elasticache", "describe_users", "Users")]

    def create_user(
        self, user_id: str, *, user_name: str | None, access_string: str, passwords: Sequence[str], engine: str,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "UserId": user_id, "UserName": user_name or user_id, "Engine": engine, "AccessString": access_string,
        }
        if passwords:
            params["AuthenticationMode"] = {"Type": "password", "Passwords": list(passwords)}
        else:
            params["AuthenticationMode"] = {"Type": "no-password-required"}
        return _user_view(self.call("elasticache", "create_user", **params))

    def modify_user(
        self, user_id: str, *, access_string: str | None = None, append: str | None = None,
        passwords: Sequence[str] | None = None, no_password: bool = False,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"UserId": user_id}
        if access_string is not None:
            params["AccessString"] = access_string
        if append is not None:
            params["AppendAccessString"] = append
        if passwords:
            params["AuthenticationMode"] = {"Type": "password", "Passwords": list(passwords)}
        elif no_password:
            params["AuthenticationMode"] = {"Type": "no-password-required"}
        return _user_view(self.call("elasticache", "modify_user", **params))

    def delete_user(self, user_id: str) -> dict[str, Any]:
        return _user_view(self.call("elasticache", "delete_user", UserId=user_id))

    def engines(self) -> list[dict[str, Any]]:
        versions = self.pages("elasticache", "describe_cache_engine_versions", "CacheEngineVersions")
        return [
            {"engine": v["Engine"], "version": v["EngineVersion"], "description": v.get("CacheEngineVersionDescription", "")}
            for v in versions
        ]

    def events(self, name: str | None = None, *, minutes: int = 60) -> list[dict[str, Any]]:
        """Events of the last ``minutes``, oldest first; of one group (and its clusters) or cluster."""
        sources: set[str] | None = None
        if name is not None:
            name = name.lower()
            sources = {name}
            try:
                sources.update(node["cache_cluster_id"] for node in self.describe(name)["nodes"])
            except NotFound:
                pass  # deleted: its own events are still there to show
        raw = self.pages("elasticache", "describe_events", "Events", Duration=minutes, MaxRecords=100)
        events = [
            {
                "date": _iso(e.get("Date")),
                "source": e.get("SourceIdentifier", ""),
                "source_type": e.get("SourceType", ""),
                "message": e.get("Message", ""),
            }
            for e in raw
            if sources is None or e.get("SourceIdentifier", "").lower() in sources
        ]
        return sorted(events, key=lambda e: str(e["date"]))

    # ------------------------------------------------------------------ parameter groups
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Every parameter group (the defaults included), with the clusters using each and their apply status."""
        groups = self.pages("elasticache", "describe_cache_parameter_groups", "CacheParameterGroups")
        users: dict[str, list[dict[str, Any]]] = {}
        for cluster in self._all_clusters():
            status = cluster.get("CacheParameterGroup") or {}
            users.setdefault(str(status.get("CacheParameterGroupName")), []).append(_parameter_user(cluster))
        return [
            {
                "name": g["CacheParameterGroupName"],
                "family": g["CacheParameterGroupFamily"],
                "description": g.get("Description", ""),
                "default": str(g["CacheParameterGroupName"]).startswith("default."),
                "arn": g.get("ARN"),
                "users": users.get(g["CacheParameterGroupName"], []),
            }
            for g in groups
        ]

    def parameter_group(self, name: str, *, source: str | None = None) -> dict[str, Any]:
        """One parameter group: its parameters (all, or one source's) and the clusters using it."""
        name = name.lower()
        found = [g for g in self.parameter_groups() if g["name"] == name]
        if not found:
            # Let the server say it is not there (its error and wording).
            self.call("elasticache", "describe_cache_parameter_groups", CacheParameterGroupName=name)
            raise NotFound(f"No parameter group named {name} in {self.region}.")
        parameters = self.pages(
            "elasticache", "describe_cache_parameters", "Parameters", CacheParameterGroupName=name,
            **({"Source": source} if source else {}),
        )
        return found[0] | {
            "parameters": [
                {
                    "name": p["ParameterName"],
                    "value": p.get("ParameterValue", ""),
                    "source": p.get("Source"),
                    "change_type": p.get("ChangeType"),
                    "modifiable": bool(p.get("IsModifiable")),
                    "allowed_values": p.get("AllowedValues"),
                    "data_type": p.get("DataType"),
                    "description": p.get("Description", ""),
                }
                for p in parameters
            ]
        }

    def create_parameter_group(self, name: str, family: str, description: str) -> dict[str, Any]:
        created = self.call(
            "elasticache", "create_cache_parameter_group", CacheParameterGroupName=name, CacheParameterGroupFamily=family,
            Description=description,
        )["CacheParameterGroup"]
        return {"name": created["CacheParameterGroupName"], "family": created["CacheParameterGroupFamily"]}

    def set_parameters(self, name: str, values: dict[str, str]) -> int:
        """ModifyCacheParameterGroup in batches of 20 (the API's limit); how many calls it took."""
        pairs = [{"ParameterName": k, "ParameterValue": v} for k, v in values.items()]
        batches = [pairs[i : i + 20] for i in range(0, len(pairs), 20)]
        for batch in batches:
            self.call("elasticache", "modify_cache_parameter_group", CacheParameterGroupName=name, ParameterNameValues=batch)
        return len(batches)

    def reset_parameters(self, name: str, names: Sequence[str] = ()) -> None:
        """ResetCacheParameterGroup: the named parameters (in batches of 20), or every one."""
        if not names:
            self.call("elasticache", "reset_cache_parameter_group", CacheParameterGroupName=name, ResetAllParameters=True)
            return
        for start in range(0, len(names), 20):
            batch = [{"ParameterName": n} for n in names[start : start + 20]]
            self.call("elasticache", "reset_cache_parameter_group", CacheParameterGroupName=name, ParameterNameValues=batch)

    def delete_parameter_group(self, name: str) -> None:
        self.call("elasticache", "delete_cache_parameter_group", CacheParameterGroupName=name)

    # ------------------------------------------------------------------ changing
    def create(
        self,
        name: str,
        *,
        shards: int | None = None,
        replicas: int = 0,
        engine: str = "valkey",
        engine_version: str | None = None,
        node_type: str = DEFAULT_NODE_TYPE,
        description: str | None = None,
        automatic_failover: bool | None = None,
        multi_az: bool = False,
    ) -> dict[str, Any]:
        """A replication group: cluster mode disabled (one shard) unless ``shards`` is given.

        Automatic failover defaults to on when there is a replica to fail over to (as the
        ElastiCache console does); a cluster-mode-enabled group always has it.
        """
        params: dict[str, Any] = {
            "ReplicationGroupId": name,
            "ReplicationGroupDescription": description or f"{name} (created with cachefleet)",
            "Engine": engine,
            "CacheNodeType": node_type,
        }
        if engine_version:
            params["EngineVersion"] = engine_version
        if shards is not None:
            params.update(NumNodeGroups=shards, ReplicasPerNodeGroup=replicas, ClusterMode="enabled")
        else:
            params["NumCacheClusters"] = replicas + 1
        if automatic_failover is None and shards is None:
            automatic_failover = replicas >= 1
        if automatic_failover is not None:
            params["AutomaticFailoverEnabled"] = automatic_failover
        if multi_az:
            params["MultiAZEnabled"] = True
        group = self.call("elasticache", "create_replication_group", **params)["ReplicationGroup"]
        return _group_view(group, [])

    def delete(self, name: str) -> dict[str, Any]:
        """Deletes a replication group, or a standalone cache cluster; returns it as the API answered."""
        resource = self.describe(name)
        if resource["kind"] == "group":
            group = self.call("elasticache", "delete_replication_group", ReplicationGroupId=resource["id"])
            return _group_view(group["ReplicationGroup"], [])
        if resource.get("replication_group_id"):
            raise ApiFailure(
                "InvalidParameterCombination",
                f"Cache cluster {resource['id']} is a member of replication group {resource['replication_group_id']}: "
                f"delete the group, or remove replicas with `scale {resource['replication_group_id']} --replicas N`.",
            )
        cluster = self.call("elasticache", "delete_cache_cluster", CacheClusterId=resource["id"])
        return _cluster_view(cluster["CacheCluster"])

    def describe_or_gone(self, name: str) -> dict[str, Any]:
        try:
            return self.describe(name)
        except NotFound:
            return {"kind": "gone", "id": name, "status": "deleted", "shards": [], "nodes": []}

    def _group(self, name: str) -> dict[str, Any]:
        resource = self.describe(name)
        if resource["kind"] != "group":
            raise ApiFailure(
                "InvalidParameterValue",
                f"{resource['id']} is a standalone cache cluster; this operation needs a replication group.",
            )
        return resource

    def scale_replicas(self, name: str, replicas: int) -> list[str]:
        """Sets the number of replicas per shard; returns what was done, one line an action.

        IncreaseReplicaCount/DecreaseReplicaCount first. A server that does not serve them yet
        (InvalidAction) gets, for a cluster-mode-disabled group, the older way: one
        CreateCacheCluster per added replica, one DeleteCacheCluster per removed one.
        """
        group = self._group(name)
        current = min((len(shard["nodes"]) - 1 for shard in group["shards"]), default=0)
        if replicas == current and all(len(s["nodes"]) - 1 == replicas for s in group["shards"]):
            return [f"{group['id']} already has {replicas} replica(s) per shard."]
        operation = "increase_replica_count" if replicas > current else "decrease_replica_count"
        try:
            self.call("elasticache", operation, ReplicationGroupId=group["id"], NewReplicaCount=replicas, ApplyImmediately=True)
            verb = "Increasing" if replicas > current else "Decreasing"
            return [f"{verb} the replicas of {group['id']} from {current} to {replicas} per shard."]
        except ApiFailure as failure:
            if failure.code != "InvalidAction" or group["cluster_mode"]:
                raise
        return self._scale_replicas_by_clusters(group, replicas)

    def _scale_replicas_by_clusters(self, group: dict[str, Any], replicas: int) -> list[str]:
        """One replica at a time: the group is ``modifying`` until each change is done."""
        nodes = group["shards"][0]["nodes"] if group["shards"] else []
        done: list[str] = []
        current = len(nodes) - 1
        if replicas > current:
            taken = {node["cache_cluster_id"] for node in nodes}
            number = 1
            steps = []
            for _ in range(replicas - current):
                while f"{group['id']}-{number:03d}" in taken:
                    number += 1
                taken.add(f"{group['id']}-{number:03d}")
                steps.append(f"{group['id']}-{number:03d}")
            for i, cluster_id in enumerate(steps):
                if i:
                    self.wait(group["id"], timeout=300)
                self.call("elasticache", "create_cache_cluster", CacheClusterId=cluster_id, ReplicationGroupId=group["id"])
                done.append(f"Adding replica {cluster_id} to {group['id']} (CreateCacheCluster).")
        else:
            leaving = sorted((n for n in nodes if n["role"] != "primary"), key=lambda n: n["cache_cluster_id"], reverse=True)
            for i, node in enumerate(leaving[: current - replicas]):
                if i:
                    self.wait(group["id"], timeout=300)
                self.call("elasticache", "delete_cache_cluster", CacheClusterId=node["cache_cluster_id"])
                done.append(f"Removing replica {node['cache_cluster_id']} from {group['id']} (DeleteCacheCluster).")
        return done

    def scale_shards(self, name: str, shards: int) -> list[str]:
        group = self._group(name)
        params: dict[str, Any] = {"ReplicationGroupId": group["id"], "NodeGroupCount": shards, "ApplyImmediately": True}
        current = [shard["id"] for shard in group["shards"]]
        if shards < len(current):
            params["NodeGroupsToRetain"] = current[:shards]
        self.call("elasticache", "modify_replication_group_shard_configuration", **params)
        return [f"Resharding {group['id']} from {len(current)} to {shards} shard(s)."]

    def failover(self, name: str, shard: str | None = None) -> list[str]:
        group = self._group(name)
        shard_ids = [s["id"] for s in group["shards"]]
        if shard is None:
            if len(shard_ids) != 1:
                raise ApiFailure(
                    "MissingParameter",
                    f"{group['id']} has {len(shard_ids)} shards ({', '.join(shard_ids)}): choose one with --shard.",
                )
            shard = shard_ids[0]
        self.call("elasticache", "test_failover", ReplicationGroupId=group["id"], NodeGroupId=shard)
        return [f"Failing over shard {shard} of {group['id']} (TestFailover)."]

    def upgrade(
        self,
        name: str,
        engine_version: str,
        *,
        engine: str | None = None,
        parameter_group: str | None = None,
        immediately: bool = True,
    ) -> list[str]:
        """An engine upgrade of a replication group (ModifyReplicationGroup) or standalone cluster
        (ModifyCacheCluster): now, or in its maintenance window."""
        name = name.lower()
        params: dict[str, Any] = {"EngineVersion": engine_version, "ApplyImmediately": immediately}
        if engine is not None:
            params["Engine"] = engine
        if parameter_group is not None:
            params["CacheParameterGroupName"] = parameter_group
        if self._raw_group(name) is not None:
            answer = self.call("elasticache", "modify_replication_group", ReplicationGroupId=name, **params)
            started = answer["ReplicationGroup"]["Status"] == "modifying"
        elif self._raw_cluster(name) is not None:
            answer = self.call("elasticache", "modify_cache_cluster", CacheClusterId=name, **params)
            started = answer["CacheCluster"]["CacheClusterStatus"] == "modifying"
        else:
            raise NotFound(f"No replication group or cache cluster named {name} in {self.region}.")
        view = self.describe(name)
        target = (view.get("upgrade") or {}).get("target", engine_version)
        if immediately and started:
            return [f"Upgrading {name} to {engine or view['engine']} {target}: {len(view['nodes'])} node(s), one at a time."]
        if not immediately and view.get("upgrade"):
            return [f"Upgrade of {name} to {target} waits for its maintenance window (see `cachefleet events {name}`)."]
        return [f"{name} runs {view['engine']} {view['engine_version']}: nothing to upgrade."]
    # ------------------------------------------------------------------ snapshots
    def snapshot(self, name: str, snapshot_name: str | None = None) -> dict[str, Any]:
        """CreateSnapshot of a replication group, or else of a cache cluster, named ``name``."""
        resource = self.describe(name)
        target = (
            {"ReplicationGroupId": resource["id"]} if resource["kind"] == "group"
            else {"CacheClusterId": resource["id"]}
        )
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d-%H-%M-%S")
        created = self.call("elasticache", "create_snapshot", SnapshotName=snapshot_name or f"{resource['id']}-{stamp}",
                            **target)
        return snapshot_view(created["Snapshot"])

    def snapshots(self, name: str | None = None) -> list[dict[str, Any]]:
        """Snapshots (of one group or cluster, or all), newest first."""
        params: dict[str, Any] = {}
        if name is not None:
            resource = self.describe_or_gone(name)
            key = "CacheClusterId" if resource["kind"] == "cluster" else "ReplicationGroupId"
            params[key] = name.lower()
        found = self.pages("elasticache", "describe_snapshots", "Snapshots", ShowNodeGroupConfig=True, **params)
        return sorted((snapshot_view(s) for s in found), key=lambda s: str(s["created"]), reverse=True)

    def snapshot_status(self, snapshot_name: str) -> dict[str, Any] | None:
        try:
            found = self.call("elasticache", "describe_snapshots", SnapshotName=snapshot_name, ShowNodeGroupConfig=True)
        except ApiFailure as failure:
            if failure.code == "SnapshotNotFoundFault":
                return None
            raise
        return snapshot_view(found["Snapshots"][0])

    def restore(self, snapshot_name: str, name: str, *, shards: int | None = None, replicas: int | None = None,
                node_type: str | None = None) -> dict[str, Any]:
        """A new replication group with a snapshot's data (CreateReplicationGroup SnapshotName): the
        snapshot's engine, node type and shape unless ``shards`` (cluster mode enabled) is given."""
        params: dict[str, Any] = {
            "ReplicationGroupId": name,
            "ReplicationGroupDescription": f"{name} (restored from {snapshot_name} with cachefleet)",
            "SnapshotName": snapshot_name,
        }
        if node_type:
            params["CacheNodeType"] = node_type
        if shards is not None:
            params.update(NumNodeGroups=shards, ClusterMode="enabled")
            if replicas is not None:
                params["ReplicasPerNodeGroup"] = replicas
        elif replicas is not None:
            params["ReplicasPerNodeGroup"] = replicas
        group = self.call("elasticache", "create_replication_group", **params)["ReplicationGroup"]
        return _group_view(group, [])

    def delete_snapshot(self, snapshot_name: str) -> dict[str, Any]:
        return snapshot_view(self.call("elasticache", "delete_snapshot", SnapshotName=snapshot_name)["Snapshot"])

    # ------------------------------------------------------------------ waiting
    def wait(
        self,
        name: str,
        *,
        until: str = _AVAILABLE,
        timeout: float = 600.0,
        interval: float = 1.0,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Polls until the resource is ``available`` (or ``deleted``: gone); raises on failure."""
        deadline = time.monotonic() + timeout
        while True:
            resource = self.describe_or_gone(name)
            if progress is not None:
                progress(resource)
            settled = until != _AVAILABLE or all(node["status"] == _AVAILABLE for node in resource["nodes"])
            if resource["status"] == until and settled:
                return resource
            if until == _AVAILABLE and resource["status"] in _FAILED + ("deleted",):
                reasons = [e["message"] for e in self.events(name, minutes=60)][-3:]
                raise ApiFailure(
                    "OperationFailed",
                    f"{name} is {resource['status']}" + (": " + " / ".join(reasons) if reasons else "."),
                )
            if time.monotonic() > deadline:
                raise ApiFailure("Timeout", f"{name} is still {resource['status']} after {timeout:.0f} s.")
            time.sleep(interval)

    # ------------------------------------------------------------------ metrics (CloudWatch API)
    def metric_names(self, nodes: Iterable[dict[str, Any]]) -> list[str]:
        """The AWS/ElastiCache metric names ListMetrics knows for ``nodes`` (empty before their first sample)."""
        names: set[str] = set()
        for node in nodes:
            token: str | None = None
            while True:
                page = self.call(
                    "cloudwatch",
                    "list_metrics",
                    Namespace=NAMESPACE,
                    Dimensions=[{"Name": "CacheClusterId", "Value": node["cache_cluster_id"]}],
                    **({"NextToken": token} if token else {}),
                )
                names.update(str(metric["MetricName"]) for metric in page.get("Metrics", []))
                token = page.get("NextToken")
                if not token:
                    break
            if names:
                return sorted(names)  # every node publishes the same metrics
        return sorted(names)

    def metric_data(
        self,
        name: str,
        metrics: Sequence[tuple[str, str]],
        *,
        start: dt.datetime,
        end: dt.datetime,
        period: int,
        nodes: Iterable[dict[str, Any]] | None = None,
    ) -> dict[tuple[str, str, str], list[tuple[str, float]]]:
        """GetMetricData for every node of ``name``: (metric, stat) pairs -> series per node.

        Keys are (metric name, stat, cache cluster id); values are (ISO timestamp, value) oldest
        first. Dimensions are AWS/ElastiCache's per-node pair CacheClusterId + CacheNodeId.
        """
        node_list = list(nodes if nodes is not None else self.describe(name)["nodes"])
        queries = []
        keys: dict[str, tuple[str, str, str]] = {}
        for i, node in enumerate(node_list):
            for j, (metric, stat) in enumerate(metrics):
                query_id = f"m{i}_{j}"
                keys[query_id] = (metric, stat, node["cache_cluster_id"])
                queries.append(
                    {
                        "Id": query_id,
                        "MetricStat": {
                            "Metric": {
                                "Namespace": NAMESPACE,
                                "MetricName": metric,
                                "Dimensions": [
                                    {"Name": "CacheClusterId", "Value": node["cache_cluster_id"]},
                                    {"Name": "CacheNodeId", "Value": node["cache_node_id"]},
                                ],
                            },
                            "Period": period,
                            "Stat": stat,
                        },
                        "ReturnData": True,
                    }
                )
        series: dict[tuple[str, str, str], list[tuple[str, float]]] = {key: [] for key in keys.values()}
        for batch_start in range(0, len(queries), 500):  # GetMetricData takes at most 500 queries
            token: str | None = None
            while True:
                page = self.call(
                    "cloudwatch",
                    "get_metric_data",
                    MetricDataQueries=queries[batch_start : batch_start + 500],
                    StartTime=start,
                    EndTime=end,
                    ScanBy="TimestampAscending",
                    **({"NextToken": token} if token else {}),
                )
                for result in page.get("MetricDataResults", []):
                    key = keys.get(result["Id"])
                    if key is not None:
                        series[key].extend(
                            (str(_iso(t)), float(v)) for t, v in zip(result["Timestamps"], result["Values"], strict=False)
                        )
                token = page.get("NextToken")
                if not token:
                    break
        for values in series.values():
            values.sort()
        return series


# ---------------------------------------------------------------------- views
def _parameter_user(cluster: dict[str, Any]) -> dict[str, Any]:
    status = cluster.get("CacheParameterGroup") or {}
    return {
        "cache_cluster_id": cluster["CacheClusterId"],
        "replication_group_id": cluster.get("ReplicationGroupId"),
        "status": status.get("ParameterApplyStatus", "in-sync"),
        "nodes_to_reboot": list(status.get("CacheNodeIdsToReboot") or []),
    }


def _pending(group: dict[str, Any] | None, clusters: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """What is not applied yet: pending modified values (of the group and of each cluster) and
    parameter groups still being applied or waiting for a reboot."""
    found: list[dict[str, Any]] = []
    for name, value in ((group or {}).get("PendingModifiedValues") or {}).items():
        found.append({"what": name, "value": value, "where": (group or {}).get("ReplicationGroupId")})
    for cluster in clusters:
        for name, value in (cluster.get("PendingModifiedValues") or {}).items():
            found.append({"what": name, "value": value, "where": cluster["CacheClusterId"]})
        user = _parameter_user(cluster)
        if user["status"] != "in-sync":
            group_name = (cluster.get("CacheParameterGroup") or {}).get("CacheParameterGroupName")
            found.append({"what": "CacheParameterGroup", "value": f"{group_name}: {user['status']}",
                          "where": cluster["CacheClusterId"]})
    return found


def _megabytes(size: str | None) -> int:
    try:
        return int(str(size).split()[0])
    except (ValueError, IndexError):
        return 0


def snapshot_view(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot as the CLI and console show it."""
    nodes = snapshot.get("NodeSnapshots", [])
    created = [n.get("SnapshotCreateTime") for n in nodes if n.get("SnapshotCreateTime")]
    return {
        "name": snapshot["SnapshotName"],
        "status": snapshot.get("SnapshotStatus", ""),
        "source": snapshot.get("SnapshotSource", ""),
        "of": snapshot.get("ReplicationGroupId") or snapshot.get("CacheClusterId") or "",
        "engine": f"{snapshot.get('Engine', '')} {snapshot.get('EngineVersion', '')}".strip(),
        "node_type": snapshot.get("CacheNodeType", ""),
        "shards": len(nodes),
        "size_mb": sum(_megabytes(n.get("CacheSize")) for n in nodes),
        "created": _iso(min(created)) if created else None,
        "encrypted": bool(snapshot.get("KmsKeyId")),
        "kms_key_id": snapshot.get("KmsKeyId"),
        "arn": snapshot.get("ARN"),
    }


def _node(cluster: dict[str, Any] | None, member: dict[str, Any], shard: str | None) -> dict[str, Any]:
    node = (cluster or {}).get("CacheNodes", [{}])[0] if cluster else {}
    parameters = (cluster or {}).get("CacheParameterGroup") or {}
    return {
        "cache_cluster_id": member["CacheClusterId"],
        "cache_node_id": member.get("CacheNodeId") or node.get("CacheNodeId", "0001"),
        "shard": shard,
        "role": member.get("CurrentRole") or ("primary" if shard is None else "-"),
        "status": (cluster or {}).get("CacheClusterStatus", "unknown"),
        "endpoint": _endpoint(member.get("ReadEndpoint")) or _endpoint(node.get("Endpoint")),
        "zone": member.get("PreferredAvailabilityZone") or (cluster or {}).get("PreferredAvailabilityZone"),
        "engine_version": (cluster or {}).get("EngineVersion"),
        "created": _iso((cluster or {}).get("CacheClusterCreateTime")),
        "parameter_group": parameters.get("CacheParameterGroupName"),
        "parameter_status": parameters.get("ParameterApplyStatus"),
        "pending_engine_version": ((cluster or {}).get("PendingModifiedValues") or {}).get("EngineVersion"),
    }


def _upgrade(nodes: Sequence[dict[str, Any]], status: str | None) -> dict[str, Any] | None:
    """An engine upgrade in progress or waiting: its target and how many nodes run it already.

    A member not yet on the new build keeps its pending EngineVersion until it is replaced, so the
    nodes on the target and those still pending make the progress.
    """
    targets = {n["pending_engine_version"] for n in nodes if n.get("pending_engine_version")}
    if not targets:
        return None
    target = sorted(targets)[-1]
    done = sum(1 for n in nodes if n.get("engine_version") == target and not n.get("pending_engine_version"))
    return {
        "target": target,
        "done": done,
        "total": len(nodes),
        "state": "in progress" if status == "modifying" else "waiting for the maintenance window",
    }


def _group_view(group: dict[str, Any], clusters: Iterable[dict[str, Any]]) -> dict[str, Any]:
    by_id = {c["CacheClusterId"]: c for c in clusters}
    shards = []
    nodes = []
    placed = set()
    for node_group in group.get("NodeGroups", []):
        shard_nodes = []
        for member in node_group.get("NodeGroupMembers", []):
            node = _node(by_id.get(member["CacheClusterId"]), member, node_group["NodeGroupId"])
            shard_nodes.append(node)
            placed.add(member["CacheClusterId"])
        shard_nodes.sort(key=lambda n: (n["role"] != "primary", n["cache_cluster_id"]))
        nodes.extend(shard_nodes)
        shards.append(
            {
                "id": node_group["NodeGroupId"],
                "status": node_group.get("Status"),
                "slots": node_group.get("Slots"),
                "primary_endpoint": _endpoint(node_group.get("PrimaryEndpoint")),
                "reader_endpoint": _endpoint(node_group.get("ReaderEndpoint")),
                "nodes": shard_nodes,
            }
        )
    # Members not (yet) in a node group, e.g. while the group is being created.
    for cluster_id in group.get("MemberClusters", []):
        if cluster_id not in placed:
            nodes.append(_node(by_id.get(cluster_id), {"CacheClusterId": cluster_id}, None) | {"role": "-"})
    any_cluster = next(iter(by_id.values()), {})
    return {
        "kind": "group",
        "id": group["ReplicationGroupId"],
        "description": group.get("Description", ""),
        "status": group.get("Status"),
        "engine": group.get("Engine") or any_cluster.get("Engine"),
        "engine_version": any_cluster.get("EngineVersion"),
        "node_type": group.get("CacheNodeType"),
        "cluster_mode": bool(group.get("ClusterEnabled")),
        "configuration_endpoint": _endpoint(group.get("ConfigurationEndpoint")),
        "automatic_failover": group.get("AutomaticFailover"),
        "multi_az": group.get("MultiAZ"),
        "tls": bool(group.get("TransitEncryptionEnabled")),
        "tls_mode": group.get("TransitEncryptionMode") if group.get("TransitEncryptionEnabled") else None,
        "auth": bool(group.get("AuthTokenEnabled")) or bool(group.get("UserGroupIds")),
        "auth_token_enabled": bool(group.get("AuthTokenEnabled")),
        "auth_token_last_modified": _iso(group.get("AuthTokenLastModifiedDate")),
        "user_group_ids": list(group.get("UserGroupIds", [])),
        "locks_pending": _locks_pending(group.get("PendingModifiedValues") or {}),
        "arn": group.get("ARN"),
        "created": _iso(group.get("ReplicationGroupCreateTime")),
        "member_clusters": list(group.get("MemberClusters", [])),
        "shards": shards,
        "nodes": nodes,
        "parameter_group": any_cluster.get("CacheParameterGroup", {}).get("CacheParameterGroupName"),
        "pending": _pending(group, by_id.values()),
        "upgrade": _upgrade(nodes, group.get("Status")),
        "global_datastore": _global_info(group.get("GlobalReplicationGroupInfo")),
    }


def _global_info(info: dict[str, Any] | None) -> dict[str, Any] | None:
    """The global datastore a group is a member of, and its role there (PRIMARY or SECONDARY)."""
    if not info or not info.get("GlobalReplicationGroupId"):
        return None
    return {"id": info["GlobalReplicationGroupId"], "role": info.get("GlobalReplicationGroupMemberRole")}


def _cluster_view(cluster: dict[str, Any]) -> dict[str, Any]:
    node = _node(cluster, {"CacheClusterId": cluster["CacheClusterId"]}, None)
    return {
        "kind": "cluster",
        "id": cluster["CacheClusterId"],
        "description": "",
        "status": cluster.get("CacheClusterStatus"),
        "engine": cluster.get("Engine"),
        "engine_version": cluster.get("EngineVersion"),
        "node_type": cluster.get("CacheNodeType"),
        "cluster_mode": False,
        "configuration_endpoint": _endpoint(cluster.get("ConfigurationEndpoint")),
        "replication_group_id": cluster.get("ReplicationGroupId"),
        "tls": bool(cluster.get("TransitEncryptionEnabled")),
        "tls_mode": cluster.get("TransitEncryptionMode") if cluster.get("TransitEncryptionEnabled") else None,
        "auth": bool(cluster.get("AuthTokenEnabled")),
        "auth_token_enabled": bool(cluster.get("AuthTokenEnabled")),
        "auth_token_last_modified": _iso(cluster.get("AuthTokenLastModifiedDate")),
        "user_group_ids": [],
        "locks_pending": {},
        "arn": cluster.get("ARN"),
        "created": _iso(cluster.get("CacheClusterCreateTime")),
        "member_clusters": [cluster["CacheClusterId"]],
        "shards": [],
        "nodes": [node],
        "parameter_group": (cluster.get("CacheParameterGroup") or {}).get("CacheParameterGroupName"),
        "pending": _pending(None, [cluster]),
        "upgrade": _upgrade([node], cluster.get("CacheClusterStatus")),
    }


def _locks_pending(values: dict[str, Any]) -> dict[str, Any]:
    """The security part of PendingModifiedValues, for the pages: what is still being applied."""
    found: dict[str, Any] = {}
    if values.get("AuthTokenStatus"):
        found["auth_token"] = values["AuthTokenStatus"].lower()
    groups = values.get("UserGroups") or {}
    if groups.get("UserGroupIdsToAdd") or groups.get("UserGroupIdsToRemove"):
        found["user_groups"] = {"add": list(groups.get("UserGroupIdsToAdd", [])),
                                "remove": list(groups.get("UserGroupIdsToRemove", []))}
    if values.get("TransitEncryptionMode"):
        found["tls_mode"] = values["TransitEncryptionMode"]
    return found


def _user_view(user: dict[str, Any]) -> dict[str, Any]:
    authentication = user.get("Authentication") or {}
    return {
        "id": user.get("UserId"),
        "name": user.get("UserName"),
        "status": user.get("Status"),
        "engine": user.get("Engine"),
        "access_string": user.get("AccessString"),
        "authentication": authentication.get("Type"),
        "passwords": authentication.get("PasswordCount", 0),
        "user_groups": list(user.get("UserGroupIds", [])),
    }


def _summary(view: dict[str, Any]) -> dict[str, Any]:
    endpoint = view["configuration_endpoint"]
    if endpoint is None and view["shards"]:
        endpoint = view["shards"][0]["primary_endpoint"]
    if endpoint is None and view["kind"] == "cluster":
        endpoint = view["nodes"][0]["endpoint"]
    return {
        "kind": view["kind"],
        "id": view["id"],
        "status": view["status"],
        "engine": view["engine"],
        "engine_version": view["engine_version"],
        "node_type": view["node_type"],
        "cluster_mode": view["cluster_mode"],
        "shards": len(view["shards"]),
        "nodes": len(view["nodes"]),
        "endpoint": endpoint,
    }


@dataclass(frozen=True)
class ConnectTarget:
    """Where ``cachefleet connect`` points valkey-cli/redis-cli for a resource, and how."""

    host: str
    port: int
    cluster: bool  # follow MOVED/ASK (-c)
    tls: bool
    auth: bool
    user_groups: bool = False  # RBAC: log in as a user of the group's user group (--user)


def connect_target(resource: dict[str, Any]) -> ConnectTarget:
    """The endpoint reaching ``resource``: cluster mode enabled, the configuration endpoint (with
    ``-c``); cluster mode disabled, the primary endpoint of the only shard; a standalone cluster,
    its node."""
    if resource["cluster_mode"] and resource.get("configuration_endpoint"):
        target, cluster_flag = resource["configuration_endpoint"], True
    elif resource["kind"] == "group":
        shard = resource["shards"][0] if resource["shards"] else {}
        target, cluster_flag = shard.get("primary_endpoint"), False
    else:
        target, cluster_flag = resource["nodes"][0]["endpoint"] if resource["nodes"] else None, False
    if not target:
        raise ApiFailure(
            "InvalidState", f"{resource['id']} has no endpoint yet (it is {resource['status']}); wait until it is available."
        )
    host, _, port = str(target).rpartition(":")
    number = int(port)
    if resource.get("tls_mode") == "preferred":
        # Plain text keeps the port while TLS is served on the next one (see the README).
        number = number + 1 if number < 65535 else number - 1
    return ConnectTarget(
        host, number, cluster_flag, bool(resource.get("tls")), bool(resource.get("auth")),
        user_groups=bool(resource.get("user_group_ids")),
    )
