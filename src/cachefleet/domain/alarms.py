"""CloudWatch metric alarms: the record, and the pure decision of one evaluation.

An evaluation looks at the last ``EvaluationPeriods`` datapoints of the alarm's statistic
(oldest first, None where a period had no data), applies ``TreatMissingData`` and
``DatapointsToAlarm`` ("M out of N"), and returns the state the alarm should be in with the
reason CloudWatch would give. Side effects (storing the state, notifying) happen elsewhere.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from cachefleet.domain.identifiers import Region
from cachefleet.domain.resource import Kind
from cachefleet.domain.tags import Tag

MAX_HISTORY = 100


class AlarmState(StrEnum):
    """The states of a CloudWatch alarm."""

    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


COMPARISONS: dict[str, tuple[str, str]] = {
    # operator -> (how CloudWatch words it, how it words the negation)
    "GreaterThanOrEqualToThreshold": ("greater than or equal to", "not greater than or equal to"),
    "GreaterThanThreshold": ("greater than", "not greater than"),
    "LessThanThreshold": ("less than", "not less than"),
    "LessThanOrEqualToThreshold": ("less than or equal to", "not less than or equal to"),
}
TREAT_MISSING = ("breaching", "notBreaching", "ignore", "missing")


@dataclass(frozen=True)
class HistoryItem:
    """One entry of an alarm's history (DescribeAlarmHistory)."""

    timestamp: dt.datetime
    item_type: str  # ConfigurationUpdate | StateUpdate | Action
    summary: str
    data: str = ""


@dataclass(frozen=True)
class MetricAlarm:
    """A CloudWatch metric alarm: its configuration, state and history."""

    KIND: ClassVar[Kind] = Kind(
        name="MetricAlarm", noun="Alarm", not_found="ResourceNotFound", quota_exceeded="LimitExceededFault",
        invalid_state="InvalidFormatFault",
    )

    region: Region
    name: str
    arn: str
    metric_name: str
    namespace: str
    statistic: str  # a statistic or a percentile (p99)
    dimensions: tuple[tuple[str, str], ...]
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison_operator: str
    treat_missing_data: str
    configuration_updated: dt.datetime
    description: str = ""
    actions_enabled: bool = True
    ok_actions: tuple[str, ...] = ()
    alarm_actions: tuple[str, ...] = ()
    insufficient_data_actions: tuple[str, ...] = ()
    unit: str | None = None
    extended: bool = False  # the statistic was given as ExtendedStatistic
    state: AlarmState = AlarmState.INSUFFICIENT_DATA
    state_reason: str = "Unchecked: Initial alarm creation"
    state_reason_data: str = ""
    state_updated: dt.datetime | None = None
    state_transitioned: dt.datetime | None = None
    history: tuple[HistoryItem, ...] = ()
    tags: tuple[Tag, ...] = ()

    @property
    def key(self) -> str:
        return self.name

    def actions_for(self, state: AlarmState) -> tuple[str, ...]:
        if state == AlarmState.ALARM:
            return self.alarm_actions
        if state == AlarmState.OK:
            return self.ok_actions
        return self.insufficient_data_actions


@dataclass(frozen=True)
class Evaluation:
    """The outcome of evaluating an alarm: the state it should be in and CloudWatch's reason."""

    state: AlarmState
    reason: str
    reason_data: str


def breaches(value: float, operator: str, threshold: float) -> bool:
    if operator == "GreaterThanOrEqualToThreshold":
        return value >= threshold
    if operator == "GreaterThanThreshold":
        return value > threshold
    if operator == "LessThanThreshold":
        return value < threshold
    return value <= threshold


def _number(value: float) -> str:
    return repr(float(value))


