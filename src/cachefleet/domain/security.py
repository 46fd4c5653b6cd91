"""The locks of a replication group or cache cluster: in-transit encryption (TLS, ``preferred`` or
``required``), the AUTH token and the user group (RBAC).

This module owns the members of CreateReplicationGroup, CreateCacheCluster and
ModifyReplicationGroup that set them, checked with ElastiCache's rules, and what a modification
changes (the new desired ``Security`` and the ``AccessChange`` Describe shows until every node
has it). AUTH tokens are hashed as soon as they are parsed: no record, event or message ever
holds one in plain text.

ElastiCache's rules, as its API reference and user guide state them: an AUTH token needs
in-transit encryption; access control (an AUTH token or user groups) is not supported with
``preferred``; in-transit encryption is enabled on an existing group with ``preferred`` first,
then ``required``; ROTATE keeps the current token and adds the new one (both are accepted),
SET leaves only the new one (after a ROTATE, or a create with a token), DELETE removes it
(ElastiCache's way from AUTH to RBAC; a group without either needs no token again); a group
uses at most one user group, and an AUTH token and a user group exclude each other. TLS needs
an engine build with TLS.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cachefleet.domain import credentials
from cachefleet.domain.credentials import AuthTokenUpdateStrategy, TransitEncryptionMode
from cachefleet.domain.engines import EngineRelease
from cachefleet.domain.errors import InvalidParameterCombination, InvalidParameterValue, InvalidState
from cachefleet.domain.operations import AccessChange
from cachefleet.domain.users import UserGroup, UserGroupStatus

MAX_USER_GROUPS_PER_GROUP = 1


@dataclass(frozen=True)
class Security:
    """A group's (or standalone cluster's) locks, as desired: TLS mode, AUTH token hashes, user groups."""

    transit_encryption_mode: TransitEncryptionMode | None = None  # None: no TLS
    auth_token_hashes: tuple[str, ...] = field(default=(), repr=False)  # SHA-256 hex; two while rotating
    auth_token_last_modified: dt.datetime | None = None
    user_group_ids: tuple[str, ...] = ()

    @property
    def transit_encryption(self) -> bool:
        return self.transit_encryption_mode is not None

    @property
    def auth_token_enabled(self) -> bool:
        return bool(self.auth_token_hashes)


def preferred_tls_port(port: int) -> int:
    """Where TLS is served while TransitEncryptionMode is ``preferred``: the engines here cannot
    serve TLS and plain text on one port (Redis 7.0 refuses ``port`` = ``tls-port``), so plain
    text keeps the group's port and TLS takes the next one."""
    return port + 1 if port < 65535 else port - 1


def tls_engines(releases: Sequence[EngineRelease]) -> str:
    capable = [f"{r.engine} {r.version}" for r in releases if r.tls]
    return ", ".join(capable) if capable else "none is installed (Debian's redis-server has TLS)"


def check_tls_engine(release: EngineRelease, releases: Sequence[EngineRelease], *, member: str) -> None:
    """In-transit encryption needs a build with TLS: say which installed engines can."""
    if not release.tls:
        raise InvalidParameterCombination(
            f"{member}: in-transit encryption needs an engine build with TLS; {release.engine} {release.version} "
            f"here is built without it. Engines with TLS on this host: {tls_engines(releases)}."
        )


def _strategy(value: Any) -> AuthTokenUpdateStrategy:
    try:
        return AuthTokenUpdateStrategy(str(value).upper())
    except ValueError:
        raise InvalidParameterValue(
            f"Invalid AuthTokenUpdateStrategy '{value}': use ROTATE, SET or DELETE."
        ) from None


def _mode(value: Any) -> TransitEncryptionMode:
    try:
        return TransitEncryptionMode(str(value))
    except ValueError:
        raise InvalidParameterValue(f"Invalid TransitEncryptionMode '{value}': use preferred or required.") from None


