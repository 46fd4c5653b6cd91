"""Identifier rules, ARNs and availability zones, as ElastiCache has them."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import NewType

from cachefleet.domain.errors import ARN_COMPONENTS, InvalidArn, InvalidParameterValue, InvalidSubnet

Region = NewType("Region", str)

# The account every ARN names: one per Cachefleet process (`cachefleet up --account-id`), set once
# at start-up before any request is served, so it is module state rather than a parameter of every
# view and rule that writes an ARN. 000000000000 is what other AWS emulators answer.
DEFAULT_ACCOUNT_ID = "000000000000"
ACCOUNT_ID_PATTERN = re.compile(r"^[0-9]{12}$")
_account = [DEFAULT_ACCOUNT_ID]
REGION_PATTERN = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$")
ZONE_LETTERS = "abcdef"
DEFAULT_ZONE_LETTERS = "abc"

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9-]*$")
_SUBNET_GROUP_NAME = re.compile(r"^[a-z0-9._-]+$")
_SUBNET_ID = re.compile(r"^subnet-(?P<zone>[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-[0-9]+[a-z])(?:-[a-z0-9-]+)?$")


def _check_identifier(value: str, *, parameter: str, noun: str, max_length: int) -> str:
    lowered = value.lower()
    problem = ""
    if not lowered:
        problem = "must not be blank"
    elif len(lowered) > max_length:
        problem = f"must be at most {max_length} characters long"
    elif not _IDENTIFIER.match(lowered):
        problem = "must begin with a letter and contain only ASCII letters, digits and hyphens"
    elif lowered.endswith("-") or "--" in lowered:
        problem = "must not end with a hyphen or contain two consecutive hyphens"
    if problem:
        raise InvalidParameterValue(f"Invalid {noun} '{value}': the {parameter} {problem}.")
    return lowered


def replication_group_id(value: str) -> str:
    """ElastiCache keeps identifiers lower case; so do we."""
    return _check_identifier(value, parameter="ReplicationGroupId", noun="replication group id", max_length=40)


def serverless_cache_name(value: str) -> str:
    return _check_identifier(value, parameter="ServerlessCacheName", noun="serverless cache name", max_length=40)


# A serverless cache runs as a replication group of its own, named with a "--" that no identifier a
# user gives can contain: it never collides with a user's group or cluster, and it is recognised
# (and kept out of DescribeReplicationGroups / DescribeCacheClusters) by its name alone.
SERVERLESS_GROUP_PREFIX = "serverless--"


def serverless_group_id(name: str) -> str:
    """The id of the replication group that serves serverless cache ``name``."""
    return SERVERLESS_GROUP_PREFIX + name


def is_serverless_group(group_id: str | None) -> bool:
    return group_id is not None and group_id.startswith(SERVERLESS_GROUP_PREFIX)


def cache_cluster_id(value: str) -> str:
    return _check_identifier(value, parameter="CacheClusterId", noun="cache cluster id", max_length=50)


def subnet_group_name(value: str) -> str:
    lowered = value.lower()
    if not lowered or len(lowered) > 255 or not _SUBNET_GROUP_NAME.match(lowered):
        raise InvalidParameterValue(
            f"Invalid cache subnet group name '{value}': use 1 to 255 letters, digits, periods, "
            "underscores and hyphens."
        )
    return lowered


def member_cluster_id(group_id: str, number: int) -> str:
    """Cluster mode disabled members are named <group>-001, -002, ... as ElastiCache does."""
    return f"{group_id}-{number:03d}"


def availability_zones(region: str) -> tuple[str, ...]:
    return tuple(region + letter for letter in ZONE_LETTERS)


def default_availability_zones(region: str) -> tuple[str, ...]:
    return tuple(region + letter for letter in DEFAULT_ZONE_LETTERS)


def check_availability_zone(region: str, zone: str, *, parameter: str) -> str:
    if zone not in availability_zones(region):
        raise InvalidParameterValue(
            f"Invalid availability zone '{zone}' for {parameter}: zones of {region} are "
            f"{', '.join(availability_zones(region))}."
        )
    return zone


def subnet_zone(region: str, subnet_id: str) -> str:
    """Subnets are named after the zone they are in: subnet-us-east-1a, subnet-us-east-1b-private."""
    match = _SUBNET_ID.match(subnet_id)
    if not match:
        raise InvalidSubnet(
            f"Subnet '{subnet_id}' does not name an availability zone. Cachefleet subnets are named "
            f"after their zone: use subnet-{region}a, subnet-{region}b-private and the like.",
            resource="Subnet",
        )
    zone = match.group("zone")
    if zone not in availability_zones(region):
        raise InvalidSubnet(
            f"Subnet '{subnet_id}' is in zone {zone}, which is not a zone of region {region} "
            f"({', '.join(availability_zones(region))}).",
            resource="Subnet",
        )
    return zone


def account_id() -> str:
    """The 12-digit account id of every ARN this process writes and resolves."""
    return _account[0]


def use_account_id(value: str) -> str:
    """Sets the account id (start-up only); ValueError unless it is 12 digits."""
    if not ACCOUNT_ID_PATTERN.match(value):
        raise ValueError(f"'{value}' is not an AWS account id: use 12 digits, for example {DEFAULT_ACCOUNT_ID}.")
    _account[0] = value
    return value


@dataclass(frozen=True)
class Arn:
    """An ElastiCache ARN's parts."""

    region: str
    resource_type: str  # as ElastiCache writes it: replicationgroup, cluster, subnetgroup... (see domain/kinds.py)
    resource_id: str
    account: str = ""  # "": this process's account

    def __str__(self) -> str:
        account = self.account or account_id()
        return f"arn:aws:elasticache:{self.region}:{account}:{self.resource_type}:{self.resource_id}"

    @property
    def foreign(self) -> bool:
        """Names another account: ElastiCache answers that no such resource exists (a caller sees its
        own account only), as Terraform met when it built ARNs with the wrong account id
        (hashicorp/terraform-provider-aws#5064)."""
        return bool(self.account) and self.account != account_id()


