"""Figure 5: the server tree's memory before and after a run of mixed requests, and what one small
request that asks for much (pause tags, a giant word) grows each process by."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psutil

from tts_api.formats import RESPONSE_FORMATS

from .client import Abandon, speak
from .processes import Service, tree_memory, tree_rss_mib
from .texts import LONG, MEMORY_PHRASES

__all__ = ["SMALL_REQUESTS", "measure_memory", "measure_small_requests", "memory_requests"]

# Requests of at most 64 KB that ask for much: (name, body, bytes to read before leaving, or None: all).
SMALL_REQUESTS: tuple[tuple[str, dict[str, Any], int | None], ...] = (
    ("pause tags, 300 s (the default bound), pcm", {"input": "Hi. " + "[pause:10s]" * 30}, None),
    (
        "pause tags, 300 s, whole mp3",
        {"input": "Hi. " + "[pause:10s]" * 30, "response_format": "mp3", "stream": False},
        None,
    ),
    ("one 50,000-letter word, its first minute", {"input": "a" * 50_000}, 60 * 48_000),
)

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


@contextlib.contextmanager
def _peaks(server: Service) -> Iterator[dict[int, float]]:
    """The largest RSS of each process of the tree while the block runs (MiB, sampled every 20 ms)."""
    peaks: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        while True:
            for proc in server.tree():
                with contextlib.suppress(psutil.Error):
                    peaks[proc.pid] = max(peaks.get(proc.pid, 0.0), proc.memory_info().rss / 2**20)
            if done.wait(0.02):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peaks
    finally:
        done.set()
        sampler.join()


def _read(url: str, body: dict[str, Any], max_bytes: int | None) -> int:
    """Read the response to its end (or `max_bytes`); its status."""
    taken = 0
    with httpx.stream(
        "POST", url + "/v1/audio/speech", json={"response_format": "pcm", **body}, timeout=900
    ) as r:
        for chunk in r.iter_raw():
            taken += len(chunk)
            if max_bytes is not None and taken >= max_bytes:
                break
    return r.status_code


def measure_small_requests(server: Service) -> dict[str, Any]:
    """Per small request that asks for much, the most any process grew above its peak during an ordinary
    long text (the working set every request may use: an idle worker hands its heap back)."""
    server.wait_idle()
    with _peaks(server) as working_set:
        plain_status = _read(server.url, {"input": LONG}, None)
    cases = {}
    for name, body, max_bytes in SMALL_REQUESTS:
        server.wait_idle()
        with _peaks(server) as peaks:
            status = _read(server.url, body, max_bytes)
        growth = {pid: peak - working_set.get(pid, 0.0) for pid, peak in peaks.items()}
        pid = max(growth, key=growth.__getitem__)
        cases[name] = {"status": status, "growth_mib": growth[pid], "pid": pid}
    return {"plain_status": plain_status, "working_set_mib": sum(working_set.values()), "cases": cases}
