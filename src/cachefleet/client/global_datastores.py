"""Global datastores as ``cachefleet global`` and the console show them, read through the public API only.

DescribeGlobalReplicationGroups with ShowMemberInfo lists a datastore in every region (its members
carry their own region); the groups a datastore can be created from are the caller's region's
replication groups that belong to none (DescribeReplicationGroups: no GlobalReplicationGroupInfo).
Whether one qualifies (node type, engine version, cluster mode) is the API's to say, in its words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cachefleet.client.fleet import Fleet, _iso


def records(fleet: Fleet, global_id: str | None = None) -> list[dict[str, Any]]:
    """DescribeGlobalReplicationGroups with members, every page (or the one named)."""
    found: list[dict[str, Any]] = []
    marker: str | None = None
    while True:
        page = fleet.call("elasticache", "describe_global_replication_groups", ShowMemberInfo=True,
                          **({"GlobalReplicationGroupId": global_id} if global_id else {}),
                          **({"Marker": marker} if marker else {}))
        found.extend(dict(r) for r in page.get("GlobalReplicationGroups", []))
        marker = page.get("Marker")
        if not marker:
            return found


def members(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The primary first, then the secondaries by region: the order a reader scans for."""
    return sorted(record.get("Members") or [], key=lambda m: (m["Role"] != "PRIMARY", m["ReplicationGroupRegion"]))


def member_text(member: dict[str, Any]) -> str:
    return f"{member['ReplicationGroupRegion']}/{member['ReplicationGroupId']}"


def primary(record: dict[str, Any]) -> dict[str, Any] | None:
    return next((m for m in record.get("Members") or [] if m["Role"] == "PRIMARY"), None)


def global_view(record: dict[str, Any]) -> dict[str, Any]:
    """One datastore as the console's pages show it."""
    return {
        "id": record["GlobalReplicationGroupId"],
        "description": record.get("GlobalReplicationGroupDescription") or "",
        "status": record.get("Status"),
        "engine": record.get("Engine"),
        "engine_version": record.get("EngineVersion"),
        "node_type": record.get("CacheNodeType"),
        "cluster_mode": bool(record.get("ClusterEnabled")),
        "tls": bool(record.get("TransitEncryptionEnabled")),
        "at_rest_encryption": bool(record.get("AtRestEncryptionEnabled")),
        "auth_token_enabled": bool(record.get("AuthTokenEnabled")),
        "arn": record.get("ARN"),
        "members": [
            {"region": m["ReplicationGroupRegion"], "group": m["ReplicationGroupId"], "role": m["Role"],
             "status": m.get("Status"), "automatic_failover": m.get("AutomaticFailover")}
            for m in members(record)
        ],
    }


def candidates(fleet: Fleet) -> list[dict[str, Any]]:
    """The region's replication groups that belong to no global datastore, with what the API checks."""
    groups = fleet.pages("elasticache", "describe_replication_groups", "ReplicationGroups")
    return sorted(
        ({"id": g["ReplicationGroupId"], "status": g.get("Status"), "engine": g.get("Engine"),
          "node_type": g.get("CacheNodeType"), "cluster_mode": bool(g.get("ClusterEnabled"))}
         for g in groups if not g.get("GlobalReplicationGroupInfo")),
        key=lambda g: str(g["id"]),
    )


def events(fleet_in: Callable[[str], Fleet], record: dict[str, Any], *, minutes: int = 24 * 60) -> list[dict[str, Any]]:
    """A datastore's events: those of each member replication group (joining, leaving, failovers,
    the group's own changes), read in the member's own region (``fleet_in(region)``), oldest first;
    the source is ``region/group``."""
    found: list[dict[str, Any]] = []
    for member in members(record):
        region, group_id = member["ReplicationGroupRegion"], member["ReplicationGroupId"]
        raw = fleet_in(region).pages("elasticache", "describe_events", "Events", SourceType="replication-group",
                                     SourceIdentifier=group_id, Duration=minutes, MaxRecords=100)
        found.extend({"date": _iso(e.get("Date")), "source": f"{region}/{group_id}",
                      "source_type": e.get("SourceType", ""), "message": e.get("Message", "")} for e in raw)
    return sorted(found, key=lambda e: str(e["date"]))
