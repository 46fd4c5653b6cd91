"""SigV4: dev mode on loopback accepts any well-formed credentials; a credentials file makes it check them."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from cachefleet.domain.global_datastores import id_prefix
from helpers import error_code, raw_call, wait_for, wait_group


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    from helpers import Server, free_port, fresh_network

    root = tmp_path_factory.mktemp("auth")
    credentials = root / "credentials"
    (root / "deny-deletes.json").write_text(
        '{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"},'
        ' {"Effect": "Deny", "Action": "elasticache:Delete*", "Resource": "*"}]}'
    )
    # The old format (a key and its secret) and keys carrying a policy, inline or in a file.
    credentials.write_text(
        "[default]\naws_access_key_id = AKIAGOOD\naws_secret_access_key = good-secret\n"
        "[ops]\naws_access_key_id = AKIAOPS\naws_secret_access_key = ops-secret\n"
        "[reader]\naws_access_key_id = AKIAREADER\naws_secret_access_key = reader-secret\n"
        'policy = {"Version": "2012-10-17",\n'
        '    "Statement": [{"Effect": "Allow", "Action": "elasticache:Describe*", "Resource": "*"}]}\n'
        "[operator]\naws_access_key_id = AKIAOPERATOR\naws_secret_access_key = operator-secret\n"
        "policy_file = deny-deletes.json\n"
        # Global datastores: their ARNs have no region.
        "[globals]\naws_access_key_id = AKIAGLOBALS\naws_secret_access_key = globals-secret\n"
        'policy = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}, {"Effect": "Deny",\n'
        '    "Action": "elasticache:*GlobalReplicationGroup*",\n'
        '    "Resource": "arn:aws:elasticache::000000000000:globalreplicationgroup:*-secret"}]}\n'
        "[gdreader]\naws_access_key_id = AKIAGDREADER\naws_secret_access_key = gdreader-secret\n"
        'policy = {"Statement": [{"Effect": "Allow", "Action": "elasticache:DescribeGlobalReplicationGroups",\n'
        '    "Resource": "arn:aws:elasticache::000000000000:globalreplicationgroup:*-open"},\n'
        '    {"Effect": "Allow", "Action": "elasticache:ModifyGlobalReplicationGroup",\n'
        '    "Resource": "arn:aws:elasticache:us-east-1:000000000000:globalreplicationgroup:*"}]}\n'
    )
    running = Server(data_dir=root / "data", network=fresh_network(), port=free_port(),
                     extra=["--credentials-file", str(credentials)]).start()
    running.credentials = credentials  # type: ignore[attr-defined]
    yield running
    running.down()


def test_dev_mode_accepts_any_credentials(server):
    for key, secret in (("AKIDANY", "whatever"), ("another", "x")):
        versions = server.client(access_key=key, secret_key=secret).describe_cache_engine_versions()
        assert versions["CacheEngineVersions"]


def test_checked_mode_accepts_the_right_secrets(checked):
    for key, secret in (("AKIAGOOD", "good-secret"), ("AKIAOPS", "ops-secret")):
        assert checked.client(access_key=key, secret_key=secret).describe_cache_engine_versions()["CacheEngineVersions"]


def test_checked_mode_refuses_a_wrong_secret(checked):
    with pytest.raises(ClientError) as caught:
        checked.client(access_key="AKIAGOOD", secret_key="wrong").describe_replication_groups()
    assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_checked_mode_refuses_an_unknown_key(checked):
    with pytest.raises(ClientError) as caught:
        checked.client(access_key="AKIAUNKNOWN", secret_key="good-secret").describe_replication_groups()
    assert caught.value.response["Error"]["Code"] == "InvalidClientTokenId"


def test_checked_mode_refuses_an_unsigned_request(checked):
    status, body = raw_call(checked.url, {"Action": "DescribeReplicationGroups", "Version": "2015-02-02"}, access_key=None)
    assert (status, error_code(body)) == (403, "MissingAuthenticationToken")


def test_a_signature_covers_the_body(checked):
    """Changing a parameter after signing breaks the signature."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST", url=checked.url + "/",
        data=b"Action=DescribeReplicationGroups&Version=2015-02-02&MaxRecords=20",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    SigV4Auth(Credentials("AKIAGOOD", "good-secret"), "elasticache", "us-east-1").add_auth(request)
    prepared = request.prepare()
    tampered = b"Action=DescribeReplicationGroups&Version=2015-02-02&MaxRecords=99"
    raw = urllib.request.Request(prepared.url, data=tampered, headers=dict(prepared.headers), method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(raw, timeout=10)
    assert caught.value.code == 403
    assert error_code(caught.value.read().decode()) == "SignatureDoesNotMatch"


def test_presigned_urls(checked):
    good = checked.client(access_key="AKIAGOOD", secret_key="good-secret")
    url = good.generate_presigned_url("describe_cache_engine_versions", Params={"Engine": "valkey"}, ExpiresIn=60, HttpMethod="GET")
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read().decode()
    assert response.status == 200 and "<Engine>valkey</Engine>" in body
    forged = url.replace("Engine=valkey", "Engine=redis")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(forged, timeout=10)
    assert error_code(caught.value.read().decode()) == "SignatureDoesNotMatch"
    wrong = checked.client(access_key="AKIAGOOD", secret_key="bad").generate_presigned_url(
        "describe_cache_engine_versions", ExpiresIn=60, HttpMethod="GET"
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(wrong, timeout=10)
    assert caught.value.code == 403


def test_resources_are_partitioned_by_region(server):
    east = server.client(region="us-east-1")
    west = server.client(region="eu-west-1")
    west.create_cache_subnet_group(
        CacheSubnetGroupName="regional", CacheSubnetGroupDescription="west", SubnetIds=["subnet-eu-west-1a"]
    )
    try:
        with pytest.raises(east.exceptions.CacheSubnetGroupNotFoundFault):
            east.describe_cache_subnet_groups(CacheSubnetGroupName="regional")
        found = west.describe_cache_subnet_groups(CacheSubnetGroupName="regional")["CacheSubnetGroups"][0]
        assert found["ARN"] == "arn:aws:elasticache:eu-west-1:000000000000:subnetgroup:regional"
        # The default subnet group of a region has that region's zones.
        default = west.describe_cache_subnet_groups(CacheSubnetGroupName="default")["CacheSubnetGroups"][0]
        assert {s["SubnetAvailabilityZone"]["Name"] for s in default["Subnets"]} == {"eu-west-1a", "eu-west-1b", "eu-west-1c"}
        # Names are per region: the same name can exist in another region.
        east.create_cache_subnet_group(
            CacheSubnetGroupName="regional", CacheSubnetGroupDescription="east", SubnetIds=["subnet-us-east-1a"]
        )
        assert east.describe_cache_subnet_groups(CacheSubnetGroupName="regional")["CacheSubnetGroups"][0][
            "CacheSubnetGroupDescription"] == "east"
        east.delete_cache_subnet_group(CacheSubnetGroupName="regional")
    finally:
        west.delete_cache_subnet_group(CacheSubnetGroupName="regional")


def test_checked_mode_accepts_keys_that_carry_a_policy(checked):
    for key, secret in (("AKIAREADER", "reader-secret"), ("AKIAOPERATOR", "operator-secret")):
        assert checked.client(access_key=key, secret_key=secret).describe_cache_engine_versions()["CacheEngineVersions"]


def test_a_clock_more_than_15_minutes_off_is_refused(checked):
    import datetime as dt
    from unittest import mock

    def skewed(minutes):
        def now(*_args, **_kwargs):
            return dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=minutes)
        return now

    client = checked.client(access_key="AKIAGOOD", secret_key="good-secret")
    for minutes, wording in ((-20, "Signature expired: "), (20, "Signature not yet current: ")):
        with mock.patch("botocore.auth.get_current_datetime", skewed(minutes)), pytest.raises(ClientError) as caught:
            client.describe_replication_groups()
        error = caught.value.response["Error"]
        assert error["Code"] == "SignatureDoesNotMatch" and error["Message"].startswith(wording)
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with mock.patch("botocore.auth.get_current_datetime", skewed(-10)):
        assert client.describe_replication_groups()["ReplicationGroups"] is not None


def test_an_expired_presigned_url_is_refused(checked):
    import datetime as dt
    from unittest import mock

    def two_minutes_ago(*_args, **_kwargs):
        return dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=2)

    client = checked.client(access_key="AKIAGOOD", secret_key="good-secret")
    with mock.patch("botocore.auth.get_current_datetime", two_minutes_ago):
        old = client.generate_presigned_url("describe_cache_engine_versions", ExpiresIn=60, HttpMethod="GET")
        alive = client.generate_presigned_url("describe_cache_engine_versions", ExpiresIn=600, HttpMethod="GET")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(old, timeout=10)
    body = caught.value.read().decode()
    assert (caught.value.code, error_code(body)) == (400, "RequestExpired")
    assert "<Message>Request has expired.</Message>" in body
    with urllib.request.urlopen(alive, timeout=10) as response:
        assert response.status == 200


