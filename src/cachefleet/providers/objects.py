"""Object storage for exported snapshots and for seeding groups from RDB files (SnapshotArns).

Two implementations of one contract (``ObjectStore``):

- ``S3ObjectStore``: a real S3 client (boto3) against any S3-compatible endpoint — AWS S3,
  MinIO, Ceph, moto's server — given by ``ObjectStoreSettings.endpoint_url`` (what
  ``cachefleet up --s3-endpoint-url`` will set) with the standard AWS credential chain
  (environment, shared config and credentials files, instance roles). Big files go up and
  down in parallel multipart transfers.
- ``LocalObjectStore``: without an endpoint, bucket ``B`` is the directory
  ``<data-dir>/buckets/B/`` and key ``a/b.rdb`` the file ``a/b.rdb`` under it (0700 directories,
  0600 files). Create a bucket with ``create_bucket`` or ``mkdir``.

The contract, for both: ``put_file`` into a bucket that does not exist raises NoSuchBucket
(buckets are the user's, never created implicitly); ``get_file`` writes the destination
atomically (a temporary file renamed once complete, 0600) and raises NoSuchKey for a missing
object; ``open_read`` streams an object (a restore feeds it straight into a starting engine:
no copy on disk); ``read_head`` returns its first bytes (an RDB's header, checked before a
restore is accepted); ``delete`` of a missing key succeeds. The calls block: the control plane
runs the long ones in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

MULTIPART_THRESHOLD = 64 << 20
PART_SIZE = 64 << 20
MAX_CONCURRENCY = 4
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_S3_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:s3:::(?P<bucket>[^/]+)/(?P<key>.+)$")


class ObjectStoreError(Exception):
    """An object storage call failed; the message names the bucket and key."""


class NoSuchBucket(ObjectStoreError):
    pass


class NoSuchKey(ObjectStoreError):
    pass


class AccessDenied(ObjectStoreError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectStoreSettings:
    """How to reach object storage; no endpoint means buckets are directories of the data dir."""

    endpoint_url: str | None = None
    region_name: str | None = None
    multipart_threshold: int = MULTIPART_THRESHOLD
    part_size: int = PART_SIZE
    max_concurrency: int = MAX_CONCURRENCY


class ObjectStore(Protocol):
    def put_file(self, bucket: str, key: str, path: Path, *, metadata: dict[str, str] | None = None) -> ObjectInfo: ...

    def get_file(self, bucket: str, key: str, path: Path) -> ObjectInfo: ...

    def head(self, bucket: str, key: str) -> ObjectInfo: ...

    def read_head(self, bucket: str, key: str, size: int) -> bytes: ...

    def open_read(self, bucket: str, key: str) -> contextlib.AbstractContextManager[BinaryIO]: ...

    def bucket_exists(self, bucket: str) -> bool: ...

    def exists(self, bucket: str, key: str) -> bool: ...

    def delete(self, bucket: str, key: str) -> None: ...

    def list(self, bucket: str, prefix: str = "") -> list[ObjectInfo]: ...

    def create_bucket(self, bucket: str) -> None: ...


def parse_s3_arn(arn: str) -> tuple[str, str]:
    """``arn:aws:s3:::bucket/path/key.rdb`` -> (bucket, key); ValueError if it is not an object ARN."""
    match = _S3_ARN.match(arn)
    if match is None:
        raise ValueError(f"{arn!r} is not an S3 object ARN (arn:aws:s3:::bucket/key)")
    return match.group("bucket"), match.group("key")


def open_store(settings: ObjectStoreSettings, data_dir: Path) -> ObjectStore:
    if settings.endpoint_url:
        return S3ObjectStore(settings)
    return LocalObjectStore(data_dir / "buckets")


@contextlib.contextmanager
def _atomic_destination(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` that becomes ``path`` (0600) if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(descriptor)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


# ---------------------------------------------------------------------------- S3


class _Readable:
    """An S3 object body read like a file (``read``), its network errors as ObjectStoreError."""

    def __init__(self, body: Any, where: str) -> None:
        self._body = body
        self._where = where

    def read(self, size: int = -1) -> bytes:
        from botocore.exceptions import BotoCoreError

        try:
            data: bytes = self._body.read(size if size >= 0 else None)
        except (BotoCoreError, OSError) as error:
            raise ObjectStoreError(f"{self._where}: reading failed: {error}") from error
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class S3ObjectStore:
    """ObjectStore on an S3 API, through boto3 (credentials from the standard chain)."""

    def __init__(self, settings: ObjectStoreSettings, *, client: Any = None) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.settings = settings
        self._client = client or boto3.session.Session().client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region_name or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            # Path-style requests work with every S3-compatible server (MinIO, Ceph, moto) on any host name.
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}),
        )
        self._transfer = TransferConfig(
            multipart_threshold=settings.multipart_threshold,
            multipart_chunksize=settings.part_size,
            max_concurrency=settings.max_concurrency,
            use_threads=settings.max_concurrency > 1,
        )

    def _error(self, error: Exception, bucket: str, key: str = "") -> ObjectStoreError:
        from botocore.exceptions import ClientError

        where = f"s3://{bucket}/{key}" if key else f"bucket {bucket}"
        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return NoSuchBucket(f"{where}: the bucket does not exist")
            if code in ("NoSuchKey", "NotFound", "404") or status == 404:
                return NoSuchKey(f"{where}: no such object")
            if code in ("AccessDenied", "403", "Forbidden") or status == 403:
                return AccessDenied(f"{where}: access denied")
            return ObjectStoreError(f"{where}: {code or status}: {error}")
        return ObjectStoreError(f"{where}: {error}")

    def _bucket_exists(self, bucket: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.head_bucket(Bucket=bucket)
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise self._error(error, bucket) from error
        except BotoCoreError as error:
            raise self._error(error, bucket) from error
        return True

    def bucket_exists(self, bucket: str) -> bool:
        return self._bucket_exists(bucket)

    def read_head(self, bucket: str, key: str, size: int) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        self.head(bucket, key)  # NoSuchBucket / NoSuchKey as head says them
        try:
            reply = self._client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{max(size, 1) - 1}")
            data: bytes = reply["Body"].read(size)
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, bucket, key) from error
        return data

    @contextlib.contextmanager
    def open_read(self, bucket: str, key: str) -> Iterator[BinaryIO]:
        from botocore.exceptions import BotoCoreError, ClientError

        self.head(bucket, key)
        try:
            body = self._client.get_object(Bucket=bucket, Key=key)["Body"]
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, bucket, key) from error
        try:
            yield cast(BinaryIO, _Readable(body, f"s3://{bucket}/{key}"))
        finally:
            body.close()

    def create_bucket(self, bucket: str) -> None:
        from botocore.exceptions import ClientError

        region = self._client.meta.region_name
        options: dict[str, Any] = {}
        if region and region != "us-east-1":
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._client.create_bucket(Bucket=bucket, **options)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._error(error, bucket) from error

    def put_file(self, bucket: str, key: str, path: Path, *, metadata: dict[str, str] | None = None) -> ObjectInfo:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.upload_file(
                str(path), bucket, key, ExtraArgs={"Metadata": dict(metadata or {})}, Config=self._transfer
            )
        except S3UploadFailedError as error:
            if "NoSuchBucket" in str(error):
                raise NoSuchBucket(f"s3://{bucket}/{key}: the bucket does not exist") from error
            if "AccessDenied" in str(error):
                raise AccessDenied(f"s3://{bucket}/{key}: access denied") from error
            raise ObjectStoreError(f"s3://{bucket}/{key}: {error}") from error
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, bucket, key) from error
        return self.head(bucket, key)

    def get_file(self, bucket: str, key: str, path: Path) -> ObjectInfo:
        from botocore.exceptions import BotoCoreError, ClientError

        info = self.head(bucket, key)
        try:
            with _atomic_destination(path) as temporary:
                self._client.download_file(bucket, key, str(temporary), Config=self._transfer)
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, bucket, key) from error
        return info

    def head(self, bucket: str, key: str) -> ObjectInfo:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            reply = self._client.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            failure = self._error(error, bucket, key)
            if isinstance(failure, NoSuchKey) and not self._bucket_exists(bucket):
                failure = NoSuchBucket(f"s3://{bucket}/{key}: the bucket does not exist")
            raise failure from error
        except BotoCoreError as error:
            raise self._error(error, bucket, key) from error
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=int(reply["ContentLength"]),
            etag=str(reply.get("ETag", "")).strip('"'),
            metadata=dict(reply.get("Metadata") or {}),
        )

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.head(bucket, key)
        except NoSuchKey:
            return False
        return True

    def delete(self, bucket: str, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.delete_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, bucket, key) from error

    def list(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        from botocore.exceptions import BotoCoreError, ClientError

        found: list[ObjectInfo] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    found.append(
                        ObjectInfo(bucket=bucket, key=item["Key"], size=int(item["Size"]), etag=str(item.get("ETag", "")).strip('"'))
                    )
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, bucket) from error
        return found


# ---------------------------------------------------------------------------- local


class LocalObjectStore:
    """ObjectStore on a directory: one subdirectory per bucket, one file per key."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _bucket(self, bucket: str) -> Path:
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise ObjectStoreError(f"invalid bucket name {bucket!r}: 3-63 lowercase letters, digits, dots and hyphens")
        return self.root / bucket

    def _path(self, bucket: str, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in key:
            raise ObjectStoreError(f"invalid object key {key!r} for the local object store")
        if any(p.startswith(".") for p in parts):
            # Names starting with a dot are our temporary files.
            raise ObjectStoreError(f"invalid object key {key!r}: no path segment may start with '.'")
        return self._bucket(bucket).joinpath(*parts)

    def _existing_bucket(self, bucket: str) -> Path:
        directory = self._bucket(bucket)
        if not directory.is_dir():
            raise NoSuchBucket(f"bucket {bucket}: the bucket does not exist (a directory {directory})")
        return directory

    def create_bucket(self, bucket: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._bucket(bucket).mkdir(exist_ok=True, mode=0o700)

    def put_file(self, bucket: str, key: str, path: Path, *, metadata: dict[str, str] | None = None) -> ObjectInfo:
        self._existing_bucket(bucket)
        destination = self._path(bucket, key)
        with _atomic_destination(destination) as temporary, open(path, "rb") as reader, open(temporary, "wb") as writer:
            while chunk := reader.read(8 << 20):
                writer.write(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        return self.head(bucket, key)

    def get_file(self, bucket: str, key: str, path: Path) -> ObjectInfo:
        info = self.head(bucket, key)
        with _atomic_destination(path) as temporary, open(self._path(bucket, key), "rb") as reader, open(temporary, "wb") as writer:
            while chunk := reader.read(8 << 20):
                writer.write(chunk)
        return info

    def head(self, bucket: str, key: str) -> ObjectInfo:
        self._existing_bucket(bucket)
        path = self._path(bucket, key)
        try:
            size = path.stat().st_size
        except (FileNotFoundError, NotADirectoryError) as error:
            raise NoSuchKey(f"s3://{bucket}/{key}: no such object") from error
        if not path.is_file():
            raise NoSuchKey(f"s3://{bucket}/{key}: no such object")
        return ObjectInfo(bucket=bucket, key=key, size=size)

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.head(bucket, key)
        except NoSuchKey:
            return False
        return True

    def bucket_exists(self, bucket: str) -> bool:
        return self._bucket(bucket).is_dir()

    def read_head(self, bucket: str, key: str, size: int) -> bytes:
        self.head(bucket, key)
        with open(self._path(bucket, key), "rb") as handle:
            return handle.read(size)

    @contextlib.contextmanager
    def open_read(self, bucket: str, key: str) -> Iterator[BinaryIO]:
        self.head(bucket, key)
        with open(self._path(bucket, key), "rb") as handle:
            yield handle

    def delete(self, bucket: str, key: str) -> None:
        self._existing_bucket(bucket)
        path = self._path(bucket, key)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            path.unlink()
        # Empty "directories" left by the key's prefix go too, as they do not exist in S3.
        parent = path.parent
        while parent != self._bucket(bucket):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def list(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        directory = self._existing_bucket(bucket)
        found: list[ObjectInfo] = []
        for current, directories, files in os.walk(directory):
            directories[:] = [d for d in directories if not d.startswith(".")]
            for name in files:
                if name.startswith("."):
                    continue
                path = Path(current) / name
                key = path.relative_to(directory).as_posix()
                if key.startswith(prefix):
                    found.append(ObjectInfo(bucket=bucket, key=key, size=path.stat().st_size))
        return sorted(found, key=lambda info: info.key)
