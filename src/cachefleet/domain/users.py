"""RBAC: users and user groups (CreateUser, ModifyUser, DeleteUser, DescribeUsers and the four
user group operations), the records the engines' ACL users are rendered from.

A user is an ElastiCache user: an id, the engine user name it logs in as, an access string in
ACL syntax and up to two passwords, kept as their SHA-256 hashes only (the form the engine
checks them in). A user group is a set of users containing one named ``default`` (it takes
the place of the engine's own default user); a replication group uses at most one user group,
and every node of it then has exactly those users (control/workflows/access.py keeps them in
sync). Every region has ElastiCache's built-in ``default`` user (``on ~* &* +@all``, no
password), which cannot be changed or deleted.

Statuses are ElastiCache's: a user is ``active``, ``modifying`` while a change reaches the nodes
of the groups it is in, ``deleting`` until it is gone from them; a user group is ``creating``,
``active``, ``modifying`` (with PendingChanges) or ``deleting``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from cachefleet.domain import credentials
from cachefleet.domain.base import Dependencies, UseCases
from cachefleet.domain.credentials import DEFAULT_USER_NAME, AuthenticationType
from cachefleet.domain.engines import MEMCACHED_REFUSED, is_memcached
from cachefleet.domain.errors import (
    AlreadyExists,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    QuotaExceeded,
)
from cachefleet.domain.events import EventSourceType
from cachefleet.domain.identifiers import Region
from cachefleet.domain.resource import Kind
from cachefleet.domain.tags import Tag, tags

ENGINES = ("valkey", "redis")
BUILT_IN_DEFAULT_ID = "default"
BUILT_IN_ACCESS_STRING = "on ~* &* +@all"
MAX_USERS = 1000  # ElastiCache's quota of users per region
MAX_USER_GROUPS = 100  # user groups per region
MAX_USERS_PER_GROUP = 100
MINIMUM_ENGINE_VERSION = "6.0"
# DescribeUsers filters: Name -> what it matches.
FILTERS = ("user-id", "user-name", "engine")


class UserStatus(StrEnum):
    ACTIVE = "active"
    MODIFYING = "modifying"
    DELETING = "deleting"


class UserGroupStatus(StrEnum):
    CREATING = "creating"
    ACTIVE = "active"
    MODIFYING = "modifying"
    DELETING = "deleting"


@dataclass(frozen=True)
class User:
    """An ElastiCache user; its passwords only as SHA-256 hashes."""

    KIND: ClassVar[Kind] = Kind(
        name="User", noun="User", not_found="UserNotFoundFault", arn_type="user",
        event_source=EventSourceType.USER.value, already_exists="UserAlreadyExistsFault",
        invalid_state="InvalidUserStateFault", quota_exceeded="UserQuotaExceededFault", taggable=True,
    )

    region: Region
    user_id: str
    user_name: str
    engine: str
    access_string: str
    authentication: str  # "password" or "no-password", as Describe's Authentication.Type says
    password_hashes: tuple[str, ...] = field(default=(), repr=False)
    status: UserStatus = UserStatus.ACTIVE
    tags: tuple[Tag, ...] = ()
    create_time: dt.datetime | None = None

    @property
    def key(self) -> str:
        return self.user_id

    @property
    def nopass(self) -> bool:
        return self.authentication == "no-password"


def built_in_default(region: Region) -> User:
    """ElastiCache's own ``default`` user, present in every region."""
    return User(region, BUILT_IN_DEFAULT_ID, DEFAULT_USER_NAME, "redis", BUILT_IN_ACCESS_STRING, "no-password")


@dataclass(frozen=True)
class UserGroup:
    """A user group: its users, and the change being applied (PendingChanges)."""

    KIND: ClassVar[Kind] = Kind(
        name="UserGroup", noun="User group", not_found="UserGroupNotFoundFault", arn_type="usergroup",
        event_source=EventSourceType.USER_GROUP.value, already_exists="UserGroupAlreadyExistsFault",
        invalid_state="InvalidUserGroupStateFault", quota_exceeded="UserGroupQuotaExceededFault", taggable=True,
    )

    region: Region
    user_group_id: str
    engine: str
    user_ids: tuple[str, ...]
    status: UserGroupStatus = UserGroupStatus.CREATING
    user_ids_to_add: tuple[str, ...] = ()
    user_ids_to_remove: tuple[str, ...] = ()
    tags: tuple[Tag, ...] = ()
    create_time: dt.datetime | None = None

    @property
    def key(self) -> str:
        return self.user_group_id