@pytest.mark.parametrize(
    ("region", "service", "says"),
    [
        ("moon-base-1x", "elasticache", "Credential should be scoped to a valid region, not 'moon-base-1x'."),
        ("us-east-1", "sts", "Credential should be scoped to correct service: "),
    ],
)
def test_a_scope_naming_a_wrong_region_or_service_is_refused(checked, region, service, says):
    status, body = raw_call(checked.url, {"Action": "DescribeReplicationGroups", "Version": "2015-02-02"},
                            region=region, service=service, access_key="AKIAGOOD", secret_key="good-secret")
    assert (status, error_code(body)) == (403, "SignatureDoesNotMatch")
    assert says in body


def test_a_policy_that_cannot_be_evaluated_stops_the_start(tmp_path):
    from helpers import Server, free_port, fresh_network

    credentials = tmp_path / "bad-credentials"
    credentials.write_text(
        "[reader]\naws_access_key_id = AKIAREADER\naws_secret_access_key = reader-secret\n"
        'policy = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Bool": {}}}]}\n'
    )
    instance = Server(data_dir=tmp_path / "data", network=fresh_network(), port=free_port(),
                      extra=["--credentials-file", str(credentials)])
    with pytest.raises(RuntimeError) as caught:
        instance.start()  # the process exits before it listens: nothing is left to bring down
    assert "profile [reader]: Statement 1: Condition is not supported" in str(caught.value)


