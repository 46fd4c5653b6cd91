"""A thousand failovers: kill -9 and SIGSTOP of primaries and replicas of a cluster-mode-disabled and
a cluster-mode-enabled group, control-plane SIGKILLs between them, under writers that confirm with
WAIT and a role sampler (failover_chaos.py has the run; RELIABILITY.md the figures).

`make test` runs ``test_failovers_short`` (20 faults, one control-plane kill); `make chaos` runs
``test_a_thousand_failovers`` (CACHEFLEET_CHAOS_FAULTS to change the count). CACHEFLEET_CHAOS_SEED
replays a seed (printed); CACHEFLEET_CHAOS_REPORT=DIR writes the figures and every fault as JSON.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict
from typing import Any

import pytest
import redis

from enginekit import installed
from engines import BareEngines
from failover_chaos import (
    Chaos,
    Group,
    RoleSampler,
    Shard,
    Writer,
    figures,
    loss_context,
    missing,
    running,
    write_report,
)


def _chaos(make_server: Any, faults: int, cp_every: tuple[int, int], name: str) -> None:
    seed = int(os.environ.get("CACHEFLEET_CHAOS_SEED") or random.SystemRandom().randrange(2**31))
    print(f"failover chaos: seed {seed} (CACHEFLEET_CHAOS_SEED={seed} replays the choices), {faults} faults")
    server = make_server()
    chaos = Chaos(server, faults, seed, cp_every=cp_every, log=lambda line: print("failover chaos:", line, flush=True))
    chaos.create()
    began = time.monotonic()
    with running(chaos) as (writers, sampler):
        for writer in writers.values():  # writing and confirming before the first fault
            deadline = time.monotonic() + 20
            while len(writer.written.confirmed) < 20:
                assert time.monotonic() < deadline, f"{writer.group.group_id}: no confirmed writes before the faults"
                time.sleep(0.01)
        since = time.monotonic()
        report = chaos.run()
        if not report.stuck:  # a few more confirmed writes through the recovered groups
            counts = {g: len(w.written.confirmed) for g, w in writers.items()}
            deadline = time.monotonic() + 20
            while any(len(w.written.confirmed) < counts[g] + 20 for g, w in writers.items()):
                assert time.monotonic() < deadline, "no confirmed writes after the last fault"
                time.sleep(0.01)
    lost: dict[str, dict[str, list[str]]] = {}
    if not report.stuck:
        for group_id, writer in writers.items():
            group = chaos.groups[group_id]
            confirmed = set(writer.written.confirmed)
            unconfirmed = [k for k in writer.written.acknowledged if k not in confirmed]
            lost[group_id] = {"confirmed": missing(group, writer.written.confirmed),
                              "unconfirmed": missing(group, unconfirmed)}
        chaos._check_processes()
    data = figures(report, writers, sampler, lost, since, time.monotonic() - began)
    print("failover chaos:", json.dumps(data))
    write_report(name, {"figures": data, "faults": [{**asdict(f), "name": f.name} for f in report.faults],
                        "two_master_moments": sampler.two_masters[:200], "two_writable": sampler.two_writable,
                        "lost": {g: {k: v[:100] for k, v in found.items()} for g, found in lost.items()},
                        "lost_context": {g: loss_context(writers[g], v["confirmed"], report.faults)
                                         for g, v in lost.items()},
                        "stuck": report.stuck, "orphans": report.orphans, "duplicates": report.duplicates,
                        "missing_processes": report.missing_processes, "not_adopted": report.not_adopted})
    assert not report.stuck, f"a group got stuck: {report.stuck}\n{server.log()[-4000:]}"
    assert len(report.faults) == faults and report.control_plane_kills >= 1
    assert data["confirmed_lost"] == 0, {g: v["confirmed"][:10] for g, v in lost.items()}
    assert not sampler.two_writable, sampler.two_writable[:5]
    assert not (report.orphans or report.duplicates or report.missing_processes), (
        report.orphans, report.duplicates, report.missing_processes)
    assert not report.not_adopted, report.not_adopted
    # The run measured what it claims: every kind of fault in each group, writes confirmed in each,
    # a recovery for every fault, and a sampler that saw one master per shard most of the time.
    kinds = {(f.group, f.name) for f in report.faults}
    assert len(kinds) == 8 or faults < 8, sorted(kinds)
    assert all(len(w.written.confirmed) > 100 for w in writers.values())
    assert all(f.write_recovery is not None and f.node_back is not None for f in report.faults)
    assert sampler.samples > 100 and sampler.masters_seen > sampler.samples


def test_failovers_short(make_server):
    """20 faults (10 rounds, each group one fault per round), one control-plane SIGKILL: ~60 s."""
    _chaos(make_server, 20, (9, 12), "failover-chaos-short")


@pytest.mark.chaos
@pytest.mark.timeout(4 * 3600)
def test_a_thousand_failovers(make_server):
    _chaos(make_server, int(os.environ.get("CACHEFLEET_CHAOS_FAULTS", "1000")), (40, 60), "failover-chaos")


def test_the_checks_see_two_writable_primaries_and_a_lost_write(tmp_path):
    """The run's checks can fail: two bare masters named one shard are two writable primaries, one
    fenced by min-replicas-to-write (NOREPLICAS) is a second master only; a confirmed key deleted
    behind the writer's back is lost."""
    binary = installed("valkey", "8.1")
    engines = BareEngines()
    try:
        a, b, fenced = (engines(binary, host=h) for h in (1, 2, 3))
        redis.Redis(host=fenced.address).config_set("min-replicas-to-write", "1")

        def shard(*addresses: str) -> list[Group]:
            members = {f"n{i}": address for i, address in enumerate(addresses)}
            return [Group("g", False, (addresses[0], 6379), [Shard("0001", "", "n0", members)])]

        writable = RoleSampler(lambda: shard(a.address, b.address))
        writable.sample()
        assert len(writable.two_masters) == 1 and len(writable.two_writable) == 1, writable.two_masters
        one = RoleSampler(lambda: shard(a.address, fenced.address))
        one.sample()
        assert len(one.two_masters) == 1 and not one.two_writable, one.two_masters
        assert "NOREPLICAS" in one.two_masters[0]["probe"][fenced.address]

        group = shard(a.address)[0]
        with Writer(group, pause=0.001) as writer:
            deadline = time.monotonic() + 10
            while len(writer.written.acknowledged) < 15:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        assert missing(group, writer.written.acknowledged) == []
        assert writer.written.confirmed == []  # no replica: WAIT 1 never answers 1
        victim = writer.written.acknowledged[7]
        redis.Redis(host=a.address).delete(victim)
        assert missing(group, writer.written.acknowledged) == [victim]
        assert loss_context(writer, [victim], [])["last"] == victim
    finally:
        engines.close()
