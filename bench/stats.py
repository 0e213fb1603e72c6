"""Summaries of raw samples: percentiles, ratios, and quantiles of Prometheus histograms."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["Histogram", "histogram_delta", "histogram_quantile", "histogram_summary", "ratio", "summarize"]


def summarize(samples: Sequence[float | None]) -> dict[str, Any]:
    """p50, p95, mean, min and max of the samples that exist (linear interpolation), plus the samples."""
    values = [float(v) for v in samples if v is not None and math.isfinite(v)]
    summary: dict[str, Any] = {"n": len(values), "samples": values}
    if not values:
        return {**summary, "p50": None, "p95": None, "mean": None, "min": None, "max": None}
    return {
        **summary,
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "mean": float(np.mean(values)),
        "min": min(values),
        "max": max(values),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


Histogram = dict[str, Any]  # {"buckets": [(upper bound, cumulative count), ...], "sum": s, "count": n}


def histogram_delta(after: Histogram, before: Histogram) -> Histogram:
    """The observations made between two scrapes of the same cumulative histogram."""
    old = dict(before["buckets"])
    return {
        "buckets": [(bound, count - old.get(bound, 0.0)) for bound, count in after["buckets"]],
        "sum": after["sum"] - before["sum"],
        "count": after["count"] - before["count"],
    }


def histogram_quantile(histogram: Histogram, q: float) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket that holds the q-th observation.

    Observations above the last finite bound are reported at that bound, as Prometheus does.
    """
    buckets: Sequence[tuple[float, float]] = sorted(histogram["buckets"])
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def histogram_summary(histogram: Histogram) -> dict[str, Any]:
    """p50/p95 interpolated from the buckets, and the exact mean from _sum/_count."""
    count = histogram["count"]
    return {
        "count": count,
        "p50": histogram_quantile(histogram, 0.5),
        "p95": histogram_quantile(histogram, 0.95),
        "mean": histogram["sum"] / count if count else None,
        "buckets": [[_bound_label(b), c] for b, c in histogram["buckets"]],
    }


def _bound_label(bound: float) -> float | str:
    return "+Inf" if math.isinf(bound) else bound
