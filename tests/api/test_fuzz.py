"""Model-driven fuzzing: whatever a client sends, the server answers a well-formed AWS result or
error below 500, keeps serving with flat memory, and leaves nothing half-created.

Every operation of botocore's ElastiCache model gets requests (``CACHEFLEET_FUZZ_REQUESTS``, default
3000, in all) whose values walk its input shape: valid-looking ones (names of resources that exist,
real node types and zones, so that deeper paths run and some creates succeed), and spoiled ones
(wrong types, out-of-range numbers, huge strings, empty strings and lists, unicode and control
characters, unknown members, duplicated list indexes). Half go through botocore with client-side
validation off, half as raw signed form posts, so that wrong types reach the server as they are.
The seed (``CACHEFLEET_FUZZ_SEED``; random by default) is printed with any failure.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import os
import random
import re
import string
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import parsers, serialize, xform_name
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from helpers import Server, engine_pids, engine_processes, error_code, raw_call, wait_for
from shapes import HUGE, Fuzzer, flatten, form_body, hostile_text, random_value

MODEL = botocore.session.get_session().get_service_model("elasticache")
OPERATIONS = sorted(MODEL.operation_names)
REGIONS = ("us-east-1", "eu-west-1")
NAMESPACE = "{" + MODEL.metadata["xmlNamespace"] + "}"
CREDENTIALS = Credentials("AKIDFUZZ", "secret")

# Creating nodes costs real engine processes; past this many cache clusters, requests that would
# add nodes are only sent spoiled. Creates are rarer than other valid requests for the same reason.
NODE_BUDGET = 14
SERVERLESS_SHARDS = 2  # the fuzz server's --serverless-sizing max_shards
GROWS = frozenset({"CreateReplicationGroup", "CreateCacheCluster", "IncreaseReplicaCount",
                   "ModifyReplicationGroupShardConfiguration", "CreateServerlessCache", "ModifyServerlessCache"})
# Growth of the API server's anonymous RSS over the run, after the warm-up, that still counts as
# flat: measured -0.8 to +2.7 MiB over 3000 requests (14 seeds); a leak of 1.4 KB per request
# would break it. And the longest any answer may take (measured at most 2.5 s on a loaded box).
RSS_BOUND_MIB = 4
SLOWEST_ANSWER_S = 10.0

# Modelled error codes answer with the model's status; the common AWS codes any Query service answers.
MODELLED = {
    shape.metadata["error"].get("code", shape.name): shape.metadata["error"].get("httpStatusCode", 400)
    for shape in MODEL.error_shapes
}
COMMON = {"MissingParameter", "InvalidParameterValue", "InvalidParameterCombination", "InvalidAction",
          "MalformedQueryString", "MissingAction", "MissingAuthenticationToken", "IncompleteSignature",
          "InvalidClientTokenId", "SignatureDoesNotMatch", "RequestExpired", "InvalidQueryParameter",
          "ValidationError", "Throttling", "RequestEntityTooLargeException"}
QUERY_PARSER = parsers.create_parser("query")
PAST_BODY_LIMIT = "Z" * (4 * 1024 * 1024 + 10)  # the server reads request bodies of up to 4 MiB
# The largest value the fuzz sends (see shapes.huge_text), and a value of percent-escapes only
# that fills a body to just under the limit.
_HUGEST = ("A" * 4 * HUGE, "\U0001f600" * 330_000)


@dataclass
class Answer:
    status: int
    body: bytes
    transport: str
    request: str  # what was sent, shortened, for the failure report
    took: float  # seconds from sending the request to reading the answer


@dataclass
class Pools:
    """Names the fuzz hands out as valid-looking values: resources it created, and fresh ones."""

    groups: list[str] = field(default_factory=list)
    clusters: list[str] = field(default_factory=list)
    subnet_groups: list[str] = field(default_factory=lambda: ["default"])
    tag_keys: list[str] = field(default_factory=lambda: ["team", "env", "Name"])


def _fresh(rng: random.Random) -> str:
    return "fz-" + rng.choice(string.ascii_lowercase) + "".join(rng.choices(string.ascii_lowercase + string.digits, k=5))


def hints(rng: random.Random, pools: Pools) -> dict[str, Callable[[], Any]]:
    """Valid-looking values by member name: what a careful client would send."""

    def pick(*sources: list[str]) -> Callable[[], str]:
        def value() -> str:
            pool = [name for source in sources for name in source]  # the pools as they are now
            roll = rng.random()
            if pool and roll < 0.6:
                return rng.choice(pool)
            if pool and roll < 0.7:
                return rng.choice(pool).upper()  # identifiers are case-insensitive
            return _fresh(rng)
        return value

    def some(make: Callable[[], Any], high: int = 3) -> Callable[[], list[Any]]:
        return lambda: [make() for _ in range(rng.randint(1, high))]

    def zone() -> str:
        return rng.choice(["us-east-1a", "us-east-1a", "us-east-1b", "us-east-1c", "us-east-1f", "eu-west-1a"])

    def arn() -> str:
        kind, pool = rng.choice([("replicationgroup", pools.groups), ("cluster", pools.clusters),
                                 ("subnetgroup", pools.subnet_groups), ("serverlesscache", []),
                                 ("reserved-instance", []), ("snapshot", []), ("user", []), ("usergroup", []),
                                 ("parametergroup", []), ("securitygroup", []), ("bogus", [])])
        region = rng.choice(["us-east-1"] * 8 + ["eu-west-1", "mars-north-1"])
        account = rng.choice(["000000000000"] * 9 + ["123456789012"])
        return f"arn:aws:elasticache:{region}:{account}:{kind}:{pick(pool)()}"

    def moment() -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(minutes=rng.randint(-240, 30))

    def marker() -> str:
        text = rng.choice([f"k:{any_name()}", f"o:{rng.randint(0, 120)}", "k:", "o:x", "zz"])
        return base64.urlsafe_b64encode(text.encode()).decode()

    group, cluster = pick(pools.groups), pick(pools.clusters)
    any_name = pick(pools.groups, pools.clusters, pools.subnet_groups)
    tag_key = pick(pools.tag_keys)
    return {
        "ReplicationGroupId": group, "PrimaryReplicationGroupId": group, "ReplicationGroupIds": some(group),
        "CacheClusterId": cluster, "PrimaryClusterId": cluster, "SnapshottingClusterId": cluster,
        "CacheClusterIds": some(cluster),
        "CacheSubnetGroupName": pick(pools.subnet_groups),
        "ResourceName": arn, "SourceIdentifier": any_name,
        # Mostly values the server accepts, with the mistakes a client makes now and then.
        "CacheNodeType": lambda: rng.choice(["cache.t4g.micro"] * 4 + ["cache.t4g.small", "cache.r7g.large",
                                             "cache.m5.large", "cache.t4g.nano", "CACHE.T4G.MICRO"]),
        "Engine": lambda: rng.choice(["valkey", "valkey", "valkey", "redis", "Valkey", "memcached"]),
        "EngineVersion": lambda: rng.choice(["8.1", "8.1", "9.1", "7.0", "8.1.8", "6.2"]),
        "CacheParameterGroupFamily": lambda: rng.choice(["valkey8", "valkey9", "redis7", "memcached1.6"]),
        "CacheParameterGroupName": lambda: rng.choice(["default.valkey8", "default.redis7", "default.valkey8.cluster.on",
                                                       _fresh(rng)]),
        "Port": lambda: 6379 if rng.random() < 0.8 else rng.randint(1024, 65535),
        "PreferredAvailabilityZone": zone, "PrimaryAvailabilityZone": zone,
        "PreferredAvailabilityZones": some(zone), "PreferredCacheClusterAZs": some(zone),
        "ReplicaAvailabilityZones": some(zone, 2), "NewAvailabilityZones": some(zone, 2),
        "SubnetIds": some(lambda: rng.choice(["subnet-us-east-1a", "subnet-us-east-1b", "subnet-us-east-1c-private",
                                              "subnet-us-east-1q", "subnet-12345678"])),
        "NumCacheClusters": lambda: rng.randint(1, 3), "ReplicasPerNodeGroup": lambda: rng.randint(0, 1),
        "NumNodeGroups": lambda: rng.randint(1, 2), "NodeGroupCount": lambda: rng.randint(1, 3),
        "NewReplicaCount": lambda: rng.randint(0, 2), "ReplicaCount": lambda: rng.randint(0, 1),
        "NumCacheNodes": lambda: 1,
        "NodeGroupId": lambda: rng.choice(["0001", "0002", "0003"]),
        "NodeGroupsToRemove": some(lambda: rng.choice(["0001", "0002", "0003"]), 2),
        "NodeGroupsToRetain": some(lambda: rng.choice(["0001", "0002", "0003"]), 2),
        "Slots": lambda: rng.choice(["0-8191", "8192-16383", "0-16383", "0-5460,5461-10922"]),
        "CacheNodeIdsToReboot": lambda: ["0001"],
        "MaxRecords": lambda: rng.randint(20, 100), "Marker": marker,
        "Duration": lambda: rng.randint(0, 20160), "StartTime": moment, "EndTime": moment,
        "PreferredMaintenanceWindow": lambda: rng.choice(["sun:05:00-sun:06:00", "mon:23:30-tue:00:30"]),
        "SnapshotWindow": lambda: rng.choice(["05:00-06:00", "23:30-00:30"]),
        "Tags": some(lambda: {"Key": tag_key(), "Value": rng.choice(["", "a", "fuzz"])}),
        "TagKeys": some(tag_key),
        "ReplicationGroupDescription": lambda: "fuzz", "CacheSubnetGroupDescription": lambda: "fuzz",
        "ApplyImmediately": lambda: True,
        "LogGroup": lambda: "fuzz-logs", "DeliveryStream": lambda: "fuzz-stream",
    }


class Fuzz:
    """One fuzz run against one server: sends, checks every answer, and keeps the names it created."""

    def __init__(self, server: Server, seed: int) -> None:
        self.server = server
        self.rng = random.Random(seed)
        self.pools = Pools()
        self.fuzzer = Fuzzer(self.rng, hints(self.rng, self.pools), usual=frozenset({"CacheNodeType", "Engine"}))
        self.client = boto3.client(
            "elasticache", endpoint_url=server.url, region_name=REGIONS[0],
            aws_access_key_id=CREDENTIALS.access_key, aws_secret_access_key=CREDENTIALS.secret_key,
            config=Config(parameter_validation=False, retries={"total_max_attempts": 1}, read_timeout=60),
        )
        # When botocore sent the request, and what came back (the round trip is what is timed).
        self._sent: list[float] = []
        self._captured: list[tuple[int, bytes, float]] = []
        self.client.meta.events.register("before-send.elasticache", lambda **_: self._sent.append(time.monotonic()))
        self.client.meta.events.register(
            "after-call.elasticache",
            lambda http_response, **_: self._captured.append(
                (http_response.status_code, http_response.content, time.monotonic())
            ),
        )
        self.codes: Counter[tuple[str, str]] = Counter()
        self.failures: dict[tuple[str, str], str] = {}
        self.sent = 0
        self.clusters_known = 0
        self.slowest: tuple[float, str] = (0.0, "")
        self.served: set[str] = set()
        self.turns: Counter[str] = Counter()
        self._queue: list[str] = []

    def seed_resources(self) -> None:
        """A standalone cluster, a group and a sharded group with replicas from the start, so that
        requests naming an existing resource (tags, modify, failover, reshard, reboot...) run from
        the first round, and the warm-up has run every workflow and engine once (the first sharded
        group with replicas raises the server's RSS by 4 MiB for good, the first Redis node by 2)."""
        ec = self.server.client()
        # One of each installed engine: the first node of an engine costs the server memory once.
        ec.create_cache_cluster(CacheClusterId="fz-seed", CacheNodeType="cache.t4g.micro", Engine="valkey",
                                EngineVersion="8.1")
        ec.create_replication_group(ReplicationGroupId="fz-seed-group", ReplicationGroupDescription="fuzz",
                                    CacheNodeType="cache.t4g.micro", Engine="redis", NumCacheClusters=2)
        ec.create_replication_group(ReplicationGroupId="fz-seed-shards", ReplicationGroupDescription="fuzz",
                                    CacheNodeType="cache.t4g.micro", Engine="valkey", EngineVersion="9.1",
                                    NumNodeGroups=2, ReplicasPerNodeGroup=1)
        # And a serverless cache: its first one costs the server memory once too (its workflow's passes).
        ec.create_serverless_cache(ServerlessCacheName="fz-seed-serverless", Engine="valkey")
        self.pools.clusters.append("fz-seed")
        self.pools.groups.extend(["fz-seed-group", "fz-seed-shards"])
        wait_for(lambda: not unsettled(self.server), timeout=60, interval=0.1, what="the seed resources")
        wait_for(lambda: ec.describe_serverless_caches(ServerlessCacheName="fz-seed-serverless")["ServerlessCaches"][0][
            "Status"] == "available", timeout=60, interval=0.1, what="the seed serverless cache")
        self.clusters_known = self._count_clusters()

    def heaviest(self) -> None:
        """The heaviest requests of each kind, once, before the warm-up's RSS is taken.

        Python keeps the small-object arenas a request filled, so RSS keeps its high-water mark;
        the mark is highest for a body of percent-escapes (decoding makes an object per escape:
        1.3 million for a body just under the 4 MiB limit) and for thousands of list items.
        """
        group = ("ReplicationGroupId", "fz-heavy"), ("ReplicationGroupDescription", "fuzz")
        shards = [(f"NodeGroupConfiguration.NodeGroupConfiguration.{index}.{member}", value)
                  for index in range(1, 5001) for member, value in (("ReplicaCount", "1"), ("Slots", "0-1"))]
        for name, pairs in [
            ("CreateReplicationGroup", [*group, *shards]),
            ("AddTagsToResource", [("ResourceName", "x"), *[(f"Tags.Tag.{i}.Key", "k" * 128) for i in range(1, 5001)]]),
            *[("DescribeCacheClusters", [("CacheClusterId", huge)]) for huge in _HUGEST],
            ("DescribeEvents", [("Duration", "20160"), ("MaxRecords", "100")]),
            ("DescribeEvents", [("Bogus", PAST_BODY_LIMIT)]),
        ]:
            body = form_body([("Action", name), ("Version", MODEL.api_version), *pairs])
            status, answer = post_form(self.server.url, body, region=REGIONS[0])
            self._check(name, Answer(status, answer, "form", name, 0.0), "heaviest")

    # ------------------------------------------------------------------ one request
    def round(self, count: int) -> None:
        for _ in range(count):
            self.one(self._next_operation())

    def _next_operation(self) -> str:
        """Every operation in turn; one the server does not serve yet (it never answered a result,
        MissingParameter or a modelled error) keeps a quarter of its turns after its first eight,
        so that most requests go where there is code to reach."""
        while True:
            if not self._queue:
                self._queue = list(OPERATIONS)
                self.rng.shuffle(self._queue)
            name = self._queue.pop()
            if name in self.served or self.turns[name] < 8 or self.rng.random() < 0.25:
                self.turns[name] += 1
                return name

    def one(self, name: str) -> None:
        operation = MODEL.operation_model(name)
        rng = self.rng
        roll = rng.random()
        growing = name in GROWS
        if growing and self.clusters_known >= NODE_BUDGET:
            roll = max(roll, 0.7)  # past the budget, only requests that (nearly) never pass the checks
        elif growing and rng.random() < 0.5:
            roll = max(roll, 0.3)  # fewer valid-looking creates than other valid-looking requests
        if roll < 0.3:
            params, mode = self.fuzzer.request(operation, hostility=0.0), "valid"
        elif roll < 0.7:
            params, mode = self.fuzzer.request(operation, hostility=0.0, spoil=rng.choice([1, 1, 2])), "spoiled"
        elif roll < 0.85:
            params = random_value(operation.input_shape, rng) if operation.input_shape else {}
            mode = "random"
        else:
            params, mode = self.fuzzer.request(operation, hostility=0.5, spoil=1), "wild"
        if name == "CreateServerlessCache" and isinstance(params, dict) and str(params.get("Engine")).lower() == "redis":
            # A Redis OSS serverless cache has TLS (the build has it), and a TLS node costs the server
            # about 1 MiB for good while it runs (its TLS connections; measured the same for a TLS
            # replication group): one made mid-run would pass the RSS bound without any leak.
            params["Engine"] = "valkey"
        answer = None
        # Huge values go as (cached) forms: botocore percent-encodes every request anew, and makes
        # a list of 400,000 items of a 400 KB string given for a list.
        if rng.random() < 0.5 and not _huge(params):
            answer = self._via_botocore(name, params)
        if answer is None:
            answer = self._via_form(operation, params, wire=rng.random() < 0.3)
        self.sent += 1
        if answer.took > self.slowest[0]:
            self.slowest = (answer.took, f"{name} [{mode}, {answer.transport}]: {answer.request[:300]}")
        code = self._check(name, answer, mode)
        self.codes[(name, code)] += 1
        if code in ("OK", "MissingParameter") or (code in MODELLED and code not in COMMON):
            self.served.add(name)
        if code == "OK" and name.startswith("Create"):
            self._remember(name, params)
        if code == "OK" and growing:
            self.clusters_known = self._count_clusters()

    def _via_botocore(self, name: str, params: dict[str, Any]) -> Answer | None:
        """None when botocore refuses the value itself (then it goes as a raw form instead)."""
        self._sent.clear()
        self._captured.clear()
        error = ""
        try:
            getattr(self.client, xform_name(name))(**params)
        except ClientError:
            pass
        except Exception as caught:  # noqa: BLE001 - botocore's serializer refuses many wrong types
            error = f"{type(caught).__name__}: {caught}"[:300]
        if not self._sent:
            return None
        if not self._captured:
            # Sent, but botocore could not read the answer: that is a failure of ours.
            failure = f"botocore could not read the answer: {error}".encode()
            return Answer(0, failure, "botocore", _short(params), time.monotonic() - self._sent[-1])
        status, body, received = self._captured[-1]
        return Answer(status, body, "botocore", _short(params), received - self._sent[-1])

    def _via_form(self, operation: Any, params: Any, *, wire: bool) -> Answer:
        pairs: list[tuple[str, str | bytes]] = [("Action", operation.name), ("Version", MODEL.api_version)]
        pairs += flatten(operation.input_shape, params)
        if wire:
            pairs = self.fuzzer.spoil_form(pairs)
        if self.rng.random() < 0.003:
            pairs.append(("Bogus", PAST_BODY_LIMIT))
        region = self.rng.choice([REGIONS[0]] * 16 + [REGIONS[1]] * 3 + ["US-EAST-1", "moon-base-1"])
        body = form_body(pairs)
        started = time.monotonic()
        status, answer = post_form(self.server.url, body, region=region)
        return Answer(status, answer, "form" + ("+wire" if wire else ""), _short(pairs), time.monotonic() - started)

    # ------------------------------------------------------------------ checks
    def _check(self, name: str, answer: Answer, mode: str) -> str:
        problem, code = well_formed(name, answer.status, answer.body)
        if problem:
            key = (name, problem.split(":")[0])
            self.failures.setdefault(
                key, f"{name} [{mode}, {answer.transport}] -> {answer.status}: {problem}\n    body: "
                f"{answer.body[:400]!r}\n    sent: {answer.request}",
            )
            return "FAILED"
        return code

    def _remember(self, name: str, params: dict[str, Any]) -> None:
        pool, member = {
            "CreateReplicationGroup": (self.pools.groups, "ReplicationGroupId"),
            "CreateCacheCluster": (self.pools.clusters, "CacheClusterId"),
            "CreateCacheSubnetGroup": (self.pools.subnet_groups, "CacheSubnetGroupName"),
        }.get(name, (None, ""))
        if pool is not None and isinstance(params.get(member), str):
            pool.append(params[member].lower())

    def _count_clusters(self) -> int:
        return sum(len(list_all(self.server.client(region=region), "describe_cache_clusters", "CacheClusters"))
                   + serverless_nodes(self.server, region) for region in REGIONS)


def well_formed(name: str, status: int, body: bytes) -> tuple[str, str]:
    """(problem, code): problem is empty when the answer is a well-formed result or AWS error."""
    if status >= 500 or status < 200:
        return f"status {status}", ""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as error:
        return f"not XML: {error}", ""
    tag = root.tag.removeprefix(NAMESPACE)
    if tag == "ErrorResponse":
        code = root.findtext(f"{NAMESPACE}Error/{NAMESPACE}Code") or ""
        kind = root.findtext(f"{NAMESPACE}Error/{NAMESPACE}Type")
        if not code or kind not in ("Sender", "Receiver") or not root.findtext(f"{NAMESPACE}Error/{NAMESPACE}Message"):
            return "error without Code, Type or Message", code
        if not root.findtext(f"{NAMESPACE}RequestId"):
            return "error without RequestId", code
        if code not in MODELLED and code not in COMMON:
            return f"unknown error code {code}", code
        if code in MODELLED and MODELLED[code] != status:
            return f"status {status} for {code}, the model says {MODELLED[code]}", code
        return "", code
    if tag != f"{name}Response" or status != 200:
        return f"unexpected answer {tag} with status {status}", ""
    operation = MODEL.operation_model(name)
    try:
        parsed = QUERY_PARSER.parse({"body": body, "headers": {}, "status_code": status}, operation.output_shape)
    except Exception as error:  # noqa: BLE001 - any failure to read it is the finding
        return f"result botocore cannot read: {error}", ""
    if not parsed.get("ResponseMetadata", {}).get("RequestId"):
        return "result without RequestId", ""
    return "", "OK"


def post_form(url: str, body: bytes, *, region: str) -> tuple[int, bytes]:
    request = AWSRequest(method="POST", url=url + "/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(CREDENTIALS, "elasticache", region).add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(raw, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _huge(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) >= HUGE
    if isinstance(value, dict):
        return any(_huge(item) for item in value.values())
    if isinstance(value, list):
        return any(_huge(item) for item in value)
    return False


def _short(value: Any) -> str:
    """The request as sent, with long strings cut down to their start and length."""
    def brief(item: Any) -> Any:
        if isinstance(item, str | bytes) and len(item) > 80:
            return f"{item[:24]!r}... ({len(item)} long)"
        if isinstance(item, dict):
            return {key: brief(value) for key, value in item.items()}
        if isinstance(item, list | tuple):
            shown = [brief(value) for value in item[:8]]
            return shown + [f"... ({len(item)} items)"] if len(item) > 8 else shown
        return item

    text = repr(brief(value))
    return text if len(text) < 1500 else text[:1500] + "..."


def list_all(ec: Any, method: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    return [item for page in ec.get_paginator(method).paginate(**kwargs) for item in page[key]]


def rss_mib(pid: int) -> float:
    """Anonymous resident memory (heap, stacks), the least of ten samples over half a second.

    Anonymous: file-backed pages are left out (the metric ring files are mapped, and their pages
    become resident as time advances). The least: a background step (a node starting, a sample
    being taken) holds a few MiB for a moment; a leak raises the floor as well.
    """
    samples = []
    for _ in range(10):
        with open(f"/proc/{pid}/status") as status:
            line = next(line for line in status if line.startswith("RssAnon:"))
        samples.append(int(line.split()[1]) / 1024)
        time.sleep(0.05)
    return min(samples)


@contextmanager
def seed_on_failure(seed: int) -> Iterator[None]:
    try:
        yield
    except Exception as error:
        raise AssertionError(f"{error}\n[fuzz seed {seed}: rerun with CACHEFLEET_FUZZ_SEED={seed}]") from error


# ---------------------------------------------------------------------- settling and clean-up
SETTLED = ("available", "create-failed")


def snapshot(server: Server) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every replication group and cache cluster of the server, by region/id."""
    groups, clusters = {}, {}
    for region in REGIONS:
        ec = server.client(region=region)
        for group in list_all(ec, "describe_replication_groups", "ReplicationGroups"):
            groups[f"{region}/{group['ReplicationGroupId']}"] = group
        for cluster in list_all(ec, "describe_cache_clusters", "CacheClusters", ShowCacheNodeInfo=True):
            clusters[f"{region}/{cluster['CacheClusterId']}"] = cluster
    return groups, clusters


def serverless_nodes(server: Server, region: str) -> int:
    """A serverless cache's nodes are not listed as cache clusters: two per shard, and as many shards
    as hold its DataStorage minimum (1 GiB each by default; the fuzz's data never scales one out)."""
    caches = server.client(region=region).describe_serverless_caches()["ServerlessCaches"]
    minimums = [(c.get("CacheUsageLimits") or {}).get("DataStorage", {}).get("Minimum") or 0 for c in caches]
    return sum(2 * min(SERVERLESS_SHARDS, max(1, math.ceil(m * 10**9 / 2**30))) for m in minimums)


def unsettled(server: Server) -> list[str]:
    groups, clusters = snapshot(server)
    return [f"{key} {g['Status']}" for key, g in groups.items() if g["Status"] not in SETTLED] + [
        f"{key} {c['CacheClusterStatus']}" for key, c in clusters.items() if c["CacheClusterStatus"] not in SETTLED
    ]


def incoherence(server: Server) -> list[str]:
    """What is half-made: members that do not exist or do not name their group back, engine
    processes no cache cluster owns, cluster records without a node."""
    groups, clusters = snapshot(server)
    problems = []
    for key, group in groups.items():
        region = key.split("/")[0]
        for member in group.get("MemberClusters", []):
            cluster = clusters.get(f"{region}/{member}")
            if cluster is None:
                problems.append(f"group {key} lists member {member}, which does not exist")
            elif cluster.get("ReplicationGroupId") != group["ReplicationGroupId"]:
                problems.append(f"group {key} lists {member}, which names {cluster.get('ReplicationGroupId')}")
    nodes: dict[str, str] = {}
    for key, cluster in clusters.items():
        region = key.split("/")[0]
        owner = cluster.get("ReplicationGroupId")
        if owner and cluster["CacheClusterId"] not in groups.get(f"{region}/{owner}", {}).get("MemberClusters", []):
            problems.append(f"cluster {key} names group {owner}, which does not list it")
        cache_nodes = cluster.get("CacheNodes", [])
        if not cache_nodes or not cache_nodes[0].get("Endpoint", {}).get("Address"):
            problems.append(f"cluster {key} ({cluster['CacheClusterStatus']}) has no node")
            continue
        nodes[cache_nodes[0]["Endpoint"]["Address"]] = f"{key} {cluster['CacheClusterStatus']}"
    processes = engine_processes(server.data_dir)
    running = Counter(address for address, _ in processes)
    hidden = sum(serverless_nodes(server, region) for region in REGIONS)
    unowned = [address for address in running if address not in nodes]
    if len(unowned) > hidden:  # the nodes of serverless caches are no cache clusters of the API
        problems.append(f"engine processes of {', '.join(sorted(unowned))} belong to no cache cluster "
                        f"({hidden} serverless cache nodes expected)")
    for address, count in running.items():
        if count > 1:
            problems.append(f"{count} engine processes for node {address}")
    for address, owner in nodes.items():
        if owner.endswith(" available") and address not in running:
            problems.append(f"available cluster {owner} has no engine process")
    return problems


def delete_everything(server: Server) -> None:
    def serverless_gone() -> bool:
        left = 0
        for region in REGIONS:  # a cache still being created is deleted once it is available
            ec = server.client(region=region)
            for cache in ec.describe_serverless_caches()["ServerlessCaches"]:
                left += 1
                if cache["Status"] in ("available", "create-failed"):
                    ec.delete_serverless_cache(ServerlessCacheName=cache["ServerlessCacheName"])
        return left == 0

    wait_for(serverless_gone, timeout=60, interval=0.2, what="every serverless cache to be deleted")
    groups, clusters = snapshot(server)
    for key in groups:
        region, group_id = key.split("/")
        server.client(region=region).delete_replication_group(ReplicationGroupId=group_id)
    for key, cluster in clusters.items():
        region, cluster_id = key.split("/")
        if not cluster.get("ReplicationGroupId"):
            server.client(region=region).delete_cache_cluster(CacheClusterId=cluster_id)
    wait_for(lambda: snapshot(server) == ({}, {}), timeout=60, interval=0.2, what="every fuzz resource to be deleted")
    for region in REGIONS:
        ec = server.client(region=region)
        for subnet_group in list_all(ec, "describe_cache_subnet_groups", "CacheSubnetGroups"):
            if subnet_group["CacheSubnetGroupName"] != "default":
                ec.delete_cache_subnet_group(CacheSubnetGroupName=subnet_group["CacheSubnetGroupName"])


# ---------------------------------------------------------------------- the tests
def test_fuzz_every_operation(make_server, monkeypatch):
    # glibc raises its mmap threshold after freeing a large block and then keeps later request
    # buffers (up to 4 MiB) in its heap; RSS would saw by 20 MiB with nothing leaking. A fixed
    # threshold makes the server's RSS follow its live memory: churn stays flat, a leak shows.
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    seed = int(os.environ.get("CACHEFLEET_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    total = int(os.environ.get("CACHEFLEET_FUZZ_REQUESTS") or 3000)
    print(f"fuzz seed {seed}, {total} requests")
    # A serverless cache has at most two shards here: one request cannot start 30 nodes past the budget.
    server = make_server("--serverless-sizing", f"max_shards={SERVERLESS_SHARDS}")
    assert server.process is not None
    fuzz = Fuzz(server, seed)
    started = time.monotonic()
    with seed_on_failure(seed):
        # Warm-up: nodes run, and the code paths the run takes have loaded their models and
        # compiled their writers.
        fuzz.seed_resources()
        fuzz.heaviest()
        fuzz.round(max(len(OPERATIONS) * 4, total // 4))
        warm_rss = rss_mib(server.process.pid)
        fuzz.round(total)
        after_rss = rss_mib(server.process.pid)
        elapsed = time.monotonic() - started
        if fuzz.failures:  # raised, not asserted: pytest would print the whole dict again
            report = "\n".join(sorted(fuzz.failures.values()))
            raise AssertionError(f"{len(fuzz.failures)} kinds of bad answers in {fuzz.sent} requests:\n{report}")

        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as response:
            assert json.loads(response.read())["pid"] == server.process.pid
        called = {name for name, _ in fuzz.codes}
        assert called == set(OPERATIONS), sorted(set(OPERATIONS) - called)
        answered = Counter(code for (_, code), count in fuzz.codes.items() for _ in range(count))
        if total >= 1000:
            assert answered["OK"] >= total // 50, answered.most_common(12)
            assert len(fuzz.pools.groups) + len(fuzz.pools.clusters) > 3, "no create succeeded: the valid-looking values are off"
        assert fuzz.slowest[0] <= SLOWEST_ANSWER_S, f"an answer took {fuzz.slowest[0]:.1f} s: {fuzz.slowest[1]}"
        assert after_rss - warm_rss <= RSS_BOUND_MIB, (
            f"server RSS grew from {warm_rss:.1f} MiB after warm-up to {after_rss:.1f} MiB after {total} requests"
        )

        # Nothing half-created: everything settles, hangs together, and goes away with its processes.
        wait_for(lambda: not unsettled(server), timeout=60, interval=0.2, what="fuzz resources to settle")
        problems = incoherence(server)
        assert not problems, "\n".join(problems)
        delete_everything(server)
        wait_for(lambda: not engine_pids(server.data_dir), timeout=30, what="every engine process to stop")
    print(f"fuzz: {fuzz.sent} requests in {elapsed:.1f} s, RSS {warm_rss:.1f} -> {after_rss:.1f} MiB, "
          f"{len(fuzz.pools.groups)} groups and {len(fuzz.pools.clusters)} clusters created, slowest answer "
          f"{fuzz.slowest[0]:.2f} s; "
          f"answers: {answered.most_common(10)}")


def test_random_cloudwatch_requests_in_every_protocol(server):
    import cbor2

    model = botocore.session.get_session().get_service_model("cloudwatch")
    rng = random.Random(20261130)
    seen: Counter[str] = Counter()
    served = ["DeleteAlarms", "DescribeAlarmHistory", "DescribeAlarms", "DescribeAlarmsForMetric", "DisableAlarmActions",
              "EnableAlarmActions", "GetMetricData", "GetMetricStatistics", "ListMetrics", "PutMetricAlarm", "SetAlarmState",
              "ListDashboards"]
    for operation_name in served:
        operation = model.operation_model(operation_name)
        for round_number in range(10):
            protocol = ("json", "smithy-rpc-v2-cbor", "query")[round_number % 3]
            try:
                params = random_value(operation.input_shape, rng) if operation.input_shape else {}
                request = serialize.create_serializer(protocol).serialize_to_request(params, operation)
            except Exception:  # noqa: BLE001 - botocore refuses some random values itself
                continue
            if protocol == "query":
                status, text = raw_call(server.url, {k: str(v) for k, v in request["body"].items()}, service="monitoring")
                assert status < 500, (operation_name, text)
                ElementTree.fromstring(text)
                code = re.search(r"<Code>([^<]*)</Code>", text)
                seen[code.group(1) if code else "OK"] += 1
                continue
            body = request["body"] if isinstance(request["body"], bytes) else request["body"].encode()
            if rng.random() < 0.3:
                body = body[: len(body) // 2]  # a truncated document
            if rng.random() < 0.2:
                body = body.replace(b"a", hostile_text(rng).encode("utf-8", "replace")[:64], 1)
            aws = AWSRequest(method="POST", url=server.url + request["url_path"], data=body, headers=request["headers"])
            SigV4Auth(Credentials("a", "b"), "monitoring", "us-east-1").add_auth(aws)
            prepared = aws.prepare()
            raw = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST")
            try:
                with urllib.request.urlopen(raw, timeout=30) as response:
                    status, data = response.status, response.read()
            except urllib.error.HTTPError as error:
                status, data = error.code, error.read()
            assert status < 500, (operation_name, protocol, data)
            document = json.loads(data) if protocol == "json" else cbor2.loads(data)
            code = document.get("__type", "OK") if isinstance(document, dict) else "OK"
            seen[code] += 1
    assert seen["OK"] > 0 and len(seen) > 3
    assert server.client("cloudwatch").list_metrics(Namespace="AWS/ElastiCache")


# Requests the fuzz found answering 500 (or plain text), and what they answer now.
FOUND = [
    ({"Action": "ListTagsForResource", "ResourceName": "arn:aws:elasticache:us-east-1:000000000000:serverlesscache:gone"},
     404, "ServerlessCacheNotFoundFault"),
    ({"Action": "ListTagsForResource", "ResourceName": "arn:aws:elasticache:us-east-1:000000000000:reserved-instance:gone"},
     404, "ReservedCacheNodeNotFound"),
    ({"Action": "DescribeEvents", "StartTime": "9999-12-31T23:59:59Z", "Duration": "60"}, 200, ""),
    ({"Action": "DescribeEvents", "EndTime": "0001-01-01T00:00:00Z"}, 200, ""),
    ({"Action": "DescribeEvents", "StartTime": "99999999999999999999"}, 400, "InvalidParameterValue"),
    ({"Action": "DescribeEvents", "Bogus": PAST_BODY_LIMIT}, 413, "RequestEntityTooLargeException"),
    # Python's int() read these as 7 and 1000: a group of seven shards was created, past every check.
    ({"Action": "CreateReplicationGroup", "ReplicationGroupId": "fz-digits", "ReplicationGroupDescription": "d",
      "CacheNodeType": "cache.t4g.micro", "NumNodeGroups": "\u0667"}, 400, "InvalidParameterValue"),
    ({"Action": "CreateCacheCluster", "CacheClusterId": "fz-digits", "CacheNodeType": "cache.t4g.micro",
      "Port": "1_000"}, 400, "InvalidParameterValue"),
]


@pytest.mark.parametrize(("params", "status", "code"), FOUND, ids=lambda value: str(value)[:60])
def test_what_the_fuzz_found(server, params, status, code):
    answer_status, text = raw_call(server.url, {"Version": MODEL.api_version, **params})
    assert (answer_status, error_code(text)) == (status, code), text[:500]
    assert not well_formed(params["Action"], answer_status, text.encode())[0], text[:500]
