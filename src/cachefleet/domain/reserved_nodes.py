"""Reserved cache nodes: the offerings ElastiCache sells and the reservations bought.

Bookkeeping only: a reservation changes nothing on any node and nobody is charged; Cachefleet
stores what was bought, shows it as ElastiCache does (``payment-pending``, then ``active``, then
``retired`` once its term ends) and lets it be tagged (ARN type ``reserved-instance``).

Offerings: every node type Cachefleet knows (domain/nodetypes.py) x 1 and 3 years x the offering
types ElastiCache sells for it x the products Cachefleet runs ("redis", "valkey"). ElastiCache's
reserved nodes page (aws.amazon.com/elasticache/reserved-cache-nodes/, read 2026-12-02) says
current node families (M5, R5 onwards) come as "No Upfront", "Partial Upfront" and "All Upfront",
and previous generation families as "Light Utilization", "Medium Utilization" and "Heavy
Utilization"; of the types known here, T2, M4 and R4 are taken as the previous generation.

Prices: no dated table of ElastiCache's reserved node prices was found in the sources searched
(the pricing page's figures are rendered by a script, not in its text), so offerings carry no
FixedPrice, UsagePrice or RecurringCharges rather than invented ones (``PRICES`` is empty; a
price found later goes there, with its source and date).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from cachefleet.domain import identifiers
from cachefleet.domain.base import UseCases
from cachefleet.domain.errors import AlreadyExists, InvalidParameterValue, NotFound, QuotaExceeded
from cachefleet.domain.identifiers import Region
from cachefleet.domain.nodetypes import NODE_TYPES
from cachefleet.domain.resource import Kind
from cachefleet.domain.tags import Tag, tags

YEAR_SECONDS = 31536000
DURATIONS = (YEAR_SECONDS, 3 * YEAR_SECONDS)
PAYMENT_OPTIONS = ("No Upfront", "Partial Upfront", "All Upfront")
UTILIZATIONS = ("Light Utilization", "Medium Utilization", "Heavy Utilization")
PREVIOUS_GENERATION = ("t2", "m4", "r4")
PRODUCTS = ("redis", "valkey")
# (node type, duration seconds, offering type) -> (fixed price USD, hourly usage price USD). None found: see above.
PRICES: dict[tuple[str, int, str], tuple[float, float]] = {}
PAYMENT_PENDING_SECONDS = 2.0  # nobody pays here: the payment "clears" at once, but ElastiCache shows the state
MAX_RESERVED_NODES = 300  # Cachefleet's quota of reserved nodes per region (as its node quota)
_NAMESPACE = uuid.UUID("6f1e2c1a-0b7d-4c3e-9a51-3d2f7e0c9b10")


@dataclass(frozen=True)
class ReservedCacheNodesOffering:
    """One offering: node type, term, payment option and product; its id is stable across restarts."""

    offering_id: str
    node_type: str
    duration: int  # seconds
    product_description: str
    offering_type: str
    fixed_price: float | None = None
    usage_price: float | None = None


def offering_id(node_type: str, duration: int, offering_type: str, product: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{node_type}/{duration}/{offering_type}/{product}"))


def offering_types(node_type: str) -> tuple[str, ...]:
    family = node_type.split(".")[1]
    return UTILIZATIONS if family in PREVIOUS_GENERATION else PAYMENT_OPTIONS


def _all_offerings() -> tuple[ReservedCacheNodesOffering, ...]:
    found = []
    for node_type in NODE_TYPES:
        for duration in DURATIONS:
            for offering_type in offering_types(node_type):
                price = PRICES.get((node_type, duration, offering_type))
                for product in PRODUCTS:
                    found.append(ReservedCacheNodesOffering(
                        offering_id(node_type, duration, offering_type, product), node_type, duration, product,
                        offering_type, fixed_price=price[0] if price else None, usage_price=price[1] if price else None,
                    ))
    return tuple(found)


OFFERINGS: tuple[ReservedCacheNodesOffering, ...] = _all_offerings()
_BY_ID = {offering.offering_id: offering for offering in OFFERINGS}


class ReservedState:
    PAYMENT_PENDING = "payment-pending"
    ACTIVE = "active"
    RETIRED = "retired"


@dataclass(frozen=True)
class ReservedCacheNode:
    """A reservation bought with PurchaseReservedCacheNodesOffering (stored; bookkeeping only)."""

    KIND: ClassVar[Kind] = Kind(
        "ReservedCacheNode", "Reserved cache node", "ReservedCacheNodeNotFoundFault", arn_type="reserved-instance",
        already_exists="ReservedCacheNodeAlreadyExistsFault", quota_exceeded="ReservedCacheNodeQuotaExceededFault",
        taggable=True,
    )

    region: Region
    reserved_id: str
    offering_id: str
    node_type: str
    duration: int
    product_description: str
    offering_type: str
    node_count: int
    start_time: dt.datetime
    fixed_price: float | None = None
    usage_price: float | None = None
    tags: tuple[Tag, ...] = ()

    @property
    def key(self) -> str:
        return self.reserved_id

    @property
    def arn(self) -> str:
        return identifiers.arn(self.region, "reserved-instance", self.reserved_id)

    def state(self, now: dt.datetime) -> str:
        age = (now - self.start_time).total_seconds()
        if age < PAYMENT_PENDING_SECONDS:
            return ReservedState.PAYMENT_PENDING
        if age >= self.duration:
            return ReservedState.RETIRED
        return ReservedState.ACTIVE


@dataclass(frozen=True)
class ReservedFilters:
    """The filters both Describe calls take, checked."""

    offering_id: str | None = None
    node_type: str | None = None
    duration: int | None = None
    product_description: str | None = None
    offering_type: str | None = None

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ReservedFilters:
        raw = params.get("Duration")
        duration = None
        if raw is not None:
            # ElastiCache takes years or seconds: 1 | 3 | 31536000 | 94608000.
            values = {"1": YEAR_SECONDS, "3": 3 * YEAR_SECONDS, str(YEAR_SECONDS): YEAR_SECONDS,
                      str(3 * YEAR_SECONDS): 3 * YEAR_SECONDS}
            if str(raw) not in values:
                raise InvalidParameterValue(f"Invalid Duration '{raw}': use 1, 3, 31536000 or 94608000.")
            duration = values[str(raw)]
        offering_type = params.get("OfferingType")
        if offering_type is not None and offering_type not in PAYMENT_OPTIONS + UTILIZATIONS:
            raise InvalidParameterValue(
                f"Invalid OfferingType '{offering_type}': use one of {', '.join(PAYMENT_OPTIONS + UTILIZATIONS)}."
            )
        return cls(params.get("ReservedCacheNodesOfferingId"), params.get("CacheNodeType"), duration,
                   params.get("ProductDescription"), offering_type)

    def matches(self, item: ReservedCacheNodesOffering | ReservedCacheNode) -> bool:
        return (
            (self.offering_id is None or item.offering_id == self.offering_id)
            and (self.node_type is None or item.node_type == self.node_type)
            and (self.duration is None or item.duration == self.duration)
            and (self.product_description is None or item.product_description == self.product_description.lower())
            and (self.offering_type is None or item.offering_type == self.offering_type)
        )


_RESERVED_ID = re.compile(r"^[a-z][a-z0-9-]{0,254}$")


def _reserved_id(value: str) -> str:
    """ElastiCache's customer-given reservation id: a letter, then letters, digits and hyphens (kept lower case)."""
    lowered = value.lower()
    if not _RESERVED_ID.match(lowered) or lowered.endswith("-") or "--" in lowered:
        raise InvalidParameterValue(
            f"Invalid ReservedCacheNodeId '{value}': it must begin with a letter, contain only ASCII letters, digits "
            "and hyphens, and not end with a hyphen or contain two consecutive hyphens."
        )
    return lowered


