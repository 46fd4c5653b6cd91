"""Values for botocore shapes, in one place: valid ones for round trips, hostile ones for fuzzing.

- ``random_value`` makes a value any client could send (types, enums, lengths and ranges kept).
- ``Fuzzer`` walks an operation's input shape: valid-looking values first (hints by member name,
  so that a request gets past the parameter checks and reaches the use case), then spoils some
  leaves with wrong types, out-of-range numbers, huge strings, empty strings and lists, unicode
  and control characters, unknown members; ``Fuzzer.spoil_form`` does what only the wire can
  carry (duplicated and odd list indexes, repeated keys, bytes that are not UTF-8).
- ``flatten`` writes any such value as Query-protocol form pairs, whatever its types, so that
  wrong types reach the server (botocore's own serializer refuses or coerces them).
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import string
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape


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


# ---------------------------------------------------------------------- hostile values
HUGE = 100 * 1024  # "huge" starts here: far past any length ElastiCache accepts

_ODD_TEXT = (
    "", " ", "\t", "  padded  ", "\u00e9\u00e8\u00ea", "\U0001f600\U0001f4a9", "\u202eevil\u202c", "a\u0301\u0302\u0303",
    "\u200b", "\ufeffbom", "\x00", "nul\x00inside", "\x01\x02\x1f\x7f", "line\nbreak\r\n", "<tag>&amp;]]>", "\"'`",
    "'; DROP TABLE resources; --", "%s%n%x{0}", "../../etc/passwd", "null", "None", "undefined", "-1", "0", "1e309",
    "true", "arn:aws:elasticache:us-east-1:000000000000:", "\ud7ff\ue000\ufffd", "\U00010000\U0010ffff",
)
_ODD_INTEGERS = (
    -1, 0, 1, 2**31 - 1, 2**31, -(2**31) - 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**30, -(10**30),
    "", " 7", "7 ", "+7", "-0", "0x1f", "1_000", "7.5", "1e3", "1e309", "NaN", "Infinity", "-Infinity", "seven",
    "\u0667", "true", "9" * 400,
)
_ODD_BOOLEANS = ("", "yes", "no", "1", "0", "TRUE", "False", "t", "null", " true", 2, -1)
_EDGE_TIMESTAMPS = (  # the ends of the calendar, where date arithmetic overflows
    "9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-12:00",
    "0001-01-01T00:00:00+14:00", "253402300799", "253402300800", "99999999999999999999", "1e20", "0",
)
_ODD_TIMESTAMPS = (
    "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01T25:61:61Z", "2026-01-01T00:00:00+99:00",
    "", "now", "yesterday", "-1", "0", "1e20", "99999999999999999999", "253402300800", "253402300799.999999",
    "1.5e9", "2026-01-01", "20260101T000000Z", "2026-01-01T00:00:00.123456789Z", "NaN",
)
_ODD_DOUBLES = ("NaN", "nan", "inf", "-inf", "Infinity", "1e309", "-1e309", "4.9e-324", "", "1,5", "0x1p3", 10**400)


_HUGE_CHUNKS = ("A", "a-", "1", "\u00e9", "\U0001f600", "<&>", "%", "\x00", "Z" * 63 + "\u202e")
_HUGE_SIZES = (HUGE + 1, 2 * HUGE, 4 * HUGE)
_huge_cache: dict[tuple[str, int], str] = {}


def huge_text(rng: random.Random) -> str:
    """100 KB to 400 KB of one of a few kinds of text. There are few of them, each made once: the
    same string objects come back, so that their encoding can be cached too (see ``quoted``)."""
    chunk = rng.choice(_HUGE_CHUNKS)
    # Percent-decoding is slow in Python (a quarter of a second per 100 KB of emoji, on either
    # side): text that needs escaping stays at the smallest huge size.
    size = rng.choice(_HUGE_SIZES) if chunk.isascii() and chunk.isalnum() else _HUGE_SIZES[0]
    text = _huge_cache.get((chunk, size))
    if text is None:
        text = _huge_cache[(chunk, size)] = (chunk * (size // len(chunk) + 1))[:size]
    return text


_quoted_cache: dict[str, str] = {}


def quoted(value: str | bytes) -> str:
    """``quote_plus``, cached for long strings: percent-encoding 400 KB of emoji takes Python a
    quarter of a second, and the huge strings repeat."""
    if isinstance(value, bytes) or len(value) < 4096:
        return urllib.parse.quote_plus(value)
    found = _quoted_cache.get(value)
    if found is None:
        found = _quoted_cache[value] = urllib.parse.quote_plus(value)
    return found


def form_body(pairs: list[tuple[str, str | bytes]]) -> bytes:
    """The urlencoded body of ``pairs`` (repeated keys and bytes that are not UTF-8 kept)."""
    return "&".join(f"{quoted(key)}={quoted(value)}" for key, value in pairs).encode()


def hostile_text(rng: random.Random, shape: Shape | None = None) -> str:
    roll = rng.random()
    if roll < 0.08:
        return huge_text(rng)
    if shape is not None and roll < 0.25:
        high = shape.metadata.get("max")
        low = shape.metadata.get("min")
        if high is not None and high < HUGE:
            return "x" * (high + 1)  # one past the limit
        if low:
            return "x" * (low - 1)
        if shape.metadata.get("enum"):
            return rng.choice(shape.metadata["enum"]).upper() + rng.choice(["", " ", "x"])
    if roll < 0.35:
        return "a" * rng.choice([39, 40, 41, 50, 51, 63, 64, 128, 129, 255, 256, 257, 1024])
    return rng.choice(_ODD_TEXT)


def hostile_value(shape: Shape, rng: random.Random) -> Any:
    """A value meant to be refused: of the wrong type, out of range, huge, empty or strange."""
    if rng.random() < 0.15:  # the wrong kind of thing altogether
        return rng.choice([
            hostile_text(rng), rng.choice(_ODD_INTEGERS), [], ["x", "y"], {"Bogus": "1"}, {}, True, 3.25,
        ])
    if isinstance(shape, StructureShape):
        return rng.choice([{}, {"Bogus": hostile_text(rng)}, hostile_text(rng)])
    if isinstance(shape, ListShape):
        choice = rng.random()
        if choice < 0.35:
            return []
        if choice < 0.55:
            return [hostile_value(shape.member, rng) for _ in range(rng.randint(1, 3))]
        if choice < 0.7:
            return [random_value(shape.member, rng, depth=4)] * rng.choice([2, 101, 1001, 5000])  # duplicates, many
        return hostile_text(rng)
    if isinstance(shape, MapShape):
        return rng.choice([{}, {"": ""}, {hostile_text(rng): hostile_text(rng)}])
    kind = shape.type_name
    if kind == "string":
        return hostile_text(rng, shape)
    if kind in ("integer", "long"):
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and rng.random() < 0.2:
            return low - 1
        if high is not None and rng.random() < 0.2:
            return high + 1
        return rng.choice(_ODD_INTEGERS)
    if kind == "boolean":
        return rng.choice(_ODD_BOOLEANS)
    if kind == "timestamp":
        return rng.choice(_EDGE_TIMESTAMPS if rng.random() < 0.5 else _ODD_TIMESTAMPS)
    if kind in ("double", "float"):
        return rng.choice(_ODD_DOUBLES)
    if kind == "blob":
        return rng.choice(["not base64!", "====", "", huge_text(rng)])
    raise AssertionError(kind)


Hints = Mapping[str, Callable[[], Any]]


class Fuzzer:
    """Makes requests for operations of one botocore model, valid-looking or spoiled.

    ``hints`` give valid-looking values by member name (``CacheNodeType``, ``ReplicationGroupId``...);
    the caller knows which resources exist and can hand their names out. ``hostility`` is the chance
    that a member gets a hostile value instead.
    """

    def __init__(self, rng: random.Random, hints: Hints | None = None, *, usual: frozenset[str] = frozenset()) -> None:
        self.rng = rng
        self.hints = hints or {}
        self.usual = usual  # optional members a careful client sends anyway (CacheNodeType...)

    def request(self, operation: OperationModel, *, hostility: float, spoil: int = 0) -> dict[str, Any]:
        """A request whose members are each hostile with chance ``hostility``, then ``spoil`` more
        members (present or not, at any depth) made hostile: a valid request with one bad member
        gets furthest into the server."""
        shape = operation.input_shape
        if shape is None:
            return {}
        value = self._structure(shape, hostility, depth=0)
        for _ in range(spoil):
            self._spoil(shape, value, depth=0)
        if hostility and self.rng.random() < hostility:
            value["Bogus" + self.rng.choice(["", "Member", "Id"])] = hostile_text(self.rng)  # an unknown member
        return value

    def _spoil(self, shape: StructureShape, value: dict[str, Any], depth: int) -> None:
        rng = self.rng
        if not shape.members:
            value["Bogus"] = hostile_text(rng)
            return
        name = rng.choice(sorted(shape.members))
        member, current = shape.members[name], value.get(name)
        if depth < 3 and rng.random() < 0.5:
            if isinstance(member, StructureShape) and isinstance(current, dict):
                return self._spoil(member, current, depth + 1)
            if isinstance(member, ListShape) and isinstance(member.member, StructureShape) and isinstance(current, list):
                items = [item for item in current if isinstance(item, dict)]
                if items:
                    return self._spoil(member.member, rng.choice(items), depth + 1)
        value[name] = hostile_value(member, rng)

    def _value(self, name: str, shape: Shape, hostility: float, depth: int) -> Any:
        rng = self.rng
        if hostility and rng.random() < hostility:
            return hostile_value(shape, rng)
        hint = self.hints.get(name)
        if hint is not None and rng.random() < 0.95:
            return hint()
        if isinstance(shape, StructureShape):
            return self._structure(shape, hostility, depth)
        if isinstance(shape, ListShape):
            low = shape.metadata.get("min", 0)
            count = max(low, rng.randint(1, 3 if depth < 3 else 1))
            return [self._value(name, shape.member, hostility, depth + 1) for _ in range(count)]
        if isinstance(shape, MapShape):
            return {random_text(rng, shape.key): self._value(name, shape.value, hostility, depth + 1)
                    for _ in range(rng.randint(1, 2))}
        return random_value(shape, rng, depth)

    def _structure(self, shape: StructureShape, hostility: float, depth: int) -> dict[str, Any]:
        rng = self.rng
        members: dict[str, Any] = {}
        if getattr(shape, "is_tagged_union", False):
            names = [rng.choice(sorted(shape.members))]
        else:
            # Required members are left out now and then (MissingParameter); of the optional ones
            # a few at a time, and when the request is to look valid, mostly those with a hint (the
            # others would rarely hold a value the server accepts).
            optional = len(shape.members) - len(shape.required_members)
            chance = min(0.5, 2.5 / optional) if optional and depth < 4 else 0.0
            names = []
            for name in shape.members:
                if name in shape.required_members:
                    wanted = rng.random() > hostility * 0.3
                elif not hostility:
                    wanted = rng.random() < (0.9 if name in self.usual else chance if name in self.hints else chance / 10)
                else:
                    wanted = rng.random() < chance
                if wanted:
                    names.append(name)
        for name in names:
            members[name] = self._value(name, shape.members[name], hostility, depth + 1)
        return members

    def spoil_form(self, pairs: list[tuple[str, str | bytes]]) -> list[tuple[str, str | bytes]]:
        """Wire-level damage: repeated keys, duplicated/zero/negative/huge list indexes, a key with
        no value, a dropped pair, bytes that are not UTF-8."""
        rng = self.rng
        spoiled = list(pairs)
        payload = [p for p in spoiled if p[0] not in ("Action", "Version")]
        for _ in range(rng.randint(1, 3)):
            roll = rng.random()
            key, value = rng.choice(payload) if payload else ("Bogus", "1")
            if roll < 0.2:
                spoiled.append((key, hostile_text(rng)))  # the same key twice
            elif roll < 0.45 and "." in key and key.rsplit(".", 1)[-1].isdigit():
                head = key.rsplit(".", 1)[0]
                index = rng.choice(["1", "0", "-1", "01", "1.5", "x", "", "99999999999999999999", "4294967297"])
                spoiled.append((f"{head}.{index}", value))  # a duplicated or odd list index
            elif roll < 0.55:
                parts = key.split(".")
                spoiled.append((".".join(parts[: max(1, len(parts) - 2)]), ""))  # a list named but empty
            elif roll < 0.65 and spoiled:
                spoiled.remove(rng.choice(spoiled))
            elif roll < 0.8:
                spoiled.append((key, rng.choice([b"\xff\xfe", b"\xed\xa0\x80", b"\xc3", b"ok\x80"])))
            elif roll < 0.9:
                spoiled.append((rng.choice(["Version", "Action", "X-Amz-Date", "bogus.member.1", "."]), hostile_text(rng)))
            else:
                spoiled.append((key + ".member.1", str(value)[:64]))  # a scalar used as a list
        return spoiled


# ---------------------------------------------------------------------- the Query wire form
def flatten(shape: Shape | None, value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """The Query-protocol pairs of ``value`` laid out after ``shape`` (botocore's layout), whatever
    the value's types: a wrong type is written as it is, an unknown member under its own name."""
    pairs: list[tuple[str, str]] = []
    _flatten(shape, value, prefix, pairs)
    return pairs


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _flatten(shape: Shape | None, value: Any, prefix: str, pairs: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        members = shape.members if isinstance(shape, StructureShape) else {}
        if isinstance(shape, MapShape):
            base = prefix if shape.serialization.get("flattened") else _join(prefix, "entry")
            key_name = shape.key.serialization.get("name", "key")
            value_name = shape.value.serialization.get("name", "value")
            for index, (key, item) in enumerate(value.items(), 1):
                _flatten(shape.key, key, f"{base}.{index}.{key_name}", pairs)
                _flatten(shape.value, item, f"{base}.{index}.{value_name}", pairs)
            return
        for name, item in value.items():
            member = members.get(name)
            wire = member.serialization.get("name", name) if member is not None else name
            _flatten(member, item, _join(prefix, wire), pairs)
        return
    if isinstance(value, list | tuple):
        if not value:
            pairs.append((prefix, ""))
            return
        if isinstance(shape, ListShape):
            item_shape: Shape | None = shape.member
            if shape.serialization.get("flattened"):
                item_name = shape.member.serialization.get("name")
                base = ".".join(prefix.split(".")[:-1] + [item_name]) if item_name else prefix
            else:
                base = _join(prefix, shape.member.serialization.get("name", "member"))
        else:
            item_shape, base = None, _join(prefix, "member")
        for index, item in enumerate(value, 1):
            _flatten(item_shape, item, f"{base}.{index}", pairs)
        return
    pairs.append((prefix, wire_text(value)))


def wire_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, float):
        return repr(value)
    return str(value)
