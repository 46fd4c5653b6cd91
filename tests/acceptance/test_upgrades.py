"""Engine upgrades with real engines: Redis OSS 7.0 -> Valkey 8.1 -> Valkey 9.1 under a writer through
the PrimaryEndpoint, cluster mode shard by shard, nodes without replicas restarted on their saved
data, a control-plane SIGKILL in the middle, and the replication facts the order is built on."""

from __future__ import annotations

import signal
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from cachefleet.engine.catalog import Catalog
from helpers import (
    engine,
    engine_pids,
    events_of,
    wait_cluster,
    wait_event,
    wait_for,
    wait_group,
    wait_group_gone,
)

BINARIES = {f"{b.release.engine} {b.release.major_minor}": b for b in Catalog.discover().binaries()}
ALL_THREE = {"redis 7.0", "valkey 8.1", "valkey 9.1"} <= set(BINARIES)
pytestmark = pytest.mark.skipif(not ALL_THREE, reason="needs Redis OSS 7.0, Valkey 8.1 and Valkey 9.1 installed")


class DescribeWatcher:
    """Describes one cache cluster back to back in a thread and keeps every distinct
    (status, EngineVersion, PendingModifiedValues) it saw, in order."""

    def __init__(self, ec, cluster_id: str) -> None:
        self.ec, self.cluster_id = ec, cluster_id
        self.states: list[tuple[str, str, dict]] = []
        self.looks = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            found = self.ec.describe_cache_clusters(CacheClusterId=self.cluster_id)["CacheClusters"][0]
            state = (found["CacheClusterStatus"], found["EngineVersion"], found.get("PendingModifiedValues", {}))
            self.looks += 1
            if not self.states or self.states[-1] != state:
                self.states.append(state)

    def stop(self) -> int:
        self._done.set()
        self._thread.join(timeout=10)
        return self.looks


class StreakWriter:
    """Writes k:N through one address, each write confirmed with WAIT 1, and records every error
    streak: the time from a write's first error to the next successful write (seconds)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.confirmed: list[int] = []
        self.streaks: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _client(self) -> redis.Redis:
        # No retries inside redis-py: every error the application would see is counted.
        return redis.Redis(host=self.address, socket_timeout=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))

    def __enter__(self) -> StreakWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        client = self._client()
        n = 0
        failing_since: float | None = None
        while not self._stop.is_set():
            try:
                client.set(f"k:{n}", n)
                if failing_since is not None:
                    self.streaks.append(time.monotonic() - failing_since)
                    failing_since = None
                if client.wait(1, 500) >= 1:
                    self.confirmed.append(n)
                n += 1
            except redis.RedisError:
                self.errors += 1
                if failing_since is None:
                    failing_since = time.monotonic()
                client = self._client()
                time.sleep(0.002)

    def wait_for_more(self, count: int = 100) -> None:
        before = len(self.confirmed)
        wait_for(lambda: len(self.confirmed) >= before + count, timeout=30, what=f"{count} more confirmed writes")


def build_of(address: str) -> str:
    info = engine(address).info("server")
    return f"valkey {info['valkey_version']}" if "valkey_version" in info else f"redis {info['redis_version']}"


def members_of(ec, group_id):
    group = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    return {m["CacheClusterId"]: m for ng in group["NodeGroups"] for m in ng["NodeGroupMembers"]}


def dated_events(ec, *sources):
    """(date, source, message) of the sources' recent events, oldest first."""
    found = []
    for source in sources:
        for event in ec.describe_events(SourceIdentifier=source, Duration=60)["Events"]:
            found.append((event["Date"], source, event["Message"]))
    return sorted(found)


