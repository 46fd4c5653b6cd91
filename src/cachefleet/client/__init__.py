"""A client of Cachefleet's public API (boto3 underneath), shared by the CLI and the web console.

Nothing here knows how the server works inside: every operation is an ElastiCache or
CloudWatch API call on the endpoint, exactly as a user's own boto3 code would make it.
"""

from cachefleet.client.fleet import ApiFailure, ConnectTarget, Fleet, NotFound, connect_target

__all__ = ["ApiFailure", "ConnectTarget", "Fleet", "NotFound", "connect_target"]
