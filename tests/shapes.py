"""Random values for botocore shapes, for round-trip and robustness tests."""

from __future__ import annotations

import datetime as dt
import random
import string
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape


def random_value(shape: Shape, rng: random.Random, depth: int = 0) -> Any:
    if isinstance(shape, StructureShape):
        if getattr(shape, "is_tagged_union", False):
            name = rng.choice(sorted(shape.members))
            return {name: random_value(shape.members[name], rng, depth + 1)}
        members = {}
        for name, member in shape.members.items():
            if name in shape.required_members or (depth < 4 and rng.random() < 0.6):
                value = random_value(member, rng, depth + 1)
                if value is not None:
                    members[name] = value
        if not members and shape.members and depth > 0:
            # An empty structure has no wire form; give it one member.
            name = rng.choice(sorted(shape.members))
            members[name] = random_value(shape.members[name], rng, depth + 1)
        return members
    if isinstance(shape, ListShape):
        low = shape.metadata.get("min", 0)
        count = max(low, rng.randint(0, 3 if depth < 4 else 1))
        return [random_value(shape.member, rng, depth + 1) for _ in range(count)]
    if isinstance(shape, MapShape):
        return {random_text(rng, shape.key): random_value(shape.value, rng, depth + 1) for _ in range(rng.randint(0, 2))}
    kind = shape.type_name
    if kind == "string":
        return random_text(rng, shape)
    if kind in ("integer", "long"):
        return rng.randint(shape.metadata.get("min", -1000), shape.metadata.get("max", 100000))
    if kind == "boolean":
        return rng.random() < 0.5
    if kind in ("double", "float"):
        return round(rng.uniform(-1e6, 1e6), 3)
    if kind == "timestamp":
        return dt.datetime(2026, rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59),
                           rng.randint(0, 59), rng.randint(0, 999) * 1000, tzinfo=dt.UTC)
    if kind == "blob":
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 8)))
    raise AssertionError(kind)


def random_text(rng: random.Random, shape: Shape) -> str:
    enum = shape.metadata.get("enum")
    if enum:
        return rng.choice(enum)
    low = shape.metadata.get("min", 0)
    high = min(shape.metadata.get("max", 24), 24)
    length = rng.randint(max(low, 1), max(high, low, 1))
    pattern = shape.metadata.get("pattern")
    if pattern == "\\d+":
        return "".join(rng.choice(string.digits) for _ in range(length))
    if pattern:  # identifiers: a letter, then letters and digits
        return rng.choice(string.ascii_letters) + "".join(rng.choice(string.ascii_letters) for _ in range(length - 1))
    alphabet = string.ascii_letters + string.digits + " -_.:/&<>\"'=+%é"
    return "".join(rng.choice(alphabet) for _ in range(length))
