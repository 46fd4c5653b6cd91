"""cachefleet.testing.running against a real server: ready clients, and nothing left behind,
whether the block ends normally, with an exception, or its process is killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from cachefleet.testing import FleetError, LocalFleet, engine_processes, running
from helpers import wait_for


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_running_gives_ready_clients_and_leaves_nothing_after_a_failure() -> None:
    seen: dict[str, object] = {}
    with pytest.raises(ZeroDivisionError), running() as fleet:
        assert isinstance(fleet, LocalFleet)
        client = fleet.replication_group("tapi", NumCacheClusters=2)
        assert isinstance(client, redis.Redis) and not isinstance(client, redis.RedisCluster)
        assert client.set("k", "v") and client.get("k") == b"v"
        group = fleet.elasticache.describe_replication_groups(ReplicationGroupId="tapi")["ReplicationGroups"][0]
        assert group["Status"] == "available" and len(group["MemberClusters"]) == 2
        assert "Metrics" in fleet.cloudwatch.list_metrics(Namespace="AWS/ElastiCache")
        seen.update(pids=[fleet.pid, fleet.reaper_pid, *fleet.engine_pids().values()], data_dir=fleet.data_dir)
        assert len(seen["pids"]) == 4  # type: ignore[arg-type]
        raise ZeroDivisionError("a failing test inside the block")
    data_dir = Path(str(seen["data_dir"]))
    assert not [pid for pid in seen["pids"] if _alive(pid)]  # type: ignore[attr-defined]
    assert engine_processes(data_dir) == [] and not data_dir.exists()


def test_cluster_mode_client_an_init_file_and_an_unknown_engine_refused(tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({"CacheSubnetGroups": [{
        "CacheSubnetGroupName": "init-subnets", "CacheSubnetGroupDescription": "zones a and b",
        "SubnetIds": ["subnet-us-east-1a", "subnet-us-east-1b"]}]}))
    with running(init=path) as fleet:
        found = fleet.elasticache.describe_cache_subnet_groups(CacheSubnetGroupName="init-subnets")["CacheSubnetGroups"]
        assert [s["SubnetIdentifier"] for s in found[0]["Subnets"]] == ["subnet-us-east-1a", "subnet-us-east-1b"]
        client = fleet.replication_group("tapic", NumNodeGroups=2, ReplicasPerNodeGroup=0,
                                         client_options={"decode_responses": True})
        assert isinstance(client, redis.RedisCluster)
        assert client.set("{a}x", "1") and client.get("{a}x") == "1"
        assert len(client.get_primaries()) == 2
        serverless = fleet.serverless_cache("tapis", client_options={"decode_responses": True})
        assert isinstance(serverless, redis.RedisCluster)
        assert serverless.set("{s}k", "v") and serverless.get("{s}k") == "v"
        assert fleet.wait_serverless_cache("tapis")["Status"] == "available"
        if shutil.which("redis-server"):  # Debian's build has TLS: the client gets the CA and the token
            locked = fleet.replication_group("tapitls", Engine="redis", EngineVersion="7.0",
                                             TransitEncryptionEnabled=True, AuthToken="a-long-auth-token-1234567890")
            assert locked.connection_pool.connection_kwargs["ssl_ca_data"] == fleet.ca_certificate()
            assert locked.set("k", "v") and locked.get("k") == b"v"
    with pytest.raises(FleetError, match="not installed here"), running(engine="valkey", engine_version="1.0"):
        pass


def test_a_killed_owner_leaves_nothing_behind(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", (
            "import json, sys, time\n"
            "from cachefleet.testing import running\n"
            "with running() as fleet:\n"
            "    fleet.replication_group('tkill')\n"
            "    print(json.dumps({'pids': [fleet.pid, fleet.reaper_pid, *fleet.engine_pids().values()],"
            " 'data_dir': str(fleet.data_dir)}), flush=True)\n"
            "    time.sleep(120)\n"
        )],
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert owner.stdout is not None
        seen = json.loads(owner.stdout.readline())
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert len(seen["pids"]) == 3 and all(_alive(pid) for pid in seen["pids"])
    wait_for(lambda: not [pid for pid in seen["pids"] if _alive(pid)], timeout=30, what="the reaper's clean-up")
    assert engine_processes(Path(seen["data_dir"])) == []
    wait_for(lambda: not Path(seen["data_dir"]).exists(), timeout=10, what="the data dir's removal")
