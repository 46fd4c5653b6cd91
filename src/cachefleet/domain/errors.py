"""The one error tree of Cachefleet's domain.

Each error names the kind of resource it is about; ``api/errors.py`` maps the pair
(error class, resource kind) once to the ElastiCache error code the client sees.
Messages are written for the user: they say what is wrong and what to change.
"""

from __future__ import annotations


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
