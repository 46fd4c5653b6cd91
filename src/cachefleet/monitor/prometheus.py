"""Prometheus exposition at ``/metrics``: every node's latest sample and the control plane's own figures.

Node metrics keep ElastiCache's names in snake case with an ``elasticache_`` prefix, one
gauge family per metric (``elasticache_curr_connections``), labelled by region, replication
group, shard, cache cluster, node and role. Per-period counters (``elasticache_get_type_cmds``)
are the count of the last second. Control-plane figures are ``cachefleet_*``, next to the
standard ``process_*`` of the control-plane process.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cachefleet.monitor import catalog
from cachefleet.monitor.sampler import Sampler

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NODE_LABELS = ("region", "replication_group", "shard", "cache_cluster", "node", "role")


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])|(?<=[A-Z])([A-Z][a-z])", r"_\1\2", name).lower()


METRIC_NAMES = {m.name: "elasticache_" + snake(m.name) for m in catalog.METRICS}


class NodeCollector(Collector):
    """Exposes every node's latest sample as Prometheus gauges."""

    def __init__(self, sampler: Sampler) -> None:
        self._sampler = sampler

    def collect(self) -> Iterable[Metric]:
        families = [
            GaugeMetricFamily(METRIC_NAMES[m.name], f"{m.name} ({m.unit}): {m.help}", labels=NODE_LABELS)
            for m in catalog.METRICS
        ]
        sampled = GaugeMetricFamily("elasticache_sample_timestamp_seconds", "When the node was last sampled",
                                    labels=NODE_LABELS)
        for node, second, row in self._sampler.latest.values():
            labels = [node.region, node.group_id, node.shard, node.cluster_id, node.node_id, node.role]
            sampled.add_metric(labels, float(second))
            for family, value in zip(families, row, strict=True):
                if value == value:
                    family.add_metric(labels, value)
        yield sampled
        yield from families


class ControlPlaneCollector(Collector):
    """Figures handed in by the composition root as (name, help, kind, labels, value)."""

    def __init__(self, figures: Callable[[], Iterable[tuple[str, str, str, dict[str, str], float]]]) -> None:
        self._figures = figures

    def collect(self) -> Iterable[Metric]:
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for name, help_text, kind, labels, value in self._figures():
            family = families.get(name)
            if family is None:
                cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                family = families[name] = cls(name, help_text, labels=sorted(labels))
            family.add_metric([labels[key] for key in sorted(labels)], value)
        yield from families.values()


class Exposition:
    """The /metrics endpoint: node gauges and the control plane's own figures."""

    def __init__(self, sampler: Sampler, figures: Callable[[], Iterable[tuple[str, str, str, dict[str, str], float]]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)
        self.registry.register(ControlPlaneCollector(figures))
        self.registry.register(NodeCollector(sampler))

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE})
