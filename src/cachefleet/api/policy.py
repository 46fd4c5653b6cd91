"""IAM-style identity policies for API access keys: parsing, evaluation, and IAM's AccessDenied wording.

A policy is IAM's JSON: ``Statement`` (a list, or one statement), each with ``Effect``
(``Allow`` / ``Deny``), ``Action`` or ``NotAction`` (``service:Operation`` with ``*`` and ``?``
wildcards, matched without regard to case: ``elasticache:Describe*``, ``cloudwatch:*``,
``logs:*``), and ``Resource`` or ``NotResource`` (ARNs with wildcards, matched per ARN
segment and case-sensitively, or ``*``). Evaluation is IAM's: an explicit Deny wins, then
any Allow, and otherwise the request is denied by default. Elements Cachefleet cannot
evaluate (``Condition``, ``Principal``, ``NotPrincipal``) are refused when the policy is
loaded, never silently ignored: a policy that meant to narrow access must not widen it.

Pure: no I/O. The credentials file loader (``sigv4.py``) parses the documents; the server
asks ``authorize`` before running an action.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cachefleet.api.errors import ApiError
from cachefleet.domain.global_datastores import id_prefix
from cachefleet.domain.identifiers import account_id

VERSIONS = ("2012-10-17", "2008-10-17")
_KNOWN = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource"}
_UNSUPPORTED = {"Condition", "Principal", "NotPrincipal"}
_ACTION = re.compile(r"^[a-zA-Z0-9-]+:[a-zA-Z0-9*?]+$")


class PolicyError(ValueError):
    """A policy document Cachefleet cannot evaluate exactly as IAM would."""


class Effect(enum.Enum):
    ALLOW = "Allow"
    DENY = "Deny"


class Decision(enum.Enum):
    ALLOWED = "allowed"
    IMPLICIT_DENY = "implicit deny"  # no statement allows it
    EXPLICIT_DENY = "explicit deny"  # a Deny statement matches


@lru_cache(maxsize=1024)
def _wildcard(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
    """IAM action matching: ``*`` alone matches every action; otherwise case-insensitive wildcards."""
    return pattern == "*" or bool(_wildcard(pattern, ignore_case=True).match(action))


def resource_matches(pattern: str, resource: str) -> bool:
    """IAM resource matching: ``*`` alone matches everything; otherwise each of the six ARN
    segments (arn:partition:service:region:account:resource) is matched on its own, so a
    wildcard never spans a segment's colon, except within the last (resource) segment."""
    if pattern == "*":
        return True
    wanted = pattern.split(":", 5)
    given = resource.split(":", 5)
    if len(wanted) != 6 or len(given) != 6:
        return bool(_wildcard(pattern, ignore_case=False).match(resource))
    return all(_wildcard(w, ignore_case=False).match(g) for w, g in zip(wanted, given, strict=True))


def _strings(statement: Mapping[str, Any], key: str, position: int) -> tuple[str, ...]:
    value = statement[key]
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise PolicyError(f"Statement {position}: {key} must be a string or a non-empty list of strings.")
    return tuple(values)


