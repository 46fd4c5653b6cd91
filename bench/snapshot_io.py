"""Snapshot and restore I/O: Cachefleet's engine-level pieces against the bare engine, side by side.

Data: N keys (``key:%012d``, the names redis-benchmark -r uses) with random 1 KB values,
Valkey 8.1 nodes configured as Cachefleet renders them. Rounds interleave both sides.

1. Snapshot: a bare ``BGSAVE`` (until INFO says it finished) vs BGSAVE + copy out of the
   data dir with the CRC-64 verified in the same pass, and vs BGSAVE + AES-256-GCM encrypted
   write (checksum verified in the same pass, the plain RDB removed); and both again with
   snapshot.follow_bgsave, which copies or encrypts the file while the engine writes it; a
   plain snapshot as a hard link of the saved file; and an encrypted one streamed over an
   rdb-only diskless SYNC (snapshot.stream_rdb: the node writes no file). MB/s of RDB bytes.
   Target (issue 10): >= 0.9x.
2. Restore into the same shape: the engine loading an RDB already in its dir at start-up vs
   place_rdb + start, vs decrypting the encrypted snapshot into the dir + start, and vs
   decrypting it straight into the starting engine (restore.StreamedSeed, a FIFO).
   Target: >= 0.9x.
3. Restore into another shard count, 3 -> 2: three shard RDBs (keys split by slot as a
   3-shard group saves them) into a fresh 2-shard cluster: engine/restore.py (temporary
   engines + move_all, and with plan_seeds: the two new shards load the outer RDBs at start-up
   and only the middle one's keys move) vs ``valkey-cli --cluster import`` of each source.
   Target: >= 2x keys/s.
4. Memory: the primary's (and its fork's) PSS while a replica runs BGSAVE vs while the
   primary itself does, both under a redis-benchmark SET load on existing keys.

Usage: python bench/snapshot_io.py [--keys 1000000] [--rounds 3] [--parts 1234]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from common import machine  # noqa: E402

from cachefleet.domain.slots import even  # noqa: E402
from cachefleet.engine import encryption, rdb  # noqa: E402
from cachefleet.engine.access import NodeAccess  # noqa: E402
from cachefleet.engine.admin import AdminClient  # noqa: E402
from cachefleet.engine.keyslot import key_slot  # noqa: E402
from cachefleet.engine.restore import RestoreTarget, StreamedSeed, move_all, plan_seeds  # noqa: E402
from cachefleet.engine.snapshot import diskless, follow_bgsave, stream_rdb  # noqa: E402
from enginekit import Engine, EngineSet, installed  # noqa: E402

VALUE = 1024


def key(n: int) -> bytes:
    return b"key:%012d" % n


def load(cli: Path, engine: Engine, numbers: list[int]) -> None:
    """Random 1 KB values through valkey-cli --pipe, in slices so the payload stays small."""
    for start in range(0, len(numbers), 100_000):
        payload = b"".join(
            b"*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$%d\r\n%s\r\n" % (key(n), VALUE, os.urandom(VALUE))
            for n in numbers[start : start + 100_000]
        )
        subprocess.run([str(cli), "-h", engine.address, "-p", str(engine.port), "--pipe"], input=payload,
                       capture_output=True, check=True)


def bgsave(engine: Engine) -> float:
    """Seconds from BGSAVE until INFO shows it finished (polled every 5 ms)."""
    client = engine.client()
    saves = client.info("persistence")["rdb_saves"]
    started = time.perf_counter()
    client.bgsave()
    while True:
        info = client.info("persistence")
        if not info["rdb_bgsave_in_progress"] and info["rdb_saves"] > saves:
            break
        time.sleep(0.005)
    assert info["rdb_last_bgsave_status"] == "ok"
    return time.perf_counter() - started


def median(values: list[float]) -> float:
    return statistics.median(values)


async def streamed(node: Engine, destination: Path, keyring: encryption.KeyRing | None) -> int:
    """BGSAVE followed as it is written into ``destination`` (encrypted with a key ring), durably; RDB bytes."""
    destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = destination.with_name("." + destination.name)
    admin = AdminClient(node.address, node.port, timeout=30)
    try:
        with open(temporary, "wb", buffering=0) as out:
            writer: encryption.EncryptingWriter | None = None
            if keyring is not None:
                writer = encryption.EncryptingWriter(out, key=keyring.get(), key_id=keyring.DEFAULT_KEY_ID)
            facts = await follow_bgsave(admin, node.directory / "data", writer.write if writer else out.write)
            if writer is not None:
                writer.close()
            os.fsync(out.fileno())
        os.replace(temporary, destination)
    finally:
        await admin.close()
    return facts.size


async def synced(node: Engine, destination: Path, keyring: encryption.KeyRing) -> int:
    """The node's RDB over an rdb-only diskless SYNC, encrypted into ``destination`` durably; RDB bytes."""
    destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = destination.with_name("." + destination.name)
    admin = AdminClient(node.address, node.port, timeout=30)
    try:
        with open(temporary, "wb", buffering=0) as out:
            writer = encryption.EncryptingWriter(out, key=keyring.get(), key_id=keyring.DEFAULT_KEY_ID)
            async with diskless(admin):
                facts = await stream_rdb(NodeAccess(node.address, node.port), writer.write)
            writer.close()
            os.fsync(out.fileno())
        os.replace(temporary, destination)
    finally:
        await admin.close()
    return facts.size