# ---------------------------------------------------------------------- requests
def engine_name(value: Any, *, parameter: str = "Engine") -> str:
    lowered = str(value).lower()
    if is_memcached(lowered):
        raise InvalidParameterValue(f"Invalid {parameter} '{value}': {MEMCACHED_REFUSED}")
    if lowered not in ENGINES:
        raise InvalidParameterValue(f"Invalid {parameter} '{value}': the options are valkey or redis.")
    return lowered


def _authentication(params: Mapping[str, Any]) -> credentials.Authentication:
    mode = params.get("AuthenticationMode") or {}
    return credentials.authentication(
        mode_type=mode.get("Type"),
        mode_passwords=mode.get("Passwords"),
        passwords_given=params.get("Passwords"),
        no_password_required=params.get("NoPasswordRequired"),
    )


def _hashes(authentication: credentials.Authentication) -> tuple[str, ...]:
    return tuple(credentials.secret_hash(p) for p in authentication.passwords)


def _type_of(authentication: credentials.Authentication) -> str:
    return "no-password" if authentication.type is AuthenticationType.NO_PASSWORD_REQUIRED else "password"


@dataclass(frozen=True)
class CreateUserRequest:
    """CreateUser, checked; the passwords already hashed."""

    user_id: str
    user_name: str
    engine: str
    access_string: str
    authentication: str
    password_hashes: tuple[str, ...] = field(repr=False)
    tags: tuple[Tag, ...] = ()

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> CreateUserRequest:
        user_id = credentials.user_id(params["UserId"])
        user_name = credentials.user_name(params["UserName"])
        engine = engine_name(params["Engine"])
        access_string = credentials.access_string(params["AccessString"])
        authentication = _authentication(params)
        return cls(
            user_id=user_id,
            user_name=user_name,
            engine=engine,
            access_string=access_string,
            authentication=_type_of(authentication),
            password_hashes=_hashes(authentication),
            tags=tags(params.get("Tags")),
        )


@dataclass(frozen=True)
class ModifyUserRequest:
    """ModifyUser, checked: None means "leave as it is"."""

    user_id: str
    access_string: str | None = None
    append_access_string: str | None = None
    authentication: str | None = None
    password_hashes: tuple[str, ...] | None = field(default=None, repr=False)
    engine: str | None = None

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ModifyUserRequest:
        if "AccessString" in params and "AppendAccessString" in params:
            raise InvalidParameterCombination(
                "Give AccessString (replaces the access string) or AppendAccessString (adds to it), not both."
            )
        changing = {"AccessString", "AppendAccessString", "Passwords", "NoPasswordRequired", "AuthenticationMode", "Engine"}
        if not changing & params.keys():
            raise InvalidParameterCombination(
                "ModifyUser needs something to change: AccessString, AppendAccessString, Passwords, "
                "NoPasswordRequired, AuthenticationMode or Engine."
            )
        authentication = None
        if {"Passwords", "NoPasswordRequired", "AuthenticationMode"} & params.keys():
            if params.get("NoPasswordRequired") is False and not params.get("Passwords") and "AuthenticationMode" not in params:
                raise InvalidParameterValue(
                    "No password was provided. If you want to create/update the user without password, "
                    "please use the NoPasswordRequired flag."
                )
            authentication = _authentication(params)
        return cls(
            user_id=credentials.user_id(params["UserId"]),
            access_string=credentials.access_string(params["AccessString"]) if "AccessString" in params else None,
            append_access_string=(
                credentials.access_string(params["AppendAccessString"]) if "AppendAccessString" in params else None
            ),
            authentication=_type_of(authentication) if authentication is not None else None,
            password_hashes=_hashes(authentication) if authentication is not None else None,
            engine=engine_name(params["Engine"]) if "Engine" in params else None,
        )


