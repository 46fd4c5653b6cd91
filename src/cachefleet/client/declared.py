"""Declared fleets: a YAML or JSON file of resources that must exist (``cachefleet up --init``).

The file lists resources under the ElastiCache API's own names, each entry holding the very
parameters of its Create call::

    CacheParameterGroups:   [{CacheParameterGroupName, CacheParameterGroupFamily, Description,
                              ParameterNameValues: [...]}]   # applied with ModifyCacheParameterGroup
    CacheSubnetGroups:      [{CacheSubnetGroupName, CacheSubnetGroupDescription, SubnetIds}]
    Users:                  [{UserId, UserName, Engine, AccessString, Passwords | NoPasswordRequired}]
    UserGroups:             [{UserGroupId, Engine, UserIds}]
    ReplicationGroups:      [{ReplicationGroupId, ReplicationGroupDescription, ...}]
    CacheClusters:          [{CacheClusterId, ...}]

``apply`` creates, in that order (each kind may name the ones before it), whatever does not exist
yet, then waits until every declared resource is available (users and user groups: active). A
resource that exists is left as it is, so applying the same file again creates nothing. It is a
client of the public API (boto3), like any script a developer would otherwise write.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    """One section of the file: its API calls, the identifier member, what 'ready' means."""

    section: str
    create: str  # the Create operation (botocore's name)
    key: str  # the identifier member of the Create call
    describe: Callable[[Any, str], dict[str, Any]]  # raises ClientError (NotFound) when missing
    status: Callable[[dict[str, Any]], str]
    ready: str
    extra: tuple[str, ...] = ()  # entry members that are not the Create call's


def _first(listing: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda answer: dict(answer[listing][0])


KINDS = (
    Kind("CacheParameterGroups", "CreateCacheParameterGroup", "CacheParameterGroupName",
         lambda ec, name: _first("CacheParameterGroups")(ec.describe_cache_parameter_groups(CacheParameterGroupName=name)),
         lambda _: "available", "available", extra=("ParameterNameValues",)),
    Kind("CacheSubnetGroups", "CreateCacheSubnetGroup", "CacheSubnetGroupName",
         lambda ec, name: _first("CacheSubnetGroups")(ec.describe_cache_subnet_groups(CacheSubnetGroupName=name)),
         lambda _: "available", "available"),
    Kind("Users", "CreateUser", "UserId",
         lambda ec, name: _first("Users")(ec.describe_users(UserId=name)),
         lambda found: str(found["Status"]), "active"),
    Kind("UserGroups", "CreateUserGroup", "UserGroupId",
         lambda ec, name: _first("UserGroups")(ec.describe_user_groups(UserGroupId=name)),
         lambda found: str(found["Status"]), "active"),
    Kind("ReplicationGroups", "CreateReplicationGroup", "ReplicationGroupId",
         lambda ec, name: _first("ReplicationGroups")(ec.describe_replication_groups(ReplicationGroupId=name)),
         lambda found: str(found["Status"]), "available"),
    Kind("CacheClusters", "CreateCacheCluster", "CacheClusterId",
         lambda ec, name: _first("CacheClusters")(ec.describe_cache_clusters(CacheClusterId=name)),
         lambda found: str(found["CacheClusterStatus"]), "available"),
)
_FAILED = ("create-failed", "incompatible-network", "restore-failed", "deleted", "deleting")


class DeclarationError(ValueError):
    """The file cannot be read or names what the API has no member for; the message says where."""


@dataclass(frozen=True)
class Outcome:
    """What ``apply`` did: the resources it created and those that were there already."""

    created: tuple[str, ...]
    present: tuple[str, ...]


def load(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Reads a declaration (``.json``: JSON; anything else: YAML, which JSON is a subset of)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise DeclarationError(f"{path}: {error.strerror}") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as error:  # json.JSONDecodeError, yaml.YAMLError (not a ValueError)
        raise DeclarationError(f"{path}: {error}") from None
    return check(data, str(path))


def check(data: Any, where: str = "declaration") -> dict[str, list[dict[str, Any]]]:
    """The declaration's sections, checked against botocore's input shapes of the Create calls."""
    import botocore.session

    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise DeclarationError(f"{where}: the top level must be a mapping of sections ({', '.join(k.section for k in KINDS)})")
    sections = {kind.section: kind for kind in KINDS}
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise DeclarationError(f"{where}: unknown section(s) {', '.join(unknown)}; known: {', '.join(sections)}")
    model = botocore.session.get_session().get_service_model("elasticache")
    checked: dict[str, list[dict[str, Any]]] = {}
    for name, entries in data.items():
        kind = sections[name]
        if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
            raise DeclarationError(f"{where}: {name} must be a list of mappings")
        shape = model.operation_model(kind.create).input_shape
        allowed = set(shape.members) | set(kind.extra)
        for index, entry in enumerate(entries):
            if kind.key not in entry:
                raise DeclarationError(f"{where}: {name}[{index}] has no {kind.key}")
            wrong = sorted(set(entry) - allowed)
            if wrong:
                raise DeclarationError(
                    f"{where}: {name}[{index}] ({entry[kind.key]}): {kind.create} has no member {', '.join(wrong)}"
                )
            missing = sorted(set(shape.required_members) - set(entry))
            if missing:
                raise DeclarationError(f"{where}: {name}[{index}] ({entry[kind.key]}): missing {', '.join(missing)}")
        checked[name] = [dict(entry) for entry in entries]
    return checked


def _missing(error: ClientError) -> bool:
    code = str(error.response.get("Error", {}).get("Code", ""))
    return "NotFound" in code


def apply(elasticache: Any, declaration: Mapping[str, list[dict[str, Any]]], *, timeout: float = 300.0) -> Outcome:
    """Creates what is missing (in dependency order), then waits until everything declared is ready."""
    created: list[str] = []
    present: list[str] = []
    for kind in KINDS:
        for entry in declaration.get(kind.section, []):
            name = str(entry[kind.key])
            try:
                kind.describe(elasticache, name)
            except ClientError as error:
                if not _missing(error):
                    raise
            else:
                log.info("init: %s %s exists, left as it is", kind.section, name)
                present.append(f"{kind.section}/{name}")
                continue
            params = {k: v for k, v in entry.items() if k not in kind.extra}
            getattr(elasticache, _snake(kind.create))(**params)
            if kind.section == "CacheParameterGroups" and entry.get("ParameterNameValues"):
                elasticache.modify_cache_parameter_group(
                    CacheParameterGroupName=name, ParameterNameValues=entry["ParameterNameValues"]
                )
            log.info("init: created %s %s", kind.section, name)
            created.append(f"{kind.section}/{name}")
        # Later kinds name these (a group names its user group): wait before going on.
        _wait(elasticache, kind, declaration.get(kind.section, []), timeout)
    log.info("init: done, %d created, %d already there", len(created), len(present))
    return Outcome(tuple(created), tuple(present))


def _wait(elasticache: Any, kind: Kind, entries: list[dict[str, Any]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for entry in entries:
        name = str(entry[kind.key])
        interval = 0.05
        while True:
            status = kind.status(kind.describe(elasticache, name))
            if status == kind.ready:
                break
            if status in _FAILED:
                raise DeclarationError(f"{kind.section} {name} is {status}")
            if time.monotonic() > deadline:
                raise DeclarationError(f"{kind.section} {name} is still {status} after {timeout:.0f} s")
            time.sleep(interval)
            interval = min(interval * 1.5, 1.0)


def _snake(operation: str) -> str:
    import botocore

    return str(botocore.xform_name(operation))
