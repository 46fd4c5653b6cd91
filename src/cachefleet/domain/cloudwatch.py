"""CloudWatch use cases: metric queries over a :class:`MetricSource`, and metric alarms.

Queries validate what CloudWatch validates (periods, statistics, datapoint limits) and turn
samples into datapoints. Alarms are desired state like any ElastiCache resource: stored,
listed, changed in one transaction with their history and an event. The monitor evaluates
them through :meth:`CloudWatch.evaluate_alarm` and delivers notifications itself.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cachefleet.domain import alarms as rules
from cachefleet.domain import metrics
from cachefleet.domain.alarms import AlarmState, Evaluation, HistoryItem, MetricAlarm
from cachefleet.domain.errors import (
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    QuotaExceeded,
    ValidationError,
)
from cachefleet.domain.events import Event, EventSourceType
from cachefleet.domain.identifiers import Region, account_id
from cachefleet.domain.metrics import Datapoint, Labelled, MetricId
from cachefleet.domain.ports import Clock, MetricSource, StateStore
from cachefleet.domain.tags import Tag

MAX_ALARMS = 5000  # per region, as CloudWatch's default quota
MAX_EVALUATION_WINDOW = 86400  # Period * EvaluationPeriods, seconds


@dataclass(frozen=True)
class StatisticsResult:
    """GetMetricStatistics' answer: the label and the datapoints."""

    label: str
    unit: str
    datapoints: list[Datapoint]
    statistics: tuple[str, ...]
    extended: tuple[str, ...]


@dataclass(frozen=True)
class QueryResult:
    """One query's series of GetMetricData."""

    query_id: str
    label: str
    timestamps: list[float]
    values: list[float]
    status: str = "Complete"


@dataclass(frozen=True)
class Transition:
    """An alarm changed state: what it was, and the alarm as it is now."""

    old: AlarmState
    alarm: MetricAlarm


TransitionListener = Callable[[Transition], None]