@dataclass(frozen=True)
class UserFilter:
    name: str
    values: tuple[str, ...]


def user_filters(raw: Sequence[Mapping[str, Any]] | None) -> tuple[UserFilter, ...]:
    found = []
    for item in raw or ():
        name = str(item.get("Name", ""))
        values = tuple(str(v) for v in item.get("Values") or ())
        if name not in FILTERS:
            raise InvalidParameterValue(f"Invalid filter name '{name}': use one of {', '.join(FILTERS)}.")
        if not values:
            raise InvalidParameterValue(f"Filter {name} needs at least one value.")
        found.append(UserFilter(name, values))
    return tuple(found)


@dataclass(frozen=True)
class CreateUserGroupRequest:
    user_group_id: str
    engine: str
    user_ids: tuple[str, ...]
    tags: tuple[Tag, ...] = ()

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> CreateUserGroupRequest:
        ids = tuple(dict.fromkeys(credentials.user_id(u) for u in params.get("UserIds") or ()))
        if len(ids) > MAX_USERS_PER_GROUP:
            raise QuotaExceeded(f"A user group can hold at most {MAX_USERS_PER_GROUP} users; {len(ids)} were given.",
                                resource="UserGroup")
        return cls(
            user_group_id=credentials.user_group_id(params["UserGroupId"]),
            engine=engine_name(params["Engine"]),
            user_ids=ids,
            tags=tags(params.get("Tags")),
        )


@dataclass(frozen=True)
class ModifyUserGroupRequest:
    user_group_id: str
    to_add: tuple[str, ...] = ()
    to_remove: tuple[str, ...] = ()
    engine: str | None = None

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ModifyUserGroupRequest:
        to_add = tuple(dict.fromkeys(credentials.user_id(u) for u in params.get("UserIdsToAdd") or ()))
        to_remove = tuple(dict.fromkeys(credentials.user_id(u) for u in params.get("UserIdsToRemove") or ()))
        both = sorted(set(to_add) & set(to_remove))
        if both:
            raise InvalidParameterCombination(f"User(s) {', '.join(both)} are in both UserIdsToAdd and UserIdsToRemove.")
        if not to_add and not to_remove and "Engine" not in params:
            raise InvalidParameterCombination("ModifyUserGroup needs UserIdsToAdd, UserIdsToRemove or Engine.")
        return cls(
            user_group_id=credentials.user_group_id(params["UserGroupId"]),
            to_add=to_add,
            to_remove=to_remove,
            engine=engine_name(params["Engine"]) if "Engine" in params else None,
        )


# ---------------------------------------------------------------------- rules
# Faults that are not a kind's own: their resource names the ElastiCache fault (api/errors.py).
DUPLICATE_USER_NAME = "UserName"  # AlreadyExists -> DuplicateUserNameFault
DEFAULT_USER = "DefaultUser"  # NotFound -> DefaultUserRequired; InvalidState -> DefaultUserAssociatedToUserGroupFault


def duplicate_user_name(message: str) -> AlreadyExists:
    return AlreadyExists(message, resource=DUPLICATE_USER_NAME)


def check_members(group_id: str, engine: str, members: Sequence[User]) -> None:
    """ElastiCache's rules for the users of a group: a user named default, user names unique,
    and the engine's rules (a valkey user group holds only users who authenticate; a redis user
    group only redis users)."""
    names: dict[str, str] = {}
    for user in members:
        if user.user_name in names:
            raise duplicate_user_name(
                f"User group {group_id} would hold two users named {user.user_name} "
                f"({names[user.user_name]} and {user.user_id}); user names must be unique within a user group."
            )
        names[user.user_name] = user.user_id
    if DEFAULT_USER_NAME not in names:
        raise NotFound(
            f"User group {group_id} must contain a user with the user name default (for example the built-in user "
            "default, or a user of yours named default with AccessString 'off' to lock the default user out).",
            resource=DEFAULT_USER,
        )
    for user in members:
        if engine == "valkey" and user.nopass:
            raise InvalidParameterValue(
                f"A user group with engine valkey can only contain users who authenticate (a password); user "
                f"{user.user_id} needs no password. Give it a password, or use a user group with Engine redis."
            )
        if engine == "redis" and user.engine != "redis":
            raise InvalidParameterValue(
                f"User {user.user_id} has engine {user.engine}; a user group with engine redis holds redis users only."
            )