def part_snapshot(engines: EngineSet, node: Engine, rounds: int, keyring: encryption.KeyRing) -> None:
    print("\n1. Snapshot (BGSAVE of the node, then the snapshot file)")
    out = engines.root / "snapshots"
    bare, plain, sealed, streamed_plain, streamed_sealed, linked, synced_sealed = [], [], [], [], [], [], []
    size = 0
    for _ in range(rounds):
        seconds = bgsave(node)
        size = node.rdb.stat().st_size
        bare.append(size / seconds)

        started = time.perf_counter()
        bgsave(node)
        facts = rdb.copy_verified(node.rdb, out / "plain" / "0001.rdb")
        plain.append(facts.size / (time.perf_counter() - started))

        started = time.perf_counter()
        bgsave(node)
        verifier = rdb.StreamVerifier()
        sealed_facts = encryption.encrypt_file(node.rdb, out / "sealed" / "0001.rdb.enc", keyring, observe=verifier.update)
        verifier.finish()
        node.rdb.unlink()  # the plain RDB does not outlive the snapshot step
        sealed.append(sealed_facts.plaintext_size / (time.perf_counter() - started))
        started = time.perf_counter()
        bgsave(node)
        facts = rdb.link_verified(node.rdb, out / "linked" / "0001.rdb")
        linked.append(facts.size / (time.perf_counter() - started))

        started = time.perf_counter()
        written = asyncio.run(synced(node, out / "synced" / "0001.rdb.enc", keyring))
        synced_sealed.append(written / (time.perf_counter() - started))

        started = time.perf_counter()
        written = asyncio.run(streamed(node, out / "streamed" / "0001.rdb", None))
        streamed_plain.append(written / (time.perf_counter() - started))

        started = time.perf_counter()
        written = asyncio.run(streamed(node, out / "streamed" / "0001.rdb.enc", keyring))
        streamed_sealed.append(written / (time.perf_counter() - started))
    print(f"   RDB {size / 1e6:,.0f} MB; medians of {rounds} interleaved rounds")
    print(f"   bare BGSAVE:                         {median(bare) / 1e6:7.1f} MB/s")
    print(f"   BGSAVE + verified copy out:          {median(plain) / 1e6:7.1f} MB/s  ({median(plain) / median(bare):.2f}x)")
    print(f"   BGSAVE + encrypted write (verified): {median(sealed) / 1e6:7.1f} MB/s  ({median(sealed) / median(bare):.2f}x)")
    print(f"   BGSAVE + hard link (verified):       {median(linked) / 1e6:7.1f} MB/s  ({median(linked) / median(bare):.2f}x)")
    print("   rdb-only diskless SYNC + encrypted write (verified, no file on the node):")
    print(f"                                        {median(synced_sealed) / 1e6:7.1f} MB/s  "
          f"({median(synced_sealed) / median(bare):.2f}x)")
    print("   follow_bgsave (copied while the engine writes it):")
    print(f"     plain copy (verified):             {median(streamed_plain) / 1e6:7.1f} MB/s  "
          f"({median(streamed_plain) / median(bare):.2f}x)")
    print(f"     encrypted (verified):              {median(streamed_sealed) / 1e6:7.1f} MB/s  "
          f"({median(streamed_sealed) / median(bare):.2f}x)")


