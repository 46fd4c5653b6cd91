"""`cachefleet up --init FILE`: a declared fleet is created after start-up and waited for; a
second start on the same data dir creates nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cachefleet.client import declared
from cachefleet.testing import engine_pids
from helpers import wait_for

DECLARATION = """
CacheParameterGroups:
  - CacheParameterGroupName: init-params
    CacheParameterGroupFamily: valkey8
    Description: the app's parameters
    ParameterNameValues:
      - {ParameterName: maxmemory-policy, ParameterValue: allkeys-lru}
Users:
  - UserId: init-app
    UserName: init-app
    Engine: valkey
    AccessString: "on ~app:* +@all"
    Passwords: ["init-app-password-1234"]
ReplicationGroups:
  - ReplicationGroupId: init-rg
    ReplicationGroupDescription: declared at start-up
    Engine: valkey
    EngineVersion: "8.1"
    CacheNodeType: cache.t4g.micro
    CacheParameterGroupName: init-params
    NumCacheClusters: 1
"""


def _dones(server: Any) -> list[str]:
    lines = server.log().splitlines()
    assert not [line for line in lines if "init: stopped" in line], server.log()
    return [line for line in lines if "init: done" in line]


def test_init_creates_what_is_missing_and_a_second_start_nothing(make_server: Any, tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(DECLARATION)
    server = make_server("--init", str(path))
    wait_for(lambda: _dones(server), timeout=60, what="the declared fleet")
    assert "3 created, 0 already there" in _dones(server)[0]
    ec = server.client()
    group = ec.describe_replication_groups(ReplicationGroupId="init-rg")["ReplicationGroups"][0]
    assert group["Status"] == "available"
    assert ec.describe_users(UserId="init-app")["Users"][0]["Status"] == "active"
    parameters = ec.describe_cache_parameters(CacheParameterGroupName="init-params", Source="user")["Parameters"]
    assert {(p["ParameterName"], p["ParameterValue"]) for p in parameters} == {("maxmemory-policy", "allkeys-lru")}
    member = group["MemberClusters"][0]
    assert ec.describe_cache_clusters(CacheClusterId=member)["CacheClusters"][0]["CacheParameterGroup"][
        "CacheParameterGroupName"] == "init-params"
    pids = sorted(engine_pids(server.data_dir).values())

    server.stop()
    server.start()
    wait_for(lambda: len(_dones(server)) == 2, timeout=60, what="the second start's init")
    assert "0 created, 3 already there" in _dones(server)[1]
    assert len([line for line in server.log().splitlines() if "init: created" in line]) == 3
    assert sorted(engine_pids(server.data_dir).values()) == pids  # adopted, not made again


def test_a_wrong_member_is_refused_before_start(tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({"ReplicationGroups": [{"ReplicationGroupId": "x", "ReplicationGroupDescription": "x",
                                                        "NumShards": 2}]}))
    with pytest.raises(declared.DeclarationError, match="CreateReplicationGroup has no member NumShards"):
        declared.load(path)
    path.write_text(json.dumps({"Caches": []}))
    with pytest.raises(declared.DeclarationError, match="unknown section"):
        declared.load(path)

