"""One handler per CloudWatch action, named as botocore's snake_case operation name.

Each takes the request context and the parsed parameters, calls one CloudWatch use case and
returns a dict shaped like the operation's output (the mapping is explicit, here).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.errors import ApiError
from cachefleet.domain.alarms import MetricAlarm
from cachefleet.domain.cloudwatch import CloudWatch

MAX_ALARM_RECORDS = 100


def _cloudwatch(ctx: Context) -> CloudWatch:
    if ctx.cloudwatch is None:
        raise ApiError("InvalidAction", "CloudWatch is not enabled on this Cachefleet server.")
    cloudwatch: CloudWatch = ctx.cloudwatch
    return cloudwatch


def _time(stamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(stamp, dt.UTC)


def _dimensions(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"Name": name, "Value": value} for name, value in pairs]


def _page(items: list[Any], params: dict[str, Any], *, size: int) -> tuple[list[Any], str | None]:
    start = 0
    token = params.get("NextToken")
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise ApiError("InvalidNextToken", f"Invalid NextToken '{token}': pass the NextToken of a previous response.") from None
    end = start + size
    following = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return items[start:end], following


# ---------------------------------------------------------------------- metrics
def list_metrics(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    found = _cloudwatch(ctx).list_metrics(ctx.region, params)
    page, token = _page(found, params, size=500)
    return {
        "Metrics": [{"Namespace": m.namespace, "MetricName": m.name, "Dimensions": _dimensions(m.dimensions)} for m in page],
        "NextToken": token,
    }


def get_metric_statistics(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    result = _cloudwatch(ctx).get_metric_statistics(ctx.region, params)
    datapoints = []
    for point in result.datapoints:
        item: dict[str, Any] = {"Timestamp": _time(point.timestamp), "Unit": result.unit}
        for name in result.statistics:
            item[name] = point.statistic(name)
        if result.extended:
            item["ExtendedStatistics"] = {name: point.statistic(name) for name in result.extended}
        datapoints.append(item)
    return {"Label": result.label, "Datapoints": datapoints}


def get_metric_data(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    results, token = _cloudwatch(ctx).get_metric_data(ctx.region, params)
    return {
        "MetricDataResults": [
            {
                "Id": r.query_id,
                "Label": r.label,
                "Timestamps": [_time(t) for t in r.timestamps],
                "Values": r.values,
                "StatusCode": r.status,
            }
            for r in results
        ],
        "NextToken": token,
        "Messages": [],
    }


def put_metric_data(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    raise ApiError(
        "InvalidParameterCombination",
        "PutMetricData is not supported: Cachefleet publishes the AWS/ElastiCache metrics of its nodes itself.",
    )


# ---------------------------------------------------------------------- alarms
def alarm_view(alarm: MetricAlarm) -> dict[str, Any]:
    view: dict[str, Any] = {
        "AlarmName": alarm.name,
        "AlarmArn": alarm.arn,
        "AlarmDescription": alarm.description or None,
        "AlarmConfigurationUpdatedTimestamp": alarm.configuration_updated,
        "ActionsEnabled": alarm.actions_enabled,
        "OKActions": list(alarm.ok_actions),
        "AlarmActions": list(alarm.alarm_actions),
        "InsufficientDataActions": list(alarm.insufficient_data_actions),
        "StateValue": alarm.state.value,
        "StateReason": alarm.state_reason,
        "StateReasonData": alarm.state_reason_data or None,
        "StateUpdatedTimestamp": alarm.state_updated,
        "MetricName": alarm.metric_name,
        "Namespace": alarm.namespace,
        "Dimensions": _dimensions(alarm.dimensions),
        "Period": alarm.period,
        "Unit": alarm.unit,
        "EvaluationPeriods": alarm.evaluation_periods,
        "DatapointsToAlarm": alarm.datapoints_to_alarm,
        "Threshold": alarm.threshold,
        "ComparisonOperator": alarm.comparison_operator,
        "TreatMissingData": alarm.treat_missing_data,
        "StateTransitionedTimestamp": alarm.state_transitioned or alarm.state_updated,
    }
    view["ExtendedStatistic" if alarm.extended else "Statistic"] = alarm.statistic
    return view


def put_metric_alarm(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _cloudwatch(ctx).put_metric_alarm(ctx.region, params)
    return {}


def describe_alarms(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    types = params.get("AlarmTypes")
    alarms = _cloudwatch(ctx).describe_alarms(ctx.region, params)
    if types is not None and "MetricAlarm" not in types:
        alarms = []
    size = params.get("MaxRecords", MAX_ALARM_RECORDS)
    page, token = _page(alarms, params, size=size)
    return {"MetricAlarms": [alarm_view(a) for a in page], "CompositeAlarms": [], "NextToken": token}


def describe_alarms_for_metric(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"MetricAlarms": [alarm_view(a) for a in _cloudwatch(ctx).describe_alarms_for_metric(ctx.region, params)]}


def delete_alarms(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _cloudwatch(ctx).delete_alarms(ctx.region, params["AlarmNames"])
    return {}


def set_alarm_state(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _cloudwatch(ctx).set_alarm_state(ctx.region, params)
    return {}


def enable_alarm_actions(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _cloudwatch(ctx).set_actions_enabled(ctx.region, params["AlarmNames"], True)
    return {}


def disable_alarm_actions(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _cloudwatch(ctx).set_actions_enabled(ctx.region, params["AlarmNames"], False)
    return {}


def describe_alarm_history(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    items = _cloudwatch(ctx).describe_alarm_history(ctx.region, params)
    page, token = _page(items, params, size=params.get("MaxRecords", MAX_ALARM_RECORDS))
    return {
        "AlarmHistoryItems": [
            {
                "AlarmName": alarm.name,
                "AlarmType": "MetricAlarm",
                "Timestamp": item.timestamp,
                "HistoryItemType": item.item_type,
                "HistorySummary": item.summary,
                "HistoryData": item.data or None,
            }
            for alarm, item in page
        ],
        "NextToken": token,
    }
