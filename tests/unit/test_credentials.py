"""ElastiCache's rules for AUTH tokens, RBAC users, passwords and access strings (pure)."""

from __future__ import annotations

import pytest

from cachefleet.domain import credentials as c
from cachefleet.domain.errors import InvalidParameterCombination, InvalidParameterValue

GOOD_TOKEN = "Abcdefgh12345678!&#$^<>-"


@pytest.mark.parametrize("token", [GOOD_TOKEN, "a" * 16, "Z9" * 64])
def test_auth_tokens_elasticache_accepts(token):
    assert c.auth_token(token) == token


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("a" * 15, "15 characters long"),
        ("a" * 129, "129 characters long"),
        ("abcdefghijklmnop@", "'@'"),
        ('abcdefghijklmnop"', "'\"'"),
        ("abcdefghijklmnop/", "'/'"),
        ("abcdefghijklmnop%", "'%'"),
        ("abcdefghijklmnop q", "' '"),
        ("abcdefghijklmnopé", "printable ASCII"),
    ],
)
def test_auth_tokens_elasticache_refuses(token, says):
    with pytest.raises(InvalidParameterValue) as caught:
        c.auth_token(token)
    assert caught.value.message.startswith("Invalid AuthToken provided")
    assert says in caught.value.message
    assert token not in caught.value.message  # a secret is never quoted back


def test_auth_token_needs_tls_and_required_mode():
    c.auth_token_needs_transit_encryption(auth_token_given=True, transit_encryption_enabled=True)
    c.auth_token_needs_transit_encryption(auth_token_given=False, transit_encryption_enabled=False)
    with pytest.raises(InvalidParameterValue, match="only supported when encryption-in-transit is enabled"):
        c.auth_token_needs_transit_encryption(auth_token_given=True, transit_encryption_enabled=False)
    with pytest.raises(InvalidParameterCombination, match="preferred is not supported with redis access control"):
        c.auth_with_transit_mode(auth_token_given=True, user_group_given=False, mode=c.TransitEncryptionMode.PREFERRED)
    with pytest.raises(InvalidParameterCombination):
        c.auth_with_transit_mode(auth_token_given=False, user_group_given=True, mode=c.TransitEncryptionMode.PREFERRED)
    c.auth_with_transit_mode(auth_token_given=True, user_group_given=True, mode=c.TransitEncryptionMode.REQUIRED)
    c.auth_with_transit_mode(auth_token_given=False, user_group_given=False, mode=c.TransitEncryptionMode.PREFERRED)


def test_transit_mode_goes_through_preferred():
    c.transit_mode_change(current=None, wanted=c.TransitEncryptionMode.PREFERRED)
    c.transit_mode_change(current=c.TransitEncryptionMode.PREFERRED, wanted=c.TransitEncryptionMode.REQUIRED)
    with pytest.raises(InvalidParameterCombination, match="two-step"):
        c.transit_mode_change(current=None, wanted=c.TransitEncryptionMode.REQUIRED)


def test_user_ids_and_names():
    assert c.user_id("App-Reader1") == "app-reader1"
    for bad in ("", "1abc", "a_b", "abc-", "a--b", "a" * 41):
        with pytest.raises(InvalidParameterValue, match="UserId"):
            c.user_id(bad)
    assert c.user_group_id("Readers") == "readers"
    with pytest.raises(InvalidParameterValue, match="UserGroupId"):
        c.user_group_id("9readers")
    assert c.user_name("AppReader") == "AppReader"
    for bad in ("", "has space", "x" * 41, "tab\t", "cachefleet-control", "Cachefleet-probe-1"):
        with pytest.raises(InvalidParameterValue, match="UserName"):
            c.user_name(bad)


def test_passwords():
    assert c.passwords(["p" * 16, "q" * 128]) == ("p" * 16, "q" * 128)
    with pytest.raises(InvalidParameterValue, match="at most 2 passwords"):
        c.passwords(["p" * 16] * 3)
    with pytest.raises(InvalidParameterValue, match="between 16-128 characters") as caught:
        c.passwords(["short-password"])
    assert "short-password" not in caught.value.message