def _denied(call, **params):
    with pytest.raises(ClientError) as caught:
        call(**params)
    return caught.value.response


def test_a_describe_only_key_can_describe_and_is_denied_the_rest(checked):
    reader = checked.client(access_key="AKIAREADER", secret_key="reader-secret")
    assert reader.describe_replication_groups()["ReplicationGroups"] is not None
    response = _denied(reader.create_cache_subnet_group, CacheSubnetGroupName="Denied", CacheSubnetGroupDescription="x",
                       SubnetIds=["subnet-us-east-1a"])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert response["Error"]["Code"] == "AccessDenied"
    assert response["Error"]["Message"] == (
        "User: arn:aws:iam::000000000000:user/reader is not authorized to perform: elasticache:CreateCacheSubnetGroup "
        "on resource: arn:aws:elasticache:us-east-1:000000000000:subnetgroup:denied because no identity-based policy "
        "allows the elasticache:CreateCacheSubnetGroup action"
    )
    assert not any(g["CacheSubnetGroupName"] == "denied"
                   for g in reader.describe_cache_subnet_groups()["CacheSubnetGroups"])  # nothing was done
    # CloudWatch's actions are cloudwatch:*, not elasticache:*.
    watch = checked.client("cloudwatch", access_key="AKIAREADER", secret_key="reader-secret")
    response = _denied(watch.describe_alarms)
    assert response["Error"]["Code"] == "AccessDenied" and "cloudwatch:DescribeAlarms" in response["Error"]["Message"]
    logs = checked.client("logs", access_key="AKIAREADER", secret_key="reader-secret")
    assert _denied(logs.describe_log_groups)["Error"]["Code"] == "AccessDeniedException"


def test_an_explicit_deny_beats_an_allow(checked):
    operator = checked.client(access_key="AKIAOPERATOR", secret_key="operator-secret")
    operator.create_cache_subnet_group(CacheSubnetGroupName="kept", CacheSubnetGroupDescription="x",
                                       SubnetIds=["subnet-us-east-1a"])
    response = _denied(operator.delete_cache_subnet_group, CacheSubnetGroupName="kept")
    assert response["Error"]["Code"] == "AccessDenied"
    assert response["Error"]["Message"].endswith("with an explicit deny in an identity-based policy")
    assert operator.describe_cache_subnet_groups(CacheSubnetGroupName="kept")["CacheSubnetGroups"]
    checked.client(access_key="AKIAGOOD", secret_key="good-secret").delete_cache_subnet_group(CacheSubnetGroupName="kept")