def part_same_shape(engines: EngineSet, binary, snapshot: Path, sealed: Path, rounds: int,
                    keyring: encryption.KeyRing, keys: int) -> None:
    print("\n2. Restore into the same shape (one node, start-up to serving)")
    size = snapshot.stat().st_size
    bare, placed, decrypted, fifo = [], [], [], []
    for _ in range(rounds):
        # One start, two clocks: the engine alone (spawn to serving, its RDB already in its
        # dir) and the whole restore step (place_rdb's hard link, config, spawn, serving).
        started = time.perf_counter()
        engine = engines.start(binary, rdb=snapshot)
        bare.append(size / (engine.ready - engine.launched))
        placed.append(size / (engine.ready - started))
        assert engine.client().dbsize() == keys
        engine.stop()

        # Encrypted snapshot: decrypted straight into the node's data dir, its RDB checksum
        # verified in the same pass, then the start.
        directory = engines.root / f"restore-{time.monotonic_ns()}"
        started = time.perf_counter()
        verifier = rdb.StreamVerifier()
        encryption.decrypt_file(sealed, directory / "dump.rdb", keyring, observe=verifier.update)
        verifier.finish()
        engine = engines.start(binary, rdb=directory / "dump.rdb")
        decrypted.append(size / (engine.ready - started))
        assert engine.client().dbsize() == keys
        engine.stop()
        shutil.rmtree(directory)

        # ... or streamed into the starting engine through a FIFO (no plain file at all).
        def seed(data_dir: Path) -> StreamedSeed:
            def produce(writer) -> None:
                with open(sealed, "rb") as reader:
                    encryption.decrypt_stream(reader, writer, keys=keyring)

            return StreamedSeed(data_dir, produce)

        started = time.perf_counter()
        engine = engines.start(binary, seed=seed)
        fifo.append(size / (engine.ready - started))
        assert engine.client().dbsize() == keys
        engine.stop()
    print(f"   engine loading its RDB at start-up:  {median(bare) / 1e6:7.1f} MB/s")
    print(f"   place_rdb + start:                   {median(placed) / 1e6:7.1f} MB/s  ({median(placed) / median(bare):.2f}x)")
    print(f"   decrypt into the dir + start:        {median(decrypted) / 1e6:7.1f} MB/s  ({median(decrypted) / median(bare):.2f}x)")
    print(f"   decrypt streamed into the start:     {median(fifo) / 1e6:7.1f} MB/s  ({median(fifo) / median(bare):.2f}x)")


async def _move(sources: list[Engine], nodes: list[Engine]) -> int:
    accesses = [NodeAccess(s.address, s.port) for s in sources]
    targets = [RestoreTarget(n.address, n.port, slots=frozenset(s)) for n, s in zip(nodes, even(len(nodes)), strict=True)]
    results = await move_all(accesses, targets)
    return sum(r.keys for r in results)


