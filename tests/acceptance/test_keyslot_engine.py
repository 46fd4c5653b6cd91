"""Our slot of a key equals the engine's own CLUSTER KEYSLOT, hash tags and binary keys included."""

from __future__ import annotations

import random

import pytest

from cachefleet.engine.keyslot import key_slot
from enginekit import EngineSet, installed


@pytest.fixture
def engines():
    running = EngineSet()
    yield running
    running.close()


def test_slots_match_cluster_keyslot(engines):
    node = engines.start(installed("valkey", "8."), cluster=True).client()
    rng = random.Random(7)
    keys = [b"", b"{", b"}", b"{}", b"{}x", b"x{}", b"{a}", b"{{a}}", b"a{b}c{d}", "ключ".encode(), b"\x00\xff{\x01}"]
    keys += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 30))) for _ in range(2000)]
    keys += [f"user:{{{rng.randrange(10**6)}}}:cart".encode() for _ in range(500)]
    pipe = node.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command("CLUSTER", "KEYSLOT", key)
    assert pipe.execute() == [key_slot(k) for k in keys]
