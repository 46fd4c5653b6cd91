"""Where snapshot files live and how their bytes move: written from a node's stream, copied,
exported to a bucket, and fed into a starting engine.

Layout (every directory 0700, every file 0600)::

    <data-dir>/snapshots/<region>/<snapshot>/<snapshot>-<shard>.rdb       a plain RDB per shard
                                            /<snapshot>-<shard>.rdb.enc   ... or AES-256-GCM frames
                                            /manifest.json[.enc]           what the record says of it
    <data-dir>/keys/<key id>.key                                            the key ring (KmsKeyId names)

A shard's file is written under a temporary name (``.<file>.part``) and renamed once whole and
verified, so a crash leaves no file under a snapshot's name; a restarted control plane removes
the temporary ones (``clean``). An encrypted snapshot's plain RDB never reaches a disk: it is
encrypted as the node streams it, and decrypted straight into the engine that loads it (a FIFO).

Buckets are an ``ObjectStore`` (providers/objects.py): S3 through boto3 with
``--s3-endpoint-url``, or directories under ``<data-dir>/buckets`` without one. This class also
answers the domain's ``SnapshotStorage`` (what an object holds; whether an engine loads it).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from cachefleet.domain.errors import InvalidParameterValue
from cachefleet.domain.snapshots import NodeSnapshot, ObjectFacts, RestoreSource, Snapshot
from cachefleet.engine import encryption, rdb
from cachefleet.engine.restore import StreamedSeed, place_rdb
from cachefleet.providers.local import Seed
from cachefleet.providers.objects import NoSuchBucket, NoSuchKey, ObjectStore, ObjectStoreError

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
COPY_CHUNK = 4 << 20
# Metadata an export writes beside each object (S3 keeps it lower case): what a restore from
# SnapshotArns needs to know without reading the object whole.
META_FORMAT = "cachefleet-rdb-format"
META_SLOTS = "cachefleet-slots"
META_KEY = "cachefleet-key-id"
META_SIZE = "cachefleet-rdb-size"


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class ShardFacts:
    """What a shard's stored file is: the RDB's facts and the bytes on disk."""

    rdb: rdb.RdbFacts
    stored_size: int


class ShardWriter:
    """Writes one shard's RDB as it streams in: a 0600 ``.part`` file (encrypted on the way when a
    key is given) that takes the shard file's name on ``commit`` only."""

    def __init__(self, path: Path, *, key: bytes | None, key_id: str | None) -> None:
        _private_dir(path.parent)
        self.path = path
        self.partial = path.with_name(f".{path.name}{PART_SUFFIX}")
        descriptor = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._file = os.fdopen(descriptor, "wb", buffering=0)
        self._encrypting = (
            encryption.EncryptingWriter(cast(BinaryIO, self._file), key=key, key_id=key_id or "")
            if key is not None else None
        )

    def write(self, data: memoryview) -> None:
        if self._encrypting is not None:
            self._encrypting.write(data)
        else:
            self._file.write(data)

    def commit(self) -> int:
        """Makes the file durable under its name; its size on disk."""
        if self._encrypting is not None:
            self._encrypting.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.partial, self.path)
        _fsync_dir(self.path.parent)
        return self.path.stat().st_size

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.partial.unlink()


class _Prefixed:
    """A reader whose first bytes were already read (to look at them): they come first again."""

    def __init__(self, prefix: bytes, reader: BinaryIO) -> None:
        self._prefix = prefix
        self._reader = reader

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size < 0:
                data, self._prefix = self._prefix + self._reader.read(), b""
                return data
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            if len(data) < size:
                data += self._reader.read(size - len(data))
            return data
        return self._reader.read(size)


