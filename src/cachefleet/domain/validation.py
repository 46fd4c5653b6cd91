"""Checks shared by several use cases: windows, ports, addresses, members not supported yet."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from cachefleet.domain.errors import InsufficientCapacity, InvalidParameterCombination, InvalidParameterValue

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MAINTENANCE = re.compile(r"^(\w{3}):(\d{2}):(\d{2})-(\w{3}):(\d{2}):(\d{2})$")
_SNAPSHOT = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


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


def no_outposts(items: Any, members: tuple[str, ...], *, operation: str, within: str) -> None:
    """Refuses AWS Outposts placement members in the elements of a list member (``within``):
    Cachefleet runs every node on this host, so an Outpost ARN could only be dropped, never honoured."""
    for index, item in enumerate(items or (), 1):
        for name in members:
            if item.get(name):
                raise InvalidParameterCombination(
                    f"{operation}: {within}.member.{index}.{name} (AWS Outposts) is not supported by Cachefleet, "
                    f"which runs every node on this host; omit {name}."
                )


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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
