"""engine.cluster.MigrateBudget: how much MIGRATE work one source has in flight (pure logic, fake clock)."""

from __future__ import annotations

import asyncio

from cachefleet.engine.cluster import FIRST_KEYS, MAX_KEYS, MigrateBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_unknown_source_gets_a_small_first_pipeline_that_takes_the_whole_budget():
    budget = MigrateBudget(0.05)
    assert budget.keys() == FIRST_KEYS
    assert budget.cost(FIRST_KEYS) == 0.05


def test_the_cost_per_key_moves_up_at_once_and_down_gently():
    budget = MigrateBudget(0.05)
    budget.learn(100, 0.01)  # 100 us a key
    assert budget.keys() == 500
    budget.learn(10, 0.01)  # a heavier slot: 1 ms a key, taken at once
    assert budget.keys() == 50
    budget.learn(100, 0.01)  # lighter again: only part of the way back
    assert 50 < budget.keys() < 500
    budget.learn(1, 10.0)  # one key heavier than the whole budget: still one key at a time
    assert budget.keys() == 1
    budget.per_key = 1e-9
    assert budget.keys() == MAX_KEYS


def test_pipelines_of_one_source_wait_while_the_budget_is_spent():
    async def scenario() -> list[str]:
        clock = Clock()
        budget = MigrateBudget(0.05, clock=clock)
        budget.per_key = 0.001  # 50 keys fill the budget
        order: list[str] = []
        first_in = asyncio.Event()
        release = asyncio.Event()

        async def pipeline(name: str, keys: int, hold: asyncio.Event | None) -> None:
            async with budget.moving(keys):
                order.append(f"{name} in")
                if hold is not None:
                    first_in.set()
                    await hold.wait()
                clock.now += 0.01
            order.append(f"{name} out")

        first = asyncio.create_task(pipeline("a", 30, release))
        await first_in.wait()
        small = asyncio.create_task(pipeline("b", 20, None))  # 30 + 20 fits: runs beside a
        await small
        large = asyncio.create_task(pipeline("c", 40, None))  # 30 + 40 does not: waits for a
        await asyncio.sleep(0.01)
        assert "c in" not in order
        release.set()
        await asyncio.gather(first, large)
        # Alone, a pipeline larger than the budget still goes.
        await pipeline("d", 500, None)
        return order

    order = asyncio.run(scenario())
    assert order.index("c in") > order.index("a out")
    assert order[:3] == ["a in", "b in", "b out"]
    assert "d in" in order


def test_a_pipelines_own_time_starts_when_the_one_before_it_was_answered():
    async def scenario() -> float | None:
        clock = Clock()
        budget = MigrateBudget(1.0, clock=clock)
        budget.per_key = 0.001
        release = asyncio.Event()
        started = asyncio.Event()

        async def first() -> None:
            async with budget.moving(100):
                started.set()
                await release.wait()
                clock.now += 0.1  # answered at +0.1
        task = asyncio.create_task(first())
        await started.wait()
        async with budget.moving(100):  # sent at +0, queued behind the first
            release.set()
            await task
            clock.now += 0.1  # answered at +0.2: its own time is 0.1 s, not 0.2 s
        return budget.per_key

    per_key = asyncio.run(scenario())
    assert per_key is not None and abs(per_key - 0.001) < 1e-9


def test_a_pipeline_larger_than_the_budget_goes_once_the_others_are_answered():
    """The float sum of costs in flight need not come back to exactly 0.0 (0.1 + 0.2 - 0.1 - 0.2 is
    3e-17): a lane whose pipeline alone exceeds the budget waited for ever behind that residue."""
    async def scenario() -> None:
        budget = MigrateBudget(0.5)
        budget.per_key = 0.1

        async def both() -> None:
            async with budget.moving(1), budget.moving(2):  # 0.1 s and 0.2 s in flight, then answered
                pass

        await asyncio.wait_for(both(), timeout=1.0)
        budget.per_key = 0.01  # learnt meanwhile: 60 keys now cost more than the whole budget
        await asyncio.wait_for(_enter(budget, 60), timeout=1.0)

    asyncio.run(scenario())


async def _enter(budget: MigrateBudget, keys: int) -> None:
    async with budget.moving(keys):
        pass


def test_the_sources_own_migrate_time_replaces_reply_times_once_read():
    """Reply times count the control plane's own delays; INFO commandstats counts the source's."""
    class Source:
        usec = 0

        async def info(self, section: str) -> dict[str, str]:
            assert section == "commandstats"
            return {"cmdstat_migrate": f"calls=9,usec={self.usec},usec_per_call=1.00,rejected_calls=0,failed_calls=0"}

    async def scenario() -> list[int]:
        clock = Clock()
        budget = MigrateBudget(0.05, clock=clock)
        source = Source()
        seen = []
        async with budget.moving(100):
            clock.now += 0.1  # the reply took 1 ms a key (a loaded control plane)
        seen.append(budget.keys())
        await budget.calibrate(source)  # the first reading: a baseline
        async with budget.moving(1000):
            clock.now += 0.5  # replies still slow ...
            source.usec += 10_000  # ... but the source spent 10 us a key
        await budget.calibrate(source)
        seen.append(budget.keys())
        source.usec += 10_000_000  # read again at once: too soon, not read
        await budget.calibrate(source)
        seen.append(budget.keys())
        return seen

    assert asyncio.run(scenario()) == [50, 5000, 5000]
