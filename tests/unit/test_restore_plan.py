"""The pure parts of engine/restore.py: who owns a slot, how keys group by target, which shards seed."""

from __future__ import annotations

import pytest

from cachefleet.domain.slots import even
from cachefleet.engine.keyslot import key_slot
from cachefleet.engine.restore import RestoreTarget, group_by_target, plan_seeds, slot_owners


def test_which_new_shards_start_from_which_snapshot_shard():
    def shape(count):
        return [frozenset(s) for s in even(count)]

    assert plan_seeds(shape(3), shape(2)) == {0: 0, 1: 2}  # the middle shard's keys move
    assert plan_seeds(shape(2), shape(3)) == {}
    assert plan_seeds(shape(5), shape(3)) == {0: 0, 1: 2, 2: 4}
    assert plan_seeds(shape(3), shape(3)) == {0: 0, 1: 1, 2: 2}
    assert plan_seeds(shape(3), shape(1), sizes=[10, 30, 20]) == {0: 1}  # the biggest loads, two move
    assert plan_seeds(shape(1), shape(3)) == {}


def test_slot_owners_and_grouping():
    targets = [RestoreTarget("127.0.0.1", 1, frozenset(s)) for s in even(3)]
    owners = slot_owners(targets)
    keys = [b"a", b"b", b"{a}x", b"foo", b"bar", b"baz"]
    groups = group_by_target(keys, owners, 3)
    assert sorted(k for g in groups for k in g) == sorted(keys)
    for index, group in enumerate(groups):
        assert all(key_slot(k) in targets[index].slots for k in group)
    with pytest.raises(ValueError, match="owned by both"):
        slot_owners([*targets, RestoreTarget("127.0.0.2", 1, frozenset({5}))])
    with pytest.raises(ValueError, match="have no target"):
        slot_owners(targets[:2])
    assert slot_owners([RestoreTarget("127.0.0.1", 1)]) == [0] * 16384