class ReservedNodes(UseCases):
    """DescribeReservedCacheNodesOfferings, PurchaseReservedCacheNodesOffering, DescribeReservedCacheNodes."""

    def offerings(self, filters: ReservedFilters) -> list[ReservedCacheNodesOffering]:
        if filters.offering_id is not None and filters.offering_id not in _BY_ID:
            raise NotFound(f"Reserved cache nodes offering {filters.offering_id} not found.",
                           resource="ReservedCacheNodesOffering")
        return [offering for offering in OFFERINGS if filters.matches(offering)]

    def purchase(self, region: Region, params: Mapping[str, Any]) -> ReservedCacheNode:
        offering = _BY_ID.get(params["ReservedCacheNodesOfferingId"])
        if offering is None:
            raise NotFound(f"Reserved cache nodes offering {params['ReservedCacheNodesOfferingId']} not found.",
                           resource="ReservedCacheNodesOffering")
        count = params.get("CacheNodeCount", 1)
        if count < 1:
            raise InvalidParameterValue(f"Invalid CacheNodeCount {count}: reserve at least 1 node.")
        now = self._clock.now()
        reserved_id = params.get("ReservedCacheNodeId")
        if reserved_id is None:
            reserved_id = "ri-" + now.strftime("%Y-%m-%d-%H-%M-%S-") + uuid.uuid4().hex[:6]
        else:
            reserved_id = _reserved_id(reserved_id)
        if self._store.get(ReservedCacheNode, region, reserved_id) is not None:
            raise AlreadyExists(f"Reserved cache node {reserved_id} already exists.", resource="ReservedCacheNode")
        held = sum(r.node_count for r in self._store.list(ReservedCacheNode, region) if r.state(now) != ReservedState.RETIRED)
        if held + count > MAX_RESERVED_NODES:
            raise QuotaExceeded(
                f"Purchasing {count} reserved cache node(s) would exceed the quota of {MAX_RESERVED_NODES} reserved "
                f"cache nodes in {region} ({held} held).", resource="ReservedCacheNode",
            )
        node = ReservedCacheNode(
            region=region, reserved_id=reserved_id, offering_id=offering.offering_id, node_type=offering.node_type,
            duration=offering.duration, product_description=offering.product_description,
            offering_type=offering.offering_type, node_count=count, start_time=now, fixed_price=offering.fixed_price,
            usage_price=offering.usage_price, tags=tags(params.get("Tags")),
        )
        with self._store.transaction() as tx:
            tx.put(node)
        return node

    def describe(self, region: Region, reserved_id: str | None, filters: ReservedFilters) -> list[ReservedCacheNode]:
        if reserved_id is not None:
            found = [self._get(ReservedCacheNode, region, reserved_id)]
        else:
            found = sorted(self._store.list(ReservedCacheNode, region), key=lambda r: r.reserved_id)
        return [r for r in found if filters.matches(r)]

    def now(self) -> dt.datetime:
        return self._clock.now()