class CloudWatch:
    """The CloudWatch use cases: metric statistics and data, metric lists, alarms and their history."""

    def __init__(
        self,
        *,
        store: StateStore,
        source: MetricSource,
        clock: Clock,
        on_transition: TransitionListener | None = None,
    ) -> None:
        self._store = store
        self._source = source
        self._clock = clock
        self.on_transition = on_transition

    # ------------------------------------------------------------------ metric queries
    def list_metrics(self, region: Region, params: Mapping[str, Any]) -> list[MetricId]:
        namespace = params.get("Namespace")
        name = params.get("MetricName")
        filters = [(f["Name"], f.get("Value")) for f in params.get("Dimensions", [])]
        found = []
        for metric in self._source.metrics(region):
            if namespace is not None and metric.namespace != namespace:
                continue
            if name is not None and metric.name != name:
                continue
            if any(metric.dimension(key) is None or (value is not None and metric.dimension(key) != value) for key, value in filters):
                continue
            found.append(metric)
        return sorted(found, key=lambda m: (m.namespace, m.name, m.dimensions))

    def get_metric_statistics(self, region: Region, params: Mapping[str, Any]) -> StatisticsResult:
        start, end = params["StartTime"].timestamp(), params["EndTime"].timestamp()
        metrics.check_range(start, end)
        period = metrics.check_period(params["Period"])
        statistics = tuple(params.get("Statistics", ()))
        extended = tuple(params.get("ExtendedStatistics", ()))
        if not statistics and not extended:
            raise InvalidParameterCombination("Must specify either Statistics or ExtendedStatistics.")
        for name in statistics:
            metrics.check_statistic(name)
        for name in extended:
            if name in metrics.STATISTICS:
                raise InvalidParameterValue(f"ExtendedStatistics takes percentiles such as p99, not {name}.")
            metrics.check_statistic(name)
        requested = metrics.count_datapoints(start, end, period)
        if requested > metrics.MAX_STATISTICS_DATAPOINTS:
            raise metrics.too_many_datapoints(requested, metrics.MAX_STATISTICS_DATAPOINTS)
        metric = MetricId.of(params["Namespace"], params["MetricName"], _dimensions(params.get("Dimensions", [])))
        points, unit = self._datapoints(region, metric, start, end, period, keep_values=bool(extended))
        wanted_unit = params.get("Unit")
        if wanted_unit is not None and wanted_unit != unit:
            points = []
        return StatisticsResult(metric.name, wanted_unit or unit, points, statistics, extended)

    def _datapoints(
        self, region: str, metric: MetricId, start: float, end: float, period: int, *, keep_values: bool = False
    ) -> tuple[list[Datapoint], str]:
        now = self._clock.now().timestamp()
        # The seconds file holds 3 hours and a minute: a query starting just over 3 hours ago is still exact.
        step = 60 if period % 60 == 0 and start < now - metrics.SECOND_RETENTION - 30 else 1
        samples = self._source.samples(region, metric, start, end, step=step)
        if samples is None:
            return [], "None"
        return metrics.aggregate(samples, start, end, period, keep_values=keep_values), samples.unit

    def get_metric_data(
        self, region: Region, params: Mapping[str, Any]
    ) -> tuple[list[QueryResult], str | None]:
        start, end = params["StartTime"].timestamp(), params["EndTime"].timestamp()
        metrics.check_range(start, end)
        queries = params["MetricDataQueries"]
        if len(queries) > metrics.MAX_METRIC_DATA_QUERIES:
            raise InvalidParameterValue(
                f"MetricDataQueries has {len(queries)} queries; at most {metrics.MAX_METRIC_DATA_QUERIES} are allowed."
            )
        ids: dict[str, Mapping[str, Any]] = {}
        for index, query in enumerate(queries, 1):
            query_id = metrics.check_query_id(query["Id"], index)
            if query_id in ids:
                raise InvalidParameterValue(f"The Id {query_id} is used by more than one query; Ids must be unique.")
            if ("MetricStat" in query) == ("Expression" in query):
                raise InvalidParameterCombination(
                    f"Query {query_id}: give exactly one of MetricStat and Expression."
                )
            ids[query_id] = query
        if not any(q.get("ReturnData", True) for q in queries):
            raise InvalidParameterValue("At least one query of MetricDataQueries must have ReturnData set to true.")

        values: dict[str, metrics.Value] = {}
        labels: dict[str, str] = {}
        periods: dict[str, int] = {}

        def stat_series(query_id: str, query: Mapping[str, Any]) -> metrics.Series:
            stat = query["MetricStat"]
            period = metrics.check_period(stat["Period"], f"Period of query {query_id}")
            statistic = metrics.check_statistic(stat["Stat"])
            requested = metrics.count_datapoints(start, end, period)
            if requested > metrics.MAX_METRIC_DATA_DATAPOINTS:
                raise metrics.too_many_datapoints(requested, metrics.MAX_METRIC_DATA_DATAPOINTS)
            source = stat["Metric"]
            if "MetricName" not in source or "Namespace" not in source:
                raise InvalidParameterValue(f"Query {query_id}: MetricStat.Metric needs a Namespace and a MetricName.")
            metric = MetricId.of(source["Namespace"], source["MetricName"], _dimensions(source.get("Dimensions", [])))
            labels[query_id] = query.get("Label") or metric.name
            periods[query_id] = period
            if period == 1 and statistic in ("Sum", "Average", "Minimum", "Maximum"):
                # 1-second periods of 1-second samples: each sample is its own datapoint.
                samples = self._source.samples(region, metric, start, end, step=1)
                if samples is None or stat.get("Unit") not in (None, samples.unit):
                    return {}
                origin = metrics.align_start(start, 1)
                return {t: v for t, v in zip(samples.timestamps, samples.sums, strict=True) if origin <= t < end}
            points, unit = self._datapoints(region, metric, start, end, period, keep_values=statistic.startswith("p"))
            if stat.get("Unit") not in (None, unit):
                points = []
            return {p.timestamp: p.statistic(statistic) for p in points}

        def resolve(query_id: str, trail: tuple[str, ...] = ()) -> metrics.Value:
            if query_id in values:
                return values[query_id]
            query = ids.get(query_id)
            if query is None:
                raise ValidationError(f"Error in expression: unknown query id '{query_id}'.")
            if query_id in trail:
                raise ValidationError(f"Error in expression {query_id}: it refers to itself.")
            if "MetricStat" in query:
                values[query_id] = stat_series(query_id, query)
            else:
                expression = metrics.Expression(query["Expression"])
                stats = [qid for qid, q in ids.items() if "MetricStat" in q]

                def lookup(name: str) -> metrics.Value:
                    return resolve(name, (*trail, query_id))

                def everything(part: str) -> list[Labelled]:
                    found = []
                    for qid in stats:
                        series = resolve(qid, (*trail, query_id))
                        if isinstance(series, dict) and part in labels.get(qid, qid):
                            found.append(Labelled(labels.get(qid, qid), series))
                    return found

                values[query_id] = expression.evaluate(lookup, everything)
                labels[query_id] = query.get("Label") or query_id
            return values[query_id]

        results: list[QueryResult] = []
        descending = params.get("ScanBy", "TimestampDescending") == "TimestampDescending"
        for query_id, query in ids.items():
            value = resolve(query_id)
            if not query.get("ReturnData", True):
                continue
            series_list: list[tuple[str, metrics.Series]]
            if isinstance(value, list):
                series_list = [(item.label, item.series) for item in value]
            elif isinstance(value, float):
                grid = _grid(start, end, query.get("Period") or min(periods.values(), default=60))
                series_list = [(labels.get(query_id, query_id), {t: value for t in grid})]
            else:
                series_list = [(labels.get(query_id, query_id), value)]
            for label, series in series_list:
                stamps = sorted((t for t, v in series.items() if not math.isnan(v)), reverse=descending)
                results.append(QueryResult(query_id, label, stamps, [series[t] for t in stamps]))
        return _page(results, params.get("MaxDatapoints", metrics.MAX_METRIC_DATA_DATAPOINTS), params.get("NextToken"))

    # ------------------------------------------------------------------ alarms
    def put_metric_alarm(self, region: Region, params: Mapping[str, Any]) -> MetricAlarm:
        name = params["AlarmName"]
        for member in ("Metrics", "ThresholdMetricId", "EvaluationCriteria", "EvaluationWindow", "WarmUpConfiguration"):
            if params.get(member):
                raise InvalidParameterCombination(
                    f"PutMetricAlarm: {member} (metric math and anomaly detection alarms) is not supported by "
                    "Cachefleet yet; alarm on one metric with MetricName, Namespace, Statistic and Threshold."
                )
        for member in ("MetricName", "Namespace", "Period", "Threshold"):
            if member not in params:
                raise InvalidParameterValue(f"PutMetricAlarm needs {member} for an alarm on one metric.")
        statistic: str | None = params.get("Statistic")
        extended: str | None = params.get("ExtendedStatistic")
        chosen = extended or statistic
        if chosen is None or (statistic is not None and extended is not None):
            raise InvalidParameterCombination("Exactly one of Statistic and ExtendedStatistic must be given.")
        if extended is not None:
            if extended in metrics.STATISTICS:
                raise InvalidParameterValue(f"ExtendedStatistic takes a percentile such as p99, not {extended}.")
            metrics.check_statistic(extended)
        period = metrics.check_period(params["Period"])
        if period < 10:
            raise InvalidParameterValue("The Period of an alarm must be 10, 30 or a multiple of 60 seconds.")
        evaluation_periods = params["EvaluationPeriods"]
        to_alarm = params.get("DatapointsToAlarm", evaluation_periods)
        if to_alarm > evaluation_periods:
            raise InvalidParameterValue(
                f"DatapointsToAlarm ({to_alarm}) must not exceed EvaluationPeriods ({evaluation_periods})."
            )
        if period * evaluation_periods > MAX_EVALUATION_WINDOW:
            raise InvalidParameterValue(
                f"Period * EvaluationPeriods is {period * evaluation_periods} s; it must not exceed one day "
                f"({MAX_EVALUATION_WINDOW} s)."
            )
        operator = params["ComparisonOperator"]
        if operator not in rules.COMPARISONS:
            raise InvalidParameterCombination(
                f"ComparisonOperator {operator} needs an anomaly detection band, which Cachefleet does not support "
                f"yet; use one of {', '.join(rules.COMPARISONS)}."
            )
        treat = params.get("TreatMissingData", "missing")
        if treat not in rules.TREAT_MISSING:
            raise InvalidParameterValue(f"Invalid TreatMissingData '{treat}': use one of {', '.join(rules.TREAT_MISSING)}.")
        actions = {key: tuple(params.get(key, ())) for key in ("OKActions", "AlarmActions", "InsufficientDataActions")}
        for key, listed in actions.items():
            for action in listed:
                _check_action(action, key, region)
        now = self._clock.now()
        current = self._store.get(MetricAlarm, region, name)
        if current is None and len(self._store.list(MetricAlarm, region)) >= MAX_ALARMS:
            raise QuotaExceeded(f"The quota of {MAX_ALARMS} alarms per region is reached.", resource="MetricAlarm")
        alarm = MetricAlarm(
            region=region,
            name=name,
            arn=f"arn:aws:cloudwatch:{region}:{account_id()}:alarm:{name}",
            metric_name=params["MetricName"],
            namespace=params["Namespace"],
            statistic=chosen,
            extended=extended is not None,
            dimensions=_dimensions(params.get("Dimensions", [])),
            period=period,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=to_alarm,
            threshold=float(params["Threshold"]),
            comparison_operator=operator,
            treat_missing_data=treat,
            configuration_updated=now,
            description=params.get("AlarmDescription", ""),
            actions_enabled=params.get("ActionsEnabled", True),
            ok_actions=actions["OKActions"],
            alarm_actions=actions["AlarmActions"],
            insufficient_data_actions=actions["InsufficientDataActions"],
            unit=params.get("Unit"),
            tags=tuple(Tag(t["Key"], t["Value"]) for t in params.get("Tags", [])),
            state_updated=now,
        )
        verb = "created"
        if current is not None:
            # An update keeps the alarm's state; CloudWatch re-evaluates it at the next cycle.
            alarm = replace(
                alarm,
                state=current.state,
                state_reason=current.state_reason,
                state_reason_data=current.state_reason_data,
                state_updated=current.state_updated,
                state_transitioned=current.state_transitioned,
                history=current.history,
                tags=alarm.tags or current.tags,
            )
            verb = "updated"
        alarm = _with_history(alarm, HistoryItem(now, "ConfigurationUpdate", f'Alarm "{name}" {verb}',
                                                 json.dumps({"type": "Create" if verb == "created" else "Update"})))
        with self._store.transaction() as tx:
            tx.put(alarm)
        return alarm

    def describe_alarms(self, region: Region, params: Mapping[str, Any]) -> list[MetricAlarm]:
        names = params.get("AlarmNames")
        prefix = params.get("AlarmNamePrefix")
        if names and prefix:
            raise InvalidParameterCombination("Give AlarmNames or AlarmNamePrefix, not both.")
        state = params.get("StateValue")
        action_prefix = params.get("ActionPrefix")
        found = []
        for alarm in self._store.list(MetricAlarm, region):
            if names and alarm.name not in names:
                continue
            if prefix and not alarm.name.startswith(prefix):
                continue
            if state and alarm.state.value != state:
                continue
            if action_prefix and not any(
                a.startswith(action_prefix) for a in alarm.ok_actions + alarm.alarm_actions + alarm.insufficient_data_actions
            ):
                continue
            found.append(alarm)
        return sorted(found, key=lambda a: a.name)

    def describe_alarms_for_metric(self, region: Region, params: Mapping[str, Any]) -> list[MetricAlarm]:
        dimensions = _dimensions(params.get("Dimensions", [])) if "Dimensions" in params else None
        found = []
        for alarm in self._store.list(MetricAlarm, region):
            if alarm.metric_name != params["MetricName"] or alarm.namespace != params["Namespace"]:
                continue
            if dimensions is not None and alarm.dimensions != dimensions:
                continue
            wanted_statistic = params.get("ExtendedStatistic") or params.get("Statistic")
            if wanted_statistic is not None and alarm.statistic != wanted_statistic:
                continue
            if params.get("Period") is not None and alarm.period != params["Period"]:
                continue
            if params.get("Unit") is not None and alarm.unit != params["Unit"]:
                continue
            found.append(alarm)
        return sorted(found, key=lambda a: a.name)

    def delete_alarms(self, region: Region, names: Sequence[str]) -> None:
        missing = [name for name in names if self._store.get(MetricAlarm, region, name) is None]
        if missing:
            raise NotFound(f"Alarm(s) not found: {', '.join(missing)}; nothing was deleted.", resource="MetricAlarm")
        with self._store.transaction() as tx:
            for name in names:
                alarm = self._store.get(MetricAlarm, region, name)
                if alarm is not None:
                    tx.delete(alarm)

    def set_actions_enabled(self, region: Region, names: Sequence[str], enabled: bool) -> None:
        now = self._clock.now()
        with self._store.transaction() as tx:
            for name in names:
                alarm = self._store.get(MetricAlarm, region, name)
                if alarm is None or alarm.actions_enabled == enabled:
                    continue  # CloudWatch ignores names it does not know here
                summary = f'Alarm "{name}" {"enabled" if enabled else "disabled"} actions'
                tx.put(_with_history(replace(alarm, actions_enabled=enabled, configuration_updated=now),
                                     HistoryItem(now, "ConfigurationUpdate", summary)))

    def set_alarm_state(self, region: Region, params: Mapping[str, Any]) -> Transition | None:
        alarm = self._store.get(MetricAlarm, region, params["AlarmName"])
        if alarm is None:
            raise NotFound(f"Alarm {params['AlarmName']} not found.", resource="MetricAlarm")
        data = params.get("StateReasonData")
        if data is not None:
            try:
                json.loads(data)
            except ValueError:
                raise InvalidState(
                    "StateReasonData must be a JSON document; fix its syntax.", resource="MetricAlarm"
                ) from None
        evaluation = Evaluation(AlarmState(params["StateValue"]), params["StateReason"], data or "")
        return self._record(alarm, evaluation, manual=True)

    def describe_alarm_history(self, region: Region, params: Mapping[str, Any]) -> list[tuple[MetricAlarm, HistoryItem]]:
        name = params.get("AlarmName")
        item_type = params.get("HistoryItemType")
        start, end = params.get("StartDate"), params.get("EndDate")
        items = []
        for alarm in self._store.list(MetricAlarm, region):
            if name is not None and alarm.name != name:
                continue
            for item in alarm.history:
                if item_type is not None and item.item_type != item_type:
                    continue
                if (start is not None and item.timestamp < start) or (end is not None and item.timestamp > end):
                    continue
                items.append((alarm, item))
        items.sort(key=lambda pair: pair[1].timestamp, reverse=params.get("ScanBy", "TimestampDescending") == "TimestampDescending")
        return items

    # ------------------------------------------------------------------ evaluation (called by the monitor)
    def alarms(self) -> list[MetricAlarm]:
        return self._store.list(MetricAlarm)

    def evaluate_alarm(self, alarm: MetricAlarm) -> Transition | None:
        """Evaluates ``alarm`` on its last complete periods; records and returns a state change."""
        now = self._clock.now()
        end = math.floor(now.timestamp() / alarm.period) * alarm.period
        start = end - alarm.period * alarm.evaluation_periods
        metric = MetricId.of(alarm.namespace, alarm.metric_name, alarm.dimensions)
        points, unit = self._datapoints(alarm.region, metric, start, end, alarm.period, keep_values=alarm.extended)
        if alarm.unit is not None and unit != alarm.unit:
            points = []
        by_time = {p.timestamp: p for p in points}
        window = []
        for index in range(alarm.evaluation_periods):
            stamp = start + index * alarm.period
            point = by_time.get(stamp)
            value = point.statistic(alarm.statistic) if point is not None else None
            window.append((dt.datetime.fromtimestamp(stamp, dt.UTC), value))
        evaluation = rules.evaluate(alarm, window, now=now)
        return self._record(alarm, evaluation, manual=False)

    def record_action(self, alarm: MetricAlarm, summary: str, data: Mapping[str, Any]) -> None:
        current = self._store.get(MetricAlarm, alarm.region, alarm.name)
        if current is None:
            return
        item = HistoryItem(self._clock.now(), "Action", summary, json.dumps(data))
        with self._store.transaction() as tx:
            tx.put(_with_history(current, item))

    def _record(self, alarm: MetricAlarm, evaluation: Evaluation, *, manual: bool) -> Transition | None:
        current = self._store.get(MetricAlarm, alarm.region, alarm.name)
        if current is None:
            return None  # deleted meanwhile
        now = self._clock.now()
        if evaluation.state == current.state and not manual:
            if evaluation.reason != current.state_reason:
                with self._store.transaction() as tx:
                    tx.put(replace(current, state_reason=evaluation.reason, state_reason_data=evaluation.reason_data))
            return None
        updated = replace(
            current,
            state=evaluation.state,
            state_reason=evaluation.reason,
            state_reason_data=evaluation.reason_data,
            state_updated=now,
            state_transitioned=now if evaluation.state != current.state else current.state_transitioned,
        )
        summary = f"Alarm updated from {current.state.value} to {evaluation.state.value}"
        history_data = json.dumps(
            {
                "version": "1.0",
                "oldState": {"stateValue": current.state.value, "stateReason": current.state_reason},
                "newState": {"stateValue": evaluation.state.value, "stateReason": evaluation.reason},
            }
        )
        updated = _with_history(updated, HistoryItem(now, "StateUpdate", summary, history_data))
        with self._store.transaction() as tx:
            tx.put(updated)
            for event in _events(updated, f"CloudWatch alarm {alarm.name}: {summary}: {evaluation.reason}", now):
                tx.add_event(event)
        transition = Transition(current.state, updated)
        if self.on_transition is not None and evaluation.state != current.state:
            self.on_transition(transition)
        return transition


