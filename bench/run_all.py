"""Runs every benchmark in turn (make bench)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "create_group.py", "throughput.py", "describe_scale.py", "describe_events.py", "cluster_create.py", "reshard.py", "reshard_replicas.py",
    "failover.py",
    "ha_overhead.py", "metric_query.py", "sampling_cost.py", "sampling_throughput.py", "auth_tls.py",
    "auth_instructions.py", "tls_preferred.py",
    "parameter_fanout.py", "rolling_upgrade.py", "failover_locked.py", "snapshot_io.py", "snapshot_api.py",
    "global_datastore.py", "store_commit.py", "relay.py",
]

if __name__ == "__main__":
    failed = 0
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        failed |= subprocess.run([sys.executable, str(HERE / script)], cwd=HERE).returncode
    sys.exit(failed)
