"""The one error tree of Cachefleet's domain.

Each error names the kind of resource it is about; ``api/errors.py`` maps the pair
(error class, resource kind) once to the ElastiCache error code the client sees.
Messages are written for the user: they say what is wrong and what to change. Where ElastiCache's
own wording is known, the message starts with it: the catalogue of those wordings (``Wording``,
``CATALOGUE``), each with its source, is at the end of this module.
"""

from __future__ import annotations

from dataclasses import dataclass


class CachefleetError(Exception):
    """Base of every error a use case raises on purpose."""

    def __init__(self, message: str, *, resource: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.resource = resource


class InvalidParameterValue(CachefleetError):
    """A parameter has a value ElastiCache would refuse."""


class InvalidParameterCombination(CachefleetError):
    """Parameters that cannot go together, or a capability that is not available."""


class NotFound(CachefleetError):
    """The named resource does not exist (in this region)."""


class AlreadyExists(CachefleetError):
    """A resource with that identifier already exists."""


class InvalidState(CachefleetError):
    """The resource is not in a state that allows the operation."""


class InUse(CachefleetError):
    """The resource is still used by another resource."""


class QuotaExceeded(CachefleetError):
    """A limit on the number of resources was reached."""


class InsufficientCapacity(CachefleetError):
    """The machine has no room left (for example, no free node address)."""


class InvalidSubnet(CachefleetError):
    """A subnet identifier that does not name an availability zone of the region."""


class InvalidArn(CachefleetError):
    """A resource ARN that is malformed or names another region or account."""


class TagNotFound(CachefleetError):
    """A tag key to remove is not on the resource."""


class RateExceeded(CachefleetError):
    """Too many calls of an operation in its window."""


class NotAvailable(CachefleetError):
    """The operation cannot run now (for example, a failover is already in progress)."""


class ValidationError(CachefleetError):
    """A request CloudWatch rejects as malformed (for example, a metric math expression)."""


class StoreUnavailable(CachefleetError):
    """The state store cannot record a change now (its file locked by another process, read-only, its
    disk full): nothing of the change was written. A fault of the server, not of the caller's request
    (ElastiCache's ServiceUnavailable); the same request can be made again once the store writes."""


# ---------------------------------------------------------------------- ElastiCache's wordings
@dataclass(frozen=True)
class Wording:
    """A sentence ElastiCache is known to answer with an error code, and where it was seen.

    Some tools match on the message, not only the code (Terraform retries an
    InvalidReplicationGroupState whose message says "not in available state", and ignores an
    InvalidParameterCombination saying "No modifications were requested"), so Cachefleet's
    message starts with the known sentence; its own advice may follow.
    """

    code: str
    template: str  # str.format fields, e.g. "CacheSubnetGroup {name} not found."
    source: str  # a URL, or "moto tests: <path>"

    def text(self, **values: object) -> str:
        return self.template.format(**values)


_MOTO_TESTS = "moto tests: tests/test_elasticache/test_elasticache.py"

CACHE_NODE_TYPE_REQUIRED = Wording(
    "InvalidParameterValue", "The parameter CacheNodeType must be provided and must not be null.",
    "https://github.com/alantech/iasql/issues/1684 (a real AWS response); https://github.com/getmoto/moto/pull/9402",
)
CACHE_CLUSTER_NOT_FOUND = Wording("CacheClusterNotFound", "Cache cluster {id} not found.", _MOTO_TESTS)
CACHE_CLUSTER_ALREADY_EXISTS = Wording("CacheClusterAlreadyExists", "Cache cluster {id} already exists.", _MOTO_TESTS)
CACHE_SUBNET_GROUP_NOT_FOUND = Wording(
    "CacheSubnetGroupNotFoundFault", "CacheSubnetGroup {name} not found.",
    _MOTO_TESTS + " (test_describe_cache_subnet_group_not_found)",
)
CACHE_SUBNET_GROUP_ALREADY_EXISTS = Wording(
    "CacheSubnetGroupAlreadyExists", "CacheSubnetGroup {name} already exists.",
    _MOTO_TESTS + " (test_cache_subnet_group_already_exists)",
)
REPLICATION_GROUP_NOT_FOUND = Wording(
    "ReplicationGroupNotFoundFault", "ReplicationGroup {id} not found.",
    "AWS's own ACK controller test fixture: https://github.com/aws-controllers-k8s/elasticache-controller "
    "(test/unit replication_group scenarios: \"ReplicationGroup rg-cmd not found\")",
)
REPLICATION_GROUP_NOT_AVAILABLE = Wording(
    "InvalidReplicationGroupState", "Replication group {id} is not in available state.",
    "issue 17 (Terraform retries on \"is not in available state\"); ElastiCache's message as quoted by "
    "transient-error classifiers: \"InvalidReplicationGroupState: Replication group is not in available state\"",
)
USER_NOT_FOUND = Wording("UserNotFound", "User {id} not found.", _MOTO_TESTS + " (test_describe_users_unknown_userid)")
USER_ALREADY_EXISTS = Wording("UserAlreadyExists", "User {id} already exists.", _MOTO_TESTS + " (test_create_user_twice)")
PASSWORD_LENGTH = Wording(
    "InvalidParameterValue", "Passwords length must be between 16-128 characters.",
    _MOTO_TESTS + " (test_create_user_with_password_too_short)",
)
NO_PASSWORD = Wording(
    "InvalidParameterValue",
    "No password was provided. If you want to create/update the user without password, please use the "
    "NoPasswordRequired flag.",
    "moto: moto/elasticache/exceptions.py (PasswordRequired)",
)
AUTHENTICATION_TYPE = Wording(
    "InvalidParameterValue", "Input Authentication type: {type} is not in the allowed list: "
    "[password,no-password-required,iam]",
    _MOTO_TESTS + " (test_create_user_without_password: an AuthenticationMode without its Type)",
)
ARN_COMPONENTS = Wording(
    "InvalidARN", "Input ARN string does not have 7 components.",
    "https://github.com/ekristen/aws-nuke/issues/208, https://github.com/boto/boto3/issues/1876 (real AWS responses)",
)
# DeleteCacheCluster of a group member, as real AWS responses quoted in public issues word it.
CACHE_CLUSTER_SERVING_AS_PRIMARY = Wording(
    "InvalidCacheClusterState", "Cache cluster {id} is serving as primary for replication group {group} and cannot "
    "be deleted.",
    "https://github.com/rebuy-de/aws-nuke/pull/273 (a real AWS response: \"Cache cluster transactions-001 is serving "
    "as primary for replication group transactions and cannot be deleted. To delete the entire replication group, "
    "use DeleteReplicationGroup.\")",
)
CACHE_CLUSTER_ONLY_MEMBER = Wording(
    "InvalidCacheClusterState", "Cannot delete the cache cluster since it is the only member of a replication group.",
    "https://github.com/hashicorp/terraform-provider-aws/issues/17647 and "
    "https://github.com/gruntwork-io/cloud-nuke/issues/341 (real AWS responses, \"... Delete the replication group "
    "instead.\")",
)
CACHE_CLUSTER_ONLY_READ_REPLICA = Wording(
    "InvalidCacheClusterState", "Cannot delete the cache cluster because it is the only read replica for replication "
    "group {group} which has autofailover enabled or pending.",
    "https://github.com/rebuy-de/aws-nuke/issues/289 (a real AWS response, \"... You can disable autofailover and "
    "then delete this cache cluster. Alternatively, to delete the entire replication group, use "
    "DeleteReplicationGroup.\")",
)

# Every known wording, for the test that checks each against what Cachefleet answers.
CATALOGUE: tuple[Wording, ...] = (
    CACHE_NODE_TYPE_REQUIRED, CACHE_CLUSTER_NOT_FOUND, CACHE_CLUSTER_ALREADY_EXISTS, CACHE_SUBNET_GROUP_NOT_FOUND,
    CACHE_SUBNET_GROUP_ALREADY_EXISTS, REPLICATION_GROUP_NOT_FOUND, REPLICATION_GROUP_NOT_AVAILABLE, USER_NOT_FOUND,
    USER_ALREADY_EXISTS, PASSWORD_LENGTH, NO_PASSWORD, AUTHENTICATION_TYPE, ARN_COMPONENTS,
    CACHE_CLUSTER_SERVING_AS_PRIMARY, CACHE_CLUSTER_ONLY_MEMBER, CACHE_CLUSTER_ONLY_READ_REPLICA,
)

# A kind's NotFound in ElastiCache's words where they are known (domain/base.py, tagging).
_NOT_FOUND_BY_KIND = {
    "CacheCluster": CACHE_CLUSTER_NOT_FOUND,
    "CacheSubnetGroup": CACHE_SUBNET_GROUP_NOT_FOUND,
    "ReplicationGroup": REPLICATION_GROUP_NOT_FOUND,
    "User": USER_NOT_FOUND,
}


def not_found_message(kind_name: str, noun: str, key: str) -> str:
    """The message of a kind's NotFound: ElastiCache's sentence if known, else "<Noun> <key> not found."."""
    known = _NOT_FOUND_BY_KIND.get(kind_name)
    if known is None:
        return f"{noun} {key} not found."
    return known.template.replace("{id}", key).replace("{name}", key)