def _with_history(alarm: MetricAlarm, item: HistoryItem) -> MetricAlarm:
    return replace(alarm, history=(*alarm.history, item)[-rules.MAX_HISTORY :])


def _events(alarm: MetricAlarm, message: str, when: dt.datetime) -> Iterable[Event]:
    """The alarm's state changes also appear among the events of the cluster or group it watches."""
    cluster = next((value for key, value in alarm.dimensions if key == "CacheClusterId"), None)
    if cluster is not None:
        yield Event(alarm.region, EventSourceType.CACHE_CLUSTER, cluster.lower(), message, when)
    group = next((value for key, value in alarm.dimensions if key == "ReplicationGroupId"), None)
    if group is not None:
        yield Event(alarm.region, EventSourceType.REPLICATION_GROUP, group.lower(), message, when)


def _dimensions(raw: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in raw:
        if "Value" not in item:
            raise InvalidParameterValue(f"Dimension {item.get('Name')} needs a Value.")
        pairs.append((item["Name"], item["Value"]))
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise InvalidParameterValue("Each dimension name may appear only once.")
    return tuple(sorted(pairs))


def _check_action(action: str, member: str, region: str) -> None:
    if action.startswith(("http://", "https://")):
        return
    if action.startswith("arn:"):
        parts = action.split(":")
        if len(parts) >= 6:
            return
    raise InvalidParameterValue(
        f"Invalid action '{action}' in {member}: use an http:// or https:// webhook URL (delivered by Cachefleet) or "
        f"an ARN such as arn:aws:sns:{region}:{account_id()}:topic."
    )


def _grid(start: float, end: float, period: int) -> list[float]:
    origin = metrics.align_start(start, period)
    return [origin + i * period for i in range(metrics.count_datapoints(start, end, period))]


def _page(results: list[QueryResult], limit: int, token: str | None) -> tuple[list[QueryResult], str | None]:
    """At most ``limit`` datapoints per response; the rest comes with NextToken (an offset)."""
    skip = 0
    if token:
        try:
            skip = int(base64.urlsafe_b64decode(token.encode()).decode())
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidParameterValue(f"Invalid NextToken '{token}': pass the NextToken of a previous response.") from None
    page: list[QueryResult] = []
    budget = limit
    position = 0
    for result in results:
        count = len(result.timestamps)
        begin = max(0, skip - position)
        position += count
        if begin >= count or budget <= 0:
            if budget <= 0 and begin < count:
                break
            continue
        take = min(count - begin, budget)
        page.append(replace(result, timestamps=result.timestamps[begin : begin + take], values=result.values[begin : begin + take],
                            status="Complete" if begin + take == count else "PartialData"))
        budget -= take
    consumed = skip + (limit - budget)
    total = sum(len(r.timestamps) for r in results)
    next_token = base64.urlsafe_b64encode(str(consumed).encode()).decode() if consumed < total else None
    return page, next_token
