"""Whatever a client sends, the server answers with a result or an AWS error, never a 500, and keeps running."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ElementTree

import botocore.session
from botocore import serialize

from helpers import raw_call
from shapes import random_value

MODEL = botocore.session.get_session().get_service_model("elasticache")


def test_random_requests_to_every_operation(server):
    rng = random.Random(20261129)
    serializer = serialize.create_serializer("query")
    seen = {}
    for operation_name in sorted(MODEL.operation_names):
        operation = MODEL.operation_model(operation_name)
        for _ in range(12):
            params = random_value(operation.input_shape, rng) if operation.input_shape else {}
            body = serializer.serialize_to_request(params, operation)["body"]
            if rng.random() < 0.3 and body:  # garble one value's type
                key = rng.choice(sorted(body))
                body[key] = rng.choice(["", "-1", "true", "9" * 30, "%zz", "\u00e9\u0000"])
            status, text = raw_call(server.url, {k: str(v) for k, v in body.items()})
            assert status < 500, (operation_name, body, text)
            ElementTree.fromstring(text)  # always well-formed XML
            code = re.search(r"<Code>([^<]*)</Code>", text)
            seen[code.group(1) if code else "OK"] = seen.get(code.group(1) if code else "OK", 0) + 1
    assert seen.get("OK", 0) > 0  # some requests were valid and answered
    assert "InvalidParameterValue" in seen and "InvalidAction" in seen
    # Still healthy afterwards.
    assert server.client().describe_cache_engine_versions()["CacheEngineVersions"]


def test_random_cloudwatch_requests_in_every_protocol(server):
    import json
    import urllib.error
    import urllib.request

    import cbor2
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    model = botocore.session.get_session().get_service_model("cloudwatch")
    rng = random.Random(20261130)
    seen: dict[str, int] = {}
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
                seen[code.group(1) if code else "OK"] = seen.get(code.group(1) if code else "OK", 0) + 1
                continue
            body = request["body"] if isinstance(request["body"], bytes) else request["body"].encode()
            if rng.random() < 0.3:
                body = body[: len(body) // 2]  # a truncated document
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
            seen[code] = seen.get(code, 0) + 1
    assert seen.get("OK", 0) > 0 and len(seen) > 3
    assert server.client("cloudwatch").list_metrics(Namespace="AWS/ElastiCache")
