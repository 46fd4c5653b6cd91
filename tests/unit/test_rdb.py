"""RDB headers, checksums, truncation and corruption, and the loadability rules (pure: files made here)."""

from __future__ import annotations

import struct

import pytest

from cachefleet.engine import rdb
from cachefleet.engine.rdb import RdbCorrupt, RdbHeader, RdbIncompatible


def make_rdb(signature: bytes = b"REDIS0011", body: bytes = b"", *, checksum: bool = True) -> bytes:
    aux = b"\xfa\x09redis-ver\x067.0.15\xfa\x0aredis-bits\xc0\x40"
    data = signature + aux + b"\xfe\x00\xfb\x01\x00\x00\x01k\x01v" + body + b"\xff"
    return data + struct.pack("<Q", rdb.crc64(data) if checksum else 0)


def test_the_engines_crc64_check_value():
    assert rdb.crc64(b"123456789") == 0xE9C6D914C4B8D9CA
    pieces = rdb.Checksum()
    for piece in (b"1234", b"", b"56789"):
        pieces.update(piece)
    assert pieces.value == 0xE9C6D914C4B8D9CA and pieces.size == 9


def test_headers():
    assert rdb.parse_header(b"REDIS0011rest") == RdbHeader("REDIS", 11)
    assert rdb.parse_header(b"VALKEY080") == RdbHeader("VALKEY", 80)
    assert str(RdbHeader("VALKEY", 80)) == "VALKEY080" and str(RdbHeader("REDIS", 9)) == "REDIS0009"
    for bad in (b"", b"REDIS001", b"redis0011", b"VALKEY08x", b"\x00" * 9, b"REDIS00x1"):
        with pytest.raises(RdbCorrupt, match="not an RDB"):
            rdb.parse_header(bad)


def test_verify_a_whole_file_in_small_chunks(tmp_path):
    path = tmp_path / "dump.rdb"
    data = make_rdb(body=b"x" * 10_000)
    path.write_bytes(data)
    seen = bytearray()
    facts = rdb.verify(path, chunk_size=7, observe=seen.extend)
    assert facts.header == RdbHeader("REDIS", 11) and facts.size == len(data)
    assert facts.checksum == rdb.crc64(data[:-8]) and facts.checksummed
    assert facts.aux["redis-ver"] == "7.0.15" and facts.aux["redis-bits"] == "64"
    assert facts.written_by == "redis 7.0.15"
    assert bytes(seen) == data


def test_truncated_files_are_refused_at_any_length(tmp_path):
    data = make_rdb(body=b"y" * 300)
    path = tmp_path / "dump.rdb"
    for length in (0, 5, 9, 12, 100, len(data) - 9, len(data) - 8, len(data) - 1):
        path.write_bytes(data[:length])
        with pytest.raises(RdbCorrupt, match="truncated|not an RDB"):
            rdb.verify(path)


def test_a_changed_byte_fails_the_checksum(tmp_path):
    data = bytearray(make_rdb(body=b"z" * 300))
    data[100] ^= 0x01
    path = tmp_path / "dump.rdb"
    path.write_bytes(bytes(data))
    with pytest.raises(RdbCorrupt, match="checksum"):
        rdb.verify(path)


def test_a_file_written_without_checksum_is_accepted_unchecked(tmp_path):
    path = tmp_path / "dump.rdb"
    path.write_bytes(make_rdb(checksum=False))
    facts = rdb.verify(path)
    assert facts.checksum == 0 and not facts.checksummed


def test_copy_verified_leaves_nothing_behind_for_a_corrupt_file(tmp_path):
    good, bad = tmp_path / "good.rdb", tmp_path / "bad.rdb"
    good.write_bytes(make_rdb(body=b"a" * 5000))
    bad.write_bytes(make_rdb(body=b"a" * 5000)[:-3])
    out = tmp_path / "out"
    facts = rdb.copy_verified(good, out / "copy.rdb", chunk_size=1000)
    assert (out / "copy.rdb").read_bytes() == good.read_bytes() and facts.size == good.stat().st_size
    assert (out / "copy.rdb").stat().st_mode & 0o777 == 0o600
    with pytest.raises(RdbCorrupt):
        rdb.copy_verified(bad, out / "other.rdb")
    assert sorted(p.name for p in out.iterdir()) == ["copy.rdb"]


