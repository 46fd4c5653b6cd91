"""Resource faults (issue 15): what the machine refuses the control plane, and what a user then sees.

Each test runs a real server (``helpers.Server``) with a healthy group beside the one hit, and
checks that the hit one gets a clear status and event (or the API a clear error), that nothing
hangs, and that the healthy group keeps serving. Injected: an engine build that exits at start,
an engine address taken by a foreign process, an engine build deleted while the control plane is
down, the store's file locked by another process or read-only, the data dir's disk full.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from botocore.exceptions import ClientError

from cachefleet.engine.catalog import Catalog
from engines import failing_build, marked_build
from helpers import (
    Server,
    cluster_status,
    engine,
    engine_pids,
    events_of,
    expect,
    free_port,
    fresh_network,
    wait_cluster,
    wait_event,
    wait_for,
    wait_group,
    wait_group_gone,
)

VALKEY_81 = next(b for b in Catalog.discover().binaries() if b.release.engine == "valkey" and b.release.major_minor == "8.1")
GROUP = {"ReplicationGroupDescription": "resource faults", "Engine": "valkey", "CacheNodeType": "cache.t4g.micro"}


@contextlib.contextmanager
def server(tmp_path: Path, *extra: str) -> Iterator[Server]:
    running = Server(data_dir=tmp_path / "data", network=fresh_network(), port=free_port(), extra=list(extra))
    try:
        yield running.start()
    finally:
        running.down()


def healthy(ec: Any, group_id: str, timeout: float = 30.0) -> None:
    """The group is available and its primary endpoint takes a write and reads it back (within ``timeout``)."""
    endpoint = wait_group(ec, group_id, timeout=timeout)["NodeGroups"][0]["PrimaryEndpoint"]

    def written() -> bool:
        client = engine(endpoint["Address"], endpoint["Port"])
        try:
            client.set("still", "here")
            return client.get("still") == "here"
        except redis.RedisError:
            return False
        finally:
            client.close()

    wait_for(written, timeout=timeout, interval=0.1, what=f"{group_id}'s primary endpoint to take a write")


# ---------------------------------------------------------------------------- 1. an engine exits at start
def test_an_engine_that_exits_at_start_fails_its_group_with_the_engine_reason(tmp_path):
    reason = "Fatal: cannot allocate the shared memory arena (resource fault test)"
    builds = failing_build(tmp_path / "exits", version="7.2.4", reason=reason)
    with server(tmp_path, "--engine-path", str(builds)) as running:
        ec = running.client()
        ec.create_replication_group(ReplicationGroupId="fine", NumCacheClusters=1, **GROUP)
        ec.create_replication_group(ReplicationGroupId="exits", NumCacheClusters=2, EngineVersion="7.2", **GROUP)
        failed = wait_group(ec, "exits", status="create-failed")
        assert failed["MemberClusters"] == ["exits-001", "exits-002"]
        messages = events_of(ec, "exits")
        assert any("create-failed" in m and reason in m for m in messages), messages
        members = ec.describe_cache_clusters(CacheClusterId="exits-001")["CacheClusters"]
        assert members[0]["CacheClusterStatus"] == "create-failed"
        assert len(engine_pids(running.data_dir)) == 1  # fine's node only: nothing of exits is left running
        healthy(ec, "fine")
        ec.delete_replication_group(ReplicationGroupId="exits")
        wait_group_gone(ec, "exits")
        healthy(ec, "fine")


# ---------------------------------------------------------------------------- 2. an address taken by a foreign process
def used_addresses(ec: Any) -> set[str]:
    found = set()
    for group in ec.describe_replication_groups()["ReplicationGroups"]:
        for shard in group["NodeGroups"]:
            for name in ("PrimaryEndpoint", "ReaderEndpoint"):
                if name in shard:
                    found.add(shard[name]["Address"])
            for member in shard["NodeGroupMembers"]:
                found.add(member["ReadEndpoint"]["Address"])
    return found


@contextlib.contextmanager
def listening(addresses: list[str], port: int = 6379) -> Iterator[list[socket.socket]]:
    """A foreign server: listening sockets on ``addresses``:``port``, closed at the end."""
    sockets = []
    try:
        for address in addresses:
            held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(held)
            held.bind((address, port))
            held.listen()
        yield sockets
    finally:
        for held in sockets:
            held.close()


@pytest.mark.parametrize(("taken", "says"), [
    (0, "Address already in use"),  # the primary's own address: its engine cannot listen, and exits
    (2, "another process (not a Cachefleet node) listens there"),  # the primary endpoint, bound once it runs
])
def test_an_address_taken_by_a_foreign_process_fails_the_create_clearly(tmp_path, taken, says):
    with server(tmp_path) as running:
        ec = running.client()
        ec.create_replication_group(ReplicationGroupId="fine", NumCacheClusters=1, **GROUP)
        healthy(ec, "fine")
        network = running.network.removesuffix(".0/24")
        used = used_addresses(ec)
        # The lowest free addresses go to the next group: its 2 nodes, then its primary and reader endpoints.
        free = [f"{network}.{host}" for host in range(1, 254) if f"{network}.{host}" not in used][:4]
        with listening([free[taken]]):
            ec.create_replication_group(ReplicationGroupId="taken", NumCacheClusters=2, **GROUP)
            group = wait_group(ec, "taken", status="create-failed", timeout=20)
            assert group["NodeGroups"][0]["PrimaryEndpoint"]["Address"] == free[2]
            assert group["NodeGroups"][0]["NodeGroupMembers"][0]["ReadEndpoint"]["Address"] == free[0]
            messages = [m for m in events_of(ec, "taken") if "create-failed" in m]
            assert messages and f"{free[taken]}:6379" in messages[0] and says in messages[0], messages
            assert "Deprecation warning" not in messages[0], messages  # the engine's reason, not its noise
            wait_for(lambda: len(engine_pids(running.data_dir)) == 1, timeout=10, what="taken's nodes stopped")
            healthy(ec, "fine")
        # Once the address is free again, the same group can be made.
        ec.delete_replication_group(ReplicationGroupId="taken")
        wait_group_gone(ec, "taken")
        ec.create_replication_group(ReplicationGroupId="taken", NumCacheClusters=2, **GROUP)
        healthy(ec, "taken")
        healthy(ec, "fine")


# ---------------------------------------------------------------------------- 3. an engine build gone at restart
def test_an_engine_build_deleted_while_the_control_plane_is_down(tmp_path):
    builds = marked_build(tmp_path / "builds", VALKEY_81, version="8.1.9", mark="{title} resource-faults-8.1.9")
    with server(tmp_path, "--engine-path", str(builds)) as running:
        ec = running.client()
        ec.create_replication_group(ReplicationGroupId="fine", NumCacheClusters=1, **GROUP)
        ec.create_replication_group(ReplicationGroupId="wrapped", NumCacheClusters=2, EngineVersion="8.1", **GROUP)
        ec.create_cache_cluster(CacheClusterId="solo", Engine="valkey", EngineVersion="8.1", CacheNodeType="cache.t4g.micro")
        solo = wait_cluster(ec, "solo")["CacheNodes"][0]["Endpoint"]["Address"]
        healthy(ec, "wrapped")
        healthy(ec, "fine")
        assert ec.describe_cache_clusters(CacheClusterId="wrapped-001")["CacheClusters"][0]["EngineVersion"] == "8.1.9"
        before = engine_pids(running.data_dir)
        running.stop()
        shutil.rmtree(builds)
        running.start()
        ec = running.client()
        # The nodes still run: adopted, not restarted, and serving.
        assert engine_pids(running.data_dir) == before
        healthy(ec, "wrapped")
        healthy(ec, "fine")
        # A node of the missing build that has to start again cannot: it says so, once, and its status shows it.
        replica = ec.describe_cache_clusters(CacheClusterId="wrapped-002", ShowCacheNodeInfo=True)["CacheClusters"][0]
        os.kill(before[replica["CacheNodes"][0]["Endpoint"]["Address"]], signal.SIGKILL)
        os.kill(before[solo], signal.SIGKILL)
        for cluster_id in ("wrapped-002", "solo"):
            said = wait_event(ec, cluster_id, "would not start")
            assert "its engine build valkey 8.1.9 is not installed on this machine any more" in said[0], said
            assert cluster_status(ec, cluster_id) == "modifying"
        # A cluster that cannot start can be deleted meanwhile.
        ec.delete_cache_cluster(CacheClusterId="solo")
        wait_for(lambda: cluster_status(ec, "solo") is None, timeout=20, what="solo deleted")
        healthy(ec, "wrapped")  # its primary still serves
        healthy(ec, "fine")
        # Tried again (each try is logged), but not said again every 5 s.
        wait_for(lambda: running.log().count("8.1.9 is not installed on this machine") >= 2, timeout=15,
                 interval=0.2, what="another start attempt")
        assert len([m for m in events_of(ec, "wrapped-002") if "would not start" in m]) == 1
        # With the build back (and the control plane started again, which finds builds), the node starts.
        running.stop()
        marked_build(builds, VALKEY_81, version="8.1.9", mark="{title} resource-faults-8.1.9")
        running.start()
        ec = running.client()
        wait_cluster(ec, "wrapped-002", timeout=20)
        wait_event(ec, "wrapped-002", "Cache cluster wrapped-002 is available")
        assert engine(replica["CacheNodes"][0]["Endpoint"]["Address"]).get("still") == "here"  # resynced
        healthy(ec, "fine")


# ---------------------------------------------------------------------------- 4. the store locked or read-only
@contextlib.contextmanager
def store_locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's writer on the store: BEGIN EXCLUSIVE held open on its own connection."""
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN EXCLUSIVE")
        yield other
    finally:
        with contextlib.suppress(sqlite3.Error):
            other.execute("ROLLBACK")
        other.close()


