"""Snapshot file encryption: round trips, and every way a file can be changed, cut or mis-keyed."""

from __future__ import annotations

import io
import os
import struct

import pytest

from cachefleet.engine import encryption
from cachefleet.engine.encryption import DecryptionFailed, EncryptionError, KeyNotFound, KeyRing

CHUNK = 1024


@pytest.fixture
def ring(tmp_path):
    keys = KeyRing(tmp_path / "keys")
    keys.create()
    return keys


def encrypt(data: bytes, ring: KeyRing, key_id: str = KeyRing.DEFAULT_KEY_ID) -> bytes:
    out = io.BytesIO()
    encryption.encrypt_stream(io.BytesIO(data), out, key=ring.get(key_id), key_id=key_id, chunk_size=CHUNK)
    return out.getvalue()


def decrypt(data: bytes, ring: KeyRing) -> bytes:
    out = io.BytesIO()
    encryption.decrypt_stream(io.BytesIO(data), out, keys=ring)
    return out.getvalue()


def frames(sealed: bytes) -> tuple[bytes, list[bytes]]:
    """(header, [frame, ...]) of an encrypted file."""
    fixed = len(encryption.MAGIC) + 4 + encryption.SALT_SIZE
    (id_length,) = struct.unpack(">H", sealed[fixed : fixed + 2])
    position = fixed + 2 + id_length
    header, parts = sealed[:position], []
    while position < len(sealed):
        _, length = struct.unpack(">BI", sealed[position : position + 5])
        parts.append(sealed[position : position + 5 + length])
        position += 5 + length
    return header, parts


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK, 5 * CHUNK + 17])
def test_round_trip(ring, size):
    data = os.urandom(size)
    sealed = encrypt(data, ring)
    assert decrypt(sealed, ring) == data
    _, parts = frames(sealed)
    assert len(parts) == max(1, -(-size // CHUNK))  # one final frame, even for an empty file


def test_a_known_value_does_not_appear_in_the_file(ring):
    secret = b"the-value-that-must-not-leak-" * 100
    sealed = encrypt(secret, ring)
    assert b"the-value-that-must-not-leak-" not in sealed


def test_every_changed_byte_is_detected(ring):
    sealed = encrypt(os.urandom(3 * CHUNK), ring)
    for position in range(0, len(sealed), 97):
        changed = bytearray(sealed)
        changed[position] ^= 0x40
        with pytest.raises((DecryptionFailed, KeyNotFound)):
            decrypt(bytes(changed), ring)


def test_cut_reordered_dropped_repeated_or_extended_files_fail(ring):
    sealed = encrypt(os.urandom(4 * CHUNK), ring)
    header, parts = frames(sealed)
    variants = {
        "cut at a frame boundary": header + b"".join(parts[:2]),
        "cut inside a frame": sealed[:-10],
        "reordered": header + parts[1] + parts[0] + b"".join(parts[2:]),
        "dropped": header + parts[0] + b"".join(parts[2:]),
        "repeated": header + parts[0] + parts[0] + b"".join(parts[1:]),
        "extended": sealed + b"\x00",
        "final frame twice": sealed + parts[-1],
        "header only": header,
    }
    for name, variant in variants.items():
        with pytest.raises(DecryptionFailed):
            decrypt(variant, ring)
            pytest.fail(name)


def test_a_file_from_another_key_ring_fails(tmp_path, ring):
    other = KeyRing(tmp_path / "other")
    other.create()
    with pytest.raises(DecryptionFailed, match="does not authenticate"):
        decrypt(encrypt(b"data", other), ring)


def test_files_decrypt_atomically_and_leave_nothing_on_failure(tmp_path, ring):
    source, sealed, restored = tmp_path / "dump.rdb", tmp_path / "snap" / "0001.rdb.enc", tmp_path / "node" / "dump.rdb"
    data = os.urandom(3 * encryption.CHUNK_SIZE + 5)
    source.write_bytes(data)
    seen = bytearray()
    facts = encryption.encrypt_file(source, sealed, ring, observe=seen.extend)
    assert bytes(seen) == data and facts.plaintext_size == len(data) and facts.chunks == 4
    assert sealed.stat().st_mode & 0o777 == 0o600 and (tmp_path / "snap").stat().st_mode & 0o777 == 0o700
    assert encryption.is_encrypted(sealed) and not encryption.is_encrypted(source)
    assert encryption.file_key_id(sealed) == KeyRing.DEFAULT_KEY_ID
    encryption.decrypt_file(sealed, restored, ring)
    assert restored.read_bytes() == data and restored.stat().st_mode & 0o777 == 0o600
    restored.unlink()
    cut = tmp_path / "cut.enc"
    cut.write_bytes(sealed.read_bytes()[: sealed.stat().st_size // 2])
    with pytest.raises(DecryptionFailed):
        encryption.decrypt_file(cut, restored, ring)
    assert list((tmp_path / "node").iterdir()) == []  # not even the temporary file


def test_key_ring_files_and_ids(tmp_path):
    ring = KeyRing(tmp_path / "keys")
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    key = ring.create(arn)
    assert ring.get(arn) == key and len(key) == 32
    assert ring.ensure("alias/snapshots") == ring.get("alias/snapshots")
    assert ring.ensure(arn) == key
    assert ring.ids() == sorted([arn, "alias/snapshots"])
    for path in (tmp_path / "keys").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600 and "/" not in path.name
    with pytest.raises(EncryptionError, match="already exists"):
        ring.create(arn)
    with pytest.raises(KeyNotFound):
        ring.get("missing")
    ring.path(arn).chmod(0o644)
    with pytest.raises(EncryptionError, match="readable by others"):
        ring.get(arn)
    other = KeyRing(tmp_path / "keys2")
    other.create()
    sealed = encrypt(b"x", other)
    with pytest.raises(KeyNotFound):
        decrypt(sealed, KeyRing(tmp_path / "empty"))


def test_decryption_can_verify_what_it_writes_and_fails_with_its_observer(tmp_path, ring):
    source, sealed, restored = tmp_path / "plain", tmp_path / "sealed", tmp_path / "node" / "dump.rdb"
    source.write_bytes(b"not an rdb at all" * 1000)
    encryption.encrypt_file(source, sealed, ring)

    def refuse(chunk):
        raise ValueError("corrupt")

    with pytest.raises(ValueError):
        encryption.decrypt_file(sealed, restored, ring, observe=refuse)
    assert not restored.exists() and list((tmp_path / "node").iterdir()) == []
