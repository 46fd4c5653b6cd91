"""CloudWatch's metric nouns and the pure arithmetic of its queries.

Statistics over periods, period rules, the datapoint limits and metric math expressions for
GetMetricData. Nothing here reads samples: a :class:`~cachefleet.domain.ports.MetricSource`
hands in columns of samples, and these functions turn them into datapoints.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cachefleet.domain.errors import InvalidParameterCombination, InvalidParameterValue, ValidationError

STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
HIGH_RESOLUTION_PERIODS = (1, 5, 10, 30)
MAX_STATISTICS_DATAPOINTS = 1440  # GetMetricStatistics
MAX_METRIC_DATA_DATAPOINTS = 100_800  # GetMetricData, per call (then NextToken)
MAX_METRIC_DATA_QUERIES = 500
SECOND_RETENTION = 3 * 3600  # 1-second samples are kept this long
_PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d{1,2})?|100)$")
_QUERY_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class MetricId:
    """A metric is its namespace, name and exact set of dimensions (sorted by name)."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, namespace: str, name: str, dimensions: Sequence[tuple[str, str]] = ()) -> MetricId:
        return cls(namespace, name, tuple(sorted(dimensions)))

    def dimension(self, name: str) -> str | None:
        return next((value for key, value in self.dimensions if key == name), None)


@dataclass(frozen=True)
class Samples:
    """Samples of one metric in time order, at the source's resolution ``step`` (seconds).

    For 1-second samples ``counts``, ``mins`` and ``maxs`` are None: each sample is one value
    (``sums``). For 1-minute aggregates every column is given.
    """

    step: int
    timestamps: Sequence[float]
    sums: Sequence[float]
    counts: Sequence[float] | None = None
    mins: Sequence[float] | None = None
    maxs: Sequence[float] | None = None
    unit: str = "None"


@dataclass
class Datapoint:
    """One period's statistics of a metric."""

    timestamp: float
    sample_count: float = 0.0
    total: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf
    values: list[float] = field(default_factory=list)

    @property
    def average(self) -> float:
        return self.total / self.sample_count if self.sample_count else 0.0

    def statistic(self, name: str) -> float:
        if name == "SampleCount":
            return self.sample_count
        if name == "Sum":
            return self.total
        if name == "Minimum":
            return self.minimum
        if name == "Maximum":
            return self.maximum
        if name == "Average":
            return self.average
        return percentile(self.values, float(name[1:]))


def check_period(period: int, name: str = "Period") -> int:
    if period in HIGH_RESOLUTION_PERIODS or (period >= 60 and period % 60 == 0):
        return period
    raise InvalidParameterValue(
        f"The parameter {name} must be 1, 5, 10, 30 (high resolution) or a multiple of 60; got {period}."
    )


def check_statistic(name: str) -> str:
    if name in STATISTICS or _PERCENTILE.match(name):
        return name
    raise InvalidParameterValue(
        f"Invalid statistic '{name}': use one of {', '.join(STATISTICS)} or a percentile such as p99."
    )


def align_start(start: float, period: int) -> float:
    """CloudWatch rounds a start time down: to the period for high resolution, else to the minute."""
    unit = period if period < 60 else 60
    return math.floor(start / unit) * unit


def count_datapoints(start: float, end: float, period: int) -> int:
    return max(0, math.ceil((end - align_start(start, period)) / period))