def test_credentials_create_makes_a_key_the_running_server_takes(checked, tmp_path):
    import re
    import subprocess

    from helpers import CACHEFLEET, ROOT

    policy = tmp_path / "describe-only.json"
    policy.write_text('{"Statement": [{"Effect": "Allow", "Action": "elasticache:Describe*", "Resource": "*"}]}')
    out = subprocess.run(
        [*CACHEFLEET, "credentials", "create", "--credentials-file", str(checked.credentials), "--user", "newbie",
         "--policy", str(policy)],
        capture_output=True, text=True, cwd=ROOT, check=True,
    ).stdout
    key = re.search(r"aws_access_key_id = (\S+)", out).group(1)
    secret = re.search(r"aws_secret_access_key = (\S+)", out).group(1)
    assert checked.credentials.stat().st_mode & 0o777 == 0o600
    newbie = checked.client(access_key=key, secret_key=secret)
    assert newbie.describe_cache_engine_versions()["CacheEngineVersions"]
    response = _denied(newbie.delete_cache_subnet_group, CacheSubnetGroupName="whatever")
    assert response["Error"]["Code"] == "AccessDenied" and "user/newbie" in response["Error"]["Message"]
    bad = subprocess.run(
        [*CACHEFLEET, "credentials", "create", "--credentials-file", str(checked.credentials), "--user", "newbie"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert bad.returncode == 1 and "already has a profile [newbie]" in bad.stderr


def test_a_policy_on_global_datastore_arns_is_honoured(checked):
    good = checked.client(access_key="AKIAGOOD", secret_key="good-secret")
    keyed = checked.client(access_key="AKIAGLOBALS", secret_key="globals-secret")
    reader = checked.client(access_key="AKIAGDREADER", secret_key="gdreader-secret")
    good.create_replication_group(ReplicationGroupId="gdp-east", ReplicationGroupDescription="gd", Engine="valkey",
                                  CacheNodeType="cache.r6g.large")
    wait_group(good, "gdp-east")
    secret, open_id = f"{id_prefix('us-east-1')}-secret", f"{id_prefix('us-east-1')}-open"
    # Denied on the datastore's region-less ARN: refused before anything is made.
    response = _denied(keyed.create_global_replication_group, GlobalReplicationGroupIdSuffix="secret",
                       PrimaryReplicationGroupId="gdp-east")
    assert response["Error"]["Code"] == "AccessDenied"
    assert response["Error"]["Message"] == (
        "User: arn:aws:iam::000000000000:user/globals is not authorized to perform: "
        "elasticache:CreateGlobalReplicationGroup on resource: "
        f"arn:aws:elasticache::000000000000:globalreplicationgroup:{secret} "
        "with an explicit deny in an identity-based policy"
    )
    assert [g["GlobalReplicationGroupId"] for g in good.describe_global_replication_groups()["GlobalReplicationGroups"]
            ] == []
    assert "GlobalReplicationGroupInfo" not in good.describe_replication_groups(
        ReplicationGroupId="gdp-east")["ReplicationGroups"][0]
    # The same key may make and manage another datastore; made by someone else, "secret" stays out of its reach.
    made = keyed.create_global_replication_group(GlobalReplicationGroupIdSuffix="open",
                                                 PrimaryReplicationGroupId="gdp-east")["GlobalReplicationGroup"]
    assert made["GlobalReplicationGroupId"] == open_id
    keyed.modify_global_replication_group(GlobalReplicationGroupId=open_id, ApplyImmediately=True,
                                          GlobalReplicationGroupDescription="kept open")
    # Allowed on the one ARN only: that datastore can be described, the list of all cannot; a regional
    # ARN pattern names no global datastore.
    described = reader.describe_global_replication_groups(GlobalReplicationGroupId=open_id)
    assert described["GlobalReplicationGroups"][0]["GlobalReplicationGroupDescription"] == "kept open"
    response = _denied(reader.describe_global_replication_groups)
    assert response["Error"]["Code"] == "AccessDenied"
    assert "because no identity-based policy allows" in response["Error"]["Message"]
    response = _denied(reader.modify_global_replication_group, GlobalReplicationGroupId=open_id, ApplyImmediately=True,
                       GlobalReplicationGroupDescription="changed")
    assert f"on resource: arn:aws:elasticache::000000000000:globalreplicationgroup:{open_id} " in (
        response["Error"]["Message"])
    assert good.describe_global_replication_groups(GlobalReplicationGroupId=open_id)["GlobalReplicationGroups"][0][
        "GlobalReplicationGroupDescription"] == "kept open"
    keyed.delete_global_replication_group(GlobalReplicationGroupId=open_id, RetainPrimaryReplicationGroup=True)
    wait_for(lambda: not good.describe_global_replication_groups()["GlobalReplicationGroups"], timeout=30,
             what="the global datastore deleted")
    good.delete_replication_group(ReplicationGroupId="gdp-east")
