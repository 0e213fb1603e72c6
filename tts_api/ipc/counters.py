"""Server counters shared by every process: the catalogue of metrics and the object that holds them.

Workers and HTTP processes update one `Counters` object that lives in the shared manager process;
`GET /metrics` renders a snapshot of it (front/metrics.py).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["BUCKETS", "METRICS", "Counters", "Labels", "MetricKind", "Series", "Snapshot"]

MetricKind = Literal["counter", "gauge", "histogram"]
Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs
Series = tuple[str, Labels]

# name -> (kind, help). Counters end in _total.
METRICS: Mapping[str, tuple[MetricKind, str]] = {
    "tts_requests_started_total": ("counter", "Speech jobs a worker started."),
    "tts_requests_completed_total": ("counter", "Speech jobs that produced all their audio."),
    "tts_requests_cancelled_total": ("counter", "Speech jobs stopped because the client left, by stage."),
    "tts_requests_failed_total": ("counter", "Speech jobs that failed in the worker."),
    "tts_requests_rejected_total": ("counter", "Requests answered with an error before queueing, by status."),
    "tts_chunks_synthesized_total": ("counter", "Text chunks the model synthesized."),
    "tts_cost_error_factor": (
        "gauge",
        "How much slower than its cost model a worker's recent chunks ran, at worst.",
    ),
    "tts_batched_steps_total": (
        "counter",
        "Engine steps that synthesized the chunks of several streams at once.",
    ),
    "tts_batched_chunks_total": ("counter", "Chunks synthesized in batched steps."),
    "tts_chunks_interrupted_total": ("counter", "Chunks abandoned mid-synthesis because their client left."),
    "tts_audio_seconds_total": ("counter", "Seconds of audio synthesized."),
    "tts_open_encoders": (
        "gauge",
        "Audio encoders alive, per HTTP process (each request's, while it lasts).",
    ),
    "tts_cancel_board_entries": ("gauge", "Speech requests admitted and not yet ended (queued or running)."),
    "tts_streams": (
        "gauge",
        "Streams a worker holds, by state: active (synthesizing), paused (its reader fell behind by the "
        "lead cap) or waiting (taken, not admitted).",
    ),
    "tts_worker_capacity": ("gauge", "Audio seconds a worker synthesizes per wall second (measured)."),
    "tts_load": (
        "gauge",
        "Demand over capacity: requests in flight over the real-time streams the workers can feed.",
    ),
    "tts_deadline_misses_total": ("counter", "Audio chunks sent after the client's player ran out."),
    "tts_deadline_miss_seconds": (
        "histogram",
        "How long a player waited for a late chunk (a server-side estimate of underruns).",
    ),
    "tts_first_chunk_wait_max_seconds": (
        "gauge",
        "Longest a stream waited from its admission to its first audio, per worker (since it started).",
    ),
    "tts_first_chunk_bound_seconds": (
        "gauge",
        "What that wait is held to: a scheduling step plus a first chunk, at the worker's measured costs.",
    ),
    "tts_board_calls_total": ("counter", "Round trips to the stream board in the manager process, by call."),
    "tts_time_to_first_audio_seconds": (
        "histogram",
        "Request received to its first audio reaching the front.",
    ),
    "tts_delivery_seconds": ("histogram", "Worker yielded an audio chunk to the front sending it."),
}
# Labelled series shown at zero before their first event, so dashboards and tests can rely on them.
ZERO_SERIES: tuple[Series, ...] = (
    ("tts_requests_cancelled_total", (("stage", "queued"),)),
    ("tts_requests_cancelled_total", (("stage", "streaming"),)),
)
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Snapshot:
    """A copy of every value at one moment: what crosses from the manager to `/metrics`."""

    values: dict[Series, float] = field(default_factory=dict)
    histograms: dict[Series, list[float]] = field(default_factory=dict)  # bucket counts (+Inf last), sum


def empty_histogram() -> list[float]:
    return [0.0] * (len(BUCKETS) + 2)


def _series(name: str, labels: Mapping[str, object]) -> Series:
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; add it to METRICS")
    return name, tuple(sorted((k, str(v)) for k, v in labels.items()))


class Counters:
    """Named counters, gauges and histograms with labels. Lives in a manager process; methods are atomic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot = Snapshot()

    def add(self, name: str, amount: float = 1.0, **labels: object) -> None:
        """Add `amount` to a counter or gauge series (`labels` pick the series)."""
        key = _series(name, labels)
        with self._lock:
            values = self._snapshot.values
            values[key] = values.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: object) -> None:
        """Set a gauge series."""
        key = _series(name, labels)
        with self._lock:
            self._snapshot.values[key] = value

    def observe(self, name: str, values: Iterable[float], **labels: object) -> None:
        """Count `values` into a histogram series."""
        key = _series(name, labels)
        with self._lock:
            histogram = self._snapshot.histograms.setdefault(key, empty_histogram())
            for value in values:
                histogram[bisect.bisect_left(BUCKETS, value)] += 1  # index len(BUCKETS) is +Inf
                histogram[-1] += value

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                dict(self._snapshot.values), {k: list(v) for k, v in self._snapshot.histograms.items()}
            )