def aggregate(samples: Samples, start: float, end: float, period: int, *, keep_values: bool = False) -> list[Datapoint]:
    """Datapoints of ``period`` seconds from ``start`` (aligned) to ``end`` (exclusive), oldest first.

    Samples come in time order, so each period is a slice: its statistics are computed by the
    built-ins over the slice, not value by value.
    """
    origin = align_start(start, period)
    timestamps, sums = samples.timestamps, samples.sums
    counts, mins, maxs = samples.counts, samples.mins, samples.maxs
    points: list[Datapoint] = []
    index = bisect.bisect_left(timestamps, origin)
    stop = bisect.bisect_left(timestamps, end)
    while index < stop:
        bucket = int((timestamps[index] - origin) // period)
        bucket_start = origin + bucket * period
        upper = min(bisect.bisect_left(timestamps, bucket_start + period, index, stop), stop)
        values = sums[index:upper]
        if counts is None:
            point = Datapoint(bucket_start, float(len(values)), math.fsum(values), min(values), max(values))
            if keep_values:
                point.values = list(values)
        else:
            assert mins is not None and maxs is not None
            weights = counts[index:upper]
            point = Datapoint(bucket_start, math.fsum(weights), math.fsum(values), min(mins[index:upper]),
                              max(maxs[index:upper]))
            if keep_values:
                point.values = [total / count for total, count in zip(values, weights, strict=True) if count]
        if point.sample_count:
            points.append(point)
        index = upper
    return points


def percentile(values: Sequence[float], rank: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    position = max(0, math.ceil(rank / 100 * len(ordered)) - 1)
    return ordered[min(position, len(ordered) - 1)]


# ---------------------------------------------------------------------- metric math
Series = dict[float, float]  # timestamp -> value


@dataclass(frozen=True)
class Labelled:
    """A series with its label (GetMetricData)."""

    label: str
    series: Series


Value = float | Series | list[Labelled]


class Expression:
    """A metric math expression: ids, numbers, + - * /, parentheses and a few functions.

    Functions: SUM, AVG, MIN, MAX (of METRICS() or a series: per timestamp across series; of
    one series: a constant line), METRICS() and METRICS("label part"), ABS.
    Arithmetic between series keeps the timestamps both have.
    """

    _TOKEN = re.compile(r'\s*(?:(?P<number>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|'
                        r'(?P<string>"[^"]*"|\'[^\']*\')|(?P<op>[-+*/(),]))')

    def __init__(self, text: str) -> None:
        self.text = text
        self._tokens = self._tokenize(text)
        self._position = 0

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        tokens, index = [], 0
        while index < len(text):
            if text[index:].strip() == "":
                break
            match = self._TOKEN.match(text, index)
            if not match:
                raise self._error(f"unexpected character '{text[index:].strip()[0]}'")
            kind = match.lastgroup or ""
            tokens.append((kind, match.group(kind)))
            index = match.end()
        return tokens

    def _error(self, problem: str) -> ValidationError:
        return ValidationError(f"Error in expression '{self.text}': {problem}.")

    def references(self) -> set[str]:
        return {value for kind, value in self._tokens if kind == "name" and value[0].islower()}

    def evaluate(self, lookup: Callable[[str], Value], metrics: Callable[[str], list[Labelled]]) -> Value:
        self._position = 0
        self._lookup, self._metrics = lookup, metrics
        result = self._sum()
        if self._position != len(self._tokens):
            raise self._error(f"unexpected '{self._tokens[self._position][1]}'")
        return result

    def _peek(self) -> tuple[str, str] | None:
        return self._tokens[self._position] if self._position < len(self._tokens) else None

    def _take(self, value: str | None = None) -> tuple[str, str]:
        token = self._peek()
        if token is None or (value is not None and token[1] != value):
            raise self._error(f"expected '{value}'" if value else "unexpected end")
        self._position += 1
        return token

    def _sum(self) -> Value:
        left = self._product()
        while (token := self._peek()) is not None and token[1] in "+-" and token[0] == "op":
            self._take()
            left = _combine(left, self._product(), token[1], self._error)
        return left

    def _product(self) -> Value:
        left = self._unary()
        while (token := self._peek()) is not None and token[1] in "*/" and token[0] == "op":
            self._take()
            left = _combine(left, self._unary(), token[1], self._error)
        return left

    def _unary(self) -> Value:
        token = self._peek()
        if token == ("op", "-"):
            self._take()
            return _combine(-1.0, self._unary(), "*", self._error)
        return self._atom()

    def _atom(self) -> Value:
        kind, value = self._take()
        if kind == "number":
            return float(value)
        if kind == "op" and value == "(":
            inner = self._sum()
            self._take(")")
            return inner
        if kind == "name":
            if self._peek() == ("op", "("):
                return self._call(value.upper())
            if not value[0].islower():
                raise self._error(f"unknown name '{value}'")
            return self._lookup(value)
        raise self._error(f"unexpected '{value}'")

    def _call(self, function: str) -> Value:
        self._take("(")
        arguments: list[Value] = []
        if function == "METRICS":
            pattern = ""
            if self._peek() is not None and self._peek()[0] == "string":  # type: ignore[index]
                pattern = self._take()[1][1:-1]
            self._take(")")
            return self._metrics(pattern)
        if self._peek() != ("op", ")"):
            arguments.append(self._sum())
            while self._peek() == ("op", ","):
                self._take()
                arguments.append(self._sum())
        self._take(")")
        return _function(function, arguments, self._error)


def _combine(left: Value, right: Value, op: str, error: Callable[[str], ValidationError]) -> Value:
    if isinstance(left, list) or isinstance(right, list):
        if isinstance(left, list) and isinstance(right, list):
            raise error("cannot combine two lists of time series")
        if isinstance(left, list):
            return [Labelled(item.label, _combine(item.series, right, op, error)) for item in left]  # type: ignore[arg-type]
        assert isinstance(right, list)
        return [Labelled(item.label, _combine(left, item.series, op, error)) for item in right]  # type: ignore[arg-type]
    if isinstance(left, float) and isinstance(right, float):
        return _apply(left, right, op)
    if isinstance(left, float):
        assert isinstance(right, dict)
        return {t: _apply(left, v, op) for t, v in right.items()}
    if isinstance(right, float):
        return {t: _apply(v, right, op) for t, v in left.items()}
    return {t: _apply(v, right[t], op) for t, v in left.items() if t in right}


def _apply(a: float, b: float, op: str) -> float:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a / b if b else math.nan


def _function(name: str, arguments: list[Value], error: Callable[[str], ValidationError]) -> Value:
    reducers: dict[str, Callable[[list[float]], float]] = {
        "SUM": sum, "AVG": lambda v: sum(v) / len(v), "MIN": min, "MAX": max,
    }
    if name in reducers:
        if len(arguments) != 1:
            raise error(f"{name} takes one argument")
        argument = arguments[0]
        reduce = reducers[name]
        if isinstance(argument, list):
            merged: dict[float, list[float]] = {}
            for item in argument:
                for stamp, value in item.series.items():
                    merged.setdefault(stamp, []).append(value)
            return {stamp: reduce(values) for stamp, values in sorted(merged.items())}
        if isinstance(argument, dict):
            if not argument:
                return {}
            total = reduce(list(argument.values()))
            return {stamp: total for stamp in argument}
        return argument
    if name == "ABS":
        if len(arguments) != 1:
            raise error("ABS takes one argument")
        argument = arguments[0]
        if isinstance(argument, float):
            return abs(argument)
        if isinstance(argument, dict):
            return {t: abs(v) for t, v in argument.items()}
        return [Labelled(item.label, {t: abs(v) for t, v in item.series.items()}) for item in argument]
    raise error(f"unknown function {name}")


def check_query_id(query_id: str, index: int) -> str:
    if not _QUERY_ID.match(query_id):
        raise InvalidParameterValue(
            f"The value {query_id} for parameter MetricDataQueries.member.{index}.Id is not matching the expected "
            "pattern ^[a-z][a-zA-Z0-9_]*$."
        )
    return query_id


def check_range(start: float, end: float) -> None:
    if start >= end:
        raise InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")


def too_many_datapoints(requested: int, limit: int) -> InvalidParameterCombination:
    return InvalidParameterCombination(
        f"You have requested up to {requested:,} datapoints, which exceeds the limit of {limit:,}. You may reduce "
        "the datapoints requested by increasing Period, or decreasing the time range."
    )
