"""The Grafana dashboard in the repository queries only metrics that /metrics exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cachefleet.monitor.prometheus import METRIC_NAMES

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "cachefleet-grafana.json"
CONTROL_PLANE = {"cachefleet_api_requests_total", "cachefleet_api_errors_total", "cachefleet_replication_groups",
                 "cachefleet_alarms", "cachefleet_sampler_cpu_seconds_total", "cachefleet_sampled_nodes"}


def test_every_panel_queries_exposed_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(exprs) > 20
    exposed = set(METRIC_NAMES.values()) | CONTROL_PLANE
    for expr in exprs:
        names = set(re.findall(r"\b((?:elasticache|cachefleet)_[a-z0-9_]+)", expr))
        assert names and names <= exposed, expr
    assert {p["id"] for p in dashboard["panels"]} and len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert dashboard["templating"]["list"][1]["query"]["query"] == "label_values(elasticache_is_master, replication_group)"