def seeded_cluster(engines: EngineSet, binary, shard_rdbs: list[Path], shards: int) -> tuple[list[Engine], list[Engine]]:
    """A new cluster whose shards start from the RDBs plan_seeds picks; (nodes, temporary sources)."""
    source_slots = [frozenset(s) for s in even(len(shard_rdbs))]
    target_slots = [frozenset(s) for s in even(shards)]
    plan = plan_seeds(source_slots, target_slots, sizes=[p.stat().st_size for p in shard_rdbs])
    nodes = [engines.start(binary, cluster=True, rdb=shard_rdbs[plan[i]] if i in plan else None) for i in range(shards)]
    for node, slots in zip(nodes, target_slots, strict=True):
        client = node.client()
        claimed = {s for r in client.execute_command("CLUSTER", "SLOTS") for s in range(r[0], r[1] + 1)}
        missing = sorted(slots - claimed)
        ranges, start = [], None
        for index, slot in enumerate(missing):
            if start is None:
                start = slot
            if index + 1 == len(missing) or missing[index + 1] != slot + 1:
                ranges += [start, slot]
                start = None
        if ranges:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", *ranges)
    for node in nodes[1:]:
        nodes[0].client().execute_command("CLUSTER", "MEET", node.address, node.port)
    while not all(b"cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO") for n in nodes):
        time.sleep(0.01)
    seeded = set(plan.values())
    sources = [engines.start(binary, rdb=p) for i, p in enumerate(shard_rdbs) if i not in seeded]
    return nodes, sources


def part_reshape(engines: EngineSet, binary, cli: Path, shard_rdbs: list[Path], keys: int, rounds: int) -> None:
    print("\n3. Restore 3 shard RDBs into 2 shards")
    ours, ours_seeded, theirs, theirs_parallel = [], [], [], []
    ours_total, theirs_total = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        sources = [engines.start(binary, rdb=p) for p in shard_rdbs]
        nodes = engines.cluster(binary, 2)
        moving = time.perf_counter()
        assert asyncio.run(_move(sources, nodes)) == keys
        ours.append(keys / (time.perf_counter() - moving))
        ours_total.append(time.perf_counter() - started)
        assert sum(n.client().dbsize() for n in nodes) == keys
        for engine in sources + nodes:
            engine.stop()

        started = time.perf_counter()
        nodes, sources = seeded_cluster(engines, binary, shard_rdbs, 2)
        asyncio.run(_move(sources, nodes))
        ours_seeded.append(time.perf_counter() - started)
        assert sum(n.client().dbsize() for n in nodes) == keys
        for engine in sources + nodes:
            engine.stop()

        for parallel in (False, True):
            started = time.perf_counter()
            sources = [engines.start(binary, rdb=p) for p in shard_rdbs]
            nodes = engines.cluster(binary, 2)
            moving = time.perf_counter()
            commands = [[str(cli), "--cluster", "import", f"{nodes[0].address}:{nodes[0].port}",
                         "--cluster-from", f"{s.address}:{s.port}", "--cluster-replace"] for s in sources]
            if parallel:
                for process in [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands]:
                    assert process.wait() == 0
            else:
                for command in commands:
                    subprocess.run(command, capture_output=True, check=True)
            (theirs_parallel if parallel else theirs).append(keys / (time.perf_counter() - moving))
            if not parallel:
                theirs_total.append(time.perf_counter() - started)
            assert sum(n.client().dbsize() for n in nodes) == keys
            for engine in sources + nodes:
                engine.stop()
    print(f"   {keys:,} keys; medians of {rounds} interleaved rounds; keys/s of the move itself")
    print(f"   engine/restore.py move_all (3 sources at once):   {median(ours):9,.0f} keys/s  "
          f"({median(ours) / median(theirs):.2f}x sequential valkey-cli, {median(ours) / median(theirs_parallel):.2f}x parallel)")
    print(f"   valkey-cli --cluster import, one source at a time: {median(theirs):9,.0f} keys/s")
    print(f"   valkey-cli --cluster import, 3 at once:            {median(theirs_parallel):9,.0f} keys/s")
    print("   whole restore (start engines, load, move), seconds:")
    print(f"   restore.py {median(ours_total):.1f} s; restore.py with plan_seeds {median(ours_seeded):.1f} s "
          f"({keys / median(ours_seeded):,.0f} keys/s); valkey-cli {median(theirs_total):.1f} s "
          f"-> {median(theirs_total) / median(ours_seeded):.2f}x with seeds, {median(theirs_total) / median(ours_total):.2f}x without")


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def group_pss_kb(leader: int) -> int:
    """PSS of a process and its children (a fork for BGSAVE), so copy-on-write shows."""
    total = pss_kb(leader)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != leader:
            try:
                fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == leader:  # parent pid
                total += pss_kb(int(entry.name))
    return total


