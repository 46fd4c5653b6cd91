"""Checks shared by several use cases: tags, windows, engines, unsupported members."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cachefleet.domain.errors import (
    InsufficientCapacity,
    InvalidParameterCombination,
    InvalidParameterValue,
    NotFound,
    QuotaExceeded,
)
from cachefleet.domain.model import EngineRelease, LogDelivery, Tag

MAX_TAGS = 50
ENGINES = ("valkey", "redis")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MAINTENANCE = re.compile(r"^(\w{3}):(\d{2}):(\d{2})-(\w{3}):(\d{2}):(\d{2})$")
_SNAPSHOT = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


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


def _minutes(day: int, hour: str, minute: str) -> int:
    return day * 1440 + int(hour) * 60 + int(minute)


def maintenance_window(value: str) -> str:
    lowered = value.lower()
    match = _MAINTENANCE.match(lowered)
    problem = "use the format ddd:hh24:mi-ddd:hh24:mi, for example sun:05:00-sun:06:00"
    if match:
        d1, h1, m1, d2, h2, m2 = match.groups()
        if d1 in _DAYS and d2 in _DAYS and int(h1) < 24 and int(h2) < 24 and int(m1) < 60 and int(m2) < 60:
            start = _minutes(_DAYS.index(d1), h1, m1)
            end = _minutes(_DAYS.index(d2), h2, m2)
            length = (end - start) % (7 * 1440)
            if length >= 60:
                return lowered
            problem = "the window must be at least 60 minutes long"
    raise InvalidParameterValue(f"Invalid PreferredMaintenanceWindow '{value}': {problem}.")


def snapshot_window(value: str) -> str:
    match = _SNAPSHOT.match(value)
    problem = "use the format hh24:mi-hh24:mi, for example 05:00-06:00"
    if match:
        h1, m1, h2, m2 = match.groups()
        if int(h1) < 24 and int(h2) < 24 and int(m1) < 60 and int(m2) < 60:
            length = (_minutes(0, h2, m2) - _minutes(0, h1, m1)) % 1440
            if length >= 60:
                return value
            problem = "the window must be at least 60 minutes long"
    raise InvalidParameterValue(f"Invalid SnapshotWindow '{value}': {problem}.")


def port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise InvalidParameterValue(f"Invalid Port {value}: use a port between 1 and 65535 (ElastiCache's default is 6379).")
    return value


def not_yet(params: Mapping[str, Any], members: Mapping[str, Any], *, operation: str) -> None:
    """Refuses members whose capability Cachefleet does not have yet, instead of ignoring them.

    ``members`` maps a member name to the value that means "not asked for" (None: any value
    is refused). A member absent from the request, or given that neutral value, passes.
    """
    for name, neutral in members.items():
        if name not in params:
            continue
        value = params[name]
        if neutral is not None and value == neutral:
            continue
        if isinstance(value, list | tuple) and not value and neutral is None:
            continue
        raise InvalidParameterCombination(
            f"{operation}: {name} is not supported by Cachefleet yet; omit {name}"
            + (f" or set it to {_show(neutral)}" if neutral is not None else "")
            + "."
        )


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def family_of(engine: str, version: str) -> str:
    return f"{engine}{version.split('.')[0]}"


def resolve_engine(
    releases: Sequence[EngineRelease], engine: str | None, version: str | None
) -> EngineRelease:
    """Picks the installed build for an Engine/EngineVersion request (newest when no version)."""
    installed = ", ".join(f"{r.engine} {r.version}" for r in releases) or "none"
    name = (engine or default_engine(releases)).lower()
    if name == "memcached":
        raise InvalidParameterValue(
            f"Engine memcached is not supported by Cachefleet, which runs Valkey and Redis OSS. Installed: {installed}."
        )
    if name not in ENGINES:
        raise InvalidParameterValue(f"Invalid Engine '{engine}': use valkey or redis. Installed: {installed}.")
    candidates = sorted(
        (r for r in releases if r.engine == name),
        key=lambda r: tuple(int(p) for p in r.version.split(".") if p.isdigit()),
        reverse=True,
    )
    if not candidates:
        raise InvalidParameterValue(f"Engine {name} is not installed on this Cachefleet host. Installed: {installed}.")
    if not version:
        return candidates[0]
    wanted = version.lower().removesuffix(".x")
    for release in candidates:
        if release.version == wanted or release.major_minor == wanted or release.version.split(".")[0] == wanted:
            return release
    raise InvalidParameterValue(
        f"EngineVersion {version} of {name} is not installed on this Cachefleet host. Installed: {installed}."
    )


def default_engine(releases: Sequence[EngineRelease]) -> str:
    """ElastiCache defaults to redis; on a host without Redis OSS, valkey is the useful default."""
    if any(r.engine == "redis" for r in releases):
        return "redis"
    return "valkey"


def parameter_group(name: str | None, release: EngineRelease, *, cluster_mode: bool = False) -> str:
    default = f"default.{release.family}" + (".cluster.on" if cluster_mode else "")
    if name is None or name == default:
        return default
    if cluster_mode and name == f"default.{release.family}":
        raise InvalidParameterCombination(
            f"Cache parameter group {name} has cluster mode disabled; a cluster mode enabled group uses {default}."
        )
    if name.startswith("default.") and name.removeprefix("default.").split(".")[0] != release.family:
        raise InvalidParameterCombination(
            f"Cache parameter group {name} is not of family {release.family} ({release.engine} "
            f"{release.version}); use {default}."
        )
    raise NotFound(
        f"Cache parameter group {name} not found. Custom parameter groups are not supported by Cachefleet yet; "
        f"use {default} or omit CacheParameterGroupName.",
        resource="CacheParameterGroup",
    )


def allocate_addresses(network: ipaddress.IPv4Network, used: set[str], count: int) -> list[str]:
    """The lowest free host addresses of the node network."""
    found: list[str] = []
    if count <= 0:
        return found
    for host in network.hosts():
        text = str(host)
        if text not in used:
            found.append(text)
            if len(found) == count:
                return found
    raise InsufficientCapacity(
        f"The node network {network} has no room for {count} more addresses "
        f"({len(used)} in use). Delete unused clusters, or start Cachefleet with a larger --node-network.",
        resource="CacheCluster",
    )


LOG_TYPES = ("slow-log", "engine-log")
# DestinationType -> (its member of DestinationDetails, that member's field, the field's rule,
# what the rule asks for); the other type's member is refused beside it.
_DESTINATIONS: dict[str, tuple[str, str, re.Pattern[str], str]] = {
    "cloudwatch-logs": (
        "CloudWatchLogsDetails", "LogGroup", re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$"),
        "a log group (letters, digits and . - _ / #, at most 512 characters)",
    ),
    "kinesis-firehose": (
        "KinesisFirehoseDetails", "DeliveryStream", re.compile(r"^[a-zA-Z0-9_.\-]{1,64}$"),
        "a delivery stream (letters, digits and _ . -, at most 64 characters)",
    ),
}


def log_deliveries(
    raw: Sequence[Mapping[str, Any]] | None, *, existing: Sequence[LogDelivery] = (), operation: str
) -> tuple[LogDelivery, ...]:
    """Applies LogDeliveryConfigurations to ``existing`` (Enabled false removes a log type)."""
    current = {item.log_type: item for item in existing}
    seen: set[str] = set()
    for index, item in enumerate(raw or (), 1):
        where = f"{operation}: LogDeliveryConfigurations.member.{index}"
        log_type = item.get("LogType")
        if log_type not in LOG_TYPES:
            raise InvalidParameterValue(f"{where}: LogType must be slow-log or engine-log.")
        if log_type in seen:
            raise InvalidParameterCombination(f"{where}: {log_type} is configured twice; give each LogType once.")
        seen.add(log_type)
        if item.get("Enabled") is False:
            current.pop(log_type, None)
            continue
        before = current.get(log_type)
        destination_type = item.get("DestinationType") or (before.destination_type if before else None)
        log_format = item.get("LogFormat") or (before.log_format if before else None)
        if destination_type is None or log_format is None:
            raise InvalidParameterValue(
                f"{where}: give DestinationType (cloudwatch-logs or kinesis-firehose), DestinationDetails and LogFormat "
                "(text or json)."
            )
        details = item.get("DestinationDetails") or {}
        member, field_name, rule, wanted = _DESTINATIONS[destination_type]
        destination = (details.get(member) or {}).get(field_name)
        if destination is None and before is not None and before.destination_type == destination_type:
            destination = before.destination
        if not destination or not rule.match(destination):
            raise InvalidParameterValue(f"{where}: DestinationDetails.{member}.{field_name} must name {wanted}.")
        for other_type, (other, *_) in _DESTINATIONS.items():
            if other != member and details.get(other):
                raise InvalidParameterCombination(f"{where}: {other} goes with DestinationType {other_type}.")
        current[log_type] = LogDelivery(log_type, destination_type, destination, log_format)
    return tuple(current[t] for t in LOG_TYPES if t in current)


def durability(params: Mapping[str, Any], *, operation: str) -> None:
    """ElastiCache's Durability: ``default`` and ``disabled`` are standard behaviour (what
    Cachefleet does); ``sync``/``async`` need a Multi-AZ transactional log, which it has not."""
    value = params.get("Durability")
    if value is None or value in ("default", "disabled"):
        return
    raise InvalidParameterCombination(
        f"{operation}: Durability {value} (a Multi-AZ transactional log) is not supported by Cachefleet yet; "
        "omit Durability or set it to default or disabled."
    )
