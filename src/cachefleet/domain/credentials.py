"""ElastiCache's rules for the secrets and identities that lock a cache: AUTH tokens, RBAC users
(ids, names, passwords, authentication modes, access strings), user groups, and how AUTH goes
with in-transit encryption.

Pure: every check either returns the normalized value or raises the domain's
InvalidParameterValue / InvalidParameterCombination with a message that starts, where
ElastiCache has one, with ElastiCache's own wording. No secret is ever quoted in a message.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cachefleet.domain.errors import AUTHENTICATION_TYPE, InvalidParameterCombination, InvalidParameterValue

AUTH_TOKEN_MIN = 16
AUTH_TOKEN_MAX = 128
# ElastiCache's CreateReplicationGroup reference: "The only permitted printable special
# characters are !, &, #, $, ^, <, >, and -". (ModifyReplicationGroup's reference instead
# names '/', '"', '@' and '%' as forbidden; the service refuses other specials too, with
# "Invalid AuthToken provided.", so the stricter list is the one that holds.)
AUTH_TOKEN_SPECIALS = frozenset("!&#$^<>-")
PASSWORD_MIN = 16
PASSWORD_MAX = 128
MAX_PASSWORDS = 2
USER_ID_MAX = 40
USER_NAME_MAX = 40
USER_GROUP_ID_MAX = 40
DEFAULT_USER_NAME = "default"
# Cachefleet's own ACL user on every node, and the prefix of the scratch users its user sync
# renders access strings with: no ElastiCache user may take these names.
CONTROL_PLANE_USER = "cachefleet-control"
# The user a Valkey 9+ source logs in to a target as, to hand slots over (atomic slot migration:
# the target applies the slots' keys and writes as this user).
SLOT_IMPORT_USER = "cachefleet-slots"
RESERVED_USER_PREFIX = "cachefleet-"

_USER_ID = re.compile(r"^[a-z][a-z0-9-]*$")
# Rules whose argument is a secret: ElastiCache sets passwords through the API only.
_PASSWORD_RULES = re.compile(r"^[<>#!]")
_PASSWORD_WORDS = frozenset({"nopass", "resetpass"})
_FLAG_WORDS = frozenset(
    {"on", "off", "allkeys", "resetkeys", "allchannels", "resetchannels", "allcommands", "nocommands", "clearselectors"}
)


class AuthenticationType(enum.Enum):
    """AuthenticationMode.Type of CreateUser / ModifyUser (botocore's InputAuthenticationType)."""

    PASSWORD = "password"
    NO_PASSWORD_REQUIRED = "no-password-required"
    IAM = "iam"


class TransitEncryptionMode(enum.Enum):
    PREFERRED = "preferred"
    REQUIRED = "required"


class AuthTokenUpdateStrategy(enum.Enum):
    ROTATE = "ROTATE"
    SET = "SET"
    DELETE = "DELETE"


def secret_hash(secret: str) -> str:
    """The SHA-256 hex of a password or AUTH token: the only form in which Cachefleet keeps one
    (the engine stores and checks the same hash: ``#<hex>`` in ACL rules)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _printable_ascii(value: str) -> bool:
    return all(" " <= ch <= "~" for ch in value)


def auth_token(value: str) -> str:
    """An AUTH token as ElastiCache accepts it (CreateReplicationGroup / ModifyReplicationGroup)."""
    problem = ""
    if not AUTH_TOKEN_MIN <= len(value) <= AUTH_TOKEN_MAX:
        problem = f"it is {len(value)} characters long; it must be {AUTH_TOKEN_MIN} to {AUTH_TOKEN_MAX}"
    elif not _printable_ascii(value):
        problem = "it must be printable ASCII only"
    else:
        others = sorted({ch for ch in value if not ch.isalnum() and ch not in AUTH_TOKEN_SPECIALS})
        if others:
            problem = (
                f"it contains {' '.join(repr(ch) for ch in others)}; the only special characters allowed are "
                f"{' '.join(sorted(AUTH_TOKEN_SPECIALS))}"
            )
    if problem:
        raise InvalidParameterValue(f"Invalid AuthToken provided: {problem}.")
    return value


def auth_token_needs_transit_encryption(*, auth_token_given: bool, transit_encryption_enabled: bool) -> None:
    """ElastiCache: "AuthToken can be specified only on replication groups where
    TransitEncryptionEnabled is true"."""
    if auth_token_given and not transit_encryption_enabled:
        raise InvalidParameterValue(
            "The AUTH token is only supported when encryption-in-transit is enabled: "
            "add TransitEncryptionEnabled=true (TLS needs an engine build with TLS)."
        )


def auth_with_transit_mode(*, auth_token_given: bool, user_group_given: bool, mode: TransitEncryptionMode | None) -> None:
    """Access control (an AUTH token or user groups) needs TLS to be required, not preferred:
    with plain connections still served, the secrets would travel in the clear."""
    if mode is TransitEncryptionMode.PREFERRED and (auth_token_given or user_group_given):
        raise InvalidParameterCombination(
            "Transit encryption preferred is not supported with redis access control. "
            "Set TransitEncryptionMode=required, or add the AUTH token or user groups once it is."
        )


def transit_mode_change(*, current: TransitEncryptionMode | None, wanted: TransitEncryptionMode) -> None:
    """ElastiCache's migration path: plain -> preferred -> required, one step per modification."""
    if current is None and wanted is TransitEncryptionMode.REQUIRED:
        raise InvalidParameterCombination(
            "Setting TransitEncryptionMode to required is a two-step process: first enable in-transit "
            "encryption with TransitEncryptionMode=preferred, then, once every client uses TLS, set required."
        )


def user_id(value: str) -> str:
    """A user id: stored lower case, like the other ElastiCache identifiers."""
    lowered = value.lower()
    if not lowered or len(lowered) > USER_ID_MAX or not _USER_ID.match(lowered) or lowered.endswith("-") or "--" in lowered:
        raise InvalidParameterValue(
            f"Invalid user id '{value}': the UserId must be 1 to {USER_ID_MAX} characters, begin with a letter, "
            "contain only ASCII letters, digits and hyphens, and not end with a hyphen or contain two consecutive hyphens."
        )
    return lowered


def user_group_id(value: str) -> str:
    lowered = value.lower()
    if not lowered or len(lowered) > USER_GROUP_ID_MAX or not _USER_ID.match(lowered) or lowered.endswith("-") or "--" in lowered:
        raise InvalidParameterValue(
            f"Invalid user group id '{value}': the UserGroupId must be 1 to {USER_GROUP_ID_MAX} characters, begin with "
            "a letter, contain only ASCII letters, digits and hyphens, and not end with a hyphen or contain two "
            "consecutive hyphens."
        )
    return lowered


def user_name(value: str) -> str:
    """A user name is the engine's ACL user name: one word of printable ASCII (case is kept)."""
    if not value or len(value) > USER_NAME_MAX or not _printable_ascii(value) or " " in value:
        raise InvalidParameterValue(
            f"Invalid user name '{value}': the UserName must be 1 to {USER_NAME_MAX} printable ASCII characters "
            "without spaces."
        )
    if value.lower().startswith(RESERVED_USER_PREFIX):
        raise InvalidParameterValue(
            f"Invalid user name '{value}': a UserName must not start with {RESERVED_USER_PREFIX}, which is reserved "
            "for Cachefleet's own connections to the nodes."
        )
    return value


def passwords(values: Sequence[str]) -> tuple[str, ...]:
    """Up to two passwords, each 16 to 128 printable ASCII characters (never quoted back)."""
    if len(values) > MAX_PASSWORDS:
        raise InvalidParameterValue(f"A user can have at most {MAX_PASSWORDS} passwords; {len(values)} were given.")
    for position, value in enumerate(values, 1):
        if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
            raise InvalidParameterValue(
                f"Passwords length must be between {PASSWORD_MIN}-{PASSWORD_MAX} characters. "
                f"Password {position} has {len(value)}."
            )
        if not _printable_ascii(value):
            raise InvalidParameterValue(f"Password {position} must be printable ASCII only.")
    return tuple(values)


@dataclass(frozen=True)
class Authentication:
    """How a user authenticates, settled from AuthenticationMode, Passwords and NoPasswordRequired."""

    type: AuthenticationType
    passwords: tuple[str, ...] = ()

    @property
    def password_count(self) -> int:
        return len(self.passwords)


def authentication(
    *,
    mode_type: str | None,
    mode_passwords: Sequence[str] | None,
    passwords_given: Sequence[str] | None,
    no_password_required: bool | None,
) -> Authentication:
    """One Authentication from CreateUser's overlapping parameters, with ElastiCache's refusals."""
    if mode_type is None and mode_passwords:
        # AuthenticationMode given without its Type: its Passwords would otherwise be dropped.
        raise InvalidParameterValue(
            f"{AUTHENTICATION_TYPE.text(type='null')}. AuthenticationMode.Passwords needs AuthenticationMode.Type "
            "password."
        )
    if mode_type is not None:
        try:
            kind = AuthenticationType(mode_type)
        except ValueError:
            raise InvalidParameterValue(
                f"{AUTHENTICATION_TYPE.text(type=mode_type)}. Use AuthenticationMode Type "
                f"{' or '.join(t.value for t in AuthenticationType)}."
            ) from None
        if passwords_given or no_password_required:
            raise InvalidParameterCombination(
                "AuthenticationMode cannot be given together with Passwords or NoPasswordRequired; put the "
                "passwords in AuthenticationMode.Passwords."
            )
        if kind is AuthenticationType.IAM:
            raise InvalidParameterValue(
                "IAM authentication is not available in Cachefleet (there is no IAM to issue tokens): use "
                "AuthenticationMode Type password or no-password-required."
            )
        if kind is AuthenticationType.PASSWORD:
            if not mode_passwords:
                raise InvalidParameterValue(
                    "No password was provided. If you want to create/update the user without password, "
                    "please use the NoPasswordRequired flag."
                )
            return Authentication(kind, passwords(mode_passwords))
        if mode_passwords:
            raise InvalidParameterCombination(
                "AuthenticationMode Type no-password-required takes no Passwords."
            )
        return Authentication(kind)
    if no_password_required:
        if passwords_given:
            raise InvalidParameterCombination("Passwords cannot be given when NoPasswordRequired is true.")
        return Authentication(AuthenticationType.NO_PASSWORD_REQUIRED)
    if not passwords_given:
        raise InvalidParameterValue(
            "No password was provided. If you want to create/update the user without password, "
            "please use the NoPasswordRequired flag."
        )
    return Authentication(AuthenticationType.PASSWORD, passwords(passwords_given))


def _bracketed_tokens(value: str) -> list[str]:
    """Splits on spaces, keeping a selector ``( ... )`` as one token."""
    tokens: list[str] = []
    depth = 0
    current = ""
    for ch in value:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise InvalidParameterValue("Invalid access string: a ')' closes no selector.")
        if ch.isspace() and depth == 0:
            if current:
                tokens.append(current)
            current = ""
        else:
            current += ch
    if depth:
        raise InvalidParameterValue("Invalid access string: a selector '(' is not closed.")
    if current:
        tokens.append(current)
    return tokens


def _check_rule(rule: str) -> None:
    # Messages quote the offending rule only: an access string may carry a password by mistake.
    lowered = rule.lower()
    if _PASSWORD_RULES.match(rule) or lowered in _PASSWORD_WORDS:
        raise InvalidParameterValue(
            f"Invalid access string: passwords cannot be set in an access string ('{rule[:1]}...'); "
            "set them with Passwords on CreateUser or ModifyUser."
        )
    if lowered == "reset":
        raise InvalidParameterValue(
            "Invalid access string: 'reset' cannot be used in an access string (ElastiCache manages "
            "passwords)."
        )
    if lowered in _FLAG_WORDS:
        return
    if rule.startswith(("~", "&", "%")) and len(rule) > 1:
        if rule.startswith("%") and not re.match(r"^%(R|W|RW)~.", rule, re.IGNORECASE):
            raise InvalidParameterValue(f"Invalid access string: '{rule}' is not %R~, %W~ or %RW~ <pattern>.")
        return
    if rule.startswith(("+", "-")) and len(rule) > 1:
        body = rule[1:]
        if body.startswith("@"):
            if re.fullmatch(r"@[a-z_-]+", body, re.IGNORECASE):
                return
        elif re.fullmatch(r"[a-z][a-z0-9_.:-]*(\|[^\s|]+)?", body, re.IGNORECASE):
            return
    if rule.startswith("(") and rule.endswith(")"):
        for inner in _bracketed_tokens(rule[1:-1]):
            if inner.lower() in ("on", "off"):
                raise InvalidParameterValue("Invalid access string: a selector cannot turn the user on or off.")
            _check_rule(inner)
        return
    raise InvalidParameterValue(
        f"Invalid access string: '{rule}' is not an ACL rule (on, off, ~pattern, %R~pattern, &channel, "
        "+command, -command, +@category, allkeys, allcommands, ...)."
    )


def access_string(value: str) -> str:
    """An access string in ACL syntax, as ElastiCache allows it: no passwords, no ``reset``.

    Neither ``on`` nor ``off`` means ``off`` (ElastiCache assigns off), which rendering does by
    starting every ACL SETUSER from ``reset``.
    """
    if not value.strip():
        raise InvalidParameterValue("The AccessString must not be blank: give ACL rules such as 'on ~app:* +get'.")
    for rule in _bracketed_tokens(value.strip()):
        _check_rule(rule)
    return " ".join(_bracketed_tokens(value.strip()))


def user_group_members(names_by_id: dict[str, str]) -> None:
    """A user group must hold a user whose UserName is ``default`` (the engine's default user)."""
    if DEFAULT_USER_NAME not in names_by_id.values():
        raise InvalidParameterValue(
            "A user group must contain a user with the user name default; add one (for example with "
            "AccessString 'off' to lock the default user out)."
        )