@dataclass(frozen=True)
class Statement:
    effect: Effect
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    sid: str = ""

    @classmethod
    def parse(cls, raw: Any, position: int) -> Statement:
        if not isinstance(raw, dict):
            raise PolicyError(f"Statement {position} must be a JSON object.")
        unsupported = sorted(_UNSUPPORTED & raw.keys())
        if unsupported:
            raise PolicyError(
                f"Statement {position}: {', '.join(unsupported)} is not supported by Cachefleet's policy "
                "evaluation; remove it (a credentials-file policy applies to its own access key only)."
            )
        unknown = sorted(raw.keys() - _KNOWN)
        if unknown:
            raise PolicyError(f"Statement {position}: unknown element {', '.join(unknown)}.")
        effect = raw.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"Statement {position}: Effect must be Allow or Deny, not {effect!r}.")
        if ("Action" in raw) == ("NotAction" in raw):
            raise PolicyError(f"Statement {position} must have exactly one of Action and NotAction.")
        if ("Resource" in raw) == ("NotResource" in raw):
            raise PolicyError(f"Statement {position} must have exactly one of Resource and NotResource.")
        action_key = "Action" if "Action" in raw else "NotAction"
        actions = _strings(raw, action_key, position)
        for action in actions:
            if action != "*" and not _ACTION.match(action):
                raise PolicyError(
                    f"Statement {position}: {action_key} '{action}' is not '*' or <service>:<action> "
                    "(for example elasticache:Describe*)."
                )
        resource_key = "Resource" if "Resource" in raw else "NotResource"
        resources = _strings(raw, resource_key, position)
        for resource in resources:
            if resource != "*" and not resource.startswith("arn:"):
                raise PolicyError(f"Statement {position}: {resource_key} '{resource}' is not '*' or an ARN.")
        sid = raw.get("Sid", "")
        if not isinstance(sid, str):
            raise PolicyError(f"Statement {position}: Sid must be a string.")
        return cls(
            effect=Effect(effect),
            actions=actions if action_key == "Action" else (),
            not_actions=actions if action_key == "NotAction" else (),
            resources=resources if resource_key == "Resource" else (),
            not_resources=resources if resource_key == "NotResource" else (),
            sid=sid,
        )

    def applies(self, action: str, resource: str) -> bool:
        if self.actions:
            acting = any(action_matches(p, action) for p in self.actions)
        else:
            acting = not any(action_matches(p, action) for p in self.not_actions)
        if not acting:
            return False
        if self.resources:
            return any(resource_matches(p, resource) for p in self.resources)
        return not any(resource_matches(p, resource) for p in self.not_resources)


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]

    @classmethod
    def parse(cls, document: str | Mapping[str, Any]) -> Policy:
        if isinstance(document, str):
            try:
                raw = json.loads(document)
            except json.JSONDecodeError as error:
                raise PolicyError(f"The policy is not valid JSON: {error}.") from None
        else:
            raw = dict(document)
        if not isinstance(raw, dict):
            raise PolicyError("A policy must be a JSON object with a Statement.")
        unsupported = sorted(_UNSUPPORTED & raw.keys())
        if unsupported:
            raise PolicyError(f"{', '.join(unsupported)} is not supported in an identity policy.")
        unknown = sorted(raw.keys() - {"Version", "Id", "Statement"})
        if unknown:
            raise PolicyError(f"Unknown policy element {', '.join(unknown)}.")
        version = raw.get("Version", VERSIONS[0])
        if version not in VERSIONS:
            raise PolicyError(f"Version must be {' or '.join(VERSIONS)}, not {version!r}.")
        if "Statement" not in raw:
            raise PolicyError("A policy needs a Statement.")
        statements = raw["Statement"]
        if isinstance(statements, dict):
            statements = [statements]
        if not isinstance(statements, list) or not statements:
            raise PolicyError("Statement must be a statement object or a non-empty list of them.")
        return cls(tuple(Statement.parse(s, i) for i, s in enumerate(statements, 1)))

    def evaluate(self, action: str, resource: str = "*") -> Decision:
        allowed = False
        for statement in self.statements:
            if statement.applies(action, resource):
                if statement.effect is Effect.DENY:
                    return Decision.EXPLICIT_DENY
                allowed = True
        return Decision.ALLOWED if allowed else Decision.IMPLICIT_DENY

    def decide(self, action: str, resources: Sequence[str] = ("*",)) -> tuple[Decision, str]:
        """The decision over every resource a request touches: the first refusal, an explicit
        deny before an implicit one; (ALLOWED, "") when all are allowed."""
        implicit: str | None = None
        for resource in resources or ("*",):
            decision = self.evaluate(action, resource)
            if decision is Decision.EXPLICIT_DENY:
                return decision, resource
            if decision is Decision.IMPLICIT_DENY and implicit is None:
                implicit = resource
        if implicit is not None:
            return Decision.IMPLICIT_DENY, implicit
        return Decision.ALLOWED, ""


# The SigV4 signing name of a service -> its IAM action prefix (CloudWatch signs as "monitoring").
ACTION_PREFIX = {"elasticache": "elasticache", "monitoring": "cloudwatch", "logs": "logs"}


def iam_action(signing_service: str, operation: str) -> str:
    """``elasticache:CreateReplicationGroup`` for an operation of the service a request is signed for."""
    return f"{ACTION_PREFIX.get(signing_service, signing_service)}:{operation}"


def principal_arn(user: str) -> str:
    """The IAM user ARN a credentials-file key stands for (its profile name is the user name)."""
    return f"arn:aws:iam::{account_id()}:user/{user}"


def access_denied_message(*, principal: str, action: str, resource: str, decision: Decision) -> str:
    """IAM's wording: "User: <arn> is not authorized to perform: <action> [on resource: <arn>]
    because no identity-based policy allows the <action> action" or "... with an explicit deny in
    an identity-based policy"."""
    on = "" if resource in ("", "*") else f" on resource: {resource}"
    if decision is Decision.EXPLICIT_DENY:
        why = "with an explicit deny in an identity-based policy"
    else:
        why = f"because no identity-based policy allows the {action} action"
    return f"User: {principal} is not authorized to perform: {action}{on} {why}"


def access_denied_code(service: str) -> str:
    """The code a denial is answered with: AccessDenied for the Query services (ElastiCache,
    CloudWatch), AccessDeniedException for the JSON-only CloudWatch Logs."""
    return "AccessDeniedException" if service == "logs" else "AccessDenied"


