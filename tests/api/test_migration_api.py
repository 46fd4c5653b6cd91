"""Online migration through boto3: ElastiCache's faults and words for the requests the rules
refuse (no engine is followed here; tests/acceptance/test_migration.py follows real ones)."""

from __future__ import annotations

from helpers import expect, wait_event, wait_group

SOURCE = [{"Address": "127.0.0.1", "Port": 1}]
SPEC = {"ReplicationGroupDescription": "t", "Engine": "valkey", "CacheNodeType": "cache.t4g.micro"}


def test_migration_faults(ec):
    expect("ReplicationGroupNotFoundFault", ec.start_migration, status=404, ReplicationGroupId="nope",
           CustomerNodeEndpointList=SOURCE)
    expect("InvalidParameterCombination", ec.start_migration, says="Either ReplicationGroupId or ServerlessCacheName",
           CustomerNodeEndpointList=SOURCE)
    expect("ReplicationGroupNotFoundFault", ec.test_migration, ReplicationGroupId="nope", CustomerNodeEndpointList=SOURCE)
    expect("ReplicationGroupNotFoundFault", ec.complete_migration, ReplicationGroupId="nope")
    ec.create_replication_group(ReplicationGroupId="mig-single", NumCacheClusters=1, **SPEC)
    ec.create_replication_group(ReplicationGroupId="mig-ready", NumCacheClusters=2, AutomaticFailoverEnabled=True,
                                MultiAZEnabled=True, **SPEC)
    expect("InvalidReplicationGroupState", ec.start_migration, says="is not in available state",
           ReplicationGroupId="mig-single", CustomerNodeEndpointList=SOURCE)
    wait_group(ec, "mig-single")
    expect("InvalidParameterCombination", ec.start_migration, says="must have Multi-AZ enabled",
           ReplicationGroupId="mig-single", CustomerNodeEndpointList=SOURCE)
    wait_group(ec, "mig-ready")
    expect("InvalidParameterValue", ec.start_migration, says="exactly one endpoint", ReplicationGroupId="mig-ready",
           CustomerNodeEndpointList=SOURCE * 2)
    # Members that could only be dropped are refused, named.
    expect("InvalidParameterValue", ec.start_migration, says="AutoCutover is not supported",
           ReplicationGroupId="mig-ready", CustomerNodeEndpointList=SOURCE, AutoCutover=True)
    expect("InvalidParameterValue", ec.start_migration, says="ClearTargetCacheData=false is not supported",
           ReplicationGroupId="mig-ready", CustomerNodeEndpointList=SOURCE, ClearTargetCacheData=False)
    expect("InvalidParameterValue", ec.test_migration, says="Invalid Port", ReplicationGroupId="mig-ready",
           CustomerNodeEndpointList=[{"Address": "127.0.0.1", "Port": 0}])
    expect("ReplicationGroupNotUnderMigrationFault", ec.complete_migration, says="is not under migration",
           ReplicationGroupId="mig-ready")
    # Serverless: the model's path exists, Cachefleet migrates into node-based groups only.
    expect("ServerlessCacheNotFoundFault", ec.stop_migration, ServerlessCacheName="nope")
    expect("ServerlessCacheNotFoundFault", ec.prepare_migration, ServerlessCacheName="nope",
           CustomerNodeEndpointList=SOURCE)
    expect("ServerlessCacheNotFoundFault", ec.start_migration, ServerlessCacheName="nope",
           CustomerNodeEndpointList=SOURCE)
    # An unreachable source: StartMigration takes it, tries a few times, then the group is available again.
    started = ec.start_migration(ReplicationGroupId="mig-ready", CustomerNodeEndpointList=SOURCE)
    assert started["ReplicationGroup"]["Status"] == "migrating"
    expect("ReplicationGroupAlreadyUnderMigrationFault", ec.start_migration, says="is already under migration",
           ReplicationGroupId="mig-ready", CustomerNodeEndpointList=SOURCE)
    expect("InvalidReplicationGroupState", ec.modify_replication_group, ReplicationGroupId="mig-ready",
           CacheNodeType="cache.t4g.small", ApplyImmediately=True)
    wait_event(ec, "mig-ready", "Start Migration failed for mig-ready: the source 127.0.0.1:1 is not reachable")
    wait_group(ec, "mig-ready")
    for group_id in ("mig-single", "mig-ready"):
        ec.delete_replication_group(ReplicationGroupId=group_id)
