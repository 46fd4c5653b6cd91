"""The model-driven fuzzer: requests over botocore's ElastiCache and CloudWatch models, fuzzed SigV4
headers, and the checks every answer must pass (a well-formed AWS result or error below 500).

Shared by ``tests/api/test_fuzz.py`` (every operation, a few thousand requests, nothing half-created)
and ``tests/reliability/test_fuzz_at_scale.py`` (100,000 requests from a few threads; RSS, open fds
and threads flat).

Every operation of botocore's ElastiCache model gets requests whose values walk its input shape:
valid-looking ones (names of resources that exist, real node types and zones, so that deeper paths
run and some creates succeed), and spoiled ones (wrong types, out-of-range numbers, huge strings,
empty strings and lists, unicode and control characters, unknown members, duplicated list indexes).
Half go through botocore with client-side validation off, half as raw signed form posts, so that
wrong types reach the server as they are.
"""


from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import math
import os
import random
import re
import string
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.session
from botocore import parsers, serialize, xform_name
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from helpers import Server, engine_processes, raw_call, wait_for
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
    """One fuzz run against one server: sends, checks every answer, and keeps the names it created.

    Not thread-safe (its random source, botocore client and counters are its own): concurrent runs
    take one Fuzz each, and may share one ``pools`` (list appends are atomic). ``node_budget``: past
    this many cache clusters on the server, requests that would add nodes are only sent spoiled.
    """

    def __init__(self, server: Server, seed: int, *, pools: Pools | None = None, node_budget: int = NODE_BUDGET) -> None:
        self.server = server
        self.rng = random.Random(seed)
        self.pools = pools if pools is not None else Pools()
        self.node_budget = node_budget
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
        self.statuses: Counter[str] = Counter()  # answers by status class: "2xx", "4xx", "5xx"
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

    def valid_create(self, tries: int = 40) -> bool:
        """Valid-looking creates until one passes: whether the valid-looking values still make
        requests the server accepts. About 3 in 10 pass (measured over 240: the hints' deliberate
        mistakes, such as memcached or cache.t4g.nano, refuse the rest), so 40 all refused happen
        by chance about once in a million runs; a generator gone stale refuses every one."""
        for _ in range(tries):
            created = len(self.pools.groups) + len(self.pools.clusters)
            self.one(self.rng.choice(["CreateReplicationGroup", "CreateCacheCluster"]), valid=True)
            if len(self.pools.groups) + len(self.pools.clusters) > created:
                return True
        return False

    def one(self, name: str, *, valid: bool = False) -> None:
        operation = MODEL.operation_model(name)
        rng = self.rng
        growing = name in GROWS
        if valid:
            roll = 0.0  # valid-looking, whatever the budget (valid_create)
        else:
            roll = rng.random()
            if growing and self.clusters_known >= self.node_budget:
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
        self.statuses[status_class(answer.status)] += 1
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


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "no answer"


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

    def global_gone() -> bool:
        """Global datastores first (a member group cannot be deleted): secondaries disassociated,
        then the datastore deleted keeping its primary, each once it is settled."""
        ec = server.client()
        found = ec.describe_global_replication_groups(ShowMemberInfo=True)["GlobalReplicationGroups"]
        for record in found:
            if record["Status"] not in ("available", "primary-only"):
                continue
            global_id = record["GlobalReplicationGroupId"]
            secondaries = [m for m in record.get("Members", []) if m["Role"] == "SECONDARY"]
            for member in secondaries:
                with contextlib.suppress(ClientError):  # one at a time: the next pass takes the next
                    ec.disassociate_global_replication_group(
                        GlobalReplicationGroupId=global_id, ReplicationGroupId=member["ReplicationGroupId"],
                        ReplicationGroupRegion=member["ReplicationGroupRegion"])
                break
            else:
                with contextlib.suppress(ClientError):
                    ec.delete_global_replication_group(GlobalReplicationGroupId=global_id,
                                                       RetainPrimaryReplicationGroup=True)
        return not found

    wait_for(global_gone, timeout=60, interval=0.2, what="every global datastore to be deleted")
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




