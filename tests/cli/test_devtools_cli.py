"""`--output table|json`, shell completion and `cachefleet doctor`, run as a user runs them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from cachefleet.app import Settings, diagnose
from cachefleet.cli.main import main
from helpers import free_port, fresh_network

CACHEFLEET = str(Path(sys.executable).with_name("cachefleet"))


def test_output_json_is_the_same_as_json_and_table_is_the_default(server, ec) -> None:
    ec.create_cache_parameter_group(CacheParameterGroupName="out-params", CacheParameterGroupFamily="valkey8",
                                    Description="d")
    runner = CliRunner()
    base = ["--endpoint-url", server.url, "params", "list"]
    as_json = runner.invoke(main, [*base, "--json"])
    output_json = runner.invoke(main, [*base, "-o", "json"])
    assert as_json.exit_code == output_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output) == json.loads(output_json.output)
    assert "out-params" in [g["name"] for g in json.loads(output_json.output)]
    table = runner.invoke(main, [*base, "--output", "table"])
    assert table.exit_code == 0 and "out-params" in table.output and not table.output.lstrip().startswith("[")
    assert runner.invoke(main, [*base, "-o", "yaml"]).exit_code == 2  # click's usage error, naming the choices


def test_shell_completion_of_commands(tmp_path: Path) -> None:
    env = {**os.environ, "COMP_WORDS": "cachefleet doc", "COMP_CWORD": "1", "_CACHEFLEET_COMPLETE": "bash_complete"}
    completed = subprocess.run([CACHEFLEET], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert completed.stdout.split() == ["plain,doctor"]
    script = subprocess.run([CACHEFLEET], env={**os.environ, "_CACHEFLEET_COMPLETE": "zsh_source"},
                            capture_output=True, text=True, timeout=60, cwd=tmp_path).stdout
    assert script.startswith("#compdef cachefleet")


def test_doctor_all_well_then_each_problem_with_its_fix(tmp_path: Path) -> None:
    runner = CliRunner()
    good = ["doctor", "--data-dir", str(tmp_path / "data"), "--listen", f"127.0.0.1:{free_port()}",
            "--node-network", fresh_network(), "-o", "json"]
    result = runner.invoke(main, good)
    assert result.exit_code == 0, result.output
    findings = {f["check"]: f for f in json.loads(result.output)}
    assert {f["status"] for f in findings.values()} <= {"ok", "warn"}
    assert any(check.startswith("engine valkey") for check in findings)
    assert not (tmp_path / "data").exists()  # looked at, not left behind

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(main, ["doctor", "--listen", f"127.0.0.1:{port}", "--node-network", "10.254.0.0/16",
                                      "--data-dir", "/proc/cachefleet", "-o", "json"])
    assert result.exit_code == 1
    failed = {f["check"]: f for f in json.loads(result.output) if f["status"] == "fail"}
    assert set(failed) == {"API address", "node network", "data dir"}
    assert "--listen" in failed["API address"]["fix"] and "ip route add local" in failed["node network"]["fix"]


def test_doctor_sees_a_process_on_the_wildcard_address_of_the_node_port(tmp_path: Path) -> None:
    """A system redis-server on *:6379 takes every node address's 6379: start-up would fail later."""
    with socket.socket() as wildcard:
        wildcard.bind(("0.0.0.0", 0))
        wildcard.listen()
        port = wildcard.getsockname()[1]
        findings = diagnose(Settings(data_dir=tmp_path, listen=f"127.0.0.1:{free_port()}", node_network=fresh_network()),
                            node_port=port)
    node = next(f for f in findings if f.check == f"node port {port}")
    assert node.status == "fail" and "systemctl stop redis-server" in node.fix
