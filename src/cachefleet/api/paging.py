"""Marker/MaxRecords paging, as every ElastiCache Describe call has it (20 to 100 records)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from cachefleet.api.errors import ApiError

T = TypeVar("T")

DEFAULT_MAX_RECORDS = 100
MIN_MAX_RECORDS = 20


def page_size(
    params: dict[str, Any], *, default: int = DEFAULT_MAX_RECORDS, maximum: int = DEFAULT_MAX_RECORDS,
    minimum: int = MIN_MAX_RECORDS, name: str = "MaxRecords",
) -> int:
    """The page size asked for, checked against the call's bounds."""
    max_records = params.get(name, default)
    if not minimum <= max_records <= maximum:
        raise ApiError("InvalidParameterValue", f"Invalid {name} {max_records}: use a value between {minimum} and {maximum}.")
    return int(max_records)


def marker_of(params: dict[str, Any], name: str = "Marker") -> tuple[str, str] | None:
    """The (kind, value) a Marker given back by ``encode_marker`` holds; None without one."""
    marker = params.get(name)
    if not marker:
        return None
    try:
        kind, _, value = base64.urlsafe_b64decode(marker.encode()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid_marker(marker, name) from None
    return kind, value


def invalid_marker(marker: str, name: str = "Marker") -> ApiError:
    return ApiError("InvalidParameterValue", f"Invalid {name} '{marker}': pass the {name} of a previous response.")


def encode_marker(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def paginate(
    items: Sequence[T], params: dict[str, Any], *, key: Callable[[T], str] | None = None,
    default: int = DEFAULT_MAX_RECORDS, maximum: int = DEFAULT_MAX_RECORDS, minimum: int = MIN_MAX_RECORDS,
    names: tuple[str, str] = ("MaxRecords", "Marker"),
) -> tuple[list[T], str | None]:
    """One page of ``items`` and the Marker of the next (None on the last page).

    With ``key``, a Marker names the first item of the next page by its key, so a page boundary
    stays put while items come and go; without, it is an offset.
    """
    size_name, marker_name = names  # the serverless family's calls say MaxResults and NextToken
    max_records = page_size(params, default=default, maximum=maximum, minimum=minimum, name=size_name)
    start = 0
    marker = marker_of(params, marker_name)
    if marker is not None:
        kind, value = marker
        if kind == "k" and key is not None:
            start = next((i for i, item in enumerate(items) if key(item) >= value), len(items))
        elif kind == "o" and value.isdigit():
            start = int(value)
        else:
            raise invalid_marker(params[marker_name], marker_name)
    page = list(items[start : start + max_records])
    next_marker = None
    if start + max_records < len(items):
        following = items[start + max_records]
        next_marker = encode_marker("k", key(following)) if key is not None else encode_marker("o", str(start + max_records))
    return page, next_marker