def process_figures(pid: int) -> dict[str, float]:
    """What a leak would raise, from /proc: resident memory (VmRSS, and its anonymous part RssAnon,
    in MiB, the least of ten samples over half a second, see ``rss_mib``), threads and open fds."""
    rss, anon = [], []
    for _ in range(10):
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        rss.append(int(fields["VmRSS"].split()[0]) / 1024)
        anon.append(int(fields["RssAnon"].split()[0]) / 1024)
        time.sleep(0.05)
    kinds = fd_kinds(pid)
    return {"rss_mib": min(rss), "anon_mib": min(anon), "threads": int(fields["Threads"]),
            "fds": sum(kinds.values()), "fd_kinds": kinds}


def fd_kinds(pid: int) -> dict[str, int]:
    """A process's open fds by kind: socket, pipe, anon_inode ([pidfd], [eventpoll]), or a file by its
    extension ("file ring": a metric ring file, two fds each: the file's and CPython's mmap duplicate)."""
    kinds: Counter[str] = Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        kinds[target.split(":")[0] if ":" in target else "file " + target.rsplit(".", 1)[-1][-8:]] += 1
    return dict(sorted(kinds.items()))


# ---------------------------------------------------------------------- CloudWatch, in every protocol
CLOUDWATCH = botocore.session.get_session().get_service_model("cloudwatch")
CLOUDWATCH_SERVED = ("DeleteAlarms", "DescribeAlarmHistory", "DescribeAlarms", "DescribeAlarmsForMetric",
                     "DisableAlarmActions", "EnableAlarmActions", "GetMetricData", "GetMetricStatistics", "ListMetrics",
                     "PutMetricAlarm", "SetAlarmState", "ListDashboards")
CLOUDWATCH_PROTOCOLS = ("json", "smithy-rpc-v2-cbor", "query")


@dataclass
class CloudWatchAnswer:
    status: int
    code: str  # the error code, "OK" for a result
    problem: str  # empty when the answer is a well-formed result or error below 500
    request: str


