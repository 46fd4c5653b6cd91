"""providers/objects.py: one contract, run against moto's S3 server (a real S3 API over HTTP,
driven by boto3) and against the local bucket directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cachefleet.providers.objects import (
    LocalObjectStore,
    NoSuchBucket,
    NoSuchKey,
    ObjectStoreError,
    ObjectStoreSettings,
    S3ObjectStore,
    open_store,
    parse_s3_arn,
)
from helpers import moto_s3_server

PART = 5 << 20  # S3's smallest part size


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """moto_server on a free port, stopped by pid at the end."""
    with moto_s3_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture(params=["s3", "local"])
def store(request, tmp_path, monkeypatch):
    if request.param == "local":
        return open_store(ObjectStoreSettings(), tmp_path / "data")
    endpoint = request.getfixturevalue("s3_endpoint")
    # The standard credential chain: here, the environment.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings = ObjectStoreSettings(endpoint_url=endpoint, multipart_threshold=PART, part_size=PART, max_concurrency=3)
    store = open_store(settings, tmp_path / "data")
    assert isinstance(store, S3ObjectStore)
    return store


def bucket_name(tmp_path: Path) -> str:
    return f"b-{abs(hash(tmp_path)) % 10**10}"


def test_put_get_list_delete(store, tmp_path):
    bucket = bucket_name(tmp_path)
    store.create_bucket(bucket)
    store.create_bucket(bucket)  # again: no error
    source = tmp_path / "in.rdb"
    data = os.urandom(100_000)
    source.write_bytes(data)
    info = store.put_file(bucket, "exports/snap-0001.rdb", source, metadata={"checksum": "abc"})
    assert info.size == len(data)
    store.put_file(bucket, "exports/snap-0002.rdb", source)
    store.put_file(bucket, "other.rdb", source)
    assert store.exists(bucket, "exports/snap-0001.rdb") and not store.exists(bucket, "exports/missing.rdb")
    assert [o.key for o in store.list(bucket, "exports/")] == ["exports/snap-0001.rdb", "exports/snap-0002.rdb"]
    assert len(store.list(bucket)) == 3
    out = tmp_path / "out" / "copy.rdb"
    assert store.get_file(bucket, "exports/snap-0001.rdb", out).size == len(data)
    assert out.read_bytes() == data and out.stat().st_mode & 0o777 == 0o600
    store.delete(bucket, "exports/snap-0001.rdb")
    store.delete(bucket, "exports/snap-0001.rdb")  # a missing key: no error
    assert [o.key for o in store.list(bucket, "exports/")] == ["exports/snap-0002.rdb"]
    with pytest.raises(NoSuchKey):
        store.get_file(bucket, "exports/snap-0001.rdb", tmp_path / "out" / "gone.rdb")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["copy.rdb"]  # no partial file


def test_missing_buckets_are_errors_not_created(store, tmp_path):
    source = tmp_path / "in.rdb"
    source.write_bytes(b"x")
    with pytest.raises(NoSuchBucket):
        store.put_file("no-such-bucket-here", "k.rdb", source)
    with pytest.raises(NoSuchBucket):
        store.get_file("no-such-bucket-here", "k.rdb", tmp_path / "o.rdb")
    with pytest.raises(NoSuchBucket):
        store.list("no-such-bucket-here")
    assert not (tmp_path / "o.rdb").exists()


def test_big_files_travel_in_parts(store, tmp_path):
    bucket = bucket_name(tmp_path)
    store.create_bucket(bucket)
    source = tmp_path / "big.rdb"
    data = os.urandom(3 * PART + 12345)
    source.write_bytes(data)
    info = store.put_file(bucket, "big.rdb", source)
    if isinstance(store, S3ObjectStore):
        assert info.etag.endswith("-4")  # a multipart upload's ETag names its part count
    out = tmp_path / "big-out.rdb"
    store.get_file(bucket, "big.rdb", out)
    assert out.read_bytes() == data


def test_local_buckets_are_private_directories_under_the_data_dir(tmp_path):
    store = open_store(ObjectStoreSettings(), tmp_path / "data")
    assert isinstance(store, LocalObjectStore)
    store.create_bucket("my-exports")
    source = tmp_path / "in.rdb"
    source.write_bytes(b"data")
    store.put_file("my-exports", "a/b/c.rdb", source)
    path = tmp_path / "data" / "buckets" / "my-exports" / "a" / "b" / "c.rdb"
    assert path.read_bytes() == b"data" and path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data" / "buckets" / "my-exports").stat().st_mode & 0o777 == 0o700
    for bad in ("../escape.rdb", "/abs.rdb", "a//b", ".hidden", "a/./b", ""):
        with pytest.raises(ObjectStoreError, match="invalid object key"):
            store.put_file("my-exports", bad, source)
    for bad in ("..", "UPPER", "a", "x/y"):
        with pytest.raises(ObjectStoreError, match="invalid bucket"):
            store.create_bucket(bad)
    store.delete("my-exports", "a/b/c.rdb")
    assert list((tmp_path / "data" / "buckets" / "my-exports").iterdir()) == []


def test_s3_arns():
    assert parse_s3_arn("arn:aws:s3:::my-bucket/exports/snap-0001.rdb") == ("my-bucket", "exports/snap-0001.rdb")
    assert parse_s3_arn("arn:aws-cn:s3:::b/k.rdb") == ("b", "k.rdb")
    for bad in ("arn:aws:s3:::bucket-only", "s3://b/k", "arn:aws:ec2:::b/k"):
        with pytest.raises(ValueError):
            parse_s3_arn(bad)