class UserGroupUsage(Protocol):
    """Which replication groups use a user group (``domain/replication_groups.py``)."""

    def replication_groups_using(self, region: Region, user_group_id: str) -> list[str]: ...

    def check_engine(self, region: Region, user_group_id: str, engine: str) -> None:
        """Refuses a user group engine that a replication group using it cannot take."""
        ...


def _check_not_built_in(user_id: str, action: str) -> None:
    if user_id == BUILT_IN_DEFAULT_ID:
        raise InvalidParameterValue(
            f"The user default is ElastiCache's built-in default user and cannot be {action}; create a user with "
            "another UserId and the UserName default to change what the default user may do."
        )


# ---------------------------------------------------------------------- use cases
class UserDirectory(UseCases):
    """Lookups shared by the users' and the user groups' use cases (the built-in default user included)."""

    def user(self, region: Region, user_id: str) -> User:
        wanted = user_id.lower()
        if wanted == BUILT_IN_DEFAULT_ID:
            return self._store.get(User, region, wanted) or built_in_default(region)
        return self._get(User, region, wanted)

    def users(self, region: Region) -> list[User]:
        stored = {u.user_id: u for u in self._store.list(User, region)}
        stored.setdefault(BUILT_IN_DEFAULT_ID, built_in_default(region))
        return sorted(stored.values(), key=lambda u: u.user_id)

    def group(self, region: Region, user_group_id: str) -> UserGroup:
        return self._get(UserGroup, region, user_group_id)

    def groups_of(self, user: User) -> list[UserGroup]:
        return sorted(
            (g for g in self._store.list(UserGroup, user.region) if user.user_id in g.user_ids),
            key=lambda g: g.user_group_id,
        )

    def members(self, group: UserGroup) -> list[User]:
        return [self.user(group.region, user_id) for user_id in group.user_ids]


