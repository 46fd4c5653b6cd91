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
    max_records = params.get(size_name, default)
    if not minimum <= max_records <= maximum:
        raise ApiError(
            "InvalidParameterValue",
            f"Invalid {size_name} {max_records}: use a value between {minimum} and {maximum}.",
        )
    start = 0
    marker = params.get(marker_name)
    if marker:
        invalid = ApiError(
            "InvalidParameterValue", f"Invalid {marker_name} '{marker}': pass the {marker_name} of a previous response."
        )
        try:
            kind, _, value = base64.urlsafe_b64decode(marker.encode()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise invalid from None
        if kind == "k" and key is not None:
            start = next((i for i, item in enumerate(items) if key(item) >= value), len(items))
        elif kind == "o" and value.isdigit():
            start = int(value)
        else:
            raise invalid
    page = list(items[start : start + max_records])
    next_marker = None
    if start + max_records < len(items):
        following = items[start + max_records]
        text = f"k:{key(following)}" if key is not None else f"o:{start + max_records}"
        next_marker = base64.urlsafe_b64encode(text.encode()).decode()
    return page, next_marker