def test_authentication_modes():
    assert c.authentication(mode_type=None, mode_passwords=None, passwords_given=["p" * 16],
                            no_password_required=None) == c.Authentication(c.AuthenticationType.PASSWORD, ("p" * 16,))
    assert c.authentication(mode_type="password", mode_passwords=["p" * 16, "q" * 16], passwords_given=None,
                            no_password_required=None).password_count == 2
    assert c.authentication(mode_type=None, mode_passwords=None, passwords_given=None,
                            no_password_required=True).type is c.AuthenticationType.NO_PASSWORD_REQUIRED
    assert c.authentication(mode_type="no-password-required", mode_passwords=None, passwords_given=None,
                            no_password_required=None).passwords == ()
    with pytest.raises(InvalidParameterValue, match="No password was provided"):
        c.authentication(mode_type=None, mode_passwords=None, passwords_given=None, no_password_required=False)
    with pytest.raises(InvalidParameterValue, match="No password was provided"):
        c.authentication(mode_type="password", mode_passwords=[], passwords_given=None, no_password_required=None)
    with pytest.raises(InvalidParameterCombination):
        c.authentication(mode_type=None, mode_passwords=None, passwords_given=["p" * 16], no_password_required=True)
    with pytest.raises(InvalidParameterCombination):
        c.authentication(mode_type="password", mode_passwords=["p" * 16], passwords_given=["p" * 16],
                         no_password_required=None)
    with pytest.raises(InvalidParameterCombination):
        c.authentication(mode_type="no-password-required", mode_passwords=["p" * 16], passwords_given=None,
                         no_password_required=None)
    with pytest.raises(InvalidParameterValue, match="IAM authentication is not available"):
        c.authentication(mode_type="iam", mode_passwords=None, passwords_given=None, no_password_required=None)
    with pytest.raises(InvalidParameterValue, match=r"^Input Authentication type: kerberos is not in the allowed list"):
        c.authentication(mode_type="kerberos", mode_passwords=None, passwords_given=None, no_password_required=None)
    # AuthenticationMode.Passwords without its Type: refused, not dropped.
    with pytest.raises(InvalidParameterValue, match=r"^Input Authentication type: null .*needs AuthenticationMode.Type"):
        c.authentication(mode_type=None, mode_passwords=["p" * 16], passwords_given=None, no_password_required=None)


@pytest.mark.parametrize(
    "value",
    [
        "on ~app:* +get",
        "on ~* +@all",
        "off -@all",
        "on ~app::* -@all +@read +@hash -hset -hdel",
        "on allkeys allchannels allcommands",
        "on %R~read:* %W~write:* &news:* +@read +client|setname",
        "on ~a:* +get (~b:* +set)",
        "+get",  # neither on nor off: ElastiCache makes it off
    ],
)
def test_access_strings_in_acl_syntax(value):
    assert c.access_string(value) == " ".join(value.split())


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("on >secretpassword123 ~* +@all", "passwords cannot be set"),
        ("on #" + "a" * 64 + " +@all", "passwords cannot be set"),
        ("on nopass ~* +@all", "passwords cannot be set"),
        ("on resetpass", "passwords cannot be set"),
        ("reset on ~* +@all", "'reset' cannot be used"),
        ("on ~* +@all bogus", "'bogus' is not an ACL rule"),
        ("bogus >secretpassword123", "'bogus' is not an ACL rule"),
        ("on %X~a +get", "%R~, %W~ or %RW~"),
        ("on (~a:* +get", "not closed"),
        ("on ~a:*) +get", "closes no selector"),
        ("on (on ~a +get)", "cannot turn the user on or off"),
        ("   ", "must not be blank"),
    ],
)
def test_access_strings_elasticache_refuses(value, says):
    with pytest.raises(InvalidParameterValue) as caught:
        c.access_string(value)
    assert says in caught.value.message
    assert "secretpassword123" not in caught.value.message


def test_user_groups_need_a_default_user():
    c.user_group_members({"default-off": "default", "reader": "reader"})
    with pytest.raises(InvalidParameterValue, match="user name default"):
        c.user_group_members({"reader": "reader"})
