"""Views shared by several families: endpoints, tag lists, log delivery configurations."""

from __future__ import annotations

from typing import Any

from cachefleet.domain.logs import LogDelivery
from cachefleet.domain.security import Security
from cachefleet.domain.tags import Tag


def endpoint(address: str | None, port: int) -> dict[str, Any] | None:
    if not address:
        return None
    return {"Address": address, "Port": port}


def tag_list(tags: tuple[Tag, ...]) -> list[dict[str, str]]:
    return [{"Key": tag.key, "Value": tag.value} for tag in tags]


def log_delivery(items: tuple[LogDelivery, ...]) -> list[dict[str, Any]]:
    views = []
    for item in items:
        if item.destination_type == "cloudwatch-logs":
            details = {"CloudWatchLogsDetails": {"LogGroup": item.destination}}
        else:
            details = {"KinesisFirehoseDetails": {"DeliveryStream": item.destination}}
        views.append(
            {
                "LogType": item.log_type,
                "DestinationType": item.destination_type,
                "DestinationDetails": details,
                "LogFormat": item.log_format,
                "Status": item.status,
            }
        )
    return views


def security_fields(security: Security) -> dict[str, Any]:
    """AuthTokenEnabled, AuthTokenLastModifiedDate, TransitEncryptionEnabled/Mode: never the token."""
    mode = security.transit_encryption_mode
    return {
        "AuthTokenEnabled": security.auth_token_enabled,
        "AuthTokenLastModifiedDate": security.auth_token_last_modified,
        "TransitEncryptionEnabled": mode is not None,
        "TransitEncryptionMode": mode.value if mode is not None else None,
    }
