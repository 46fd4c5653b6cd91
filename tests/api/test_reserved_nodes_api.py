"""Reserved cache nodes through boto3: offerings (filters, paging, shapes), purchases and their
faults, DescribeReservedCacheNodes, the payment-pending -> active state and tags on the ARN."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from cachefleet.domain.nodetypes import NODE_TYPES


def code_of(call, **kwargs) -> str:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return str(caught.value.response["Error"]["Code"])


def all_offerings(ec, **filters) -> list[dict]:
    paginator = ec.get_paginator("describe_reserved_cache_nodes_offerings")
    return [o for page in paginator.paginate(**filters) for o in page["ReservedCacheNodesOfferings"]]


def test_offerings_cover_every_node_type_term_and_payment_option(ec):
    offerings = all_offerings(ec)
    assert {o["CacheNodeType"] for o in offerings} == set(NODE_TYPES)
    assert {o["Duration"] for o in offerings} == {31536000, 94608000}
    r7g = {(o["Duration"], o["OfferingType"]) for o in offerings
           if o["CacheNodeType"] == "cache.r7g.large" and o["ProductDescription"] == "valkey"}
    assert r7g == {(d, t) for d in (31536000, 94608000) for t in ("No Upfront", "Partial Upfront", "All Upfront")}
    legacy = {o["OfferingType"] for o in offerings if o["CacheNodeType"] == "cache.m4.large"}
    assert legacy == {"Light Utilization", "Medium Utilization", "Heavy Utilization"}
    assert len({o["ReservedCacheNodesOfferingId"] for o in offerings}) == len(offerings)
    assert "FixedPrice" not in offerings[0]  # no published price found: absent, not invented
    # Filters: type, term in years or seconds, payment option, product.
    some = all_offerings(ec, CacheNodeType="cache.t4g.micro", Duration="1", OfferingType="No Upfront",
                         ProductDescription="redis")
    assert len(some) == 1 and some[0]["Duration"] == 31536000
    assert all_offerings(ec, CacheNodeType="cache.t4g.micro", Duration="94608000", ProductDescription="valkey")
    assert code_of(ec.describe_reserved_cache_nodes_offerings, Duration="2") == "InvalidParameterValue"
    assert code_of(ec.describe_reserved_cache_nodes_offerings,
                   ReservedCacheNodesOfferingId="00000000-0000-0000-0000-000000000000") == \
        "ReservedCacheNodesOfferingNotFound"
    first = ec.describe_reserved_cache_nodes_offerings(MaxRecords=20)
    assert len(first["ReservedCacheNodesOfferings"]) == 20 and first["Marker"]
    second = ec.describe_reserved_cache_nodes_offerings(MaxRecords=20, Marker=first["Marker"])
    assert second["ReservedCacheNodesOfferings"][0] == offerings[20]


def test_purchase_describe_state_and_tags(ec):
    offering = all_offerings(ec, CacheNodeType="cache.r7g.large", Duration="3", OfferingType="All Upfront",
                             ProductDescription="valkey")[0]
    bought = ec.purchase_reserved_cache_nodes_offering(
        ReservedCacheNodesOfferingId=offering["ReservedCacheNodesOfferingId"], ReservedCacheNodeId="ri-api-one",
        CacheNodeCount=2, Tags=[{"Key": "team", "Value": "cache"}],
    )["ReservedCacheNode"]
    assert bought["State"] == "payment-pending" and bought["CacheNodeCount"] == 2
    assert bought["ReservationARN"].endswith(":reserved-instance:ri-api-one")
    assert code_of(ec.purchase_reserved_cache_nodes_offering,
                   ReservedCacheNodesOfferingId=offering["ReservedCacheNodesOfferingId"],
                   ReservedCacheNodeId="ri-api-one") == "ReservedCacheNodeAlreadyExists"
    assert code_of(ec.purchase_reserved_cache_nodes_offering, ReservedCacheNodesOfferingId="nope") == \
        "ReservedCacheNodesOfferingNotFound"
    assert code_of(ec.purchase_reserved_cache_nodes_offering,
                   ReservedCacheNodesOfferingId=offering["ReservedCacheNodesOfferingId"],
                   CacheNodeCount=1000) == "ReservedCacheNodeQuotaExceeded"
    assert code_of(ec.describe_reserved_cache_nodes, ReservedCacheNodeId="ri-none") == "ReservedCacheNodeNotFound"
    deadline = time.monotonic() + 10
    while ec.describe_reserved_cache_nodes(ReservedCacheNodeId="ri-api-one")["ReservedCacheNodes"][0]["State"] != "active":
        assert time.monotonic() < deadline, "never active"
        time.sleep(0.2)
    assert [r["ReservedCacheNodeId"] for r in ec.describe_reserved_cache_nodes(
        CacheNodeType="cache.r7g.large", OfferingType="All Upfront")["ReservedCacheNodes"]] == ["ri-api-one"]
    assert ec.describe_reserved_cache_nodes(CacheNodeType="cache.t4g.micro")["ReservedCacheNodes"] == []
    arn = bought["ReservationARN"]
    assert ec.list_tags_for_resource(ResourceName=arn)["TagList"] == [{"Key": "team", "Value": "cache"}]
    ec.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "env", "Value": "prod"}])
    assert {t["Key"] for t in ec.list_tags_for_resource(ResourceName=arn)["TagList"]} == {"team", "env"}