# ---------------------------------------------------------------------- create
@dataclass(frozen=True)
class SecurityRequest:
    """The locks CreateReplicationGroup or CreateCacheCluster asks for, checked; the token hashed."""

    transit_encryption_mode: TransitEncryptionMode | None = None
    auth_token_hash: str | None = field(default=None, repr=False)
    user_group_ids: tuple[str, ...] = ()
    given: tuple[str, ...] = ()  # the members the request named

    @classmethod
    def parse(cls, params: Mapping[str, Any], *, transit_inherited: bool = False) -> SecurityRequest:
        """``transit_inherited``: the group takes its in-transit encryption from elsewhere (a global
        datastore's secondary takes its primary's); what depends on it is checked by ``inheriting``."""
        enabled = bool(params.get("TransitEncryptionEnabled", False))
        raw_mode = params.get("TransitEncryptionMode")
        if raw_mode is not None and not enabled:
            raise InvalidParameterCombination(
                "TransitEncryptionMode needs TransitEncryptionEnabled=true: add TransitEncryptionEnabled, or omit "
                "TransitEncryptionMode."
            )
        mode = _mode(raw_mode) if raw_mode is not None else (TransitEncryptionMode.REQUIRED if enabled else None)
        token = params.get("AuthToken")
        if token is not None:
            credentials.auth_token(str(token))
        if not transit_inherited:
            credentials.auth_token_needs_transit_encryption(auth_token_given=token is not None, transit_encryption_enabled=enabled)
        user_groups = tuple(dict.fromkeys(credentials.user_group_id(g) for g in params.get("UserGroupIds") or ()))
        if len(user_groups) > MAX_USER_GROUPS_PER_GROUP:
            raise InvalidParameterValue(
                f"A replication group can use only one user group; {len(user_groups)} were given."
            )
        if token is not None and user_groups:
            raise InvalidParameterCombination(
                "AuthToken and UserGroupIds cannot be used together: authenticate with the AUTH token, or with the "
                "users of a user group (RBAC)."
            )
        if not transit_inherited:
            credentials.auth_with_transit_mode(auth_token_given=token is not None, user_group_given=bool(user_groups), mode=mode)
        given = tuple(m for m in ("TransitEncryptionEnabled", "TransitEncryptionMode", "AuthToken", "UserGroupIds")
                      if m in params and params[m] not in (None, False, []))
        return cls(
            transit_encryption_mode=mode,
            auth_token_hash=credentials.secret_hash(str(token)) if token is not None else None,
            user_group_ids=user_groups,
            given=given,
        )

    def inheriting(self, mode: TransitEncryptionMode | None) -> SecurityRequest:
        """This request with the in-transit encryption ``mode`` it takes from elsewhere, and the checks
        that depend on it (an AUTH token needs TLS, required rather than preferred)."""
        token_given = self.auth_token_hash is not None
        credentials.auth_token_needs_transit_encryption(auth_token_given=token_given, transit_encryption_enabled=mode is not None)
        credentials.auth_with_transit_mode(auth_token_given=token_given, user_group_given=bool(self.user_group_ids), mode=mode)
        return replace(self, transit_encryption_mode=mode)

    def security(self, *, now: dt.datetime) -> Security:
        return Security(
            transit_encryption_mode=self.transit_encryption_mode,
            auth_token_hashes=(self.auth_token_hash,) if self.auth_token_hash else (),
            auth_token_last_modified=now if self.auth_token_hash else None,
            user_group_ids=self.user_group_ids,
        )


def check_user_groups(groups: Sequence[UserGroup], *, engine: str) -> None:
    """The user groups a replication group is to use: active, and of an engine it can take."""
    for group in groups:
        if group.status != UserGroupStatus.ACTIVE:
            raise InvalidState(
                f"User group {group.user_group_id} is {group.status}; a replication group can use it once it is active.",
                resource="UserGroup",
            )
        if group.engine == "valkey" and engine != "valkey":
            raise InvalidParameterCombination(
                f"User group {group.user_group_id} has engine valkey; a {engine} replication group can use user "
                "groups with engine redis only."
            )


def check_cluster_mode_transit(*, cluster_mode: bool, mode: TransitEncryptionMode | None, member: str) -> None:
    """Cluster mode enabled groups run TLS end to end (clients, replication, cluster bus) from the
    start; ``preferred`` there would need the cluster bus and slot redirections to speak both."""
    if cluster_mode and mode is TransitEncryptionMode.PREFERRED:
        raise InvalidParameterCombination(
            f"{member}: TransitEncryptionMode preferred is not supported by Cachefleet yet for cluster mode enabled "
            "groups; use required (every client connects with TLS)."
        )


