"""Hash slots against an independent bitwise CRC-16/XMODEM and the examples of the cluster spec."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cachefleet.engine.keyslot import hash_tag, key_slot


def reference_crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def test_spec_examples():
    assert reference_crc16(b"123456789") == 0x31C3
    assert key_slot("123456789") == 0x31C3 % 16384
    assert key_slot("foo") == 12182
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers") == key_slot("user1000")
    assert hash_tag(b"foo{}{bar}") == b"foo{}{bar}"  # an empty tag: the whole key is hashed
    assert hash_tag(b"foo{{bar}}zap") == b"{bar"
    assert hash_tag(b"foo{bar}{zap}") == b"bar"
    assert hash_tag(b"{") == b"{" and hash_tag(b"}{") == b"}{"


@given(st.binary(max_size=40))
def test_matches_the_reference_for_any_key(key):
    start = key.find(b"{")
    end = key.find(b"}", start + 1) if start != -1 else -1
    hashed = key[start + 1 : end] if start != -1 and end > start + 1 else key
    assert key_slot(key) == reference_crc16(hashed) % 16384
