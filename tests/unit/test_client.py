"""Pure parts of the API client and the CLI: connect arguments, error translation, metric tables."""

from __future__ import annotations

import datetime as dt

import click
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from click.testing import CliRunner

from cachefleet.cli import main as cli_main
from cachefleet.cli.commands import (
    _check_metric_name,
    _duration,
    _period_for,
    _valid_period,
    connect_arguments,
    top_table,
)
from cachefleet.client.fleet import ApiFailure, _cluster_view, _group_view, connect_target, translate


def connect_options(view):
    """What `cachefleet connect` passes to valkey-cli for a resource (through NodeAccess)."""
    return connect_arguments(connect_target(view))


def _group(*, cluster_enabled: bool, shards: int = 1) -> dict:
    return {
        "ReplicationGroupId": "g",
        "Status": "available",
        "ClusterEnabled": cluster_enabled,
        "ConfigurationEndpoint": {"Address": "127.80.0.9", "Port": 6380} if cluster_enabled else None,
        "MemberClusters": [f"g-{s:04d}-{n:03d}" for s in range(1, shards + 1) for n in (1, 2)],
        "NodeGroups": [
            {
                "NodeGroupId": f"{s:04d}",
                "Status": "available",
                "PrimaryEndpoint": None if cluster_enabled else {"Address": "127.80.0.4", "Port": 6380},
                "NodeGroupMembers": [
                    {"CacheClusterId": f"g-{s:04d}-{n:03d}", "CacheNodeId": "0001",
                     "ReadEndpoint": {"Address": f"127.80.{s}.{n}", "Port": 6380},
                     "CurrentRole": "primary" if n == 1 else "replica"}
                    for n in (2, 1)
                ],
            }
            for s in range(1, shards + 1)
        ],
    }


def test_connect_uses_the_primary_endpoint_when_cluster_mode_is_disabled():
    view = _group_view(_group(cluster_enabled=False), [])
    assert connect_options(view) == ["-h", "127.80.0.4", "-p", "6380"]
    assert [n["role"] for n in view["nodes"]] == ["primary", "replica"]  # primary listed first


def test_connect_uses_the_configuration_endpoint_with_c_when_cluster_mode_is_enabled():
    view = _group_view(_group(cluster_enabled=True, shards=3), [])
    assert connect_options(view) == ["-h", "127.80.0.9", "-p", "6380", "-c"]
    assert [s["id"] for s in view["shards"]] == ["0001", "0002", "0003"]


def test_connect_adds_tls_and_askpass_when_the_group_has_them():
    raw = _group(cluster_enabled=False) | {"TransitEncryptionEnabled": True, "AuthTokenEnabled": True}
    assert connect_options(_group_view(raw, []))[-2:] == ["--tls", "--askpass"]
    required = raw | {"TransitEncryptionMode": "required"}
    assert connect_arguments(connect_target(_group_view(required, [])), ca_file="/tmp/ca.pem") == [
        "-h", "127.80.0.4", "-p", "6380", "--tls", "--cacert", "/tmp/ca.pem", "--askpass"]


def test_connect_to_a_preferred_group_uses_its_tls_port_and_rbac_a_user():
    raw = _group(cluster_enabled=False) | {"TransitEncryptionEnabled": True, "TransitEncryptionMode": "preferred"}
    assert connect_arguments(connect_target(_group_view(raw, [])), ca_file="/tmp/ca.pem") == [
        "-h", "127.80.0.4", "-p", "6381", "--tls", "--cacert", "/tmp/ca.pem"]
    rbac = _group(cluster_enabled=True, shards=1) | {"UserGroupIds": ["app-users"]}
    view = _group_view(rbac, [])
    assert view["user_group_ids"] == ["app-users"] and connect_target(view).user_groups
    assert connect_arguments(connect_target(view), user="reader") == [
        "-h", "127.80.0.9", "-p", "6380", "--user", "reader", "-c", "--askpass"]


def test_connect_to_a_standalone_cluster_and_to_a_group_without_endpoints():
    cluster = {"CacheClusterId": "solo", "CacheClusterStatus": "available",
               "CacheNodes": [{"CacheNodeId": "0001", "Endpoint": {"Address": "127.80.0.7", "Port": 6379}}]}
    assert connect_options(_cluster_view(cluster)) == ["-h", "127.80.0.7", "-p", "6379"]
    creating = _group(cluster_enabled=False) | {"Status": "creating"}
    creating["NodeGroups"][0]["PrimaryEndpoint"] = None
    with pytest.raises(ApiFailure, match="no endpoint yet"):
        connect_options(_group_view(creating, []))


