"""Server counters shared by every process, and their Prometheus text exposition.

Workers and HTTP processes update one `Counters` object that lives in the shared manager process;
`GET /metrics` renders a snapshot of it. Names are listed in METRICS.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = ["METRICS", "Counters", "render"]

# name -> (type, help). Counters end in _total; labels are given as `name{label="value"}` keys.
METRICS: Mapping[str, tuple[str, str]] = {
    "tts_requests_started_total": ("counter", "Speech jobs a worker started."),
    "tts_requests_completed_total": ("counter", "Speech jobs that produced all their audio."),
    "tts_requests_cancelled_total": ("counter", "Speech jobs stopped because the client left, by stage."),
    "tts_requests_failed_total": ("counter", "Speech jobs that failed in the worker."),
    "tts_requests_rejected_total": ("counter", "Requests answered with an error before queueing, by status."),
    "tts_chunks_synthesized_total": ("counter", "Text chunks the model synthesized."),
    "tts_audio_seconds_total": ("counter", "Seconds of audio synthesized."),
    "tts_open_encoders": ("gauge", "Audio encoders alive in the workers."),
    "tts_cancel_board_entries": ("gauge", "Speech requests admitted and not yet ended (queued or running)."),
    "tts_time_to_first_audio_seconds": (
        "histogram",
        "Request received to its first audio reaching the front.",
    ),
    "tts_delivery_seconds": ("histogram", "Worker yielded an audio chunk to the front sending it."),
}
# Labelled series shown at zero before their first event, so dashboards and tests can rely on them.
ZERO_SERIES = (
    'tts_requests_cancelled_total{stage="queued"}',
    'tts_requests_cancelled_total{stage="streaming"}',
)
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Counters:
    """Named counters, gauges and histograms. Lives in a manager process; methods are atomic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, float] = {}
        self._histograms: dict[str, list[float]] = {}  # per-bucket counts (last: +Inf), then the sum

    def add(self, name: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0.0) + amount

    def observe(self, name: str, values: Iterable[float]) -> None:
        with self._lock:
            histogram = self._histograms.setdefault(name, _empty_histogram())
            for value in values:
                histogram[bisect.bisect_left(BUCKETS, value)] += 1  # index len(BUCKETS) is +Inf
                histogram[-1] += value

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "values": dict(self._values),
                "histograms": {k: list(v) for k, v in self._histograms.items()},
            }


def _empty_histogram() -> list[float]:
    return [0.0] * (len(BUCKETS) + 2)


def _split(key: str) -> tuple[str, dict[str, str]]:
    """`tts_x_total{stage="queued"}` -> ("tts_x_total", {"stage": "queued"})."""
    name, _, rest = key.partition("{")
    labels = dict(part.split("=", 1) for part in rest.rstrip("}").split(",") if part)
    return name, {k: v.strip('"') for k, v in labels.items()}


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: dict[str, Any], gauges: Mapping[str, float]) -> None:
        self.snapshot, self.gauges = snapshot, gauges

    def collect(self) -> Iterable[Any]:
        values = {**dict.fromkeys(ZERO_SERIES, 0.0), **self.snapshot["values"], **self.gauges}
        for name, (kind, help_text) in METRICS.items():
            if kind == "histogram":
                yield self._histogram(name, help_text)
                continue
            family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            series = [(_split(k)[1], v) for k, v in values.items() if _split(k)[0] == name]
            label_names = sorted({label for labels, _ in series for label in labels})
            family = family_type(name.removesuffix("_total"), help_text, labels=label_names)
            for labels, value in series or [({}, 0.0)]:
                family.add_metric([labels.get(label, "") for label in label_names], value)
            yield family

    def _histogram(self, name: str, help_text: str) -> HistogramMetricFamily:
        counts = self.snapshot["histograms"].get(name, _empty_histogram())
        cumulative, buckets = 0.0, []
        for bound, count in zip([*map(str, BUCKETS), "+Inf"], counts[:-1], strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        return HistogramMetricFamily(name, help_text, buckets=buckets, sum_value=counts[-1])


def render(snapshot: dict[str, Any], gauges: Mapping[str, float]) -> bytes:
    """Prometheus text format for a Counters snapshot plus gauges read at scrape time."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot, gauges))
    return generate_latest(registry)
