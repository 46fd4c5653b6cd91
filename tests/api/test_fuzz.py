"""Model-driven fuzzing: whatever a client sends, the server answers a well-formed AWS result or
error below 500, keeps serving with flat memory, and leaves nothing half-created.

Every operation of botocore's ElastiCache model gets requests (``CACHEFLEET_FUZZ_REQUESTS``, default
3000, in all); the generators and checks are in ``tests/fuzzing.py`` (shared with the run at scale,
``tests/reliability/test_fuzz_at_scale.py``). The seed (``CACHEFLEET_FUZZ_SEED``; random by default)
is printed with any failure.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cbor2
import pytest
from botocore.credentials import Credentials

from fuzzing import (
    CLOUDWATCH_PROTOCOLS,
    CLOUDWATCH_SERVED,
    CREDENTIALS,
    MODEL,
    OPERATIONS,
    PAST_BODY_LIMIT,
    RSS_BOUND_MIB,
    SERVERLESS_SHARDS,
    SLOWEST_ANSWER_S,
    Fuzz,
    RawRequest,
    SigV4Fuzz,
    cloudwatch_request,
    delete_everything,
    incoherence,
    rss_mib,
    seed_on_failure,
    send_raw,
    unsettled,
    well_formed,
)
from helpers import Server, engine_pids, error_code, free_port, fresh_network, raw_call, wait_for


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
        assert fuzz.valid_create(), "no valid-looking create succeeded: the valid-looking values are off"
        fuzz.round(max(len(OPERATIONS) * 4, total // 4))
        # RSS with the resources settled, before and after: a node being created or replaced holds
        # its start's buffers and connections (measured after the run without settling: +5.4 and +5.9 MiB
        # in 2 of 9 runs; settled: -0.4 to +2.5 MiB in 8 runs).
        wait_for(lambda: not unsettled(server), timeout=60, interval=0.2, what="the warm-up's resources to settle")
        warm_rss = rss_mib(server.process.pid)
        fuzz.round(total)
        wait_for(lambda: not unsettled(server), timeout=60, interval=0.2, what="fuzz resources to settle")
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
    rng = random.Random(20261130)
    seen: Counter[str] = Counter()
    for operation_name in CLOUDWATCH_SERVED:
        for round_number in range(10):
            answer = cloudwatch_request(server.url, rng, operation_name, CLOUDWATCH_PROTOCOLS[round_number % 3],
                                        credentials=Credentials("a", "b"))
            if answer is None:
                continue
            assert not answer.problem, (answer.problem, answer.request)
            seen[answer.code] += 1
    assert seen["OK"] > 0 and len(seen) > 3
    assert server.client("cloudwatch").list_metrics(Namespace="AWS/ElastiCache")


# Requests the fuzz found answering 500 (or plain text), and what they answer now.
FOUND: list[tuple[Any, int, str]] = [
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




@dataclass(frozen=True)
class Wire:
    """A request the SigV4 fuzz found (tests/reliability/test_fuzz_at_scale.py), as its bytes go on
    the wire to a server that checks signatures: a well-signed DescribeCacheEngineVersions
    (``SigV4Fuzz.signed``), changed after signing."""

    what: str
    change: Callable[[SigV4Fuzz, RawRequest], RawRequest]

    def __str__(self) -> str:
        return self.what


def _changed(name: str, value: bytes) -> Callable[[SigV4Fuzz, RawRequest], RawRequest]:
    def change(_: SigV4Fuzz, request: RawRequest) -> RawRequest:
        request.set(name, value)
        return request
    return change


FOUND += [
    # The canonical request could not be encoded (UnicodeEncodeError): aiohttp hands header bytes
    # that are not UTF-8 over as surrogates. A signature covers the bytes as sent.
    (Wire("a signed Content-Type of bytes that are not UTF-8", _changed("Content-Type", b"text/\x80")),
     403, "SignatureDoesNotMatch"),
    (Wire("a Host header of bytes that are not UTF-8", _changed("Host", b"\xff")), 403, "SignatureDoesNotMatch"),
    # hmac.compare_digest refuses str with characters past ASCII (TypeError).
    (Wire("a presigned X-Amz-Signature past ASCII", lambda fuzz, _: fuzz.presigned({"X-Amz-Signature": "\u00e9" * 64})),
     403, "SignatureDoesNotMatch"),
    # aiohttp raised RequestPayloadError on reading the body.
    (Wire("Content-Encoding: gzip on a body that is not gzip", _changed("Content-Encoding", b"gzip")),
     400, "MalformedQueryString"),
    # The CBOR error quoted the X-Amz-Date it refused, surrogates and all: CBOR text must be UTF-8.
    (Wire("a CBOR request whose X-Amz-Date is not UTF-8", lambda fuzz, request: _changed("X-Amz-Date", b"\xed\xa0\x80")(
        fuzz, dataclasses.replace(request, target="/service/GraniteServiceVersion20100801/operation/ListMetrics"))),
     403, "SignatureDoesNotMatch"),
    # RecursionError from json.loads, and a lone surrogate (JSON can escape one) the store could not
    # encode (the CloudWatch fuzz sends both now).
    (Wire("a CloudWatch JSON document nested 100,000 deep", lambda fuzz, _: fuzz.signed(
        body=b"[" * 100_000, service="monitoring", content_type=b"application/x-amz-json-1.0",
        headers={"X-Amz-Target": "GraniteServiceVersion20100801.DescribeAlarms"})), 400, "SerializationException"),
    (Wire("a CloudWatch alarm name with a lone surrogate", lambda fuzz, _: fuzz.signed(
        body=json.dumps({"AlarmName": "a\udced", "MetricName": "CPUUtilization", "Namespace": "AWS/ElastiCache",
                         "Statistic": "Average", "Period": 60, "EvaluationPeriods": 1, "Threshold": 1.0,
                         "ComparisonOperator": "GreaterThanThreshold"}).encode(),
        service="monitoring", content_type=b"application/x-amz-json-1.0",
        headers={"X-Amz-Target": "GraniteServiceVersion20100801.PutMetricAlarm"})), 400, "SerializationException"),
]


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """A server that checks signatures, for the requests of the SigV4 fuzz."""
    root = tmp_path_factory.mktemp("fuzz-checked")
    credentials = root / "credentials"
    credentials.write_text(f"[fuzz]\naws_access_key_id = {CREDENTIALS.access_key}\n"
                           f"aws_secret_access_key = {CREDENTIALS.secret_key}\n")
    running = Server(data_dir=root / "data", network=fresh_network(), port=free_port(),
                     extra=["--credentials-file", str(credentials)]).start()
    yield running
    running.down()


@pytest.mark.parametrize(("params", "status", "code"), FOUND, ids=lambda value: str(value)[:60])
def test_what_the_fuzz_found(request, params, status, code):
    if isinstance(params, Wire):
        server = request.getfixturevalue("checked")
        fuzz = SigV4Fuzz(random.Random(0), server.port)
        answer = send_raw(server.port, params.change(fuzz, fuzz.signed()))
        if answer.headers.get("content-type") in ("application/cbor", "application/x-amz-json-1.0"):
            document = cbor2.loads(answer.body) if answer.headers["content-type"] == "application/cbor" else json.loads(answer.body)
            assert (answer.status, document.get("__type")) == (status, code), document
            assert document.get("message"), document
            return
        answer_status, text = answer.status, answer.body.decode()
        action = "DescribeCacheEngineVersions"
    else:
        server = request.getfixturevalue("server")
        answer_status, text = raw_call(server.url, {"Version": MODEL.api_version, **params})
        action = params["Action"]
    assert (answer_status, error_code(text)) == (status, code), text[:500]
    assert not well_formed(action, answer_status, text.encode())[0], text[:500]
