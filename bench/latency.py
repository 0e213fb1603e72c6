"""Figures 1, 2 and 4 on an idle server: time to first audio, real-time factor, delivery overhead.

Server requests and bare-pipeline passes alternate, one at a time, so slow drifts of a noisy
machine hit both sides alike; the server is idle whenever the bare pipeline runs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .client import Abandon, speak
from .plan import FORMATS, SIZES, Plan
from .processes import Service
from .stats import histogram_delta

if TYPE_CHECKING:  # the baseline imports torch and kokoro; the runner loads it once the servers start
    from .baseline import BarePipeline

__all__ = ["measure_idle", "timed_request"]

TTFA = "tts_time_to_first_audio_seconds"
DELIVERY = "tts_delivery_seconds"
CHUNKS = "tts_chunks_synthesized_total"
METRICS_SETTLE_S = 5.0  # the front records a request's histograms just after its last byte


def timed_request(
    server: Service, text: str, response_format: str, *, abandon: Abandon = "never"
) -> dict[str, Any]:
    """One request on an idle server, with what the server itself measured for it (from /metrics)."""
    assert server.metrics is not None
    server.wait_idle()
    before = server.metrics.scrape()
    exchange = speak(server.url, text, response_format, abandon=abandon, keep_audio=response_format != "pcm")
    server.wait_idle()
    after = server.metrics.scrape()
    deadline = time.monotonic() + METRICS_SETTLE_S
    while (
        _count(after, TTFA) == _count(before, TTFA) and exchange.first_audio_s and time.monotonic() < deadline
    ):
        time.sleep(0.02)
        after = server.metrics.scrape()
    ttfa = histogram_delta(after["histograms"][TTFA], before["histograms"][TTFA])
    delivery = histogram_delta(after["histograms"][DELIVERY], before["histograms"][DELIVERY])
    exchange.server = {
        "first_audio_s": ttfa["sum"] if ttfa["count"] == 1 else None,
        "delivery_mean_s": delivery["sum"] / delivery["count"] if delivery["count"] else None,
        "delivered_chunks": delivery["count"],
        "chunks_synthesized": after[CHUNKS] - before[CHUNKS],
    }
    return exchange.record()


def _count(scrape: dict[str, Any], name: str) -> float:
    return float(scrape["histograms"][name]["count"])


def measure_idle(server: Service, bare: BarePipeline, plan: Plan) -> dict[str, Any]:
    """Raw samples for figures 1, 2 and 4: server requests and bare passes, interleaved per repetition."""
    assert server.metrics is not None
    server.wait_idle()
    start = server.metrics.scrape()
    requests: list[dict[str, Any]] = []
    bare_runs: list[dict[str, Any]] = []
    reps = max([*plan.bare_reps.values(), *(n for f in plan.server_reps.values() for n in f.values())])
    for rep in range(reps):
        for size in SIZES:
            text = plan.texts[size]
            if rep < plan.bare_reps[size]:
                server.wait_idle()
                bare_runs.append({"size": size, "rep": rep, **bare.synthesize(text).record()})
            for response_format in FORMATS:
                if rep >= plan.server_reps[size][response_format]:
                    continue
                abandon: Abandon = "never"
                if response_format == "mp3" and size in plan.mp3_first_audio_only:
                    abandon = "after_first_audio"
                record = timed_request(server, text, response_format, abandon=abandon)
                requests.append({"size": size, "rep": rep, "source": "idle", **record})
    end = server.metrics.scrape()
    return {
        "requests": requests,
        "bare": bare_runs,
        "delivery_histogram": histogram_delta(end["histograms"][DELIVERY], start["histograms"][DELIVERY]),
    }
