"""engine.cluster.atomic_jobs: an atomic slot migration cut into jobs of a bounded key count (pure logic)."""

from __future__ import annotations

import asyncio

from cachefleet.engine.cluster import atomic_jobs


class Counts:
    """An admin client that answers CLUSTER COUNTKEYSINSLOT from a table."""

    address, port = "127.0.0.1", 6379

    def __init__(self, counts: dict[int, int]) -> None:
        self.counts = counts
        self.sent: list[tuple] = []

    async def pipeline(self, commands):
        self.sent += commands
        return [self.counts.get(slot, 0) for _, _, slot in commands]


def test_jobs_hold_at_most_the_key_budget_and_every_slot_once():
    admin = Counts({s: 10 for s in range(100)})
    jobs = asyncio.run(atomic_jobs(admin, list(range(99, -1, -1)), max_keys=250))
    assert [len(job) for job in jobs] == [25, 25, 25, 25]
    assert [slot for job in jobs for slot in job] == list(range(100))
    assert len(admin.sent) == 100  # one pipeline, a command per slot


def test_a_slot_over_the_budget_is_a_job_alone_and_empty_slots_go_in_one():
    admin = Counts({3: 1000, 5: 1})
    jobs = asyncio.run(atomic_jobs(admin, list(range(10)), max_keys=100))
    assert jobs == [[0, 1, 2], [3], [4, 5, 6, 7, 8, 9]]
    assert asyncio.run(atomic_jobs(Counts({}), list(range(16384)), max_keys=100)) == [list(range(16384))]
