"""SigV4 checking against requests signed by botocore itself."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl, urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cachefleet.api.errors import ApiError
from cachefleet.api.sigv4 import Authenticator, load_credentials

SECRETS = {"AKIDGOOD": "good-secret"}
BODY = b"Action=DescribeReplicationGroups&Version=2015-02-02&ReplicationGroupId=my%20group"


def signed(secret="good-secret", key="AKIDGOOD", region="eu-west-2", body=BODY):
    request = AWSRequest(method="POST", url="http://127.0.0.1:8379/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    SigV4Auth(Credentials(key, secret), "elasticache", region).add_auth(request)
    prepared = request.prepare()
    headers = {k.lower(): v for k, v in prepared.headers.items()}
    headers["host"] = "127.0.0.1:8379"
    return headers


def check(auth, headers, body=BODY, query=(), method="POST", now=None):
    return auth.authenticate(method=method, path="/", query=list(query), headers=headers, body=body, now=now)


def test_good_signature_gives_region_and_service():
    caller = check(Authenticator(SECRETS), signed())
    assert (caller.access_key, caller.region, caller.service) == ("AKIDGOOD", "eu-west-2", "elasticache")


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        (signed(secret="bad"), BODY, "SignatureDoesNotMatch"),
        (signed(key="AKIDOTHER"), BODY, "InvalidClientTokenId"),
        (signed(), BODY.replace(b"my%20group", b"my%20grouq"), "SignatureDoesNotMatch"),
        ({}, BODY, "MissingAuthenticationToken"),
        ({"authorization": "AWS4-HMAC-SHA256 Credential=x"}, BODY, "IncompleteSignature"),
    ],
)
def test_bad_signatures_are_refused(headers, body, code):
    with pytest.raises(ApiError) as caught:
        check(Authenticator(SECRETS), headers, body=body)
    assert caught.value.code == code


def test_old_signatures_are_refused():
    with pytest.raises(ApiError, match="Signature expired"):
        check(Authenticator(SECRETS), signed(), now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20))


def test_dev_mode_accepts_any_secret_but_still_needs_a_signature():
    dev = Authenticator(None)
    assert check(dev, signed(secret="anything", key="ANY")).region == "eu-west-2"
    with pytest.raises(ApiError) as caught:
        check(dev, {})
    assert caught.value.code == "MissingAuthenticationToken"


def test_presigned_query():
    request = AWSRequest(method="GET", url="http://127.0.0.1:8379/?Action=DescribeCacheClusters&Version=2015-02-02")
    SigV4QueryAuth(Credentials("AKIDGOOD", "good-secret"), "elasticache", "us-west-1", expires=60).add_auth(request)
    url = request.prepare().url
    query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    caller = check(Authenticator(SECRETS), {"host": "127.0.0.1:8379"}, body=b"", query=query, method="GET")
    assert caller.region == "us-west-1"
    with pytest.raises(ApiError) as caught:
        check(Authenticator(SECRETS), {"host": "127.0.0.1:8379"}, body=b"", query=query, method="GET",
              now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
    assert caught.value.code == "RequestExpired"
    tampered = [(k, "DescribeReplicationGroups" if k == "Action" else v) for k, v in query]
    with pytest.raises(ApiError) as caught:
        check(Authenticator(SECRETS), {"host": "127.0.0.1:8379"}, body=b"", query=tampered, method="GET")
    assert caught.value.code == "SignatureDoesNotMatch"


def test_credentials_file(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("[a]\naws_access_key_id = K1\naws_secret_access_key = S1\n[b]\naws_access_key_id=K2\naws_secret_access_key=S2\n")
    assert load_credentials(path) == {"K1": "S1", "K2": "S2"}
    path.write_text("[a]\nregion = x\n")
    with pytest.raises(ValueError):
        load_credentials(path)


def _signed_at(headers):
    return dt.datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)


def _refusal(auth, headers, **kwargs):
    with pytest.raises(ApiError) as caught:
        check(auth, headers, **kwargs)
    return caught.value.code, caught.value.message


def test_a_wrong_secret_gets_aws_wording():
    code, message = _refusal(Authenticator(SECRETS), signed(secret="bad"))
    assert code == "SignatureDoesNotMatch"
    assert message == ("The request signature we calculated does not match the signature you provided. Check your "
                       "AWS Secret Access Key and signing method. Consult the service documentation for details.")
    code, message = _refusal(Authenticator(SECRETS), signed(key="AKIDOTHER"))
    assert (code, message) == ("InvalidClientTokenId", "The security token included in the request is invalid.")


def test_clock_skew_beyond_15_minutes_either_way():
    headers = signed()
    at = _signed_at(headers)
    # Within the window, on both sides: accepted.
    for minutes in (-14, 14):
        assert check(Authenticator(SECRETS), headers, now=at + dt.timedelta(minutes=minutes)).access_key == "AKIDGOOD"
    code, message = _refusal(Authenticator(SECRETS), headers, now=at + dt.timedelta(minutes=16))
    later, earliest = at + dt.timedelta(minutes=16), at + dt.timedelta(minutes=1)
    assert code == "SignatureDoesNotMatch"
    assert message == (f"Signature expired: {headers['x-amz-date']} is now earlier than {earliest:%Y%m%dT%H%M%SZ} "
                       f"({later:%Y%m%dT%H%M%SZ} - 15 min.)")
    code, message = _refusal(Authenticator(SECRETS), headers, now=at - dt.timedelta(minutes=16))
    earlier, latest = at - dt.timedelta(minutes=16), at - dt.timedelta(minutes=1)
    assert code == "SignatureDoesNotMatch"
    assert message == (f"Signature not yet current: {headers['x-amz-date']} is still later than "
                       f"{latest:%Y%m%dT%H%M%SZ} ({earlier:%Y%m%dT%H%M%SZ} + 15 min.)")


def _presigned(expires=60, region="us-west-1", service="elasticache"):
    request = AWSRequest(method="GET", url="http://127.0.0.1:8379/?Action=DescribeCacheClusters&Version=2015-02-02")
    SigV4QueryAuth(Credentials("AKIDGOOD", "good-secret"), service, region, expires=expires).add_auth(request)
    return parse_qsl(urlsplit(request.prepare().url).query, keep_blank_values=True)


def test_an_expired_presigned_url():
    query = _presigned(expires=60)
    at = dt.datetime.strptime(dict(query)["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    host = {"host": "127.0.0.1:8379"}
    assert check(Authenticator(SECRETS), host, body=b"", query=query, method="GET", now=at + dt.timedelta(seconds=59))
    assert _refusal(Authenticator(SECRETS), host, body=b"", query=query, method="GET",
                    now=at + dt.timedelta(seconds=61)) == ("RequestExpired", "Request has expired.")
    # A presigned URL may live longer than the 15 minutes of clock skew, up to seven days.
    week = _presigned(expires=604800)
    assert check(Authenticator(SECRETS), host, body=b"", query=week, method="GET", now=at + dt.timedelta(days=6))
    too_long = [(k, "604801" if k == "X-Amz-Expires" else v) for k, v in week]
    assert _refusal(Authenticator(SECRETS), host, body=b"", query=too_long, method="GET")[0] == "IncompleteSignature"


@pytest.mark.parametrize("auth", [Authenticator(SECRETS), Authenticator(None)], ids=["checked", "dev"])
def test_the_scope_must_name_a_region_and_a_service_served_here(auth):
    code, message = _refusal(auth, signed(region="moon-base-1x"))
    assert (code, message) == ("SignatureDoesNotMatch", "Credential should be scoped to a valid region, not 'moon-base-1x'. ")
    request = AWSRequest(method="POST", url="http://127.0.0.1:8379/", data=BODY,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    SigV4Auth(Credentials("AKIDGOOD", "good-secret"), "sts", "us-east-1").add_auth(request)
    headers = {k.lower(): v for k, v in request.prepare().headers.items()} | {"host": "127.0.0.1:8379"}
    code, message = _refusal(auth, headers)
    assert code == "SignatureDoesNotMatch" and message.startswith("Credential should be scoped to correct service: ")
    assert "not 'sts'" in message
    # The request names its service (an X-Amz-Target): the scope must agree.
    with pytest.raises(ApiError) as caught:
        auth.authenticate(method="POST", path="/", query=[], headers=signed(), body=BODY, expected_service="logs")
    assert caught.value.message == "Credential should be scoped to correct service: 'logs'. "


def test_the_scope_date_must_be_the_day_of_x_amz_date():
    headers = signed()
    day = headers["x-amz-date"][:8]
    other = "19990101"
    headers["authorization"] = headers["authorization"].replace(f"/{day}/", f"/{other}/")
    code, message = _refusal(Authenticator(None), headers)
    assert code == "SignatureDoesNotMatch"
    assert message == ("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                       f"'{other}' != '{day}', from '{headers['x-amz-date']}'.")


POLICY = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "elasticache:Describe*", "Resource": "*"}]}'


def test_credentials_file_keys_may_carry_a_policy(tmp_path):
    from cachefleet.api.policy import Decision
    from cachefleet.api.sigv4 import load_access_keys

    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "deny-deletes.json").write_text(
        '{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"},'
        ' {"Effect": "Deny", "Action": "elasticache:Delete*", "Resource": "*"}]}'
    )
    path = tmp_path / "credentials"
    path.write_text(
        "[admin]\naws_access_key_id = AKIDADMIN\naws_secret_access_key = admin-secret\n\n"
        "[reader]\naws_access_key_id = AKIDREADER\naws_secret_access_key = reader-secret\n"
        "policy = {\"Version\": \"2012-10-17\",\n"
        "    \"Statement\": [{\"Effect\": \"Allow\", \"Action\": \"elasticache:Describe*\", \"Resource\": \"*\"}]}\n\n"
        "[operator]\naws_access_key_id = AKIDOPS\naws_secret_access_key = ops-secret\npolicy_file = policies/deny-deletes.json\n"
    )
    keys = load_access_keys(path)
    assert keys["AKIDADMIN"].policy is None and keys["AKIDADMIN"].user == "admin"
    assert keys["AKIDREADER"].policy.evaluate("elasticache:DescribeUsers") is Decision.ALLOWED
    assert keys["AKIDREADER"].policy.evaluate("elasticache:CreateUser") is Decision.IMPLICIT_DENY
    assert keys["AKIDOPS"].policy.evaluate("elasticache:DeleteUser") is Decision.EXPLICIT_DENY
    assert "reader-secret" not in repr(keys["AKIDREADER"])
    # The old loader still gives key -> secret.
    assert load_credentials(path) == {"AKIDADMIN": "admin-secret", "AKIDREADER": "reader-secret", "AKIDOPS": "ops-secret"}
    # The caller of a signed request carries its profile and policy.
    caller = check(Authenticator(keys), signed(key="AKIDREADER", secret="reader-secret"))
    assert caller.user == "reader" and caller.policy is keys["AKIDREADER"].policy
    assert check(Authenticator(keys), signed(key="AKIDADMIN", secret="admin-secret")).policy is None


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ("policy = {not json\n", "profile [p]: The policy is not valid JSON"),
        ('policy = {"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {}}}\n',
         "profile [p]: Statement 1: Condition is not supported"),
        ("policy_file = missing.json\n", "profile [p]: policy_file missing.json"),
        (f"policy = {POLICY}\npolicy_file = x.json\n", "both policy and policy_file"),
    ],
)
def test_a_policy_that_cannot_be_evaluated_stops_the_start(tmp_path, extra, says):
    from cachefleet.api.sigv4 import load_access_keys

    path = tmp_path / "credentials"
    path.write_text(f"[p]\naws_access_key_id = K\naws_secret_access_key = S\n{extra}")
    with pytest.raises(ValueError) as caught:
        load_access_keys(path)
    assert says in str(caught.value)