# ---------------------------------------------------------------------- modify
@dataclass(frozen=True)
class AccessModification:
    """The members of ModifyReplicationGroup that change a group's locks, checked (token hashed)."""

    auth_token_hash: str | None = field(default=None, repr=False)
    strategy: AuthTokenUpdateStrategy | None = None
    user_groups_to_add: tuple[str, ...] = ()
    user_groups_to_remove: tuple[str, ...] = ()
    remove_user_groups: bool = False
    transit_encryption: bool | None = None
    transit_encryption_mode: TransitEncryptionMode | None = None

    MEMBERS = ("AuthToken", "AuthTokenUpdateStrategy", "UserGroupIdsToAdd", "UserGroupIdsToRemove", "RemoveUserGroups",
               "TransitEncryptionEnabled", "TransitEncryptionMode")

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> AccessModification | None:
        if not any(m in params for m in cls.MEMBERS):
            return None
        token = params.get("AuthToken")
        strategy = _strategy(params["AuthTokenUpdateStrategy"]) if "AuthTokenUpdateStrategy" in params else None
        if token is not None:
            credentials.auth_token(str(token))
            strategy = strategy or AuthTokenUpdateStrategy.ROTATE
            if strategy is AuthTokenUpdateStrategy.DELETE:
                raise InvalidParameterCombination(
                    "AuthTokenUpdateStrategy DELETE removes the AUTH token: omit AuthToken."
                )
        elif strategy is not None and strategy is not AuthTokenUpdateStrategy.DELETE:
            raise InvalidParameterCombination(
                f"AuthTokenUpdateStrategy {strategy.value} must be specified with AuthToken: give the new token."
            )
        add = tuple(dict.fromkeys(credentials.user_group_id(g) for g in params.get("UserGroupIdsToAdd") or ()))
        remove = tuple(dict.fromkeys(credentials.user_group_id(g) for g in params.get("UserGroupIdsToRemove") or ()))
        both = sorted(set(add) & set(remove))
        if both:
            raise InvalidParameterCombination(f"User group(s) {', '.join(both)} are in both UserGroupIdsToAdd and "
                                              "UserGroupIdsToRemove.")
        raw_mode = params.get("TransitEncryptionMode")
        return cls(
            auth_token_hash=credentials.secret_hash(str(token)) if token is not None else None,
            strategy=strategy,
            user_groups_to_add=add,
            user_groups_to_remove=remove,
            remove_user_groups=bool(params.get("RemoveUserGroups", False)),
            transit_encryption=params.get("TransitEncryptionEnabled"),
            transit_encryption_mode=_mode(raw_mode) if raw_mode is not None else None,
        )


@dataclass(frozen=True)
class PendingAccess:
    """A change of a group's locks asked for with ApplyImmediately false: it waits for the group's
    maintenance window (PendingModifiedValues shows ``change``), and is planned again against the
    group's locks of that moment when the window opens (a user group deleted meanwhile ends it with
    an event). A newer modification of the locks replaces it."""

    modification: AccessModification
    change: AccessChange
    asked: str  # what was asked, for the events: "adding user group app-users"


@dataclass(frozen=True)
class AccessPlan:
    """What a modification does: the new desired locks, the change Describe shows, the event saying so."""

    security: Security
    change: AccessChange
    message: str
    asked: str = ""


def _transit(current: Security, mod: AccessModification, *, cluster_mode: bool) -> TransitEncryptionMode | None:
    now = current.transit_encryption_mode
    wanted_mode, enabled = mod.transit_encryption_mode, mod.transit_encryption
    if enabled is None and wanted_mode is None:
        return now
    if cluster_mode:
        raise InvalidParameterCombination(
            "ModifyReplicationGroup: changing TransitEncryptionEnabled or TransitEncryptionMode of a cluster mode enabled "
            "group is not supported by Cachefleet yet; create the group with TransitEncryptionEnabled instead."
        )
    if enabled is False:
        if wanted_mode is not None:
            raise InvalidParameterCombination("TransitEncryptionMode cannot be given with TransitEncryptionEnabled=false.")
        if now is TransitEncryptionMode.REQUIRED:
            raise InvalidParameterCombination(
                "Disabling in-transit encryption is a two-step process: first set TransitEncryptionMode to preferred "
                "(plain connections are served again), then set TransitEncryptionEnabled to false."
            )
        return None
    if now is None:
        if wanted_mode is None:
            raise InvalidParameterCombination(
                "If you are enabling in-transit encryption for an existing cluster, you must also set "
                "TransitEncryptionMode to preferred."
            )
        if enabled is not True:
            raise InvalidParameterCombination(
                "TransitEncryptionMode needs TransitEncryptionEnabled=true to enable in-transit encryption."
            )
        credentials.transit_mode_change(current=None, wanted=wanted_mode)
        return wanted_mode
    return wanted_mode or now


