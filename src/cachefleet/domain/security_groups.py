"""Cache security groups (EC2-Classic) and the VPC security group ids clusters carry.

ElastiCache's cache security groups authorize EC2 security groups (by name and owner) to reach
clusters outside a VPC. This module owns the records, Create / Describe / Delete
CacheSecurityGroup and Authorize / Revoke CacheSecurityGroupIngress, stored and described as
ElastiCache does; and the checks of the ``CacheSecurityGroupNames`` and ``SecurityGroupIds``
members that clusters and replication groups carry. Neither is a firewall here: nodes listen
on loopback addresses of one machine, reachable by every local process (see the README).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from cachefleet.domain.base import UseCases
from cachefleet.domain.cache_clusters import CacheCluster
from cachefleet.domain.errors import (
    AlreadyExists,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    QuotaExceeded,
)
from cachefleet.domain.events import EventSourceType
from cachefleet.domain.identifiers import DEFAULT_ACCOUNT_ID, Region, account_id
from cachefleet.domain.resource import Kind
from cachefleet.domain.tags import Tag, tags

MAX_SECURITY_GROUPS = 50  # ElastiCache's default quota of cache security groups per region
AUTHORIZED = "authorized"
_NAME = re.compile(r"^[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{1,255}$")
_OWNER_ID = re.compile(r"^[0-9]{12}$|^amazon-elb$")


@dataclass(frozen=True)
class EC2SecurityGroup:
    """An EC2 security group authorized to reach the clusters of a cache security group."""

    name: str
    owner_id: str
    status: str = AUTHORIZED


@dataclass(frozen=True)
class CacheSecurityGroup:
    """An EC2-Classic cache security group and the EC2 security groups it authorizes."""

    KIND: ClassVar[Kind] = Kind(
        name="CacheSecurityGroup", noun="Cache security group", not_found="CacheSecurityGroupNotFoundFault",
        arn_type="securitygroup", event_source=EventSourceType.CACHE_SECURITY_GROUP.value,
        already_exists="CacheSecurityGroupAlreadyExistsFault", invalid_state="InvalidCacheSecurityGroupStateFault",
        quota_exceeded="CacheSecurityGroupQuotaExceededFault", taggable=True,
    )

    region: Region
    name: str
    description: str
    ec2_security_groups: tuple[EC2SecurityGroup, ...] = ()
    owner_id: str = DEFAULT_ACCOUNT_ID  # the account it was created in (identifiers.account_id())
    tags: tuple[Tag, ...] = ()

    @property
    def key(self) -> str:
        return self.name


def security_group_name(value: str) -> str:
    """A CacheSecurityGroupName as ElastiCache stores it (lower case); "default" is reserved."""
    lowered = value.lower()
    if not _NAME.match(lowered):
        raise InvalidParameterValue(
            f"Invalid CacheSecurityGroupName '{value}': use 1 to 255 letters, digits, spaces and ._-:/()#,@[]+=&;{{}}!$*."
        )
    if lowered == "default":
        raise InvalidParameterValue("Invalid CacheSecurityGroupName 'default': the name default is reserved.")
    return lowered


@dataclass(frozen=True)
class IngressRequest:
    """Authorize/RevokeCacheSecurityGroupIngress, checked."""

    name: str
    ec2_name: str
    ec2_owner_id: str

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> IngressRequest:
        owner = str(params["EC2SecurityGroupOwnerId"])
        if not _OWNER_ID.match(owner):
            raise InvalidParameterValue(
                f"Invalid EC2SecurityGroupOwnerId '{owner}': use the 12-digit AWS account id that owns the EC2 "
                "security group."
            )
        ec2_name = str(params["EC2SecurityGroupName"])
        if not ec2_name or len(ec2_name) > 255:
            raise InvalidParameterValue("EC2SecurityGroupName must be 1 to 255 characters long.")
        return cls(name=str(params["CacheSecurityGroupName"]).lower(), ec2_name=ec2_name, ec2_owner_id=owner)


class SecurityGroups(UseCases):
    """Create/Describe/DeleteCacheSecurityGroup, Authorize/RevokeCacheSecurityGroupIngress, and
    the lookups clusters make when they name cache security groups."""

    def get(self, region: Region, name: str) -> CacheSecurityGroup:
        found = self._store.get(CacheSecurityGroup, region, name.lower())
        if found is None:
            raise NotFound(f"CacheSecurityGroup not found: {name}", resource="CacheSecurityGroup")
        return found

    def check_names(self, region: Region, names: Sequence[str] | None) -> tuple[str, ...] | None:
        """CacheSecurityGroupNames of a cluster: each must exist."""
        if names is None:
            return None
        return tuple(dict.fromkeys(self.get(region, str(n)).name for n in names))

    def create(self, region: Region, params: Mapping[str, Any]) -> CacheSecurityGroup:
        name = security_group_name(str(params["CacheSecurityGroupName"]))
        if self._store.get(CacheSecurityGroup, region, name) is not None:
            raise AlreadyExists(f"Cache security group {name} already exists.", resource="CacheSecurityGroup")
        if len(self._store.list(CacheSecurityGroup, region)) >= MAX_SECURITY_GROUPS:
            raise QuotaExceeded(
                f"The quota of {MAX_SECURITY_GROUPS} cache security groups per region is reached.",
                resource="CacheSecurityGroup",
            )
        group = CacheSecurityGroup(
            region=region, name=name, description=str(params["Description"]), owner_id=account_id(),
            tags=tags(params.get("Tags")),
        )
        with self._store.transaction() as tx:
            tx.put(group)
            self._event(tx, group, f"Cache security group {name} created")
        return group

    def delete(self, region: Region, name: str) -> None:
        group = self.get(region, name)
        users = [
            c.cluster_id for c in self._store.list(CacheCluster, region) if group.name in c.cache_security_group_names
        ]
        if users:
            raise InvalidState(
                f"Cache security group {group.name} is in use by cache cluster(s) {', '.join(sorted(users)[:5])}; "
                "remove it from them first.",
                resource="CacheSecurityGroup",
            )
        with self._store.transaction() as tx:
            tx.delete(group)
            self._event(tx, group, f"Cache security group {group.name} deleted")

    def describe(self, region: Region, name: str | None = None) -> list[CacheSecurityGroup]:
        if name is not None:
            return [self.get(region, name)]
        return sorted(self._store.list(CacheSecurityGroup, region), key=lambda g: g.name)

    def authorize(self, region: Region, request: IngressRequest) -> CacheSecurityGroup:
        group = self.get(region, request.name)
        for ec2 in group.ec2_security_groups:
            if (ec2.name, ec2.owner_id) == (request.ec2_name, request.ec2_owner_id):
                raise AlreadyExists(
                    f"EC2 security group {request.ec2_name} of {request.ec2_owner_id} is already authorized for "
                    f"cache security group {group.name}.",
                    resource="EC2SecurityGroup",
                )
        updated = replace(
            group, ec2_security_groups=group.ec2_security_groups + (EC2SecurityGroup(request.ec2_name, request.ec2_owner_id),)
        )
        self._save(updated, f"Authorized EC2 security group {request.ec2_name} ({request.ec2_owner_id}) for cache "
                            f"security group {group.name}")
        return updated

    def revoke(self, region: Region, request: IngressRequest) -> CacheSecurityGroup:
        group = self.get(region, request.name)
        kept = tuple(
            e for e in group.ec2_security_groups if (e.name, e.owner_id) != (request.ec2_name, request.ec2_owner_id)
        )
        if len(kept) == len(group.ec2_security_groups):
            raise NotFound(
                f"EC2 security group {request.ec2_name} of {request.ec2_owner_id} is not authorized for cache "
                f"security group {group.name}.",
                resource="EC2SecurityGroup",
            )
        updated = replace(group, ec2_security_groups=kept)
        self._save(updated, f"Revoked EC2 security group {request.ec2_name} ({request.ec2_owner_id}) from cache "
                            f"security group {group.name}")
        return updated

    def _save(self, group: CacheSecurityGroup, message: str) -> None:
        with self._store.transaction() as tx:
            tx.put(group)
            self._event(tx, group, message)