def sample(pid: int, into: list[int], done: threading.Event) -> None:
    while not done.is_set():
        into.append(group_pss_kb(pid))
        time.sleep(0.05)


def part_memory(engines: EngineSet, binary, primary: Engine, keys: int) -> None:
    print("\n4. Primary memory during a snapshot, under a SET load on existing keys")
    replica = engines.start(binary)
    replica.client().execute_command("REPLICAOF", primary.address, primary.port)
    while True:
        info = replica.client().info("replication")
        if info.get("master_link_status") == "up" and replica.client().dbsize() == keys:
            break
        time.sleep(0.1)
    benchmark = shutil.which("redis-benchmark")
    for where, saver in (("replica", replica), ("primary", primary)):
        load = None
        if benchmark:
            load = subprocess.Popen([benchmark, "-h", primary.address, "-p", str(primary.port), "-t", "set", "-d", str(VALUE),
                                     "-r", str(keys), "-n", "100000000", "-c", "2", "-P", "4", "-q"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        before = group_pss_kb(primary.process.pid)
        peak = [before]
        done = threading.Event()
        sampler = threading.Thread(target=sample, args=(primary.process.pid, peak, done))
        sampler.start()
        seconds = bgsave(saver)
        done.set()
        sampler.join()
        if load is not None:
            load.kill()
            load.wait()
        print(f"   BGSAVE on the {where}: {seconds:.1f} s; primary (+ fork) PSS {before / 1024:,.0f} MB before, "
              f"peak {max(peak) / 1024:,.0f} MB (+{(max(peak) - before) / 1024:,.0f} MB)")
    replica.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts", default="1234")
    args = parser.parse_args()
    binary = installed("valkey", "8.")
    cli = binary.cli
    assert cli is not None
    print(f"snapshot I/O: {args.keys:,} keys x {VALUE} B; {binary.release.engine} {binary.release.version}; {machine()}")
    engines = EngineSet(root=Path(tempfile.mkdtemp(prefix="cachefleet-bench-snap-")))
    try:
        keyring = encryption.KeyRing(engines.root / "keys")
        keyring.create()
        node = engines.start(binary)
        load(cli, node, list(range(args.keys)))
        assert node.client().dbsize() == args.keys
        if "1" in args.parts:
            part_snapshot(engines, node, args.rounds, keyring)
        bgsave(node)
        snapshot = engines.root / "snapshot.rdb"
        rdb.copy_verified(node.rdb, snapshot)
        sealed = engines.root / "snapshot.rdb.enc"
        encryption.encrypt_file(snapshot, sealed, keyring)
        if "2" in args.parts:
            part_same_shape(engines, binary, snapshot, sealed, args.rounds, keyring, args.keys)
        if "4" in args.parts:
            part_memory(engines, binary, node, args.keys)
        node.stop()
        if "3" in args.parts:
            shard_rdbs = []
            for index, slots in enumerate(even(3)):
                shard = engines.start(binary)
                load(cli, shard, [n for n in range(args.keys) if key_slot(key(n)) in slots])
                bgsave(shard)
                path = engines.root / f"shard-{index + 1}.rdb"
                rdb.copy_verified(shard.rdb, path)
                shard_rdbs.append(path)
                shard.stop()
            part_reshape(engines, binary, cli, shard_rdbs, args.keys, max(1, args.rounds - 1))
    finally:
        engines.close()


if __name__ == "__main__":
    main()