def plan_modification(
    current: Security,
    mod: AccessModification,
    *,
    group_id: str,
    cluster_mode: bool,
    user_groups: Mapping[str, UserGroup],
    engine: str,
    now: dt.datetime,
) -> AccessPlan | None:
    """The new locks of a group, by ElastiCache's rules (pure; ``user_groups`` are the groups named
    in UserGroupIdsToAdd, looked up). None when nothing changes."""
    mode = _transit(current, mod, cluster_mode=cluster_mode)

    groups = list(current.user_group_ids)
    missing = [g for g in mod.user_groups_to_remove if g not in groups]
    if missing:
        raise InvalidParameterValue(
            f"Replication group {group_id} does not use user group(s) {', '.join(missing)}."
        )
    removed = [g for g in groups if g in mod.user_groups_to_remove or mod.remove_user_groups]
    groups = [g for g in groups if g not in removed]
    added = [g for g in mod.user_groups_to_add if g not in groups]
    check_user_groups([user_groups[g] for g in added], engine=engine)
    groups += added
    if len(groups) > MAX_USER_GROUPS_PER_GROUP:
        raise InvalidParameterCombination(
            f"A replication group can use only one user group; {group_id} uses "
            f"{', '.join(current.user_group_ids)}. Remove it in the same request (UserGroupIdsToRemove) to replace it."
        )

    hashes = current.auth_token_hashes
    status: str | None = None
    token_done = ""
    strategy = mod.strategy
    if strategy is AuthTokenUpdateStrategy.ROTATE:
        assert mod.auth_token_hash is not None
        hashes = tuple(dict.fromkeys((*hashes[-1:], mod.auth_token_hash)))
        status = "ROTATING"
        token_done = ("AUTH token rotated: the previous and the new token are both accepted until the next SET"
                      if current.auth_token_hashes else "AUTH token set: clients must authenticate with it")
    elif strategy is AuthTokenUpdateStrategy.SET:
        if not current.auth_token_hashes:
            raise InvalidParameterCombination(
                f"AuthTokenUpdateStrategy SET is allowed only after ROTATE: replication group {group_id} has no AUTH "
                "token yet; add one with AuthTokenUpdateStrategy ROTATE."
            )
        assert mod.auth_token_hash is not None
        hashes = (mod.auth_token_hash,)
        status = "SETTING"
        token_done = "AUTH token set: only the new token is accepted"
    elif strategy is AuthTokenUpdateStrategy.DELETE:
        if not current.auth_token_hashes:
            raise InvalidParameterCombination(f"Replication group {group_id} has no AUTH token to delete.")
        hashes = ()
        status = "SETTING"
        token_done = "AUTH token deleted" + ("" if groups else ": clients connect without a token")
    elif added and hashes:
        # From AUTH to RBAC: the users of the group replace the token.
        hashes = ()
        token_done = "AUTH token deleted: the users of the user group authenticate instead"

    if hashes and groups:
        raise InvalidParameterCombination(
            f"Replication group {group_id} cannot have an AUTH token and a user group at once: remove the user group "
            "(RemoveUserGroups) to use an AUTH token, or delete the token (AuthTokenUpdateStrategy DELETE) to use "
            "the user group."
        )
    if hashes and mode is None:
        credentials.auth_token_needs_transit_encryption(auth_token_given=True, transit_encryption_enabled=False)
    credentials.auth_with_transit_mode(auth_token_given=bool(hashes), user_group_given=bool(groups), mode=mode)

    updated = Security(
        transit_encryption_mode=mode,
        auth_token_hashes=hashes,
        auth_token_last_modified=now if strategy is not None or hashes != current.auth_token_hashes
        else current.auth_token_last_modified,
        user_group_ids=tuple(groups),
    )
    if updated == current:
        return None
    done = []
    asked = []
    if token_done:
        done.append(token_done)
        asked.append(f"AUTH token {strategy.value if strategy else 'DELETE'}")
    if added:
        done.append(f"user group {', '.join(added)} applied")
        asked.append(f"adding user group {', '.join(added)}")
    if removed:
        done.append(f"user group {', '.join(removed)} removed")
        asked.append(f"removing user group {', '.join(removed)}")
    if mode != current.transit_encryption_mode:
        label = mode.value if mode is not None else "disabled"
        done.append(f"in-transit encryption {label}")
        asked.append(f"in-transit encryption {label}")
    change = AccessChange(
        auth_token_status=status,
        user_groups_to_add=tuple(added),
        user_groups_to_remove=tuple(removed),
        transit_encryption_enabled=(
            (mode is not None) if (mode is None) != (current.transit_encryption_mode is None) else None
        ),
        transit_encryption_mode=mode.value if mode is not None and mode != current.transit_encryption_mode else None,
        done=f"Replication group {group_id}: " + "; ".join(done),
    )
    return AccessPlan(updated, change, f"Modifying replication group {group_id}: {', '.join(asked)}", ", ".join(asked))