def evaluate(
    alarm: MetricAlarm,
    datapoints: list[tuple[dt.datetime, float | None]],
    *,
    now: dt.datetime,
) -> Evaluation:
    """The state ``alarm`` should be in, given its last EvaluationPeriods datapoints (oldest first)."""
    needed = alarm.datapoints_to_alarm
    words, negated = COMPARISONS[alarm.comparison_operator]
    present = [(stamp, value) for stamp, value in datapoints if value is not None]
    missing = len(datapoints) - len(present)
    breaching = [(s, v) for s, v in present if breaches(v, alarm.comparison_operator, alarm.threshold)]
    breach_count = len(breaching) + (missing if alarm.treat_missing_data == "breaching" else 0)
    considered = len(present) + (missing if alarm.treat_missing_data in ("breaching", "notBreaching") else 0)
    data = _reason_data(alarm, datapoints, now)
    newest_first = sorted(present, key=lambda item: item[0], reverse=True)
    shown = ", ".join(f"{_number(v)} ({s.strftime('%d/%m/%y %H:%M:%S')})" for s, v in newest_first)
    if considered == 0:
        if alarm.treat_missing_data == "ignore":
            return Evaluation(alarm.state, alarm.state_reason, alarm.state_reason_data)
        count = len(datapoints)
        return Evaluation(
            AlarmState.INSUFFICIENT_DATA,
            f"Insufficient Data: {count} datapoint{'s were' if count != 1 else ' was'} unknown.",
            data,
        )
    total = len(datapoints)
    if breach_count >= needed:
        return Evaluation(
            AlarmState.ALARM,
            f"Threshold Crossed: {breach_count} out of the last {total} datapoints [{shown}] was {words} the "
            f"threshold ({_number(alarm.threshold)}) (minimum {needed} datapoint"
            f"{'s' if needed != 1 else ''} for OK -> ALARM transition).",
            data,
        )
    not_breaching = considered - breach_count
    return Evaluation(
        AlarmState.OK,
        f"Threshold Crossed: {not_breaching} out of the last {total} datapoints [{shown}] was {negated} the "
        f"threshold ({_number(alarm.threshold)}) (minimum {1} datapoint for ALARM -> OK transition).",
        data,
    )


def _reason_data(alarm: MetricAlarm, datapoints: list[tuple[dt.datetime, float | None]], now: dt.datetime) -> str:
    start = datapoints[0][0] if datapoints else now
    return json.dumps(
        {
            "version": "1.0",
            "queryDate": _iso(now),
            "startDate": _iso(start),
            ("extendedStatistic" if alarm.extended else "statistic"): alarm.statistic,
            "period": alarm.period,
            "recentDatapoints": [v for _, v in datapoints if v is not None],
            "threshold": alarm.threshold,
            "evaluatedDatapoints": [
                {"timestamp": _iso(s), **({"value": v} if v is not None else {})} for s, v in reversed(datapoints)
            ],
        },
        separators=(",", ":"),
    )


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def notification(alarm: MetricAlarm, *, old: AlarmState, account: str) -> dict[str, object]:
    """The JSON document delivered to an alarm's webhook actions (the message CloudWatch sends to SNS)."""
    return {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description or None,
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": _iso(alarm.configuration_updated),
        "NewStateValue": alarm.state.value,
        "NewStateReason": alarm.state_reason,
        "StateChangeTime": _iso(alarm.state_updated or alarm.configuration_updated),
        "Region": alarm.region,
        "AlarmArn": alarm.arn,
        "OldStateValue": old.value,
        "OKActions": list(alarm.ok_actions),
        "AlarmActions": list(alarm.alarm_actions),
        "InsufficientDataActions": list(alarm.insufficient_data_actions),
        "Trigger": {
            "MetricName": alarm.metric_name,
            "Namespace": alarm.namespace,
            "StatisticType": "ExtendedStatistic" if alarm.extended else "Statistic",
            "Statistic": alarm.statistic.upper() if not alarm.extended else alarm.statistic,
            "Unit": alarm.unit,
            "Dimensions": [{"value": value, "name": name} for name, value in alarm.dimensions],
            "Period": alarm.period,
            "EvaluationPeriods": alarm.evaluation_periods,
            "DatapointsToAlarm": alarm.datapoints_to_alarm,
            "ComparisonOperator": alarm.comparison_operator,
            "Threshold": alarm.threshold,
            "TreatMissingData": alarm.treat_missing_data,
            "EvaluateLowSampleCountPercentile": "",
        },
    }
