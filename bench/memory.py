"""Figure 5: the server tree's memory before and after a run of mixed requests."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tts_api.formats import RESPONSE_FORMATS

from .client import Abandon, speak
from .processes import Service, tree_memory, tree_rss_mib
from .texts import MEMORY_PHRASES

__all__ = ["measure_memory", "memory_requests"]

SAMPLE_EVERY_S = 2.0
SETTLE_S = 1.0  # after the last request, let freed buffers go back before measuring


def memory_requests(count: int) -> list[tuple[str, str, bool, Abandon]]:
    """(text, format, stream, abandon) for each request: every format, a fifth abandoned right after
    sending (while queued, mostly), a tenth after the first audio, a tenth as whole files; the first
    six requests already have one of each."""
    abandons: dict[int, Abandon] = {1: "after_first_audio", 3: "after_send", 8: "after_send"}
    plan: list[tuple[str, str, bool, Abandon]] = []
    for i in range(count):
        abandon = abandons.get(i % 10, "never")
        text = MEMORY_PHRASES[i % len(MEMORY_PHRASES)]
        plan.append((text, RESPONSE_FORMATS[i % len(RESPONSE_FORMATS)], i % 10 != 5, abandon))
    return plan


def measure_memory(server: Service, count: int, concurrency: int) -> dict[str, Any]:
    """RSS/USS of the whole tree when idle, then `count` mixed requests, then idle again."""
    server.wait_idle()
    before = tree_memory(server.tree())
    timeline: list[dict[str, float]] = []
    done = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while True:
            timeline.append({"t_s": time.monotonic() - started, "rss_mib": tree_rss_mib(server.tree())})
            if done.wait(SAMPLE_EVERY_S):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    def one(item: tuple[str, str, bool, Abandon]) -> dict[str, Any]:
        text, response_format, stream, abandon = item
        return speak(server.url, text, response_format, stream=stream, abandon=abandon).record()

    try:
        with ThreadPoolExecutor(concurrency) as pool:
            requests = list(pool.map(one, memory_requests(count)))
    finally:
        done.set()
        sampler.join()
    wall = time.monotonic() - started
    timeline.append({"t_s": wall, "rss_mib": tree_rss_mib(server.tree())})
    server.wait_idle()
    time.sleep(SETTLE_S)
    after = tree_memory(server.tree())
    gauges = server.metrics.scrape() if server.metrics else {}
    return {
        "before": before,
        "after": after,
        "timeline": timeline,
        "wall_s": wall,
        "requests": requests,
        "idle_gauges_after": {
            k: gauges[k] for k in ("tts_cancel_board_entries", "tts_open_encoders") if k in gauges
        },
    }