def test_a_store_locked_by_another_process_refuses_writes_and_serves_reads(tmp_path):
    subnets = {"CacheSubnetGroupDescription": "x", "SubnetIds": ["subnet-us-east-1a"]}
    with server(tmp_path) as running:
        ec = running.client()
        ec.create_replication_group(ReplicationGroupId="fine", NumCacheClusters=1, **GROUP)
        healthy(ec, "fine")
        with store_locked(running.data_dir / "state.db"):
            start = time.monotonic()
            expect("ServiceUnavailable", ec.create_cache_subnet_group, status=503, says="locked by another process",
                   CacheSubnetGroupName="locked", **subnets)
            expect("ServiceUnavailable", ec.create_replication_group, status=503, says="Nothing was changed",
                   ReplicationGroupId="second", NumCacheClusters=1, **GROUP)
            assert time.monotonic() - start < 5  # no hang: a few half-second waits (botocore tries twice)
            # Reads answer, at once.
            start = time.monotonic()
            assert ec.describe_replication_groups(ReplicationGroupId="fine")["ReplicationGroups"][0]["Status"] == "available"
            assert any("fine created and available" in m for m in events_of(ec, "fine"))
            assert time.monotonic() - start < 1
            expect("ReplicationGroupNotFoundFault", ec.describe_replication_groups, ReplicationGroupId="second")
            healthy(ec, "fine")  # the data plane is untouched
            # A node lost meanwhile waits for the store: the control plane records before it acts.
            os.kill(next(iter(engine_pids(running.data_dir).values())), signal.SIGKILL)
            wait_for(lambda: running.log().count("the store cannot write") >= 1, timeout=10, interval=0.1,
                     what="the control plane to find the store locked")
        # The lock gone, the same requests work.
        healthy(ec, "fine", timeout=15)  # restarted (empty) within a retry of the store
        ec.create_cache_subnet_group(CacheSubnetGroupName="locked", **subnets)
        ec.create_replication_group(ReplicationGroupId="second", NumCacheClusters=1, **GROUP)
        healthy(ec, "second")
        healthy(ec, "fine")
    assert integrity(running.data_dir / "state.db") == "ok"


