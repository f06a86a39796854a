"""Which metric names Brink exports (from shared/metrics.py) and which ones a PromQL expression uses."""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client.metrics import MetricWrapperBase

from shared import metrics

METRIC_NAME = re.compile(r"\b(brink_[a-z0-9_]+)\b")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
    "summary": ("_count", "_sum", "_created"),
}


def exported_names() -> set[str]:
    """Every sample name the metric objects in shared/metrics.py can produce."""
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def metrics_in(expression: str) -> set[str]:
    return set(METRIC_NAME.findall(expression))


def unknown_metrics(expressions: Iterable[str]) -> set[str]:
    """Names used in the expressions that no Brink metric produces."""
    exported = exported_names()
    return {name for expression in expressions for name in metrics_in(expression) if name not in exported}