class SnapshotFiles:
    """Snapshot files under the data dir, the key ring, and buckets; the domain's SnapshotStorage."""

    def __init__(self, data_dir: Path, objects: ObjectStore) -> None:
        self.root = _private_dir(data_dir / "snapshots")
        self.keyring = encryption.KeyRing(data_dir / "keys")
        self.objects = objects

    # ------------------------------------------------------------------ where
    def directory(self, region: str, name: str) -> Path:
        return self.root / region / name

    def path(self, snapshot: Snapshot, node: NodeSnapshot) -> Path:
        return self.directory(snapshot.region, snapshot.name) / node.file

    def source_path(self, region: str, source: RestoreSource) -> Path:
        assert source.snapshot_name is not None
        return self.directory(region, source.snapshot_name) / source.file

    def key(self, key_id: str | None) -> bytes | None:
        """The key ring's key of ``key_id`` (created on first use), or None for plain files."""
        return self.keyring.ensure(key_id) if key_id is not None else None

    def clean(self, region: str, name: str) -> None:
        """Removes what an interrupted write left in a snapshot's directory (``.part`` files)."""
        directory = self.directory(region, name)
        if directory.is_dir():
            for leftover in directory.glob(f".*{PART_SUFFIX}"):
                leftover.unlink(missing_ok=True)

    def remove(self, region: str, name: str) -> None:
        shutil.rmtree(self.directory(region, name), ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.root / region).rmdir()  # only when empty

    def writer(self, snapshot: Snapshot, node: NodeSnapshot) -> ShardWriter:
        _private_dir(self.directory(snapshot.region, snapshot.name).parent)
        return ShardWriter(self.path(snapshot, node), key=self.key(snapshot.encryption_key),
                           key_id=snapshot.encryption_key)

    def write_manifest(self, snapshot: Snapshot) -> None:
        """What the record says of the snapshot, beside its files (encrypted with them)."""
        document = {
            "name": snapshot.name, "region": snapshot.region, "engine": snapshot.engine,
            "engine_version": snapshot.engine_version, "cluster_enabled": snapshot.cluster_enabled,
            "source": snapshot.replication_group_id or snapshot.cache_cluster_id,
            "create_time": snapshot.create_time.isoformat(),
            "shards": [
                {"node_group_id": n.node_group_id, "file": n.file, "slots": n.slots, "size": n.size,
                 "rdb_format": n.rdb_format, "checksum": n.checksum}
                for n in snapshot.node_snapshots
            ],
        }
        data = json.dumps(document, indent=2).encode()
        directory = _private_dir(self.directory(snapshot.region, snapshot.name))
        key = self.key(snapshot.encryption_key)
        name = "manifest.json" + (".enc" if key is not None else "")
        temporary = directory / f".{name}{PART_SUFFIX}"
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            if key is not None:
                encryption.encrypt_stream(io.BytesIO(data), cast(BinaryIO, out), key=key,
                                          key_id=snapshot.encryption_key or "")
            else:
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, directory / name)

    # ------------------------------------------------------------------ copies and exports (blocking: run in a thread)
    def copy_shard(self, source: Snapshot, target: Snapshot, node: NodeSnapshot, copied: NodeSnapshot) -> ShardFacts:
        """One shard of CopySnapshot: a hard link when both files are alike (both plain, or the same
        key: files are never changed once written), else decrypted and encrypted again in one
        pass; the RDB is verified either way."""
        source_path, target_path = self.path(source, node), self.path(target, copied)
        _private_dir(target_path.parent)
        if source.encryption_key == target.encryption_key:
            facts = self._verify_stored(source_path, source.encryption_key)
            temporary = target_path.with_name(f".{target_path.name}{PART_SUFFIX}")
            temporary.unlink(missing_ok=True)
            try:
                os.link(source_path, temporary)
            except OSError:
                shutil.copyfile(source_path, temporary)
            os.chmod(temporary, 0o600)
            os.replace(temporary, target_path)
            return ShardFacts(facts, target_path.stat().st_size)
        writer = ShardWriter(target_path, key=self.key(target.encryption_key), key_id=target.encryption_key)
        try:
            verifier = rdb.StreamVerifier()

            def sink(chunk: bytes | memoryview) -> None:
                verifier.update(chunk)
                writer.write(memoryview(chunk))

            self._read_plain(source_path, source.encryption_key, sink)
            facts = verifier.finish()
            size = writer.commit()
        except BaseException:
            writer.abort()
            raise
        return ShardFacts(facts, size)

    def _read_plain(self, path: Path, key_id: str | None, sink: Callable[[bytes | memoryview], None]) -> None:
        with open(path, "rb") as reader:
            if key_id is None:
                while chunk := reader.read(COPY_CHUNK):
                    sink(chunk)
            else:
                encryption.decrypt_stream(reader, cast(BinaryIO, _Sink(sink)), keys=self.keyring)

    def _verify_stored(self, path: Path, key_id: str | None) -> rdb.RdbFacts:
        verifier = rdb.StreamVerifier()
        self._read_plain(path, key_id, verifier.update)
        return verifier.finish()

    def export_shard(self, snapshot: Snapshot, node: NodeSnapshot, bucket: str, key: str) -> None:
        """One shard's file as an object, with what a restore from its ARN needs to know."""
        metadata = {META_FORMAT: node.rdb_format, META_SIZE: str(node.size)}
        if node.slots:
            metadata[META_SLOTS] = node.slots
        if snapshot.encryption_key is not None:
            metadata[META_KEY] = snapshot.encryption_key
        self.objects.put_file(bucket, key, self.path(snapshot, node), metadata=metadata)

    # ------------------------------------------------------------------ seeds (a restore's engines start from them)
    def unreadable(self, region: str, source: RestoreSource) -> str:
        """Why ``source`` cannot be read, if that is known before an engine tries ("": it can)."""
        if source.snapshot_name is not None and not self.source_path(region, source).is_file():
            return f"{source.described} is missing from {self.directory(region, source.snapshot_name)}"
        if source.encryption_key is not None and not self.keyring.exists(source.encryption_key):
            return (f"{source.described} is encrypted with key {source.encryption_key!r}, which is not in "
                    f"{self.keyring.directory}")
        return ""

    def seed(self, region: str, source: RestoreSource) -> Seed:
        """How a starting engine gets ``source``: a plain snapshot file is hard-linked into its data
        dir; an encrypted one is decrypted, and an object streamed, straight into it (a FIFO)."""
        if source.snapshot_name is not None:
            path = self.source_path(region, source)
            if source.encryption_key is None:
                return _linked(path)

            def decrypted(writer: Any) -> None:
                with open(path, "rb") as reader:
                    encryption.decrypt_stream(reader, writer, keys=self.keyring)

            return lambda data_dir: StreamedSeed(data_dir, decrypted)

        def streamed(writer: Any) -> None:
            with self.objects.open_read(source.bucket, source.object_key) as reader:
                head = reader.read(len(encryption.MAGIC))
                prefixed = cast(BinaryIO, _Prefixed(head, reader))
                if head == encryption.MAGIC:
                    encryption.decrypt_stream(prefixed, writer, keys=self.keyring)
                    return
                while chunk := prefixed.read(COPY_CHUNK):
                    writer.write(chunk)

        return lambda data_dir: StreamedSeed(data_dir, streamed)

    # ------------------------------------------------------------------ SnapshotStorage (the domain asks)
    def loadable(self, rdb_format: str, engine: str, version: str) -> str | None:
        try:
            rdb.check_loadable(rdb.parse_header(rdb_format.encode()), engine, version)
        except rdb.RdbError as error:
            return str(error)
        return None

    def object_facts(self, bucket: str, key: str) -> ObjectFacts:
        try:
            info = self.objects.head(bucket, key)
            meta = {k.lower(): v for k, v in info.metadata.items()}
            if META_FORMAT in meta:
                return ObjectFacts(
                    size=int(meta.get(META_SIZE, info.size)), rdb_format=meta[META_FORMAT],
                    slots=meta.get(META_SLOTS, ""), encryption_key=meta.get(META_KEY),
                )
            head = self.objects.read_head(bucket, key, 64 << 10)
        except NoSuchBucket:
            raise InvalidParameterValue(f"The S3 bucket {bucket} does not exist.") from None
        except NoSuchKey:
            raise InvalidParameterValue(f"No object {key} in the S3 bucket {bucket} (SnapshotArns).") from None
        except ObjectStoreError as error:
            raise InvalidParameterValue(f"The RDB object s3://{bucket}/{key} cannot be read: {error}") from None
        try:
            header = rdb.parse_header(head)
        except rdb.RdbCorrupt as error:
            if head.startswith(encryption.MAGIC):
                raise InvalidParameterValue(
                    f"s3://{bucket}/{key} is a Cachefleet encrypted snapshot file without the metadata its export "
                    "wrote; export the snapshot again."
                ) from None
            raise InvalidParameterValue(f"s3://{bucket}/{key} is {error}.") from None
        return ObjectFacts(size=info.size, rdb_format=header.signature)

    def bucket_exists(self, bucket: str) -> bool:
        try:
            return self.objects.bucket_exists(bucket)
        except ObjectStoreError as error:
            raise InvalidParameterValue(f"The S3 bucket {bucket} cannot be reached: {error}") from None

    def object_exists(self, bucket: str, key: str) -> bool:
        try:
            return self.objects.exists(bucket, key)
        except NoSuchBucket:
            return False
        except ObjectStoreError as error:
            raise InvalidParameterValue(f"The S3 bucket {bucket} cannot be reached: {error}") from None


class _Sink:
    """A writer that hands what is written to a function."""

    def __init__(self, sink: Callable[[bytes | memoryview], None]) -> None:
        self._sink = sink

    def write(self, data: bytes) -> int:
        self._sink(data)
        return len(data)


@contextlib.contextmanager
def _placed(path: Path, data_dir: Path) -> Iterator[None]:
    place_rdb(path, data_dir)
    yield


def _linked(path: Path) -> Seed:
    return lambda data_dir: _placed(path, data_dir)