def integrity(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` read-only even for root (the tests run as root, whom a chmod does not stop): a
    read-only bind mount of the file over itself, detached at the end (lazily: the server may
    hold the read-only file open; what it opens afterwards is the writable file again)."""
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_a_read_only_store_refuses_writes_serves_reads_and_writes_again_once_writable(tmp_path):
    subnets = {"CacheSubnetGroupDescription": "x", "SubnetIds": ["subnet-us-east-1a"]}
    with server(tmp_path) as running:
        ec = running.client()
        ec.create_replication_group(ReplicationGroupId="fine", NumCacheClusters=1, **GROUP)
        healthy(ec, "fine")
        before = engine_pids(running.data_dir)
        running.stop()
        with read_only(running.data_dir / "state.db"):
            with pytest.raises(OSError, match="Read-only"):
                open(running.data_dir / "state.db", "r+b").close()  # the fault is real: root cannot write it
            running.start()  # it starts: what it has is served
            ec = running.client()
            expect("ServiceUnavailable", ec.create_cache_subnet_group, status=503, says="is read-only",
                   CacheSubnetGroupName="ro", **subnets)
            assert ec.describe_replication_groups(ReplicationGroupId="fine")["ReplicationGroups"][0]["Status"] == "available"
            assert any("fine created and available" in m for m in events_of(ec, "fine"))
            healthy(ec, "fine")
            assert engine_pids(running.data_dir) == before  # adopted, not restarted
        # Writable again: no restart needed.
        ec.create_cache_subnet_group(CacheSubnetGroupName="ro", **subnets)
        ec.create_replication_group(ReplicationGroupId="second", NumCacheClusters=1, **GROUP)
        healthy(ec, "second")
        healthy(ec, "fine")
    assert integrity(running.data_dir / "state.db") == "ok"


# ---------------------------------------------------------------------------- 5. the data dir's disk full
@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` (the tests run as root), unmounted at the end."""
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(directory: Path, *, leave: int = 0) -> Path:
    """Writes a file in ``directory`` until its disk has only ``leave`` bytes left; returns it."""
    filler = directory / "filler"
    free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
    chunk = b"\0" * (1 << 20)
    with open(filler, "ab", buffering=0) as out:
        written = 0
        try:
            while written < free - leave:
                written += out.write(chunk[: min(len(chunk), free - leave - written)])
        except OSError as error:
            assert error.errno == 28, error  # ENOSPC
    return filler


def snapshot_status(ec: Any, name: str) -> str:
    return str(ec.describe_snapshots(SnapshotName=name)["Snapshots"][0]["SnapshotStatus"])


def test_a_full_data_disk(tmp_path):
    subnets = {"CacheSubnetGroupDescription": "x", "SubnetIds": ["subnet-us-east-1a"]}
    with small_disk(tmp_path / "data", "48m") as data, server(tmp_path) as running:
        ec = running.client()
        ec.create_replication_group(ReplicationGroupId="fine", NumCacheClusters=1, **GROUP)
        ec.create_replication_group(ReplicationGroupId="full", NumCacheClusters=1, **GROUP)
        healthy(ec, "fine")
        healthy(ec, "full")
        endpoint = wait_group(ec, "full")["NodeGroups"][0]["PrimaryEndpoint"]
        client = engine(endpoint["Address"])
        pipe = client.pipeline()
        for i in range(4000):
            pipe.set(f"k:{i}", os.urandom(500).hex())  # 4 MB that does not compress: its RDB needs the room
        pipe.execute()

        # Room for the store's writes, not for an RDB: a snapshot fails, saying so.
        filler = fill(data, leave=1 << 20)
        ec.create_snapshot(ReplicationGroupId="full", SnapshotName="on-a-full-disk")
        wait_for(lambda: snapshot_status(ec, "on-a-full-disk") == "failed", timeout=20, interval=0.1,
                 what="the snapshot to fail")
        said = wait_event(ec, "full", "Snapshot failed for snapshot with ID 'on-a-full-disk'")
        assert "no space left" in said[0], said
        wait_group(ec, "full")
        # A new replica's full sync (the primary saves an RDB for it) cannot finish: said, not silent.
        ec.increase_replica_count(ReplicationGroupId="full", NewReplicaCount=1, ApplyImmediately=True)
        said = wait_event(ec, "full-002", "cannot finish its full sync")
        assert "its primary full-001 could not save the data a full sync sends" in said[0], said
        assert "bytes are free on its data disk" in said[0], said
        assert ec.describe_replication_groups(ReplicationGroupId="full")["ReplicationGroups"][0]["Status"] == "modifying"
        client.set("writes", "still taken")  # the primary serves its clients meanwhile
        healthy(ec, "fine")

        # No byte left: the store refuses changes with a clear server fault; reads answer.
        fill(data)
        refused = []
        for i in range(200):  # what room the store's write-ahead log still has is used up, then refused
            try:
                ec.create_cache_subnet_group(CacheSubnetGroupName=f"full{i}", **subnets)
            except ClientError as error:
                assert error.response["Error"]["Code"] == "ServiceUnavailable", error.response
                assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 503
                assert "is on a full disk" in error.response["Error"]["Message"]
                refused.append(f"full{i}")
                if len(refused) == 3:
                    break
        assert len(refused) == 3
        expect("CacheSubnetGroupNotFoundFault", ec.describe_cache_subnet_groups, CacheSubnetGroupName=refused[0])
        assert ec.describe_replication_groups(ReplicationGroupId="fine")["ReplicationGroups"][0]["Status"] == "available"
        assert events_of(ec, "full")
        healthy(ec, "fine")

        # Room again: the sync finishes, snapshots and changes work, nothing was lost.
        filler.unlink()
        wait_cluster(ec, "full-002", timeout=30)
        healthy(ec, "full")
        assert client.get("k:3999") is not None and client.get("writes") == "still taken"
        ec.create_snapshot(ReplicationGroupId="full", SnapshotName="with-room")
        wait_for(lambda: snapshot_status(ec, "with-room") == "available", timeout=30, interval=0.1, what="snapshot")
        ec.create_cache_subnet_group(CacheSubnetGroupName=refused[0], **subnets)
        healthy(ec, "fine")
    assert integrity(running.data_dir / "state.db") == "ok"


def test_a_full_data_disk_blocks_a_cluster_mode_replica_sync_and_says_so(tmp_path):
    with small_disk(tmp_path / "data", "48m") as data, server(tmp_path) as running:
        ec = running.client()
        ec.create_replication_group(ReplicationGroupId="fine", NumCacheClusters=1, **GROUP)
        ec.create_replication_group(ReplicationGroupId="sharded", NumNodeGroups=1, ReplicasPerNodeGroup=0,
                                    CacheParameterGroupName="default.valkey9.cluster.on", **GROUP)
        primary = wait_group(ec, "sharded")["NodeGroups"][0]["NodeGroupMembers"][0]["ReadEndpoint"]["Address"]
        client = engine(primary)
        pipe = client.pipeline(transaction=False)
        for i in range(4000):
            pipe.set(f"{{k}}:{i}", os.urandom(500).hex())
        pipe.execute()
        filler = fill(data, leave=1 << 20)
        ec.increase_replica_count(ReplicationGroupId="sharded", NewReplicaCount=1, ApplyImmediately=True)
        said = wait_event(ec, "sharded-0001-002", "cannot finish its full sync")
        assert "its primary sharded-0001-001 could not save the data a full sync sends" in said[0], said
        healthy(ec, "fine")
        filler.unlink()
        wait_group(ec, "sharded", timeout=30)
        assert cluster_status(ec, "sharded-0001-002") == "available"
        healthy(ec, "fine")


# ---------------------------------------------------------------------------- 4b. the store's disk turns read-only while running
@contextlib.contextmanager
def ext4_disk(image: Path, mount_point: Path, size_mb: int = 96) -> Iterator[str]:
    """An ext4 file system of ``size_mb`` on a loop device over ``image``, mounted on ``mount_point``
    with ``errors=remount-ro`` (what a disk error does to a running system's file system); yields
    the loop device's name. Unmounted and detached at the end."""
    with open(image, "wb") as out:
        out.truncate(size_mb << 20)
    device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True, capture_output=True,
                            text=True).stdout.strip()
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", device], check=True, capture_output=True)
        mount_point.mkdir(parents=True)
        mount(device, mount_point)
        yield device
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True)
        subprocess.run(["losetup", "-d", device], capture_output=True)


