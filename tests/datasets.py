"""Data sets of every type for restore tests and benchmarks, and their exact read-back for comparison."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

import redis

TYPES = ("string", "hash", "list", "set", "zset", "stream", "hll", "geo")


def key_names(count: int, seed: int = 1) -> list[bytes]:
    """Distinct keys over all slots: plain, binary, and some sharing a hash tag."""
    rng = random.Random(seed)
    names: list[bytes] = []
    for n in range(count):
        kind = TYPES[n % len(TYPES)]
        if n % 11 == 0:
            names.append(b"{tag%d}:%s:%d" % (n % 97, kind.encode(), n))
        elif n % 13 == 0:
            names.append(b"bin\x00\xff%s%d" % (kind.encode(), n))
        else:
            names.append(b"%s:%d:%d" % (kind.encode(), n, rng.randrange(10**9)))
    return names


def fill(client: redis.Redis, count: int, *, seed: int = 1, ttl_share: int = 3, big_every: int = 50) -> list[bytes]:
    """``count`` keys cycling through every type, every ``ttl_share``-th with a TTL of 1-3 hours;
    every ``big_every``-th collection large enough for the engine's non-compact encoding."""
    rng = random.Random(seed)
    names = key_names(count, seed)
    pipe = client.pipeline(transaction=False)
    for n, key in enumerate(names):
        kind = TYPES[n % len(TYPES)]
        size = 300 if n % big_every == 0 else rng.randrange(1, 8)
        if kind == "string":
            pipe.set(key, rng.randbytes(rng.choice((3, 40, 700))) if n % 2 else str(rng.randrange(10**6)))
        elif kind == "hash":
            pipe.hset(key, mapping={f"f{i}": rng.randbytes(12) for i in range(size)})
        elif kind == "list":
            pipe.rpush(key, *[rng.randbytes(9) for _ in range(size)])
        elif kind == "set":
            pipe.sadd(key, *([rng.randrange(10**6) for _ in range(size)] if n % 3 else [rng.randbytes(8) for _ in range(size)]))
        elif kind == "zset":
            pipe.zadd(key, {rng.randbytes(6): rng.uniform(-1e6, 1e6) for _ in range(size)})
        elif kind == "stream":
            for i in range(min(size, 20)):
                pipe.xadd(key, {"i": i, "v": rng.randbytes(5)}, id=f"{1000 + i}-{n % 5}")
            pipe.xgroup_create(key, "g1", id="0")
            pipe.xgroup_create(key, "g2", id="$")
            pipe.xreadgroup("g1", "alice", {key: ">"}, count=2)
            pipe.xreadgroup("g1", "bob", {key: ">"}, count=1)
        elif kind == "hll":
            pipe.pfadd(key, *[rng.randbytes(6) for _ in range(size * 5)])
        elif kind == "geo":
            values: list[Any] = []
            for i in range(size):
                values += [rng.uniform(-179, 179), rng.uniform(-84, 84), f"p{i}"]
            pipe.geoadd(key, values)
        if n % ttl_share == 0:
            pipe.pexpire(key, rng.randrange(3_600_000, 10_800_000))
        if len(pipe) > 2000:
            pipe.execute()
    pipe.execute()
    return names


def read_back(client: redis.Redis, keys: Sequence[bytes]) -> dict[bytes, tuple[Any, ...]]:
    """key -> (type, value in a comparable form, absolute expiry in ms or -1)."""
    result: dict[bytes, tuple[Any, ...]] = {}
    for start in range(0, len(keys), 2000):
        chunk = keys[start : start + 2000]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.type(key)
            pipe.execute_command("PEXPIRETIME", key)
        meta = pipe.execute()
        pipe = client.pipeline(transaction=False)
        for key, kind in zip(chunk, meta[0::2], strict=True):
            _read(pipe, key, kind)
        values = pipe.execute()
        for key, kind, expires, value in zip(chunk, meta[0::2], meta[1::2], values, strict=True):
            result[key] = (kind, _comparable(kind, value), expires)
    return result


def _read(pipe: Any, key: bytes, kind: bytes) -> None:
    if kind == b"string":
        pipe.get(key)
    elif kind == b"hash":
        pipe.hgetall(key)
    elif kind == b"list":
        pipe.lrange(key, 0, -1)
    elif kind == b"set":
        pipe.smembers(key)
    elif kind == b"zset":
        pipe.zrange(key, 0, -1, withscores=True)
    elif kind == b"stream":
        pipe.execute_command("XINFO", "STREAM", key, "FULL")
    else:
        pipe.exists(key)


def _comparable(kind: bytes, value: Any) -> Any:
    if kind == b"set":
        return sorted(value)
    return repr(value)


def compare(expected: dict[bytes, tuple[Any, ...]], actual: dict[bytes, tuple[Any, ...]], *, ttl_slack_ms: int = 1000) -> list[str]:
    """What differs, in words (empty when everything matches): types and values exactly, expiries within the slack."""
    problems: list[str] = []
    for key, (kind, value, expires) in expected.items():
        got = actual.get(key)
        if got is None:
            problems.append(f"{key!r}: missing")
            continue
        if got[0] != kind or got[1] != value:
            problems.append(f"{key!r}: {kind!r} {str(value)[:80]} became {got[0]!r} {str(got[1])[:80]}")
        elif (expires == -1) != (got[2] == -1) or abs(int(got[2]) - int(expires)) > ttl_slack_ms:
            problems.append(f"{key!r}: expiry {expires} became {got[2]}")
        if len(problems) > 10:
            break
    return problems


def count_by_type(values: Iterable[tuple[Any, ...]]) -> dict[bytes, int]:
    counts: dict[bytes, int] = {}
    for kind, _, _ in values:
        counts[kind] = counts.get(kind, 0) + 1
    return counts
