"""The members the member sweep (test_member_sweep.py) does not check, each with its reason; the
operations it does not sweep yet; and the operations and paths refused whole, each with its fault."""

from __future__ import annotations

# (operation, member path) -> why the sweep does not check it
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("CreateReplicationGroup", "PrimaryClusterId"):
        "needs a running standalone cluster to seed the group: tests/api/test_replication_group_lifecycle.py",
    ("CreateReplicationGroup", "SnapshotArns"):
        "needs RDB objects in a bucket: restore acceptance tests (tests/acceptance/test_snapshots*)",
    ("CreateReplicationGroup", "SnapshotName"):
        "needs a snapshot taken of a running group: restore acceptance tests",
    ("CreateReplicationGroup", "ServerlessCacheSnapshotName"):
        "needs a serverless cache snapshot: tests/api/test_serverless_snapshots_api.py",
    ("CreateCacheCluster", "ReplicationGroupId"):
        "joins an available group as a replica: tests/api/test_replication_group_lifecycle.py",
    ("CreateCacheCluster", "SnapshotArns"): "needs RDB objects in a bucket: restore acceptance tests",
    ("CreateCacheCluster", "SnapshotName"): "needs a snapshot taken of a running cluster: restore acceptance tests",
    # The locks of a group change in steps on a TLS-capable engine (Redis OSS here): their members
    # are checked, shown and refused, by the security acceptance tests.
    **{("ModifyReplicationGroup", m): "TLS / AUTH / RBAC transitions: tests/acceptance/security/test_auth_token.py, "
       "test_tls.py, test_rbac.py" for m in ("AuthToken", "AuthTokenUpdateStrategy", "UserGroupIdsToAdd",
                                              "UserGroupIdsToRemove", "RemoveUserGroups", "TransitEncryptionEnabled",
                                              "TransitEncryptionMode")},
    ("CreateServerlessCache", "SnapshotArnsToRestore"):
        "needs a snapshot: tests/acceptance (restore into a serverless cache), tests/api/test_serverless_snapshots_api.py",
    ("ModifyCacheCluster", "AuthTokenUpdateStrategy"):
        "goes with AuthToken, which ModifyCacheCluster refuses (checked by the sweep)",
    ("DescribeEvents", "Duration"):
        "a window in whole minutes: the sweep's events span about a minute, so no page holds one inside and one "
        "outside a window without waiting; tests/api/test_describe_tags_events.py (Duration=0) and "
        "tests/unit/test_domain.py check it",
    ("CreateReplicationGroup", "GlobalReplicationGroupId"):
        "joins a global datastore as its secondary, so needs one: tests/api/test_global_datastores_api.py",
    # Paging is api/paging.py's, one implementation for every Describe: the sweep checks it where it holds
    # more than a page (DescribeCacheClusters, DescribeReplicationGroups, DescribeEvents, DescribeCacheParameters,
    # DescribeEngineDefaultParameters, the serverless listings); tests/api/test_describe_tags_events.py pages
    # 45 subnet groups.
    **{(operation, member): "fewer than a page (20) of these in the sweep: paging is checked on the longer listings"
       for operation in ("DescribeCacheEngineVersions", "DescribeCacheParameterGroups", "DescribeCacheSecurityGroups",
                         "DescribeCacheSubnetGroups", "DescribeSnapshots", "DescribeUserGroups", "DescribeUsers",
                         "DescribeReservedCacheNodes", "DescribeGlobalReplicationGroups", "DescribeServiceUpdates",
                         "DescribeUpdateActions")
       for member in ("MaxRecords", "Marker")},
}

# Operations Cachefleet answers, with optional members, that the sweep does not cover yet (the
# test fails when an operation is answered and neither swept nor listed here).
REMAINING: tuple[str, ...] = ()

# Operations refused whole, whatever member is set: operation -> (the fault, why). The sweep sends each member
# (with the required ones) and checks the fault and that its message names the operation (so no member of
# them can be dropped).
REFUSED_WHOLE: dict[str, tuple[str, str]] = {
    **dict.fromkeys(
        ("IncreaseNodeGroupsInGlobalReplicationGroup", "DecreaseNodeGroupsInGlobalReplicationGroup"),
        ("InvalidParameterValue",
         "cluster mode enabled global datastores are not built (GlobalDatastores.refuse_shards): a member group is "
         "cluster mode disabled, so it has no node groups to add or remove"),
    ),
    "PrepareMigration": (
        "InvalidServerlessCacheStateFault",
        "serverless migration is not offered (api/elasticache/migrations.py): Cachefleet migrates into node-based "
        "replication groups only, so a serverless cache is never prepared for one",
    ),
}

# Members that take a swept operation down a path refused whole: (operation, member) -> (the fault, why). The
# sweep sends the member instead of the base call's ReplicationGroupId and checks that fault, naming the member;
# then with the base call, and checks it is refused (InvalidParameterValue / InvalidParameterCombination) naming
# the member, not dropped.
REFUSED_PATHS: dict[tuple[str, str], tuple[str, str]] = dict.fromkeys(
    (("StartMigration", "ServerlessCacheName"), ("CompleteMigration", "ServerlessCacheName")),
    ("ServerlessCacheNotUnderMigrationFault",
     "serverless migration is not offered: no serverless cache is ever under migration here"),
)
