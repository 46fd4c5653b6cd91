"""IAM-style policy evaluation for API access keys (pure)."""

from __future__ import annotations

import json
import re

import pytest

from cachefleet.api.errors import ApiError
from cachefleet.api.policy import (
    Decision,
    Policy,
    PolicyError,
    access_denied_message,
    action_matches,
    authorize,
    iam_action,
    principal_arn,
    resource_matches,
)

GROUP = "arn:aws:elasticache:us-east-1:000000000000:replicationgroup:orders"
OTHER = "arn:aws:elasticache:eu-west-1:000000000000:replicationgroup:orders"
USER = principal_arn("ops")


def policy(*statements, **extra):
    return Policy.parse(json.dumps({"Version": "2012-10-17", "Statement": list(statements), **extra}))


def test_wildcards_in_actions_are_case_insensitive():
    assert action_matches("elasticache:Describe*", "elasticache:DescribeReplicationGroups")
    assert action_matches("ELASTICACHE:describe*", "elasticache:DescribeCacheClusters")
    assert action_matches("elasticache:Describe?acheClusters", "elasticache:DescribeCacheClusters")
    assert not action_matches("elasticache:Describe*", "elasticache:CreateReplicationGroup")
    assert not action_matches("elasticache:Describe*", "cloudwatch:DescribeAlarms")
    assert action_matches("cloudwatch:*", "cloudwatch:GetMetricData")
    assert action_matches("*", "logs:FilterLogEvents")


def test_wildcards_in_resources_stay_within_an_arn_segment():
    assert resource_matches("*", GROUP)
    assert resource_matches("arn:aws:elasticache:*:*:replicationgroup:*", GROUP)
    assert resource_matches("arn:aws:elasticache:us-east-1:000000000000:replicationgroup:ord?rs", GROUP)
    assert not resource_matches("arn:aws:elasticache:us-east-1:*:replicationgroup:o*", OTHER)
    # "*" in the region segment does not swallow the account's colon.
    assert not resource_matches("arn:aws:elasticache:*:replicationgroup:*", GROUP)
    assert not resource_matches("arn:aws:elasticache:*:*:cluster:*", GROUP)
    assert not resource_matches("arn:aws:elasticache:*:*:replicationgroup:ORDERS", GROUP)  # case-sensitive
    # The resource segment may hold colons of its own.
    assert resource_matches("arn:aws:logs:*:*:log-group:app:*", "arn:aws:logs:us-east-1:000000000000:log-group:app:*")


def test_describe_only_key():
    describe = policy({"Effect": "Allow", "Action": "elasticache:Describe*", "Resource": "*"})
    assert describe.evaluate("elasticache:DescribeReplicationGroups", GROUP) is Decision.ALLOWED
    assert describe.evaluate("elasticache:CreateReplicationGroup", GROUP) is Decision.IMPLICIT_DENY
    assert describe.evaluate("cloudwatch:GetMetricData") is Decision.IMPLICIT_DENY


def test_an_explicit_deny_beats_an_allow_in_any_order():
    for order in (1, -1):
        statements = [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": ["elasticache:Delete*"], "Resource": "arn:aws:elasticache:*:*:replicationgroup:*"},
        ][::order]
        mixed = policy(*statements)
        assert mixed.evaluate("elasticache:DeleteReplicationGroup", GROUP) is Decision.EXPLICIT_DENY
        assert mixed.evaluate("elasticache:DeleteCacheSubnetGroup",
                              "arn:aws:elasticache:us-east-1:000000000000:subnetgroup:x") is Decision.ALLOWED


def test_not_action_and_not_resource():
    everything_but_deletes = policy({"Effect": "Allow", "NotAction": "elasticache:Delete*", "Resource": "*"})
    assert everything_but_deletes.evaluate("logs:FilterLogEvents") is Decision.ALLOWED
    assert everything_but_deletes.evaluate("elasticache:DeleteUser") is Decision.IMPLICIT_DENY
    outside_eu = policy(
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "*", "NotResource": "arn:aws:elasticache:us-east-1:*:*:*"},
    )
    assert outside_eu.evaluate("elasticache:ModifyReplicationGroup", GROUP) is Decision.ALLOWED
    assert outside_eu.evaluate("elasticache:ModifyReplicationGroup", OTHER) is Decision.EXPLICIT_DENY


def test_one_statement_without_a_list():
    single = Policy.parse({"Statement": {"Effect": "Allow", "Action": "logs:*", "Resource": "*"}})
    assert single.evaluate("logs:GetLogEvents") is Decision.ALLOWED


