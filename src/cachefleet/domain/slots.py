"""Hash slots: the ranges ElastiCache writes (``0-5461,10923-16383``), even splits, and rebalancing plans."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from cachefleet.domain.errors import InvalidParameterValue

SLOTS = 16384


def parse(ranges: str, *, parameter: str = "Slots") -> set[int]:
    """``"0-5,9"`` -> {0, ..., 5, 9}; refuses malformed ranges and slots outside 0-16383."""
    slots: set[int] = set()
    for part in ranges.replace(" ", "").split(","):
        if not part:
            continue
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise InvalidParameterValue(
                f"Invalid {parameter} '{ranges}': write slot ranges like 0-5460,5461-10922 (start-end, comma separated)."
            )
        first, last = int(low), int(high) if dash else int(low)
        if first > last or last >= SLOTS:
            raise InvalidParameterValue(
                f"Invalid {parameter} '{ranges}': the range {part} must go upwards and stay within 0-{SLOTS - 1}."
            )
        slots.update(range(first, last + 1))
    return slots


def format_ranges(slots: Iterable[int]) -> str:
    """{0, 1, 2, 9} -> ``"0-2,9"``"""
    ordered = sorted(set(slots))
    parts: list[str] = []
    index = 0
    while index < len(ordered):
        start = end = ordered[index]
        while index + 1 < len(ordered) and ordered[index + 1] == end + 1:
            index += 1
            end = ordered[index]
        parts.append(f"{start}-{end}" if start != end else str(start))
        index += 1
    return ",".join(parts)


def ranges_of(slots: Iterable[int]) -> list[tuple[int, int]]:
    result = []
    for part in format_ranges(slots).split(","):
        if part:
            low, _, high = part.partition("-")
            result.append((int(low), int(high or low)))
    return result


def even(count: int) -> list[set[int]]:
    """Slots spread evenly over ``count`` shards; the first shards take the remainder."""
    base, extra = divmod(SLOTS, count)
    result, start = [], 0
    for index in range(count):
        size = base + (1 if index < extra else 0)
        result.append(set(range(start, start + size)))
        start += size
    return result


def check_partition(parts: Sequence[set[int]], *, names: Sequence[str]) -> None:
    """Every slot in exactly one part: no overlap, no gap."""
    owner: dict[int, str] = {}
    for name, part in zip(names, parts, strict=True):
        if not part:
            raise InvalidParameterValue(f"Node group {name} has no slots; give every node group a slot range.")
        for slot in part:
            if slot in owner:
                raise InvalidParameterValue(
                    f"Slot {slot} is given to both node group {owner[slot]} and node group {name}; slot ranges must not overlap."
                )
            owner[slot] = name
    if len(owner) != SLOTS:
        missing = format_ranges(set(range(SLOTS)) - set(owner))
        raise InvalidParameterValue(
            f"Slots {missing} are not given to any node group; the slot ranges must cover 0-{SLOTS - 1} exactly."
        )


def rebalance(current: Mapping[str, set[int]], final: Sequence[str]) -> dict[str, set[int]]:
    """Target slots for the ``final`` shards, moving as few slots as possible.

    Shards that stay keep their lowest slots up to their even share; slots of shards that
    leave, and surplus slots, go to shards below their share, in slot order.
    """
    sizes = {name: len(part) for name, part in zip(final, even(len(final)), strict=True)}
    target: dict[str, set[int]] = {}
    free: list[int] = []
    for name in final:
        mine = sorted(current.get(name, set()))
        target[name] = set(mine[: sizes[name]])
        free += mine[sizes[name] :]
    for name, slots in current.items():
        if name not in sizes:
            free += sorted(slots)
    free.sort()
    for name in final:
        need = sizes[name] - len(target[name])
        if need > 0:
            target[name].update(free[:need])
            free = free[need:]
    return target


def moves(current: Mapping[str, set[int]], target: Mapping[str, set[int]]) -> int:
    """How many slots are not yet where ``target`` wants them."""
    return sum(len(slots - current.get(name, set())) for name, slots in target.items())
