"""docs/grafana-dashboard.json: a Grafana dashboard over a ``datasource`` variable, whose
every expression names only series Switchyard's processes expose."""

from __future__ import annotations

import importlib
import json
import re
from typing import Any

from prometheus_client import REGISTRY

from tests.conftest import REPO

DASHBOARD = REPO / "docs" / "grafana-dashboard.json"
PACKAGES = ("schemas", "topics", "engine", "consumers", "bridge", "cli")
# Every series name a metric family is exposed as, by its type.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def exposed_series() -> set[str]:
    """The series names of every Switchyard metric: each module that defines metrics
    (imports prometheus_client) is imported, so its metrics join the registry."""
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "prometheus_client import" in path.read_text():
                parts = path.relative_to(REPO).with_suffix("").parts
                importlib.import_module(".".join(("switchyard", *parts)))
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("switchyard_"):
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def test_the_dashboard_is_grafana_36_or_later_over_a_prometheus_variable() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 36
    [variable] = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in _panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]


def dashboard_series() -> set[str]:
    """Every ``switchyard_`` series name the dashboard's expressions read."""
    return {
        name
        for panel in _panels()
        for target in panel["targets"]
        for name in re.findall(r"\bswitchyard_[a-z0-9_]+", target["expr"])
    }


def series_of_exposition(text: str) -> set[str]:
    """The series names a /metrics page declares (its ``# TYPE`` lines, which a family
    with labels but no samples yet has too)."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE switchyard_"):
            _, _, name, kind = line.split()
            base = name.removesuffix("_total") if kind == "counter" else name
            names.update(base + suffix for suffix in SUFFIXES[kind])
    return names


def test_every_series_the_dashboard_reads_is_exposed() -> None:
    exposed = exposed_series()
    read = dashboard_series()
    assert read <= exposed, sorted(read - exposed)
    # What the brief's panels need, each read at least once.
    for name in (
        "switchyard_runs_started_total",
        "switchyard_runs_completed_total",
        "switchyard_inbox_lag_records",
        "switchyard_run_duration_seconds_bucket",
        "switchyard_node_run_duration_seconds_bucket",
        "switchyard_node_runs_in_flight",
        "switchyard_engine_apply_seconds_bucket",
        "switchyard_engine_batch_records_bucket",
        "switchyard_dead_letters_total",
        "switchyard_http_requests_total",
        "switchyard_http_request_duration_seconds_bucket",
        "switchyard_claims_pending",
    ):
        assert name in read, name


def test_quantiles_are_taken_over_buckets_summed_by_le() -> None:
    for panel in _panels():
        for target in panel["targets"]:
            expr = target["expr"]
            if "histogram_quantile" in expr:
                assert re.search(r"sum by \(le\b[^)]*\) \(rate\(switchyard_\w+_bucket\[", expr), (
                    expr
                )
