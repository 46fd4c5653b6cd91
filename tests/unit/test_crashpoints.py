"""The test-only crash hook of the store's commit path: labels, the step log, the SIGKILL."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from cachefleet.domain.events import Event, EventSourceType
from cachefleet.domain.operations import OperationKind, begin, progressed
from cachefleet.domain.replication_groups import GroupStatus
from cachefleet.store.crashpoints import CRASH_AFTER, STEP_LOG, CrashHook, label, step_text
from cachefleet.store.sqlite import SqliteStore

from .test_store import NOW, cluster, group


def test_labels_name_what_a_commit_wrote_without_its_numbers():
    reshard = progressed(begin(group(), OperationKind.RESHARD, now=NOW), "moving slots (1234)", now=NOW)
    assert label([reshard], [], []) == "Operation RESHARD moving slots"
    assert label([group(), cluster("c1"), cluster("c2")], [], []) == "CacheCluster creating + ReplicationGroup creating"
    available = dataclasses.replace(group(), status=GroupStatus.AVAILABLE)
    assert label([available], [begin(group(), OperationKind.CREATE, now=NOW)], []) == (
        "Operation CREATE deleted + ReplicationGroup available"
    )
    event = Event(region="us-east-1", source_type=EventSourceType.CACHE_CLUSTER, source_id="c1",
                  message="Failover from master node g-0001-001 to replica node g-0001-002 completed", date=NOW)
    assert label([], [], [event]) == "Event Failover from master node"
    assert step_text("failing over 0002") == "failing over"
    assert step_text("restoring: 17 keys moved") == "restoring"


def test_unset_environment_means_no_hook():
    assert CrashHook.from_environment({}) is None
    hook = CrashHook.from_environment({CRASH_AFTER: "CacheCluster available#3"})
    assert hook is not None and (hook.crash_label, hook.crash_count, hook.log_path) == ("CacheCluster available", 3, None)


def test_store_logs_every_commit_and_dies_after_the_nth_of_a_label(tmp_path: Path):
    steps = tmp_path / "steps.log"
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
        from pathlib import Path
        from cachefleet.store.sqlite import SqliteStore
        from unit.test_store import cluster
        store = SqliteStore(Path({str(tmp_path / "state.db")!r}))
        for n in range(5):
            with store.transaction() as tx:
                tx.put(cluster(f"c{{n}}"))
        print("survived")
    """)
    env = {**os.environ, STEP_LOG: str(steps), CRASH_AFTER: "CacheCluster creating#2"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert "survived" not in done.stdout
    assert steps.read_text().splitlines() == ["CacheCluster creating"] * 2
    # The second commit was durable before the kill: the store holds c0 and c1, not c2.
    reopened = SqliteStore(tmp_path / "state.db")
    assert sorted(c.cluster_id for c in reopened.list(type(cluster()))) == ["c0", "c1"]
