"""Zones in network namespaces (``cachefleet up --zone``) and the write fencing of groups with
replicas: the start-up option's checks, address allocation by zone, the min-replicas-* settings."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest

from cachefleet.app import StartupError, zone_networks
from cachefleet.domain import parameter_groups as G
from cachefleet.domain.base import Dependencies
from cachefleet.domain.cache_clusters import CacheCluster
from cachefleet.domain.elasticache import ElastiCache
from cachefleet.domain.engines import EngineRelease
from cachefleet.domain.replication_groups import CreateReplicationGroupRequest
from cachefleet.providers import local
from cachefleet.store.sqlite import SqliteStore

REGION = "us-east-1"
NETWORK = ipaddress.IPv4Network("127.80.0.0/24")


class FixedClock:
    def now(self) -> dt.datetime:
        return dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


class Catalog:
    def releases(self) -> list[EngineRelease]:
        return [EngineRelease("valkey", "8.1.8", "valkey8", "Valkey 8.1.8")]


@pytest.fixture
def namespaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for /run/netns with namespaces zone-a and zone-b."""
    for name in ("zone-a", "zone-b"):
        (tmp_path / name).touch()
    monkeypatch.setattr(local, "NETNS_DIR", str(tmp_path))
    return tmp_path


def test_zone_option_is_parsed_and_checked(namespaces: Path) -> None:
    zones = zone_networks(("us-east-1a=zone-a:10.251.1.0/24", "us-east-1b=zone-b:10.251.2.0/24"),
                          region=REGION, network=NETWORK)
    assert zones == [local.Zone("us-east-1a", "zone-a", ipaddress.IPv4Network("10.251.1.0/24")),
                     local.Zone("us-east-1b", "zone-b", ipaddress.IPv4Network("10.251.2.0/24"))]
    refused = {
        "us-east-1a": "use AZ=NAMESPACE:SUBNET",
        "us-east-9a=zone-a:10.251.1.0/24": "not an availability zone of us-east-1",
        "us-east-1a=zone-x:10.251.1.0/24": "ip netns add zone-x",
        "us-east-1a=zone-a:10.251.1.0/31": "at least a /30",
        "us-east-1a=zone-a:nonsense": "not an IPv4 block",
        "us-east-1a=zone-a:127.80.0.0/25": "overlaps the node network",
    }
    for value, says in refused.items():
        with pytest.raises(StartupError, match=says):
            zone_networks((value,), region=REGION, network=NETWORK)
    with pytest.raises(StartupError, match="overlaps --zone"):
        zone_networks(("us-east-1a=zone-a:10.251.1.0/24", "us-east-1b=zone-b:10.251.1.128/25"),
                      region=REGION, network=NETWORK)


def test_a_zones_nodes_get_addresses_of_its_subnet_and_endpoints_stay_in_the_node_network(tmp_path: Path) -> None:
    zone_a = ipaddress.IPv4Network("10.251.1.0/24")
    service = ElastiCache(Dependencies(
        store=SqliteStore(tmp_path / "state.db"), catalog=Catalog(), clock=FixedClock(), node_network=NETWORK,
        zone_networks={"us-east-1a": zone_a},
    ))
    request = CreateReplicationGroupRequest.parse(REGION, {
        "ReplicationGroupId": "zg", "ReplicationGroupDescription": "d", "Engine": "valkey",
        "CacheNodeType": "cache.t4g.micro", "NumCacheClusters": 3, "AutomaticFailoverEnabled": True,
        "PreferredCacheClusterAZs": ["us-east-1a", "us-east-1b", "us-east-1a"],
    })
    group = service.replication_groups.create(REGION, request)
    clusters = {c.cluster_id: c for c in SqliteStore(tmp_path / "state.db").list(CacheCluster)}
    addresses = {cid: (clusters[cid].availability_zone, clusters[cid].node.address) for cid in group.member_cluster_ids}
    assert addresses == {"zg-001": ("us-east-1a", "10.251.1.1"), "zg-002": ("us-east-1b", "127.80.0.1"),
                         "zg-003": ("us-east-1a", "10.251.1.2")}
    node_group = group.node_groups[0]
    assert {node_group.primary_endpoint, node_group.reader_endpoint} == {"127.80.0.2", "127.80.0.3"}


def test_write_fencing_applies_to_shards_with_replicas_unless_the_parameter_group_says() -> None:
    fencing = {"min-replicas-to-write": "1", "min-replicas-max-lag": "5"}
    assert G.write_fencing(frozenset(), replicas=2) == fencing
    assert G.write_fencing(frozenset(), replicas=0) == {}  # a lone primary never waits for a replica
    assert G.write_fencing(frozenset({"maxmemory-policy"}), replicas=1) == fencing
    # The parameter group sets the lag: Cachefleet sets only the count; it sets the count: nothing.
    assert G.write_fencing(frozenset({"min-replicas-max-lag"}), replicas=1) == {"min-replicas-to-write": "1"}
    assert G.write_fencing(frozenset({"min-replicas-to-write"}), replicas=1) == {}


def test_replica_lags_are_read_from_the_primarys_info() -> None:
    from cachefleet.control.nodes import replica_lags

    info = {"role": "master", "connected_slaves": "3",
            "slave0": "ip=10.251.2.1,port=6379,state=online,offset=4242,lag=0",
            "slave1": "ip=10.251.3.1,port=6379,state=wait_bgsave,offset=0,lag=0",  # not synced yet: no vote
            "slave2": "ip=10.251.3.2,port=6379,state=online,offset=4200,lag=4",
            "slave_read_only": "1", "master_repl_offset": "4242"}
    assert replica_lags(info) == [0, 4]
    assert replica_lags({"role": "master", "connected_slaves": "0"}) == []