def test_redis_70_to_valkey_81_to_91_under_a_writer_loses_no_confirmed_write(server, ec):
    ec.create_replication_group(
        ReplicationGroupId="upg", ReplicationGroupDescription="upgrade", Engine="redis", EngineVersion="7.0",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=3, AutomaticFailoverEnabled=True,
    )
    group = wait_group(ec, "upg")
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    streaks_per_upgrade = []
    with StreakWriter(endpoint) as writer:
        writer.wait_for_more(200)
        for engine_name, version, family in (("valkey", "8.1", "valkey8"), ("valkey", "9.1", "valkey9")):
            before = len(writer.streaks)
            started = ec.modify_replication_group(
                ReplicationGroupId="upg", Engine=engine_name, EngineVersion=version, ApplyImmediately=True
            )["ReplicationGroup"]
            assert started["Status"] == "modifying"
            wait_group(ec, "upg", timeout=120)
            writer.wait_for_more(200)
            streaks_per_upgrade.append(writer.streaks[before:])
            clusters = ec.describe_cache_clusters(ShowCacheNodeInfo=True)["CacheClusters"]
            ours = [c for c in clusters if c.get("ReplicationGroupId") == "upg"]
            assert len(ours) == 3
            for cluster in ours:
                assert (cluster["Engine"], cluster["EngineVersion"].rsplit(".", 1)[0]) == (engine_name, version), cluster
                assert cluster["CacheParameterGroup"]["CacheParameterGroupName"] == f"default.{family}"
                assert cluster["PendingModifiedValues"] == {}
                # The process really is the new build (not only the record).
                assert build_of(cluster["CacheNodes"][0]["Endpoint"]["Address"]).startswith(f"{engine_name} {version}.")
    primary = engine(endpoint)
    missing = [n for n in writer.confirmed if primary.get(f"k:{n}") is None]
    assert missing == [], f"{len(missing)} WAIT-confirmed writes lost, e.g. {missing[:5]}"
    longest = max((s for streak in streaks_per_upgrade for s in streak), default=0.0)
    print(f"\nlongest write-error streak through the PrimaryEndpoint: {longest * 1000:.0f} ms; "
          f"streaks per upgrade: {[[round(s * 1000) for s in u] for u in streaks_per_upgrade]}; errors {writer.errors}")
    # Writers see at most one short failover per upgrade: the replicas' replacement is invisible to them.
    assert all(len(streaks) <= 1 for streaks in streaks_per_upgrade), streaks_per_upgrade
    assert longest < 2.0

    # The order: every replica replaced before the failover, the old primary after it.
    timeline = dated_events(ec, "upg", "upg-001", "upg-002", "upg-003")
    upgrade_start = max(i for i, (_, src, m) in enumerate(timeline) if src == "upg" and m.startswith("Upgrading"))
    last = timeline[upgrade_start:]
    failover = next(i for i, (_, src, m) in enumerate(last) if m.startswith("Failover from primary node"))
    old_primary = last[failover][2].split()[4]
    replaced = [(i, src) for i, (_, src, m) in enumerate(last) if m.startswith("Replacing cache node")]
    assert sorted(src for _, src in replaced) == ["upg-001", "upg-002", "upg-003"], last
    assert all(i < failover for i, src in replaced if src != old_primary), last
    assert [i for i, src in replaced if src == old_primary][0] > failover, last
    assert any(m.startswith("Engine upgrade of upg to Valkey 9.1") for _, _, m in last)

    # Downgrades and a way back to Redis OSS are refused with ElastiCache's words; nothing changes.
    with pytest.raises(ec.exceptions.ClientError) as refused:
        ec.modify_replication_group(ReplicationGroupId="upg", EngineVersion="8.1", ApplyImmediately=True)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert "you cannot downgrade to an earlier engine version" in refused.value.response["Error"]["Message"]
    with pytest.raises(ec.exceptions.ClientError) as refused:
        ec.modify_replication_group(ReplicationGroupId="upg", Engine="redis", EngineVersion="7.0", ApplyImmediately=True)
    assert "never Valkey to Redis OSS" in refused.value.response["Error"]["Message"]
    assert wait_group(ec, "upg")["Status"] == "available"
    ec.delete_replication_group(ReplicationGroupId="upg")
    wait_group_gone(ec, "upg")


def test_cluster_mode_upgrades_shard_by_shard_under_a_cluster_client(server, ec):
    ec.create_replication_group(
        ReplicationGroupId="upgcm", ReplicationGroupDescription="upgrade", Engine="valkey", EngineVersion="8.1",
        CacheNodeType="cache.t4g.micro", NumNodeGroups=2, ReplicasPerNodeGroup=1,
    )
    group = wait_group(ec, "upgcm", timeout=60)
    endpoint = group["ConfigurationEndpoint"]
    client = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], socket_timeout=2)
    written: list[int] = []
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            try:
                client.set(f"c:{n}", n)
                written.append(n)
                n += 1
            except (redis.RedisError, AttributeError):
                time.sleep(0.01)  # a moved slot's map is refreshed on the next MOVED

    thread = threading.Thread(target=write)
    thread.start()
    try:
        wait_for(lambda: len(written) > 200, what="writes before the upgrade")
        ec.modify_replication_group(ReplicationGroupId="upgcm", EngineVersion="9.1", ApplyImmediately=True)
        wait_for(lambda: ec.describe_replication_groups(ReplicationGroupId="upgcm")["ReplicationGroups"][0]["Status"]
                 == "modifying", timeout=5, what="modifying")
        wait_group(ec, "upgcm", timeout=180)
        count = len(written)
        wait_for(lambda: len(written) > count + 100, what="writes after the upgrade")
    finally:
        stop.set()
        thread.join()
    check = RedisCluster(host=endpoint["Address"], port=endpoint["Port"], socket_timeout=2)
    missing = [n for n in written if check.get(f"c:{n}") is None]
    assert missing == []
    for member in members_of(ec, "upgcm").values():
        assert build_of(member["ReadEndpoint"]["Address"]).startswith("valkey 9.1.")
    # Shard by shard: node group 0002's nodes are replaced only after 0001's failover completed.
    timeline = dated_events(ec, "upgcm", *sorted(members_of(ec, "upgcm")))
    events = [m for _, _, m in timeline if m.startswith(("Replacing cache node", "Failover from"))]
    first_failover = next(i for i, m in enumerate(events) if m.startswith("Failover from primary node upgcm-0001"))
    assert all("upgcm-0002" not in m for m in events[:first_failover]), events
    assert [m for m in events if m.startswith("Failover")][1].startswith("Failover from primary node upgcm-0002"), events
    ec.delete_replication_group(ReplicationGroupId="upgcm")
    wait_group_gone(ec, "upgcm")


