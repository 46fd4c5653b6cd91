"""The scheduler's contract and the deadlines of operations, without engines: a pass is rerun on
Retry, failed once on Failed, backed off on a bug; long steps are tracked tasks; an overdue
operation ends in a failed state with an event (create-failed, a reshard rolled back...)."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import ipaddress
from dataclasses import replace
from pathlib import Path

import pytest

from cachefleet.control import scheduler as scheduler_module
from cachefleet.control.reconciler import Reconciler
from cachefleet.control.scheduler import Failed, Retry, Scheduler, Target
from cachefleet.control.workflows.sharded import ROLLING_BACK
from cachefleet.domain.base import Dependencies
from cachefleet.domain.cache_clusters import ClusterStatus, CreateCacheClusterRequest
from cachefleet.domain.elasticache import ElastiCache
from cachefleet.domain.engines import EngineRelease
from cachefleet.domain.operations import Operation
from cachefleet.domain.replication_groups import (
    CreateReplicationGroupRequest,
    GroupStatus,
    ModifyReplicationGroupRequest,
    ReplicationGroup,
)
from cachefleet.domain.shards import ShardConfigurationRequest
from cachefleet.store.sqlite import SqliteStore

TARGET = Target("ReplicationGroup", "us-east-1", "g")


async def _until(predicate, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.001)


async def test_retry_reruns_the_pass_and_a_kick_during_a_pass_runs_it_once_more():
    runs: list[int] = []

    async def run(target: Target) -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            scheduler.kick(target)  # a change while the pass runs
        if len(runs) == 2:
            raise Retry(0.01, "not there yet")

    async def fail(target: Target, reason: str) -> None:
        raise AssertionError("no failure expected")

    scheduler = Scheduler(run=run, fail=fail)
    scheduler.kick(TARGET)
    await _until(lambda: len(runs) == 3 and scheduler.busy == 0)
    assert scheduler.last_reason(TARGET) == ""  # the last pass converged
    await scheduler.stop()


async def test_failed_calls_the_fail_hook_once_with_the_reason():
    failures: list[str] = []

    async def run(target: Target) -> None:
        if not failures:
            raise Failed("it cannot be done")

    async def fail(target: Target, reason: str) -> None:
        failures.append(reason)

    scheduler = Scheduler(run=run, fail=fail)
    scheduler.kick(TARGET)
    await _until(lambda: scheduler.busy == 0 and failures)
    assert failures == ["it cannot be done"]
    await scheduler.stop()


async def test_a_bug_is_retried_with_growing_delays_and_its_reason_kept(monkeypatch):
    monkeypatch.setattr(scheduler_module, "FIRST_BUG_DELAY", 0.01)
    times: list[float] = []

    async def run(target: Target) -> None:
        times.append(asyncio.get_running_loop().time())
        if len(times) < 4:
            raise KeyError("surprise")

    scheduler = Scheduler(run=run, fail=lambda target, reason: asyncio.sleep(0))
    scheduler.kick(TARGET)
    await _until(lambda: len(times) == 4 and scheduler.busy == 0)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps[0] >= 0.01 and gaps[1] >= 0.02 and gaps[2] >= 0.04  # 0.01, doubling
    await scheduler.stop()


async def test_a_transient_error_is_retried_soon(monkeypatch):
    monkeypatch.setattr(scheduler_module, "TRANSIENT_DELAY", 0.01)
    runs: list[int] = []

    async def run(target: Target) -> None:
        runs.append(1)
        if len(runs) == 1:
            raise ConnectionError("engine busy")

    scheduler = Scheduler(run=run, fail=lambda target, reason: asyncio.sleep(0), transient=(ConnectionError,))
    scheduler.kick(TARGET)
    await _until(lambda: len(runs) == 2 and scheduler.busy == 0)
    await scheduler.stop()


async def test_a_data_disk_that_refuses_a_nodes_files_is_the_machines_fault_not_a_bug(monkeypatch, caplog):
    monkeypatch.setattr(scheduler_module, "FIRST_BUG_DELAY", 0.01)
    raised = [OSError(errno.EROFS, "Read-only file system"), OSError(errno.ECONNREFUSED, "Connection refused")]
    runs: list[int] = []

    async def run(target: Target) -> None:
        runs.append(1)
        if raised:
            raise raised.pop(0)

    scheduler = Scheduler(run=run, fail=lambda target, reason: asyncio.sleep(0))
    scheduler.kick(TARGET)
    await _until(lambda: len(runs) == 3 and scheduler.busy == 0)
    disk, bug = [r for r in caplog.records if r.name == scheduler_module.__name__]
    assert "the data directory cannot be written ([Errno 30] Read-only file system)" in disk.getMessage()
    assert disk.levelname == "WARNING" and disk.exc_info is None  # said, without a bug's traceback
    assert bug.levelname == "ERROR" and bug.exc_info is not None  # any other OSError is still a bug
    await scheduler.stop()


async def test_a_long_step_runs_as_a_task_the_pass_only_asks_about():
    release = asyncio.Event()
    passes: list[str] = []

    async def long_step() -> None:
        await release.wait()

    async def run(target: Target) -> None:
        tasks = scheduler.tasks
        if tasks.busy(target, "migrate"):
            passes.append("busy")
            return
        if passes and passes[-1] == "busy":
            passes.append(f"done: {tasks.take(target, 'migrate')}")
            return
        tasks.start(target, "migrate", long_step())
        passes.append("started")

    scheduler = Scheduler(run=run, fail=lambda target, reason: asyncio.sleep(0))
    scheduler.kick(TARGET)
    await _until(lambda: passes == ["started"] and scheduler.busy == 0)
    scheduler.kick(TARGET)  # e.g. a health change: the pass runs at once, the step goes on
    await _until(lambda: passes == ["started", "busy"] and scheduler.busy == 0)
    release.set()  # the task's end kicks the resource
    await _until(lambda: passes == ["started", "busy", "done: None"] and scheduler.busy == 0)
    await scheduler.stop()


async def test_a_finished_task_can_be_started_again():
    """A second drain (another scale-in later) must run, not be taken for the first one."""
    runs: list[int] = []

    async def step() -> None:
        runs.append(1)

    tasks = scheduler_module.Tasks(on_done=lambda target: None)
    tasks.start(TARGET, "drain", step())
    await _until(lambda: runs == [1] and not tasks.busy(TARGET, "drain"))
    tasks.start(TARGET, "drain", step())  # the first one's outcome was never taken
    await _until(lambda: runs == [1, 1])
    await tasks.stop()


# ---------------------------------------------------------------------- deadlines of operations
class MovableClock:
    def __init__(self) -> None:
        self.at = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        return self.at


class IdleProvider:
    """A provider whose nodes never run (and start nothing): enough for deadline decisions."""

    def __init__(self) -> None:
        self.stopped: list[str] = []

    def adopt_all(self) -> dict[str, int]:
        return {}

    def pid(self, key: str) -> int | None:
        return None

    def running(self) -> dict[str, int]:
        return {}

    def node_dir(self, key: str) -> Path:
        return Path("/nonexistent") / key

    async def start(self, key, **kwargs):
        raise AssertionError("nothing starts in these tests")

    async def stop(self, key: str, *, graceful: bool = False, timeout: float = 5.0) -> None:
        self.stopped.append(key)

    def remove(self, key: str) -> None:
        pass

    def close(self) -> None:
        pass

    def write_config(self, key: str, config: str) -> Path:
        return Path("/nonexistent")

    def fence(self, key: str) -> None:
        pass


class Releases:
    def releases(self):
        return [EngineRelease("valkey", "8.1.8", "valkey8", "Valkey 8.1.8")]


@pytest.fixture
def world(tmp_path):
    store = SqliteStore(tmp_path / "state.db")
    clock = MovableClock()
    reconciler = Reconciler(store=store, provider=IdleProvider(), binaries=None, clock=clock)
    use_cases = ElastiCache(
        Dependencies(store=store, catalog=Releases(), clock=clock, node_network=ipaddress.IPv4Network("127.81.0.0/24"))
    )
    yield store, clock, reconciler, use_cases
    store.close()


def _events(store, source_id: str) -> list[str]:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return [e.message for e in store.events("us-east-1", start=start, end=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
                                              source_id=source_id)]


async def _pass(reconciler: Reconciler, target: Target) -> None:
    """One pass as the scheduler runs it: Failed goes to the fail hook."""
    try:
        await reconciler._pass(target)
    except Failed as failed:
        await reconciler._fail(target, failed.reason)


async def test_a_group_that_never_comes_up_is_create_failed_at_its_deadline(world):
    store, clock, reconciler, use_cases = world
    request = CreateReplicationGroupRequest.parse(
        "us-east-1", {"ReplicationGroupId": "g", "ReplicationGroupDescription": "d", "CacheNodeType": "cache.t4g.micro",
                      "NumNodeGroups": 2, "Engine": "valkey"}
    )
    use_cases.replication_groups.create("us-east-1", request)
    clock.at += dt.timedelta(minutes=10, seconds=1)
    await _pass(reconciler, TARGET)
    group = store.get(ReplicationGroup, "us-east-1", "g")
    assert group.status == GroupStatus.CREATE_FAILED and "did not finish by 2026-12-01 12:10:00 UTC" in group.status_reason
    assert store.list(Operation) == []
    assert any(m.startswith("Replication group g create-failed: Replication group g did not become available") for m in
               _events(store, "g"))
    await reconciler.scheduler.stop()


async def test_an_operation_before_its_deadline_is_left_alone(world):
    store, clock, reconciler, use_cases = world
    request = CreateCacheClusterRequest.parse(
        "us-east-1", {"CacheClusterId": "solo", "CacheNodeType": "cache.t4g.micro", "Engine": "valkey"}
    )
    use_cases.cache_clusters.create("us-east-1", request)
    clock.at += dt.timedelta(minutes=9)
    reconciler._check_deadlines(Target("CacheCluster", "us-east-1", "solo"), use_cases.cache_clusters.describe("us-east-1")[0])
    clock.at += dt.timedelta(minutes=2)
    with pytest.raises(Failed, match="create did not finish"):
        reconciler._check_deadlines(
            Target("CacheCluster", "us-east-1", "solo"), use_cases.cache_clusters.describe("us-east-1")[0]
        )
    await reconciler._fail(Target("CacheCluster", "us-east-1", "solo"), "create did not finish")
    assert use_cases.cache_clusters.describe("us-east-1")[0].status == ClusterStatus.CREATE_FAILED
    await reconciler.scheduler.stop()


def _available(store, group_id: str) -> None:
    group = store.get(ReplicationGroup, "us-east-1", group_id)
    with store.transaction() as tx:
        tx.put(replace(group, status=GroupStatus.AVAILABLE))
        for operation in store.list(Operation):
            tx.delete(operation)


async def test_a_reshard_that_stalls_is_rolled_back_then_given_up(world):
    store, clock, reconciler, use_cases = world
    request = CreateReplicationGroupRequest.parse(
        "us-east-1", {"ReplicationGroupId": "g", "ReplicationGroupDescription": "d", "CacheNodeType": "cache.t4g.micro",
                      "NumNodeGroups": 2, "Engine": "valkey"}
    )
    use_cases.replication_groups.create("us-east-1", request)
    _available(store, "g")
    use_cases.shards.modify_shard_configuration(
        "us-east-1", ShardConfigurationRequest.parse("us-east-1", {"ReplicationGroupId": "g", "NodeGroupCount": 3,
                                                                    "ApplyImmediately": True})
    )
    reconciler.sharded.fail(store.get(ReplicationGroup, "us-east-1", "g"), "no slot moved for 10 minutes")
    (operation,) = store.list(Operation)
    assert operation.step == ROLLING_BACK
    # The node group it added owns nothing: it is removed; the others keep the slots they have.
    assert operation.resharding.removing == ("0003",)
    assert [name for name, _ in operation.resharding.target_slots] == ["0001", "0002"]
    reconciler.sharded.fail(store.get(ReplicationGroup, "us-east-1", "g"), "still stuck")
    assert store.list(Operation) == []
    messages = _events(store, "g")
    assert any("failed: no slot moved for 10 minutes; rolling back (removing the new node groups 0003)" in m for m in messages)
    assert any("could not be rolled back: still stuck" in m for m in messages)
    await reconciler.scheduler.stop()


async def test_a_node_type_change_that_cannot_finish_is_given_up(world):
    store, clock, reconciler, use_cases = world
    request = CreateReplicationGroupRequest.parse(
        "us-east-1", {"ReplicationGroupId": "g", "ReplicationGroupDescription": "d", "CacheNodeType": "cache.t4g.micro",
                      "Engine": "valkey"}
    )
    use_cases.replication_groups.create("us-east-1", request)
    _available(store, "g")
    use_cases.replication_groups.modify(
        "us-east-1", ModifyReplicationGroupRequest.parse(
            {"ReplicationGroupId": "g", "CacheNodeType": "cache.m7g.large", "ApplyImmediately": True}
        )
    )
    clock.at += dt.timedelta(minutes=11)
    with pytest.raises(Failed, match="node-type did not finish"):
        reconciler._check_deadlines(TARGET, store.get(ReplicationGroup, "us-east-1", "g"))
    await reconciler._fail(TARGET, "node-type did not finish")
    assert store.list(Operation) == []
    assert store.get(ReplicationGroup, "us-east-1", "g").node_type == "cache.t4g.micro"
    assert any("to cache.m7g.large did not finish" in m for m in _events(store, "g"))
    await reconciler.scheduler.stop()
