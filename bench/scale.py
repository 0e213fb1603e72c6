"""Figure 8: the serving path at scale. Many concurrent streams on `--engine emulated:200`, a worker that
sleeps like one feeding 200 real-time listeners, so the front, the manager round trips, the relay, the
scheduler and the encoders carry what a GPU worker would give them.

Per run (64 and 128 streams started over a few seconds, each a ~27 s text read by a model player): the
delay from the worker yielding a chunk to the front sending it (p50/p95, from the server's histogram),
the CPU each process role used (the worker, the HTTP process, the two manager processes), board round
trips per chunk, every player's first audio and largest underrun. Audio seconds per CPU second of
each role is how many real-time streams one core of it carries: the smallest is where the path saturates
first.

The same path with a batching worker (`--engine emulated:8:0.05:64`, a GPU's shape: a step of up to 64
streams costs 0.05 s plus its longest member's audio / 8): a burst of newcomers sent at once (each should
hear audio within a second, their first chunks in one step), then many long streams started over a few
seconds (each gap-free, each chunk delivered promptly though 64 land at once).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psutil

from tts_api.synth.costs import CostModel
from tts_api.worker.scheduler import Scheduler, StreamView

from .listeners import GOOD_UNDERRUN_S, Listener, burst, listen
from .processes import CpuMeter, Service
from .stats import histogram_delta, histogram_summary, summarize

__all__ = ["measure_batched_scale", "measure_scale"]

RAMP_S = 5.0  # streams start evenly over this many seconds
BURST_FIRST_AUDIO_S = 1.0  # what each of a burst on a batching worker should wait at most


def measure_scale(server: Service, text: str, counts: tuple[int, ...]) -> dict[str, Any]:
    """One run per stream count on `server` (an emulated worker)."""
    return {str(n): {**_run(server, text, n), "scheduler_ms": scheduler_cost_ms(n)} for n in counts}


def measure_batched_scale(server: Service, texts: list[str], long_text: str, streams: int) -> dict[str, Any]:
    """A burst of `texts` at once, then `streams` streams of `long_text`, on `server` (a batching worker)."""
    assert server.metrics is not None
    before = server.metrics.scrape()
    heard = burst(server, texts, BURST_FIRST_AUDIO_S)
    after = server.metrics.scrape()
    steps = after["tts_batched_steps_total"] - before.get("tts_batched_steps_total", 0.0)
    chunks = after["tts_batched_chunks_total"] - before.get("tts_batched_chunks_total", 0.0)
    served = [x for x in heard["listeners"] if x["status"] == 200]
    return {
        "burst": {
            "streams": heard["streams"],
            "complete": heard["complete"],
            "errors": heard["errors"] + heard["rejected_503"],
            "first_audio_s": summarize([x["first_audio_s"] for x in served]),
            "within_bound": sum(
                x["first_audio_s"] is not None and x["first_audio_s"] <= BURST_FIRST_AUDIO_S for x in served
            ),
            "bound_s": BURST_FIRST_AUDIO_S,
            "gap_free": sum(x["underrun_s"] <= GOOD_UNDERRUN_S for x in served),
            "chunks_per_step": chunks / steps if steps else None,
        },
        "long": _run(server, long_text, streams),
    }


def scheduler_cost_ms(streams: int, repeats: int = 200) -> dict[str, float]:
    """What one admission test and one pick cost the worker's loop with `streams` playing streams (ms)."""
    policy = Scheduler(CostModel(compute_s_per_char=1 / 15 / 200, overhead_s=0.02))
    views = [
        StreamView(f"s{i}", 0.0, remaining_chars=3000, first_audio_s=0.0, sent_audio_s=5 + i * 0.1)
        for i in range(streams)
    ]
    costs = {}
    for name, call in (("admission", policy.has_room), ("pick", policy.pick)):
        started = time.perf_counter()
        for _ in range(repeats):
            call(1.0, views)
        costs[name] = (time.perf_counter() - started) / repeats * 1000
    return costs


def _run(server: Service, text: str, streams: int) -> dict[str, Any]:
    assert server.metrics is not None
    server.wait_idle()
    before = server.metrics.scrape()
    roles = _roles(server)
    meters = {role: CpuMeter(procs) for role, procs in roles.items()}
    listeners: list[Listener] = []
    lock = threading.Lock()

    def one(delay_s: float) -> None:
        time.sleep(delay_s)
        heard = listen(server.url, text)
        with lock:
            listeners.append(heard)

    started = time.monotonic()
    threads = [threading.Thread(target=one, args=(RAMP_S * i / streams,)) for i in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    after = server.metrics.scrape()
    cpu = {role: meters[role].read(procs) for role, procs in _roles(server).items()}
    chunks = after["tts_chunks_synthesized_total"] - before["tts_chunks_synthesized_total"]
    board = {
        k.split('"')[1]: after[k] - before.get(k, 0.0)
        for k in after
        if k.startswith("tts_board_calls_total{")
    }
    delivery = histogram_delta(
        after["histograms"]["tts_delivery_seconds"], before["histograms"]["tts_delivery_seconds"]
    )
    served = [x for x in listeners if x.status == 200]
    return {
        "streams": streams,
        "complete": sum(x.complete for x in served),
        "errors": sum(x.error is not None for x in listeners),
        "wall_s": wall,
        "audio_s": sum(x.audio_s for x in served),
        "first_audio_s": summarize([x.first_audio_s for x in served]),
        "largest_underrun_s": max((x.underrun_s for x in served), default=None),
        "gap_free": sum(x.underrun_s <= GOOD_UNDERRUN_S for x in served),
        "delivery_s": histogram_summary(delivery),
        "chunks": chunks,
        "board_calls": board,
        "board_calls_per_chunk": sum(board.values()) / chunks if chunks else None,
        "cpu_s": cpu,
        "cpu_share_of_a_core": {role: seconds / wall for role, seconds in cpu.items()},
        "http_cpu_s_per_stream": cpu.get("http", 0.0) / streams,
        # One core's worth of each role would carry this many real-time streams (audio s per CPU s).
        "streams_per_core": {
            role: audio / seconds
            for role, seconds in cpu.items()
            if role != "main" and seconds > 0 and (audio := sum(x.audio_s for x in served)) > 0
        },
    }


def _roles(server: Service) -> dict[str, list[psutil.Process]]:
    """The server's processes by role: inference worker (spawned), HTTP (listening on the port), the
    manager processes (forked, not listening), and the main process."""
    tree = server.tree()
    main = tree[0]
    roles: dict[str, list[psutil.Process]] = {"main": [main], "worker": [], "http": [], "managers": []}
    for proc in tree[1:]:
        try:
            cmdline = " ".join(proc.cmdline())
            listening = any(
                c.status == psutil.CONN_LISTEN and c.laddr.port == server.port
                for c in proc.net_connections("tcp")
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "spawn_main" in cmdline:
            roles["worker"].append(proc)
        elif listening:
            roles["http"].append(proc)
        elif "resource_tracker" not in cmdline:
            roles["managers"].append(proc)
    return roles