def test_errors_carry_the_servers_code_and_message():
    plain = ClientError({"Error": {"Code": "ReplicationGroupNotFoundFault", "Message": "Replication group x not found."},
                         "ResponseMetadata": {"HTTPStatusCode": 404}}, "DescribeReplicationGroups")
    failure = translate(plain, "http://h")
    assert (failure.code, failure.message, failure.status) == ("ReplicationGroupNotFoundFault", "Replication group x not found.", 404)
    # An XML error body answering a request of another protocol (e.g. CBOR) is dug out, not shown raw.
    xml = ("<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>Requests signed for "
           "service &apos;monitoring&apos; are not served here</Message></Error></ErrorResponse>")
    odd = ClientError({"Error": {"Code": "400", "Message": xml}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "GetMetricData")
    failure = translate(odd, "http://h")
    assert failure.code == "InvalidAction" and failure.message == "Requests signed for service 'monitoring' are not served here"
    unreachable = translate(EndpointConnectionError(endpoint_url="http://h"), "http://h")
    assert "Cannot reach Cachefleet at http://h" in unreachable.message


def test_durations_and_periods():
    assert _duration("90s") == dt.timedelta(seconds=90)
    assert _duration("15") == dt.timedelta(minutes=15)
    assert _duration("3h") == dt.timedelta(hours=3)
    assert _period_for(dt.timedelta(minutes=1)) == 1
    assert _period_for(dt.timedelta(minutes=15)) == 30
    assert _period_for(dt.timedelta(hours=3)) == 180
    assert [_valid_period(s) for s in (1, 2, 5, 9, 29, 45, 60, 119, 300)] == [1, 1, 5, 5, 10, 30, 60, 60, 300]
    for since in (dt.timedelta(minutes=m) for m in (1, 7, 60, 600, 60 * 24 * 14)):
        assert since.total_seconds() / _period_for(since) <= 60


def test_top_turns_sums_into_rates_per_node():
    view = _group_view(_group(cluster_enabled=False), [])
    primary, replica = (n["cache_cluster_id"] for n in view["nodes"])
    data = {
        ("NonKeyTypeCmds", "Sum", primary): [("t0", 10.0), ("t1", 100.0)],
        ("GetTypeCmds", "Sum", primary): [("t1", 300.0)],
        ("SetTypeCmds", "Sum", primary): [("t1", 200.0)],
        ("BytesUsedForCache", "Average", primary): [("t1", 3 * 1024 * 1024)],
        ("ReplicationLag", "Average", replica): [("t1", 0.25)],
    }
    table = top_table(view, data, period=5)
    cells = {column.header: list(column.cells) for column in table.columns}
    assert cells["Ops/s"] == ["120", "-"]  # (300 gets + 200 sets + 100 others) / 5 s, the latest period
    assert cells["Gets/s"] == ["60", "-"]
    assert cells["Memory"] == ["3.0 MiB", "-"]
    assert cells["Lag"] == ["-", "0.2 s"]


@pytest.mark.parametrize(
    ("args", "environment", "expected"),
    [
        (["ls"], {}, "http://127.0.0.1:8379"),  # neither: the default `cachefleet up` listens on
        (["ls"], {"CACHEFLEET_ENDPOINT": "http://10.0.0.5:9000"}, "http://10.0.0.5:9000"),
        (["--endpoint-url", "http://option:1", "ls"], {"CACHEFLEET_ENDPOINT": "http://env:2"}, "http://option:1"),
    ],
)
def test_the_cli_finds_the_server_by_option_then_environment_then_default(monkeypatch, args, environment, expected):
    made: list[str] = []

    class Recorder:
        def __init__(self, endpoint_url: str, region: str | None) -> None:
            made.append(endpoint_url)
            self.region = region or "us-east-1"

        def overview(self) -> list:
            return []

    monkeypatch.setattr(cli_main, "Fleet", Recorder)
    result = CliRunner().invoke(cli_main.main, args, env={"CACHEFLEET_ENDPOINT": None, **environment})
    assert result.exit_code == 0, result.output
    assert made == [expected]
    assert "No replication groups" in result.output


def test_a_misspelt_metric_name_is_refused_with_a_suggestion():
    known = ["CPUUtilization", "CurrConnections", "CurrItems", "GetTypeCmds", "NewConnections"]
    _check_metric_name("CurrConnections", known, "g")  # known: fine
    _check_metric_name("Anything", [], "g")  # nothing sampled yet: nothing to compare with
    with pytest.raises(click.BadParameter, match=r"g has no metric 'CurrConection' .*Did you mean 'CurrConnections'"):
        _check_metric_name("CurrConection", known, "g")
    with pytest.raises(click.BadParameter, match="Did you mean 'CPUUtilization'"):
        _check_metric_name("cpuutilization", known, "g")
    with pytest.raises(click.BadParameter, match="publish 5 metrics, for example CPUUtilization"):
        _check_metric_name("Zzz", known, "g")
