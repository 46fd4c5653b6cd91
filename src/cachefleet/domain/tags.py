"""Tags: the Key/Value pairs on a resource, and ElastiCache's limits on them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cachefleet.domain.errors import InvalidParameterValue, QuotaExceeded

MAX_TAGS = 50


@dataclass(frozen=True)
class Tag:
    """A tag: a key and its value."""

    key: str
    value: str


def tags(raw: Iterable[Mapping[str, Any]] | None, *, existing: Sequence[Tag] = ()) -> tuple[Tag, ...]:
    """Merges new tags into existing ones (same key: new value wins), checking ElastiCache's limits."""
    merged = {tag.key: tag.value for tag in existing}
    for item in raw or ():
        key = item.get("Key")
        value = item.get("Value", "")
        if not key:
            raise InvalidParameterValue("Every tag needs a Key: add Key to each Tag.")
        if len(key) > 128:
            raise InvalidParameterValue(f"Tag key '{key[:20]}...' is longer than 128 characters.")
        if len(value) > 256:
            raise InvalidParameterValue(f"The value of tag '{key}' is longer than 256 characters.")
        if key.lower().startswith("aws:"):
            raise InvalidParameterValue(f"Tag key '{key}' uses the reserved prefix 'aws:'; choose another key.")
        merged[key] = value
    if len(merged) > MAX_TAGS:
        raise QuotaExceeded(
            f"A resource can have at most {MAX_TAGS} tags; this request would give it {len(merged)}. "
            "Remove some tags first.",
            resource="Tag",
        )
    return tuple(Tag(key, value) for key, value in merged.items())