def cloudwatch_request(url: str, rng: random.Random, operation_name: str, protocol: str,
                       credentials: Credentials = CREDENTIALS) -> CloudWatchAnswer | None:
    """One random CloudWatch request in ``protocol`` (values from the input shape, and for JSON and
    CBOR now and then a truncated document or hostile bytes inside it); None when botocore's
    serializer refuses the random value itself."""
    import cbor2

    operation = CLOUDWATCH.operation_model(operation_name)
    try:
        params = random_value(operation.input_shape, rng) if operation.input_shape else {}
        request = serialize.create_serializer(protocol).serialize_to_request(params, operation)
    except Exception:  # noqa: BLE001 - botocore refuses some random values itself
        return None
    what = f"{operation_name} [{protocol}] {_short(params)}"
    if protocol == "query":
        status, text = raw_call(url, {k: str(v) for k, v in request["body"].items()}, service="monitoring",
                                access_key=credentials.access_key, secret_key=credentials.secret_key)
        if status >= 500:
            return CloudWatchAnswer(status, "", f"status {status}: {text[:300]}", what)
        try:
            ElementTree.fromstring(text)
        except ElementTree.ParseError as error:
            return CloudWatchAnswer(status, "", f"not XML: {error}: {text[:300]}", what)
        code = re.search(r"<Code>([^<]*)</Code>", text)
        return CloudWatchAnswer(status, code.group(1) if code else "OK", "", what)
    body = request["body"] if isinstance(request["body"], bytes) else request["body"].encode()
    if rng.random() < 0.3:
        body = body[: len(body) // 2]  # a truncated document
    if rng.random() < 0.2:
        body = body.replace(b"a", hostile_text(rng).encode("utf-8", "replace")[:64], 1)
    if protocol == "json" and rng.random() < 0.1:
        body = body.replace(b'": "', b'": "\\udced', 1)  # a lone surrogate, as JSON can escape one
    if rng.random() < 0.02:
        body = rng.choice([b"[" * 100_000, b'{"a":' * 50_000, b"\x81" * 100_000 + b"\x00", b"\x9f" * 100_000])  # nested deep
    aws = AWSRequest(method="POST", url=url + request["url_path"], data=body, headers=request["headers"])
    SigV4Auth(credentials, "monitoring", "us-east-1").add_auth(aws)
    prepared = aws.prepare()
    raw = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(raw, timeout=60) as response:
            status, data = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, data = error.code, error.read()
    if status >= 500:
        return CloudWatchAnswer(status, "", f"status {status}: {data[:300]!r}", what)
    try:
        document = json.loads(data) if protocol == "json" else cbor2.loads(data)
    except Exception as error:  # noqa: BLE001 - any failure to read it is the finding
        return CloudWatchAnswer(status, "", f"not {protocol}: {error}: {data[:300]!r}", what)
    code = document.get("__type", "OK") if isinstance(document, dict) else "OK"
    return CloudWatchAnswer(status, code, "", what)


# ---------------------------------------------------------------------- SigV4, fuzzed
class _SignedAt(SigV4Auth):
    """botocore's signer at a given X-Amz-Date (any text: a skewed clock, another format)."""

    def __init__(self, credentials: Credentials, service: str, region: str, when: str) -> None:
        super().__init__(credentials, service, region)
        self._when = when

    def _modify_request_before_signing(self, request: AWSRequest) -> None:
        request.context["timestamp"] = self._when
        super()._modify_request_before_signing(request)


@dataclass
class RawRequest:
    method: str
    target: str  # path and query, as sent
    headers: list[tuple[str, bytes]]  # names as they are, values as bytes (not necessarily UTF-8)
    body: bytes

    def header(self, name: str) -> bytes | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def set(self, name: str, value: bytes | None) -> None:
        self.headers = [(key, old) for key, old in self.headers if key.lower() != name.lower()]
        if value is not None:
            self.headers.append((name, value))

    def wire(self) -> bytes:
        lines = [f"{self.method} {self.target} HTTP/1.1".encode("utf-8", "surrogateescape")]
        lines += [key.encode("latin-1") + b": " + value for key, value in self.headers]
        if self.header("Content-Length") is None and self.header("Transfer-Encoding") is None:
            lines.append(b"Content-Length: " + str(len(self.body)).encode())
        lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body


@dataclass
class RawAnswer:
    status: int  # 0: no answer
    headers: dict[str, str]
    body: bytes
    took: float


def send_raw(port: int, request: RawRequest, timeout: float = 60.0) -> RawAnswer:
    """One request over its own connection, bytes as they are; the first answer on it."""
    import socket

    started = time.monotonic()
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(request.wire())
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (and closed) before reading it all: the answer may be waiting
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    took = time.monotonic() - started
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return RawAnswer(0, {}, data[:300], took)
    headers = dict(
        (name.strip().lower(), value.strip())
        for name, value in (line.decode("latin-1").split(":", 1) for line in lines[1:] if b":" in line)
    )
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        body = body[: int(length)]  # a second answer (to what followed a short Content-Length) is not ours
    return RawAnswer(status, headers, body, took)


_SPOILED_DATES = (
    "", "2026-12-02T14:00:00Z", "Wed, 02 Dec 2026 14:00:00 GMT", "1764684000", "20261202T250000Z", "20261302T000000Z",
    "20261202T000000", "20261202t000000z", "99991231T235959Z", "00010101T000000Z", "20261202T000000Z\x00", "now",
    "\U0001f600" * 8 + "T000000Z", "2" * 400,
)
_ALGORITHMS = ("AWS4-HMAC-SHA1", "aws4-hmac-sha256", "AWS", "AWS4-ECDSA-P256-SHA256", "", "AWS4-HMAC-SHA256AWS4-HMAC-SHA256")
_CONTENT_TYPES = (b"application/json", b"text/plain", b"multipart/form-data; boundary=zz", b"application/xml",
                  b"application/x-www-form-urlencoded; charset=latin-1", b"application/x-www-form-urlencoded; charset",
                  b";;;", b"", b"\xff\xfe", b"text/\xc3\xa9", b"application/x-amz-json-1.1", b"application/cbor")


class SigV4Fuzz:
    """Requests whose signature, headers or body encoding are spoiled: a missing or malformed
    Authorization header, a signature that does not match, bad credential scopes (access key, date,
    region, service, terminator), X-Amz-Date in other formats or off the clock, huge and many
    headers, header bytes that are not UTF-8, other Content-Types and Content-Encodings, bodies that
    are not UTF-8 form data, presigned URLs with bad parameters, other methods and paths, framing.

    Every request starts as a well-signed DescribeCacheEngineVersions (Query protocol), and gets one
    or two spoils; a spoil that breaks what was signed must be refused (a server checking signatures
    must not answer 2xx), the others may pass. ``credentials`` must be known to the server.
    """

    ACTION = b"Action=DescribeCacheEngineVersions&Version=2015-02-02&MaxRecords=20"

    def __init__(self, rng: random.Random, port: int, credentials: Credentials = CREDENTIALS) -> None:
        self.rng = rng
        self.port = port
        self.credentials = credentials
        self.spoils: list[tuple[str, Callable[[RawRequest], bool]]] = [
            (name.removeprefix("_spoil_"), getattr(self, name)) for name in sorted(dir(self)) if name.startswith("_spoil_")
        ]

    # ------------------------------------------------------------------ building
    def signed(self, *, body: bytes | None = None, when: str | None = None, service: str = "elasticache",
               region: str = "us-east-1", content_type: bytes | None = b"application/x-www-form-urlencoded; charset=utf-8",
               path: str = "/", headers: dict[str, str] | None = None) -> RawRequest:
        """A well-signed POST (of ``ACTION`` unless another body is given)."""
        body = self.ACTION if body is None else body
        url = f"http://127.0.0.1:{self.port}{path}"
        headers = dict(headers or {})
        if content_type is not None:
            headers["Content-Type"] = content_type.decode("latin-1")
        aws = AWSRequest(method="POST", url=url, data=body, headers=headers)
        when = when or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        _SignedAt(self.credentials, service, region, when).add_auth(aws)
        prepared = aws.prepare()
        sent = [("Host", f"127.0.0.1:{self.port}".encode())]
        sent += [(key, value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value)
                 for key, value in prepared.headers.items() if key.lower() not in ("host", "content-length")]
        return RawRequest("POST", path, sent, body)

    # Spoils that sign the request anew (undoing any spoil before them) or replace it: at most one per
    # request, and first.
    RESIGNING = frozenset({"content_type", "date", "body_encoding", "presigned"})

    def request(self) -> tuple[str, RawRequest, bool]:
        """(what was spoiled, the request, whether it must be refused)."""
        request = self.signed()
        chosen = [self.rng.choice(self.spoils)]
        if self.rng.random() < 0.2 and chosen[0][0] != "presigned":
            second = self.rng.choice([spoil for spoil in self.spoils
                                      if spoil[0] not in self.RESIGNING and spoil[0] != chosen[0][0]])
            chosen = sorted([*chosen, second], key=lambda spoil: spoil[0] not in self.RESIGNING)
        refuse = False
        for _, spoil in chosen:
            refuse = spoil(request) or refuse
        return "+".join(name for name, _ in chosen), request, refuse

    def _hostile(self) -> bytes:
        text = hostile_text(self.rng)
        if self.rng.random() < 0.3:
            return text.encode("latin-1", "replace")
        return text.encode("utf-8", "surrogatepass")[:20000]

    def _authorization(self, request: RawRequest) -> str:
        return (request.header("Authorization") or b"").decode("latin-1")

    def _replace(self, request: RawRequest, name: str, value: bytes) -> bool:
        """Sets a header; True when that breaks the signature (the header is signed, or is X-Amz-Date)."""
        before = request.header(name)
        request.set(name, value)
        signed = re.search(r"SignedHeaders=([^,\s]+)", self._authorization(request))
        covered = name.lower() == "x-amz-date" or bool(signed and name.lower() in signed.group(1).split(";"))
        return covered and value != before

    # ------------------------------------------------------------------ spoils (True: must be refused)
    def _spoil_no_authorization(self, request: RawRequest) -> bool:
        request.set("Authorization", None)
        if self.rng.random() < 0.5:
            request.set("X-Amz-Date", None)
        return True

    def _spoil_authorization_text(self, request: RawRequest) -> bool:
        rng = self.rng
        header = self._authorization(request)
        if not re.search(r"Credential=[^,]+, ?SignedHeaders=[^,]+, ?Signature=", header):
            return self._spoil_no_authorization(request)
        choice = rng.random()
        if choice < 0.3:
            value = self._hostile()
        elif choice < 0.5:
            value = header.replace("AWS4-HMAC-SHA256", rng.choice(_ALGORITHMS), 1).encode()
        elif choice < 0.7:
            part = rng.choice(["Credential=", "SignedHeaders=", "Signature="])
            start = header.index(part)
            end = header.find(",", start)
            value = (header[:start] + (header[end + 1:] if end >= 0 else "")).encode()  # a part left out
        elif choice < 0.85:
            head, _, signature = header.rpartition("Signature=")
            value = (head + "Signature=" + rng.choice([signature[:-1], signature + "0", signature.upper(),
                                                       "z" * 64, "", signature * 200])).encode()
        else:
            value = rng.choice([header + ", Signature=" + "0" * 64, header.replace(", ", ",,", 1),
                                header + "\x00", header.replace("=", " = "), "Bearer " + header]).encode("utf-8")
        request.set("Authorization", value)
        return value != header.encode()

    def _spoil_credential_scope(self, request: RawRequest) -> bool:
        rng = self.rng
        header = self._authorization(request)
        credential = re.search(r"Credential=([^/,]*/[^/,]*/[^/,]*/[^/,]*/[^/,]*),", header)
        if credential is None:
            return self._spoil_no_authorization(request)
        key, date, region, service, terminator = credential.group(1).split("/")
        index = rng.randrange(6)
        parts = [key, date, region, service, terminator]
        bad = {
            0: ["AKIDNOBODY", "", "akidfuzz", "\u00e9" * 5, "A" * 5000, "AKIDFUZZ "],
            1: ["", "2026-12-02", "0000000", "00000000", "99999999", "\u0661" * 8,
                "19700101", "20991231"],
            2: ["moon-base-1", "", "US-EAST-1", "us-east-1 ", "eu-west-1", "a" * 3000, "us-\u00e9ast-1", "us_east_1"],
            3: ["s3", "", "ELASTICACHE", "monitoring", "logs", "elasticache\u00e9", "sts"],
            4: ["aws4_request2", "", "AWS4_REQUEST", "aws4_request/extra"],
        }
        if index < 5:
            parts[index] = rng.choice([value for value in bad[index] if value != parts[index]])
            scope = "/".join(parts)
        else:
            scope = rng.choice(["/".join(parts[:4]), "/".join(parts + ["x"]), "", "////", key])
        value = header.replace(credential.group(1), scope, 1).encode("utf-8", "surrogatepass")
        request.set("Authorization", value)
        return True

    def _spoil_date(self, request: RawRequest) -> bool:
        rng = self.rng
        choice = rng.random()
        now = dt.datetime.now(dt.UTC)
        if choice < 0.35:  # well signed, at another moment or in another format
            minutes = rng.choice([-20, -16, 16, 20, -60 * 24 * 400, 60 * 24 * 30])
            when = rng.choice([(now + dt.timedelta(minutes=minutes)).strftime("%Y%m%dT%H%M%SZ"), *_SPOILED_DATES[1:]])
            signed = self.signed(when=when)
            request.headers, request.body = signed.headers, signed.body
            return True
        if choice < 0.5:
            request.set("X-Amz-Date", None)
            return True
        if choice < 0.6:  # a Date header besides X-Amz-Date, or instead
            request.set("Date", now.strftime("%a, %d %b %Y %H:%M:%S GMT").encode())
            if rng.random() < 0.5:
                request.set("X-Amz-Date", None)
                return True
            return False
        value = rng.choice(_SPOILED_DATES).encode("utf-8")
        original = request.header("X-Amz-Date")
        request.set("X-Amz-Date", value)
        return value != original

    def _spoil_huge_headers(self, request: RawRequest) -> bool:
        rng = self.rng
        choice = rng.random()
        if choice < 0.4:
            size = rng.choice([1000, 8000, 8190, 8191, 16384, 65536, 1 << 20])
            request.set("X-Fuzz", b"a" * size)
            return False
        if choice < 0.6:
            for index in range(rng.choice([50, 99, 100, 101, 200, 1000])):
                request.headers.append((f"X-Fuzz-{index}", b"x" * rng.choice([1, 100])))
            return False
        if choice < 0.8:
            request.headers.append(("X-" + "N" * rng.choice([100, 8190, 9000, 70000]), b"1"))
            return False
        request.set("Authorization", self._authorization(request).encode() + b"," + b"A" * rng.choice([8000, 70000]))
        return True

    def _spoil_signature(self, request: RawRequest) -> bool:
        rng = self.rng
        header = self._authorization(request)
        if not re.search(r"Credential=[^,]+, ?SignedHeaders=[^,]+, ?Signature=", header):
            return self._spoil_no_authorization(request)
        choice = rng.random()
        if choice < 0.25:
            head, _, signature = header.rpartition("Signature=")
            flipped = signature[:-1] + ("1" if signature.endswith("0") else "0")
            request.set("Authorization", (head + "Signature=" + flipped).encode())
        elif choice < 0.45:  # the body changed after signing (framed anew: a Content-Length or chunking
            # set by an earlier spoil for the old body would leave the server waiting for bytes never sent)
            request.set("Content-Length", None)
            request.set("Transfer-Encoding", None)
            request.body = rng.choice([self.ACTION.replace(b"20", b"21"), self.ACTION + b"&Engine=valkey",
                                       b"Action=DeleteCacheCluster&Version=2015-02-02&CacheClusterId=x", b""])
        elif choice < 0.55:
            return self._replace(request, "Host", rng.choice([b"127.0.0.1", b"localhost:1", b"", b"\xff"]))
        elif choice < 0.7:
            return self._replace(request, "Content-Type", rng.choice(_CONTENT_TYPES[:-1]))  # signed, then changed
        elif choice < 0.85:
            signed_headers = rng.choice(["content-type;host;x-amz-date;x-missing", "content-type;x-amz-date", "host",
                                         "", ";;", "HOST;X-AMZ-DATE", "content-type;host;x-amz-date;" + "h" * 9000])
            before = re.search(r"SignedHeaders=([^,]+)", header)
            request.set("Authorization", re.sub(r"SignedHeaders=[^,]+", "SignedHeaders=" + signed_headers,
                                                header).encode())
            # Names are compared in lower case (as signers write them): the same list in capitals still matches.
            return before is None or before.group(1).lower() != signed_headers.lower()
        else:
            request.set("X-Amz-Content-Sha256", rng.choice([b"0" * 64, b"UNSIGNED-PAYLOAD", self._hostile().strip() or b"x"]))
        return True

    def _spoil_content_type(self, request: RawRequest) -> bool:
        """Signed as it is: the server may take any Content-Type as a form, but never fails on one."""
        choice = self.rng.choice([*_CONTENT_TYPES, None])
        signed = self.signed(content_type=choice)
        request.headers, request.body = signed.headers, signed.body
        return False

    def _spoil_body_encoding(self, request: RawRequest) -> bool:
        rng = self.rng
        import gzip
        import zlib

        choice = rng.random()
        if choice < 0.4:  # signed as it is
            body = rng.choice([
                self.ACTION + b"&Engine=val\xe9",  # Latin-1, not UTF-8
                self.ACTION.decode().encode("utf-16"), self.ACTION + b"&\xff\xfe=\xed\xa0\x80", b"\x00" * 64,
                b"%zz%%%&=&&==", b"Action=%E9&Version=2015-02-02", self.ACTION + b"&" + b"%" * 3000,
                b"Action" * 10000, gzip.compress(self.ACTION), json.dumps({"Action": "DescribeCacheEngineVersions"}).encode(),
            ])
            refuse = not body.startswith(b"Action=DescribeCacheEngineVersions&Version=2015-02-02&MaxRecords=20") or b"\xe9" in body
            signed = self.signed(body=body)
            request.headers, request.body = signed.headers, signed.body
            return refuse
        if choice < 0.7:  # compressed, or said to be
            encoding = rng.choice([b"gzip", b"deflate", b"br", b"zstd", b"compress", b"bogus", b"gzip, gzip", b"identity"])
            if rng.random() < 0.5 and encoding in (b"gzip", b"deflate"):
                packed = gzip.compress(request.body) if encoding == b"gzip" else zlib.compress(request.body)
                signed = self.signed(body=packed)
                request.headers, request.body = signed.headers, signed.body
            request.set("Content-Encoding", encoding)
            return False
        if choice < 0.85:  # framing
            framing = rng.choice(["short", "bad length", "chunked", "bad chunk", "both"])
            if framing == "short":
                request.set("Content-Length", str(max(0, len(request.body) - 5)).encode())
                return True
            if framing == "bad length":
                request.set("Content-Length", rng.choice([b"-1", b"abc", b"1e3", b" ", b"99999999999999999999999"]))
                return True
            if framing == "both":
                request.set("Content-Length", str(len(request.body)).encode())
            request.set("Transfer-Encoding", b"chunked")
            if framing == "bad chunk":
                request.body = b"zz\r\n" + request.body + b"\r\n0\r\n\r\n"
                return True
            request.body = f"{len(request.body):x}\r\n".encode() + request.body + b"\r\n0\r\n\r\n"
            return framing == "both"
        request.set("X-Fuzz-Bytes", rng.choice([b"\xff\xfe", b"\xc3", b"ok\x80", b"\xed\xa0\x80"]))  # unsigned
        return False

    def _spoil_unsigned_bytes_in_signed_header(self, request: RawRequest) -> bool:
        """A signed header's value replaced by bytes that are not UTF-8 (or control characters)."""
        name = self.rng.choice(["Content-Type", "X-Amz-Date", "Host"])
        return self._replace(request, name, self.rng.choice([b"\xff\xfe\xe9", b"text/\x80", b"\xed\xa0\x80", b"a\x7fb",
                                                             b"\xc3\xa9t\xc3\xa9"]))

    def presigned(self, replace: dict[str, str] | None = None, *, extra: tuple[tuple[str, str], ...] = ()) -> RawRequest:
        """A presigned GET (SigV4 in the query string) of ``ACTION``, with the parameters of ``replace``
        changed after signing and ``extra`` ones added."""
        from botocore.auth import SigV4QueryAuth

        aws = AWSRequest(method="GET", url=f"http://127.0.0.1:{self.port}/?{self.ACTION.decode()}")
        SigV4QueryAuth(self.credentials, "elasticache", "us-east-1", expires=300).add_auth(aws)
        target = aws.prepare().url.split(f"127.0.0.1:{self.port}", 1)[1]
        path, _, query = target.partition("?")
        pairs = [(key, (replace or {}).get(key, value)) for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True)]
        query = urllib.parse.urlencode([*pairs, *extra], quote_via=urllib.parse.quote)
        return RawRequest("GET", f"{path}?{query}", [("Host", f"127.0.0.1:{self.port}".encode())], b"")

    def _spoil_presigned(self, request: RawRequest) -> bool:
        """A presigned GET, then one of its parameters spoiled."""
        rng = self.rng
        name = rng.choice(["X-Amz-Expires", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                           "X-Amz-SignedHeaders", "both", "twice"])
        values = {
            "X-Amz-Expires": ["0", "-1", "604801", "9" * 5000, "\u0661\u0662", "1.5", "", "0x10", " 300"],
            "X-Amz-Algorithm": list(_ALGORITHMS),
            "X-Amz-Credential": ["", "AKIDFUZZ", "AKIDFUZZ/20261202/us-east-1/elasticache", "a/b/c/d/e",
                                 "AKIDNOBODY/20261202/us-east-1/elasticache/aws4_request"],
            "X-Amz-Signature": ["", "0" * 64, "x", "\U0001f600", "\u00e9" * 64],
            "X-Amz-Date": list(_SPOILED_DATES),
            "X-Amz-SignedHeaders": ["", "x-amz-date", ";", "host;host"],
        }
        if name == "both":  # and the header signature of the POST as well
            presigned = self.presigned()
            request.headers = [(key, value) for key, value in request.headers if key.lower() != "content-length"]
        elif name == "twice":
            presigned = self.presigned(extra=(("X-Amz-Signature", "0" * 64),))
        else:
            presigned = self.presigned({name: rng.choice(values[name])})
        request.method, request.target, request.body = presigned.method, presigned.target, presigned.body
        if name != "both":
            request.headers = presigned.headers
        return True

    def _spoil_method_or_path(self, request: RawRequest) -> bool:
        rng = self.rng
        choice = rng.random()
        if choice < 0.4:
            request.method = rng.choice(["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO", "CONNECT"])
        else:
            request.target = rng.choice([
                "/%ff", "//", "/?%", "/?Action=DescribeCacheClusters", "/service/x/operation/y",
                "/service/GraniteServiceVersion20100801/operation/ListMetrics", "/" + "a" * 9000, "/../../etc/passwd",
                "*", "/?" + "&" * 5000, "/healthz/x", "/%00", "/service/%ff/operation/ListMetrics",
                "/service/GraniteServiceVersion20100801/operation/%ed%a0%80", "/service/%C3%A9/operation/%00",
            ])
        return request.target != "/?" + "&" * 5000  # an empty query string signs as no query at all
