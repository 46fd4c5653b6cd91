"""The pytest plugin from a fresh project directory (pytester, in a subprocess): off unless asked
for, and when on, a session's server that leaves no process behind, failed tests included.

The subprocess sees the plugin through a real ``pytest11`` entry point: a dist-info holding
pyproject.toml's entry point, on its PYTHONPATH (this checkout is not reinstalled to test it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cachefleet import pytest_plugin
from cachefleet.testing import engine_processes

pytest_plugins = ["pytester"]

INNER = '''
import json
from pathlib import Path

def test_group(cachefleet):
    client = cachefleet.replication_group("plugin-rg")
    assert client.set("k", "v") and client.get("k") == b"v"
    group = cachefleet.elasticache.describe_replication_groups(ReplicationGroupId="plugin-rg")["ReplicationGroups"][0]
    cluster = cachefleet.elasticache.describe_cache_clusters(CacheClusterId=group["MemberClusters"][0])["CacheClusters"][0]
    Path("seen.json").write_text(json.dumps({
        "pids": [cachefleet.pid, cachefleet.reaper_pid, *cachefleet.engine_pids().values()],
        "data_dir": str(cachefleet.data_dir),
        "engine": [cluster["Engine"], cluster["EngineVersion"]],
    }))

def test_fails(cachefleet):
    assert cachefleet.endpoint_url.startswith("http://127.0.0.1:")
    assert False, "a failing test must not leave the server behind"
'''


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project dir whose subprocess pytest finds cachefleet and its pytest11 entry point."""
    site = pytester.path / "site"
    info = site / "cachefleet_entry_point-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cachefleet-entry-point\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[pytest11]\ncachefleet = cachefleet.pytest_plugin\n")
    source = str(Path(__import__("cachefleet").__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), source]))
    pytester.makepyfile(test_app=INNER)
    return pytester


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_plugin_is_off_unless_asked_for(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-k", "test_group")
    result.assert_outcomes(errors=1, deselected=1)
    result.stdout.fnmatch_lines(["*fixture 'cachefleet' not found*"])
    assert not (project.path / "seen.json").exists()
    # Its options exist all the same (an autoloaded plugin adds only inert options).
    project.runpytest_subprocess("--help").stdout.fnmatch_lines(["*--cachefleet-engine=ENGINE*"])


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs Debian's redis-server")
def test_plugin_with_p_runs_a_server_and_leaves_no_process(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With plugin autoloading disabled, ``-p cachefleet`` loads the entry point by its name."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = project.runpytest_subprocess(
        "-p", "cachefleet", "--cachefleet-engine", "redis", "--cachefleet-engine-version", "7.0",
    )
    result.assert_outcomes(passed=1, failed=1)
    seen = json.loads((project.path / "seen.json").read_text())
    assert seen["engine"][0] == "redis" and seen["engine"][1].startswith("7.0")
    assert len(seen["pids"]) == 3
    assert not [pid for pid in seen["pids"] if _alive(pid)], "processes left behind"
    assert engine_processes(Path(seen["data_dir"])) == [] and not Path(seen["data_dir"]).exists()


def test_plugin_through_addopts_with_autoload(project: pytest.Pytester) -> None:
    """Autoloaded, the entry point is on and inert; ``-p cachefleet`` in addopts turns the fixture on."""
    project.makeini("[pytest]\naddopts = -p cachefleet\n")
    result = project.runpytest_subprocess("-k", "test_group")
    result.assert_outcomes(passed=1, deselected=1)
    seen = json.loads((project.path / "seen.json").read_text())
    assert not [pid for pid in seen["pids"] if _alive(pid)], "processes left behind"


def test_enabled_by_flag_or_ini(pytester: pytest.Pytester) -> None:
    from importlib.metadata import entry_points

    # Installed (make install), the entry point loads the module itself; registering it again by
    # hand would be the same plugin under a second name, which pytest refuses.
    if not any(e.name == "cachefleet" for e in entry_points(group="pytest11")):
        pytester.plugins.append(pytest_plugin)
    assert not pytest_plugin.enabled(pytester.parseconfig())
    assert pytest_plugin.enabled(pytester.parseconfig("--cachefleet"))
    pytester.makeini("[pytest]\ncachefleet = true\n")
    assert pytest_plugin.enabled(pytester.parseconfig())


QUOTA_INNER = '''
import pytest
from botocore.exceptions import ClientError

def test_quota(cachefleet):
    ec = cachefleet.elasticache
    ec.create_cache_cluster(CacheClusterId="quota-one", Engine="valkey", CacheNodeType="cache.t4g.micro")
    with pytest.raises(ClientError) as caught:
        ec.create_cache_cluster(CacheClusterId="quota-two", Engine="valkey", CacheNodeType="cache.t4g.micro")
    assert caught.value.response["Error"]["Code"] == "NodeQuotaForCustomerExceeded"
    assert "at most 1 nodes" in caught.value.response["Error"]["Message"]
'''


@pytest.mark.parametrize("where", ["option", "ini"])
def test_fixture_server_takes_the_node_quota(project: pytest.Pytester, where: str) -> None:
    """``--cachefleet-max-nodes`` (or ``cachefleet_max_nodes`` in the ini file) reaches the server's ``--max-nodes``."""
    project.makepyfile(test_quota=QUOTA_INNER)
    if where == "ini":
        project.makeini("[pytest]\naddopts = -p cachefleet\ncachefleet_max_nodes = 1\n")
        result = project.runpytest_subprocess("test_quota.py")
    else:
        result = project.runpytest_subprocess("-p", "cachefleet", "--cachefleet-max-nodes", "1", "test_quota.py")
    result.assert_outcomes(passed=1)


def test_fixture_refuses_a_node_quota_that_is_not_a_count(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-p", "cachefleet", "--cachefleet-max-nodes", "many", "-k", "test_group")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*--cachefleet-max-nodes many: give a whole number of nodes, 1 or more.*"])