# The member naming the resource an ElastiCache operation acts on, by the noun in its name (the
# longest first: UserGroup before User), and that resource's ARN type.
_ELASTICACHE_RESOURCES: tuple[tuple[str, str, str], ...] = (
    ("UserGroup", "UserGroupId", "usergroup"),
    ("User", "UserId", "user"),
    ("ReplicationGroup", "ReplicationGroupId", "replicationgroup"),
    ("ReplicaCount", "ReplicationGroupId", "replicationgroup"),
    ("TestFailover", "ReplicationGroupId", "replicationgroup"),
    ("CacheCluster", "CacheClusterId", "cluster"),
    ("SubnetGroup", "CacheSubnetGroupName", "subnetgroup"),
    ("ParameterGroup", "CacheParameterGroupName", "parametergroup"),
    ("Snapshot", "SnapshotName", "snapshot"),
    ("ServerlessCache", "ServerlessCacheName", "serverlesscache"),
)


def global_datastore_arn(global_id: str) -> str:
    """A global datastore's ARN has no region: it spans regions (IAM's ``globalreplicationgroup``)."""
    return f"arn:aws:elasticache::{account_id()}:globalreplicationgroup:{global_id.lower()}"


def _group_arn(region: str, group_id: Any) -> str:
    return f"arn:aws:elasticache:{region}:{account_id()}:replicationgroup:{str(group_id).lower()}"


def _global_datastore_resources(operation: str, params: Mapping[str, Any], region: str) -> list[str]:
    """The ARNs of a ...GlobalReplicationGroup(s) operation, as IAM's reference lists them: the global
    datastore's (the one CreateGlobalReplicationGroup will make, from the suffix and this region's
    prefix) and, for Create, Disassociate and Failover, the replication group named, in its region."""
    resources: list[str] = []
    if operation == "CreateGlobalReplicationGroup":
        if params.get("GlobalReplicationGroupIdSuffix"):
            suffix = str(params["GlobalReplicationGroupIdSuffix"])
            resources.append(global_datastore_arn(f"{id_prefix(region)}-{suffix}"))
        if params.get("PrimaryReplicationGroupId"):
            resources.append(_group_arn(region, params["PrimaryReplicationGroupId"]))
        return resources or ["*"]
    if params.get("GlobalReplicationGroupId"):
        resources.append(global_datastore_arn(str(params["GlobalReplicationGroupId"])))
    if operation == "DisassociateGlobalReplicationGroup" and params.get("ReplicationGroupId"):
        resources.append(_group_arn(str(params.get("ReplicationGroupRegion") or region), params["ReplicationGroupId"]))
    if operation == "FailoverGlobalReplicationGroup" and params.get("PrimaryReplicationGroupId"):
        resources.append(_group_arn(str(params.get("PrimaryRegion") or region), params["PrimaryReplicationGroupId"]))
    return resources or ["*"]


def request_resources(service: str, operation: str, params: Mapping[str, Any], region: str) -> list[str]:
    """The ARNs a request acts on, as IAM would check them ("*" when it names none: a Describe of everything)."""
    if service == "elasticache":
        if operation.endswith(("TagsToResource", "TagsFromResource", "TagsForResource")) and params.get("ResourceName"):
            return [str(params["ResourceName"])]
        if "GlobalReplicationGroup" in operation:
            return _global_datastore_resources(operation, params, region)
        if operation == "CreateReplicationGroup" and params.get("GlobalReplicationGroupId"):
            # A secondary joins a global datastore: IAM checks the group and the datastore.
            return [_group_arn(region, params.get("ReplicationGroupId", "")),
                    global_datastore_arn(str(params["GlobalReplicationGroupId"]))]
        for noun, member, arn_type in _ELASTICACHE_RESOURCES:
            if noun in operation and params.get(member):
                return [f"arn:aws:elasticache:{region}:{account_id()}:{arn_type}:{str(params[member]).lower()}"]
        return ["*"]
    if service == "monitoring":
        names = params.get("AlarmNames") or ([params["AlarmName"]] if params.get("AlarmName") else [])
        return [f"arn:aws:cloudwatch:{region}:{account_id()}:alarm:{name}" for name in names] or ["*"]
    if service == "logs" and params.get("logGroupName"):
        return [f"arn:aws:logs:{region}:{account_id()}:log-group:{params['logGroupName']}"]
    return ["*"]


def authorize(
    policy: Policy | None,
    *,
    principal: str,
    service: str,
    action: str,
    resources: Sequence[str] = ("*",),
) -> None:
    """Raises AccessDenied unless ``policy`` allows ``action`` on every resource. No policy
    means full access (a credentials-file key without one, or dev mode)."""
    if policy is None:
        return
    decision, resource = policy.decide(action, resources)
    if decision is not Decision.ALLOWED:
        raise ApiError(
            access_denied_code(service),
            access_denied_message(principal=principal, action=action, resource=resource, decision=decision),
        )