def test_decide_over_several_resources():
    narrow = policy({"Effect": "Allow", "Action": "elasticache:*", "Resource": GROUP},
                    {"Effect": "Deny", "Action": "*", "Resource": "arn:aws:elasticache:*:*:parametergroup:locked"})
    param = "arn:aws:elasticache:us-east-1:000000000000:parametergroup:locked"
    subnet = "arn:aws:elasticache:us-east-1:000000000000:subnetgroup:default"
    assert narrow.decide("elasticache:CreateReplicationGroup", [GROUP]) == (Decision.ALLOWED, "")
    assert narrow.decide("elasticache:CreateReplicationGroup", [GROUP, subnet]) == (Decision.IMPLICIT_DENY, subnet)
    assert narrow.decide("elasticache:CreateReplicationGroup", [GROUP, subnet, param]) == (Decision.EXPLICIT_DENY, param)


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Bool": {}}}]}, "Condition is not supported"),
        ({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]}, "Principal is not supported"),
        ({"Statement": [{"Effect": "allow", "Action": "*", "Resource": "*"}]}, "Effect must be Allow or Deny"),
        ({"Statement": [{"Effect": "Allow", "Resource": "*"}]}, "exactly one of Action and NotAction"),
        ({"Statement": [{"Effect": "Allow", "Action": "*", "NotAction": "x:y", "Resource": "*"}]}, "exactly one of Action"),
        ({"Statement": [{"Effect": "Allow", "Action": "*"}]}, "exactly one of Resource and NotResource"),
        ({"Statement": [{"Effect": "Allow", "Action": "DescribeCacheClusters", "Resource": "*"}]}, "<service>:<action>"),
        ({"Statement": [{"Effect": "Allow", "Action": [], "Resource": "*"}]}, "non-empty list"),
        ({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "orders"}]}, "not '*' or an ARN"),
        ({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Actions": "*"}]}, "unknown element Actions"),
        ({"Version": "2020-01-01", "Statement": []}, "Version must be"),
        ({"Statement": []}, "non-empty list"),
        ({"Version": "2012-10-17"}, "needs a Statement"),
        ("{not json", "not valid JSON"),
    ],
)
def test_documents_it_cannot_evaluate_exactly_are_refused(document, says):
    with pytest.raises(PolicyError, match=re.escape(says)):
        Policy.parse(document if isinstance(document, str) else json.dumps(document))


def test_iam_wording_of_access_denied():
    assert access_denied_message(principal=USER, action="elasticache:CreateReplicationGroup", resource=GROUP,
                                 decision=Decision.IMPLICIT_DENY) == (
        "User: arn:aws:iam::000000000000:user/ops is not authorized to perform: elasticache:CreateReplicationGroup "
        "on resource: arn:aws:elasticache:us-east-1:000000000000:replicationgroup:orders because no identity-based "
        "policy allows the elasticache:CreateReplicationGroup action"
    )
    assert access_denied_message(principal=USER, action="elasticache:DeleteReplicationGroup", resource=GROUP,
                                 decision=Decision.EXPLICIT_DENY).endswith(
        "elasticache:DeleteReplicationGroup on resource: " + GROUP + " with an explicit deny in an identity-based policy"
    )
    # Actions on no particular resource name none.
    assert " on resource" not in access_denied_message(
        principal=USER, action="cloudwatch:GetMetricData", resource="*", decision=Decision.IMPLICIT_DENY
    )


def test_authorize_raises_access_denied():
    describe = policy({"Effect": "Allow", "Action": "elasticache:Describe*", "Resource": "*"})
    authorize(describe, principal=USER, service="elasticache", action="elasticache:DescribeUsers")
    authorize(None, principal=USER, service="elasticache", action="elasticache:DeleteUser")
    with pytest.raises(ApiError) as caught:
        authorize(describe, principal=USER, service="elasticache", action=iam_action("elasticache", "CreateUser"),
                  resources=["arn:aws:elasticache:us-east-1:000000000000:user:reader"])
    assert caught.value.code == "AccessDenied"
    assert "elasticache:CreateUser on resource: arn:aws:elasticache:us-east-1:000000000000:user:reader" in caught.value.message
    with pytest.raises(ApiError) as caught:
        authorize(describe, principal=USER, service="logs", action=iam_action("logs", "FilterLogEvents"))
    assert caught.value.code == "AccessDeniedException"
    assert iam_action("monitoring", "GetMetricData") == "cloudwatch:GetMetricData"
