"""Figure 6: what a client walking away from a long stream costs the server and the next client.

Two separate trials per server, so that neither number pollutes the other:
- follow-up: abandon the long stream after its first audio and send the short request at once;
  its time to first audio, over the same request's on an idle server;
- CPU: abandon the long stream the same way and send nothing; the CPU seconds the server's whole
  process tree burns in the next `window_s` seconds (read from /proc, which costs the server nothing).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

from .client import speak
from .processes import QUIET_CPU_FRACTION, CpuMeter, Service

__all__ = ["cpu_timeline", "measure_cancellation"]

CPU_SAMPLE_S = 0.25
CANCELLED = 'tts_requests_cancelled_total{stage="streaming"}'
CHUNKS = "tts_chunks_synthesized_total"


def cpu_timeline(server: Service, window_s: float) -> list[tuple[float, float]]:
    """(seconds, CPU seconds used since the start) every CPU_SAMPLE_S for `window_s` seconds."""
    started = time.monotonic()
    meter = CpuMeter(server.tree())
    timeline = [(0.0, 0.0)]
    # Until a sample's own time reaches the window (the read after it takes time, so not the clock's).
    while timeline[-1][0] < window_s:
        time.sleep(max(0.0, min(CPU_SAMPLE_S, window_s - (time.monotonic() - started))))
        timeline.append((time.monotonic() - started, meter.read(server.tree())))
    return timeline


def _busy_until(timeline: list[tuple[float, float]]) -> float | None:
    """When the tree went quiet for good (its CPU rate stayed under the idle threshold), or None if it
    was still busy at the end of the timeline."""
    quiet_since: float | None = 0.0
    for (t0, c0), (t1, c1) in pairwise(timeline):
        busy = (c1 - c0) > QUIET_CPU_FRACTION * (t1 - t0)
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = t0
    return quiet_since


def idle_cpu(server: Service, window_s: float) -> dict[str, Any]:
    """The floor: CPU seconds the idle tree uses in the same window."""
    server.wait_idle()
    timeline = cpu_timeline(server, window_s)
    return {"cpu_s": timeline[-1][1], "window_s": timeline[-1][0], "cpu_timeline": timeline}


def cpu_trial(server: Service, long_text: str, window_s: float, *, then_wait: bool) -> dict[str, Any]:
    """Abandon the long stream after its first audio; CPU of the tree over the next `window_s`."""
    server.wait_idle()
    before = server.metrics.scrape() if server.metrics else None
    abandoned = speak(server.url, long_text, "pcm", abandon="after_first_audio")
    timeline = cpu_timeline(server, window_s)
    trial: dict[str, Any] = {
        "abandoned": abandoned.record(),
        "cpu_s": timeline[-1][1],
        "window_s": timeline[-1][0],
        "cpu_timeline": timeline,
        "busy_after_abandon_s": _busy_until(timeline),
        "waited": then_wait,
    }
    if then_wait:
        waited = server.wait_idle()
        if trial["busy_after_abandon_s"] is None:
            trial["busy_after_abandon_s"] = window_s + waited
    if before is not None and then_wait and server.metrics is not None:
        after = server.metrics.scrape()
        trial["cancelled_while_streaming"] = after[CANCELLED] - before[CANCELLED]
        trial["chunks_synthesized"] = after[CHUNKS] - before[CHUNKS]
    return trial


def follow_up_trial(server: Service, long_text: str, follow_text: str) -> dict[str, Any]:
    """Abandon the long stream after its first audio and send the follow-up request right away."""
    server.wait_idle()
    abandoned = speak(server.url, long_text, "pcm", abandon="after_first_audio")
    follow_up = speak(server.url, follow_text, "pcm")
    return {"abandoned": abandoned.record(), "follow_up": follow_up.record()}


def measure_cancellation(
    server: Service,
    long_text: str,
    follow_text: str,
    *,
    window_s: float,
    trials: int,
    idle_reps: int,
    measure_floor: bool,
    last_use: bool,
    baseline: Callable[[], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Raw samples of figure 6 for one server. With `last_use`, the final CPU trial does not wait for
    the server to finish the abandoned stream (it is stopped right after). `baseline`, if given,
    runs before each idle sample, on the idle server's machine (the bare pipeline's pass)."""
    idle_first_audio = []
    baseline_runs = []
    for _ in range(idle_reps):
        server.wait_idle()
        if baseline is not None:
            baseline_runs.append(baseline())
        idle_first_audio.append(speak(server.url, follow_text, "pcm").record())
    floor = idle_cpu(server, window_s) if measure_floor else None
    follow_ups = [follow_up_trial(server, long_text, follow_text) for _ in range(trials)]
    cpu_trials = [
        cpu_trial(server, long_text, window_s, then_wait=not (last_use and i == trials - 1))
        for i in range(trials)
    ]
    return {
        "server": server.name,
        "idle_first_audio": idle_first_audio,
        "baseline_runs": baseline_runs,
        "idle_cpu": floor,
        "follow_up_trials": follow_ups,
        "cpu_trials": cpu_trials,
    }