def test_nodes_without_replicas_restart_on_their_saved_data(server, ec):
    """A standalone cluster, a one-node group and a cluster of one-node shards: each node saves its
    data and the new build starts on it (in cluster mode with its nodes.conf: same id, same slots)."""
    ec.create_cache_cluster(CacheClusterId="upg-solo", Engine="valkey", EngineVersion="8.1", CacheNodeType="cache.t4g.micro")
    ec.create_replication_group(ReplicationGroupId="upg-one", ReplicationGroupDescription="one node", Engine="redis",
                                CacheNodeType="cache.t4g.micro", NumCacheClusters=1)
    ec.create_replication_group(ReplicationGroupId="upg-shards", ReplicationGroupDescription="no replicas",
                                Engine="redis", CacheNodeType="cache.t4g.micro", NumNodeGroups=2, ReplicasPerNodeGroup=0)
    solo = wait_cluster(ec, "upg-solo")["CacheNodes"][0]["Endpoint"]["Address"]
    one = wait_group(ec, "upg-one")["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    configuration = wait_group(ec, "upg-shards", timeout=60)["ConfigurationEndpoint"]["Address"]
    sharded = RedisCluster(host=configuration, port=6379, socket_timeout=2)
    for i in range(500):
        sharded.set(f"sh:{i}", i)
    engine(solo).mset({f"s:{i}": i for i in range(1000)})
    engine(solo).set("ttl", "kept", ex=1000)
    engine(one).mset({f"o:{i}": i for i in range(1000)})
    # A standalone Redis OSS cluster moves to Valkey through a replication group, as on ElastiCache.
    with pytest.raises(ec.exceptions.ClientError) as refused:
        ec.modify_cache_cluster(CacheClusterId="upg-one-001", Engine="valkey", EngineVersion="8.1")
    assert refused.value.response["Error"]["Code"] == "InvalidParameterCombination"

    seen = DescribeWatcher(ec, "upg-solo")
    ec.modify_cache_cluster(CacheClusterId="upg-solo", EngineVersion="9.1", ApplyImmediately=True)
    ec.modify_replication_group(ReplicationGroupId="upg-one", Engine="valkey", EngineVersion="8.1", ApplyImmediately=True)
    # Cluster mode, one node per shard: Redis OSS 7.0 straight to Valkey 9.1, each keeping its id and slots.
    ids = {m: engine(members_of(ec, "upg-shards")[m]["ReadEndpoint"]["Address"]).execute_command("CLUSTER", "MYID")
           for m in members_of(ec, "upg-shards")}
    ec.modify_replication_group(ReplicationGroupId="upg-shards", Engine="valkey", EngineVersion="9.1",
                                ApplyImmediately=True)
    wait_for(lambda: build_of(solo).startswith("valkey 9.1.") and engine(solo).dbsize() == 1001, timeout=60,
             what="the standalone node on 9.1 with its data")
    done = wait_cluster(ec, "upg-solo", timeout=60)
    assert done["EngineVersion"].startswith("9.1.") and done["PendingModifiedValues"] == {}
    # Never `available` while the upgrade is still pending (it was, for one step, before the fix).
    assert seen.stop() and not [s for s in seen.states if s[0] == "available" and s[2]], seen.states
    assert engine(solo).get("ttl") == "kept" and 900 < engine(solo).ttl("ttl") <= 1000
    wait_group(ec, "upg-one", timeout=60)
    assert build_of(one).startswith("valkey 8.1.") and engine(one).dbsize() == 1000
    wait_event(ec, "upg-solo", "restarted on its saved data")
    wait_group(ec, "upg-shards", timeout=120)
    for cluster_id, member in members_of(ec, "upg-shards").items():
        node = engine(member["ReadEndpoint"]["Address"])
        assert build_of(member["ReadEndpoint"]["Address"]).startswith("valkey 9.1.")
        assert node.execute_command("CLUSTER", "MYID") == ids[cluster_id]
    sharded = RedisCluster(host=configuration, port=6379, socket_timeout=2)
    assert all(sharded.get(f"sh:{i}") == str(i).encode() for i in range(500))
    ec.delete_cache_cluster(CacheClusterId="upg-solo")
    ec.delete_replication_group(ReplicationGroupId="upg-one")
    ec.delete_replication_group(ReplicationGroupId="upg-shards")
    wait_group_gone(ec, "upg-one")
    wait_group_gone(ec, "upg-shards")


def test_a_control_plane_sigkill_mid_upgrade_resumes_at_the_next_start(make_server):
    own = make_server()
    ec = own.client()
    ec.create_replication_group(ReplicationGroupId="crash", ReplicationGroupDescription="crash", Engine="valkey",
                                EngineVersion="8.1", CacheNodeType="cache.t4g.micro", NumCacheClusters=3,
                                AutomaticFailoverEnabled=True)
    group = wait_group(ec, "crash")
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    engine(endpoint).mset({f"d:{i}": "x" * 100 for i in range(20000)})  # a full sync that takes a moment
    ec.modify_replication_group(ReplicationGroupId="crash", EngineVersion="9.1", ApplyImmediately=True)
    # Killed as soon as the first replica is being replaced: one node on the new build, the others not.
    wait_for(lambda: any(m.startswith("Replacing cache node") for c in ("crash-002", "crash-003")
                         for m in events_of(ec, c)), timeout=30, interval=0.005, what="a replacement under way")
    assert own.stop(signal.SIGKILL) == -signal.SIGKILL
    running = engine_pids(own.data_dir)
    assert len(running) >= 2  # the nodes keep serving while the control plane is down
    own.start()
    ec = own.client()
    # While it resumes, no member is on a build other than its group's without saying so.
    clusters = {c["CacheClusterId"]: c for c in ec.describe_cache_clusters()["CacheClusters"]
                if c.get("ReplicationGroupId") == "crash"}
    for cluster in clusters.values():
        if not cluster["EngineVersion"].startswith("9.1."):
            assert cluster["PendingModifiedValues"].get("EngineVersion", "").startswith("9.1."), cluster
    described = wait_group(ec, "crash", timeout=120)
    assert described["Status"] == "available"
    for member in members_of(ec, "crash").values():
        assert build_of(member["ReadEndpoint"]["Address"]).startswith("valkey 9.1.")
    assert engine(endpoint).dbsize() == 20000
    assert any(m.startswith("Engine upgrade of crash to Valkey 9.1") for m in events_of(ec, "crash"))
    ec.delete_replication_group(ReplicationGroupId="crash")
    wait_group_gone(ec, "crash")


def _synced(client: redis.Redis, timeout: float = 4.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.info("replication").get("master_link_status") == "up":
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize(
    ("primary", "replica", "syncs"),
    [
        ("redis 7.0", "valkey 8.1", True),
        ("redis 7.0", "valkey 9.1", True),
        ("valkey 8.1", "valkey 9.1", True),
        ("valkey 8.1", "redis 7.0", False),
        ("valkey 9.1", "redis 7.0", False),
    ],
)
def test_a_replica_of_a_newer_build_syncs_from_an_older_primary_not_the_reverse(start_engine, primary, replica, syncs):
    """What the rolling order is built on, measured: new replicas of the old primary first; never an
    old replica of a new primary (Redis OSS 7.0 loads neither REDIS0011 nor VALKEY080)."""
    source = start_engine(BINARIES[primary], host=1)
    writer = redis.Redis(host=source.address, socket_timeout=2)
    writer.mset({f"m:{i}": i for i in range(100)})
    follower = start_engine(BINARIES[replica], host=2)
    client = redis.Redis(host=follower.address, socket_timeout=2)
    client.replicaof(source.address, 6379)
    assert _synced(client) is syncs
    if syncs:
        assert client.dbsize() == 100


def test_valkey_91_to_81_fails_once_the_data_needs_91(start_engine):
    """Valkey 9.1 serves an 8.1 replica while its data is what 8.1 knows, not once a hash field has a TTL."""
    source = start_engine(BINARIES["valkey 9.1"], host=1)
    writer = redis.Redis(host=source.address, socket_timeout=2)
    writer.hset("h", mapping={"f": "v", "g": "w"})
    assert writer.execute_command("HEXPIRE", "h", "1000", "FIELDS", "1", "f") == [1]
    follower = start_engine(BINARIES["valkey 8.1"], host=2)
    client = redis.Redis(host=follower.address, socket_timeout=2)
    client.replicaof(source.address, 6379)
    assert not _synced(client, timeout=3.0)

