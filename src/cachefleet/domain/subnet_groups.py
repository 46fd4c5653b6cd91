"""Cache subnet groups: which availability zones a cluster's nodes may be placed in.

Subnets are named after their zone (``subnet-us-east-1a``, ``subnet-us-east-1b-private``);
every region has a ``default`` group (zones a, b, c) that cannot be changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from cachefleet.domain import identifiers
from cachefleet.domain.base import UseCases
from cachefleet.domain.cache_clusters import DEFAULT_SUBNET_GROUP, CacheCluster
from cachefleet.domain.errors import (
    CACHE_SUBNET_GROUP_ALREADY_EXISTS,
    AlreadyExists,
    InUse,
    InvalidParameterValue,
    QuotaExceeded,
)
from cachefleet.domain.events import EventSourceType
from cachefleet.domain.identifiers import Region
from cachefleet.domain.resource import Kind
from cachefleet.domain.tags import Tag, tags

DEFAULT_VPC = "vpc-cachefleet"
MAX_SUBNET_GROUPS = 50
MAX_SUBNETS_PER_GROUP = 20


@dataclass(frozen=True)
class Subnet:
    """A subnet, named after its availability zone."""

    subnet_id: str
    availability_zone: str


@dataclass(frozen=True)
class CacheSubnetGroup:
    """A named set of subnets (hence zones) for a cluster's nodes."""

    KIND: ClassVar[Kind] = Kind(
        name="CacheSubnetGroup", noun="Cache subnet group", not_found="CacheSubnetGroupNotFoundFault",
        arn_type="subnetgroup", event_source=EventSourceType.CACHE_SUBNET_GROUP.value,
        already_exists="CacheSubnetGroupAlreadyExistsFault", quota_exceeded="CacheSubnetGroupQuotaExceededFault",
        taggable=True,
    )

    region: Region
    name: str
    description: str
    subnets: tuple[Subnet, ...]
    vpc_id: str
    tags: tuple[Tag, ...] = ()

    @property
    def key(self) -> str:
        return self.name

    @property
    def availability_zones(self) -> tuple[str, ...]:
        zones: list[str] = []
        for subnet in self.subnets:
            if subnet.availability_zone not in zones:
                zones.append(subnet.availability_zone)
        return tuple(zones)


def default_subnet_group(region: Region) -> CacheSubnetGroup:
    return CacheSubnetGroup(
        region=region,
        name=DEFAULT_SUBNET_GROUP,
        description="default",
        subnets=tuple(Subnet(f"subnet-{zone}", zone) for zone in identifiers.default_availability_zones(region)),
        vpc_id=DEFAULT_VPC,
    )


class SubnetGroups(UseCases):
    """Create/Modify/Delete/DescribeCacheSubnetGroup(s), and lookups for the other families."""

    def get(self, region: Region, name: str) -> CacheSubnetGroup:
        if name.lower() == DEFAULT_SUBNET_GROUP:
            return default_subnet_group(region)
        return self._get(CacheSubnetGroup, region, name)

    def create(self, region: Region, params: Mapping[str, Any]) -> CacheSubnetGroup:
        name = identifiers.subnet_group_name(params["CacheSubnetGroupName"])
        if name == DEFAULT_SUBNET_GROUP or self._store.get(CacheSubnetGroup, region, name) is not None:
            raise AlreadyExists(CACHE_SUBNET_GROUP_ALREADY_EXISTS.text(name=name), resource="CacheSubnetGroup")
        if len(self._store.list(CacheSubnetGroup, region)) >= MAX_SUBNET_GROUPS:
            raise QuotaExceeded(
                f"The quota of {MAX_SUBNET_GROUPS} cache subnet groups per region is reached.", resource="CacheSubnetGroup"
            )
        group = CacheSubnetGroup(
            region=region,
            name=name,
            description=params["CacheSubnetGroupDescription"],
            subnets=self._subnets(region, params["SubnetIds"]),
            vpc_id=DEFAULT_VPC,
            tags=tags(params.get("Tags")),
        )
        with self._store.transaction() as tx:
            tx.put(group)
            self._event(tx, group, f"Cache subnet group {name} created with zones {', '.join(group.availability_zones)}")
        return group

    @staticmethod
    def _subnets(region: Region, subnet_ids: Sequence[str]) -> tuple[Subnet, ...]:
        if not subnet_ids:
            raise InvalidParameterValue("SubnetIds must list at least one subnet, such as subnet-" + region + "a.")
        unique = list(dict.fromkeys(subnet_ids))
        if len(unique) > MAX_SUBNETS_PER_GROUP:
            raise QuotaExceeded(
                f"A cache subnet group can have at most {MAX_SUBNETS_PER_GROUP} subnets; this request lists {len(unique)}.",
                resource="Subnet",
            )
        return tuple(Subnet(subnet_id, identifiers.subnet_zone(region, subnet_id)) for subnet_id in unique)

    def modify(self, region: Region, params: Mapping[str, Any]) -> CacheSubnetGroup:
        group = self.get(region, params["CacheSubnetGroupName"])
        if group.name == DEFAULT_SUBNET_GROUP:
            raise InvalidParameterValue("The default cache subnet group cannot be modified; create your own instead.")
        changes: dict[str, Any] = {}
        if "CacheSubnetGroupDescription" in params:
            changes["description"] = params["CacheSubnetGroupDescription"]
        if "SubnetIds" in params:
            subnets = self._subnets(region, params["SubnetIds"])
            zones = {s.availability_zone for s in subnets}
            for cluster in self._users(group):
                if cluster.availability_zone not in zones:
                    raise InUse(
                        f"The subnets of zone {cluster.availability_zone} are in use by cache cluster "
                        f"{cluster.cluster_id}; keep a subnet in that zone.",
                        resource="Subnet",
                    )
            changes["subnets"] = subnets
        updated = replace(group, **changes)
        with self._store.transaction() as tx:
            tx.put(updated)
            self._event(tx, updated, f"Cache subnet group {group.name} modified")
        return updated

    def delete(self, region: Region, name: str) -> None:
        group = self.get(region, name)
        if group.name == DEFAULT_SUBNET_GROUP:
            raise InvalidParameterValue("The default cache subnet group cannot be deleted.")
        users = [c.cluster_id for c in self._users(group)]
        if users:
            raise InUse(
                f"Cache subnet group {group.name} is in use by {', '.join(sorted(users)[:5])}; delete those first.",
                resource="CacheSubnetGroup",
            )
        with self._store.transaction() as tx:
            tx.delete(group)
            self._event(tx, group, f"Cache subnet group {group.name} deleted")

    def describe(self, region: Region, name: str | None = None) -> list[CacheSubnetGroup]:
        if name is not None:
            return [self.get(region, name)]
        groups = [default_subnet_group(region)] + self._store.list(CacheSubnetGroup, region)
        return sorted(groups, key=lambda g: g.name)

    def _users(self, group: CacheSubnetGroup) -> list[CacheCluster]:
        return [c for c in self._store.list(CacheCluster, group.region) if c.subnet_group_name == group.name]