def test_rewrite_header_keeps_the_file_whole(tmp_path):
    path = tmp_path / "dump.rdb"
    path.write_bytes(rdb.rewrite_header(make_rdb(), RdbHeader("VALKEY", 80)))
    assert rdb.verify(path).header == RdbHeader("VALKEY", 80)


@pytest.mark.parametrize(
    ("signature", "engine", "version", "relaxed", "loads"),
    [
        ("REDIS0010", "redis", "7.0.15", False, True),
        ("REDIS0011", "redis", "7.0", False, False),
        ("VALKEY080", "redis", "7.0", False, False),
        ("REDIS0010", "valkey", "8.1.8", False, True),
        ("REDIS0011", "valkey", "8.1", False, True),
        ("REDIS0012", "valkey", "8.1", True, False),
        ("VALKEY080", "valkey", "8.1", False, False),
        ("VALKEY080", "valkey", "8.1", True, True),
        ("REDIS0011", "valkey", "9.1.2", False, True),
        ("VALKEY080", "valkey", "9.1", False, True),
        ("REDIS0012", "valkey", "9.1", False, False),
        ("REDIS0012", "valkey", "9.1", True, True),
        ("VALKEY011", "valkey", "9.1", True, False),
    ],
)
def test_loadability(signature, engine, version, relaxed, loads):
    header = rdb.parse_header(signature.encode())
    assert rdb.support(engine, version).loads(header, relaxed=relaxed) is loads
    if loads:
        assert rdb.check_loadable(header, engine, version, relaxed=relaxed) == header
    else:
        with pytest.raises(RdbIncompatible):
            rdb.check_loadable(header, engine, version, relaxed=relaxed)


def test_a_valkey_9_snapshot_into_redis_7_is_refused_saying_where_it_can_go(tmp_path):
    path = tmp_path / "dump.rdb"
    path.write_bytes(rdb.rewrite_header(make_rdb(), RdbHeader("VALKEY", 80)))
    with pytest.raises(RdbIncompatible) as refused:
        rdb.check_loadable(path, "redis", "7.0.15")
    message = str(refused.value)
    assert "Redis OSS 7.0 cannot load an RDB of format VALKEY080" in message
    assert "REDIS0001-REDIS0010" in message and "restore it into Valkey 9.1" in message
    assert rdb.check_loadable(path.read_bytes()[:9], "valkey", "9.1") == RdbHeader("VALKEY", 80)


def test_an_unmeasured_release_is_refused_rather_than_guessed():
    with pytest.raises(RdbIncompatible, match="not known"):
        rdb.check_loadable(RdbHeader("REDIS", 10), "redis", "7.2.4")



def test_stream_verifier_in_any_pieces():
    import random

    data = make_rdb(body=bytes(range(256)) * 40)
    rng = random.Random(3)
    for _ in range(50):
        verifier, position = rdb.StreamVerifier(), 0
        while position < len(data):
            step = rng.choice((1, 2, 8, 9, 10, 100, 5000))
            verifier.update(data[position : position + step])
            position += step
        assert verifier.finish().checksum == rdb.crc64(data[:-8])
    for broken in (data[:-1], data[:-9] + data[-8:], data[:50] + b"\x00" + data[51:]):
        verifier = rdb.StreamVerifier()
        verifier.update(broken)
        with pytest.raises(RdbCorrupt):
            verifier.finish()


def test_link_verified_links_a_whole_file_only(tmp_path):
    source = tmp_path / "node" / "dump.rdb"
    source.parent.mkdir()
    source.write_bytes(make_rdb(body=b"q" * 1000))
    facts = rdb.link_verified(source, tmp_path / "snap" / "0001.rdb")
    linked = tmp_path / "snap" / "0001.rdb"
    assert linked.stat().st_ino == source.stat().st_ino and facts.size == source.stat().st_size
    assert linked.stat().st_mode & 0o777 == 0o600
    # The engine's next save replaces the name, never the linked file's content.
    (tmp_path / "node" / "temp-1.rdb").write_bytes(make_rdb())
    (tmp_path / "node" / "temp-1.rdb").replace(source)
    assert rdb.verify(linked).size == facts.size
    source.write_bytes(make_rdb()[:-2])
    with pytest.raises(RdbCorrupt):
        rdb.link_verified(source, tmp_path / "snap" / "0002.rdb")
    assert sorted(p.name for p in (tmp_path / "snap").iterdir()) == ["0001.rdb"]
