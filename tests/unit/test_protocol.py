"""Our Query parser and XML serializer agree with botocore's own serializer and parser, for every operation."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import botocore.session
import pytest
from botocore import parsers, serialize

from cachefleet.api.errors import ApiError, ErrorCatalog
from cachefleet.api.protocol import QueryParser, XmlSerializer
from cachefleet.domain import errors as domain
from shapes import random_value

MODEL = botocore.session.get_session().get_service_model("elasticache")
OPERATIONS = sorted(MODEL.operation_names)


def normalize(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(microsecond=value.microsecond // 1000 * 1000)
    return value


def drop_empty_lists(value: Any) -> Any:
    """An empty list, an empty structure and an absent one look the same once serialized."""
    if isinstance(value, dict):
        cleaned = {k: drop_empty_lists(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v != [] and v != {}}
    if isinstance(value, list):
        return [v for v in (drop_empty_lists(item) for item in value) if v != {}]
    return value


@pytest.mark.parametrize("operation_name", OPERATIONS)
def test_parser_reads_what_botocore_sends(operation_name):
    operation = MODEL.operation_model(operation_name)
    if operation.input_shape is None:
        return
    rng = random.Random(operation_name)
    serializer = serialize.create_serializer("query")
    for _ in range(15):
        params = random_value(operation.input_shape, rng)
        body = serializer.serialize_to_request(params, operation)["body"]
        flat = {k: str(v) for k, v in body.items() if k not in ("Action", "Version")}
        parsed = QueryParser().parse(operation, flat)
        expected = normalize(params)
        # botocore writes nothing for an empty list of a structure/list member; both read back as absent.
        assert drop_empty_lists(normalize(parsed)) == drop_empty_lists(expected)


@pytest.mark.parametrize("operation_name", OPERATIONS)
def test_botocore_reads_what_we_serialize(operation_name):
    operation = MODEL.operation_model(operation_name)
    if operation.output_shape is None:
        xml = XmlSerializer(MODEL).response(operation, None, "req-1")
        assert f"<{operation_name}Response" in xml
        return
    rng = random.Random(operation_name + "-out")
    parser = parsers.create_parser("query")
    for _ in range(15):
        result = random_value(operation.output_shape, rng)
        xml = XmlSerializer(MODEL).response(operation, result, "req-1")
        parsed = parser.parse({"body": xml.encode(), "headers": {}, "status_code": 200}, operation.output_shape)
        assert parsed["ResponseMetadata"]["RequestId"] == "req-1"
        assert drop_empty_lists(normalize(parsed)) == drop_empty_lists(normalize(result))


def test_error_responses_parse_with_botocore():
    operation = MODEL.operation_model("DescribeReplicationGroups")
    xml = XmlSerializer(MODEL).error(code="ReplicationGroupNotFoundFault", message="Replication group x <not> found.",
                                     sender_fault=True, request_id="req-2")
    parsed = parsers.create_parser("query").parse({"body": xml.encode(), "headers": {}, "status_code": 404}, operation.output_shape)
    assert parsed["Error"] == {"Type": "Sender", "Code": "ReplicationGroupNotFoundFault", "Message": "Replication group x <not> found."}
    assert parsed["ResponseMetadata"]["RequestId"] == "req-2"


def test_serializer_refuses_members_the_model_does_not_have():
    operation = MODEL.operation_model("DescribeReplicationGroups")
    with pytest.raises(ValueError, match="NotAMember"):
        XmlSerializer(MODEL).response(operation, {"NotAMember": 1}, "r")


@pytest.mark.parametrize(
    ("params", "code", "says"),
    [
        ({"ReplicationGroupId": "x"}, "MissingParameter", "ReplicationGroupDescription"),
        ({"ReplicationGroupId": "x", "ReplicationGroupDescription": "d", "NumCacheClusters": "x"}, "InvalidParameterValue", "integer"),
        ({"ReplicationGroupId": "x", "ReplicationGroupDescription": "d", "MultiAZEnabled": "yes"}, "InvalidParameterValue", "true or false"),
        ({"ReplicationGroupId": "x", "ReplicationGroupDescription": "d", "ClusterMode": "sometimes"}, "InvalidParameterValue", "enabled"),
        ({"ReplicationGroupId": "x", "ReplicationGroupDescription": "d", "UserGroupIds": ""}, "InvalidParameterValue", "at least 1"),
    ],
)
def test_parser_checks_types_required_members_enums_and_ranges(params, code, says):
    with pytest.raises(ApiError) as caught:
        QueryParser().parse(MODEL.operation_model("CreateReplicationGroup"), params)
    assert caught.value.code == code
    assert says in caught.value.message


def test_nested_members_and_lists_are_parsed():
    parsed = QueryParser().parse(
        MODEL.operation_model("CreateReplicationGroup"),
        {
            "ReplicationGroupId": "demo",
            "ReplicationGroupDescription": "d",
            "Tags.Tag.2.Key": "b",
            "Tags.Tag.2.Value": "2",
            "Tags.Tag.1.Key": "a",
            "Tags.Tag.1.Value": "1",
            "PreferredCacheClusterAZs.AvailabilityZone.1": "us-east-1a",
            "NodeGroupConfiguration.NodeGroupConfiguration.1.Slots": "0-100",
            "NodeGroupConfiguration.NodeGroupConfiguration.1.ReplicaAvailabilityZones.AvailabilityZone.1": "us-east-1b",
            "NumCacheClusters": "3",
            "AutomaticFailoverEnabled": "TRUE",
        },
    )
    assert parsed["Tags"] == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]
    assert parsed["PreferredCacheClusterAZs"] == ["us-east-1a"]
    assert parsed["NodeGroupConfiguration"] == [{"Slots": "0-100", "ReplicaAvailabilityZones": ["us-east-1b"]}]
    assert parsed["NumCacheClusters"] == 3 and parsed["AutomaticFailoverEnabled"] is True


def test_every_domain_error_maps_to_an_error_shape_of_the_model():
    from cachefleet.api import errors as api_errors

    session = botocore.session.get_session()
    models = [MODEL, session.get_service_model("cloudwatch"), session.get_service_model("logs")]
    catalog = ErrorCatalog(*models)
    shapes = {shape.name for model in models for shape in model.error_shapes}
    for (kind, resource), shape in api_errors._SHAPES.items():
        assert shape in shapes, shape
        mapped = catalog.from_domain(kind("message", resource=resource))
        assert catalog.kind(mapped.code).status in (400, 404)
    assert catalog.from_domain(domain.InvalidParameterValue("m")).code == "InvalidParameterValue"
    assert catalog.kind("ReplicationGroupNotFoundFault").status == 404
    assert catalog.kind("CacheClusterNotFound").status == 404
    assert catalog.kind("CacheSubnetGroupNotFoundFault").status == 400
    assert catalog.kind("SignatureDoesNotMatch").status == 403


def test_a_request_of_many_list_items_parses_in_linear_time():
    # Each list and structure used to scan every parameter name: 4,000 shards took 4.5 s,
    # the 64,000 a 4 MiB body holds would have held the event loop for ~20 minutes. Measured as a
    # ratio in one run (ten times the items: ~10x the time when linear, ~100x when quadratic), so a
    # loaded machine does not make it fail.
    import gc
    import time

    def parse(count: int) -> float:
        params = {"ReplicationGroupId": "x", "ReplicationGroupDescription": "d"}
        for index in range(1, count + 1):
            params[f"NodeGroupConfiguration.NodeGroupConfiguration.{index}.ReplicaCount"] = "1"
            params[f"NodeGroupConfiguration.NodeGroupConfiguration.{index}.ReplicaAvailabilityZones.AvailabilityZone.1"] = "a"
        gc.disable()  # the collector's passes grow with every live object: not the parser's cost
        try:
            started = time.perf_counter()
            parsed = QueryParser().parse(MODEL.operation_model("CreateReplicationGroup"), params)
            elapsed = time.perf_counter() - started
        finally:
            gc.enable()
        assert len(parsed["NodeGroupConfiguration"]) == count
        assert parsed["NodeGroupConfiguration"][-1] == {"ReplicaCount": 1, "ReplicaAvailabilityZones": ["a"]}
        return elapsed

    small = min(parse(2000) for _ in range(3))
    large = min(parse(20000) for _ in range(2))
    assert large < 40 * small, (small, large)


def test_parameter_names_deeper_than_any_member_name_nothing():
    deep = "Tags.Tag.1." + ".".join(["Key"] * 100_000)  # 400 KB of one name
    parsed = QueryParser().parse(
        MODEL.operation_model("CreateReplicationGroup"),
        {"ReplicationGroupId": "x", "ReplicationGroupDescription": "d", deep: "v", "Tags.Tag.2.Key": "k"},
    )
    assert parsed["Tags"] == [{}, {"Key": "k"}]  # the first tag is there, but without a Key


@pytest.mark.parametrize("raw", [" 7", "7 ", "1_000", "\u0667", "0x1f", "7.0", "2147483648", "-2147483649", "9" * 400])
def test_an_integer_is_ascii_digits_within_32_bits(raw):
    with pytest.raises(ApiError) as caught:
        QueryParser().parse(MODEL.operation_model("CreateReplicationGroup"),
                            {"ReplicationGroupId": "x", "ReplicationGroupDescription": "d", "NumNodeGroups": raw})
    assert caught.value.code == "InvalidParameterValue" and "integer" in caught.value.message


def test_an_integer_may_have_a_sign():
    parsed = QueryParser().parse(MODEL.operation_model("DescribeEvents"), {"Duration": "+60", "MaxRecords": "-0"})
    assert parsed == {"Duration": 60, "MaxRecords": 0}