class Users(UserDirectory):
    """CreateUser, ModifyUser, DeleteUser, DescribeUsers."""

    def create(self, region: Region, request: CreateUserRequest) -> User:
        if request.user_id == BUILT_IN_DEFAULT_ID or self._store.get(User, region, request.user_id) is not None:
            raise AlreadyExists(f"User {request.user_id} already exists.", resource="User")
        if request.user_name != DEFAULT_USER_NAME:
            for other in self._store.list(User, region):
                if other.user_name == request.user_name:
                    raise duplicate_user_name(
                        f"A user named {request.user_name} already exists ({other.user_id}); only the user name "
                        "default may be shared by several users."
                    )
        if len(self._store.list(User, region)) >= MAX_USERS:
            raise QuotaExceeded(f"A region can have at most {MAX_USERS} users.", resource="User")
        user = User(
            region=region, user_id=request.user_id, user_name=request.user_name, engine=request.engine,
            access_string=request.access_string, authentication=request.authentication,
            password_hashes=request.password_hashes, status=UserStatus.ACTIVE, tags=request.tags,
            create_time=self._clock.now(),
        )
        with self._store.transaction() as tx:
            tx.put(user)
            self._event(tx, user, f"User {user.user_id} created (user name {user.user_name}, {user.authentication})")
        return user

    def modify(self, region: Region, request: ModifyUserRequest) -> User:
        _check_not_built_in(request.user_id, "modified")
        user = self._get(User, region, request.user_id)
        if user.status != UserStatus.ACTIVE:
            raise InvalidState(f"User {user.user_id} is {user.status}; it can be modified once it is active.",
                               resource="User")
        changes: dict[str, Any] = {}
        if request.access_string is not None:
            changes["access_string"] = request.access_string
        if request.append_access_string is not None:
            changes["access_string"] = credentials.access_string(f"{user.access_string} {request.append_access_string}")
        if request.authentication is not None:
            changes["authentication"] = request.authentication
            changes["password_hashes"] = request.password_hashes or ()
        if request.engine is not None:
            changes["engine"] = request.engine
        updated = replace(user, **changes)
        groups = self.groups_of(user)
        for group in groups:
            check_members(group.user_group_id, group.engine,
                          [updated if m.user_id == user.user_id else m for m in self.members(group)])
        what = sorted({"access_string": "AccessString", "authentication": "passwords", "password_hashes": "passwords",
                       "engine": "Engine"}[k] for k, v in changes.items() if getattr(user, k) != v)
        if not what:
            return user
        updated = replace(updated, status=UserStatus.MODIFYING)
        with self._store.transaction() as tx:
            tx.put(updated)
            self._event(tx, updated, f"Modifying user {user.user_id}: {', '.join(what)}")
        self._changed(updated)
        return updated

    def delete(self, region: Region, user_id: str) -> User:
        _check_not_built_in(user_id, "deleted")
        user = self._get(User, region, user_id)
        if user.status == UserStatus.DELETING:
            raise InvalidState(f"User {user.user_id} is already being deleted.", resource="User")
        groups = self.groups_of(user)
        if user.user_name == DEFAULT_USER_NAME and groups:
            raise InvalidState(
                f"User {user.user_id} is the default user of user group(s) {', '.join(g.user_group_id for g in groups)}; "
                "give those groups another user named default first (ModifyUserGroup), or delete them.",
                resource=DEFAULT_USER,
            )
        busy = [g.user_group_id for g in groups if g.status != UserGroupStatus.ACTIVE]
        if busy:
            raise InvalidState(
                f"User {user.user_id} is in user group(s) {', '.join(busy)} that are being changed; try again once "
                "they are active.",
                resource="User",
            )
        deleting = replace(user, status=UserStatus.DELETING)
        with self._store.transaction() as tx:
            tx.put(deleting)
            for group in groups:
                leaving = replace(
                    group, user_ids=tuple(u for u in group.user_ids if u != user.user_id), status=UserGroupStatus.MODIFYING,
                    user_ids_to_add=(), user_ids_to_remove=(user.user_id,),
                )
                tx.put(leaving)
                self._event(tx, leaving, f"Removing user {user.user_id} from user group {group.user_group_id}: "
                                         "the user is being deleted")
            self._event(tx, deleting, f"Deleting user {user.user_id}")
        self._changed(deleting)
        for group in groups:
            self._deps.on_change(UserGroup, region, group.user_group_id)
        return deleting

    def describe(
        self, region: Region, *, user_id: str | None = None, engine: str | None = None,
        filters: Sequence[UserFilter] = (),
    ) -> list[User]:
        if user_id is not None:
            found = [self.user(region, user_id)]
        else:
            found = self.users(region)
        if engine is not None:
            found = [u for u in found if u.engine == engine.lower()]
        for item in filters:
            attribute = {"user-id": "user_id", "user-name": "user_name", "engine": "engine"}[item.name]
            found = [u for u in found if str(getattr(u, attribute)) in item.values]
        return found


