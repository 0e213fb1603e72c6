"""Render a counters snapshot, plus gauges read at scrape time, in Prometheus' text format."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ..ipc.counters import BUCKETS, METRICS, ZERO_SERIES, Series, Snapshot, empty_histogram

__all__ = ["render"]


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot, gauges: Mapping[Series, float]) -> None:
        self.snapshot, self.gauges = snapshot, gauges

    def collect(self) -> Iterable[Any]:
        values = {**dict.fromkeys(ZERO_SERIES, 0.0), **self.snapshot.values, **self.gauges}
        for name, (kind, help_text) in METRICS.items():
            if kind == "histogram":
                yield from self._histograms(name, help_text)
                continue
            family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            series = [(dict(labels), v) for (n, labels), v in values.items() if n == name]
            label_names = sorted({label for labels, _ in series for label in labels})
            family = family_type(name.removesuffix("_total"), help_text, labels=label_names)
            for labels, value in series or [({}, 0.0)]:
                family.add_metric([labels.get(label, "") for label in label_names], value)
            yield family

    def _histograms(self, name: str, help_text: str) -> Iterable[HistogramMetricFamily]:
        series = {labels: v for (n, labels), v in self.snapshot.histograms.items() if n == name}
        label_names = sorted({label for labels in series for label, _ in labels})
        family = HistogramMetricFamily(name, help_text, labels=label_names)
        for labels, counts in (series or {(): empty_histogram()}).items():
            cumulative, buckets = 0.0, []
            for bound, count in zip([*map(str, BUCKETS), "+Inf"], counts[:-1], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            values = dict(labels)
            family.add_metric([values.get(label, "") for label in label_names], buckets, counts[-1])
        yield family


def render(snapshot: Snapshot, gauges: Mapping[Series, float]) -> bytes:
    """Prometheus text format for a Counters snapshot plus gauges read at scrape time."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot, gauges))
    return generate_latest(registry)
