"""Our JSON and CBOR protocol code agrees with botocore's own serializers and parsers, for every
CloudWatch operation (and the Query code path for CloudWatch too)."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from typing import Any

import botocore.session
import cbor2
import pytest
from botocore import parsers, serialize

from cachefleet.api.errors import ApiError, ErrorCatalog
from cachefleet.api.jsonrpc import CBOR, JSON, DocumentReader, DocumentWriter, decode_body
from cachefleet.api.protocol import QueryParser, XmlSerializer
from shapes import random_value

MODEL = botocore.session.get_session().get_service_model("cloudwatch")
# The operations Cachefleet serves (random strings do not follow the patterns of some others).
OPERATIONS = [
    "DeleteAlarms", "DescribeAlarmHistory", "DescribeAlarms", "DescribeAlarmsForMetric", "DisableAlarmActions",
    "EnableAlarmActions", "GetMetricData", "GetMetricStatistics", "ListMetrics", "PutMetricAlarm", "PutMetricData",
    "SetAlarmState",
]
PROTOCOLS = {JSON: "json", CBOR: "smithy-rpc-v2-cbor"}


def normalize(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def drop_empty(value: Any) -> Any:
    if isinstance(value, dict):
        cleaned = {k: drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v != [] and v != {}}
    if isinstance(value, list):
        return [v for v in (drop_empty(item) for item in value) if v != {}]
    return value


@pytest.mark.parametrize("encoding", [JSON, CBOR])
@pytest.mark.parametrize("operation_name", OPERATIONS)
def test_reader_reads_what_botocore_sends(operation_name, encoding):
    operation = MODEL.operation_model(operation_name)
    if operation.input_shape is None:
        return
    rng = random.Random(operation_name + encoding)
    serializer = serialize.create_serializer(PROTOCOLS[encoding])
    for _ in range(10):
        params = random_value(operation.input_shape, rng)
        request = serializer.serialize_to_request(params, operation)
        if encoding == JSON:
            assert request["headers"]["X-Amz-Target"] == f"GraniteServiceVersion20100801.{operation_name}"
        else:
            assert request["url_path"] == f"/service/GraniteServiceVersion20100801/operation/{operation_name}"
        body = request["body"] if isinstance(request["body"], bytes) else request["body"].encode()
        parsed = DocumentReader().parse(operation, decode_body(body, encoding), encoding)
        assert drop_empty(normalize(parsed)) == drop_empty(normalize(params))


@pytest.mark.parametrize("encoding", [JSON, CBOR])
@pytest.mark.parametrize("operation_name", OPERATIONS)
def test_botocore_reads_what_we_write(operation_name, encoding):
    operation = MODEL.operation_model(operation_name)
    if operation.output_shape is None:
        return
    rng = random.Random(operation_name + encoding + "-out")
    parser = parsers.create_parser(PROTOCOLS[encoding])
    for _ in range(10):
        result = random_value(operation.output_shape, rng)
        body = DocumentWriter(encoding).response(operation, result)
        parsed = parser.parse({"body": body, "headers": {"x-amzn-requestid": "r1"}, "status_code": 200}, operation.output_shape)
        assert parsed["ResponseMetadata"]["RequestId"] == "r1"
        assert drop_empty(normalize(parsed)) == drop_empty(normalize(result))


@pytest.mark.parametrize("operation_name", ["GetMetricStatistics", "PutMetricAlarm", "DescribeAlarms", "GetMetricData"])
def test_query_protocol_round_trips_for_cloudwatch(operation_name):
    operation = MODEL.operation_model(operation_name)
    rng = random.Random(operation_name)
    serializer = serialize.create_serializer("query")
    for _ in range(10):
        params = random_value(operation.input_shape, rng)
        body = serializer.serialize_to_request(params, operation)["body"]
        flat = {k: str(v) for k, v in body.items() if k not in ("Action", "Version")}
        assert drop_empty(normalize(QueryParser().parse(operation, flat))) == drop_empty(normalize(params))
        if operation.output_shape is None:
            assert f"<{operation_name}Response" in XmlSerializer(MODEL).response(operation, None, "r2")
            continue
        result = random_value(operation.output_shape, rng)
        xml = XmlSerializer(MODEL).response(operation, result, "r2")
        parsed = parsers.create_parser("query").parse({"body": xml.encode(), "headers": {}, "status_code": 200},
                                                     operation.output_shape)
        assert drop_empty(normalize(parsed)) == drop_empty(normalize(result))


@pytest.mark.parametrize("encoding", [JSON, CBOR])
def test_errors_parse_with_botocore_under_their_query_code(encoding):
    catalog = ErrorCatalog(MODEL)
    body = DocumentWriter(encoding).error(code="InvalidParameterCombination", type_name="InvalidParameterCombinationException",
                                          message="too many datapoints")
    headers = {"x-amzn-query-error": "InvalidParameterCombination;Sender", "x-amzn-requestid": "r3"}
    parsed = parsers.create_parser(PROTOCOLS[encoding]).parse(
        {"body": body, "headers": headers, "status_code": catalog.kind("InvalidParameterCombination").status},
        MODEL.operation_model("GetMetricStatistics").output_shape,
    )
    assert parsed["Error"]["Code"] == "InvalidParameterCombination"
    assert parsed["Error"]["Message"] == "too many datapoints"
    assert catalog.kind("ResourceNotFound").status == 404


@pytest.mark.parametrize(
    ("document", "code", "says"),
    [
        ({"Namespace": "AWS/ElastiCache"}, "MissingParameter", "MetricName"),
        ({"Namespace": 5, "MetricName": "m", "StartTime": 1, "EndTime": 2, "Period": 60}, "SerializationException", "string"),
        ({"Namespace": "n", "MetricName": "m", "StartTime": "x", "EndTime": 2, "Period": 60}, "InvalidParameterValue", "timestamp"),
        ({"Namespace": "n", "MetricName": "m", "StartTime": 1, "EndTime": 2, "Period": 0}, "InvalidParameterValue", "at least 1"),
        ({"Namespace": "n", "MetricName": "m", "StartTime": 1, "EndTime": 2, "Period": 1.5}, "InvalidParameterValue", "integer"),
        ({"Namespace": "n", "MetricName": "m", "StartTime": 1, "EndTime": 2, "Period": 60, "Statistics": ["Mean"]},
         "InvalidParameterValue", "SampleCount"),
        ({"Namespace": "n", "MetricName": "m", "StartTime": 1, "EndTime": 2, "Period": 60, "Dimensions": {"a": 1}},
         "SerializationException", "list"),
    ],
)
def test_reader_checks_types_and_ranges(document, code, says):
    operation = MODEL.operation_model("GetMetricStatistics")
    with pytest.raises(ApiError) as caught:
        DocumentReader().parse(operation, document, JSON)
    assert caught.value.code == code
    assert says in caught.value.message


def test_malformed_bodies_are_serialization_errors():
    for body, encoding in ((b"{nope", JSON), (b"\xff\xff", CBOR)):
        with pytest.raises(ApiError) as caught:
            decode_body(body, encoding)
        assert caught.value.code == "SerializationException"
    assert json.loads(DocumentWriter(JSON).response(MODEL.operation_model("ListMetrics"), {"Metrics": []})) == {"Metrics": []}
    assert cbor2.loads(DocumentWriter(CBOR).response(MODEL.operation_model("ListMetrics"), {})) == {}


LOGS = botocore.session.get_session().get_service_model("logs")


@pytest.mark.parametrize("operation_name", ["FilterLogEvents", "GetLogEvents", "DescribeLogStreams"])
def test_logs_operations_round_trip(operation_name):
    operation = LOGS.operation_model(operation_name)
    rng = random.Random(operation_name)
    for _ in range(10):
        params = random_value(operation.input_shape, rng)
        body = serialize.create_serializer("json").serialize_to_request(params, operation)["body"]
        parsed = DocumentReader().parse(operation, decode_body(body, JSON), JSON)
        assert drop_empty(normalize(parsed)) == drop_empty(normalize(params))
        result = random_value(operation.output_shape, rng)
        written = DocumentWriter(JSON).response(operation, result)
        back = parsers.create_parser("json").parse({"body": written, "headers": {}, "status_code": 200}, operation.output_shape)
        assert drop_empty(normalize(back)) == drop_empty(normalize(result))
