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
