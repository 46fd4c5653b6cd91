"""Bad input at scale (issue 15): one real server takes a long stream of fuzzed requests from a few
threads at once and answers every one below 500, never dies, and keeps its memory, open files and
threads flat.

The stream mixes (``SHARES``) the model-driven ElastiCache fuzz over every operation, random
CloudWatch requests in its three protocols (Query, AWS JSON, Smithy RPC v2 CBOR), and fuzzed SigV4
(``fuzzing.SigV4Fuzz``: missing and malformed Authorization headers, wrong signatures, bad credential
scopes, X-Amz-Date in other formats or off the clock, huge and many headers, header bytes that are
not UTF-8, other Content-Types and Content-Encodings, bodies that are not UTF-8 form data, presigned
URLs with bad parameters, other methods, paths and framing). The generators are tests/fuzzing.py's,
the ones tests/api/test_fuzz.py uses. The server checks signatures (a credentials file), so every
request goes through SigV4 verification, and a spoiled signature must never be answered 2xx.

Engines are kept out of it where possible: past the resources the warm-up seeds (one cluster, two
replication groups, one serverless cache), requests that would add nodes are only sent spoiled.

``test_bad_input_at_scale`` (marker ``chaos``, ``make chaos``): 100,000 requests after a warm-up
(``CACHEFLEET_FUZZ_SCALE_REQUESTS`` to change it; its figures are in RELIABILITY.md).
``test_bad_input_at_scale_short`` (``make test``): 2,000 requests and no seeded resources (so no engine,
unless a spoiled create happens to pass); ~16 s on an idle 2-core machine.
Set CACHEFLEET_CHAOS_REPORT=DIR to have the figures written there as JSON.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fuzzing import (
    CLOUDWATCH_PROTOCOLS,
    CLOUDWATCH_SERVED,
    CREDENTIALS,
    OPERATIONS,
    SERVERLESS_SHARDS,
    Fuzz,
    Pools,
    SigV4Fuzz,
    cloudwatch_request,
    incoherence,
    process_figures,
    seed_on_failure,
    send_raw,
    status_class,
    unsettled,
    well_formed,
)
from helpers import Server, engine_pids, wait_for

THREADS = 4
SHARES = (("elasticache", 0.8), ("cloudwatch", 0.1), ("sigv4", 0.1))
# Flat, after the warm-up: VmRSS may grow by a quarter at most (a leak of 1 KB per request would
# add ~100 MB over 100,000); open fds and threads by a few, and by what an engine node the fuzz
# added since holds open in the control plane (its connections and pidfd: 4 measured). The metric
# ring files are counted apart: a deleted node's stay open until two minutes after its last sample,
# and a CloudWatch query opens a deleted node's again for a minute, so they follow the fuzz's deletes
# and queries; they may never outnumber the ring files on disk (two fds each: the file's, and the
# duplicate CPython's mmap keeps).
RSS_GROWTH = 0.25
FDS_PER_NODE = 4
FDS_SLACK = 16
THREADS_SLACK = 4


@dataclass
class Tally:
    """What one thread sent and what came back, by kind of request."""

    sent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    slowest: tuple[float, str] = (0.0, "")

    def fail(self, kind: str, problem: str, detail: str) -> None:
        self.failures.setdefault((kind, problem.split(":")[0]), f"[{kind}] {problem}\n    {detail[:800]}")


class Worker:
    """One thread's share: its own ElastiCache fuzz (a botocore client and random source of its own),
    CloudWatch and SigV4 fuzz."""

    def __init__(self, server: Server, seed: int, *, pools: Pools, node_budget: int) -> None:
        self.server = server
        self.fuzz = Fuzz(server, seed, pools=pools, node_budget=node_budget)
        self.rng = random.Random(seed + 1)
        self.signatures = SigV4Fuzz(random.Random(seed + 2), server.port)
        self.tally = Tally()

    def run(self, count: int, stop: threading.Event) -> None:
        kinds, weights = zip(*SHARES, strict=True)
        for _ in range(count):
            if stop.is_set():
                return
            kind = self.rng.choices(kinds, weights)[0]
            try:
                getattr(self, f"send_{kind}")()
            except OSError as error:  # no answer at all: the server died, or dropped a connection
                self.tally.statuses["no answer"] += 1
                self.tally.fail(kind, f"no answer: {type(error).__name__}: {error}", "")
                if self.server.process is None or self.server.process.poll() is not None:
                    stop.set()
            self.tally.sent[kind] += 1

    def send_elasticache(self) -> None:
        self.fuzz.round(1)  # its answers are checked and counted by the Fuzz itself

    def send_cloudwatch(self) -> None:
        answer = None
        while answer is None:  # botocore's serializer refuses some random values: draw again
            answer = cloudwatch_request(self.server.url, self.rng, self.rng.choice(CLOUDWATCH_SERVED),
                                        self.rng.choice(CLOUDWATCH_PROTOCOLS), credentials=CREDENTIALS)
        self.tally.statuses[status_class(answer.status)] += 1
        self.tally.codes[answer.code] += 1
        if answer.problem:
            self.tally.fail("cloudwatch", answer.problem, answer.request)

    def send_sigv4(self) -> None:
        spoiled, request, refuse = self.signatures.request()
        try:
            answer = send_raw(self.server.port, request)
        except OSError as error:  # counted by run(), with what was sent
            self.tally.fail("sigv4", f"{spoiled}: no answer: {error}", f"sent: {request.wire()[:600]!r}")
            raise
        self.tally.statuses[status_class(answer.status)] += 1
        if answer.took > self.tally.slowest[0]:
            self.tally.slowest = (answer.took, f"sigv4 {spoiled}")
        detail = f"sent: {request.wire()[:600]!r}\n    answer: {answer.status} {answer.body[:300]!r}"
        if answer.status >= 500 or answer.status == 0:
            self.tally.fail("sigv4", f"{spoiled}: status {answer.status}", detail)
        elif refuse and answer.status < 400:
            self.tally.fail("sigv4", f"{spoiled}: a spoiled signature was answered {answer.status}", detail)
        elif "x-amzn-requestid" in answer.headers and "xml" in answer.headers.get("content-type", ""):
            # Answered by the API (not by aiohttp's HTTP parser, which answers framing errors in text).
            problem, code = well_formed("DescribeCacheEngineVersions", answer.status, answer.body)
            self.tally.codes[code] += 1
            if problem:
                self.tally.fail("sigv4", f"{spoiled}: {problem}", detail)


def _drive(workers: list[Worker], count: int) -> float:
    """``count`` requests shared by the workers' threads; the seconds it took."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def work(worker: Worker, share: int) -> None:
        try:
            worker.run(share, stop)
        except BaseException as error:  # noqa: BLE001 - reported below, with the others stopped
            errors.append(error)
            stop.set()

    shares = [count // len(workers) + (1 if index < count % len(workers) else 0) for index in range(len(workers))]
    threads = [threading.Thread(target=work, args=(worker, share)) for worker, share in zip(workers, shares, strict=True)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.monotonic() - started


def _sample_rss(pid: int, timeline: list[tuple[int, float]], done: threading.Event, every: float = 15.0) -> None:
    started = time.monotonic()
    while not done.wait(every):
        with open(f"/proc/{pid}/status") as status:
            line = next(line for line in status if line.startswith("VmRSS:"))
        timeline.append((round(time.monotonic() - started), round(int(line.split()[1]) / 1024, 1)))


def _credentials_file(directory: Path) -> Path:
    path = directory / "credentials"
    # The fuzz's key, and the key the helpers' boto3 clients (seeding, settling) sign with.
    path.write_text(f"[fuzz]\naws_access_key_id = {CREDENTIALS.access_key}\naws_secret_access_key = {CREDENTIALS.secret_key}\n"
                    "[tests]\naws_access_key_id = AKIDTEST\naws_secret_access_key = secret\n")
    return path


def _figures_of(workers: list[Worker]) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    sent: Counter[str] = Counter()
    for worker in workers:
        statuses += worker.tally.statuses + worker.fuzz.statuses
        sent += worker.tally.sent
    return {"sent": dict(sent), "statuses": dict(sorted(statuses.items()))}


def run_at_scale(make_server: Any, tmp_path: Path, total: int, *, seed_resources: bool) -> dict[str, Any]:
    seed = int(os.environ.get("CACHEFLEET_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    warm_up = max(len(OPERATIONS) * 2, total // 20)
    print(f"fuzz at scale: seed {seed}, {warm_up} + {total} requests, {THREADS} threads")
    server = make_server("--serverless-sizing", f"max_shards={SERVERLESS_SHARDS}",
                         "--credentials-file", str(_credentials_file(tmp_path)))
    assert server.process is not None
    pid = server.process.pid
    pools = Pools()
    with seed_on_failure(seed):
        first = Fuzz(server, seed, pools=pools, node_budget=0)
        if seed_resources:
            first.seed_resources()
        first.heaviest()
        # Past what the warm-up seeded, requests that would add nodes go spoiled only.
        budget = first.clusters_known
        workers = [Worker(server, seed + 10 * index, pools=pools, node_budget=budget) for index in range(THREADS)]
        _drive(workers, warm_up)
        # Measured with the resources settled: a node being created or replaced holds files and
        # connections of the control plane for a moment.
        wait_for(lambda: not unsettled(server), timeout=120, interval=0.5, what="the warm-up's resources to settle")
        warm = process_figures(pid)
        warm_nodes = len(engine_pids(server.data_dir))
        failed_early = {key: text for worker in workers for key, text in worker.tally.failures.items()}
        for worker in workers:  # counted from here on (the warm-up's failures fail the test too)
            worker.tally, worker.fuzz.statuses = Tally(), Counter()
        timeline: list[tuple[int, float]] = []  # (seconds into the run, VmRSS MiB): a leak climbs, churn does not
        sampling = threading.Event()
        sampler = threading.Thread(target=_sample_rss, args=(pid, timeline, sampling), daemon=True)
        sampler.start()
        elapsed = _drive(workers, total)
        sampling.set()
        sampler.join()
        wait_for(lambda: not unsettled(server), timeout=120, interval=0.5, what="fuzz resources to settle")
        after = process_figures(pid)
        after_nodes = len(engine_pids(server.data_dir))
        figures = {"seed": seed, "warm_up_requests": warm_up, "requests": total, "threads": THREADS,
                   "seconds": round(elapsed, 1), "requests_per_second": round(total / elapsed, 1),
                   **_figures_of(workers), "warm": warm, "after": after,
                   "engine_nodes": {"warm": warm_nodes, "after": after_nodes},
                   "rss_timeline": timeline,
                   "ring_files": len(list((server.data_dir / "metrics").rglob("*.ring"))),
                   "slowest_answer_s": round(max([w.fuzz.slowest[0] for w in workers] + [w.tally.slowest[0] for w in workers]), 2)}
        print("fuzz at scale:", json.dumps(figures))
        directory = os.environ.get("CACHEFLEET_CHAOS_REPORT")
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            (Path(directory) / f"fuzz-at-scale-{total}.json").write_text(json.dumps(figures, indent=1))

        failures = {**first.failures, **failed_early}
        for worker in workers:
            failures.update({**worker.fuzz.failures, **worker.tally.failures})
        if failures:  # raised, not asserted: pytest would print the whole dict again
            report = "\n".join(sorted(failures.values()))
            raise AssertionError(f"{len(failures)} kinds of bad answers in {total} requests:\n{report}")
        assert server.process is not None and server.process.poll() is None, "the server died"
        # And from the server's side: every answer >= 500 of the API logs its traceback under these words.
        logged = [line for line in server.log().splitlines() if "internal failure in" in line or "could not answer" in line]
        assert not logged, "\n".join(logged[:20])
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as response:
            assert json.loads(response.read())["pid"] == pid
        assert sum(figures["sent"].values()) == total, figures["sent"]
        assert set(figures["statuses"]) <= {"2xx", "4xx"}, figures["statuses"]
        called = {name for worker in workers for name, _ in worker.fuzz.codes}
        assert called == set(OPERATIONS), sorted(set(OPERATIONS) - called)
        assert after["rss_mib"] <= warm["rss_mib"] * (1 + RSS_GROWTH), (
            f"server VmRSS grew from {warm['rss_mib']:.1f} MiB after warm-up to {after['rss_mib']:.1f} MiB after {total} requests")
        rings = {"open": after["fd_kinds"].get("file ring", 0), "on disk": figures["ring_files"]}
        assert rings["open"] <= 2 * rings["on disk"], f"more metric ring files open than exist: {rings}"
        warm_other, after_other = (f["fds"] - f["fd_kinds"].get("file ring", 0) for f in (warm, after))
        fds_bound = warm_other + FDS_SLACK + FDS_PER_NODE * max(0, after_nodes - warm_nodes)
        assert after_other <= fds_bound, (
            f"open fds other than metric rings grew from {warm_other} to {after_other} ({warm_nodes} -> {after_nodes} nodes): "
            f"{warm['fd_kinds']} -> {after['fd_kinds']}")
        assert after["threads"] <= warm["threads"] + THREADS_SLACK, f"threads grew from {warm['threads']} to {after['threads']}"

        # Nothing half-created by requests racing one another.
        problems = incoherence(server)
        assert not problems, "\n".join(problems)
    return figures


def test_bad_input_at_scale_short(make_server, tmp_path, monkeypatch):
    # As in test_fuzz_every_operation: a fixed mmap threshold makes RSS follow live memory.
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    run_at_scale(make_server, tmp_path, 2000, seed_resources=False)


@pytest.mark.chaos
@pytest.mark.timeout(3600)  # 100,000 requests take 10 to 25 minutes on 2 loaded cores
def test_bad_input_at_scale(make_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    run_at_scale(make_server, tmp_path, int(os.environ.get("CACHEFLEET_FUZZ_SCALE_REQUESTS") or 100_000), seed_resources=True)