class UserGroups(UserDirectory):
    """CreateUserGroup, ModifyUserGroup, DeleteUserGroup, DescribeUserGroups."""

    def __init__(self, deps: Dependencies, *, usage: UserGroupUsage) -> None:
        super().__init__(deps)
        self._usage = usage

    def replication_groups_using(self, group: UserGroup) -> list[str]:
        return self._usage.replication_groups_using(group.region, group.user_group_id)

    def _existing_users(self, region: Region, user_ids: Sequence[str]) -> list[User]:
        found = []
        for user_id in user_ids:
            user = self.user(region, user_id)
            if user.status == UserStatus.DELETING:
                raise InvalidState(f"User {user_id} is being deleted; it cannot join a user group.", resource="User")
            found.append(user)
        return found

    def create(self, region: Region, request: CreateUserGroupRequest) -> UserGroup:
        if self._store.get(UserGroup, region, request.user_group_id) is not None:
            raise AlreadyExists(f"User group {request.user_group_id} already exists.", resource="UserGroup")
        if len(self._store.list(UserGroup, region)) >= MAX_USER_GROUPS:
            raise QuotaExceeded(f"A region can have at most {MAX_USER_GROUPS} user groups.", resource="UserGroup")
        members = self._existing_users(region, request.user_ids)
        check_members(request.user_group_id, request.engine, members)
        group = UserGroup(
            region=region, user_group_id=request.user_group_id, engine=request.engine, user_ids=request.user_ids,
            status=UserGroupStatus.CREATING, tags=request.tags, create_time=self._clock.now(),
        )
        with self._store.transaction() as tx:
            tx.put(group)
            self._event(tx, group, f"Creating user group {group.user_group_id} with user(s) {', '.join(group.user_ids)}")
        self._changed(group)
        return group

    def modify(self, region: Region, request: ModifyUserGroupRequest) -> UserGroup:
        group = self.group(region, request.user_group_id)
        if group.status != UserGroupStatus.ACTIVE:
            raise InvalidState(
                f"User group {group.user_group_id} is {group.status}; it can be modified once it is active.",
                resource="UserGroup",
            )
        missing = [u for u in request.to_remove if u not in group.user_ids]
        if missing:
            raise NotFound(f"User(s) {', '.join(missing)} are not in user group {group.user_group_id}.", resource="User")
        adding = [u.user_id for u in self._existing_users(region, request.to_add) if u.user_id not in group.user_ids]
        user_ids = tuple(u for u in group.user_ids if u not in request.to_remove) + tuple(adding)
        if len(user_ids) > MAX_USERS_PER_GROUP:
            raise QuotaExceeded(f"A user group can hold at most {MAX_USERS_PER_GROUP} users.", resource="UserGroup")
        engine = request.engine or group.engine
        check_members(group.user_group_id, engine, self._existing_users(region, user_ids))
        if engine != group.engine and engine == "valkey":
            self._usage.check_engine(region, group.user_group_id, engine)
        if user_ids == group.user_ids and engine == group.engine:
            return group
        updated = replace(
            group, user_ids=user_ids, engine=engine, status=UserGroupStatus.MODIFYING,
            user_ids_to_add=tuple(adding), user_ids_to_remove=tuple(u for u in request.to_remove if u in group.user_ids),
        )
        with self._store.transaction() as tx:
            tx.put(updated)
            parts = ([f"adding {', '.join(updated.user_ids_to_add)}"] if updated.user_ids_to_add else []) + (
                [f"removing {', '.join(updated.user_ids_to_remove)}"] if updated.user_ids_to_remove else [])
            self._event(tx, updated, f"Modifying user group {group.user_group_id}: {'; '.join(parts) or 'engine ' + engine}")
        self._changed(updated)
        return updated

    def delete(self, region: Region, user_group_id: str) -> UserGroup:
        group = self.group(region, user_group_id)
        users = self.replication_groups_using(group)
        if users:
            raise InvalidState(
                f"User group {group.user_group_id} is used by replication group(s) {', '.join(users)}; remove it from "
                "them first (ModifyReplicationGroup UserGroupIdsToRemove).",
                resource="UserGroup",
            )
        if group.status not in (UserGroupStatus.ACTIVE, UserGroupStatus.CREATING):
            raise InvalidState(f"User group {group.user_group_id} is {group.status}; it can be deleted once it is active.",
                               resource="UserGroup")
        deleting = replace(group, status=UserGroupStatus.DELETING)
        with self._store.transaction() as tx:
            tx.put(deleting)
            self._event(tx, deleting, f"Deleting user group {group.user_group_id}")
        self._changed(deleting)
        return deleting

    def describe(self, region: Region, user_group_id: str | None = None) -> list[UserGroup]:
        if user_group_id is not None:
            return [self.group(region, user_group_id)]
        return sorted(self._store.list(UserGroup, region), key=lambda g: g.user_group_id)
