"""AWS error responses: the one place where domain errors become ElastiCache error codes.

The HTTP status and Sender/Receiver fault of a modelled error come from botocore's error
shapes; the common AWS errors that no model lists (authentication, unknown action, missing
parameter) are in ``_COMMON``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from botocore.model import ServiceModel

from cachefleet.domain import errors as domain
from cachefleet.domain import kinds

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered to the client under an AWS error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ErrorKind:
    """An error code's HTTP status and whether the sender is at fault."""

    status: int
    sender_fault: bool


_COMMON: dict[str, ErrorKind] = {
    "MissingParameter": ErrorKind(400, True),
    "InvalidParameterValue": ErrorKind(400, True),
    "InvalidParameterCombination": ErrorKind(400, True),
    "InvalidAction": ErrorKind(400, True),
    "MalformedQueryString": ErrorKind(400, True),
    "MissingAction": ErrorKind(400, True),
    "MissingAuthenticationToken": ErrorKind(403, True),
    "IncompleteSignature": ErrorKind(400, True),
    "InvalidClientTokenId": ErrorKind(403, True),
    "SignatureDoesNotMatch": ErrorKind(403, True),
    "RequestExpired": ErrorKind(400, True),
    "InvalidQueryParameter": ErrorKind(400, True),
    "ValidationError": ErrorKind(400, True),
    "Throttling": ErrorKind(400, True),
    "SerializationException": ErrorKind(400, True),
    "RequestEntityTooLargeException": ErrorKind(413, True),
    "AccessDenied": ErrorKind(403, True),
    "AccessDeniedException": ErrorKind(400, True),
    "InternalFailure": ErrorKind(500, False),
    "ServiceUnavailable": ErrorKind(503, False),
}

# A resource kind's own faults come from its Kind (domain/kinds.py): which of its fields names
# the error shape for each domain error class.
_KIND_FIELDS: dict[type[domain.CachefleetError], str] = {
    domain.NotFound: "not_found",
    domain.AlreadyExists: "already_exists",
    domain.InvalidState: "invalid_state",
    domain.QuotaExceeded: "quota_exceeded",
}

# Errors about things that are not resource kinds (or not a kind's usual fault):
# domain error class + what it is about -> the error shape name in botocore's models.
_SHAPES: dict[tuple[type[domain.CachefleetError], str], str] = {
    (domain.NotFound, "NodeGroup"): "NodeGroupNotFoundFault",
    (domain.NotFound, "ReservedCacheNodesOffering"): "ReservedCacheNodesOfferingNotFoundFault",
    (domain.InUse, "CacheSubnetGroup"): "CacheSubnetGroupInUse",
    (domain.InUse, "Subnet"): "SubnetInUse",
    (domain.QuotaExceeded, "Tag"): "TagQuotaPerResourceExceeded",
    (domain.QuotaExceeded, "CacheNode"): "NodeQuotaForCustomerExceededFault",
    (domain.QuotaExceeded, "NodeInCluster"): "NodeQuotaForClusterExceededFault",
    (domain.QuotaExceeded, "Subnet"): "CacheSubnetQuotaExceededFault",
    (domain.QuotaExceeded, "NodeGroup"): "NodeGroupsPerReplicationGroupQuotaExceededFault",
    (domain.InsufficientCapacity, "CacheCluster"): "InsufficientCacheClusterCapacityFault",
    (domain.InvalidSubnet, "Subnet"): "InvalidSubnet",
    (domain.InvalidArn, "Resource"): "InvalidARNFault",
    (domain.TagNotFound, "Tag"): "TagNotFoundFault",
    (domain.RateExceeded, "TestFailover"): "APICallRateForCustomerExceededFault",
    (domain.NotAvailable, "TestFailover"): "TestFailoverNotAvailableFault",
    (domain.AlreadyExists, "EC2SecurityGroup"): "AuthorizationAlreadyExistsFault",
    (domain.NotFound, "EC2SecurityGroup"): "AuthorizationNotFoundFault",
    # RBAC (domain/users.py)
    (domain.AlreadyExists, "UserName"): "DuplicateUserNameFault",
    (domain.NotFound, "DefaultUser"): "DefaultUserRequired",
    (domain.InvalidState, "DefaultUser"): "DefaultUserAssociatedToUserGroupFault",
    # CloudWatch Logs
    (domain.NotFound, "LogGroup"): "ResourceNotFoundException",
    (domain.NotFound, "LogStream"): "ResourceNotFoundException",
}


def shape_for(error: domain.CachefleetError) -> str | None:
    """The error shape a domain error is answered with, or None if it has none (our bug)."""
    shape = _SHAPES.get((type(error), error.resource))
    if shape is not None:
        return shape
    field_name = _KIND_FIELDS.get(type(error))
    kind = kinds.BY_NAME.get(error.resource)
    if field_name is None or kind is None:
        return None
    found: str | None = getattr(kind, field_name)
    return found


class ErrorCatalog:
    """Knows the code, status and fault of every error a service can answer."""

    def __init__(self, *models: ServiceModel) -> None:
        self._kinds = dict(_COMMON)
        self._codes_by_shape: dict[str, str] = {}
        self._shapes_by_code: dict[str, str] = {}
        for model in models:
            for shape in model.error_shapes:
                error = shape.metadata.get("error", {})
                code = error.get("code", shape.name)
                self._codes_by_shape[shape.name] = code
                self._shapes_by_code.setdefault(code, shape.name)
                self._kinds.setdefault(code, ErrorKind(error.get("httpStatusCode", 400), error.get("senderFault", True)))

    def shape_name(self, code: str) -> str:
        """The error shape's name for ``code`` (the ``__type`` of JSON/CBOR errors), or the code itself."""
        return self._shapes_by_code.get(code, code)

    def kind(self, code: str) -> ErrorKind:
        return self._kinds.get(code, ErrorKind(400, True))

    def from_domain(self, error: domain.CachefleetError) -> ApiError:
        """The AWS error for a domain error; never raises.

        A pair (error class, resource) without a mapping is our bug, not the client's: it is
        logged and answered as ``InternalFailure`` (the unit tests keep the table complete).
        """
        if isinstance(error, domain.InvalidParameterCombination):
            return ApiError("InvalidParameterCombination", error.message)
        if isinstance(error, domain.InvalidParameterValue):
            return ApiError("InvalidParameterValue", error.message)
        if isinstance(error, domain.ValidationError):
            return ApiError("ValidationError", error.message)
        if isinstance(error, domain.StoreUnavailable):
            return ApiError("ServiceUnavailable", error.message)
        shape = shape_for(error)
        if shape is None:
            log.error("no AWS error for %s(resource=%r): %s", type(error).__name__, error.resource, error.message)
            return ApiError("InternalFailure", error.message)
        return ApiError(self._codes_by_shape.get(shape, shape), error.message)
