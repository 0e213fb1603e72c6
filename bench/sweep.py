"""Figure 3: N simultaneous streams of the same text, for each N of the plan."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .client import speak
from .latency import DELIVERY, TTFA
from .processes import Service
from .stats import histogram_delta

__all__ = ["measure_concurrency"]


def _stream(job: tuple[str, str, threading.Barrier]) -> dict[str, Any]:
    url, text, barrier = job
    barrier.wait()  # all streams leave together
    return speak(url, text, "pcm").record()


def measure_concurrency(server: Service, text: str, levels: tuple[int, ...]) -> dict[str, Any]:
    """Per level: every stream's timings, the wall time from the first send to the last byte, errors."""
    start = server.metrics.scrape() if server.metrics else None
    results = []
    for streams in levels:
        server.wait_idle()
        barrier = threading.Barrier(streams)
        started = time.monotonic()
        with ThreadPoolExecutor(streams) as pool:
            exchanges = list(pool.map(_stream, [(server.url, text, barrier)] * streams))
        wall = time.monotonic() - started
        results.append({"streams": streams, "wall_s": wall, "requests": exchanges})
    end = server.metrics.scrape() if server.metrics else None
    histograms = {}
    if start and end:
        histograms = {
            name: histogram_delta(end["histograms"][name], start["histograms"][name])
            for name in (DELIVERY, TTFA)
        }
    return {"levels": results, "histograms": histograms}
