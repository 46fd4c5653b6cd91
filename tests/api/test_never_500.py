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
