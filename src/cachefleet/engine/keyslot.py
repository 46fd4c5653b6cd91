"""Which of the 16384 hash slots a key belongs to, as Redis Cluster and Valkey compute it.

The slot is CRC-16/XMODEM of the key modulo 16384; when the key holds a hash tag (the
bytes between the first ``{`` and the first ``}`` after it, if any), only the tag is hashed,
so ``{user:1}:cart`` and ``{user:1}:profile`` share a slot. ``binascii.crc_hqx`` is that CRC
(polynomial 0x1021, initial value 0) in C: a restore computes a slot for every key it moves.
"""

from __future__ import annotations

import binascii

SLOTS = 16384


def hash_tag(key: bytes) -> bytes:
    """The part of ``key`` that is hashed: its non-empty ``{tag}``, else the whole key."""
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def key_slot(key: bytes | str) -> int:
    data = key.encode() if isinstance(key, str) else key
    return binascii.crc_hqx(hash_tag(data), 0) & (SLOTS - 1)