def mount(device: str, mount_point: Path) -> None:
    subprocess.run(["mount", "-o", "errors=remount-ro", device, str(mount_point)], check=True)


def turn_read_only(device: str) -> None:
    """ext4's own fault hook (``trigger_fs_error``): the file system records an error and, as mounted
    (``errors=remount-ro``), turns read-only at once under every file open on it."""
    Path(f"/sys/fs/ext4/{Path(device).name}/trigger_fs_error").write_text("cachefleet resource fault test\n")


def test_a_store_whose_disk_turns_read_only_while_running(tmp_path):
    subnets = {"CacheSubnetGroupDescription": "x", "SubnetIds": ["subnet-us-east-1a"]}
    with ext4_disk(tmp_path / "disk.img", tmp_path / "data") as device:
        running = Server(data_dir=tmp_path / "data", network=fresh_network(), port=free_port())
        try:
            running.start()
            ec = running.client()
            ec.create_replication_group(ReplicationGroupId="fine", NumCacheClusters=1, **GROUP)
            healthy(ec, "fine")
            ec.create_cache_subnet_group(CacheSubnetGroupName="before", **subnets)

            turn_read_only(device)
            with pytest.raises(OSError, match="Read-only"):
                (running.data_dir / "probe").write_text("x")  # the fault is real
            start = time.monotonic()
            expect("ServiceUnavailable", ec.create_cache_subnet_group, status=503, says="Nothing was changed",
                   CacheSubnetGroupName="after", **subnets)
            expect("ServiceUnavailable", ec.create_replication_group, status=503, says="is on a file system that is read-only",
                   ReplicationGroupId="second", NumCacheClusters=1, **GROUP)
            assert time.monotonic() - start < 5
            # What was recorded before is served.
            assert ec.describe_replication_groups(ReplicationGroupId="fine")["ReplicationGroups"][0]["Status"] == "available"
            assert ec.describe_cache_subnet_groups(CacheSubnetGroupName="before")["CacheSubnetGroups"]
            expect("CacheSubnetGroupNotFoundFault", ec.describe_cache_subnet_groups, CacheSubnetGroupName="after")
            assert any("fine created and available" in m for m in events_of(ec, "fine"))
            healthy(ec, "fine")  # the data plane is untouched
            # A node lost meanwhile waits for the store (the control plane records before it acts).
            os.kill(next(iter(engine_pids(running.data_dir).values())), signal.SIGKILL)
            wait_for(lambda: "the data directory cannot be written ([Errno 30] Read-only file system" in running.log(),
                     timeout=10, interval=0.1, what="the control plane to find the data disk read-only")
            assert "Traceback" not in running.log()  # the machine's fault, said as such: not a bug's traceback
            assert ec.describe_replication_groups(ReplicationGroupId="fine")["ReplicationGroups"]
            assert running.process is not None and running.process.poll() is None
        finally:
            code = running.stop()
            for pid in engine_pids(running.data_dir).values():
                os.kill(pid, signal.SIGKILL)  # this test's engines: their files are on the disk to be checked
        assert code == 0, running.log()[-3000:]

        # The disk checked and mounted again (as after a repair): the store is whole and takes changes.
        subprocess.run(["umount", str(running.data_dir)], check=True)
        checked = subprocess.run(["e2fsck", "-f", "-y", device], capture_output=True, text=True)
        assert checked.returncode in (0, 1), checked.stdout + checked.stderr  # 1: errors corrected
        mount(device, running.data_dir)
        assert integrity(running.data_dir / "state.db") == "ok"
        try:
            running.start()
            ec = running.client()
            assert ec.describe_cache_subnet_groups(CacheSubnetGroupName="before")["CacheSubnetGroups"]
            expect("CacheSubnetGroupNotFoundFault", ec.describe_cache_subnet_groups, CacheSubnetGroupName="after")
            healthy(ec, "fine")
            ec.create_cache_subnet_group(CacheSubnetGroupName="after", **subnets)
            ec.create_replication_group(ReplicationGroupId="second", NumCacheClusters=1, **GROUP)
            healthy(ec, "second")
        finally:
            running.down()
        assert integrity(running.data_dir / "state.db") == "ok"