def arn(region: str, resource_type: str, resource_id: str) -> str:
    return str(Arn(region, resource_type, resource_id))


def parse_arn(value: str, *, region: str, regionless: Collection[str] = ()) -> Arn:
    """An ElastiCache ARN of ``region``; one naming another account parses (``foreign``), and its
    resource is then not found, as ElastiCache has it. The ARNs of the resource types in ``regionless``
    (a global replication group's) name no region instead."""
    parts = value.split(":", 6)
    if len(parts) != 7:
        raise InvalidArn(
            f"{ARN_COMPONENTS.text()} Expected arn:aws:elasticache:{region}:{account_id()}:<type>:<id>.",
            resource="Resource",
        )
    if parts[0] != "arn" or parts[2] != "elasticache" or not parts[6]:
        raise InvalidArn(
            f"The ARN '{value}' is not a valid ElastiCache ARN: expected "
            f"arn:aws:elasticache:{region}:{account_id()}:<type>:<id>.",
            resource="Resource",
        )
    _, _, _, arn_region, account, resource_type, resource_id = parts
    if resource_type in regionless:
        if arn_region:
            raise InvalidArn(
                f"The ARN '{value}' names region {arn_region}, but a {resource_type} spans regions and its ARN names "
                f"none: arn:aws:elasticache::{account_id()}:{resource_type}:{resource_id}.",
                resource="Resource",
            )
    elif arn_region != region:
        raise InvalidArn(
            f"The ARN '{value}' is in region {arn_region}, but the request was made in {region}.",
            resource="Resource",
        )
    if not ACCOUNT_ID_PATTERN.match(account):
        raise InvalidArn(f"The ARN '{value}' names account '{account}': an account id is 12 digits.", resource="Resource")
    return Arn(arn_region, resource_type, resource_id, account)
