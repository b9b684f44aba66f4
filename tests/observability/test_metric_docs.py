"""The README's metrics table names every series the code registers, with its type
and labels, and nothing else: an operator reads the table, not the code."""

from __future__ import annotations

import importlib
import re

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from tests.conftest import REPO

MODULES = (
    "switchyard.engine.metrics",
    "switchyard.engine.retention",
    "switchyard.bridge.metrics",
    "switchyard.consumers.metrics",
)


def _registered() -> dict[str, tuple[str, str]]:
    for module in MODULES:
        importlib.import_module(module)
    found: dict[str, tuple[str, str]] = {}
    for collector in list(REGISTRY._collector_to_names):
        if not isinstance(collector, MetricWrapperBase):
            continue
        name: str = collector._name
        if name.startswith("switchyard_"):
            kind = str(collector._type)
            full = name + ("_total" if kind == "counter" else "")
            found[full] = (kind, ",".join(collector._labelnames))
    return found


def _documented() -> dict[str, tuple[str, str]]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Metrics", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `(switchyard_\w+)` \| (\w+) \| ([^|]+) \|", section, re.MULTILINE)
    return {name: (kind, labels.strip().strip("`").replace("—", "")) for name, kind, labels in rows}


def test_the_readme_lists_every_metric_with_its_type_and_labels() -> None:
    registered = _registered()
    assert len(registered) >= 30  # the modules above were imported and registered
    assert _documented() == registered
