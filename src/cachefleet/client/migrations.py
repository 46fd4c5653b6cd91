"""Online migration as ``cachefleet migrate`` and the console show it, read through the public API only.

TestMigration, StartMigration and CompleteMigration answer at once; what they find is told by the
group's events afterwards, in ElastiCache's words ("Test Migration successful for ...", "... is in
sync with the source ...", "Complete Migration failed for ..."). So a step's outcome is the first
event ending it that was not there before the call (``seen`` before, ``outcome`` after).
"""

from __future__ import annotations

from typing import Any

from cachefleet.client.fleet import ApiFailure, Fleet

# Events that end a step, by step: (success, failure) parts of ElastiCache's (and Cachefleet's) messages.
OUTCOMES = {
    "test": ("Test Migration successful", "Test Migration failed"),
    "start": ("is in sync with the source", "Start Migration failed"),
    "complete": ("Complete Migration successful", "Complete Migration failed"),
}
EventKey = tuple[str, str]


def endpoint(address: str, port: int) -> list[dict[str, Any]]:
    """CustomerNodeEndpointList of one node."""
    return [{"Address": address, "Port": port}]


def migration_events(fleet: Fleet, group_id: str, *, minutes: int = 60) -> list[dict[str, Any]]:
    """The group's own migration events, oldest first."""
    return [e for e in fleet.events(group_id, minutes=minutes)
            if e["source"] == group_id.lower() and "igration" in str(e["message"])]


def seen(fleet: Fleet, group_id: str) -> set[EventKey]:
    """The group's events so far: the outcome waited for is a new one."""
    try:
        return {(str(e["date"]), str(e["message"])) for e in fleet.events(group_id, minutes=60)}
    except Exception:  # noqa: BLE001 - an unknown group: the call itself says so next
        return set()


def outcome(fleet: Fleet, group_id: str, step: str, since: set[EventKey]) -> tuple[bool, str] | None:
    """(succeeded, the event's message) once an event not in ``since`` ends ``step``; else None."""
    success, failure = OUTCOMES[step]
    for event in migration_events(fleet, group_id):
        if (str(event["date"]), str(event["message"])) in since:
            continue
        if success in event["message"]:
            return True, str(event["message"])
        if failure in event["message"]:
            return False, str(event["message"])
    return None


def _test_result(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    success, failure = OUTCOMES["test"]
    for event in reversed(events):
        if success in event["message"] or failure in event["message"]:
            return {"ok": success in event["message"], "message": event["message"], "date": event["date"]}
    return None


def migration_view(fleet: Fleet, group_id: str) -> dict[str, Any]:
    """A group as the console's migration page shows it: its status, its primary, its migration events."""
    group = fleet.describe(group_id)
    if group["kind"] != "group":
        raise ApiFailure("InvalidParameterValue",
                         f"{group['id']} is a standalone cache cluster: online migration goes into a replication group.")
    events = migration_events(fleet, group["id"], minutes=24 * 60)
    shard = group["shards"][0] if group["shards"] else {}
    return {
        "id": group["id"], "status": group["status"], "engine": group["engine"],
        "engine_version": group["engine_version"], "cluster_mode": group["cluster_mode"],
        "multi_az": group["multi_az"], "nodes": len(group["nodes"]),
        "primary_endpoint": shard.get("primary_endpoint"), "events": events, "last_test": _test_result(events),
    }


def targets(fleet: Fleet) -> list[dict[str, Any]]:
    """The region's cluster-mode-disabled replication groups: the groups a migration can go into."""
    return [
        {"id": g["id"], "status": g["status"], "engine": g["engine"], "engine_version": g["engine_version"],
         "nodes": g["nodes"], "endpoint": g["endpoint"]}
        for g in fleet.overview() if g["kind"] == "group" and not g["cluster_mode"]
    ]
